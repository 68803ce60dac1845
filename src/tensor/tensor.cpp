// The dispatching half of todae_tensor: CPU detection, the path table, threads, scratch memory,
// argument checks, and everything that goes through OpenBLAS (which does its own CPU dispatch).
#include "tensor/tensor.h"

#include <cblas.h>
#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "tensor/kernels.h"
#include "tensor/quant.h"

namespace todae {

// ---- memory -----------------------------------------------------------------------------------

void* aligned_alloc_zeroed(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("out of memory allocating ", bytes, " bytes");
  std::memset(p, 0, rounded);
  return p;
}

void aligned_free(void* p) { std::free(p); }

namespace detail {

namespace {
struct Scratch {
  static constexpr int kSlots = 12;
  float* p[kSlots] = {};
  size_t n[kSlots] = {};
  ~Scratch() {
    for (float* q : p) aligned_free(q);
  }
};
thread_local Scratch t_scratch;
}  // namespace

float* thread_scratch(int slot, size_t floats) {
  Scratch& s = t_scratch;
  if (floats > s.n[slot]) {
    // grow geometrically so a slowly rising size does not reallocate every call
    size_t want = std::max(floats, s.n[slot] + s.n[slot] / 2);
    aligned_free(s.p[slot]);
    s.p[slot] = nullptr;
    s.n[slot] = 0;
    s.p[slot] = static_cast<float*>(aligned_alloc_zeroed(want * sizeof(float)));
    s.n[slot] = want;
  }
  return s.p[slot];
}

// ---- the thread pool ---------------------------------------------------------------------------
// Why not OpenMP: libgomp's idle threads spin for ~300k iterations by default (OMP_WAIT_POLICY can
// only change that before the program starts), and on a small machine shared with anything else
// the spinning takes the cores the work needs. Measured on the 2-core machine of SHAPES.md with
// other jobs running: shape S trained at 303 tokens/s with OpenMP's default, 559 with
// OMP_WAIT_POLICY=PASSIVE. This pool spins only ~50 µs (enough to bridge the gap between two
// kernels of a step) and then sleeps on a futex (std::atomic::wait).
namespace {

thread_local bool t_in_pool = false;

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n; i++) workers_.emplace_back([this] { work(); });
  }
  ~Pool() {
    stop_.store(true);
    gen_.fetch_add(1);
    gen_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  // The caller hands out indices together with whichever workers are awake, then waits only for
  // the workers that joined the job (busy_), never for one the OS has not scheduled yet: on a
  // loaded machine a sleeping worker would otherwise stall every job by a scheduler time slice.
  // Joining is a Dekker handshake on two seq_cst atomics: a worker counts itself in busy_ and then
  // reads closed_; the caller closes the job and then reads busy_. Either the caller sees the
  // worker (and waits for it) or the worker sees the job closed (and touches nothing). A late
  // worker that finds the NEXT job open simply helps with that one, counted in its busy_.
  void run(int n, void (*fn)(void*, int), void* ctx) {
    std::lock_guard lock(mu_);  // one job at a time (callers on other threads wait)
    fn_ = fn, ctx_ = ctx, count_ = n;
    next_.store(0);
    closed_.store(false);
    gen_.fetch_add(1);
    gen_.notify_all();
    t_in_pool = true;
    drain();
    t_in_pool = false;
    closed_.store(true);
    for (int spin = 0;; spin++) {
      const int b = busy_.load();
      if (b == 0) break;
      if (spin < 4096) __builtin_ia32_pause();
      else busy_.wait(b);
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  // Runs indices until none are left. A task that throws (only running out of scratch memory can)
  // stops the job; the first exception is rethrown on the calling thread once all have stopped.
  void drain() {
    for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count_;) {
      try {
        fn_(ctx_, i);
      } catch (...) {
        std::lock_guard lock(error_mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(count_);
      }
    }
  }
  void work() {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      // spin for a short while, then sleep until the generation changes
      auto t0 = std::chrono::steady_clock::now();
      uint64_t g;
      for (int spin = 0; (g = gen_.load(std::memory_order_acquire)) == seen; spin++) {
        __builtin_ia32_pause();
        if ((spin & 63) == 63 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
          gen_.wait(seen);
        }
      }
      seen = g;
      if (stop_.load()) return;
      busy_.fetch_add(1);
      if (!closed_.load()) drain();
      if (busy_.fetch_sub(1) == 1) busy_.notify_one();
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> next_{0}, busy_{0};
  std::atomic<bool> closed_{true};
  std::atomic<bool> stop_{false};
  void (*fn_)(void*, int) = nullptr;
  void* ctx_ = nullptr;
  int count_ = 0;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;
std::atomic<Pool*> g_pool_ptr{nullptr};

}  // namespace

void parallel_run(int n, void (*fn)(void*, int), void* ctx) {
  Pool* p = g_pool_ptr.load(std::memory_order_acquire);
  if (n <= 0) return;
  if (!p || p->size() <= 1 || n == 1 || t_in_pool) {
    for (int i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  p->run(n, fn, ctx);
}

int pool_threads() {
  Pool* p = g_pool_ptr.load(std::memory_order_acquire);
  return p ? p->size() : 1;
}

}  // namespace detail

// ---- CPU features -----------------------------------------------------------------------------

namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  uint64_t xcr0 = 0;
  if (osxsave) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  f.os_avx = avx && (xcr0 & 0x6) == 0x6;         // XMM and YMM state
  f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
    __cpuid_count(7, 1, a, b, c, d);
    f.avxvnni = a & (1u << 4);
    f.avx512bf16 = a & (1u << 5);
  }
  return f;
}

std::atomic<const detail::KernelTable*> g_table{nullptr};
std::atomic<bool> g_openblas_f32{false};  // TODAE_F32_GEMM=openblas: f32 products through OpenBLAS
std::atomic<int> g_isa{-1};
std::once_flag g_init;

const detail::KernelTable* table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return cpu_features().avx512bf16 ? detail::kernels_avx512_bf16() : detail::kernels_avx512();
    case Isa::avx2: return detail::kernels_avx2();
    default: return detail::kernels_scalar();
  }
}

void init_once() {
  std::call_once(g_init, [] {
    Isa isa = best_isa();
    if (const char* env = std::getenv("TODAE_ISA"); env && *env) {
      Isa want;
      try {
        want = parse_isa(env);
      } catch (const Error& e) {
        fail("TODAE_ISA: ", e.what());
      }
      if (!isa_supported(want)) fail("TODAE_ISA=", env, ": this CPU does not support it");
      isa = want;
    }
    if (const char* env = std::getenv("TODAE_F32_GEMM"); env && *env) {
      std::string_view v = env;
      if (v != "openblas" && v != "own") fail("TODAE_F32_GEMM=", v, ": expected openblas or own");
      g_openblas_f32.store(v == "openblas");
    }
    g_table.store(table_for(isa));
    g_isa.store(static_cast<int>(isa));
    // keep a thread count chosen before the first kernel ran (set_threads is public)
    bool have_pool;
    {
      std::lock_guard lock(detail::g_pool_mu);
      have_pool = detail::g_pool != nullptr;
    }
    if (!have_pool) set_threads(default_threads());
  });
}

inline const detail::KernelTable& kern() {
  const detail::KernelTable* t = g_table.load(std::memory_order_acquire);
  if (!t) {
    init_once();
    t = g_table.load();
  }
  return *t;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.os_avx && f.avx2 && f.fma;
    case Isa::avx512:
      return f.os_avx512 && f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() {
  kern();
  return static_cast<Isa>(g_isa.load());
}

void set_isa(Isa isa) {
  kern();
  if (!isa_supported(isa)) fail("kernel path ", isa_name(isa), " is not supported by this CPU");
  g_table.store(table_for(isa));
  g_isa.store(static_cast<int>(isa));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  fail("unknown kernel path '", name, "' (expected scalar, avx2 or avx512)");
}

bool has_native_bf16() { return active_isa() == Isa::avx512 && cpu_features().avx512bf16; }

// ---- threads ----------------------------------------------------------------------------------

namespace {
std::atomic<int> g_threads{0};
}

// OpenBLAS always runs single-threaded, called from inside our pool on blocks of the output (see
// gemm below). Two thread pools on the same cores — ours and OpenBLAS's pthreads, each spinning
// between calls — take the CPU from each other: measured on a 2-core machine, a tiny model's step
// went from 0.4 ms to 450 ms with both pools active.
void set_threads(int n) {
  if (n < 1) fail("thread count must be at least 1, got ", n);
  std::lock_guard lock(detail::g_pool_mu);
  openblas_set_num_threads(1);
  if (detail::g_pool && detail::g_pool->size() == n) return;
  detail::g_pool_ptr.store(nullptr);
  detail::g_pool.reset();  // joins the old workers
  detail::g_pool = std::make_unique<detail::Pool>(n);
  detail::g_pool_ptr.store(detail::g_pool.get(), std::memory_order_release);
  g_threads.store(n);
}

int get_threads() {
  kern();
  return g_threads.load();
}

// ---- bf16 -------------------------------------------------------------------------------------

void f32_to_bf16(bf16* out, const float* in, size_t n) { kern().f32_to_bf16(out, in, n); }
void bf16_to_f32(float* out, const bf16* in, size_t n) { kern().bf16_to_f32(out, in, n); }

// ---- matmul -----------------------------------------------------------------------------------

namespace {

// Row-major C[M,N] = alpha·op(A)·op(B) + beta·C, with the output split into one block per thread
// (along M or N, whichever is larger, in multiples of 16), each block a single-threaded sgemm.
// Every output element is computed by one sgemm over the full K, whatever the split.
// Our AVX-512 f32 GEMM (gemm_avx512.inc) where the path has it, unless TODAE_F32_GEMM=openblas.
const detail::KernelTable* own_f32() {
  const detail::KernelTable* t = g_table.load(std::memory_order_acquire);
  return t && t->gemm_f32 && !g_openblas_f32.load() ? t : nullptr;
}

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (auto* t = own_f32(); t && alpha == 1.0f && K > 0) return t->gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
  const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  const int nt = g_threads.load();
  const double work = static_cast<double>(M) * N * K;
  if (nt <= 1 || work < 2e6) {
    cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool split_m = M >= N;
  const int len = split_m ? M : N;
  const int parts = std::min(nt, (len + 15) / 16);
  const int chunk = ((len + parts - 1) / parts + 15) / 16 * 16;
  parallel_for_each(parts, [&](int p) {
    const int b0 = p * chunk, b1 = std::min(len, b0 + chunk);
    if (b0 >= b1) return;
    if (split_m) {
      const float* a = ta ? A + b0 : A + static_cast<size_t>(b0) * lda;
      cblas_sgemm(CblasRowMajor, TA, TB, b1 - b0, N, K, alpha, a, lda, B, ldb, beta,
                  C + static_cast<size_t>(b0) * ldc, ldc);
    } else {
      const float* b = tb ? B + static_cast<size_t>(b0) * ldb : B + b0;
      cblas_sgemm(CblasRowMajor, TA, TB, M, b1 - b0, K, alpha, A, lda, b, ldb, beta, C + b0, ldc);
    }
  });
}

}  // namespace

namespace {
void check_dims(const char* what, std::initializer_list<long> dims) {
  for (long d : dims)
    if (d < 0) fail(what, ": negative dimension");
}
}  // namespace

namespace {

// Rounds rows×cols of src (leading dim ld) to bf16 precision into dst (leading dim cols).
void round_copy(float* dst, const float* src, int rows, int cols, int ld) {
  parallel_for_each(rows, [&](int r) {
    for (int c = 0; c < cols; c++)
      dst[static_cast<size_t>(r) * cols + c] = bf16_to_f32(f32_to_bf16(src[static_cast<size_t>(r) * ld + c]));
  });
}

// f32 or bf16-operand GEMM, dispatching to the AVX512_BF16 kernel or to rounded copies + sgemm.
void gemm_p(bool bf16, bool ta, bool tb, int M, int N, int K, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (!bf16) return gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  if (K <= 0) {  // nothing to accumulate: C = beta·C
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[static_cast<size_t>(i) * ldc + j] = beta == 0 ? 0 : beta * C[static_cast<size_t>(i) * ldc + j];
    return;
  }
  if (auto native = kern().gemm_bf16) return native(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
  const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  float* a = detail::thread_scratch(6, static_cast<size_t>(ar) * ac);
  float* b = detail::thread_scratch(7, static_cast<size_t>(br) * bc);
  round_copy(a, A, ar, ac, lda);
  round_copy(b, B, br, bc, ldb);
  gemm(ta, tb, M, N, K, 1.0f, a, ac, b, bc, beta, C, ldc);
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int C, int OC, bool accumulate, bool bf16) {
  kern();
  check_dims("matmul_forward", {N, C, OC});
  if (N == 0 || OC == 0) return;
  gemm_p(bf16, false, true, N, OC, C, inp, C, weight, C, accumulate ? 1.0f : 0.0f, out, OC);
  if (bias)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) out[static_cast<size_t>(n) * OC + o] += bias[o];
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, bool accumulate_dinp, bool bf16) {
  kern();
  check_dims("matmul_backward", {N, C, OC});
  if (N == 0) return;
  if (dinp)
    gemm_p(bf16, false, false, N, C, OC, dout, OC, weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
  if (dweight)
    gemm_p(bf16, true, false, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias)
    for (int o = 0; o < OC; o++) {
      float s = 0.0f;
      for (int n = 0; n < N; n++) s += dout[static_cast<size_t>(n) * OC + o];
      dbias[o] += s;
    }
}

void gemm_f32(bool ta, bool tb, int M, int N, int K_, const float* A, int lda, const float* B,
              int ldb, float beta, float* C, int ldc) {
  kern();
  check_dims("gemm_f32", {M, N, K_});
  gemm_p(false, ta, tb, M, N, K_, A, lda, B, ldb, beta, C, ldc);
}

void set_f32_gemm_openblas(bool on) {
  kern();
  g_openblas_f32.store(on);
}

void gemm_bf16(bool ta, bool tb, int M, int N, int K_, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc) {
  kern();
  check_dims("gemm_bf16", {M, N, K_});
  gemm_p(true, ta, tb, M, N, K_, A, lda, B, ldb, beta, C, ldc);
}

// ---- embedding --------------------------------------------------------------------------------

void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C, int V) {
  kern();
  for (int n = 0; n < N; n++)
    if (tokens[n] < 0 || tokens[n] >= V)
      fail("token id ", tokens[n], " at position ", n, " is outside the vocabulary [0, ", V, ")");
  for (int n = 0; n < N; n++)
    std::memcpy(out + static_cast<size_t>(n) * C, table + static_cast<size_t>(tokens[n]) * C,
                sizeof(float) * C);
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) {
  kern().embedding_backward(dtable, dout, tokens, N, C);
}

// ---- RMSNorm ----------------------------------------------------------------------------------

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
  kern().rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
}
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  kern().rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
}
void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N,
                          int heads, int D, int stride, float eps) {
  kern().head_rmsnorm_forward(out, rstd, inp, weight, N, heads, D, stride, eps);
}
void head_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                           const float* weight, const float* rstd, int N, int heads, int D,
                           int stride) {
  kern().head_rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, heads, D, stride);
}

