// Reading documents (plain, gzip, zstd; text, lines, whole files, JSONL) and writing stage outputs
// atomically.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include "data/data_impl.h"
#include "text/text.h"

namespace fs = std::filesystem;

namespace todae::data {

uint64_t xxh64(std::string_view s, uint64_t seed) { return XXH64(s.data(), s.size(), seed); }

// ASCII eight bytes at a time; the multi-byte sequences are checked as RFC 3629 defines them
// (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* e = p + s.size();
  while (p < e) {
    if (e - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (!(w & 0x8080808080808080ull)) {
        p += 8;
        continue;
      }
    }
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (size_t(e - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= n; ++i)
      if ((p[i] & 0xC0) != 0x80) return false;
    p += n + 1;
  }
  return true;
}

int resolve_threads(int threads) { return threads > 0 ? threads : default_threads(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void print_warning(const std::string& w) { std::fprintf(stderr, "\r\x1b[Ktodae: warning: %s\n", w.c_str()); }

// ---- inputs -----------------------------------------------------------------------------------

static bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

static std::string strip_suffix(std::string s, std::string_view suffix) {
  if (ends_with(s, suffix)) s.resize(s.size() - suffix.size());
  return s;
}

static InputFile describe(const std::string& path, const InputOptions& opt, bool stage_output) {
  InputFile f;
  f.path = path;
  f.stage_output = stage_output;
  std::string name = fs::path(path).filename().string();
  if (ends_with(name, ".gz")) {
    f.compression = Compression::kGzip;
    name = strip_suffix(name, ".gz");
  } else if (ends_with(name, ".zst")) {
    f.compression = Compression::kZstd;
    name = strip_suffix(name, ".zst");
  }
  bool jsonl_name = ends_with(name, ".jsonl") || ends_with(name, ".ndjson");
  if (stage_output) {
    f.format = DocFormat::kJsonl;
  } else if (opt.format == "auto") {
    f.format = jsonl_name ? DocFormat::kJsonl : DocFormat::kText;
  } else if (opt.format == "text") {
    f.format = DocFormat::kText;
  } else if (opt.format == "lines") {
    f.format = DocFormat::kLines;
  } else if (opt.format == "file") {
    f.format = DocFormat::kFile;
  } else if (opt.format == "jsonl") {
    f.format = DocFormat::kJsonl;
  } else {
    fail("--format must be auto, text, lines, file or jsonl, not '", opt.format, "'");
  }
  for (const char* ext : {".jsonl", ".ndjson", ".txt", ".text"}) name = strip_suffix(name, ext);
  f.source = name;
  f.bytes = file_size(path);
  return f;
}

static bool text_input_name(const std::string& name) {
  std::string n = strip_suffix(strip_suffix(name, ".gz"), ".zst");
  return ends_with(n, ".txt") || ends_with(n, ".text") || ends_with(n, ".jsonl") || ends_with(n, ".ndjson");
}

std::vector<InputFile> resolve_inputs(const InputOptions& opt) {
  if (opt.inputs.empty()) fail("no inputs (give --input FILE|DIR)");
  if (opt.invalid_utf8 != "repair" && opt.invalid_utf8 != "drop")
    fail("--invalid-utf8 must be 'repair' or 'drop', not '", opt.invalid_utf8, "'");
  std::vector<InputFile> out;
  for (const std::string& p : opt.inputs) {
    if (!is_directory(p)) {
      if (!file_exists(p)) fail("cannot read ", p, ": No such file or directory");
      out.push_back(describe(p, opt, false));
      continue;
    }
    std::string report = p + "/report.json";
    if (file_exists(p + "/manifest.json"))
      fail(p, ": is a token shard folder (manifest.json); give the documents it was made from");
    if (file_exists(report)) {
      // A stage output: exactly the parts its report lists, so stray or temporary files are ignored.
      StageReport r = parse_report(read_file(report), report);
      if (r.outputs.empty()) fail(p, ": the ", r.stage, " stage kept no documents (docs_out ", r.docs_out, "); nothing to read");
      for (const std::string& name : r.outputs) out.push_back(describe(p + "/" + name, opt, true));
      continue;
    }
    // Sources of files in a folder are named FOLDER/RELATIVE-STEM ("ko/debian_faq"), so weights
    // and reports can refer to a whole folder ("ko/*").
    fs::path root(p);
    std::string folder = (root.has_filename() ? root.filename() : root.parent_path().filename()).string();
    for (const std::string& f : list_input_files({p})) {
      std::string name = fs::path(f).filename().string();
      if (name.empty() || name[0] == '.' || name.find(".tmp.") != std::string::npos) continue;
      if (!text_input_name(name)) continue;  // licences, lists and other files beside the corpus
      InputFile in = describe(f, opt, false);
      std::error_code ec;
      fs::path rel = fs::relative(f, p, ec).parent_path();
      std::string prefix = folder.empty() || folder == "." ? "" : folder + "/";
      if (!ec && !rel.empty()) prefix += rel.string() + "/";
      in.source = prefix + in.source;
      out.push_back(std::move(in));
    }
  }
  if (out.empty()) fail("no input files (folders contribute *.txt, *.text, *.jsonl and *.ndjson, optionally .gz/.zst)");
  return out;
}

std::string input_signature(const std::vector<InputFile>& files) {
  std::string s;
  for (const auto& f : files) {
    struct stat st;
    long long mtime = ::stat(f.path.c_str(), &st) == 0 ? (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec : 0;
    s += cat(f.path, "\t", f.bytes, "\t", mtime, "\n");
  }
  return hex64(xxh64(s));
}

// ---- compressed and plain sources ---------------------------------------------------------------

struct ChunkReader::Source {
  std::string path;
  int fd = -1;
  uint64_t consumed = 0;  // bytes of the file read so far
  std::string corrupt;    // set when the data is corrupt; reads then return 0
  explicit Source(std::string p) : path(std::move(p)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot read ", path, ": ", std::strerror(errno));
  }
  virtual ~Source() {
    if (fd >= 0) ::close(fd);
  }
  size_t raw_read(char* buf, size_t n) {
    while (true) {
      ssize_t r = ::read(fd, buf, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("cannot read ", path, ": ", std::strerror(errno));
      consumed += size_t(r);
      return size_t(r);
    }
  }
  virtual size_t read(char* buf, size_t n) { return raw_read(buf, n); }
};

namespace {

struct GzipSource : ChunkReader::Source {
  z_stream zs{};
  std::string in;
  bool ended = false, at_eof = false, started = false;
  explicit GzipSource(std::string p) : Source(std::move(p)) {
    if (inflateInit2(&zs, 15 + 32) != Z_OK) fail("cannot read ", path, ": zlib initialisation failed");
    in.resize(1 << 18);
  }
  ~GzipSource() override { inflateEnd(&zs); }
  size_t read(char* buf, size_t n) override {
    if (!corrupt.empty()) return 0;
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = uInt(n);
    while (zs.avail_out == n) {
      if (zs.avail_in == 0 && !at_eof) {
        size_t got = raw_read(in.data(), in.size());
        if (got == 0) {
          at_eof = true;
        } else {
          zs.next_in = reinterpret_cast<Bytef*>(in.data());
          zs.avail_in = uInt(got);
        }
      }
      if (zs.avail_in == 0 && at_eof) {
        if (started && !ended) corrupt = "truncated gzip stream";
        break;
      }
      if (ended) {  // another gzip member follows (concatenated .gz files are valid)
        inflateReset(&zs);
        ended = false;
      }
      started = true;
      int rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        ended = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        corrupt = cat("corrupt gzip data (", zs.msg ? zs.msg : "inflate failed", ")");
        break;
      }
    }
    return n - zs.avail_out;
  }
};

struct ZstdSource : ChunkReader::Source {
  ZSTD_DStream* ds = nullptr;
  std::string in;
  ZSTD_inBuffer ib{nullptr, 0, 0};
  size_t last = 0;  // 0 when the last frame is complete
  bool at_eof = false;
  explicit ZstdSource(std::string p) : Source(std::move(p)) {
    ds = ZSTD_createDStream();
    if (!ds) fail("cannot read ", path, ": zstd initialisation failed");
    in.resize(ZSTD_DStreamInSize());
  }
  ~ZstdSource() override { ZSTD_freeDStream(ds); }
  size_t read(char* buf, size_t n) override {
    if (!corrupt.empty()) return 0;
    ZSTD_outBuffer ob{buf, n, 0};
    while (ob.pos == 0) {
      if (ib.pos == ib.size && !at_eof) {
        size_t got = raw_read(in.data(), in.size());
        if (got == 0) at_eof = true;
        ib = {in.data(), got, 0};
      }
      if (ib.pos == ib.size && at_eof) {
        // Flush what the decoder still holds, then decide whether the stream ended cleanly.
        last = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(last)) corrupt = cat("corrupt zstd data (", ZSTD_getErrorName(last), ")");
        else if (ob.pos == 0 && last != 0) corrupt = "truncated zstd stream";
        break;
      }
      last = ZSTD_decompressStream(ds, &ob, &ib);
      if (ZSTD_isError(last)) {
        corrupt = cat("corrupt zstd data (", ZSTD_getErrorName(last), ")");
        break;
      }
    }
    return ob.pos;
  }
};

}  // namespace

ChunkReader::ChunkReader(const std::vector<InputFile>& files, const InputOptions& opt) : files_(files), opt_(opt) {
  if (opt_.chunk_bytes < 1) opt_.chunk_bytes = 1;
}
ChunkReader::~ChunkReader() = default;

bool ChunkReader::open_next() {
  if (file_ >= files_.size()) return false;
  const InputFile& f = files_[file_];
  switch (f.compression) {
    case Compression::kNone: src_ = std::make_unique<Source>(f.path); break;
    case Compression::kGzip: src_ = std::make_unique<GzipSource>(f.path); break;
    case Compression::kZstd: src_ = std::make_unique<ZstdSource>(f.path); break;
  }
  open_ = true;
  eof_ = false;
  line_ = 0;
  pending_.clear();
  return true;
}

bool ChunkReader::fill(size_t want) {
  while (!eof_ && pending_.size() < want) {
    size_t old = pending_.size();
    size_t block = std::max<size_t>(1 << 20, want - old);
    pending_.resize(old + block);
    uint64_t before = src_->consumed;
    size_t got = src_->read(pending_.data() + old, block);
    consumed_ += src_->consumed - before;
    pending_.resize(old + got);
    if (got == 0) eof_ = true;
  }
  return !eof_;
}

// Line ends in s, sixteen bytes at a time where SSE2 is there (every x86-64): chunks are counted
// whole for line numbers, and a byte loop showed in profiles.
static uint64_t count_newlines(std::string_view s) {
  uint64_t n = 0;
  size_t i = 0;
#if defined(__SSE2__) && defined(__x86_64__)
  const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
  while (s.size() - i >= 16) {
    // Per-byte counters (subtracting the all-ones compare results) hold up to 255 each.
    __m128i acc = zero;
    size_t end = std::min(s.size() - 15, i + 255 * 16);
    for (; i < end; i += 16)
      acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i)), nl));
    __m128i sums = _mm_sad_epu8(acc, zero);  // two 64-bit lanes, each the sum of eight counters
    n += uint64_t(_mm_cvtsi128_si64(sums)) + uint64_t(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; i < s.size(); ++i) n += s[i] == '\n';
  return n;
}

