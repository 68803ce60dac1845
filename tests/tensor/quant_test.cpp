// quant.h: ggml-exact quantization (hand-computed blocks and edge cases), f16 conversion, and the
// inference kernels (matmul_w, embed_rows, kv_store, attention_cached) against float64 references
// on every kernel path this CPU supports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tensor/quant.h"
#include "tensor/quant_kernels.h"
#include "tensor/tensor.h"

using namespace todae;

namespace todae {
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace todae

namespace {

const WType kAllTypes[] = {WType::F32, WType::F16, WType::BF16, WType::Q8_0, WType::Q4_0};

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<uint8_t> quantize(WType t, const std::vector<float>& x, int rows, int cols) {
  const size_t rb = wtype_row_bytes(t, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int r = 0; r < rows; r++) quantize_row(t, x.data() + static_cast<size_t>(r) * cols, out.data() + rb * r, cols);
  return out;
}

std::vector<float> dequantize(WType t, const std::vector<uint8_t>& q, int rows, int cols) {
  const size_t rb = wtype_row_bytes(t, cols);
  std::vector<float> out(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; r++) dequantize_row(t, q.data() + rb * r, out.data() + static_cast<size_t>(r) * cols, cols);
  return out;
}

// ---- names, sizes ---------------------------------------------------------------------------------

TEST(QuantBasics, NamesAndSizes) {
  for (WType t : kAllTypes) {
    WType back;
    ASSERT_TRUE(parse_wtype(wtype_name(t), &back));
    EXPECT_EQ(back, t);
  }
  WType t;
  EXPECT_TRUE(parse_wtype("Q4_0", &t));
  EXPECT_EQ(t, WType::Q4_0);
  EXPECT_FALSE(parse_wtype("q4_1", &t));
  EXPECT_FALSE(parse_wtype("", &t));
  EXPECT_EQ(wtype_row_bytes(WType::F32, 64), 256u);
  EXPECT_EQ(wtype_row_bytes(WType::F16, 64), 128u);
  EXPECT_EQ(wtype_row_bytes(WType::BF16, 64), 128u);
  EXPECT_EQ(wtype_row_bytes(WType::Q8_0, 64), 68u);
  EXPECT_EQ(wtype_row_bytes(WType::Q4_0, 64), 36u);
  EXPECT_TRUE(wtype_is_block(WType::Q8_0));
  EXPECT_FALSE(wtype_is_block(WType::BF16));
}

// ---- f16 ----------------------------------------------------------------------------------------

TEST(QuantF16, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);       // largest finite
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);      // just below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);       // halfway, odd mantissa: rounds up to inf
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // halfway to it: ties to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 steps: ties to even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // top subnormal tie rounds to normal
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even stays
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie, odd rounds up
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.1f, -11)), 0x3c01);  // above the tie
  const uint16_t nan = f32_to_f16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_NE(f32_to_f16(from_bits(0x7f800001u)) & 0x03ff, 0);  // a signalling NaN stays a NaN
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x83ff), -std::ldexp(1023.0f, -24));
  EXPECT_EQ(bits(f16_to_f32(0x8000)), 0x80000000u);
}

TEST(QuantF16, RoundTripAllHalves) {
  for (uint32_t h = 0; h < 65536; h++) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_EQ(f32_to_f16(f) & 0x7fff, (h | 0x200) & 0x7fff) << h;  // payload kept, quieted
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << h;
  }
}

// Against exact rounding computed in double: every float in a sweep of bit patterns.
TEST(QuantF16, RoundingMatchesDoubleReference) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; i++) {
    const float f = from_bits(rng());
    if (std::isnan(f)) continue;
    const uint16_t h = f32_to_f16(f);
    // the result must be a nearest f16, ties to even mantissa
    const double v = f, got = f16_to_f32(h);
    if (std::fabs(v) >= 65520.0) {
      ASSERT_TRUE(std::isinf(got)) << f;
      continue;
    }
    const uint16_t up = static_cast<uint16_t>(h + 1), dn = static_cast<uint16_t>(h - 1);
    const double e = std::fabs(got - v);
    if ((h & 0x7fff) != 0x7bff) {
      ASSERT_LE(e, std::fabs(f16_to_f32(up) - v)) << f;
      if (e == std::fabs(f16_to_f32(up) - v)) {
        ASSERT_EQ(h & 1, 0) << f;
      }
    }
    if ((h & 0x7fff) != 0) {
      ASSERT_LE(e, std::fabs(f16_to_f32(dn) - v)) << f;
    }
  }
}

