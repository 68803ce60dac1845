// todae tensor, inference weights: matrices stored as f32, f16, bf16 or the GGUF block types Q8_0
// and Q4_0 (byte-for-byte the layouts GGUF files use, so a mapped .gguf is used without copies),
// and the kernels inference needs on them: y = x·Wᵀ for a few rows (decode, memory-bound) or many
// (prompt processing, compute-bound), embedding lookup, and attention over a KV cache.
//
// Block layouts (32 weights per block, as ggml defines them):
//   Q8_0: { f16 d; int8 q[32]; }          34 bytes, w = d·q
//   Q4_0: { f16 d; uint8 q[16]; }         18 bytes, w = d·(nibble − 8); byte j holds weight j in
//                                          its low nibble and weight j+16 in its high nibble
// Every kernel exists for the scalar, AVX2 and AVX-512 paths (VNNI used when present), picked at
// run time like the rest of todae_tensor; results agree across paths within float rounding (the
// int8 dot products themselves are exact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace todae {

enum class WType : uint8_t { F32 = 0, F16 = 1, BF16 = 2, Q8_0 = 3, Q4_0 = 4 };
inline constexpr int kQuantBlock = 32;

const char* wtype_name(WType t);  // "f32" "f16" "bf16" "q8_0" "q4_0"
// Parses those names (case-insensitive); returns false otherwise.
bool parse_wtype(const char* name, WType* out);
// Bytes of one row of `cols` weights. Block types need cols % 32 == 0 (checked by callers).
size_t wtype_row_bytes(WType t, int64_t cols);
bool wtype_is_block(WType t);

// ---- conversions (n a multiple of 32 for the block types) --------------------------------------
// Quantization rounds exactly as ggml's reference quantize_row_q8_0 / q4_0 do, so a file we
// quantize is bit-identical to llama-quantize's from the same f32 weights.
void quantize_row(WType t, const float* x, void* out, int64_t n);
void dequantize_row(WType t, const void* in, float* out, int64_t n);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even

// A weight matrix [rows = out features, cols = in features], rows contiguous, `row_bytes` apart.
struct WMatrix {
  WType type = WType::F32;
  int rows = 0, cols = 0;
  const void* data = nullptr;
  size_t row_bytes = 0;
  const uint8_t* row(int r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes; }
};

// y[N, W.rows] = x[N, W.cols] · Wᵀ (y overwritten; if accumulate, y +=). Runs on the thread pool.
// For block types x is quantized to Q8_0 per row first (as llama.cpp does), then int8 dot products;
// for f16/bf16 the weights are widened in registers. Large N uses a blocked GEMM that reads each
// weight tile once per row block (prompt processing); small N streams the weights once.
//
// Numerics: N <= matmul_stream_rows(type) streams the weights: block types get x quantized to Q8_0 per
// block of 32 (d = max|x|/127 kept in f32, q = roundf(x/d)) and exact int8 dot products, so the
// only error beyond f32 rounding is that of x's quantization (at most d/2 per element); f32, f16
// and bf16 weights are widened exactly and multiplied in f32. Larger N (prompt processing): f32 and
// f16 weights go through the f32 GEMM (exact weights); bf16, q8_0 and q4_0 weights, on a CPU with
// AVX512_BF16, through a bf16 GEMM (x and the dequantized weights rounded to bf16, f32 sums: a
// relative error per product under 2^-8, below that of x's Q8_0 quantization), elsewhere through
// the f32 GEMM on dequantized weights.
void matmul_w(float* y, const float* x, int N, const WMatrix& W, bool accumulate = false);
inline constexpr int kMatmulStreamRows = 8;
// f32/f16/bf16 weights stream for up to this many rows (8 activation rows per pass over the
// weights on AVX-512): batches of a few dozen decoding sequences (a server's step) cost a couple of
// passes over the weights instead of converting every weight into a GEMM panel.
inline constexpr int kMatmulStreamRowsFloat = 32;
inline int matmul_stream_rows(WType t) {
  return t == WType::F32 || t == WType::F16 || t == WType::BF16 ? kMatmulStreamRowsFloat : kMatmulStreamRows;
}

// Several matrices of the same input width applied to the same x (a layer's q, k, v; gate, up):
// outs[i].y[N, W.rows] = x·Wᵢᵀ. For decode-sized N one pool job serves them all.
struct MatmulOut {
  float* y;
  const WMatrix* W;
  bool accumulate = false;
};
void matmul_w_many(const float* x, int N, std::span<const MatmulOut> outs);

// Training over a frozen base in any type (QLoRA): the products of matmul_forward and of the dinp
// half of matmul_backward on the dequantized weights, exactly (x is not quantized): W is widened
// to f32 one panel of rows at a time (at most ~1 MB, never the whole matrix) and multiplied with
// the f32 GEMM (bf16: the bf16 GEMM).
//   matmul_dq_forward:  y[N, W.rows] (= or +=) x[N, W.cols]·Wᵀ
//   matmul_dq_backward: dx[N, W.cols] (= or +=) dy[N, W.rows]·W
void matmul_dq_forward(float* y, const float* x, int N, const WMatrix& W, bool accumulate = false, bool bf16 = false);
void matmul_dq_backward(float* dx, const float* dy, int N, const WMatrix& W, bool accumulate = false,
                        bool bf16 = false);

// lm_head_cross_entropy (tensor.h) with the head weight [V = W.rows, C = W.cols] in any type,
// widened panel by panel as matmul_dq_*; no weight gradient (a frozen base).
double lm_head_cross_entropy_dq(float* losses, float* dx, const float* x, const WMatrix& W,
                                const int32_t* targets, int N, float dloss, bool bf16 = false);

// out[N, W.cols] = the rows W[tokens[n]] as f32; a token outside [0, W.rows) is a todae::Error.
void embed_rows(float* out, const WMatrix& W, const int32_t* tokens, int N);

// ---- attention over a KV cache ------------------------------------------------------------------
// K and V caches of one layer and one sequence: row p holds position p's keys (or values) for all
// KVH heads, kv_dim = KVH·D elements in `type` (F32, F16 or Q8_0; Q8_0 needs kv_dim % 32 == 0),
// `row_bytes` apart.
struct KVView {
  WType type = WType::F32;
  uint8_t* k = nullptr;
  uint8_t* v = nullptr;
  size_t row_bytes = 0;
};
// Stores n rows of f32 keys and values (k[n, kv_dim], v[n, kv_dim]) at positions pos..pos+n-1.
void kv_store(const KVView& kv, int pos, const float* k, const float* v, int n, int kv_dim);
// Causal attention of n new query rows q[n, H·D] (the rows at positions pos0..pos0+n-1, already
// rotated) over cache positions 0..pos0+i for row i: out[n, H·D]. Grouped-query: head h reads KV
// head h / (H/KVH). Online softmax, no n×P matrix stored; the thread pool splits heads and rows.
void attention_cached(float* out, const float* q, const KVView& kv, int pos0, int n, int H,
                      int KVH, int D, float scale);
// One query row per sequence (a decode step of several sequences): the same as attention_cached
// with n = 1 for each, as one job over the thread pool (one per sequence cost a pool round trip
// each, more than the attention of a short sequence).
struct AttentionRow {
  float* out;
  const float* q;
  KVView kv;
  int pos;  // the query's position: it sees [0, pos]
};
void attention_cached_rows(std::span<const AttentionRow> rows, int H, int KVH, int D, float scale);

}  // namespace todae
