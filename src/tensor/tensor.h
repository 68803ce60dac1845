// todae tensor: aligned f32/bf16 buffers, CPU feature dispatch, and the kernels of a Llama-family
// transformer, each backward next to its forward (llm.c style: plain functions over raw pointers,
// shapes as arguments, row-major, no hidden allocation of activations).
//
// Conventions used by every kernel below:
//  - N is the number of token rows (batch × time), C a feature width, row-major [N, C].
//  - Linear weights use the nn.Linear / Hugging Face layout [out, in].
//  - "+=" in a comment means the kernel ACCUMULATES into that output (gradients of parameters, and
//    of activations that several paths feed, e.g. the residual stream); "=" means it overwrites.
//  - Kernels run on todae's thread pool (set_threads; see tensor.cpp for why not OpenMP).
//    Reductions are done in a fixed order that does not depend on the thread count, so our
//    kernels (our GEMMs included) give bit-identical results for 1 or N threads. Only OpenBLAS
//    sgemm — the f32 matmuls of the scalar and avx2 paths, or with TODAE_F32_GEMM=openblas — is
//    called on per-thread blocks whose last bits can depend on the thread count (never on timing:
//    the same thread count always gives the same bits).
//  - They may use per-calling-thread scratch memory (grown on demand, never shrunk).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "tensor/parallel.h"