// ---- RoPE -------------------------------------------------------------------------------------

void rope_inv_freq(double* inv_freq, int D, double theta, const RopeScaling& sc,
                   int max_position_embeddings, int seq_len) {
  if (D < 2 || D % 2) fail("RoPE needs an even head size, got ", D);
  const int half = D / 2;
  double base = theta;
  // Hugging Face's dynamic NTK: past the trained context, raise the base so the lowest frequency
  // still fits the sequence: base·((factor·len/max) − (factor − 1))^(D/(D−2)).
  if (sc.kind == RopeScaling::dynamic && seq_len > max_position_embeddings) {
    double f = sc.factor * seq_len / max_position_embeddings - (sc.factor - 1.0);
    base = theta * std::pow(f, static_cast<double>(D) / (D - 2));
  }
  for (int i = 0; i < half; i++) inv_freq[i] = 1.0 / std::pow(base, 2.0 * i / D);
  if (sc.kind == RopeScaling::linear)
    for (int i = 0; i < half; i++) inv_freq[i] /= sc.factor;
  if (sc.kind == RopeScaling::llama3) {
    // Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between.
    const double old_len = sc.original_max_position_embeddings;
    const double low_wl = old_len / sc.low_freq_factor, high_wl = old_len / sc.high_freq_factor;
    for (int i = 0; i < half; i++) {
      const double wl = 2 * M_PI / inv_freq[i];
      if (wl > low_wl) {
        inv_freq[i] /= sc.factor;
      } else if (wl >= high_wl) {
        double s = (old_len / wl - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
        inv_freq[i] = (1 - s) * inv_freq[i] / sc.factor + s * inv_freq[i];
      }
    }
  }
}

void rope_table(float* cos, float* sin, int n_pos, int D, double theta, const RopeScaling& sc,
                int max_position_embeddings, int seq_len) {
  std::vector<double> inv(D / 2);
  rope_inv_freq(inv.data(), D, theta, sc, max_position_embeddings, seq_len);
  const int half = D / 2;
  for (int p = 0; p < n_pos; p++)
    for (int i = 0; i < half; i++) {
      double a = p * inv[i];
      cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
      sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
    }
}

void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int N,
                  int heads, int D, int stride) {
  kern().rope(x, cos, sin, pos, N, heads, D, stride, 1.0f);
}
void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int N,
                   int heads, int D, int stride) {
  kern().rope(dx, cos, sin, pos, N, heads, D, stride, -1.0f);
}

