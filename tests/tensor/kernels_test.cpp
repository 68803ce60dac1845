// Every kernel's forward and backward against PyTorch (float64 reference, see
// tests/model/make_fixtures.py), on every kernel path this CPU supports; finite-difference checks;
// the paths against each other; and thread-count independence.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <tuple>

#include "tensor/fixture.h"
#include "tensor/tensor.h"

using namespace todae;
using namespace todae::testing;

namespace todae {
// test names and failure messages print the path by name
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace todae

namespace {

// Stated tolerances (max-norm relative error, see rel_err):
constexpr double kTorchTol = 1e-4;  // f32 kernels vs the float64 PyTorch reference
constexpr double kPathTol = 1e-5;   // one kernel path vs another (summation order, FMA)
constexpr double kFdTol = 2e-3;     // analytic vs central finite differences in f32

const Fixture& fx() {
  static Fixture f(fixture_path("tensor/fixtures/kernels.bin"));
  return f;
}

std::vector<float> zeros(size_t n) { return std::vector<float>(n, 0.0f); }

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

class Kernels : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { scope_ = std::make_unique<IsaScope>(GetParam()); }
  void TearDown() override { scope_.reset(); }
  std::string tag(const std::string& what) const { return what + " [" + isa_name(GetParam()) + "]"; }
  std::unique_ptr<IsaScope> scope_;
};

TEST_P(Kernels, Matmul) {
  const auto& f = fx();
  const int N = 7, C = 13, OC = 11;
  auto x = f.f("matmul.x"), w = f.f("matmul.w"), b = f.f("matmul.b"), dy = f.f("matmul.dy");
  auto y = zeros(N * OC), dx = zeros(N * C), dw = zeros(OC * C), db = zeros(OC);
  matmul_forward(y.data(), x.data(), w.data(), b.data(), N, C, OC);
  matmul_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, OC);
  EXPECT_REL(y, f.f("matmul.y"), kTorchTol, tag("matmul y"));
  EXPECT_REL(dx, f.f("matmul.dx"), kTorchTol, tag("matmul dx"));
  EXPECT_REL(dw, f.f("matmul.dw"), kTorchTol, tag("matmul dw"));
  EXPECT_REL(db, f.f("matmul.db"), kTorchTol, tag("matmul db"));
  // accumulate flags add onto what is there
  auto y2 = f.f("matmul.y");
  matmul_forward(y2.data(), x.data(), w.data(), b.data(), N, C, OC, true);
  for (auto& v : y) v *= 2;
  EXPECT_REL(y2, y, 1e-6, tag("matmul accumulate"));
}

TEST_P(Kernels, RmsNorm) {
  const auto& f = fx();
  const int N = 6, C = 37;
  auto x = f.f("rmsnorm.x"), w = f.f("rmsnorm.w"), dy = f.f("rmsnorm.dy");
  auto y = zeros(N * C), rstd = zeros(N), dw = zeros(C);
  auto dx = f.f("rmsnorm.dx");  // dinp accumulates: start from the answer, expect twice it
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
  rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
  auto want_dx = f.f("rmsnorm.dx");
  for (auto& v : want_dx) v *= 2;
  EXPECT_REL(y, f.f("rmsnorm.y"), kTorchTol, tag("rmsnorm y"));
  EXPECT_REL(dx, want_dx, kTorchTol, tag("rmsnorm dx"));
  EXPECT_REL(dw, f.f("rmsnorm.dw"), kTorchTol, tag("rmsnorm dw"));
}

TEST_P(Kernels, HeadRmsNormInsideStridedRows) {
  const auto& f = fx();
  const int N = 5, Hh = 3, D = 20, stride = Hh * D + 7;  // rows with a gap, as inside q|k|v
  auto x0 = f.f("headnorm.x"), w = f.f("headnorm.w"), dy0 = f.f("headnorm.dy");
  std::vector<float> x(N * stride, 99.0f), dy(N * stride, 99.0f);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < Hh * D; k++) {
      x[n * stride + k] = x0[n * Hh * D + k];
      dy[n * stride + k] = dy0[n * Hh * D + k];
    }
  auto y = x, rstd = zeros(N * Hh), dw = zeros(D);
  head_rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, Hh, D, stride, 1e-6f);
  auto dx = dy;  // in place
  head_rmsnorm_backward(dx.data(), dw.data(), dx.data(), x.data(), w.data(), rstd.data(), N, Hh, D, stride);
  std::vector<float> yc, dxc;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < Hh * D; k++) yc.push_back(y[n * stride + k]), dxc.push_back(dx[n * stride + k]);
  EXPECT_REL(yc, f.f("headnorm.y"), kTorchTol, tag("headnorm y"));
  EXPECT_REL(dxc, f.f("headnorm.dx"), kTorchTol, tag("headnorm dx"));
  EXPECT_REL(dw, f.f("headnorm.dw"), kTorchTol, tag("headnorm dw"));
  for (int n = 0; n < N; n++)  // the gap is untouched
    for (int k = Hh * D; k < stride; k++) {
      EXPECT_EQ(y[n * stride + k], 99.0f);
      EXPECT_EQ(dx[n * stride + k], 99.0f);
    }
}

