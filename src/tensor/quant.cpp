// The dispatching half of quant.h: names, sizes, the reference (scalar, ggml-exact) conversions,
// argument checks, the choice between streaming and GEMM for matmul_w, and the split of work over
// the thread pool. The per-path kernels are in quant.inc.
#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <strings.h>

#include "base/base.h"
#include "tensor/kernels.h"
#include "tensor/quant_kernels.h"
#include "tensor/tensor.h"

namespace todae {

namespace {

constexpr size_t kQ8Bytes = 34, kQ4Bytes = 18;


const detail::QuantTable& qt() {
  switch (active_isa()) {
    case Isa::avx512:
      return cpu_features().avx512vnni ? *detail::quant_avx512vnni() : *detail::quant_avx512();
    case Isa::avx2: return *detail::quant_avx2();
    default: return *detail::quant_scalar();
  }
}

uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
uint16_t get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

const char* wtype_name(WType t) {
  switch (t) {
    case WType::F32: return "f32";
    case WType::F16: return "f16";
    case WType::BF16: return "bf16";
    case WType::Q8_0: return "q8_0";
    case WType::Q4_0: return "q4_0";
  }
  return "?";
}

bool parse_wtype(const char* name, WType* out) {
  if (!name) return false;
  for (WType t : {WType::F32, WType::F16, WType::BF16, WType::Q8_0, WType::Q4_0}) {
    if (strcasecmp(name, wtype_name(t)) == 0) {
      if (out) *out = t;
      return true;
    }
  }
  return false;
}

bool wtype_is_block(WType t) { return t == WType::Q8_0 || t == WType::Q4_0; }

size_t wtype_row_bytes(WType t, int64_t cols) {
  const size_t n = static_cast<size_t>(cols);
  switch (t) {
    case WType::F32: return 4 * n;
    case WType::F16:
    case WType::BF16: return 2 * n;
    case WType::Q8_0: return n / 32 * kQ8Bytes;
    case WType::Q4_0: return n / 32 * kQ4Bytes;
  }
  return 0;
}

// ---- f16 ----------------------------------------------------------------------------------------

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) return bitsf(fbits(static_cast<float>(m) * 5.9604644775390625e-8f) | sign);  // m·2^-24
  if (e == 31) return bitsf(sign | 0x7f800000u | (m << 13));
  return bitsf(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = fbits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to ±inf
  if (a < 0x38800000u) {
    // subnormal (or zero): adding 0.5 puts the value where one f32 ulp is 2^-24, the f16
    // subnormal step, so the addition itself rounds to nearest even
    const float t = bitsf(a) + 0.5f;
    return static_cast<uint16_t>(sign | (fbits(t) - 0x3f000000u));
  }
  a += 0xc8000fffu + ((a >> 13) & 1u);  // exponent −112, + half an f16 ulp − 1 + odd bit
  return static_cast<uint16_t>(sign | (a >> 13));
}

// ---- rows ---------------------------------------------------------------------------------------

void quantize_row(WType t, const float* x, void* out, int64_t n) {
  uint8_t* o = static_cast<uint8_t*>(out);
  if (wtype_is_block(t) && n % 32 != 0) fail("quantize_row: ", wtype_name(t), " needs a multiple of 32 values, got ", n);
  switch (t) {
    case WType::F32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case WType::F16:
      for (int64_t i = 0; i < n; i++) put16(o + 2 * i, f32_to_f16(x[i]));
      return;
    case WType::BF16:
      for (int64_t i = 0; i < n; i++) put16(o + 2 * i, f32_to_bf16(x[i]));
      return;
    case WType::Q8_0:
      // ggml quantize_row_q8_0_ref: d = max|x|/127, q = roundf(x/d) (computed as x·(1/d))
      for (int64_t b = 0; b < n / 32; b++) {
        const float* xb = x + 32 * b;
        uint8_t* blk = o + b * kQ8Bytes;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(blk, f32_to_f16(d));
        for (int j = 0; j < 32; j++) blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(xb[j] * id)));
      }
      return;
    case WType::Q4_0:
      // ggml quantize_row_q4_0_ref: the value of largest magnitude (the first, on ties) with its
      // sign is max, d = max/−8, q = min(15, (int8)(x/d + 8.5))
      for (int64_t b = 0; b < n / 32; b++) {
        const float* xb = x + 32 * b;
        uint8_t* blk = o + b * kQ4Bytes;
        float amax = 0.0f, mx = 0.0f;
        for (int j = 0; j < 32; j++) {
          if (amax < std::fabs(xb[j])) {
            amax = std::fabs(xb[j]);
            mx = xb[j];
          }
        }
        const float d = mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(blk, f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
          const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(xb[j] * id + 8.5f)));
          const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(xb[16 + j] * id + 8.5f)));
          blk[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      }
      return;
  }
}