// ---- SwiGLU -----------------------------------------------------------------------------------

void swiglu_forward(float* out, const float* gate_up, int N, int F) {
  kern().swiglu_forward(out, gate_up, N, F);
}
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int F) {
  kern().swiglu_backward(dgate_up, dout, gate_up, N, F);
}

// ---- attention --------------------------------------------------------------------------------

namespace {
void check_heads(const char* what, int H, int KVH, int D) {
  if (H <= 0 || KVH <= 0 || D <= 0 || H % KVH)
    fail(what, ": ", H, " query heads must be a positive multiple of ", KVH, " key/value heads");
}
}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH,
                       int D, float scale) {
  check_heads("attention_forward", H, KVH, D);
  if (B <= 0 || T <= 0) return;
  kern().attention_forward(out, lse, qkv, B, T, H, KVH, D, scale);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int B, int T, int H, int KVH, int D, float scale) {
  check_heads("attention_backward", H, KVH, D);
  if (B <= 0 || T <= 0) return;
  kern().attention_backward(dqkv, dout, qkv, out, lse, B, T, H, KVH, D, scale);
}

// ---- LM head + cross-entropy ------------------------------------------------------------------

double lm_head_cross_entropy(float* losses, float* dx, float* dweight, const float* x,
                             const float* weight, const int32_t* targets, int N, int C, int V,
                             float dloss, int chunk_rows, bool bf16) {
  const detail::KernelTable& k = kern();
  for (int n = 0; n < N; n++)
    if (targets[n] >= V) fail("target id ", targets[n], " at row ", n, " is outside the vocabulary [0, ", V, ")");
  if (N <= 0) return 0.0;
  // Rows per chunk: about 32 MB of logits (8M floats), so the chunk stays in the last-level cache
  // region of a big machine and the sgemms still see a large M.
  int R = std::clamp<int>(static_cast<int>((size_t{1} << 23) / std::max(V, 1)), 16, N);
  if (R < N) R = R / 16 * 16;
  if (chunk_rows > 0) R = std::min(chunk_rows, N);
  float* logits = detail::thread_scratch(2, static_cast<size_t>(R) * V);
  float* row_loss = losses ? losses : detail::thread_scratch(3, static_cast<size_t>(N));
  const bool grad = dx != nullptr;
  // With native bf16 the head weight is packed once for all chunks, in both orientations (as Wᵀ
  // for the logits, as W for dx): repacking 32000×C weights for every chunk would cost more than
  // the chunk's products.
  const bool packed16 = bf16 && k.gemm_bf16_packed;
  const bool packed32 = !bf16 && own_f32() && C > 0;
  void *w_t = nullptr, *w_n = nullptr;
  if (packed16) {
    w_t = detail::thread_scratch(8, k.bf16_packed_size(V, C) / 2 + 16);
    k.bf16_pack_b(true, V, C, weight, C, static_cast<uint16_t*>(w_t));
    if (grad) {
      w_n = detail::thread_scratch(9, k.bf16_packed_size(C, V) / 2 + 16);
      k.bf16_pack_b(false, C, V, weight, C, static_cast<uint16_t*>(w_n));
    }
  } else if (packed32) {
    w_t = detail::thread_scratch(8, k.f32_packed_size(V, C) + 16);
    k.f32_pack_b(true, V, C, weight, C, static_cast<float*>(w_t));
    if (grad) {
      w_n = detail::thread_scratch(9, k.f32_packed_size(C, V) + 16);
      k.f32_pack_b(false, C, V, weight, C, static_cast<float*>(w_n));
    }
  }
  for (int r0 = 0; r0 < N; r0 += R) {
    const int rr = std::min(R, N - r0);
    const float* xr = x + static_cast<size_t>(r0) * C;
    float* dxr = grad ? dx + static_cast<size_t>(r0) * C : nullptr;
    if (packed16) k.gemm_bf16_packed(false, rr, V, C, xr, C, static_cast<uint16_t*>(w_t), 0.0f, logits, V);
    else if (packed32) k.gemm_f32_packed(false, rr, V, C, xr, C, static_cast<float*>(w_t), 0.0f, logits, V);
    else gemm_p(bf16, false, true, rr, V, C, xr, C, weight, C, 0.0f, logits, V);
    k.cross_entropy_rows(logits, row_loss + r0, targets + r0, rr, V, dloss, grad);
    if (grad) {
      if (packed16) k.gemm_bf16_packed(false, rr, C, V, logits, V, static_cast<uint16_t*>(w_n), 0.0f, dxr, C);
      else if (packed32) k.gemm_f32_packed(false, rr, C, V, logits, V, static_cast<float*>(w_n), 0.0f, dxr, C);
      else gemm_p(bf16, false, false, rr, C, V, logits, V, weight, C, 0.0f, dxr, C);
      if (dweight) gemm_p(bf16, true, false, V, C, rr, logits, V, xr, C, 1.0f, dweight, C);
    }
  }
  double sum = 0.0;
  for (int n = 0; n < N; n++) sum += row_loss[n];
  return sum;
}