// Where to cut: the end of the first document boundary that ends at or after `target` bytes.
// Text documents are cut at empty lines (whitespace-only lines also separate documents, but are
// not used for cutting); lines and JSONL at line ends; whole files never. The decision looks only
// at the bytes (reading more when a line end is the last byte held), so chunks do not depend on
// read sizes.
static size_t chunk_cut(std::string& pending, size_t target, DocFormat fmt, bool* eof,
                       const std::function<void(size_t)>& fill) {
  if (fmt == DocFormat::kFile) {
    while (!*eof) fill(pending.size() + (64 << 20));
    return pending.size();
  }
  fill(target);
  size_t search = target >= 3 ? target - 3 : 0;
  while (true) {
    size_t nl = search < pending.size() ? pending.find('\n', search) : std::string::npos;
    if (nl == std::string::npos) {
      if (*eof) return pending.size();
      fill(pending.size() + (1 << 20));
      continue;
    }
    size_t end;
    if (fmt != DocFormat::kText) {
      end = nl + 1;
    } else {
      if (nl + 3 > pending.size() && !*eof) {
        fill(nl + 3);
        continue;
      }
      if (nl + 1 < pending.size() && pending[nl + 1] == '\n') {
        end = nl + 2;
      } else if (nl + 2 < pending.size() && pending[nl + 1] == '\r' && pending[nl + 2] == '\n') {
        end = nl + 3;
      } else {
        search = nl + 1;
        continue;
      }
    }
    if (end >= target) return end;
    search = end;
  }
}

