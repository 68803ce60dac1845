// Test helpers shared by the tensor and model tests: reading the fixtures written by
// tests/model/make_fixtures.py, and the error measures the tests state their tolerances in.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/base.h"

namespace todae::testing {

struct FxTensor {
  std::vector<int64_t> shape;
  std::vector<float> f;    // dtype f32
  std::vector<int32_t> i;  // dtype i32
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
};

// A fixture file: b"TODAEFX1", u32 count, then per tensor u32 name length, name, u32 dtype
// (0 f32, 1 i32), u32 ndim, i64 dims, data; all little-endian.
struct Fixture {
  std::map<std::string, FxTensor> t;

  explicit Fixture(const std::string& path) {
    std::string s = read_file(path);
    size_t p = 0;
    auto take = [&](void* dst, size_t n) {
      if (p + n > s.size()) fail(path, ": truncated fixture");
      std::memcpy(dst, s.data() + p, n);
      p += n;
    };
    char magic[8];
    take(magic, 8);
    if (std::memcmp(magic, "TODAEFX1", 8) != 0) fail(path, ": not a fixture file");
    uint32_t count;
    take(&count, 4);
    for (uint32_t k = 0; k < count; k++) {
      uint32_t len, dtype, ndim;
      take(&len, 4);
      std::string name(len, '\0');
      take(name.data(), len);
      take(&dtype, 4);
      take(&ndim, 4);
      FxTensor x;
      x.shape.resize(ndim);
      if (ndim) take(x.shape.data(), 8 * ndim);
      if (dtype == 0) {
        x.f.resize(x.numel());
        take(x.f.data(), 4 * x.numel());
      } else {
        x.i.resize(x.numel());
        take(x.i.data(), 4 * x.numel());
      }
      t.emplace(name, std::move(x));
    }
  }
  const FxTensor& at(const std::string& name) const {
    auto it = t.find(name);
    if (it == t.end()) fail("fixture has no tensor '", name, "'");
    return it->second;
  }
  std::vector<float> f(const std::string& name) const { return at(name).f; }
  std::vector<int32_t> i(const std::string& name) const { return at(name).i; }
  bool has(const std::string& name) const { return t.count(name) > 0; }
};

inline std::string fixture_path(const std::string& rel) {
  return std::string(TODAE_SOURCE_DIR) + "/tests/" + rel;
}

// Relative error in the max norm: max|got − want| / max|want|. Per-element relative error is
// meaningless for entries near zero; this measures the error against the tensor's scale.
inline double rel_err(const float* got, const float* want, size_t n) {
  double num = 0, den = 0;
  for (size_t k = 0; k < n; k++) {
    double d = std::fabs(static_cast<double>(got[k]) - want[k]);
    if (!(d <= num)) num = d;  // also catches NaN
    den = std::max(den, std::fabs(static_cast<double>(want[k])));
  }
  return den > 0 ? num / den : num;
}
inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  return rel_err(got.data(), want.data(), std::min(got.size(), want.size()));
}

// The largest error seen per tolerance, printed when the test binary exits, so a run shows how
// much headroom each stated tolerance has.
struct WorstErrors {
  std::map<double, std::pair<double, std::string>> by_tol;
  ~WorstErrors() {
    for (auto& [tol, w] : by_tol)
      std::printf("[ max error ] tolerance %.0e: worst %.3e (%s)\n", tol, w.first, w.second.c_str());
  }
};
inline WorstErrors& worst_errors() {
  static WorstErrors w;
  return w;
}
inline void note_error(double tol, double e, const std::string& what) {
  auto& w = worst_errors().by_tol[tol];
  if (e > w.first || std::isnan(e)) w = {e, what};
}

#define EXPECT_REL(got, want, tol, what)                                              \
  do {                                                                                \
    double e_ = ::todae::testing::rel_err(got, want);                                 \
    ::todae::testing::note_error(tol, e_, what);                                           \
    EXPECT_LE(e_, tol) << (what);                                                     \
  } while (0)

}  // namespace todae::testing
