// todae data: the pipeline from raw text to training shards, and the loader that feeds training.
//
//   ingest -> clean -> filter -> pii -> dedup -> mix -> shard      (each `todae data <stage>`)
//
// Stages pass documents along as JSONL parts ({"text": ..., "source": ..., "lang": ...}) in an
// output folder that also holds report.json (docs_in, docs_out, bytes_in, bytes_out, seconds and
// per-rule counts). `shard` tokenizes documents into the binary token-shard format below, which
// TokenLoader streams as fixed-length windows for pretraining.
//
// Every stage streams its inputs in chunks of whole documents on all cores, keeps a bounded number
// of chunks in memory, writes results in input order (byte-identical output for any thread count),
// and writes outputs atomically: files appear under temporary names and are renamed into place
// only after the run succeeded, with report.json (or manifest.json) written last as the commit.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace todae {

struct Tokenizer;

// ---- token shards -----------------------------------------------------------------------------
//
// A shard file (train-00000.tok, val-00000.tok) is a 64-byte little-endian header followed by
// token_count tokens of token_width bytes each (2 when the vocabulary fits in 16 bits, else 4).
// Documents are concatenated, each followed by eos_id and/or preceded by bos_id (-1: not used).
//
//   offset size field
//        0    8 magic "TODAETOK"
//        8    4 format_version (1)
//       12    4 header_bytes (64)
//       16    4 vocab_size
//       20    4 token_width (2 or 4)
//       24    8 tokenizer_hash (xxh64 of the tokenizer.json / .tiktoken bytes, seed 0)
//       32    8 token_count
//       40    8 doc_count
//       48    4 bos_id (int32, -1 if documents are not preceded by a token)
//       52    4 eos_id (int32, -1 if documents are not followed by a token)
//       56    8 header_checksum (xxh64 of bytes 0..55, seed 0)
//
// manifest.json beside the shards lists every file with its token and document counts and the
// xxh64 of its token payload, the tokenizer hash, the inputs and the command that made them.

constexpr uint32_t kShardFormatVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t format_version = kShardFormatVersion;
  uint32_t vocab_size = 0;
  uint32_t token_width = 2;
  uint64_t tokenizer_hash = 0;
  uint64_t token_count = 0;
  uint64_t doc_count = 0;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

std::string encode_shard_header(const ShardHeader& h);
// Checks magic, version, header size, checksum and field ranges; `name` goes into the errors.
ShardHeader parse_shard_header(std::string_view bytes, const std::string& name);

struct ShardFile {
  std::string name;  // relative to the shard folder
  uint64_t tokens = 0, documents = 0, bytes = 0;
  uint64_t xxh64 = 0;  // of the token payload (the file after its header)
};

struct ShardSplit {
  uint64_t tokens = 0, documents = 0;
  std::vector<ShardFile> files;
};

struct SourceCount {
  uint64_t documents = 0, tokens = 0, bytes = 0;
};

struct ShardManifest {
  uint32_t format_version = kShardFormatVersion;
  uint32_t vocab_size = 0, token_width = 2;
  uint64_t tokenizer_hash = 0;
  std::string tokenizer_path;
  int32_t bos_id = -1, eos_id = -1;
  double val_fraction = 0;
  uint64_t seed = 0;
  ShardSplit train, val;
  std::map<std::string, SourceCount> sources;  // by document source (input file stem or "source" field)
  std::vector<std::string> inputs;
  std::string command;
  const ShardSplit& split(const std::string& name, const std::string& dir) const;
};

std::string manifest_to_json(const ShardManifest& m);
// `name` (usually DIR/manifest.json) goes into the errors, which name the field at fault.
ShardManifest parse_manifest(std::string_view json, const std::string& name);
ShardManifest read_manifest(const std::string& dir);

// xxh64 of the tokenizer file a path resolves to (folder -> folder/tokenizer.json).
uint64_t tokenizer_file_hash(const std::string& tokenizer_path);
std::string hex64(uint64_t v);