namespace todae {

// ---- bf16 -------------------------------------------------------------------------------------
// bfloat16 stored as its 16 raw bits: the top half of an IEEE f32.
using bf16 = uint16_t;

inline float bf16_to_f32(bf16 h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest, ties to even (what PyTorch's .to(torch.bfloat16) does); NaN stays a quiet NaN.
inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16>(u >> 16);
}

// Bulk conversions (vectorised; the AVX512_BF16 path uses vcvtneps2bf16, which also rounds to
// nearest even but flushes f32 subnormals to zero — irrelevant for weights and activations).
void f32_to_bf16(bf16* out, const float* in, size_t n);
void bf16_to_f32(float* out, const bf16* in, size_t n);

// ---- aligned buffers --------------------------------------------------------------------------
// A zero-initialised, 64-byte aligned (one cache line, one AVX-512 register) array. Move-only.
void* aligned_alloc_zeroed(size_t bytes);  // fails with todae::Error when memory runs out
void aligned_free(void* p);

template <typename T>
struct Buffer {
  T* data = nullptr;
  size_t size = 0;

  Buffer() = default;
  explicit Buffer(size_t n) : data(static_cast<T*>(aligned_alloc_zeroed(n * sizeof(T)))), size(n) {}
  ~Buffer() { aligned_free(data); }
  Buffer(Buffer&& o) noexcept : data(o.data), size(o.size) { o.data = nullptr, o.size = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      aligned_free(data);
      data = o.data, size = o.size;
      o.data = nullptr, o.size = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // Reallocates (zeroed, contents lost) only when more than the current size is needed.
  void reserve(size_t n) {
    if (n > size) *this = Buffer(n);
  }
  void zero() {
    if (data) std::memset(data, 0, size * sizeof(T));
  }
  T* begin() { return data; }
  T* end() { return data + size; }
  const T* begin() const { return data; }
  const T* end() const { return data + size; }
  T& operator[](size_t i) { return data[i]; }
  const T& operator[](size_t i) const { return data[i]; }
};
using FloatBuffer = Buffer<float>;
using Bf16Buffer = Buffer<bf16>;

// ---- CPU features and kernel paths ------------------------------------------------------------
// Every kernel is compiled three times (src/tensor/kernels_*.cpp): for AVX-512 (F+BW+VL+DQ, with
// AVX512_BF16 used by the bf16 kernels when present), for AVX2+FMA, and for baseline x86-64
// ("scalar": portable C++, one float per "vector"). The best path the CPU and OS support is chosen
// at first use; the environment variable TODAE_ISA=scalar|avx2|avx512 or set_isa() forces one.
enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false;  // vdpbf16ps / vcvtneps2bf16
  bool avx512vnni = false;  // vpdpbusd on zmm/ymm (EVEX): the int8 dot products of quant.h
  bool avxvnni = false;     // vpdpbusd on ymm (VEX encoding, AVX-VNNI)
  bool os_avx = false, os_avx512 = false;  // the OS saves the YMM / ZMM state (XGETBV)
};
const CpuFeatures& cpu_features();
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();  // ascending: scalar first
Isa best_isa();
Isa active_isa();
void set_isa(Isa isa);  // fails if the CPU lacks it
const char* isa_name(Isa isa);
Isa parse_isa(std::string_view name);  // "scalar" | "avx2" | "avx512", else todae::Error
// True when the active path has native bf16 dot products (AVX512_BF16).
bool has_native_bf16();

// Switches the kernel path for a scope (tests run every path): restores the previous one on exit.
struct IsaScope {
  explicit IsaScope(Isa isa) : saved(active_isa()) { set_isa(isa); }
  ~IsaScope() { set_isa(saved); }
  Isa saved;
};

// ---- threads ----------------------------------------------------------------------------------
// Sets the size of the kernels' thread pool (the calling thread plus n-1 workers, which spin ~50 µs
// after a job, then sleep). OpenBLAS is kept single-threaded and called per block from the pool.
// Defaults to todae::default_threads() (TODAE_THREADS or the hardware concurrency). Call it while
// no kernel is running.
void set_threads(int n);
int get_threads();

// parallel_for_each(n, f): tensor/parallel.h.

// ---- matmul (nn.Linear) -----------------------------------------------------------------------
// out[N,OC] = inp[N,C] · weight[OC,C]ᵀ (+ bias[OC]); if accumulate, out += instead. bias may be null.
// bf16: operands rounded to bf16, f32 accumulation (see gemm_bf16).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int C, int OC, bool accumulate = false, bool bf16 = false);
// dinp[N,C] (= or += per accumulate_dinp) dout·weight; dweight[OC,C] += doutᵀ·inp; dbias += Σ dout.
// Any output may be null to skip it.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, bool accumulate_dinp = false,
                     bool bf16 = false);

// C[M,N] = beta·C + op(A)·op(B) in f32, row-major, op = transpose when ta / tb (op(A) is M×K,
// op(B) K×N). Our AVX-512 kernel on the avx512 path (OpenBLAS 0.3.21 runs AVX2 code on AMD Zen,
// half the f32 rate of a core with full-width AVX-512 units), OpenBLAS sgemm on the others.
void gemm_f32(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B,
              int ldb, float beta, float* C, int ldc);
// Sends every f32 product through OpenBLAS sgemm (true), or back to the default (false). The
// environment variable TODAE_F32_GEMM=openblas|own sets it at start-up.
void set_f32_gemm_openblas(bool on);

// C[M,N] = beta·C + op(A)·op(B), row-major, op = transpose when ta / tb (op(A) is M×K, op(B) K×N),
// with the f32 operands rounded to bf16 (nearest even) and products accumulated in f32: the matmul
// of mixed-precision training. AVX512_BF16 (vdpbf16ps, twice the f32 FMA rate) when the CPU has
// it; elsewhere rounded copies of the operands through sgemm (same products, other summation
// order).
void gemm_bf16(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc);

// ---- embedding --------------------------------------------------------------------------------
// out[N,C] = table[tokens[n]]; a token outside [0, V) is a todae::Error.
void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C, int V);
// dtable[tokens[n]] += dout[n]
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C);

// ---- RMSNorm ----------------------------------------------------------------------------------
// out = inp / sqrt(mean(inp²) + eps) * weight, per row; rstd[N] saved for the backward pass.
// out may alias inp.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps);
// dinp[N,C] += ∂/∂inp; dweight[C] += ∂/∂weight.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);
// The same norm over `heads` vectors of length D per row, each row `stride` floats apart (Qwen3's
// per-head QK-norm applied inside the fused q|k|v rows). rstd[N*heads]. In place allowed.
void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N,
                          int heads, int D, int stride, float eps);
// dinp = ∂/∂inp (OVERWRITES; dinp may alias dout); dweight[D] += ∂/∂weight.
void head_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                           const float* weight, const float* rstd, int N, int heads, int D,
                           int stride);