double lm_head_cross_entropy_dq(float* losses, float* dx, const float* x, const WMatrix& W,
                                const int32_t* targets, int N, float dloss, bool bf16) {
  const detail::KernelTable& k = kern();
  const int C = W.cols, V = W.rows;
  for (int n = 0; n < N; n++)
    if (targets[n] >= V) fail("target id ", targets[n], " at row ", n, " is outside the vocabulary [0, ", V, ")");
  if (N <= 0) return 0.0;
  // Larger chunks than the f32 head's: each chunk dequantizes the whole head once more.
  int R = std::clamp<int>(static_cast<int>((size_t{1} << 24) / std::max(V, 1)), 16, N);
  float* logits = detail::thread_scratch(2, static_cast<size_t>(R) * V);
  float* row_loss = losses ? losses : detail::thread_scratch(3, static_cast<size_t>(N));
  for (int r0 = 0; r0 < N; r0 += R) {
    const int rr = std::min(R, N - r0);
    matmul_dq_forward(logits, x + static_cast<size_t>(r0) * C, rr, W, false, bf16);
    k.cross_entropy_rows(logits, row_loss + r0, targets + r0, rr, V, dloss, dx != nullptr);
    if (dx) matmul_dq_backward(dx + static_cast<size_t>(r0) * C, logits, rr, W, false, bf16);
  }
  double sum = 0.0;
  for (int n = 0; n < N; n++) sum += row_loss[n];
  return sum;
}

