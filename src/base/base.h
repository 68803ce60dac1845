// todae base: errors, files, progress, threads. Everything above depends on this module only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace todae {

// Every user-facing failure is a todae::Error with a one-line, human-readable message that names
// the file or field at fault. The CLI prints it and exits non-zero; nothing aborts.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

// Text from a file, safe to quote in a one-line message: control bytes, quotes, backslashes and
// bytes that are not valid UTF-8 become \xNN; cut after max_bytes (the length is then said).
std::string printable(std::string_view s, size_t max_bytes = 200);
// Standard base64 (RFC 4648, with padding): data: URIs of embedded PNGs, OpenAI's base64 embeddings.
std::string base64_encode(std::string_view bytes);
// Runs `gnuplot SCRIPT` without a shell: -1 when it cannot start (*err says why), else its exit
// status with *err its stderr. src/base/gnuplot.cpp.
int run_gnuplot(const std::string& script, std::string* err);
// A string literal of gnuplot's single-quoted kind (' doubled).
std::string gnuplot_quote(const std::string& s);

// ---- files ------------------------------------------------------------------------------------
std::string read_file(const std::string& path);
// Writes to a temporary file beside `path`, fsyncs it and renames it over `path`, so a crash
// leaves either the old file or the new one, never a half-written one.
void write_file_atomic(const std::string& path, std::string_view data);
// The same for files written piece by piece (model files): writes go to PATH.tmp.PID (or to PATH
// itself when not atomic); commit() fsyncs, renames over PATH and fsyncs the folder. Any failure,
// or destruction without commit(), removes the partial file; errors name PATH and the OS reason.
struct OutputFile {
  OutputFile(const std::string& path, bool atomic = true);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  void write(const void* data, size_t n);
  void zeros(uint64_t n);
  void commit();

  std::string path, tmp;
  int fd = -1;

 private:
  [[noreturn]] void die(int e);
};
bool is_directory(const std::string& path);
bool file_exists(const std::string& path);
uint64_t file_size(const std::string& path);
void make_directories(const std::string& path);
// Expands directories (recursively, sorted) into regular files; plain files are kept as given.
std::vector<std::string> list_input_files(const std::vector<std::string>& paths);

// Read-only memory map of a whole file (empty files give size 0 and data nullptr).
struct MappedFile {
  const char* data = nullptr;
  size_t size = 0;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view view() const { return {data, size}; }
};

// ---- progress ---------------------------------------------------------------------------------
// One live line on stderr: label, percent, bytes done, MB/s and ETA. Silent when stderr is not a
// terminal unless forced, so logs and CI output stay clean.
struct Progress {
  Progress(std::string label, uint64_t total, std::string unit = "B");
  ~Progress();
  void add(uint64_t n);  // thread-safe
  void set(uint64_t done);
  void finish();
  std::string label;
  uint64_t total;
  std::string unit;
  struct State;
  State* state;
};
void set_progress_enabled(bool enabled);

// ---- threads ----------------------------------------------------------------------------------
int default_threads();  // TODAE_THREADS, else the hardware concurrency
// Runs fn(i) for i in [0, n) on up to `threads` threads; exceptions are rethrown on the caller.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

}  // namespace todae