// ---- quantization: hand-computed blocks -----------------------------------------------------------

struct Q8Block {
  uint16_t d;
  int8_t q[32];
};

Q8Block q8(const float* x) {
  uint8_t b[34];
  quantize_row(WType::Q8_0, x, b, 32);
  Q8Block r;
  std::memcpy(&r.d, b, 2);
  std::memcpy(r.q, b + 2, 32);
  return r;
}

TEST(QuantQ8, HandComputedBlock) {
  // max |x| = 127 gives d = 1 exactly, so q = roundf(x): halfway cases go away from zero
  float x[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 0.49f, -126.6f, 3};
  const int8_t want[32] = {127, 3, -3, 1, -1, 2, -2, 0, -127, 3};
  Q8Block b = q8(x);
  EXPECT_EQ(b.d, 0x3c00);
  for (int j = 0; j < 32; j++) EXPECT_EQ(b.q[j], want[j]) << j;
  // negative maximum: the same d
  x[0] = -127;
  b = q8(x);
  EXPECT_EQ(b.d, 0x3c00);
  EXPECT_EQ(b.q[0], -127);
  // a scale that f16 rounds: d stored is f16(100/127), q computed with 1/(100/127) in f32
  float y[32] = {};
  y[0] = 100;
  y[1] = -50;
  y[2] = 0.3937008f;  // 0.5 step: 0.3937·1.27 ≈ 0.5
  b = q8(y);
  EXPECT_EQ(b.d, f32_to_f16(100.0f / 127.0f));
  EXPECT_EQ(b.q[0], 127);
  EXPECT_EQ(b.q[1], static_cast<int8_t>(std::roundf(-50.0f * (1.0f / (100.0f / 127.0f)))));
  EXPECT_EQ(b.q[1], -64);  // -63.5 → away from zero
}

TEST(QuantQ8, AllZeros) {
  float x[32] = {};
  Q8Block b = q8(x);
  EXPECT_EQ(b.d, 0);
  for (int j = 0; j < 32; j++) EXPECT_EQ(b.q[j], 0);
}

std::vector<uint8_t> q4(const float* x) {
  std::vector<uint8_t> b(18);
  quantize_row(WType::Q4_0, x, b.data(), 32);
  return b;
}
int nib(const std::vector<uint8_t>& b, int j) { return j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4; }
uint16_t d16(const std::vector<uint8_t>& b) { return static_cast<uint16_t>(b[0] | b[1] << 8); }

TEST(QuantQ4, HandComputedBlock) {
  // signed max −8: d = −8/−8 = 1, q = min(15, (int8)(x + 8.5))
  float x[32] = {};
  x[0] = -8, x[1] = 7, x[2] = 7.4f, x[3] = -0.5f, x[4] = 0.49f, x[5] = 0.5f, x[6] = -7.6f;
  x[16] = 1, x[17] = -1, x[31] = 3.2f;
  auto b = q4(x);
  EXPECT_EQ(d16(b), 0x3c00);
  const int want[32] = {0, 15, 15, 8, 8, 9, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 11};
  for (int j = 0; j < 32; j++) EXPECT_EQ(nib(b, j), want[j]) << j;
  // byte layout: element j low nibble, element j+16 high nibble
  EXPECT_EQ(b[2], 0x90);  // x[0] → 0, x[16] → 9
  EXPECT_EQ(b[17], 0xb8);  // x[15] → 8, x[31] → 11
  // positive max 8: d = −1, and −8 maps to 16.5 → clamped to 15
  float y[32] = {};
  y[0] = 8, y[1] = -8, y[2] = 4;
  b = q4(y);
  EXPECT_EQ(d16(b), 0xbc00);
  EXPECT_EQ(nib(b, 0), 0);
  EXPECT_EQ(nib(b, 1), 15);
  EXPECT_EQ(nib(b, 2), 4);
  // ties in magnitude: the first one (with its sign) wins
  float z[32] = {};
  z[3] = -8, z[5] = 8;
  EXPECT_EQ(d16(q4(z)), 0x3c00);
  z[3] = 8, z[5] = -8;
  EXPECT_EQ(d16(q4(z)), 0xbc00);
}