void lm_head_logits(float* logits, const float* x, const float* weight, int N, int C, int V,
                    bool bf16) {
  kern();
  if (N <= 0) return;
  gemm_p(bf16, false, true, N, V, C, x, C, weight, C, 0.0f, logits, V);
}

// ---- elementwise and optimiser ----------------------------------------------------------------

void add_inplace(float* y, const float* x, size_t n) { kern().add_inplace(y, x, n); }
void scale_inplace(float* y, float a, size_t n) { kern().scale_inplace(y, a, n); }
double sum_squares(const float* x, size_t n) { return kern().sum_squares(x, n); }

void adamw_update(float* param, const float* grad, float* m, float* v, size_t n, const AdamW& opt,
                  int step, float grad_scale, float weight_decay_override) {
  if (step < 1) fail("AdamW step must start at 1, got ", step);
  // bias corrections in double, as torch computes them (Python floats)
  const double bc1 = 1.0 - std::pow(static_cast<double>(opt.beta1), step);
  const double bc2 = 1.0 - std::pow(static_cast<double>(opt.beta2), step);
  const float wd = weight_decay_override >= 0 ? weight_decay_override : opt.weight_decay;
  kern().adamw(param, grad, m, v, n, opt.lr, opt.beta1, opt.beta2, opt.eps, wd,
            static_cast<float>(bc1), static_cast<float>(std::sqrt(bc2)), grad_scale);
}

}  // namespace todae
