// The token-shard format: header, manifest, the writer (`todae data shard`) and verification.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <unistd.h>
#include <xxhash.h>

#include "data/data_impl.h"
#include "data/json_util.h"
#include "text/text.h"

namespace todae {

static_assert(std::endian::native == std::endian::little, "shards are little-endian; add byte swaps for this CPU");

using data::JsonIn;
using data::ojson;

static constexpr char kMagic[8] = {'T', 'O', 'D', 'A', 'E', 'T', 'O', 'K'};

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

template <typename T>
static void put(std::string& s, size_t off, T v) {
  std::memcpy(s.data() + off, &v, sizeof v);
}
template <typename T>
static T get(std::string_view s, size_t off) {
  T v;
  std::memcpy(&v, s.data() + off, sizeof v);
  return v;
}

std::string encode_shard_header(const ShardHeader& h) {
  std::string s(kShardHeaderBytes, '\0');
  std::memcpy(s.data(), kMagic, 8);
  put<uint32_t>(s, 8, h.format_version);
  put<uint32_t>(s, 12, uint32_t(kShardHeaderBytes));
  put<uint32_t>(s, 16, h.vocab_size);
  put<uint32_t>(s, 20, h.token_width);
  put<uint64_t>(s, 24, h.tokenizer_hash);
  put<uint64_t>(s, 32, h.token_count);
  put<uint64_t>(s, 40, h.doc_count);
  put<int32_t>(s, 48, h.bos_id);
  put<int32_t>(s, 52, h.eos_id);
  put<uint64_t>(s, 56, XXH64(s.data(), 56, 0));
  return s;
}

ShardHeader parse_shard_header(std::string_view b, const std::string& name) {
  if (b.size() < kShardHeaderBytes)
    fail(name, ": truncated shard (", b.size(), " bytes, shorter than the ", kShardHeaderBytes, "-byte header)");
  if (std::memcmp(b.data(), kMagic, 8) != 0) fail(name, ": not a todae token shard (bad magic)");
  ShardHeader h;
  h.format_version = get<uint32_t>(b, 8);
  if (h.format_version != kShardFormatVersion)
    fail(name, ": shard format version ", h.format_version, " is not supported (this todae reads version ",
         kShardFormatVersion, ")");
  uint32_t header_bytes = get<uint32_t>(b, 12);
  if (header_bytes != kShardHeaderBytes) fail(name, ": header_bytes is ", header_bytes, ", expected ", kShardHeaderBytes);
  if (get<uint64_t>(b, 56) != XXH64(b.data(), 56, 0)) fail(name, ": shard header checksum mismatch (corrupt header)");
  h.vocab_size = get<uint32_t>(b, 16);
  h.token_width = get<uint32_t>(b, 20);
  h.tokenizer_hash = get<uint64_t>(b, 24);
  h.token_count = get<uint64_t>(b, 32);
  h.doc_count = get<uint64_t>(b, 40);
  h.bos_id = get<int32_t>(b, 48);
  h.eos_id = get<int32_t>(b, 52);
  if (h.token_width != 2 && h.token_width != 4) fail(name, ": token_width is ", h.token_width, ", expected 2 or 4");
  if (h.vocab_size == 0 || (h.token_width == 2 && h.vocab_size > 65536))
    fail(name, ": vocab_size ", h.vocab_size, " does not fit token_width ", h.token_width);
  for (auto [field, id] : {std::pair{"bos_id", h.bos_id}, std::pair{"eos_id", h.eos_id}})
    if (id < -1 || (id >= 0 && uint32_t(id) >= h.vocab_size))
      fail(name, ": ", field, " ", id, " is outside the vocabulary (size ", h.vocab_size, ")");
  if (h.token_count > (uint64_t(1) << 56)) fail(name, ": token_count ", h.token_count, " is implausible");
  return h;
}

// ---- manifest -----------------------------------------------------------------------------------

const ShardSplit& ShardManifest::split(const std::string& name, const std::string& dir) const {
  if (name == "train") return train;
  if (name == "val") return val;
  fail(dir, ": no split '", name, "' (choose train or val)");
}

static ojson split_json(const ShardSplit& s) {
  ojson j;
  j["tokens"] = s.tokens;
  j["documents"] = s.documents;
  j["files"] = ojson::array();
  for (const ShardFile& f : s.files)
    j["files"].push_back(
        {{"name", f.name}, {"tokens", f.tokens}, {"documents", f.documents}, {"bytes", f.bytes}, {"xxh64", hex64(f.xxh64)}});
  return j;
}

std::string manifest_to_json(const ShardManifest& m) {
  ojson j;
  j["format"] = "todae-token-shards";
  j["format_version"] = m.format_version;
  j["tokenizer"] = {{"path", m.tokenizer_path},   {"xxh64", hex64(m.tokenizer_hash)}, {"vocab_size", m.vocab_size},
                    {"token_width", m.token_width}, {"bos_id", m.bos_id},               {"eos_id", m.eos_id}};
  j["val_fraction"] = m.val_fraction;
  j["seed"] = m.seed;
  j["splits"] = {{"train", split_json(m.train)}, {"val", split_json(m.val)}};
  j["sources"] = ojson::object();
  for (auto& [k, v] : m.sources) j["sources"][k] = {{"documents", v.documents}, {"tokens", v.tokens}, {"bytes", v.bytes}};
  j["inputs"] = m.inputs;
  j["command"] = m.command;
  j["created"] = data::now_iso8601();
  return j.dump(2) + "\n";
}

static ShardSplit parse_split(const JsonIn& in, uint32_t width) {
  ShardSplit s;
  s.tokens = in.at("tokens").u64();
  s.documents = in.at("documents").u64();
  JsonIn files = in.at("files");
  uint64_t tokens = 0, docs = 0;
  for (size_t i = 0, n = files.size_array(); i < n; ++i) {
    JsonIn f = files[i];
    ShardFile sf;
    sf.name = f.at("name").str();
    if (sf.name.empty() || sf.name.find('/') != std::string::npos || sf.name[0] == '.')
      f.at("name").bad("expected a file name inside the shard folder");
    sf.tokens = f.at("tokens").u64();
    sf.documents = f.at("documents").u64();
    sf.bytes = f.at("bytes").u64();
    sf.xxh64 = f.at("xxh64").hex();
    if (sf.tokens > (uint64_t(1) << 56) || sf.bytes != kShardHeaderBytes + sf.tokens * width)
      f.at("bytes").bad("does not match tokens x token_width + header");
    tokens += sf.tokens;
    docs += sf.documents;
    s.files.push_back(std::move(sf));
  }
  if (tokens != s.tokens) in.at("tokens").bad("is not the sum of the files' tokens");
  if (docs != s.documents) in.at("documents").bad("is not the sum of the files' documents");
  return s;
}

ShardManifest parse_manifest(std::string_view text, const std::string& name) {
  data::json j = data::parse_json_text(text, name);
  JsonIn in{j, name, ""};
  in.object();
  ShardManifest m;
  if (in.at("format").str() != "todae-token-shards") in.at("format").bad("expected \"todae-token-shards\"");
  uint64_t v = in.at("format_version").u64();
  if (v != kShardFormatVersion)
    fail(name, ": format_version ", v, " is not supported (this todae reads version ", kShardFormatVersion, ")");
  JsonIn tok = in.at("tokenizer");
  m.tokenizer_path = tok.at("path").str();
  m.tokenizer_hash = tok.at("xxh64").hex();
  uint64_t vocab = tok.at("vocab_size").u64(), width = tok.at("token_width").u64();
  if (width != 2 && width != 4) tok.at("token_width").bad("expected 2 or 4");
  if (vocab == 0 || vocab > 0xFFFFFFFFull || (width == 2 && vocab > 65536))
    tok.at("vocab_size").bad("does not fit token_width");
  m.vocab_size = uint32_t(vocab);
  m.token_width = uint32_t(width);
  for (auto [key, dst] : {std::pair{"bos_id", &m.bos_id}, std::pair{"eos_id", &m.eos_id}}) {
    int64_t id = tok.at(key).i64();
    if (id < -1 || id >= int64_t(vocab)) tok.at(key).bad("is outside the vocabulary");
    *dst = int32_t(id);
  }
  m.val_fraction = in.at("val_fraction").num();
  m.seed = in.at("seed").u64();
  JsonIn splits = in.at("splits");
  m.train = parse_split(splits.at("train"), m.token_width);
  m.val = parse_split(splits.at("val"), m.token_width);
  if (in.has("sources")) {
    JsonIn src = in.at("sources");
    src.object();
    for (auto& [k, val] : src.j.items()) {
      JsonIn s{val, name, src.sub(k)};
      m.sources[k] = {s.at("documents").u64(), s.at("tokens").u64(), s.at("bytes").u64()};
    }
  }
  if (in.has("inputs")) m.inputs = in.at("inputs").strings();
  if (in.has("command")) m.command = in.at("command").str();
  return m;
}

ShardManifest read_manifest(const std::string& dir) {
  std::string path = dir + "/manifest.json";
  if (!file_exists(path)) {
    if (!is_directory(dir)) fail(dir, ": no such shard folder");
    fail(dir, ": no manifest.json (not a shard folder, or `todae data shard` did not finish)");
  }
  return parse_manifest(read_file(path), path);
}

static std::string tokenizer_file(const std::string& path) {
  if (is_directory(path)) {
    std::string f = path + "/tokenizer.json";
    if (!file_exists(f)) fail(path, ": no tokenizer.json in this folder");
    return f;
  }
  return path;
}

uint64_t tokenizer_file_hash(const std::string& path) { return data::xxh64(read_file(tokenizer_file(path))); }

// Checks one shard file against its manifest entry and returns its header.
static ShardHeader check_shard(const std::string& path, std::string_view bytes, const ShardFile& f,
                               const ShardManifest& m) {
  ShardHeader h = parse_shard_header(bytes, path);
  if (h.token_width != m.token_width || h.vocab_size != m.vocab_size || h.tokenizer_hash != m.tokenizer_hash ||
      h.bos_id != m.bos_id || h.eos_id != m.eos_id)
    fail(path, ": header does not match manifest.json (vocab_size, token_width, tokenizer hash or bos/eos ids differ)");
  if (h.token_count != f.tokens || h.doc_count != f.documents)
    fail(path, ": header says ", h.token_count, " tokens / ", h.doc_count, " documents, manifest.json says ", f.tokens,
         " / ", f.documents);
  uint64_t want = kShardHeaderBytes + h.token_count * h.token_width;
  if (bytes.size() < want) fail(path, ": truncated shard (", bytes.size(), " bytes, expected ", want, ")");
  if (bytes.size() > want) fail(path, ": ", bytes.size() - want, " bytes after the last token (corrupt shard)");
  return h;
}

void verify_shards(const std::string& dir, bool payload) {
  ShardManifest m = read_manifest(dir);
  for (const ShardSplit* s : {&m.train, &m.val})
    for (const ShardFile& f : s->files) {
      std::string path = dir + "/" + f.name;
      MappedFile map(path);
      check_shard(path, map.view(), f, m);
      if (payload && XXH64(map.data + kShardHeaderBytes, map.size - kShardHeaderBytes, 0) != f.xxh64)
        fail(path, ": token data checksum mismatch (corrupt shard)");
    }
}

namespace data {
// Used by the loader.
ShardHeader check_shard_file(const std::string& path, std::string_view bytes, const ShardFile& f, const ShardManifest& m) {
  return check_shard(path, bytes, f, m);
}
}  // namespace data

// ---- writer -------------------------------------------------------------------------------------

namespace {

struct ShardWriter {
  std::string dir, prefix, path, name;
  ShardHeader header;
  int fd = -1;
  std::string buf;
  XXH64_state_t* hs = nullptr;
  ShardFile info;