TEST(QuantQ4, AllZeros) {
  float x[32] = {};
  auto b = q4(x);
  EXPECT_EQ(d16(b), 0x8000);  // d = 0/−8 = −0, as ggml stores it
  for (int j = 2; j < 18; j++) EXPECT_EQ(b[j], 0x88);
  float out[32];
  dequantize_row(WType::Q4_0, b.data(), out, 32);
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST(QuantRows, DequantizeKnownBlocks) {
  uint8_t b8[34] = {0x00, 0x38};  // d = 0.5
  for (int j = 0; j < 32; j++) b8[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float out[32];
  dequantize_row(WType::Q8_0, b8, out, 32);
  for (int j = 0; j < 32; j++) EXPECT_EQ(out[j], 0.5f * (j - 16));
  uint8_t b4[18] = {0x00, 0x40};  // d = 2
  for (int j = 0; j < 16; j++) b4[2 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  dequantize_row(WType::Q4_0, b4, out, 32);
  for (int j = 0; j < 16; j++) {
    EXPECT_EQ(out[j], 2.0f * (j - 8));
    EXPECT_EQ(out[16 + j], 2.0f * (7 - j));
  }
}

// Round trips within the formats' step: |x − deq(q(x))| ≤ d/2 per block (q8_0: d = max/127;
// q4_0: one step of max/8, for the clamp of the extreme opposite value), plus the f16 scale's error.
TEST(QuantRows, RoundTripErrorBounds) {
  const int n = 32 * 64;
  auto x = randn(n, 3);
  for (WType t : kAllTypes) {
    auto q = quantize(t, x, 1, n);
    auto y = dequantize(t, q, 1, n);
    for (int b = 0; b < n / 32; b++) {
      float amax = 0;
      for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[32 * b + j]));
      for (int j = 0; j < 32; j++) {
        const int i = 32 * b + j;
        double tol = 0;
        switch (t) {
          case WType::F32: tol = 0; break;
          case WType::F16: tol = std::fabs(x[i]) * std::ldexp(1.0, -11) + 1e-7; break;
          case WType::BF16: tol = std::fabs(x[i]) * std::ldexp(1.0, -8); break;
          // plus |q|·(d − f16(d)) from the f16 scale: at most 127·d·2^-11 (q8_0), 8·d·2^-11 (q4_0)
          case WType::Q8_0: tol = amax / 127.0 * (0.5 + 127 * std::ldexp(1.0, -11)) + 1e-6; break;
          case WType::Q4_0: tol = amax / 8.0 * (1.0 + 8 * std::ldexp(1.0, -11)) + 1e-6; break;
        }
        ASSERT_LE(std::fabs(y[i] - x[i]), tol) << wtype_name(t) << " at " << i;
      }
    }
  }
}

// ---- the kernels on every path ----------------------------------------------------------------------

class Quant : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { scope_ = std::make_unique<IsaScope>(GetParam()); }
  void TearDown() override { scope_.reset(); }
  std::unique_ptr<IsaScope> scope_;
};

// x quantized as matmul_w does for block types (d kept in f32), dequantized.
std::vector<float> x_as_q8(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size() / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[32 * b + j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) out[32 * b + j] = d * std::roundf(x[32 * b + j] * id);
  }
  return out;
}

