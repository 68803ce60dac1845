// The avx512 path: kernels.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS avx512
#define TODAE_KERNEL_TABLE kernels_avx512
#define TODAE_KERNEL_NAME "avx512"
#include "tensor/kernels.inc"

// ---- AVX512_BF16 variants ---------------------------------------------------------------------
// Compiled for AVX512_BF16 function by function (target attribute), not for the whole file, so no
// other kernel can pick up an instruction a plain AVX-512 CPU lacks. Chosen at run time only when
// the CPU has it.
namespace todae::avx512 {
namespace {

__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) void f32_to_bf16_block(
    uint16_t* out, const float* in, size_t n) {
  for (size_t b = 0; b < n / 16; b++) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + b * 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 16), reinterpret_cast<__m256i&>(h));
  }
  for (size_t i = n / 16 * 16; i < n; i++) out[i] = to_bf16(in[i]);
}

void f32_to_bf16_native(uint16_t* out, const float* in, size_t n) {
  parallel_range(n, 1 << 15, [&](size_t i0, size_t i1) { f32_to_bf16_block(out + i0, in + i0, i1 - i0); });
}

// ---- bf16 GEMM --------------------------------------------------------------------------------
// C = beta·C + op(A)·op(B) with f32 operands rounded to bf16 while they are packed, and vdpbf16ps
// doing two multiply-adds per f32 lane (twice the f32 FMA rate). Goto/BLIS structure: K in passes
// of at most 1024; per pass op(B) is packed once for all (or ahead of time, see bf16_pack_b), then
// tasks of mc rows each pack their rows of op(A) and sweep every column panel with a 12×32 register
// tile (24 zmm accumulators).
//
// Packed B: panels of 32 columns; inside a panel k goes in pairs, pair-major: [kc/2][32][2] — one
// zmm load gives 16 pairs (b[2p][j], b[2p+1][j]). Packed A: panels of 12 rows, each row's k run
// contiguous: [12][kc] — a 32-bit broadcast gives the pair (a[i][2p], a[i][2p+1]).

constexpr int kMR = 12, kNR = 32, kKC = 1024;
#define TODAE_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq")))

struct KBlocking {
  int passes, kc_max;  // every pass but the last is kc_max deep; kc_max is even
  explicit KBlocking(int K) {
    passes = (K + kKC - 1) / kKC;
    if (passes < 1) passes = 1;
    kc_max = ((K + passes - 1) / passes + 1) / 2 * 2;
  }
};

inline __mmask16 first_n(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}

// B panel from a source with j contiguous, element (k, j) at src[k·ld + j]: rows 2p and 2p+1
// convert together and interleave into pairs.
TODAE_BF16_TARGET void pack_b_k_major(uint16_t* dst, const float* src, int ld, int j0, int nj, int k0,
                                      int kc) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int npairs = (kc + 1) / 2;
  for (int p = 0; p < npairs; p++) {
    const float* ra = src + static_cast<size_t>(k0 + 2 * p) * ld + j0;
    const bool has_b = 2 * p + 1 < kc;
    for (int x = 0; x < kNR; x += 16) {
      const __mmask16 m = first_n(nj - x);
      __m512 a = _mm512_maskz_loadu_ps(m, ra + x);
      __m512 b = has_b ? _mm512_maskz_loadu_ps(m, ra + ld + x) : _mm512_setzero_ps();
      __m512bh ab = _mm512_cvtne2ps_pbh(b, a);  // a in the low 16, b in the high 16
      __m512i v = _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i&>(ab));
      _mm512_storeu_si512(dst + static_cast<size_t>(p) * 2 * kNR + 2 * x, v);
    }
  }
}

// B panel from a source with k contiguous, element (k, j) at src[j·ld + k] (a weight used as
// op(B) = Wᵀ): each column converts 32 k at a time, its 16 pairs going to 16 pair-rows.
TODAE_BF16_TARGET void pack_b_j_major(uint16_t* dst, const float* src, int ld, int j0, int nj, int k0,
                                      int kc) {
  const int npairs = (kc + 1) / 2;
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  alignas(64) uint32_t tmp[16];
  for (int x = 0; x < kNR; x++) {
    if (x >= nj) {
      for (int p = 0; p < npairs; p++) d[static_cast<size_t>(p) * kNR + x] = 0;
      continue;
    }
    const float* r = src + static_cast<size_t>(j0 + x) * ld + k0;
    for (int k = 0; k < kc; k += 32) {
      __m512bh ab = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(first_n(kc - k - 16), r + k + 16),
                                        _mm512_maskz_loadu_ps(first_n(kc - k), r + k));
      _mm512_store_si512(tmp, reinterpret_cast<__m512i&>(ab));
      const int n = imin(16, npairs - k / 2);
      for (int i = 0; i < n; i++) d[static_cast<size_t>(k / 2 + i) * kNR + x] = tmp[i];
    }
  }
}

