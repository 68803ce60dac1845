// Internal to src/data: input streaming, the ordered parallel pipeline, staged outputs, hashing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/base.h"
#include "data/data.h"

namespace todae::data {

uint64_t xxh64(std::string_view s, uint64_t seed = 0);
// A strong 64-bit mix (splitmix64 finaliser), for seeds and Feistel rounds.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// Uniform in [0, 1) from a hash.
inline double unit_interval(uint64_t h) { return double(h >> 11) * (1.0 / 9007199254740992.0); }

bool valid_utf8(std::string_view s);

// Decodes the code point at s[i] and advances i. The pipeline's text is valid UTF-8 past reading;
// a stray invalid byte gives U+FFFD and advances by one.
inline uint32_t decode_cp(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return ++i, c;
  int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  if (n == 0 || i + size_t(n) >= s.size()) return ++i, 0xFFFD;
  uint32_t cp = c & (0x3F >> n);
  for (int k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3F);
  i += size_t(n) + 1;
  return cp;
}
// NFC quick check (clean.cpp): true when the text is certainly NFC already.
bool nfc_inert_cp(uint32_t cp);
bool nfc_quick_check(std::string_view s);
std::string nfc_fast(std::string_view s, bool* changed);

inline size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// ---- inputs -----------------------------------------------------------------------------------

enum class Compression { kNone, kGzip, kZstd };
enum class DocFormat { kText, kLines, kFile, kJsonl };

struct InputFile {
  std::string path;
  std::string source;  // file stem
  DocFormat format = DocFormat::kText;
  Compression compression = Compression::kNone;
  uint64_t bytes = 0;  // on disk
  bool stage_output = false;  // written by a todae stage: valid UTF-8 already, not re-validated
};

// Expands the inputs: a stage output folder (with report.json) gives its parts; other folders give
// their *.txt / *.text / *.jsonl / *.ndjson files (optionally .gz / .zst), recursively and sorted.
std::vector<InputFile> resolve_inputs(const InputOptions& opt);
// Identifies the inputs (paths, sizes, modification times) so a re-run can tell they changed.
std::string input_signature(const std::vector<InputFile>& files);

// A run of whole documents from one file.
struct Chunk {
  size_t file = 0;
  uint64_t first_line = 0;  // lines of the file before this chunk
  std::string data;
  std::vector<std::string> warnings;  // e.g. corrupt compressed data; printed in order
};

// Reads the inputs one after another and cuts them into chunks of about chunk_bytes at document
// boundaries. Cuts depend only on the bytes, never on read sizes or threads.
struct ChunkReader {
  ChunkReader(const std::vector<InputFile>& files, const InputOptions& opt);
  ~ChunkReader();
  bool next(Chunk& c);
  uint64_t bytes_read() const { return consumed_; }  // on-disk bytes, for progress
  struct Source;  // plain, gzip or zstd bytes of one file