TEST_P(Kernels, RopeEveryScaling) {
  const auto& f = fx();
  const int B = 2, T = 5, H = 3, D = 12;
  const auto pos = f.i("rope.pos");
  struct V {
    const char* name;
    double theta;
    RopeScaling sc;
    int max_pos, seq_len;
  };
  RopeScaling lin{RopeScaling::linear, 4.0}, dyn{RopeScaling::dynamic, 2.0},
      l3{RopeScaling::llama3, 8.0, 1.0, 4.0, 64};
  for (const V& v : {V{"none", 1e4, {}, 64, T}, V{"linear", 1e4, lin, 64, T}, V{"dynamic", 1e4, dyn, 16, 40},
                     V{"llama3", 5e5, l3, 64, T}}) {
    std::vector<double> inv(32);
    rope_inv_freq(inv.data(), 64, v.theta, v.sc, v.max_pos, v.seq_len);
    std::vector<float> invf(inv.begin(), inv.end());
    EXPECT_REL(invf, f.f(std::string("rope.") + v.name + ".inv_freq"), 1e-6, tag(std::string("rope inv_freq ") + v.name));
    std::vector<float> cos(T * D / 2), sin(T * D / 2);
    rope_table(cos.data(), sin.data(), T, D, v.theta, v.sc, v.max_pos, v.seq_len);
    auto x = f.f("rope.x"), dx = f.f("rope.dy");
    rope_forward(x.data(), cos.data(), sin.data(), pos.data(), B * T, H, D, H * D);
    rope_backward(dx.data(), cos.data(), sin.data(), pos.data(), B * T, H, D, H * D);
    EXPECT_REL(x, f.f(std::string("rope.") + v.name + ".y"), kTorchTol, tag(std::string("rope y ") + v.name));
    EXPECT_REL(dx, f.f(std::string("rope.") + v.name + ".dx"), kTorchTol, tag(std::string("rope dx ") + v.name));
  }
}

TEST_P(Kernels, SwiGLU) {
  const auto& f = fx();
  const int N = 7, F = 19;
  auto gu = f.f("swiglu.gu"), dy = f.f("swiglu.dy");
  auto y = zeros(N * F), dgu = zeros(N * 2 * F);
  swiglu_forward(y.data(), gu.data(), N, F);
  swiglu_backward(dgu.data(), dy.data(), gu.data(), N, F);
  EXPECT_REL(y, f.f("swiglu.y"), kTorchTol, tag("swiglu y"));
  EXPECT_REL(dgu, f.f("swiglu.dgu"), kTorchTol, tag("swiglu dgu"));
}

