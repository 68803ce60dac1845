// Internal: the table of per-path kernels. tensor.cpp validates arguments, owns OpenBLAS and
// dispatches here; kernels_{scalar,avx2,avx512}.cpp each fill one table from kernels.inc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/parallel.h"

namespace todae::detail {

struct KernelTable {
  const char* name;
  void (*f32_to_bf16)(uint16_t* out, const float* in, size_t n);
  void (*bf16_to_f32)(float* out, const uint16_t* in, size_t n);
  void (*embedding_backward)(float* dtable, const float* dout, const int32_t* tokens, int N, int C);
  void (*rmsnorm_forward)(float* out, float* rstd, const float* inp, const float* weight, int N,
                          int C, float eps);
  void (*rmsnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp,
                           const float* weight, const float* rstd, int N, int C);
  void (*head_rmsnorm_forward)(float* out, float* rstd, const float* inp, const float* weight,
                               int N, int heads, int D, int stride, float eps);
  void (*head_rmsnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int N, int heads, int D,
                                int stride);
  // sign +1: forward rotation, -1: its transpose
  void (*rope)(float* x, const float* cos, const float* sin, const int32_t* pos, int N, int heads,
               int D, int stride, float sign);
  void (*swiglu_forward)(float* out, const float* gate_up, int N, int F);
  void (*swiglu_backward)(float* dgate_up, const float* dout, const float* gate_up, int N, int F);
  void (*attention_forward)(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH,
                            int D, float scale);
  void (*attention_backward)(float* dqkv, const float* dout, const float* qkv, const float* out,
                             const float* lse, int B, int T, int H, int KVH, int D, float scale);
  // Softmax cross-entropy over R rows of logits[R, V] (in place: becomes dlogits·dloss when grad);
  // losses[R] gets each row's loss (0 for a negative target). Returns nothing: the caller sums.
  void (*cross_entropy_rows)(float* logits, float* losses, const int32_t* targets, int R, int V,
                             float dloss, bool grad);
  void (*add_inplace)(float* y, const float* x, size_t n);
  void (*scale_inplace)(float* y, float a, size_t n);
  double (*sum_squares)(const float* x, size_t n);
  void (*adamw)(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1,
                float beta2, float eps, float wd, float bc1, float bc2_sqrt, float grad_scale);
  // C[M,N] = beta·C + op(A)·op(B), op(A)[i][k] = ta ? A[k·lda + i] : A[i·lda + k] and
  // op(B)[k][j] = tb ? B[j·ldb + k] : B[k·ldb + j]: f32 operands rounded to bf16 while packed,
  // f32 accumulation. Null on paths without AVX512_BF16 (tensor.cpp then rounds copies of the
  // operands and runs sgemm on them: the same products, summed in another order).
  void (*gemm_bf16)(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B,
                    int ldb, float beta, float* C, int ldc);
  // The same in two steps, so one op(B) (a weight) can be packed once and used for many products:
  // bf16_pack_b writes bf16_packed_size(N, K) elements; gemm_bf16_packed multiplies by them.
  size_t (*bf16_packed_size)(int N, int K);
  void (*bf16_pack_b)(bool tb, int N, int K, const float* B, int ldb, uint16_t* out);
  void (*gemm_bf16_packed)(bool ta, int M, int N, int K, const float* A, int lda,
                           const uint16_t* Bp, float beta, float* C, int ldc);
  // The same four for f32 (gemm_avx512.inc); null where OpenBLAS sgemm does the f32 products.
  void (*gemm_f32)(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B,
                   int ldb, float beta, float* C, int ldc);
  size_t (*f32_packed_size)(int N, int K);
  void (*f32_pack_b)(bool tb, int N, int K, const float* B, int ldb, float* out);
  void (*gemm_f32_packed)(bool ta, int M, int N, int K, const float* A, int lda, const float* Bp,
                          float beta, float* C, int ldc);
};

const KernelTable* kernels_scalar();
const KernelTable* kernels_avx2();
const KernelTable* kernels_avx512();
const KernelTable* kernels_avx512_bf16();  // the same, with the AVX512_BF16 conversions and dots

// Per-calling-thread scratch (64-byte aligned, grown on demand, never shrunk); `slot` lets one
// kernel hold several at once. Defined in tensor.cpp, so the kernel files instantiate nothing.
float* thread_scratch(int slot, size_t floats);

}  // namespace todae::detail