// Checks every shard of a folder: headers against the manifest, sizes, and (if `payload`) the
// xxh64 of every token payload. Throws Error naming the first bad file.
void verify_shards(const std::string& dir, bool payload = true);

// ---- reading documents ------------------------------------------------------------------------

struct InputOptions {
  std::vector<std::string> inputs;  // files or folders (folders: *.txt, *.jsonl, *.ndjson, + .gz/.zst)
  // auto: JSONL for *.jsonl / *.ndjson, else text; text: documents separated by blank lines;
  // lines: one document per line; file: one document per file; jsonl: one JSON object per line.
  std::string format = "auto";
  std::string jsonl_field = "text";
  // repair: invalid UTF-8 becomes U+FFFD (as JavaScript's TextDecoder); drop: the document is dropped.
  std::string invalid_utf8 = "repair";
  bool strict = false;  // malformed JSONL lines and corrupt compressed input fail the run
  size_t chunk_bytes = 4 << 20;
};

struct Doc {
  std::string text;
  std::string source;  // FOLDER/STEM for files found in a folder ("ko/debian_faq"), the stem of a
                       // file named directly, or the JSONL record's own "source" field
  std::string lang;    // set by filter ("ko", "en", "other"), kept through later stages
};

// Calls fn on every document of the inputs in order, on the calling thread (for tools and tests;
// the stages read on all cores). Warnings (malformed lines, corrupt input) go to stderr.
void read_documents(const InputOptions& in, const std::function<void(Doc&)>& fn);

// ---- reports ----------------------------------------------------------------------------------

struct SourceStats {
  uint64_t docs_in = 0, docs_out = 0, bytes_in = 0, bytes_out = 0;
};

// What a stage did; DIR/report.json. Counts are sums over chunks, so they do not depend on threads.
struct StageReport {
  std::string stage;
  uint64_t docs_in = 0, docs_out = 0, bytes_in = 0, bytes_out = 0;
  double seconds = 0;
  std::map<std::string, uint64_t> counts;  // per rule / per type (e.g. "dropped.min_chars", "email")
  std::map<std::string, SourceStats> sources;
  std::map<std::string, uint64_t> langs;  // documents out per language (after filter)
  std::vector<std::string> inputs, outputs;
  std::string options;  // the stage's options as JSON text (what ran)
  std::string extra;    // stage-specific JSON object text (e.g. dedup clusters), may be empty
  std::string command;
  std::string input_signature;  // paths, sizes and times of the inputs: a re-run with equal ones is skipped
  void merge(const StageReport& o);  // sums counts (not seconds/inputs/outputs)
};

std::string report_to_json(const StageReport& r);
StageReport parse_report(std::string_view json, const std::string& name);

// ---- stages -----------------------------------------------------------------------------------

struct CommonOptions {
  std::string output;      // folder
  int threads = 0;         // 0: all cores
  bool progress = true;
  bool compress = false;   // write part-*.jsonl.zst instead of part-*.jsonl
  uint64_t part_bytes = 256ull << 20;  // roll over output parts at about this many bytes
  std::string command;     // recorded in reports / manifests
};

struct CleanOptions {
  bool nfc = true;
  bool control_chars = true;    // drop C0/C1 controls except \n and \t, zero-width spaces, soft hyphens, BOMs
  bool unicode_spaces = true;   // NBSP, ideographic and other Unicode spaces -> ' '
  bool trailing_space = true;   // strip spaces at line ends; \r\n and lone \r -> \n
  bool collapse_spaces = false; // runs of spaces/tabs inside a line -> one space (off: keeps code indentation)
  int max_blank_lines = 1;      // runs of empty lines inside a document are cut to this many
  // Lines (of at least boilerplate_min_chars) found in at least boilerplate_min_docs documents are
  // removed everywhere; 0 disables. Counted in a first pass over the input.
  uint64_t boilerplate_min_docs = 0;
  int boilerplate_min_chars = 20;
  uint64_t boilerplate_max_lines = 50'000'000;  // bound on the line-count table (memory)
};