// ---- RoPE -------------------------------------------------------------------------------------
// Rotary position embedding, Hugging Face "rotate_half" convention: dimension i of a head pairs
// with i + D/2, rotated by angle pos·inv_freq[i].
struct RopeScaling {
  enum Kind { none, linear, dynamic, llama3 } kind = none;
  double factor = 1.0;
  // llama3 only (Llama 3.1+): frequency band edges, as in its config.json
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};
// inv_freq[D/2] for a head size D. `seq_len` matters only for dynamic NTK scaling, which raises
// theta once a sequence is longer than max_position_embeddings (as HF's dynamic rotary embedding).
void rope_inv_freq(double* inv_freq, int D, double theta, const RopeScaling& scaling,
                   int max_position_embeddings, int seq_len);
// cos/sin tables [n_pos, D/2] for positions 0..n_pos-1 (computed in double, stored as f32).
void rope_table(float* cos, float* sin, int n_pos, int D, double theta, const RopeScaling& scaling,
                int max_position_embeddings, int seq_len);
// Rotates `heads` heads of size D in each of N rows (rows `stride` floats apart) in place, at
// positions pos[n] (indices into the tables).
void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int N,
                  int heads, int D, int stride);
// The transpose (inverse) rotation applied to the gradient, in place.
void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int N,
                   int heads, int D, int stride);

// ---- SwiGLU -----------------------------------------------------------------------------------
// gate_up[N, 2F] holds [gate | up] per row (one fused matmul); out[N,F] = silu(gate) · up.
void swiglu_forward(float* out, const float* gate_up, int N, int F);
// dgate_up[N, 2F] = ∂/∂gate_up (overwrites).
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int F);

// ---- causal self-attention --------------------------------------------------------------------
// qkv[B*T, (H + 2·KVH)·D]: per row, H query heads, then KVH key heads, then KVH value heads
// (grouped-query attention: query head h reads key/value head h / (H/KVH)).
// out[B*T, H·D] = softmax(q·kᵀ·scale + causal mask)·v, computed in tiles with an online softmax:
// no T×T matrix is ever stored. lse[B, H, T] keeps each row's log-sum-exp for the backward pass.
void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH,
                       int D, float scale);
// dqkv[B*T, (H + 2·KVH)·D] = ∂/∂qkv (overwrites), recomputing the probabilities tile by tile
// (FlashAttention-2 style) from q, k, v, out and lse.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int B, int T, int H, int KVH, int D, float scale);

// ---- LM head fused with cross-entropy ---------------------------------------------------------
// For x[N,C] (final normed hidden states), weight[V,C] and targets[N] (a negative target is
// ignored), computes logits = x·weightᵀ in chunks of rows, so the N×V logits never exist at once.
// Returns Σ loss over the non-ignored rows (in double). losses[N], if non-null, gets each row's
// loss (0 for ignored rows). If dx is non-null, also the backward pass of Σ loss · dloss:
// dx[N,C] = ∂/∂x (overwrites), dweight[V,C] += ∂/∂weight (skipped if null).
// chunk_rows: rows per chunk, 0 = automatic (about 32 MB of logits at a time). bf16: the three
// matmuls with bf16 operands (the softmax stays f32).
double lm_head_cross_entropy(float* losses, float* dx, float* dweight, const float* x,
                             const float* weight, const int32_t* targets, int N, int C, int V,
                             float dloss, int chunk_rows = 0, bool bf16 = false);
// logits[N,V] = x·weightᵀ (for inference; call with the rows you need).
void lm_head_logits(float* logits, const float* x, const float* weight, int N, int C, int V,
                    bool bf16 = false);

// ---- elementwise and optimiser ----------------------------------------------------------------
void add_inplace(float* y, const float* x, size_t n);  // y += x
void scale_inplace(float* y, float a, size_t n);      // y *= a
// Σ x² in double, summed in fixed-size blocks (same result for any thread count).
double sum_squares(const float* x, size_t n);

// One AdamW step exactly as torch.optim.AdamW (decoupled weight decay), on n elements:
//   p -= lr·wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps),   with g = grad · grad_scale.
struct AdamW {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};
void adamw_update(float* param, const float* grad, float* m, float* v, size_t n, const AdamW& opt,
                  int step, float grad_scale = 1.0f, float weight_decay_override = -1.0f);

}  // namespace todae
