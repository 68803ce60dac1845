// Internal: the per-path kernels behind quant.h. quant.cpp validates arguments, splits work over the
// thread pool and dispatches here; quant_{scalar,avx2,avx512,avx512vnni}.cpp each fill one table
// from quant.inc (same rules as kernels.inc: see simd.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace todae::detail {

// Activations prepared for the int8 dot products of the block types: per row of `cols` (a
// multiple of 32) values, xq_row_bytes(cols) bytes laid out as
//   int8 q[cols] | float d[nb] | int32 s[nb] | per pair of blocks {int32 s[16]; float d[16]}
// with nb = cols/32 blocks, q = roundf(x/d) per block, d = max|x|/127 (kept as f32, not rounded to
// f16), s = Σq of the block (the correction term of the unsigned×signed dot instructions); the
// pairs repeat s and d of blocks 2i and 2i+1 eight times each (lanes of a 512-bit vector holding
// two blocks' dot products; a missing last block has zeros).
inline size_t xq_row_bytes(int cols) {
  const size_t nb = static_cast<size_t>(cols / 32);
  return static_cast<size_t>(cols) + nb * 8 + (nb + 1) / 2 * 128;
}

struct QuantTable {
  const char* name;
  // out[0, n) = the weights of one row (type as in quant.h: 0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0).
  void (*dequant_row)(int type, const void* in, float* out, int64_t n);
  // One row of f32 values into `type` (f16: round to nearest even; q8_0: ggml's reference rounding,
  // bit-identical to quant.cpp's scalar quantize_row). Types f32, f16, q8_0.
  void (*store_row)(int type, const float* in, void* out, int n);
  // Activation rows x[N, cols] into the layout above, `stride` bytes per row.
  void (*prep_x)(const float* x, int N, int cols, void* out, size_t stride);
  // y[n, r] (= or +=) for n < N, rows r in [r0, r1): the streaming matrix-vector products.
  // x is the f32 activations (float types), xq the prepared ones (block types).
  void (*gemv)(int type, float* y, int ldy, const float* x, const void* xq, size_t xq_stride, int N,
               const void* w, size_t row_bytes, int cols, int r0, int r1, bool accumulate);
  // Prompt processing: y[N, rows] (= or +=) x[N, cols]·Wᵀ with bf16 operands (x rounded, weights
  // dequantized into bf16 panels), vdpbf16ps; runs on the pool. Null where the path has no
  // AVX512_BF16 build; quant.cpp also checks the CPU.
  void (*gemm_bf16)(int type, float* y, const float* x, int N, const void* w, size_t row_bytes,
                    int rows, int cols, bool accumulate);
  // The same with f32 operands (f32, f16 weights). Null where the path has no AVX-512 build.
  void (*gemm_f32)(int type, float* y, const float* x, int N, const void* w, size_t row_bytes,
                   int rows, int cols, bool accumulate);
  // attention_cached (quant.h) without the checks; runs on the pool.
  void (*attention)(float* out, const float* q, int type, const uint8_t* kc, const uint8_t* vc,
                    size_t row_bytes, int pos0, int n, int H, int KVH, int D, float scale);
  // One query row against positions [0, np) of KV head g (f32 or f16 cache, group ≤ 8 query
  // heads per KV head), on the calling thread: out/q point at the group's first head.
  void (*attend_one)(float* out, const float* q, int type, const uint8_t* kc, const uint8_t* vc, size_t row_bytes,
                     int g, int np, int group, int D, float scale);
};
inline constexpr int kAttendOneMaxGroup = 8;

const QuantTable* quant_scalar();
const QuantTable* quant_avx2();
const QuantTable* quant_avx512();
const QuantTable* quant_avx512vnni();

}  // namespace todae::detail