struct FilterOptions {
  // Language: "ko" when Hangul is at least ko_min_hangul of the letters, "en" (Latin script) when
  // Latin is at least en_min_latin of them, else "other". Documents outside `languages` are dropped.
  std::vector<std::string> languages = {"ko", "en"};
  double ko_min_hangul = 0.15;  // Korean technical text is full of Latin names and commands
  double en_min_latin = 0.6;
  // Gopher/C4-style rules, applied in the order of filter_rule_names(); a document is dropped by
  // the first it fails, counted as "dropped.RULE". Any rule can be switched off with `disable`.
  std::vector<std::string> disable;
  uint64_t min_chars = 50, max_chars = 2'000'000;
  uint64_t min_words = 5, max_words = 500'000;
  double min_mean_word_chars = 1.5, max_mean_word_chars = 15;      // Korean eojeol: ~3 syllables
  double en_min_mean_word_chars = 3, en_max_mean_word_chars = 10;  // Gopher's bounds for English
  double max_symbol_ratio = 0.25;    // chars that are neither letters, digits, marks nor spaces
  double max_digit_ratio = 0.3;
  double max_hash_ellipsis_per_word = 0.1;
  double max_bullet_lines = 0.9;
  double max_ellipsis_lines = 0.3;
  double min_alpha_words = 0.8;      // words holding at least one letter
  double max_dup_line_chars = 0.3;   // chars in repeats of an earlier line
  double max_top_2gram = 0.2, max_top_3gram = 0.18, max_top_4gram = 0.16;
  double max_dup_5gram = 0.15, max_dup_10gram = 0.10;  // 6..9 interpolate linearly
  uint64_t ngram_min_words = 50;     // the n-gram rules judge only documents at least this long
  double max_short_lines = 0.8;      // lists of UI strings: most lines shorter than short_line_chars
  uint64_t short_line_chars = 25;
  uint64_t short_lines_min_lines = 5;
  uint64_t min_stopwords = 2;  // en: the/be/to/of/and/that/have/with; ko: particles, endings, 및/등/수/것...
};

struct PiiOptions {
  bool email = true, phone = true, rrn = true, card = true, ip = true;
  bool rrn_require_checksum = true;  // numbers issued since Oct 2020 have none; off: date + gender digit suffice
};

struct DedupOptions {
  bool exact = true, near = true;
  int ngram = 5;             // character n-grams (code points, after lowercasing and collapsing spaces)
  int bands = 20, rows = 6;  // LSH: bands x rows MinHash values; pairs above ~(1/bands)^(1/rows) collide
  double threshold = 0.8;    // estimated Jaccard a colliding pair must reach to count as duplicate
  uint64_t seed = 1;
  int max_examples = 20;     // cluster examples written to report.json
};

struct MixOptions {
  std::string by = "source";  // group documents by "source" or "lang"
  // Target share of the output bytes per group; keys may end in '*' (prefix match). Groups with no
  // weight keep their natural share when `others` is "keep", are dropped when "drop".
  std::vector<std::pair<std::string, double>> weights;
  std::string others = "drop";
  uint64_t total_bytes = 0;  // 0: as many as the inputs hold
  double max_repeat = 4;     // no group is repeated more than this many times
  uint64_t seed = 0;
};

struct ShardOptions {
  std::string tokenizer;
  double val_fraction = 0.005;
  uint64_t seed = 0;
  uint64_t shard_tokens = 100'000'000;  // a shard is closed at the first document end past this
  bool add_bos = false, add_eos = true;
  std::string bos_token, eos_token;  // default: from tokenizer_config.json, else <|bos|>/<|eos|>, <|endoftext|>, </s>
  bool nfc = true;
  bool split_special = false;  // special-token text inside documents stays plain text
};