// The end of the last complete document in s (0 if none).
static size_t last_boundary(std::string_view s, DocFormat fmt) {
  if (fmt == DocFormat::kFile) return 0;
  size_t keep = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\n') continue;
    if (fmt != DocFormat::kText) keep = i + 1;
    else if (i + 1 < s.size() && s[i + 1] == '\n') keep = i + 2;
  }
  return keep;
}

bool ChunkReader::next(Chunk& c) {
  while (true) {
    if (!open_ && !open_next()) return false;
    const InputFile& f = files_[file_];
    size_t cut = chunk_cut(pending_, opt_.chunk_bytes, f.format, &eof_, [&](size_t want) { fill(want); });
    if (eof_ && !src_->corrupt.empty()) {
      std::string msg = cat(f.path, ": ", src_->corrupt, " after ", src_->consumed, " bytes (line ",
                            line_ + count_newlines(pending_) + 1, ")");
      if (opt_.strict) fail(msg);
      // The text after the last complete document may be cut anywhere: drop it.
      pending_.resize(last_boundary(pending_, f.format));
      cut = std::min(cut, pending_.size());
      warnings_.push_back(msg + "; the rest of the file is skipped");
      src_->corrupt.clear();
    }
    if (cut > 0) {
      c.file = file_;
      c.first_line = line_;
      if (cut == pending_.size()) {
        c.data.swap(pending_);
        pending_.clear();
      } else {
        c.data.assign(pending_, 0, cut);
        pending_.erase(0, cut);
      }
      line_ += count_newlines(c.data);
      c.warnings = std::move(warnings_);
      warnings_.clear();
      if (eof_ && pending_.empty()) {
        open_ = false;
        src_.reset();
        ++file_;
      }
      return true;
    }
    if (eof_) {
      open_ = false;
      src_.reset();
      ++file_;
      if (!warnings_.empty()) {  // a corrupt file with nothing usable: still report it
        c = Chunk();
        c.file = file_ - 1;
        c.warnings = std::move(warnings_);
        warnings_.clear();
        return true;
      }
    }
  }
}