  ShardWriter(std::string d, std::string p, size_t index, const ShardHeader& h) : dir(std::move(d)), prefix(std::move(p)), header(h) {
    char n[64];
    std::snprintf(n, sizeof n, "%s-%05zu.tok", prefix.c_str(), index);
    name = n;
    path = data::temp_name(dir + "/" + name);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot write ", path, ": ", std::strerror(errno));
    buf.assign(kShardHeaderBytes, '\0');  // the real header is written at close, when counts are known
    hs = XXH64_createState();
    XXH64_reset(hs, 0);
    header.token_count = 0;
    header.doc_count = 0;
  }
  ~ShardWriter() {
    if (fd >= 0) {
      ::close(fd);
      ::unlink(path.c_str());
    }
    XXH64_freeState(hs);
  }
  void flush() {
    data::write_all(fd, buf, path);
    buf.clear();
  }
  void add_doc(std::span<const uint32_t> tokens) {
    size_t start = buf.size();
    buf.resize(start + tokens.size() * header.token_width);
    char* p = buf.data() + start;
    if (header.token_width == 2) {
      for (uint32_t t : tokens) {
        uint16_t v = uint16_t(t);
        std::memcpy(p, &v, 2);
        p += 2;
      }
    } else {
      std::memcpy(p, tokens.data(), tokens.size() * 4);
    }
    XXH64_update(hs, buf.data() + start, buf.size() - start);  // the header placeholder is never hashed
    header.token_count += tokens.size();
    header.doc_count += 1;
    if (buf.size() >= (8 << 20)) flush();
  }
  ShardFile close() {
    flush();
    std::string h = encode_shard_header(header);
    if (::pwrite(fd, h.data(), h.size(), 0) != ssize_t(h.size())) fail("cannot write ", path, ": ", std::strerror(errno));
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      fd = -1;
      fail("cannot write ", path, ": ", std::strerror(errno));
    }
    fd = -1;
    info.name = name;
    info.tokens = header.token_count;
    info.documents = header.doc_count;
    info.bytes = kShardHeaderBytes + header.token_count * header.token_width;
    info.xxh64 = XXH64_digest(hs);
    return info;
  }
};

struct SplitWriter {
  std::string dir, prefix;
  ShardHeader header;
  uint64_t shard_tokens;
  std::unique_ptr<ShardWriter> cur;
  ShardSplit split;
  void add_doc(std::span<const uint32_t> tokens) {
    if (cur && cur->header.token_count >= shard_tokens) finish_current();
    if (!cur) cur = std::make_unique<ShardWriter>(dir, prefix, split.files.size(), header);
    cur->add_doc(tokens);
  }
  void finish_current() {
    ShardFile f = cur->close();
    split.tokens += f.tokens;
    split.documents += f.documents;
    split.files.push_back(f);
    cur.reset();
  }
  void finish() {
    if (cur) finish_current();
  }
};

// bos/eos token text: the option, else tokenizer_config.json, else the usual names.
int32_t find_special(const Tokenizer& tok, const std::string& tok_path, const std::string& given, const char* config_key,
                     std::vector<std::string> candidates, const char* flag) {
  if (!given.empty()) {
    int32_t id = tok.token_id(given);
    if (id < 0) fail(tok_path, ": no token '", given, "' in the vocabulary (", flag, ")");
    return id;
  }
  std::string dir = is_directory(tok_path) ? tok_path : std::string(std::filesystem::path(tok_path).parent_path());
  if (dir.empty()) dir = ".";
  std::string cfg = dir + "/tokenizer_config.json";
  if (file_exists(cfg)) {
    try {
      data::json j = data::json::parse(read_file(cfg));
      if (j.is_object() && j.contains(config_key)) {
        const data::json& v = j[config_key];
        std::string t = v.is_string() ? v.get<std::string>()
                        : v.is_object() && v.contains("content") && v["content"].is_string() ? v["content"].get<std::string>()
                                                                                                : "";
        if (!t.empty()) candidates.insert(candidates.begin(), t);
      }
    } catch (const data::json::exception&) {
      // load_tokenizer already reported real problems with this file; fall back to the usual names
    }
  }
  for (const auto& c : candidates) {
    int32_t id = tok.token_id(c);
    if (id >= 0) return id;
  }
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  fail(tok_path, ": no ", config_key, " found (tried ", tried, "); name the token with ", flag);
}

}  // namespace

