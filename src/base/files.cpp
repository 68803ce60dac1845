#include "base/base.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace todae {

static std::string errno_text() { return std::strerror(errno); }

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read ", path, ": ", errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read ", path, ": ", S_ISDIR(st.st_mode) ? "is a directory" : errno_text());
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (true) {
    if (got == out.size()) out.resize(out.size() * 2 + 4096);  // files that grow or lie (/proc)
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fail("cannot read ", path, ": ", std::strerror(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  OutputFile out(path, /*atomic=*/true);
  out.write(data.data(), data.size());
  out.commit();
}

OutputFile::OutputFile(const std::string& final_path, bool atomic) : path(final_path) {
  tmp = atomic ? cat(path, ".tmp.", ::getpid()) : path;
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write ", path, ": ", errno_text());
}

OutputFile::~OutputFile() {
  if (fd >= 0) {  // not committed: leave nothing behind
    ::close(fd);
    ::unlink(tmp.c_str());
  }
}

void OutputFile::die(int e) {
  ::close(fd);
  fd = -1;
  ::unlink(tmp.c_str());
  fail("cannot write ", path, ": ", std::strerror(e));
}

void OutputFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      die(errno);
    }
    if (w == 0) die(ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void OutputFile::zeros(uint64_t n) {
  static const char z[4096] = {};
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof z));
    write(z, k);
    n -= k;
  }
}

void OutputFile::commit() {
  if (::fsync(fd) != 0) die(errno);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
  if (tmp != path && ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
  // The rename is only durable once the folder is synced.
  fs::path parent = fs::path(path).parent_path();
  std::string dir = parent.empty() ? "." : parent.string();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

uint64_t file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail("cannot read ", path, ": ", errno_text());
  return static_cast<uint64_t>(st.st_size);
}

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path)) fail("cannot create directory ", path, ": ", ec ? ec.message() : "not a directory");
}

std::vector<std::string> list_input_files(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file(ec)) found.push_back(it->path().string());
      }
      if (ec) fail("cannot list ", p, ": ", ec.message());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      out.push_back(p);
    } else {
      fail("cannot read ", p, ": No such file or directory");
    }
  }
  return out;
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read ", path, ": ", errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot read ", path, ": ", std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read ", path, ": is a directory");
  }
  size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot map ", path, ": ", std::strerror(e));
    }
    ::madvise(p, size, MADV_SEQUENTIAL);
    data = static_cast<const char*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data) ::munmap(const_cast<char*>(data), size);
}

}  // namespace todae