// A panel (12 rows × kc, rows contiguous in k) from element (i, k) at src[i·ld + k]: a straight
// conversion, since consecutive k already form the pairs.
TODAE_BF16_TARGET void pack_a_i_major(uint16_t* dst, const float* src, int ld, int i0, int ni, int k0,
                                      int kc, int kcp) {
  for (int r = 0; r < kMR; r++) {
    uint16_t* d = dst + static_cast<size_t>(r) * kcp;
    if (r >= ni) {
      for (int k = 0; k < kcp; k += 32) _mm512_mask_storeu_epi16(d + k, kcp - k >= 32 ? ~0u : (1u << (kcp - k)) - 1, _mm512_setzero_si512());
      continue;
    }
    const float* s = src + static_cast<size_t>(i0 + r) * ld + k0;
    for (int k = 0; k < kcp; k += 32) {
      __m512bh ab = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(first_n(kc - k - 16), s + k + 16),
                                        _mm512_maskz_loadu_ps(first_n(kc - k), s + k));
      const __mmask32 m = kcp - k >= 32 ? ~0u : (1u << (kcp - k)) - 1;
      _mm512_mask_storeu_epi16(d + k, m, reinterpret_cast<__m512i&>(ab));
    }
  }
}

// A panel from element (i, k) at src[k·ld + i] (op(A) = Aᵀ, e.g. doutᵀ in a weight gradient):
// rows 2p and 2p+1 convert and interleave into the 12 pairs of pair-row p, stored pair-major
// [kc/2][12][2] like a B panel (micro_tile<true> reads this layout), so no transposition.
TODAE_BF16_TARGET void pack_a_k_major(uint16_t* dst, const float* src, int ld, int i0, int ni, int k0,
                                      int kc, int kcp) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int npairs = kcp / 2;
  const __mmask16 m = first_n(ni);
  for (int p = 0; p < npairs; p++) {
    const float* ra = src + static_cast<size_t>(k0 + 2 * p) * ld + i0;
    __m512 a = 2 * p < kc ? _mm512_maskz_loadu_ps(m, ra) : _mm512_setzero_ps();
    __m512 b = 2 * p + 1 < kc ? _mm512_maskz_loadu_ps(m, ra + ld) : _mm512_setzero_ps();
    __m512bh ab = _mm512_cvtne2ps_pbh(b, a);
    __m512i v = _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i&>(ab));
    _mm512_mask_storeu_epi32(dst + static_cast<size_t>(p) * 2 * kMR, static_cast<__mmask16>(0x0fff), v);
  }
}

// The 12×32 tile: acc over npairs k-pairs, then C (rows < mr, cols < nr) = beta·C + acc. The A
// panel is row-major [12][kc] (a_pair_major false) or pair-major [kc/2][12][2].
template <bool a_pair_major>
TODAE_BF16_TARGET void micro_tile(int npairs, const uint16_t* Ap, const uint16_t* Bp, float* C, int ldc,
                                  int mr, int nr, float beta) {
  __m512 c[kMR][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
  const int32_t* a = reinterpret_cast<const int32_t*>(Ap);
  for (int p = 0; p < npairs; p++) {
    const __m512i b0 = _mm512_loadu_si512(Bp + static_cast<size_t>(p) * 2 * kNR);
    const __m512i b1 = _mm512_loadu_si512(Bp + static_cast<size_t>(p) * 2 * kNR + 32);
#pragma GCC unroll 12
    for (int r = 0; r < kMR; r++) {
      const __m512i av = _mm512_set1_epi32(a_pair_major ? a[p * kMR + r] : a[r * npairs + p]);
      c[r][0] = _mm512_dpbf16_ps(c[r][0], reinterpret_cast<const __m512bh&>(av), reinterpret_cast<const __m512bh&>(b0));
      c[r][1] = _mm512_dpbf16_ps(c[r][1], reinterpret_cast<const __m512bh&>(av), reinterpret_cast<const __m512bh&>(b1));
    }
  }
  const __mmask16 m0 = first_n(nr), m1 = first_n(nr - 16);
  const __m512 bv = _mm512_set1_ps(beta);
  for (int r = 0; r < mr; r++) {
    float* row = C + static_cast<size_t>(r) * ldc;
    if (beta != 0.0f) {
      c[r][0] = _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(m0, row), c[r][0]);
      c[r][1] = _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(m1, row + 16), c[r][1]);
    }
    _mm512_mask_storeu_ps(row, m0, c[r][0]);
    _mm512_mask_storeu_ps(row + 16, m1, c[r][1]);
  }
}