TEST_P(Quant, MatmulAgainstFloat64) {
  const int shapes[][2] = {{37, 96}, {67, 64}, {5, 320}, {33, 45}};  // rows, cols (45: float types only)
  for (WType t : kAllTypes) {
    for (auto& sh : shapes) {
      const int rows = sh[0], cols = sh[1];
      if (wtype_is_block(t) && cols % 32) continue;
      auto wf = randn(static_cast<size_t>(rows) * cols, 11 + rows, 0.1f);
      auto wq = quantize(t, wf, rows, cols);
      auto wd = dequantize(t, wq, rows, cols);
      // an odd stride: rows padded by a few bytes
      const size_t rb = wtype_row_bytes(t, cols) + (t == WType::F32 ? 4 : 6);
      std::vector<uint8_t> wp(rb * rows);
      for (int r = 0; r < rows; r++) std::memcpy(wp.data() + rb * r, wq.data() + wtype_row_bytes(t, cols) * r, wtype_row_bytes(t, cols));
      WMatrix W{t, rows, cols, wp.data(), rb};
      for (int N : {1, 3, 8, 13, 17, 32, 128}) {
        auto x = randn(static_cast<size_t>(N) * cols, 100 + N);
        x[0] = 3.0f;  // a block with a larger max
        std::vector<float> y(static_cast<size_t>(N) * rows, 123.0f);
        matmul_w(y.data(), x.data(), N, W);
        const bool streaming = N <= matmul_stream_rows(t);
        std::vector<float> xq = wtype_is_block(t) ? x_as_q8(x) : x;
        double worst = 0;
        for (int n = 0; n < N; n++)
          for (int r = 0; r < rows; r++) {
            const float* xr = x.data() + static_cast<size_t>(n) * cols;
            const float* qr = xq.data() + static_cast<size_t>(n) * cols;
            const float* wr = wd.data() + static_cast<size_t>(r) * cols;
            double ref = 0, refq = 0, mag = 0, qbound = 0;
            for (int k = 0; k < cols; k++) {
              ref += double(wr[k]) * xr[k];
              refq += double(wr[k]) * qr[k];
              mag += std::fabs(double(wr[k]) * xr[k]);
            }
            for (int k = 0; k < cols; k += 32) {
              double amax = 0, wsum = 0;
              for (int j = k; j < std::min(cols, k + 32); j++) {
                amax = std::max(amax, double(std::fabs(xr[j])));
                wsum += std::fabs(wr[j]);
              }
              qbound += wsum * amax / 127.0 * 0.5;
            }
            const double got = y[static_cast<size_t>(n) * rows + r];
            // Stated tolerances: f32 arithmetic 2e-6 of Σ|w·x|; quantized x at most d/2 per
            // element (qbound), checked tightly against the quantized x when streaming; bf16
            // operands (GEMM of bf16/q8_0/q4_0 weights) 2^-8 of Σ|w·x|.
            double err, tol;
            if (wtype_is_block(t) && streaming) {
              err = std::fabs(got - refq), tol = 2e-6 * mag + 1e-6;
              ASSERT_LE(std::fabs(got - ref), qbound * 1.001 + 2e-6 * mag + 1e-6);
            } else if (t == WType::F32 || t == WType::F16 || streaming) {
              err = std::fabs(got - ref), tol = 2e-6 * mag + 1e-6;
            } else {
              err = std::fabs(got - ref), tol = std::ldexp(mag, -8) + 1e-6;
            }
            ASSERT_LE(err, tol) << wtype_name(t) << " " << rows << "x" << cols << " N=" << N << " n=" << n
                                << " r=" << r << " got " << got << " want " << ref;
            worst = std::max(worst, err / (mag + 1e-30));
          }
        // accumulate adds onto y
        std::vector<float> y2 = y;
        matmul_w(y2.data(), x.data(), N, W, true);
        for (size_t i = 0; i < y.size(); i++) ASSERT_NEAR(y2[i], 2 * y[i], 1e-5 * (std::fabs(y[i]) + 1e-3)) << i;
      }
    }
  }
}

// The int8 dot products are exact, so every path gives the same streaming results up to the f32
// summation order; the scalar path is the reference.
TEST_P(Quant, MatmulPathsAgree) {
  const int rows = 45, cols = 256, N = 5;
  auto wf = randn(static_cast<size_t>(rows) * cols, 5, 0.2f);
  auto x = randn(static_cast<size_t>(N) * cols, 6);
  for (WType t : kAllTypes) {
    auto wq = quantize(t, wf, rows, cols);
    WMatrix W{t, rows, cols, wq.data(), wtype_row_bytes(t, cols)};
    std::vector<float> y(static_cast<size_t>(N) * rows), ys(y.size());
    matmul_w(y.data(), x.data(), N, W);
    {
      IsaScope s(Isa::scalar);
      matmul_w(ys.data(), x.data(), N, W);
    }
    for (size_t i = 0; i < y.size(); i++) ASSERT_NEAR(y[i], ys[i], 1e-5 * (std::fabs(ys[i]) + 1)) << wtype_name(t) << " " << i;
  }
}

