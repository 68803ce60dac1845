// AdamW, gradient clipping and the learning-rate schedule. See train.h.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "train/train.h"

namespace todae {

float LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return static_cast<float>(double(max_lr) * double(step + 1) / double(warmup_steps));
  if (step >= total_steps || total_steps <= warmup_steps) return min_lr;
  double ratio = double(step - warmup_steps) / double(total_steps - warmup_steps);
  double coeff = linear ? 1.0 - ratio : 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return static_cast<float>(double(min_lr) + coeff * (double(max_lr) - double(min_lr)));
}

size_t ParamView::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

bool default_weight_decay(std::string_view name, std::span<const int64_t> shape) {
  if (shape.size() < 2) return false;
  return name.find("norm") == std::string_view::npos;
}

std::vector<ParamSpan> decay_spans(std::span<const ParamView> views, size_t total,
                                   bool (*decay)(std::string_view, std::span<const int64_t>)) {
  std::vector<const ParamView*> sorted;
  for (const auto& v : views) sorted.push_back(&v);
  std::sort(sorted.begin(), sorted.end(), [](const ParamView* a, const ParamView* b) { return a->offset < b->offset; });
  std::vector<ParamSpan> spans;
  auto push = [&](size_t b, size_t e, bool d) {
    if (b == e) return;
    if (!spans.empty() && spans.back().decay == d && spans.back().end == b)
      spans.back().end = e;
    else
      spans.push_back({b, e, d});
  };
  size_t at = 0;
  for (const ParamView* v : sorted) {
    if (v->offset < at) fail("parameter view '", v->name, "' overlaps the view before it");
    if (v->offset + v->numel() > total)
      fail("parameter view '", v->name, "' ends at ", v->offset + v->numel(), ", past the buffer's ", total,
           " elements");
    push(at, v->offset, false);
    push(v->offset, v->offset + v->numel(), v->decay >= 0 ? v->decay > 0 : decay(v->name, v->shape));
    at = v->offset + v->numel();
  }
  push(at, total, false);
  return spans;
}

// Chunks are fixed in size (not per thread) so partial sums, and so the total, never depend on
// the number of threads.
static constexpr size_t kChunk = 1 << 16;

double global_norm(std::span<const float> g, double scale, int threads) {
  size_t chunks = (g.size() + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
  parallel_for(chunks, threads, [&](size_t c) {
    size_t b = c * kChunk, e = std::min(g.size(), b + kChunk);
    // Four accumulators break the add dependency chain; the order is still fixed.
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = b;
    for (; i + 4 <= e; i += 4) {
      s0 += double(g[i]) * g[i];
      s1 += double(g[i + 1]) * g[i + 1];
      s2 += double(g[i + 2]) * g[i + 2];
      s3 += double(g[i + 3]) * g[i + 3];
    }
    for (; i < e; ++i) s0 += double(g[i]) * g[i];
    partial[c] = (s0 + s1) + (s2 + s3);
  });
  double total = 0;
  for (double p : partial) total += p;
  return std::sqrt(total) * scale;
}

namespace {

struct AdamWScalars {
  float gscale, b1, b2, one_minus_b1, one_minus_b2, bc2_sqrt, eps, neg_step_size;
};

// One loop per case (gradient scaled or not) so no branch is left inside and it vectorises; the
// operations and their order are torch's (mul_, add_, addcmul_, sqrt, div, add_, addcdiv_).
template <bool kScale>
void adamw_range(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, size_t n,
                 const AdamWScalars k, float dmul) {
  for (size_t i = 0; i < n; ++i) {
    float gi = kScale ? g[i] * k.gscale : g[i];
    float pi = p[i] * dmul;
    float mi = m[i] * k.b1 + k.one_minus_b1 * gi;
    float vi = v[i] * k.b2 + k.one_minus_b2 * gi * gi;
    float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;
    p[i] = pi + k.neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

AdamWStats AdamWOptimizer::update(std::span<float> params, std::span<const float> grads, std::span<float> m,
                                  std::span<float> v, float lr, int accum_steps, int threads) {
  size_t n = params.size();
  if (grads.size() != n || m.size() != n || v.size() != n)
    fail("AdamW: params, grads, m and v must have the same size (", n, ", ", grads.size(), ", ", m.size(), ", ",
         v.size(), ")");
  if (accum_steps < 1) fail("AdamW: accum_steps must be at least 1, got ", accum_steps);
  AdamWStats st;
  st.lr = lr;
  const double avg = 1.0 / accum_steps;
  st.grad_norm = global_norm(grads, avg, threads);
  // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  double clip = 1.0;
  if (cfg.grad_clip > 0) clip = std::min(1.0, double(cfg.grad_clip) / (st.grad_norm + 1e-6));
  st.clip_scale = static_cast<float>(clip);
  // When neither averaging nor clipping changes the gradient, skip the multiply so the update is
  // the same bits as torch's with the raw gradient.
  const bool scale_grad = accum_steps != 1 || clip < 1.0;
  const float gscale = static_cast<float>(avg * clip);

  ++step;
  // Scalars are computed in double and rounded to f32 once, as PyTorch does with Python floats.
  const double t = double(step);
  const float b1 = cfg.beta1, b2 = cfg.beta2;
  const float one_minus_b1 = static_cast<float>(1.0 - double(cfg.beta1));
  const float one_minus_b2 = static_cast<float>(1.0 - double(cfg.beta2));
  const double bc1 = 1.0 - std::pow(double(cfg.beta1), t);
  const double bc2 = 1.0 - std::pow(double(cfg.beta2), t);
  const float neg_step_size = static_cast<float>(-(double(lr) / bc1));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float eps = cfg.eps;
  const float decay_mul = static_cast<float>(1.0 - double(lr) * double(cfg.weight_decay));

  const AdamWScalars k{gscale, b1, b2, one_minus_b1, one_minus_b2, bc2_sqrt, eps, neg_step_size};
  std::vector<ParamSpan> all;
  if (spans.empty()) all.push_back({0, n, true});
  const std::vector<ParamSpan>& use = spans.empty() ? all : spans;
  for (const auto& s : use)
    if (s.begin > s.end || s.end > n)
      fail("AdamW: span [", s.begin, ", ", s.end, ") is outside the ", n, " parameters");

  float* P = params.data();
  const float* G = grads.data();
  float* M = m.data();
  float* V = v.data();
  for (const auto& s : use) {
    const float dmul = s.decay ? decay_mul : 1.0f;
    size_t chunks = (s.end - s.begin + kChunk - 1) / kChunk;
    parallel_for(chunks, threads, [&](size_t c) {
      size_t b = s.begin + c * kChunk, e = std::min(s.end, b + kChunk);
      if (scale_grad)
        adamw_range<true>(P + b, G + b, M + b, V + b, e - b, k, dmul);
      else
        adamw_range<false>(P + b, G + b, M + b, V + b, e - b, k, dmul);
    });
  }
  return st;
}

double train_flops_per_token(double n_matmul_params, int n_layers, int d_model, int seq_len) {
  return 6.0 * n_matmul_params + 12.0 * n_layers * double(d_model) * seq_len;
}

}  // namespace todae