// ---- documents ----------------------------------------------------------------------------------

static bool blank(std::string_view line) {
  return first_not(line, [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }) ==
         std::string_view::npos;
}

static void add_doc(std::string_view text, const std::string& source, const std::string& lang, const InputFile& f,
                    const InputOptions& opt, std::vector<Doc>* docs, StageReport* rep) {
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n')) text.remove_suffix(1);
  if (blank(text)) return;
  Doc d;
  d.source = source.empty() ? f.source : source;
  d.lang = lang;
  rep->docs_in += 1;
  rep->bytes_in += text.size();
  SourceStats& ss = rep->sources[d.source];
  ss.docs_in += 1;
  ss.bytes_in += text.size();
  if (!f.stage_output && !valid_utf8(text)) {
    if (opt.invalid_utf8 == "drop") {
      rep->counts["dropped.invalid_utf8"] += 1;
      return;
    }
    rep->counts["repaired.invalid_utf8"] += 1;
    d.text = replace_invalid_utf8(text);
  } else {
    d.text.assign(text);
  }
  docs->push_back(std::move(d));
}

void split_docs(const Chunk& c, const InputFile& f, const InputOptions& opt, std::vector<Doc>* docs,
                StageReport* rep, std::vector<std::string>* warnings) {
  std::string_view data = c.data;
  if (c.first_line == 0 && data.substr(0, 3) == "\xEF\xBB\xBF") data.remove_prefix(3);  // a BOM starting a file
  static const std::string none;
  if (f.format == DocFormat::kFile) {
    add_doc(data, none, none, f, opt, docs, rep);
    return;
  }
  if (f.format == DocFormat::kText) {
    size_t doc_start = std::string_view::npos, doc_end = 0;
    for (size_t pos = 0; pos < data.size();) {
      size_t eol = data.find('\n', pos);
      if (eol == std::string_view::npos) eol = data.size();
      std::string_view line = data.substr(pos, eol - pos);
      if (blank(line)) {
        if (doc_start != std::string_view::npos) add_doc(data.substr(doc_start, doc_end - doc_start), none, none, f, opt, docs, rep);
        doc_start = std::string_view::npos;
      } else {
        if (doc_start == std::string_view::npos) doc_start = pos;
        doc_end = eol;
      }
      pos = eol + 1;
    }
    if (doc_start != std::string_view::npos) add_doc(data.substr(doc_start, doc_end - doc_start), none, none, f, opt, docs, rep);
    return;
  }
  const std::string_view keys[] = {opt.jsonl_field, "source", "lang"};
  std::string values[3], err;
  bool found[3];
  uint64_t line_no = c.first_line;
  for (size_t pos = 0; pos < data.size();) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string_view::npos) eol = data.size();
    std::string_view line = data.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (blank(line)) continue;
    if (f.format == DocFormat::kLines) {
      add_doc(line, none, none, f, opt, docs, rep);
      continue;
    }
    std::string problem;
    if (!parse_json_line(line, keys, values, found, &err)) {
      problem = cat("malformed JSON line (", err, ")");
    } else if (!found[0]) {
      problem = cat("no field '", opt.jsonl_field, "' (choose another with --jsonl-field)");
    }
    if (!problem.empty()) {
      std::string msg = cat(f.path, ":", line_no, ": ", problem);
      if (opt.strict) fail(msg);
      rep->counts["malformed_lines"] += 1;
      if (warnings->size() < 5) warnings->push_back(msg + "; skipped");
      continue;
    }
    add_doc(values[0], found[1] ? values[1] : none, found[2] ? values[2] : none, f, opt, docs, rep);
  }
}