TEST_P(Quant, MatmulErrors) {
  std::vector<uint8_t> w(34 * 4);
  float x[64] = {}, y[4];
  WMatrix W{WType::Q8_0, 2, 48, w.data(), 68};
  EXPECT_THROW(matmul_w(y, x, 1, W), Error);  // 48 columns: not whole blocks
  W = {WType::Q8_0, 2, 64, w.data(), 60};
  EXPECT_THROW(matmul_w(y, x, 1, W), Error);  // row_bytes too small
  W = {WType::Q8_0, 2, 64, nullptr, 68};
  EXPECT_THROW(matmul_w(y, x, 1, W), Error);
}

TEST_P(Quant, EmbedRows) {
  const int rows = 50, cols = 96;
  auto wf = randn(static_cast<size_t>(rows) * cols, 9);
  const int32_t tokens[] = {3, 0, 49, 3, 17};
  for (WType t : kAllTypes) {
    auto wq = quantize(t, wf, rows, cols);
    auto wd = dequantize(t, wq, rows, cols);
    WMatrix W{t, rows, cols, wq.data(), wtype_row_bytes(t, cols)};
    std::vector<float> out(5 * cols);
    embed_rows(out.data(), W, tokens, 5);
    for (int n = 0; n < 5; n++)
      for (int c = 0; c < cols; c++)
        ASSERT_EQ(out[n * cols + c], wd[static_cast<size_t>(tokens[n]) * cols + c]) << wtype_name(t);
    const int32_t bad[] = {1, 50};
    EXPECT_THROW(embed_rows(out.data(), W, bad, 2), Error);
    const int32_t neg[] = {-1};
    EXPECT_THROW(embed_rows(out.data(), W, neg, 1), Error);
  }
}

// kv_store writes exactly what quantize_row writes (f16: round to nearest even; q8_0: ggml's
// reference rounding), on every path.
TEST_P(Quant, KvStoreMatchesQuantizeRow) {
  const int kv_dim = 160, n = 7;
  auto k = randn(static_cast<size_t>(n) * kv_dim, 21);
  auto v = randn(static_cast<size_t>(n) * kv_dim, 22, 3.0f);
  k[5] = 1e-7f, k[6] = 70000.0f, k[7] = -0.0f, v[40] = 2.5f;  // a subnormal half, an overflow
  for (WType t : {WType::F32, WType::F16, WType::Q8_0}) {
    const size_t rb = wtype_row_bytes(t, kv_dim) + 2;
    std::vector<uint8_t> kc(rb * 10, 0xee), vc(rb * 10, 0xee);
    KVView kv{t, kc.data(), vc.data(), rb};
    kv_store(kv, 2, k.data(), v.data(), n, kv_dim);
    std::vector<uint8_t> want(wtype_row_bytes(t, kv_dim));
    for (int r = 0; r < n; r++) {
      quantize_row(t, k.data() + r * kv_dim, want.data(), kv_dim);
      ASSERT_EQ(std::memcmp(kc.data() + rb * (2 + r), want.data(), want.size()), 0) << wtype_name(t) << " k row " << r;
      quantize_row(t, v.data() + r * kv_dim, want.data(), kv_dim);
      ASSERT_EQ(std::memcmp(vc.data() + rb * (2 + r), want.data(), want.size()), 0) << wtype_name(t) << " v row " << r;
    }
    EXPECT_EQ(kc[0], 0xee);  // positions 0, 1 untouched
    EXPECT_EQ(kc[rb * 9], 0xee);
  }
  std::vector<uint8_t> c(64 * 18);
  EXPECT_THROW(kv_store(KVView{WType::Q4_0, c.data(), c.data(), 18 * 5}, 0, k.data(), v.data(), 1, 160), Error);
  EXPECT_THROW(kv_store(KVView{WType::Q8_0, c.data(), c.data(), 200}, 0, k.data(), v.data(), 1, 40), Error);
}

