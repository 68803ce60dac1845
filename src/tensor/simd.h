// Internal: a minimal SIMD vocabulary, so that one kernel source (kernels.inc) compiles into the
// AVX-512, AVX2 and scalar paths. Include only from kernels_*.cpp, after defining TODAE_KERNEL_NS.
//
// Why everything here is inside the per-path namespace and uses only compiler builtins: these files
// are compiled with different -m flags, and an inline function or template shared with another
// translation unit (std::max, std::sqrt, ...) would be emitted in each, with the linker keeping ONE
// copy — possibly the AVX-512 one, which would then crash on a CPU without it.
#pragma once

#include <stdint.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef TODAE_KERNEL_NS
#error "define TODAE_KERNEL_NS before including simd.h"
#endif

namespace todae::TODAE_KERNEL_NS::simd {

#if defined(__AVX512F__)

constexpr int W = 16;
struct vf {
  __m512 v;
};
inline vf load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void store(float* p, vf a) { _mm512_storeu_ps(p, a.v); }
inline vf set1(float x) { return {_mm512_set1_ps(x)}; }
inline vf zero() { return {_mm512_setzero_ps()}; }
inline vf add(vf a, vf b) { return {_mm512_add_ps(a.v, b.v)}; }
inline vf sub(vf a, vf b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline vf mul(vf a, vf b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline vf div(vf a, vf b) { return {_mm512_div_ps(a.v, b.v)}; }
inline vf fma(vf a, vf b, vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a·b + c
inline vf fnma(vf a, vf b, vf c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }  // c - a·b
inline vf max(vf a, vf b) { return {_mm512_max_ps(a.v, b.v)}; }
inline vf min(vf a, vf b) { return {_mm512_min_ps(a.v, b.v)}; }
inline vf sqrt(vf a) { return {_mm512_sqrt_ps(a.v)}; }
inline vf floor(vf a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
// 2^n for integral n in [-126, 127] held as floats
inline vf pow2i(vf n) {
  __m512i i = _mm512_cvtps_epi32(n.v);
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(i, _mm512_set1_epi32(127)), 23))};
}
// where x < lo, 0; elsewhere y
inline vf zero_below(vf y, vf x, float lo) {
  __mmask16 k = _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(lo), _CMP_NLT_UQ);  // NaN keeps y
  return {_mm512_maskz_mov_ps(k, y.v)};
}
inline float reduce_add(vf a) { return _mm512_reduce_add_ps(a.v); }
inline float reduce_max(vf a) { return _mm512_reduce_max_ps(a.v); }
// n·2^k for integral k held as floats (vscalefps: 0 below the range, inf above, no integer tricks)
inline vf scale2(vf p, vf k) { return {_mm512_scalef_ps(p.v, k.v)}; }
inline vf round_nearest(vf a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
#define TODAE_SIMD_SCALEF 1

#elif defined(__AVX2__)

constexpr int W = 8;
struct vf {
  __m256 v;
};
inline vf load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, vf a) { _mm256_storeu_ps(p, a.v); }
inline vf set1(float x) { return {_mm256_set1_ps(x)}; }
inline vf zero() { return {_mm256_setzero_ps()}; }
inline vf add(vf a, vf b) { return {_mm256_add_ps(a.v, b.v)}; }
inline vf sub(vf a, vf b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline vf mul(vf a, vf b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline vf div(vf a, vf b) { return {_mm256_div_ps(a.v, b.v)}; }
inline vf fma(vf a, vf b, vf c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline vf fnma(vf a, vf b, vf c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
inline vf max(vf a, vf b) { return {_mm256_max_ps(a.v, b.v)}; }
inline vf min(vf a, vf b) { return {_mm256_min_ps(a.v, b.v)}; }
inline vf sqrt(vf a) { return {_mm256_sqrt_ps(a.v)}; }
inline vf floor(vf a) { return {_mm256_floor_ps(a.v)}; }
inline vf pow2i(vf n) {
  __m256i i = _mm256_cvtps_epi32(n.v);
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23))};
}
inline vf zero_below(vf y, vf x, float lo) {
  return {_mm256_and_ps(y.v, _mm256_cmp_ps(x.v, _mm256_set1_ps(lo), _CMP_NLT_UQ))};
}
inline float reduce_add(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float reduce_max(vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#else

// The scalar path: a "vector" of one float. Plain C++ for the baseline x86-64 target (no FMA
// instruction, so a·b + c rounds twice here; that is one of the differences the tests tolerate).
constexpr int W = 1;
struct vf {
  float v;
};
inline vf load(const float* p) { return {*p}; }
inline void store(float* p, vf a) { *p = a.v; }
inline vf set1(float x) { return {x}; }
inline vf zero() { return {0.0f}; }
inline vf add(vf a, vf b) { return {a.v + b.v}; }
inline vf sub(vf a, vf b) { return {a.v - b.v}; }
inline vf mul(vf a, vf b) { return {a.v * b.v}; }
inline vf div(vf a, vf b) { return {a.v / b.v}; }
inline vf fma(vf a, vf b, vf c) { return {a.v * b.v + c.v}; }
inline vf fnma(vf a, vf b, vf c) { return {c.v - a.v * b.v}; }
// Like maxps/minps: when either operand is NaN, the second one is returned.
inline vf max(vf a, vf b) { return {a.v > b.v ? a.v : b.v}; }
inline vf min(vf a, vf b) { return {a.v < b.v ? a.v : b.v}; }
inline vf sqrt(vf a) { return {__builtin_sqrtf(a.v)}; }
inline vf floor(vf a) { return {__builtin_floorf(a.v)}; }
inline vf pow2i(vf n) {
  if (n.v != n.v) return n;  // NaN (casting it to int would be undefined)
  uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n.v) + 127) << 23;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return {f};
}
inline vf zero_below(vf y, vf x, float lo) { return {x.v < lo ? 0.0f : y.v}; }  // NaN keeps y
inline float reduce_add(vf a) { return a.v; }
inline float reduce_max(vf a) { return a.v; }

#endif

// e^x, the Cephes single-precision algorithm (≈1 ulp), written once over the vector operations so
// every path computes the same polynomial: x = n·ln2 + r, e^x = 2^n · p(r). Inputs below ≈-87.3
// (including -inf) give exactly 0; inputs above ≈88.4 saturate at ≈2^127·e^0.35 instead of inf;
// NaN stays NaN (so a diverged loss shows as NaN rather than being hidden).
#ifdef TODAE_SIMD_SCALEF
// AVX-512: the same reduction and polynomial, with n = round(x·log2 e) and 2^n applied by
// vscalefps, which needs no clamp at the bottom (it underflows to 0 by itself) and no
// integer exponent arithmetic: about two thirds of the instructions.
inline vf exp(vf x) {
  vf xc = min(set1(88.3762626647949f), max(set1(-104.0f), x));  // NaN propagates
  vf n = round_nearest(mul(xc, set1(1.44269504088896341f)));
  vf r = fnma(n, set1(0.693359375f), xc);
  r = fnma(n, set1(-2.12194440e-4f), r);
  vf z = mul(r, r);
  vf p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  p = fma(p, z, add(r, set1(1.0f)));
  return scale2(p, n);
}
#else
inline vf exp(vf x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  vf xc = min(set1(hi), max(set1(lo), x));  // operand order: NaN propagates
  vf n = floor(fma(xc, set1(1.44269504088896341f), set1(0.5f)));
  vf r = fnma(n, set1(0.693359375f), xc);
  r = fnma(n, set1(-2.12194440e-4f), r);
  vf z = mul(r, r);
  vf p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  p = fma(p, z, add(r, set1(1.0f)));
  return zero_below(mul(p, pow2i(n)), x, lo);
}
#endif

// Scalar versions of the same, for loop tails, so a tail element gets the same value as it would
// inside a vector.
inline float exp1(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  if (x != x) return x;
  if (x < lo) return 0.0f;
  float xc = x > hi ? hi : x;
  float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + (r + 1.0f);
  uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float s;
  __builtin_memcpy(&s, &bits, 4);
  return p * s;
}

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }

}  // namespace todae::TODAE_KERNEL_NS::simd