void dequantize_row(WType t, const void* in, float* out, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(in);
  if (wtype_is_block(t) && n % 32 != 0) fail("dequantize_row: ", wtype_name(t), " needs a multiple of 32 values, got ", n);
  switch (t) {
    case WType::F32: std::memcpy(out, in, static_cast<size_t>(n) * 4); return;
    case WType::F16:
      for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32(get16(p + 2 * i));
      return;
    case WType::BF16:
      for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32(get16(p + 2 * i));
      return;
    case WType::Q8_0:
      for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t* blk = p + b * kQ8Bytes;
        const float d = f16_to_f32(get16(blk));
        for (int j = 0; j < 32; j++) out[32 * b + j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
      }
      return;
    case WType::Q4_0:
      for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t* blk = p + b * kQ4Bytes;
        const float d = f16_to_f32(get16(blk));
        for (int j = 0; j < 16; j++) {
          out[32 * b + j] = d * static_cast<float>((blk[2 + j] & 15) - 8);
          out[32 * b + 16 + j] = d * static_cast<float>((blk[2 + j] >> 4) - 8);
        }
      }
      return;
  }
}

// ---- matmul -------------------------------------------------------------------------------------

namespace {
// Rows of W per dequantized panel: about 256K floats, at least 16 rows.
int dq_panel_rows(const WMatrix& W) { return std::max(16, std::min(W.rows, (1 << 18) / std::max(1, W.cols))); }

void dq_panel(const WMatrix& W, int r0, int n, float* out) {
  for (int r = 0; r < n; r++) dequantize_row(W.type, W.row(r0 + r), out + size_t(r) * W.cols, W.cols);
}

void dq_gemm(bool bf, bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
             float beta, float* C, int ldc) {
  if (bf) gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
  else gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace

void matmul_dq_forward(float* y, const float* x, int N, const WMatrix& W, bool accumulate, bool bf) {
  if (N <= 0 || W.rows == 0) return;
  const int P = dq_panel_rows(W);
  thread_local FloatBuffer panel;
  panel.reserve(size_t(P) * W.cols);
  for (int r0 = 0; r0 < W.rows; r0 += P) {
    const int n = std::min(P, W.rows - r0);
    dq_panel(W, r0, n, panel.data);
    dq_gemm(bf, false, true, N, n, W.cols, x, W.cols, panel.data, W.cols, accumulate ? 1.0f : 0.0f, y + r0, W.rows);
  }
}

void matmul_dq_backward(float* dx, const float* dy, int N, const WMatrix& W, bool accumulate, bool bf) {
  if (N <= 0 || W.cols == 0) return;
  const int P = dq_panel_rows(W);
  thread_local FloatBuffer panel;
  panel.reserve(size_t(P) * W.cols);
  for (int r0 = 0; r0 < W.rows; r0 += P) {
    const int n = std::min(P, W.rows - r0);
    dq_panel(W, r0, n, panel.data);
    const float beta = (r0 > 0 || accumulate) ? 1.0f : 0.0f;
    dq_gemm(bf, false, false, N, W.cols, n, dy + r0, W.rows, panel.data, W.cols, beta, dx, W.cols);
  }
}

namespace {

void check_matrix(const WMatrix& W, const char* what) {
  const int t = static_cast<int>(W.type);
  if (t < 0 || t > 4) fail(what, ": unknown weight type ", t);
  if (W.rows < 0 || W.cols < 0) fail(what, ": negative shape ", W.rows, "x", W.cols);
  if (wtype_is_block(W.type) && W.cols % 32 != 0)
    fail(what, ": ", wtype_name(W.type), " needs a multiple of 32 columns, got ", W.cols);
  if (W.rows > 0 && W.row_bytes < wtype_row_bytes(W.type, W.cols))
    fail(what, ": row_bytes ", W.row_bytes, " is less than a ", wtype_name(W.type), " row of ", W.cols, " (",
         wtype_row_bytes(W.type, W.cols), ")");
  if (W.rows > 0 && W.cols > 0 && !W.data) fail(what, ": null weight data");
}

// The GEMM regime on the scalar and AVX2 paths: chunks of weight rows dequantized to f32, each
// multiplied by todae::gemm_f32 (OpenBLAS sgemm there).
void matmul_gemm_f32(float* y, const float* x, int N, const WMatrix& W, bool accumulate) {
  const detail::QuantTable& t = qt();
  const int rows = W.rows, cols = W.cols;
  if (W.type == WType::F32 && W.row_bytes % 4 == 0) {
    gemm_f32(false, true, N, rows, cols, x, cols, static_cast<const float*>(W.data), static_cast<int>(W.row_bytes / 4),
             accumulate ? 1.0f : 0.0f, y, rows);
    return;
  }
  // about 8 MB of f32 weights per chunk, whole multiples of 64 rows
  int chunk = static_cast<int>(std::max<int64_t>(64, (int64_t{2} << 20) / std::max(1, cols)));
  chunk = std::min(rows, (chunk + 63) / 64 * 64);
  float* wf = detail::thread_scratch(11, static_cast<size_t>(chunk) * cols + 16);
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int nr = std::min(chunk, rows - r0);
    const int tasks = std::min(nr, 16);
    parallel_for_each(tasks, [&](int i) {
      const int a = r0 + static_cast<int>(int64_t{nr} * i / tasks), b = r0 + static_cast<int>(int64_t{nr} * (i + 1) / tasks);
      for (int r = a; r < b; r++) t.dequant_row(static_cast<int>(W.type), W.row(r), wf + static_cast<size_t>(r - r0) * cols, cols);
    });
    gemm_f32(false, true, N, nr, cols, x, cols, wf, cols, accumulate ? 1.0f : 0.0f, y + r0, rows);
  }
}

}  // namespace

void matmul_w(float* y, const float* x, int N, const WMatrix& W, bool accumulate) {
  check_matrix(W, "matmul_w");
  if (N < 0) fail("matmul_w: negative row count ", N);
  if (N == 0 || W.rows == 0) return;
  const int rows = W.rows, cols = W.cols;
  if (cols == 0) {
    if (!accumulate) std::fill(y, y + static_cast<size_t>(N) * rows, 0.0f);
    return;
  }
  const detail::QuantTable& t = qt();
  const int type = static_cast<int>(W.type);
  if (N > matmul_stream_rows(W.type)) {
    if (W.type != WType::F32 && W.type != WType::F16 && t.gemm_bf16 && has_native_bf16()) {
      t.gemm_bf16(type, y, x, N, W.data, W.row_bytes, rows, cols, accumulate);
    } else if (t.gemm_f32) {
      t.gemm_f32(type, y, x, N, W.data, W.row_bytes, rows, cols, accumulate);
    } else {
      matmul_gemm_f32(y, x, N, W, accumulate);
    }
    return;
  }
  // Streaming: activations quantized once (block types), rows split over the pool in chunks of
  // about 32 KB of weights (at most 8 per thread), each chunk a multiple of 4 rows.
  const void* xq = nullptr;
  size_t xs = 0;
  if (wtype_is_block(W.type)) {
    xs = (detail::xq_row_bytes(cols) + 63) / 64 * 64;
    void* buf = detail::thread_scratch(11, static_cast<size_t>(N) * xs / 4 + 16);
    t.prep_x(x, N, cols, buf, xs);
    xq = buf;
  }
  const int threads = detail::pool_threads();
  const int64_t total = int64_t{rows} * static_cast<int64_t>(W.row_bytes) * ((N + 3) / 4);
  int tasks = static_cast<int>(std::min<int64_t>(int64_t{threads} * 8, std::max<int64_t>(1, total >> 15)));
  int per = (rows + tasks - 1) / tasks;
  per = (per + 3) / 4 * 4;
  tasks = (rows + per - 1) / per;
  parallel_for_each(tasks, [&](int i) {
    const int r0 = i * per, r1 = std::min(rows, r0 + per);
    t.gemv(type, y, rows, x, xq, xs, N, W.data, W.row_bytes, cols, r0, r1, accumulate);
  });
}

void matmul_w_many(const float* x, int N, std::span<const MatmulOut> outs) {
  bool streaming = N > 0;
  for (const MatmulOut& o : outs) {
    check_matrix(*o.W, "matmul_w_many");
    if (N > matmul_stream_rows(o.W->type)) streaming = false;
    if (o.W->cols != outs[0].W->cols) fail("matmul_w_many: matrices with different input widths");
    if (o.W->rows == 0 || o.W->cols == 0) streaming = false;
  }
  if (!streaming || outs.size() < 2) {
    for (const MatmulOut& o : outs) matmul_w(o.y, x, N, *o.W, o.accumulate);
    return;
  }
  // One pool job for all the matrices (decode): the same chunking as matmul_w, over the
  // concatenated rows, so a layer's q, k, v (or gate, up) cost one synchronisation, not three.
  const detail::QuantTable& t = qt();
  const int cols = outs[0].W->cols;
  const void* xq = nullptr;
  size_t xs = 0;
  for (const MatmulOut& o : outs)
    if (wtype_is_block(o.W->type) && !xq) {
      xs = (detail::xq_row_bytes(cols) + 63) / 64 * 64;
      void* buf = detail::thread_scratch(11, static_cast<size_t>(N) * xs / 4 + 16);
      t.prep_x(x, N, cols, buf, xs);
      xq = buf;
    }
  struct Chunk {
    const MatmulOut* o;
    int r0, r1;
  };
  std::vector<Chunk> chunks;
  const int threads = detail::pool_threads();
  for (const MatmulOut& o : outs) {
    const WMatrix& W = *o.W;
    const int64_t total = int64_t{W.rows} * static_cast<int64_t>(W.row_bytes) * ((N + 3) / 4);
    int tasks = static_cast<int>(std::min<int64_t>(int64_t{threads} * 8, std::max<int64_t>(1, total >> 15)));
    int per = (W.rows + tasks - 1) / tasks;
    per = (per + 3) / 4 * 4;
    for (int r = 0; r < W.rows; r += per) chunks.push_back({&o, r, std::min(W.rows, r + per)});
  }
  parallel_for_each(static_cast<int>(chunks.size()), [&](int i) {
    const Chunk& c = chunks[i];
    const WMatrix& W = *c.o->W;
    t.gemv(static_cast<int>(W.type), c.o->y, W.rows, x, xq, xs, N, W.data, W.row_bytes, cols, c.r0, c.r1,
           c.o->accumulate);
  });
}

void embed_rows(float* out, const WMatrix& W, const int32_t* tokens, int N) {
  check_matrix(W, "embed_rows");
  if (N < 0) fail("embed_rows: negative row count ", N);
  for (int n = 0; n < N; n++)
    if (tokens[n] < 0 || tokens[n] >= W.rows)
      fail("embed_rows: token id ", tokens[n], " at position ", n, " is outside the table [0, ", W.rows, ")");
  const detail::QuantTable& t = qt();
  const int tasks = std::max(1, std::min(N, static_cast<int>(int64_t{N} * W.cols / 8192)));
  parallel_for_each(tasks, [&](int i) {
    const int a = static_cast<int>(int64_t{N} * i / tasks), b = static_cast<int>(int64_t{N} * (i + 1) / tasks);
    for (int n = a; n < b; n++)
      t.dequant_row(static_cast<int>(W.type), W.row(tokens[n]), out + static_cast<size_t>(n) * W.cols, W.cols);
  });
}

// ---- KV cache -----------------------------------------------------------------------------------

namespace {
void check_kv(const KVView& kv, int kv_dim, const char* what) {
  if (kv.type != WType::F32 && kv.type != WType::F16 && kv.type != WType::Q8_0)
    fail(what, ": KV cache type ", wtype_name(kv.type), " is not supported (f32, f16 or q8_0)");
  if (kv_dim <= 0) fail(what, ": kv_dim must be positive, got ", kv_dim);
  if (kv.type == WType::Q8_0 && kv_dim % 32 != 0) fail(what, ": a q8_0 KV cache needs kv_dim % 32 == 0, got ", kv_dim);
  if (kv.row_bytes < wtype_row_bytes(kv.type, kv_dim))
    fail(what, ": row_bytes ", kv.row_bytes, " is less than one ", wtype_name(kv.type), " row of ", kv_dim);
  if (!kv.k || !kv.v) fail(what, ": null cache");
}
}  // namespace

void kv_store(const KVView& kv, int pos, const float* k, const float* v, int n, int kv_dim) {
  check_kv(kv, kv_dim, "kv_store");
  if (pos < 0 || n < 0) fail("kv_store: negative position ", pos, " or count ", n);
  const detail::QuantTable& t = qt();
  const int type = static_cast<int>(kv.type);
  const int tasks = std::max(1, std::min(n, static_cast<int>(int64_t{n} * kv_dim / 16384)));
  parallel_for_each(tasks, [&](int i) {
    const int a = static_cast<int>(int64_t{n} * i / tasks), b = static_cast<int>(int64_t{n} * (i + 1) / tasks);
    for (int r = a; r < b; r++) {
      const size_t off = static_cast<size_t>(pos + r) * kv.row_bytes;
      t.store_row(type, k + static_cast<size_t>(r) * kv_dim, kv.k + off, kv_dim);
      t.store_row(type, v + static_cast<size_t>(r) * kv_dim, kv.v + off, kv_dim);
    }
  });
}

void attention_cached(float* out, const float* q, const KVView& kv, int pos0, int n, int H, int KVH, int D,
                      float scale) {
  if (H <= 0 || KVH <= 0 || D <= 0 || H % KVH != 0)
    fail("attention_cached: bad head counts H=", H, " KVH=", KVH, " D=", D, " (H must be a multiple of KVH)");
  check_kv(kv, KVH * D, "attention_cached");
  if (pos0 < 0 || n < 0) fail("attention_cached: negative position ", pos0, " or count ", n);
  if (n == 0) return;
  if (n == 1) {  // a decode row: the direct path when it applies
    const AttentionRow row{out, q, kv, pos0};
    attention_cached_rows({&row, 1}, H, KVH, D, scale);
    return;
  }
  qt().attention(out, q, static_cast<int>(kv.type), kv.k, kv.v, kv.row_bytes, pos0, n, H, KVH, D, scale);
}

void attention_cached_rows(std::span<const AttentionRow> rows, int H, int KVH, int D, float scale) {
  if (H <= 0 || KVH <= 0 || D <= 0 || H % KVH != 0)
    fail("attention_cached_rows: bad head counts H=", H, " KVH=", KVH, " D=", D, " (H must be a multiple of KVH)");
  bool direct = H / KVH <= detail::kAttendOneMaxGroup;
  for (const AttentionRow& r : rows) {
    check_kv(r.kv, KVH * D, "attention_cached_rows");
    if (r.pos < 0) fail("attention_cached_rows: negative position ", r.pos);
    if (r.kv.type != WType::F32 && r.kv.type != WType::F16) direct = false;
  }
  const detail::QuantTable& t = qt();
  if (!direct) {  // the tiled kernel, one sequence at a time
    for (const AttentionRow& r : rows)
      t.attention(r.out, r.q, static_cast<int>(r.kv.type), r.kv.k, r.kv.v, r.kv.row_bytes, r.pos, 1, H, KVH, D, scale);
    return;
  }
  const int group = H / KVH;
  parallel_for_each(static_cast<int>(rows.size()) * KVH, [&](int task) {
    const AttentionRow& r = rows[static_cast<size_t>(task / KVH)];
    const int g = task % KVH;
    const size_t at = static_cast<size_t>(g) * group * D;
    t.attend_one(r.out + at, r.q + at, static_cast<int>(r.kv.type), r.kv.k, r.kv.v, r.kv.row_bytes, g, r.pos + 1, group,
                 D, scale);
  });
}

}  // namespace todae