// Naive causal attention in float64 over the dequantized cache.
void attention_ref(std::vector<double>& out, const std::vector<float>& q, const std::vector<float>& K,
                   const std::vector<float>& V, int pos0, int n, int H, int KVH, int D, float scale) {
  const int kv_dim = KVH * D, group = H / KVH;
  out.assign(static_cast<size_t>(n) * H * D, 0.0);
  for (int i = 0; i < n; i++)
    for (int h = 0; h < H; h++) {
      const int g = h / group, P = pos0 + i + 1;
      std::vector<double> s(P);
      double mx = -1e300;
      for (int p = 0; p < P; p++) {
        double d = 0;
        for (int e = 0; e < D; e++) d += double(q[(static_cast<size_t>(i) * H + h) * D + e]) * K[static_cast<size_t>(p) * kv_dim + g * D + e];
        s[p] = d * scale;
        mx = std::max(mx, s[p]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int p = 0; p < P; p++)
        for (int e = 0; e < D; e++)
          out[(static_cast<size_t>(i) * H + h) * D + e] += s[p] / sum * V[static_cast<size_t>(p) * kv_dim + g * D + e];
    }
}

// Several sequences' decode rows in one call equal attention_cached row by row (every cache type,
// grouped heads, a head width with a tail).
TEST_P(Quant, AttentionRowsEqualOneByOne) {
  struct Cfg {
    int H, KVH, D;
  };
  for (Cfg c : {Cfg{4, 2, 40}, Cfg{6, 6, 48}, Cfg{16, 1, 32}}) {
    const int kv_dim = c.KVH * c.D, P = 90, seqs = 5;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    for (WType t : {WType::F32, WType::F16, WType::Q8_0}) {
      if (t == WType::Q8_0 && kv_dim % 32 != 0) continue;
      const size_t rb = wtype_row_bytes(t, kv_dim);
      std::vector<std::vector<uint8_t>> kc(seqs, std::vector<uint8_t>(rb * P)), vc = kc;
      std::vector<AttentionRow> rows;
      auto q = randn(static_cast<size_t>(seqs) * c.H * c.D, 60);
      std::vector<float> got(q.size(), -3.0f), want(q.size(), -5.0f);
      for (int sq = 0; sq < seqs; sq++) {
        const int pos = 7 + 17 * sq;  // different lengths
        KVView kv{t, kc[sq].data(), vc[sq].data(), rb};
        auto k = randn(static_cast<size_t>(pos + 1) * kv_dim, 61 + sq, 1.5f), v = randn(k.size(), 71 + sq);
        kv_store(kv, 0, k.data(), v.data(), pos + 1, kv_dim);
        const size_t at = static_cast<size_t>(sq) * c.H * c.D;
        rows.push_back({got.data() + at, q.data() + at, kv, pos});
        attention_cached(want.data() + at, q.data() + at, kv, pos, 1, c.H, c.KVH, c.D, scale);
      }
      attention_cached_rows(rows, c.H, c.KVH, c.D, scale);
      for (size_t i = 0; i < got.size(); i++)
        ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << wtype_name(t) << " H=" << c.H << " i=" << i;
    }
  }
  // bad calls are errors, not reads out of bounds
  std::vector<uint8_t> c(1024);
  float q[64], out[64];
  const KVView kv{WType::F32, c.data(), c.data(), 64};
  const AttentionRow bad_pos[1] = {{out, q, kv, -1}};
  EXPECT_THROW(attention_cached_rows(bad_pos, 4, 2, 8, 1.0f), Error);
  const AttentionRow ok[1] = {{out, q, kv, 0}};
  EXPECT_THROW(attention_cached_rows(ok, 3, 2, 8, 1.0f), Error);  // 3 heads over 2 KV heads
  const AttentionRow short_rows[1] = {{out, q, KVView{WType::F32, c.data(), c.data(), 32}, 0}};  // rows < kv_dim
  EXPECT_THROW(attention_cached_rows(short_rows, 4, 2, 8, 1.0f), Error);
}

TEST_P(Quant, AttentionCachedAgainstFloat64) {
  struct Cfg {
    int H, KVH, D;
  };
  // D = 40: a q8_0 head that does not start on a block boundary
  for (Cfg c : {Cfg{4, 2, 32}, Cfg{8, 4, 40}, Cfg{3, 3, 64}, Cfg{8, 1, 64}}) {
    const int kv_dim = c.KVH * c.D, P = 120;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    auto kall = randn(static_cast<size_t>(P) * kv_dim, 31, 1.5f);
    auto vall = randn(static_cast<size_t>(P) * kv_dim, 32);
    for (WType t : {WType::F32, WType::F16, WType::Q8_0}) {
      const size_t rb = wtype_row_bytes(t, kv_dim);
      std::vector<uint8_t> kc(rb * P), vc(rb * P);
      KVView kv{t, kc.data(), vc.data(), rb};
      // prefill 20 (two query blocks), decode 1, a chunk of 3, then one across a 64-position tile
      const int steps[][2] = {{0, 20}, {20, 1}, {21, 3}, {24, 50}, {74, 1}, {75, 45}};
      for (auto& st : steps) {
        const int pos0 = st[0], n = st[1];
        kv_store(kv, pos0, kall.data() + static_cast<size_t>(pos0) * kv_dim, vall.data() + static_cast<size_t>(pos0) * kv_dim, n,
                 kv_dim);
        auto q = randn(static_cast<size_t>(n) * c.H * c.D, 40 + pos0);
        std::vector<float> out(q.size(), -7.0f);
        attention_cached(out.data(), q.data(), kv, pos0, n, c.H, c.KVH, c.D, scale);
        auto K = dequantize(t, kc, pos0 + n, kv_dim);
        auto V = dequantize(t, vc, pos0 + n, kv_dim);
        std::vector<double> ref;
        attention_ref(ref, q, K, V, pos0, n, c.H, c.KVH, c.D, scale);
        for (size_t i = 0; i < ref.size(); i++)
          ASSERT_NEAR(out[i], ref[i], 2e-5 * (1 + std::fabs(ref[i])))
              << wtype_name(t) << " H=" << c.H << " KVH=" << c.KVH << " D=" << c.D << " pos0=" << pos0 << " n=" << n << " i=" << i;
      }
    }
  }
  std::vector<uint8_t> c(1024);
  float q[64], out[64];
  EXPECT_THROW(attention_cached(out, q, KVView{WType::F32, c.data(), c.data(), 64}, 0, 1, 3, 2, 8, 1.0f), Error);
}

// A GEMM of the kernel table (gemm_f32 or gemm_bf16) accumulating x[M, K]·Wᵀ onto `base`,
// against the same sums in double: within 2^-8 (bf16 operands) or 2e-6 (f32) of |base| + Σ|w·x|.
void expect_gemm_near(decltype(detail::QuantTable::gemm_f32) fn, bool bf16, WType wt, const std::vector<uint8_t>& wq,
                      int R, int K, const std::vector<float>& xm, int M, float base) {
  auto wd = dequantize(wt, wq, R, K);
  std::vector<float> y(static_cast<size_t>(M) * R, base);
  fn(static_cast<int>(wt), y.data(), xm.data(), M, wq.data(), wtype_row_bytes(wt, K), R, K, true);
  for (int m = 0; m < M; m++)
    for (int r = 0; r < R; r++) {
      double want = base, mag = base;
      for (int k = 0; k < K; k++) {
        want += double(xm[static_cast<size_t>(m) * K + k]) * wd[static_cast<size_t>(r) * K + k];
        mag += std::fabs(double(xm[static_cast<size_t>(m) * K + k]) * wd[static_cast<size_t>(r) * K + k]);
      }
      ASSERT_NEAR(y[static_cast<size_t>(m) * R + r], want, bf16 ? std::ldexp(mag, -8) : 2e-6 * mag)
          << wtype_name(wt) << (bf16 ? " bf16" : " f32") << " m=" << m << " r=" << r;
    }
}

// Every build of the kernels the CPU can run, called directly: this includes builds that
// TODAE_ISA cannot pick on this machine (the AVX-512 build without VNNI when the CPU has VNNI).
TEST(QuantTables, EveryBuildAgreesWithScalar) {
  std::vector<const detail::QuantTable*> tables;
  if (isa_supported(Isa::avx2)) tables.push_back(detail::quant_avx2());
  if (isa_supported(Isa::avx512)) {
    tables.push_back(detail::quant_avx512());
    if (cpu_features().avx512vnni) tables.push_back(detail::quant_avx512vnni());
  }
  const detail::QuantTable& ref = *detail::quant_scalar();
  const int rows = 23, cols = 320, N = 6;
  auto wf = randn(static_cast<size_t>(rows) * cols, 77, 0.3f);
  auto x = randn(static_cast<size_t>(N) * cols, 78);
  x[33] = 2.5f * (200.0f / 127.0f);  // likely halfway cases for the activation rounding
  x[40] = 200.0f;
  const size_t xs = (detail::xq_row_bytes(cols) + 63) / 64 * 64;
  std::vector<uint8_t> xq_ref(xs * N), xq(xs * N);
  ref.prep_x(x.data(), N, cols, xq_ref.data(), xs);
  for (const detail::QuantTable* t : tables) {
    SCOPED_TRACE(t->name);
    t->prep_x(x.data(), N, cols, xq.data(), xs);
    for (int n = 0; n < N; n++)
      ASSERT_EQ(std::memcmp(xq.data() + xs * n, xq_ref.data() + xs * n, detail::xq_row_bytes(cols)), 0) << n;
    for (WType wt : kAllTypes) {
      auto wq = quantize(wt, wf, rows, cols);
      const size_t rb = wtype_row_bytes(wt, cols);
      const int type = static_cast<int>(wt);
      std::vector<float> d1(cols), d2(cols);
      ref.dequant_row(type, wq.data() + rb * 3, d1.data(), cols);
      t->dequant_row(type, wq.data() + rb * 3, d2.data(), cols);
      ASSERT_EQ(d1, d2) << wtype_name(wt);
      std::vector<float> y1(static_cast<size_t>(N) * rows), y2(y1.size());
      ref.gemv(type, y1.data(), rows, x.data(), xq_ref.data(), xs, N, wq.data(), rb, cols, 0, rows, false);
      t->gemv(type, y2.data(), rows, x.data(), xq.data(), xs, N, wq.data(), rb, cols, 0, rows, false);
      for (size_t i = 0; i < y1.size(); i++) ASSERT_NEAR(y2[i], y1[i], 1e-5 * (1 + std::fabs(y1[i]))) << wtype_name(wt) << " " << i;
      // the GEMMs, with 29 activation rows: three 12-row panels, the last partial; stated
      // tolerances 2^-8 (bf16 operands) and 2e-6 (f32) of Σ|w·x|
      for (int g = 0; g < 2; g++) {
        auto fn = g == 0 ? t->gemm_bf16 : t->gemm_f32;
        if (!fn || (g == 0 && !cpu_features().avx512bf16)) continue;
        const int M = 29;
        expect_gemm_near(fn, g == 0, wt, wq, rows, cols, randn(static_cast<size_t>(M) * cols, 79), M, 1.0f);
        if (HasFatalFailure()) return;
      }
    }
    // the f32 GEMM on float weights of any width: 45 columns (a partial 16-column tile) and 37
    // rows (a partial 32-row panel), against the same sums in double
    if (t->gemm_f32)
      for (WType wt : {WType::F32, WType::F16, WType::BF16}) {
        const int R = 37, K = 45, M = 14;
        auto wq = quantize(wt, randn(static_cast<size_t>(R) * K, 80, 0.3f), R, K);
        auto xm = randn(static_cast<size_t>(M) * K, 81);
        expect_gemm_near(t->gemm_f32, false, wt, wq, R, K, xm, M, 0.5f);
        // and the bf16 GEMM (K padded to 64 there) for bf16 weights
        if (wt == WType::BF16 && t->gemm_bf16 && cpu_features().avx512bf16)
          expect_gemm_near(t->gemm_bf16, true, wt, wq, R, K, xm, M, 0.5f);
        if (HasFatalFailure()) return;
      }
    for (WType wt : {WType::F16, WType::Q8_0}) {
      std::vector<uint8_t> a(wtype_row_bytes(wt, cols)), b(a.size());
      ref.store_row(static_cast<int>(wt), x.data(), a.data(), cols);
      t->store_row(static_cast<int>(wt), x.data(), b.data(), cols);
      ASSERT_EQ(a, b) << wtype_name(wt);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, Quant, ::testing::ValuesIn(supported_isas()),
                         [](const ::testing::TestParamInfo<Isa>& i) { return std::string(isa_name(i.param)); });

}  // namespace