StageReport run_ingest(const InputOptions& in, const CommonOptions& co);
StageReport run_clean(const InputOptions& in, const CleanOptions& opt, const CommonOptions& co);
StageReport run_filter(const InputOptions& in, const FilterOptions& opt, const CommonOptions& co);
StageReport run_pii(const InputOptions& in, const PiiOptions& opt, const CommonOptions& co);
StageReport run_dedup(const InputOptions& in, const DedupOptions& opt, const CommonOptions& co);
StageReport run_mix(const InputOptions& in, const MixOptions& opt, const CommonOptions& co);
// Writes DIR/{train,val}-NNNNN.tok and DIR/manifest.json (and report.json).
StageReport run_shard(const InputOptions& in, const ShardOptions& opt, const CommonOptions& co);

// Sets one option by its recipe name (the keys of report.json's "options") from a JSON value, or
// a bare string: what `--set KEY=VALUE` on the command line and a recipe's stage objects do.
// Errors name the option and list the valid ones.
void set_option(InputOptions& o, const std::string& key, const std::string& value);
void set_option(CleanOptions& o, const std::string& key, const std::string& value);
void set_option(FilterOptions& o, const std::string& key, const std::string& value);
void set_option(PiiOptions& o, const std::string& key, const std::string& value);
void set_option(DedupOptions& o, const std::string& key, const std::string& value);
void set_option(MixOptions& o, const std::string& key, const std::string& value);
void set_option(ShardOptions& o, const std::string& key, const std::string& value);

// `todae data run --recipe FILE`: the stages of a JSON recipe in order, each in OUTPUT/NN-stage/,
// each reading the previous one's output. A stage whose report.json records the same options and
// inputs is skipped, so a re-run resumes after the last completed stage.
void run_recipe(const std::string& recipe_path, int threads, bool progress, const std::string& command);
// Parses and checks a recipe without running it (every stage's options, paths); returns the stage names.
std::vector<std::string> check_recipe(std::string_view json, const std::string& name);
// Readable summary of the reports (and manifest) under a stage or recipe folder.
std::string format_report(const std::vector<std::string>& dirs);

// ---- single-document rules (what the stages apply; exposed for tests) ---------------------------

struct BoilerplateSet;  // line hashes found in many documents (clean's first pass)

struct CleanCounts {
  uint64_t nfc = 0, control = 0, spaces = 0, trailing = 0, blank_lines = 0, boilerplate = 0;
};
// Returns the cleaned text; `boiler` (may be null) says which line hashes are boilerplate.
std::string clean_text(std::string_view text, const CleanOptions& opt, CleanCounts* counts,
                       const BoilerplateSet* boiler = nullptr);

struct TextStats {
  uint64_t chars = 0, hangul = 0, latin = 0, han = 0, other_letters = 0, digits = 0, spaces = 0, symbols = 0;
  uint64_t lines = 0, words = 0;
};
TextStats text_stats(std::string_view text);
std::string detect_language(const TextStats& s, const FilterOptions& opt);
// Empty when the document passes; else the name of the first rule it fails.
std::string filter_reason(std::string_view text, const FilterOptions& opt, std::string* lang = nullptr);
std::vector<std::string> filter_rule_names();

struct PiiCounts {
  uint64_t email = 0, phone = 0, rrn = 0, card = 0, ip = 0;
};
// Replaces PII with [EMAIL], [PHONE], [RRN], [CARD], [IP].
std::string scrub_pii(std::string_view text, const PiiOptions& opt, PiiCounts* counts);
bool valid_rrn(std::string_view digits13);  // 13 digits: date, gender/century digit and checksum
bool luhn_valid(std::string_view digits);

// MinHash signature (bands*rows values) of a text's character n-grams.
std::vector<uint32_t> minhash_signature(std::string_view text, const DedupOptions& opt);
double signature_similarity(std::span<const uint32_t> a, std::span<const uint32_t> b);