// Packed op(B) for all passes: [pass][panel][kc/2][32][2] bf16.
size_t bf16_packed_size(int N, int K) {
  KBlocking kb(K);
  return static_cast<size_t>(kb.passes) * ((N + kNR - 1) / kNR) * kb.kc_max * kNR;
}

void bf16_pack_b(bool tb, int N, int K, const float* B, int ldb, uint16_t* out) {
  KBlocking kb(K);
  const int panels = (N + kNR - 1) / kNR;
  const size_t panel = static_cast<size_t>(kb.kc_max) * kNR;
  parallel_for_each(kb.passes * panels, [&](int t) {
    const int pass = t / panels, jp = t % panels;
    const int k0 = pass * kb.kc_max, kc = imin(kb.kc_max, K - k0);
    const int j0 = jp * kNR, nj = imin(kNR, N - j0);
    uint16_t* dst = out + static_cast<size_t>(t) * panel;
    if (tb) pack_b_j_major(dst, B, ldb, j0, nj, k0, kc);
    else pack_b_k_major(dst, B, ldb, j0, nj, k0, kc);
  });
}

void gemm_bf16_packed(bool ta, int M, int N, int K, const float* A, int lda, const uint16_t* Bp,
                      float beta, float* C, int ldc) {
  KBlocking kb(K);
  const int panels_n = (N + kNR - 1) / kNR;
  const size_t bpanel = static_cast<size_t>(kb.kc_max) * kNR;
  // rows per task: about four tasks per thread, whole 12-row panels, at most 192 rows
  const int threads = detail::pool_threads();
  int mc = (M + threads * 4 - 1) / (threads * 4);
  mc = imin(192, imax(kMR, (mc + kMR - 1) / kMR * kMR));
  const int ntasks = (M + mc - 1) / mc;
  parallel_for_each(ntasks, [&](int t) {
    const int i0 = t * mc, mi = imin(mc, M - i0);
    const int panels_m = (mi + kMR - 1) / kMR;
    const size_t apanel = static_cast<size_t>(kb.kc_max) * kMR;
    uint16_t* Ap = reinterpret_cast<uint16_t*>(thread_scratch(5, (apanel * panels_m + 32) / 2));
    for (int pass = 0; pass < kb.passes; pass++) {
      const int k0 = pass * kb.kc_max, kc = imin(kb.kc_max, K - k0), kcp = (kc + 1) / 2 * 2;
      for (int ip = 0; ip < panels_m; ip++) {
        const int r0 = i0 + ip * kMR, nr = imin(kMR, M - r0);
        if (ta) pack_a_k_major(Ap + ip * apanel, A, lda, r0, nr, k0, kc, kcp);
        else pack_a_i_major(Ap + ip * apanel, A, lda, r0, nr, k0, kc, kcp);
      }
      const float b_eff = pass == 0 ? beta : 1.0f;
      const uint16_t* Bpass = Bp + static_cast<size_t>(pass) * panels_n * bpanel;
      for (int jp = 0; jp < panels_n; jp++) {
        const int j0 = jp * kNR, nj = imin(kNR, N - j0);
        for (int ip = 0; ip < panels_m; ip++) {
          const int r0 = i0 + ip * kMR;
          const uint16_t* a = Ap + ip * apanel;
          const uint16_t* b = Bpass + static_cast<size_t>(jp) * bpanel;
          float* c = C + static_cast<size_t>(r0) * ldc + j0;
          if (ta) micro_tile<true>(kcp / 2, a, b, c, ldc, imin(kMR, M - r0), nj, b_eff);
          else micro_tile<false>(kcp / 2, a, b, c, ldc, imin(kMR, M - r0), nj, b_eff);
        }
      }
    }
  });
}

void gemm_bf16_native(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B,
                      int ldb, float beta, float* C, int ldc) {
  uint16_t* Bp = reinterpret_cast<uint16_t*>(thread_scratch(4, (bf16_packed_size(N, K) + 32) / 2));
  bf16_pack_b(tb, N, K, B, ldb, Bp);
  gemm_bf16_packed(ta, M, N, K, A, lda, Bp, beta, C, ldc);
}

}  // namespace
}  // namespace todae::avx512

namespace todae::detail {

const KernelTable* kernels_avx512_bf16() {
  static const KernelTable table = [] {
    KernelTable t = *kernels_avx512();
    t.name = "avx512+bf16";
    t.f32_to_bf16 = todae::avx512::f32_to_bf16_native;
    t.gemm_bf16 = todae::avx512::gemm_bf16_native;
    t.bf16_packed_size = todae::avx512::bf16_packed_size;
    t.bf16_pack_b = todae::avx512::bf16_pack_b;
    t.gemm_bf16_packed = todae::avx512::gemm_bf16_packed;
    return t;
  }();
  return &table;
}

}  // namespace todae::detail
