// Helpers shared by the formats and train tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/base.h"

namespace todae::test {

// A fresh temporary folder per test, removed at the end.
struct TmpDir {
  std::string path;
  TmpDir() {
    char tmpl[] = "/tmp/todae-ftest-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TmpDir() { std::system(("chmod -R u+w '" + path + "' 2>/dev/null; rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs a command, returns its exit status and everything it printed.
inline int run_command(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Debian's python3-torch (1.13), which the interop tests compare against; empty when missing.
inline std::string torch_python() {
  static std::string py = [] {
    std::string out;
    for (const char* cand : {"/usr/bin/python3", "python3"})
      if (run_command(std::string(cand) + " -c 'import torch'", &out) == 0) return std::string(cand);
    return std::string();
  }();
  return py;
}

// The error message of `fn`, or "" when it did not throw a todae::Error.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace todae::test