// ---- outputs ------------------------------------------------------------------------------------

std::string temp_name(const std::string& final_path) { return cat(final_path, ".tmp.", ::getpid()); }

void write_all(int fd, std::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot write ", path, ": ", std::strerror(errno));
    done += size_t(n);
  }
}

static bool our_output_name(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  if (name == "report.json" || name == "manifest.json") return true;
  if (name.find(".tmp.") != std::string::npos) return true;
  if (starts("part-") && (ends_with(name, ".jsonl") || ends_with(name, ".jsonl.zst"))) return true;
  if ((starts("train-") || starts("val-")) && ends_with(name, ".tok")) return true;
  if (name.size() > 3 && isdigit((unsigned char)name[0]) && isdigit((unsigned char)name[1]) && name[2] == '-') return true;
  if (name == ".dedup-signatures" || starts(".dedup-")) return true;
  return false;
}

static std::string canonical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return c.string();
}

static bool inside(const std::string& child, const std::string& parent) {
  return child == parent || (child.size() > parent.size() && child.compare(0, parent.size(), parent) == 0 &&
                             child[parent.size()] == '/');
}

void prepare_output_dir_paths(const std::string& dir, const std::vector<std::string>& input_paths) {
  if (dir.empty()) fail("no output folder (give --output DIR)");
  std::string out = canonical(dir);
  for (const std::string& in : input_paths) {
    std::string c = canonical(in);
    if (inside(c, out)) fail("input ", in, " is inside the output folder ", dir, "; choose another --output");
    if (is_directory(in) && inside(out, c) && !file_exists(in + "/report.json"))
      fail("output folder ", dir, " is inside the input folder ", in, "; choose another --output");
  }
  if (file_exists(dir) && !is_directory(dir)) fail("--output ", dir, " is a file, not a folder");
  if (is_directory(dir)) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (!our_output_name(name))
        fail("output folder ", dir, " holds files todae did not write (", name, "); choose an empty or new folder");
    }
    for (auto& e : fs::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (name.find(".tmp.") != std::string::npos && e.is_regular_file()) fs::remove(e.path(), ec);
    }
  }
  make_directories(dir);
}

void prepare_output_dir(const std::string& dir, const std::vector<InputFile>& inputs, const InputOptions& in) {
  std::vector<std::string> paths = in.inputs;
  for (const auto& f : inputs) paths.push_back(f.path);
  prepare_output_dir_paths(dir, paths);
}

PartWriter::PartWriter(std::string dir, bool compress, uint64_t part_bytes)
    : dir_(std::move(dir)), compress_(compress), part_bytes_(std::max<uint64_t>(part_bytes, 1)) {}