 private:
  bool open_next();
  bool fill(size_t want);  // false at end of file
  const std::vector<InputFile>& files_;
  InputOptions opt_;
  size_t file_ = 0;
  bool open_ = false, eof_ = false;
  std::unique_ptr<Source> src_;
  std::string pending_;
  uint64_t line_ = 0, consumed_ = 0;
  std::vector<std::string> warnings_;
};

// Splits a chunk into documents (text/lines/file formats, or JSONL records), validating UTF-8.
// Malformed JSONL lines are counted in rep.counts ("malformed_lines") with a warning, or thrown
// when opt.strict.
void split_docs(const Chunk& c, const InputFile& f, const InputOptions& opt, std::vector<Doc>* docs,
                StageReport* rep, std::vector<std::string>* warnings);

// ---- the ordered parallel pipeline ------------------------------------------------------------

// Streams items from `produce` (on the calling thread) through `work` (on `threads` workers) to
// `done` (on the calling thread, in production order), holding at most `window` items at once.
template <typename Item>
void ordered_pipeline(int threads, size_t window, const std::function<bool(Item&)>& produce,
                      const std::function<void(Item&)>& work, const std::function<void(Item&)>& done) {
  if (threads <= 1) {
    for (Item it; produce(it); it = Item()) {
      work(it);
      done(it);
    }
    return;
  }
  struct Slot {
    Item item;
    int state = 0;  // 0 queued, 1 running, 2 done
  };
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::deque<std::unique_ptr<Slot>> slots;  // in production order
  size_t next_queued = 0;                   // index into slots of the first queued slot
  bool stop = false, closing = false;
  std::exception_ptr error;
  auto worker = [&] {
    std::unique_lock lock(mu);
    while (true) {
      cv_work.wait(lock, [&] { return stop || closing || next_queued < slots.size(); });
      if (stop || next_queued >= slots.size()) {
        if (stop || closing) return;
        continue;
      }
      Slot* s = slots[next_queued++].get();
      s->state = 1;
      lock.unlock();
      try {
        work(s->item);
      } catch (...) {
        lock.lock();
        if (!error) error = std::current_exception();
        stop = true;
        cv_done.notify_all();
        cv_work.notify_all();
        return;
      }
      lock.lock();
      s->state = 2;
      cv_done.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  auto shutdown = [&] {
    {
      std::lock_guard g(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : pool) t.join();
  };
  try {
    bool more = true;
    while (true) {
      while (more) {
        {
          std::lock_guard g(mu);
          if (slots.size() >= window || stop) break;
        }
        auto s = std::make_unique<Slot>();
        if (!produce(s->item)) {
          more = false;
          break;
        }
        std::lock_guard g(mu);
        slots.push_back(std::move(s));
        cv_work.notify_one();
      }
      std::unique_ptr<Slot> front;
      {
        std::unique_lock lock(mu);
        if (slots.empty() && !more) break;
        cv_done.wait(lock, [&] { return stop || (!slots.empty() && slots.front()->state == 2); });
        if (stop) break;
        front = std::move(slots.front());
        slots.pop_front();
        --next_queued;
      }
      done(front->item);
    }
  } catch (...) {
    shutdown();
    throw;
  }
  {
    std::lock_guard g(mu);
    closing = true;
  }
  shutdown();
  if (error) std::rethrow_exception(error);
}

// ---- outputs ----------------------------------------------------------------------------------

// Refuses folders that hold any input or that are not empty and not an earlier todae output;
// creates the folder and removes temporary files left by an interrupted run.
void prepare_output_dir(const std::string& dir, const std::vector<InputFile>& inputs, const InputOptions& in);
void prepare_output_dir_paths(const std::string& dir, const std::vector<std::string>& input_paths);
// Name of the temporary file a final file is written under until commit.
std::string temp_name(const std::string& final_path);

// Writes JSONL documents to DIR/part-NNNNN.jsonl[.zst] (under temporary names until commit).
struct PartWriter {
  PartWriter(std::string dir, bool compress, uint64_t part_bytes);
  ~PartWriter();
  void write(std::string_view records);  // whole JSONL records
  std::vector<std::string> finish();     // final file names (relative), still to be committed
  uint64_t bytes() const { return total_; }

 private:
  void open_part();
  void close_part();
  void write_bytes(std::string_view records);
  std::string dir_;
  bool compress_;
  uint64_t part_bytes_, in_part_ = 0, total_ = 0;
  int fd_ = -1;
  void* zcs_ = nullptr;
  std::string zbuf_;
  std::vector<std::string> names_;
};

// Renames DIR/NAME's temporary files into place, removes older outputs that are not in `names`,
// and writes the commit file (report.json or manifest.json) last, atomically. The commit file is
// removed first so that a crash in between leaves no complete-looking output.
void commit_outputs(const std::string& dir, const std::vector<std::string>& names, const std::string& commit_name,
                    std::string_view commit_json);

void write_all(int fd, std::string_view data, const std::string& path);

// ---- stage runner ------------------------------------------------------------------------------

// Per-chunk map over documents: the body of every map stage (ingest, clean, filter, pii). Fills
// `out` with kept documents; `rep` gets counts.
using DocMap = std::function<void(std::vector<Doc>& docs, StageReport& rep)>;

// Runs a map stage: read inputs, split into docs, apply `map`, write JSONL parts, commit, report.
StageReport run_map_stage(const std::string& stage, const InputOptions& in, const CommonOptions& co,
                          const std::string& options_json, const DocMap& map);

// Reads all documents of the inputs in order on all threads: fn(docs of chunk k) on workers, then
// each chunk's `done` on the caller in order. Used by stages with a global pass (clean's
// boilerplate count, dedup, mix).
struct ChunkDocs {
  Chunk chunk;
  uint64_t seq = 0;  // chunk number in reading order
  std::vector<Doc> docs;
  StageReport rep;
  std::vector<std::string> warnings;
  std::string out;  // serialized output
  std::vector<uint64_t> aux;  // stage-specific per-document values
  std::vector<uint32_t> aux32;
  std::vector<std::string> notes;
};
void for_each_chunk(const std::vector<InputFile>& files, const InputOptions& in, int threads, bool progress,
                    const std::string& label, const std::function<void(ChunkDocs&)>& work,
                    const std::function<void(ChunkDocs&)>& done);
// The ordered pipeline under for_each_chunk and its rank-partitioned twin: next(chunk) yields chunks
// (false at the end; chunk.file indexes `files`), which are split into documents and handed to
// work() on `threads` threads, then to done() in input order, then after_done() (progress bars).
void chunk_pipeline(const std::vector<InputFile>& files, const InputOptions& in, int threads,
                    const std::function<bool(Chunk&)>& next, const std::function<void(ChunkDocs&)>& work,
                    const std::function<void(ChunkDocs&)>& done, const std::function<void()>& after_done);

int resolve_threads(int threads);
std::string now_iso8601();
double seconds_since(std::chrono::steady_clock::time_point t0);
// The end of every stage: records inputs, options, command, input signature and time in the
// report, then commits the stage's outputs together with report.json.
StageReport& commit_stage(StageReport& total, const std::vector<InputFile>& files, std::string options,
                          const CommonOptions& co, std::chrono::steady_clock::time_point t0);
void print_warning(const std::string& w);

std::string options_json(const CleanOptions& o);
std::string options_json(const FilterOptions& o);
std::string options_json(const PiiOptions& o);
std::string options_json(const DedupOptions& o);
std::string options_json(const MixOptions& o);
std::string options_json(const ShardOptions& o);
std::string options_json(const InputOptions& o);
// A stage's options with the input options under "input".
std::string with_input(const InputOptions& in, const std::string& stage_options_json);

}  // namespace todae::data

// ---- MPI ranks (data_mpi.cpp) --------------------------------------------------------------------
//
// `mpirun -np N todae data run ...`: every stage maps over a contiguous, rank-partitioned run of
// the input chunks and reduces on rank 0, which alone writes the stage's outputs and report. With
// one process (no launcher, or built without MPI) every function below is the single-process path.
namespace todae::data {

struct Ranks {
  int rank = 0, world = 1, local_world = 1;
};
const Ranks& ranks();
inline bool distributed() { return ranks().world > 1; }
inline bool lead() { return ranks().rank == 0; }

void barrier();
// Each rank's bytes, on rank 0 in rank order (other ranks get an empty vector). Collective.
std::vector<std::string> gather(std::string mine);
// Rank 0's `s` on every rank. Collective.
void broadcast(std::string& s);
// Rank 0 gives parts[r] to rank r (parts has one entry per rank on rank 0). Collective.
std::string scatter(std::vector<std::string> parts);
// Every rank's value on every rank; `prefix` (optional) gets the exclusive prefix sums (N + 1).
std::vector<uint64_t> gather_u64(uint64_t v, std::vector<uint64_t>* prefix = nullptr);
// prepare_output_dir on rank 0, then a barrier.
void prepare_output_dir_ranked(const std::string& dir, const std::vector<InputFile>& inputs, const InputOptions& in);

// for_each_chunk over this rank's contiguous run of chunks (all of them with one process). Rank r's
// chunks come before rank r+1's in input order; `cd.seq` counts this rank's chunks.
void for_each_chunk_ranked(const std::vector<InputFile>& files, const InputOptions& in, int threads, bool progress,
                           const std::string& label, const std::function<void(ChunkDocs&)>& work,
                           const std::function<void(ChunkDocs&)>& done);

// A stage's JSONL output: rank 0 writes parts directly; the others write a temporary slice in the
// output folder that rank 0 appends in rank order in finish(), so the parts are byte-identical to
// one process's. finish() is collective; it returns the part names on rank 0, nothing elsewhere.
struct OutputSink {
  explicit OutputSink(const CommonOptions& co);
  ~OutputSink();
  void write(std::string_view records);
  std::vector<std::string> finish();

 private:
  std::string dir_, slice_;
  std::unique_ptr<PartWriter> writer_;
  int fd_ = -1;
  uint64_t bytes_ = 0;
};

// Sums the ranks' reports (docs, bytes, counts, sources, langs) into rank 0's. Collective.
void reduce_report(StageReport& total);

}  // namespace todae::data

// ---- character scans for hot loops (clean, filter, io) -------------------------------------------
//
// std::string_view::find_first_not_of(" \t") and friends call memchr on the set once per character
// they look at; lines are short and these run on every line of every document, so plain loops with
// the set as a predicate. Same results (npos when every character is in the set).
#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace todae::data {

inline bool space_or_tab(char c) { return c == ' ' || c == '\t'; }

template <typename Pred>
inline size_t first_not(std::string_view s, Pred in_set) {
  size_t i = 0;
  while (i < s.size() && in_set(s[i])) ++i;
  return i == s.size() ? std::string_view::npos : i;
}

template <typename Pred>
inline size_t last_not(std::string_view s, Pred in_set) {
  size_t i = s.size();
  while (i > 0 && in_set(s[i - 1])) --i;
  return i == 0 ? std::string_view::npos : i - 1;
}

// Code points in s (as data::count_code_points: bytes that are not UTF-8 continuation bytes),
// sixteen bytes at a time where SSE2 is there: clean and filter count every line of every document.
inline uint64_t count_code_points_fast(std::string_view s) {
  uint64_t n = 0;
  size_t i = 0;
#if defined(__SSE2__)
  while (s.size() - i >= 16) {
    __m128i acc = _mm_setzero_si128();  // per-byte counters, at most 255 blocks before summing
    size_t end = std::min(s.size() - 15, i + 255 * 16);
    for (; i < end; i += 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
      acc = _mm_sub_epi8(acc, _mm_cmpgt_epi8(v, _mm_set1_epi8(char(0xBF))));  // signed: not 0x80-0xBF
    }
    __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
    n += uint64_t(_mm_cvtsi128_si32(sums)) + uint64_t(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; i < s.size(); ++i) n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

}  // namespace todae::data