TEST_P(Kernels, Attention) {
  const auto& f = fx();
  for (std::string name : {"gqa", "mha"}) {
    std::string p = "attn." + name + ".";
    auto dims = f.i(p + "dims");
    const int B = dims[0], T = dims[1], H = dims[2], KVH = dims[3], D = dims[4];
    auto qkv = f.f(p + "qkv"), dy = f.f(p + "dy");
    auto y = zeros(B * T * H * D), lse = zeros(B * H * T), dqkv = std::vector<float>(qkv.size(), 7.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    attention_forward(y.data(), lse.data(), qkv.data(), B, T, H, KVH, D, scale);
    attention_backward(dqkv.data(), dy.data(), qkv.data(), y.data(), lse.data(), B, T, H, KVH, D, scale);
    EXPECT_REL(y, f.f(p + "y"), kTorchTol, tag("attention y " + name));
    EXPECT_REL(lse, f.f(p + "lse"), kTorchTol, tag("attention lse " + name));
    EXPECT_REL(dqkv, f.f(p + "dqkv"), kTorchTol, tag("attention dqkv " + name));
  }
}

TEST_P(Kernels, LmHeadCrossEntropy) {
  const auto& f = fx();
  const int N = 9, C = 10, V = 37;
  auto x = f.f("ce.x"), w = f.f("ce.w");
  auto targets = f.i("ce.targets");
  const float dloss = f.f("ce.dloss")[0];
  double want_sum = 0;
  for (float l : f.f("ce.losses")) want_sum += l;
  for (int chunk : {0, 4, 1}) {  // automatic (one chunk), several chunks, one row at a time
    auto losses = zeros(N), dx = zeros(N * C), dw = zeros(V * C);
    double sum = lm_head_cross_entropy(losses.data(), dx.data(), dw.data(), x.data(), w.data(),
                                       targets.data(), N, C, V, dloss, chunk);
    std::string t = tag("ce chunk " + std::to_string(chunk));
    EXPECT_NEAR(sum, want_sum, kTorchTol * want_sum) << t;
    EXPECT_REL(losses, f.f("ce.losses"), kTorchTol, t + " losses");
    EXPECT_REL(dx, f.f("ce.dx"), kTorchTol, t + " dx");
    EXPECT_REL(dw, f.f("ce.dw"), kTorchTol, t + " dw");
    // forward only gives the same losses
    auto l2 = zeros(N);
    double s2 = lm_head_cross_entropy(l2.data(), nullptr, nullptr, x.data(), w.data(), targets.data(), N, C, V, dloss, chunk);
    EXPECT_EQ(s2, sum);
    EXPECT_EQ(l2, losses);
  }
  auto bad = targets;
  bad[2] = V;
  EXPECT_THROW(lm_head_cross_entropy(nullptr, nullptr, nullptr, x.data(), w.data(), bad.data(), N, C, V, 1.0f), Error);
}

TEST_P(Kernels, CrossEntropyExtremeLogitsAndNaN) {
  // logits spread over ±2000: the softmax must neither overflow nor lose the target's mass;
  // a NaN anywhere must come out as a NaN loss (a diverged run must not look healthy)
  const int N = 3, C = 2, V = 40;
  std::vector<float> w(V * C);
  for (int v = 0; v < V; v++) w[v * 2] = static_cast<float>(v - 20) * 100.0f, w[v * 2 + 1] = 1.0f;
  std::vector<float> x = {1.0f, 0.5f, -1.0f, 0.0f, 0.001f, 3.0f};
  std::vector<int32_t> t = {39, 38, 5};
  std::vector<float> losses(N), dx(N * C), dw(V * C);
  lm_head_cross_entropy(losses.data(), dx.data(), dw.data(), x.data(), w.data(), t.data(), N, C, V, 1.0f);
  for (int n = 0; n < N; n++) {
    double mx = -1e300, z[V];
    for (int v = 0; v < V; v++) z[v] = static_cast<double>(x[n * 2]) * w[v * 2] + static_cast<double>(x[n * 2 + 1]) * w[v * 2 + 1], mx = std::max(mx, z[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += std::exp(z[v] - mx);
    double want = mx + std::log(sum) - z[t[n]];
    EXPECT_NEAR(losses[n], want, 1e-4 * std::max(1.0, want)) << tag("row " + std::to_string(n));
  }
  for (float g : dx) EXPECT_TRUE(std::isfinite(g));
  x[3] = std::nanf("");
  lm_head_cross_entropy(losses.data(), nullptr, nullptr, x.data(), w.data(), t.data(), N, C, V, 1.0f);
  EXPECT_TRUE(std::isnan(losses[1])) << tag("NaN row");
  EXPECT_TRUE(std::isfinite(losses[0]) && std::isfinite(losses[2]));
}

TEST_P(Kernels, Embedding) {
  const auto& f = fx();
  const int V = 11, C = 5;
  auto table = f.f("embed.table"), dy = f.f("embed.dy");
  auto tokens = f.i("embed.tokens");
  const int N = static_cast<int>(tokens.size());
  auto y = zeros(N * C), dt = zeros(V * C);
  embedding_forward(y.data(), tokens.data(), table.data(), N, C, V);
  embedding_backward(dt.data(), dy.data(), tokens.data(), N, C);
  EXPECT_REL(y, f.f("embed.y"), 0.0, tag("embedding y"));
  EXPECT_REL(dt, f.f("embed.dtable"), kTorchTol, tag("embedding dtable"));
  tokens[1] = V;
  EXPECT_THROW(embedding_forward(y.data(), tokens.data(), table.data(), N, C, V), Error);
  tokens[1] = -1;
  EXPECT_THROW(embedding_forward(y.data(), tokens.data(), table.data(), N, C, V), Error);
}

TEST_P(Kernels, AdamWMatchesTorch) {
  const auto& f = fx();
  auto p = f.f("adamw.p0"), g = f.f("adamw.g");
  const size_t n = p.size();
  auto m = zeros(n), v = zeros(n);
  AdamW opt{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
  for (int step = 1; step <= 3; step++) adamw_update(p.data(), g.data() + (step - 1) * n, m.data(), v.data(), n, opt, step);
  EXPECT_REL(p, f.f("adamw.p"), 1e-6, tag("adamw p"));
  EXPECT_REL(m, f.f("adamw.m"), 1e-6, tag("adamw m"));
  EXPECT_REL(v, f.f("adamw.v"), 1e-6, tag("adamw v"));
}

TEST_P(Kernels, Elementwise) {
  auto x = random_vec(100003, 1), y = random_vec(100003, 2);
  auto want = y;
  for (size_t i = 0; i < x.size(); i++) want[i] += x[i];
  add_inplace(y.data(), x.data(), x.size());
  EXPECT_EQ(y, want);
  double ss = 0;
  for (float v : x) ss += static_cast<double>(v) * v;
  EXPECT_NEAR(sum_squares(x.data(), x.size()), ss, 1e-6 * ss);
  scale_inplace(y.data(), 0.5f, y.size());
  for (size_t i = 0; i < 10; i++) EXPECT_EQ(y[i], want[i] * 0.5f);
}

TEST_P(Kernels, Bf16Conversion) {
  // round to nearest even, matching the scalar reference on every path, incl. ties and specials
  std::vector<float> in = random_vec(1000, 3, 10.0f);
  uint32_t specials[] = {0x3f808000u /* tie, even: down */, 0x3f818000u /* tie, odd: up */,
                         0x7f800000u /* inf */, 0xff800000u, 0x7fc00000u /* nan */, 0x00000000u, 0x80000000u,
                         0x7f7fffffu /* max: rounds to inf */};
  for (uint32_t u : specials) {
    float f;
    std::memcpy(&f, &u, 4);
    in.push_back(f);
  }
  std::vector<bf16> out(in.size());
  f32_to_bf16(out.data(), in.data(), in.size());
  for (size_t i = 0; i < in.size(); i++) EXPECT_EQ(out[i], f32_to_bf16(in[i])) << i;
  EXPECT_EQ(f32_to_bf16(bf16_to_f32(0x3f80)), 0x3f80);
  EXPECT_EQ(out[1000], 0x3f80);
  EXPECT_EQ(out[1001], 0x3f82);
  std::vector<float> back(in.size());
  bf16_to_f32(back.data(), out.data(), out.size());
  for (size_t i = 0; i < 1000; i++) EXPECT_NEAR(back[i], in[i], std::fabs(in[i]) / 256);
}

TEST_P(Kernels, GemmF32EveryLayoutOwnAndOpenBLAS) {
  // against double precision; edges everywhere (rows not a multiple of 12, columns not of 32, K
  // over one 512-deep pass), with padded leading dimensions, for our kernel and for OpenBLAS
  for (bool openblas : {false, true}) {
    set_f32_gemm_openblas(openblas);
    for (auto [M, N, K] : {std::tuple{13, 17, 70}, std::tuple{50, 70, 1100}, std::tuple{1, 33, 3}, std::tuple{37, 64, 512}}) {
      for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
          for (float beta : {0.0f, 1.0f}) {
            const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            auto A = random_vec(static_cast<size_t>(ta ? K : M) * lda, 70 + M);
            auto B = random_vec(static_cast<size_t>(tb ? N : K) * ldb, 71 + N);
            auto C = random_vec(static_cast<size_t>(M) * ldc, 72);
            std::vector<float> want(static_cast<size_t>(M) * N);
            for (int i = 0; i < M; i++)
              for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++)
                  acc += static_cast<double>(ta ? A[static_cast<size_t>(k) * lda + i] : A[static_cast<size_t>(i) * lda + k]) *
                         (tb ? B[static_cast<size_t>(j) * ldb + k] : B[static_cast<size_t>(k) * ldb + j]);
                want[static_cast<size_t>(i) * N + j] = static_cast<float>(acc + beta * C[static_cast<size_t>(i) * ldc + j]);
              }
            auto C0 = C;
            gemm_f32(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
            std::vector<float> got;
            for (int i = 0; i < M; i++) {
              for (int j = 0; j < N; j++) got.push_back(C[static_cast<size_t>(i) * ldc + j]);
              for (int j = N; j < ldc; j++) ASSERT_EQ(C[static_cast<size_t>(i) * ldc + j], C0[static_cast<size_t>(i) * ldc + j]);
            }
            EXPECT_REL(got, want, 1e-5, tag(std::string(openblas ? "openblas" : "own") + " gemm_f32 " + std::to_string(M) + "x" +
                                            std::to_string(N) + "x" + std::to_string(K) + (ta ? " ta" : "") + (tb ? " tb" : "")));
          }
    }
  }
  set_f32_gemm_openblas(false);
}

TEST_P(Kernels, GemmBf16EveryLayout) {
  // against a double-precision product of the bf16-rounded operands; sizes with edges everywhere
  // (rows not a multiple of 12, columns not of 32, odd K, K over one 384-deep pass)
  auto round = [](float x) { return bf16_to_f32(f32_to_bf16(x)); };
  for (auto [M, N, K] : {std::tuple{13, 17, 70}, std::tuple{50, 70, 801}, std::tuple{1, 33, 3}, std::tuple{7, 45, 2101}}) {
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (float beta : {0.0f, 1.0f, 0.5f}) {
          const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;  // padded rows
          auto A = random_vec(static_cast<size_t>(ta ? K : M) * lda, 60 + M);
          auto B = random_vec(static_cast<size_t>(tb ? N : K) * ldb, 61 + N);
          auto C = random_vec(static_cast<size_t>(M) * ldc, 62);
          std::vector<float> want(static_cast<size_t>(M) * N);
          double scale = 0;
          for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
              double s = 0;
              for (int k = 0; k < K; k++) {
                float a = ta ? A[static_cast<size_t>(k) * lda + i] : A[static_cast<size_t>(i) * lda + k];
                float b = tb ? B[static_cast<size_t>(j) * ldb + k] : B[static_cast<size_t>(k) * ldb + j];
                s += static_cast<double>(round(a)) * round(b);
              }
              want[static_cast<size_t>(i) * N + j] = static_cast<float>(s + beta * C[static_cast<size_t>(i) * ldc + j]);
            }
          auto C0 = C;
          gemm_bf16(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          std::vector<float> got;
          for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) got.push_back(C[static_cast<size_t>(i) * ldc + j]);
            for (int j = N; j < ldc; j++) ASSERT_EQ(C[static_cast<size_t>(i) * ldc + j], C0[static_cast<size_t>(i) * ldc + j]);  // padding untouched
          }
          EXPECT_REL(got, want, 1e-5, tag("gemm_bf16 " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + (ta ? " ta" : "") + (tb ? " tb" : "")));
          (void)scale;
        }
  }
}

// ---- finite differences -----------------------------------------------------------------------
// For a kernel y = f(x) and a random cotangent r, L = Σ r·y. The analytic directional derivative
// ⟨∇L, u⟩ (from the backward kernel) must match (L(x + εu) − L(x − εu)) / 2ε along random u.
double fd_check(const std::function<double(const std::vector<float>&)>& L, const std::vector<float>& x,
                const std::vector<float>& grad, uint32_t seed, float eps) {
  auto u = random_vec(x.size(), seed);
  auto xp = x, xm = x;
  for (size_t i = 0; i < x.size(); i++) xp[i] += eps * u[i], xm[i] -= eps * u[i];
  double fd = (L(xp) - L(xm)) / (2.0 * eps);
  double an = 0, scale = 0;
  for (size_t i = 0; i < x.size(); i++) an += static_cast<double>(grad[i]) * u[i], scale += std::fabs(grad[i] * u[i]);
  return std::fabs(fd - an) / std::max(scale, 1e-12);
}

double dotv(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST_P(Kernels, FiniteDifferences) {
  // RMSNorm
  {
    const int N = 4, C = 24;
    auto x = random_vec(N * C, 10), w = random_vec(C, 11), r = random_vec(N * C, 12);
    auto L = [&](const std::vector<float>& xx) {
      auto y = zeros(N * C), rs = zeros(N);
      rmsnorm_forward(y.data(), rs.data(), xx.data(), w.data(), N, C, 1e-5f);
      return dotv(y, r);
    };
    auto y = zeros(N * C), rs = zeros(N), dx = zeros(N * C), dw = zeros(C);
    rmsnorm_forward(y.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
    rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rs.data(), N, C);
    double e = fd_check(L, x, dx, 13, 1e-2f);
    note_error(kFdTol, e, tag("fd rmsnorm"));
    EXPECT_LE(e, kFdTol) << "rmsnorm";
  }
  // SwiGLU
  {
    const int N = 3, F = 21;
    auto gu = random_vec(N * 2 * F, 20), r = random_vec(N * F, 21);
    auto L = [&](const std::vector<float>& g) {
      auto y = zeros(N * F);
      swiglu_forward(y.data(), g.data(), N, F);
      return dotv(y, r);
    };
    auto dg = zeros(N * 2 * F);
    swiglu_backward(dg.data(), r.data(), gu.data(), N, F);
    double e = fd_check(L, gu, dg, 22, 1e-2f);
    note_error(kFdTol, e, tag("fd swiglu"));
    EXPECT_LE(e, kFdTol) << "swiglu";
  }
  // attention (GQA, several tiles)
  {
    const int B = 1, T = 67, H = 4, KVH = 2, D = 8, QKV = (H + 2 * KVH) * D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    auto qkv = random_vec(B * T * QKV, 30), r = random_vec(B * T * H * D, 31);
    auto L = [&](const std::vector<float>& q) {
      auto y = zeros(B * T * H * D), lse = zeros(B * H * T);
      attention_forward(y.data(), lse.data(), q.data(), B, T, H, KVH, D, scale);
      return dotv(y, r);
    };
    auto y = zeros(B * T * H * D), lse = zeros(B * H * T), dq = zeros(qkv.size());
    attention_forward(y.data(), lse.data(), qkv.data(), B, T, H, KVH, D, scale);
    attention_backward(dq.data(), r.data(), qkv.data(), y.data(), lse.data(), B, T, H, KVH, D, scale);
    double e = fd_check(L, qkv, dq, 32, 1e-2f);
    note_error(kFdTol, e, tag("fd attention"));
    EXPECT_LE(e, kFdTol) << "attention";
  }
  // LM head + cross-entropy, w.r.t. x
  {
    const int N = 5, C = 16, V = 29;
    auto x = random_vec(N * C, 40), w = random_vec(V * C, 41, 0.3f);
    std::vector<int32_t> t = {3, 28, 0, 11, 7};
    auto L = [&](const std::vector<float>& xx) {
      return lm_head_cross_entropy(nullptr, nullptr, nullptr, xx.data(), w.data(), t.data(), N, C, V, 1.0f);
    };
    auto dx = zeros(N * C), dw = zeros(V * C);
    lm_head_cross_entropy(nullptr, dx.data(), dw.data(), x.data(), w.data(), t.data(), N, C, V, 1.0f);
    double e = fd_check(L, x, dx, 42, 1e-2f);
    note_error(kFdTol, e, tag("fd cross-entropy"));
    EXPECT_LE(e, kFdTol) << "cross-entropy";
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, Kernels, ::testing::ValuesIn(supported_isas()),
                         [](const ::testing::TestParamInfo<Isa>& i) { return std::string(isa_name(i.param)); });

// ---- paths against each other, threads --------------------------------------------------------

// Runs every path-specific kernel on larger random inputs and returns all outputs concatenated.
// include_blas: also the LM head, whose logits come from OpenBLAS sgemm (not thread-count invariant).
std::vector<float> run_all_kernels(bool include_blas = true) {
  std::vector<float> all;
  auto push = [&](const std::vector<float>& v) { all.insert(all.end(), v.begin(), v.end()); };
  const int N = 67, C = 83, F = 45;
  auto x = random_vec(N * C, 50), w = random_vec(C, 51), dy = random_vec(N * C, 52);
  auto y = zeros(N * C), rs = zeros(N), dx = zeros(N * C), dw = zeros(C);
  rmsnorm_forward(y.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
  rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rs.data(), N, C);
  push(y), push(dx), push(dw);
  auto gu = random_vec(N * 2 * F, 53), dh = random_vec(N * F, 54), h = zeros(N * F), dgu = zeros(N * 2 * F);
  swiglu_forward(h.data(), gu.data(), N, F);
  swiglu_backward(dgu.data(), dh.data(), gu.data(), N, F);
  push(h), push(dgu);
  const int B = 2, T = 150, H = 6, KVH = 2, D = 20, QKV = (H + 2 * KVH) * D;
  auto qkv = random_vec(B * T * QKV, 55), da = random_vec(B * T * H * D, 56);
  auto a = zeros(B * T * H * D), lse = zeros(B * H * T), dqkv = zeros(qkv.size());
  attention_forward(a.data(), lse.data(), qkv.data(), B, T, H, KVH, D, 0.2236f);
  attention_backward(dqkv.data(), da.data(), qkv.data(), a.data(), lse.data(), B, T, H, KVH, D, 0.2236f);
  push(a), push(lse), push(dqkv);
  std::vector<float> cos(T * D / 2), sin(T * D / 2);
  rope_table(cos.data(), sin.data(), T, D, 1e4, {}, 4096, T);
  std::vector<int32_t> pos(B * T);
  for (int i = 0; i < B * T; i++) pos[i] = i % T;
  auto q = qkv;
  rope_forward(q.data(), cos.data(), sin.data(), pos.data(), B * T, H + KVH, D, QKV);
  push(q);
  rope_backward(q.data(), cos.data(), sin.data(), pos.data(), B * T, H + KVH, D, QKV);
  push(q);
  if (!include_blas) return all;
  const int V = 301;
  auto hw = random_vec(V * C, 57, 0.1f), ddx = zeros(N * C), ddw = zeros(V * C), losses = zeros(N);
  std::vector<int32_t> t(N);
  for (int i = 0; i < N; i++) t[i] = (i * 37) % V;
  lm_head_cross_entropy(losses.data(), ddx.data(), ddw.data(), x.data(), hw.data(), t.data(), N, C, V, 0.01f, 16);
  push(losses), push(ddx), push(ddw);
  return all;
}

TEST(KernelPaths, EveryPathAgreesWithScalar) {
  std::vector<float> ref;
  {
    IsaScope s(Isa::scalar);
    ref = run_all_kernels();
  }
  for (Isa isa : supported_isas()) {
    IsaScope s(isa);
    auto got = run_all_kernels();
    EXPECT_REL(got, ref, kPathTol, std::string("path ") + isa_name(isa) + " vs scalar");
  }
}

TEST(KernelPaths, ResultsDoNotDependOnThreadCount) {
  const int saved = get_threads();
  set_threads(1);
  auto one = run_all_kernels(false);
  set_threads(3);
  auto three = run_all_kernels(false);
  set_threads(saved);
  ASSERT_EQ(one.size(), three.size());
  for (size_t i = 0; i < one.size(); i++)
    if (one[i] != three[i]) {
      ADD_FAILURE() << "first difference at " << i << " of " << one.size() << ": " << one[i] << " vs " << three[i];
      break;
    }
}

TEST(KernelPaths, DetectionAndSelection) {
  auto isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::scalar);
  EXPECT_EQ(best_isa(), isas.back());
  EXPECT_EQ(parse_isa("avx2"), Isa::avx2);
  EXPECT_THROW(parse_isa("sse9"), Error);
  std::printf("[ cpu ] paths:");
  for (Isa i : isas) std::printf(" %s", isa_name(i));
  std::printf("; active %s; avx512_bf16 %s; threads %d\n", isa_name(active_isa()),
              cpu_features().avx512bf16 ? "yes" : "no", get_threads());
  {
    IsaScope s(Isa::scalar);
    EXPECT_EQ(active_isa(), Isa::scalar);
  }
  if (!isa_supported(Isa::avx512)) {
    EXPECT_THROW(set_isa(Isa::avx512), Error);
  }
}

TEST(Buffers, AlignedZeroedMoveOnly) {
  FloatBuffer b(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, 0u);
  for (float v : b) EXPECT_EQ(v, 0.0f);
  b[3] = 1;
  FloatBuffer c = std::move(b);
  EXPECT_EQ(b.data, nullptr);
  EXPECT_EQ(c[3], 1.0f);
  c.reserve(10);
  EXPECT_EQ(c.size, 1000u);
  c.reserve(2000);
  EXPECT_EQ(c.size, 2000u);
  EXPECT_EQ(c[3], 0.0f);
}

}  // namespace