std::string data::options_json(const ShardOptions& o) {
  ojson j;
  j["tokenizer"] = o.tokenizer;
  j["val_fraction"] = o.val_fraction;
  j["seed"] = o.seed;
  j["shard_tokens"] = o.shard_tokens;
  j["add_bos"] = o.add_bos;
  j["add_eos"] = o.add_eos;
  j["bos_token"] = o.bos_token;
  j["eos_token"] = o.eos_token;
  j["nfc"] = o.nfc;
  j["split_special"] = o.split_special;
  return j.dump();
}

StageReport run_shard(const InputOptions& in, const ShardOptions& opt, const CommonOptions& co) {
  using namespace data;
  auto t0 = std::chrono::steady_clock::now();
  if (opt.tokenizer.empty()) fail("no tokenizer (give --tokenizer DIR)");
  if (!(opt.val_fraction >= 0 && opt.val_fraction < 1)) fail("--val-fraction must be in [0, 1), not ", opt.val_fraction);
  if (!opt.add_bos && !opt.add_eos) fail("--no-eos needs --add-bos: documents must be delimited");
  if (opt.shard_tokens == 0) fail("--shard-tokens must be positive");
  std::string tok_file = tokenizer_file(opt.tokenizer);
  Tokenizer tok = load_tokenizer(opt.tokenizer);
  ShardHeader header;
  header.vocab_size = uint32_t(tok.vocab_size());
  header.token_width = tok.vocab_size() <= 65536 ? 2 : 4;
  header.tokenizer_hash = xxh64(read_file(tok_file));
  header.bos_id = opt.add_bos ? find_special(tok, opt.tokenizer, opt.bos_token, "bos_token",
                                             {"<|bos|>", "<|begin_of_text|>", "<s>", "<bos>", "<|endoftext|>"}, "--bos-token")
                              : -1;
  header.eos_id = opt.add_eos ? find_special(tok, opt.tokenizer, opt.eos_token, "eos_token",
                                             {"<|eos|>", "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}, "--eos-token")
                              : -1;

  std::vector<InputFile> files = resolve_inputs(in);
  prepare_output_dir_ranked(co.output, files, in);
  int threads = resolve_threads(co.threads);
  SplitWriter train{co.output, "train", header, opt.shard_tokens, nullptr, {}};
  SplitWriter val{co.output, "val", header, opt.shard_tokens, nullptr, {}};
  ShardManifest m;
  StageReport total;
  total.stage = "shard";
  EncodeOptions eo;
  eo.add_special_tokens = false;
  eo.split_special = opt.split_special;
  uint64_t split_seed = mix64(opt.seed ^ 0x5eed5911ull);
  std::map<std::string, SourceCount> sources;
  // Ranks other than 0 keep their documents' tokens in a temporary file (uint32 each) and one
  // (token count | val << 63) per document; rank 0 appends them to the shards in rank order after
  // its own, so the shards are those one process writes.
  const bool spill = distributed() && !lead();
  std::string spill_path = spill ? temp_name(cat(co.output, "/.rank-", ranks().rank, ".tokens")) : "";
  int spill_fd = -1;
  std::vector<uint64_t> spill_docs;
  if (spill) {
    spill_fd = ::open(spill_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (spill_fd < 0) fail("cannot write ", spill_path, ": ", std::strerror(errno));
  }
  struct SpillGuard {
    int& fd;
    std::string path;
    ~SpillGuard() {
      if (fd >= 0) ::close(fd);
      if (!path.empty()) ::unlink(path.c_str());
    }
  } spill_guard{spill_fd, spill_path};

  for_each_chunk_ranked(
      files, in, threads, co.progress, "shard",
      [&](ChunkDocs& cd) {
        // Per document: aux = token count | (val << 63); tokens of all documents in aux32.
        for (Doc& d : cd.docs) {
          if (opt.nfc) d.text = nfc_normalize(d.text);
          // The split depends only on the text, so duplicates land on the same side.
          bool is_val = opt.val_fraction > 0 && unit_interval(mix64(xxh64(d.text, split_seed))) < opt.val_fraction;
          size_t before = cd.aux32.size();
          if (header.bos_id >= 0) cd.aux32.push_back(uint32_t(header.bos_id));
          std::vector<int32_t> ids = d.text.size() > (1 << 20) ? encode_parallel(tok, d.text, eo, threads)
                                                               : encode(tok, d.text, eo);
          cd.aux32.insert(cd.aux32.end(), ids.begin(), ids.end());
          if (header.eos_id >= 0) cd.aux32.push_back(uint32_t(header.eos_id));
          cd.aux.push_back(uint64_t(cd.aux32.size() - before) | (uint64_t(is_val) << 63));
          cd.rep.docs_out += 1;
          cd.rep.bytes_out += d.text.size();
          SourceStats& ss = cd.rep.sources[d.source];
          ss.docs_out += 1;
          ss.bytes_out += d.text.size();
        }
      },
      [&](ChunkDocs& cd) {
        size_t off = 0;
        if (spill) {
          write_all(spill_fd, std::string_view(reinterpret_cast<const char*>(cd.aux32.data()), cd.aux32.size() * 4), spill_path);
          spill_docs.insert(spill_docs.end(), cd.aux.begin(), cd.aux.end());
        }
        for (size_t i = 0; i < cd.docs.size(); ++i) {
          uint64_t n = cd.aux[i] & ~(uint64_t(1) << 63);
          bool is_val = cd.aux[i] >> 63;
          std::span<const uint32_t> toks(cd.aux32.data() + off, n);
          if (!spill) (is_val ? val : train).add_doc(toks);
          off += n;
          SourceCount& sc = sources[cd.docs[i].source];
          sc.documents += 1;
          sc.tokens += n;
          sc.bytes += cd.docs[i].text.size();
        }
        total.merge(cd.rep);
      });
  if (distributed()) {
    if (spill && ::close(spill_fd) != 0) fail("cannot write ", spill_path, ": ", std::strerror(errno));
    spill_fd = -1;
    ojson src = ojson::object();
    for (auto& [k, v] : sources) src[k] = {v.documents, v.tokens, v.bytes};
    std::string blob = cat(spill_path, "\n", src.dump(), "\n");
    blob.append(reinterpret_cast<const char*>(spill_docs.data()), spill_docs.size() * 8);
    std::vector<std::string> all = gather(std::move(blob));
    for (size_t r = 1; r < all.size(); ++r) {
      std::string_view v = all[r];
      size_t a = v.find('\n'), b = v.find('\n', a + 1);
      std::string path(v.substr(0, a));
      ojson src_r = ojson::parse(std::string(v.substr(a + 1, b - a - 1)));
      for (auto& [k, c] : src_r.items()) {
        SourceCount& sc = sources[k];
        sc.documents += c[0].get<uint64_t>();
        sc.tokens += c[1].get<uint64_t>();
        sc.bytes += c[2].get<uint64_t>();
      }
      std::string_view meta = v.substr(b + 1);
      uint64_t want = 0;
      for (size_t i = 0; i < meta.size() / 8; ++i) {
        uint64_t x;
        std::memcpy(&x, meta.data() + i * 8, 8);
        want += x & ~(uint64_t(1) << 63);
      }
      if (want == 0) continue;
      MappedFile toks(path);
      if (toks.size != want * 4) fail(path, ": rank ", r, "'s tokens are ", toks.size, " bytes, expected ", want * 4);
      const uint32_t* p = reinterpret_cast<const uint32_t*>(toks.data);
      for (size_t i = 0; i < meta.size() / 8; ++i) {
        uint64_t x;
        std::memcpy(&x, meta.data() + i * 8, 8);
        uint64_t n = x & ~(uint64_t(1) << 63);
        ((x >> 63) ? val : train).add_doc(std::span<const uint32_t>(p, n));
        p += n;
      }
    }
    barrier();  // rank 0 has read every rank's tokens
    reduce_report(total);
  }
  train.finish();
  val.finish();

  m.vocab_size = header.vocab_size;
  m.token_width = header.token_width;
  m.tokenizer_hash = header.tokenizer_hash;
  m.tokenizer_path = opt.tokenizer;
  m.bos_id = header.bos_id;
  m.eos_id = header.eos_id;
  m.val_fraction = opt.val_fraction;
  m.seed = opt.seed;
  m.train = train.split;
  m.val = val.split;
  m.sources = sources;
  for (const auto& f : files) m.inputs.push_back(f.path);
  m.command = co.command;

  std::vector<std::string> names;
  for (const ShardSplit* s : {&m.train, &m.val})
    for (const ShardFile& f : s->files) names.push_back(f.name);
  total.outputs = names;
  total.inputs = m.inputs;
  total.counts["tokens.train"] = m.train.tokens;
  total.counts["tokens.val"] = m.val.tokens;
  total.counts["docs.train"] = m.train.documents;
  total.counts["docs.val"] = m.val.documents;
  total.options = with_input(in, options_json(opt));
  total.command = co.command;
  total.input_signature = input_signature(files);
  ojson extra;
  extra["tokenizer_xxh64"] = hex64(header.tokenizer_hash);
  extra["vocab_size"] = header.vocab_size;
  extra["token_width"] = header.token_width;
  extra["tokens_per_source"] = ojson::object();
  for (auto& [k, v] : sources) extra["tokens_per_source"][k] = v.tokens;
  total.extra = extra.dump();
  total.seconds = seconds_since(t0);
  // report.json first, manifest.json last: the manifest is what makes the folder loadable.
  std::string report_json;
  if (lead()) {
    report_json = report_to_json(total);
    std::error_code ec;
    std::filesystem::remove(co.output + "/manifest.json", ec);
    write_file_atomic(co.output + "/report.json", report_json);
    commit_outputs(co.output, names, "manifest.json", manifest_to_json(m));
  }
  if (distributed()) {  // every rank returns the committed report, after the commit
    broadcast(report_json);
    if (!lead()) {
      StageReport g = parse_report(report_json, co.output + "/report.json");
      g.options = total.options;
      total = std::move(g);
    }
  }
  return total;
}

}  // namespace todae