PartWriter::~PartWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_name(dir_ + "/" + names_.back()).c_str());
  }
  if (zcs_) ZSTD_freeCStream(static_cast<ZSTD_CStream*>(zcs_));
}

void PartWriter::open_part() {
  std::string name = cat("part-", std::string(5 - std::min<size_t>(5, std::to_string(names_.size()).size()), '0'),
                         names_.size(), compress_ ? ".jsonl.zst" : ".jsonl");
  names_.push_back(name);
  std::string tmp = temp_name(dir_ + "/" + name);
  fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot write ", tmp, ": ", std::strerror(errno));
  in_part_ = 0;
  if (compress_) {
    if (!zcs_) zcs_ = ZSTD_createCStream();
    ZSTD_CCtx_reset(static_cast<ZSTD_CStream*>(zcs_), ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(static_cast<ZSTD_CStream*>(zcs_), ZSTD_c_compressionLevel, 3);
    zbuf_.resize(ZSTD_CStreamOutSize());
  }
}

void PartWriter::close_part() {
  if (fd_ < 0) return;
  std::string path = temp_name(dir_ + "/" + names_.back());
  if (compress_) {
    auto* z = static_cast<ZSTD_CStream*>(zcs_);
    ZSTD_inBuffer ib{nullptr, 0, 0};
    size_t rem;
    do {
      ZSTD_outBuffer ob{zbuf_.data(), zbuf_.size(), 0};
      rem = ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_end);
      if (ZSTD_isError(rem)) fail("cannot write ", path, ": zstd: ", ZSTD_getErrorName(rem));
      write_all(fd_, std::string_view(zbuf_.data(), ob.pos), path);
    } while (rem != 0);
  }
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot write ", path, ": ", std::strerror(errno));
  }
  fd_ = -1;
}

// Parts roll over at the first record end past part_bytes, so the split into parts depends only
// on the records, not on how they were batched (records end in '\n'; JSON strings never hold one).
void PartWriter::write(std::string_view records) {
  while (!records.empty()) {
    if (fd_ >= 0 && in_part_ >= part_bytes_) close_part();
    if (fd_ < 0) open_part();
    size_t n = records.size();
    if (in_part_ + n > part_bytes_) {
      size_t nl = records.find('\n', part_bytes_ - in_part_ - 1);
      n = nl == std::string_view::npos ? records.size() : nl + 1;
    }
    write_bytes(records.substr(0, n));
    records.remove_prefix(n);
  }
}

void PartWriter::write_bytes(std::string_view records) {
  std::string path = temp_name(dir_ + "/" + names_.back());
  if (compress_) {
    auto* z = static_cast<ZSTD_CStream*>(zcs_);
    ZSTD_inBuffer ib{records.data(), records.size(), 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{zbuf_.data(), zbuf_.size(), 0};
      size_t rc = ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_continue);
      if (ZSTD_isError(rc)) fail("cannot write ", path, ": zstd: ", ZSTD_getErrorName(rc));
      write_all(fd_, std::string_view(zbuf_.data(), ob.pos), path);
    }
  } else {
    write_all(fd_, records, path);
  }
  in_part_ += records.size();
  total_ += records.size();
}

std::vector<std::string> PartWriter::finish() {
  close_part();
  return names_;
}

void commit_outputs(const std::string& dir, const std::vector<std::string>& names, const std::string& commit_name,
                    std::string_view commit_json) {
  std::error_code ec;
  fs::remove(dir + "/" + commit_name, ec);
  for (const std::string& n : names) {
    std::string final_path = dir + "/" + n;
    if (::rename(temp_name(final_path).c_str(), final_path.c_str()) != 0)
      fail("cannot write ", final_path, ": ", std::strerror(errno));
  }
  // Outputs of an earlier run that this one did not rewrite (it had more parts or shards).
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    bool ours = (name.rfind("part-", 0) == 0 && (ends_with(name, ".jsonl") || ends_with(name, ".jsonl.zst"))) ||
                ((name.rfind("train-", 0) == 0 || name.rfind("val-", 0) == 0) && ends_with(name, ".tok"));
    if (ours && std::find(names.begin(), names.end(), name) == names.end()) fs::remove(e.path(), ec);
  }
  write_file_atomic(dir + "/" + commit_name, commit_json);
}

}  // namespace todae::data