// ---- JSON lines -------------------------------------------------------------------------------

// Parses one JSON object, extracting the string values of `keys` (values[i] is set and found[i]
// true when present). Other fields are validated and skipped. Returns false with `error` set on
// malformed JSON or a requested key whose value is not a string.
bool parse_json_line(std::string_view line, std::span<const std::string_view> keys, std::string* values, bool* found,
                     std::string* error);
void append_json_string(std::string& out, std::string_view s);
// {"text": ..., "source": ..., "lang": ...}\n
void append_doc_jsonl(std::string& out, const Doc& d);

// ---- training loader --------------------------------------------------------------------------

struct LoaderOptions {
  std::string dir;             // folder with manifest.json
  std::string split = "train"; // "train" or "val"
  int seq_len = 1024;          // T: each window holds T+1 tokens (inputs and shifted targets)
  int batch_size = 8;          // B: windows per batch on this rank
  uint64_t seed = 0;
  bool shuffle = true;         // false: windows in order (validation)
  int rank = 0, world_size = 1;
  std::string tokenizer;       // optional: its file hash must equal the shards'
  bool verify_payload = false; // hash every shard's tokens on open
};

// Where the loader stands: `index` windows of the global order have been consumed in `epoch`.
// The same on every rank; a checkpoint saves it and seek() resumes there exactly.
struct DataPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;
  bool operator==(const DataPosition&) const = default;
};

// Streams batches of B windows of T+1 tokens from the memory-mapped shards of one split, viewed
// as one token stream. Windows start every T tokens; each epoch visits them in a permutation
// fixed by (seed, epoch), without materialising it. A global batch is the next B*world_size
// windows; rank r takes the r-th B of them, so ranks see disjoint windows and together the same
// global batches as one process with batch B*world_size. An epoch ends when fewer than a global
// batch of windows remain (the remainder is skipped). A split too small for one global batch
// opens with batches_per_epoch() == 0; next_batch() on it throws. Not thread-safe.
struct TokenLoader {
  explicit TokenLoader(const LoaderOptions& opt);
  ~TokenLoader();
  TokenLoader(const TokenLoader&) = delete;
  TokenLoader& operator=(const TokenLoader&) = delete;

  // Fills out[b*(T+1) + t] for b < B, t <= T, and advances by one global batch.
  void next_batch(std::span<int32_t> out);
  std::vector<int32_t> next_batch();
  DataPosition position() const;
  void seek(const DataPosition& p);

  uint64_t tokens() const;
  uint64_t windows_per_epoch() const;
  uint64_t batches_per_epoch() const;  // global batches
  const ShardManifest& manifest() const;
  // The global window index (start token / T) at position i of epoch e's order.
  uint64_t window_at(uint64_t epoch, uint64_t i) const;
  // Copies tokens [start, start+n) of the split's stream.
  void read_tokens(uint64_t start, std::span<int32_t> out) const;

  struct Impl;
  std::unique_ptr<Impl> impl;
};

// A bijection of [0, n) fixed by key (a small Feistel network with cycle walking).
uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key);

}  // namespace todae

// ---- MPI ranks ----------------------------------------------------------------------------------
//
// `mpirun -np N todae data run --recipe FILE` runs every stage as N ranks over rank-partitioned
// inputs with the same output as one process (docs/data.md, "Scaling out"). MPI is initialised
// only under a launcher (OMPI_COMM_WORLD_SIZE / PMI_SIZE > 1); a build without MPI fails there
// with a message instead of running N copies.
namespace todae {
struct DataRanks {
  int rank = 0, world = 1, local_world = 1;
};
DataRanks data_mpi_init();
void data_mpi_finalize();
// Prints the error with the rank and takes the whole job down (the other ranks would wait forever).
[[noreturn]] void data_mpi_abort(const std::string& what);
}  // namespace todae
