#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/formats_test_util.h"
#include "train/train.h"

using namespace todae;
using json = nlohmann::json;
using todae::test::error_of;

TEST(LrSchedule, WarmupThenCosineToMin) {
  LrSchedule s{.max_lr = 1.0f, .min_lr = 0.1f, .warmup_steps = 4, .total_steps = 14};
  EXPECT_FLOAT_EQ(s.at(0), 0.25f);
  EXPECT_FLOAT_EQ(s.at(3), 1.0f);
  EXPECT_FLOAT_EQ(s.at(4), 1.0f);   // cosine starts at the peak
  EXPECT_FLOAT_EQ(s.at(9), 0.55f);  // halfway: (max + min) / 2
  EXPECT_NEAR(s.at(13), 0.1f + 0.45f * (1 + std::cos(M_PI * 0.9)), 1e-6);
  EXPECT_FLOAT_EQ(s.at(14), 0.1f);
  EXPECT_FLOAT_EQ(s.at(1000), 0.1f);
  for (int i = 4; i < 14; ++i) EXPECT_LE(s.at(i + 1), s.at(i));  // monotone after warmup
  LrSchedule flat{.max_lr = 0.5f, .min_lr = 0.5f, .warmup_steps = 0, .total_steps = 10};
  EXPECT_FLOAT_EQ(flat.at(0), 0.5f);
}

// Hugging Face's "linear" scheduler (fine-tuning): a straight line from the peak to min_lr.
TEST(LrSchedule, WarmupThenLinearToMin) {
  LrSchedule s{.max_lr = 1.0f, .min_lr = 0.0f, .warmup_steps = 2, .total_steps = 12, .linear = true};
  EXPECT_FLOAT_EQ(s.at(0), 0.5f);
  EXPECT_FLOAT_EQ(s.at(2), 1.0f);
  EXPECT_FLOAT_EQ(s.at(7), 0.5f);
  EXPECT_FLOAT_EQ(s.at(11), 0.1f);
  EXPECT_FLOAT_EQ(s.at(12), 0.0f);
  for (int i = 3; i < 12; ++i) EXPECT_NEAR(s.at(i - 1) - s.at(i), 0.1f, 1e-6);  // equal steps down
}

TEST(AdamW, DecaySpansFollowTheViews) {
  std::vector<ParamView> views = {
      {"model.embed_tokens.weight", 0, {4, 2}},
      {"model.layers.0.input_layernorm.weight", 8, {2}},
      {"model.layers.0.self_attn.q_norm.weight", 10, {2}},
      {"model.layers.0.mlp.up_proj.weight", 12, {3, 2}},
      {"model.layers.0.mlp.down_proj.weight", 18, {2, 3}},
      {"model.layers.0.mlp.down_proj.bias", 24, {2}},
      {"lm_head.weight", 28, {2, 2}},  // a gap [26, 28) before it
  };
  auto spans = decay_spans(views, 34);
  ASSERT_EQ(spans.size(), 6u);
  EXPECT_EQ(spans[0].end, 8u);
  EXPECT_TRUE(spans[0].decay);
  EXPECT_EQ(spans[1].begin, 8u);  // both norms merged
  EXPECT_EQ(spans[1].end, 12u);
  EXPECT_FALSE(spans[1].decay);
  EXPECT_EQ(spans[2].end, 24u);  // up_proj + down_proj merged
  EXPECT_TRUE(spans[2].decay);
  EXPECT_EQ(spans[3].end, 28u);  // bias + gap
  EXPECT_FALSE(spans[3].decay);
  EXPECT_TRUE(spans[4].decay);
  EXPECT_EQ(spans[4].end, 32u);
  EXPECT_FALSE(spans[5].decay);  // tail
  EXPECT_NE(error_of([&] { decay_spans(views, 30); }).find("'lm_head.weight' ends at 32"), std::string::npos);
  views[4].decay = 0;  // the model's own flag wins over the rule
  spans = decay_spans(views, 34);
  EXPECT_EQ(spans[2].end, 18u);
  EXPECT_FALSE(spans[3].decay);
  EXPECT_EQ(spans[3].end, 28u);
  views[1].offset = 6;
  EXPECT_NE(error_of([&] { decay_spans(views, 34); }).find("overlaps"), std::string::npos);
}

TEST(AdamW, GlobalNormIsTheSameOnAnyThreadCount) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> g(300001);
  for (float& x : g) x = normal(rng);
  double want = 0;
  for (float x : g) want += double(x) * x;
  want = std::sqrt(want);
  double n1 = global_norm(g, 1.0, 1);
  EXPECT_NEAR(n1, want, want * 1e-12);
  for (int t : {2, 3, 8}) EXPECT_EQ(global_norm(g, 1.0, t), n1);  // bit for bit
  EXPECT_DOUBLE_EQ(global_norm(g, 0.5, 2), n1 * 0.5);
  EXPECT_EQ(global_norm({}, 1.0, 2), 0.0);
}

// torch.optim.AdamW + clip_grad_norm_ + accumulation + schedule, from gen_adamw_fixture.py.
TEST(AdamW, MatchesPyTorch) {
  json fx = json::parse(read_file(std::string(TODAE_SOURCE_DIR) + "/tests/train/fixtures/adamw_torch.json"));
  const json& c = fx["config"];
  std::vector<ParamView> views;
  for (const auto& v : fx["views"])
    views.push_back({v["name"], v["offset"].get<size_t>(), v["shape"].get<std::vector<int64_t>>()});
  std::vector<float> p = fx["init"].get<std::vector<float>>();
  size_t n = p.size();
  std::vector<float> g(n), m(n, 0.0f), v(n, 0.0f);
  AdamWOptimizer opt;
  opt.cfg = {.beta1 = c["beta1"],
             .beta2 = c["beta2"],
             .eps = c["eps"],
             .weight_decay = c["weight_decay"],
             .grad_clip = c["grad_clip"]};
  opt.spans = decay_spans(views, n);
  LrSchedule sched{
      .max_lr = c["max_lr"], .min_lr = c["min_lr"], .warmup_steps = c["warmup_steps"], .total_steps = c["total_steps"]};
  int accum = c["accum_steps"];
  double worst = 0;
  int clipped = 0;
  for (size_t step = 0; step < fx["steps"].size(); ++step) {
    SCOPED_TRACE(step);
    const json& s = fx["steps"][step];
    EXPECT_NEAR(sched.at(step), s["lr"].get<double>(), 1e-9);
    // The model's backward accumulates micro-batch gradients with +=.
    std::fill(g.begin(), g.end(), 0.0f);
    for (const auto& micro : s["micro_grads"]) {
      std::vector<float> mg = micro.get<std::vector<float>>();
      for (size_t i = 0; i < n; ++i) g[i] += mg[i];
    }
    AdamWStats st = opt.update(p, g, m, v, s["lr"].get<float>(), accum, 2);
    EXPECT_NEAR(st.grad_norm, s["grad_norm"].get<double>(), 1e-5 * s["grad_norm"].get<double>());
    clipped += st.clip_scale < 1.0f;
    std::vector<float> want = s["params"].get<std::vector<float>>();
    for (size_t i = 0; i < n; ++i) {
      double err = std::fabs(double(p[i]) - want[i]) / std::max(1e-3, std::fabs(double(want[i])));
      worst = std::max(worst, err);
      ASSERT_LE(err, 1e-5) << "param " << i << ": " << p[i] << " vs torch " << want[i];
    }
  }
  EXPECT_GT(clipped, 2);                        // the fixture exercises clipping...
  EXPECT_LT(clipped, int(fx["steps"].size()));  // ...and steps without it
  EXPECT_EQ(opt.step, int64_t(fx["steps"].size()));
  std::vector<float> em = fx["exp_avg"].get<std::vector<float>>(), ev = fx["exp_avg_sq"].get<std::vector<float>>();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(m[i], em[i], 1e-6 + 1e-5 * std::fabs(em[i]));
    EXPECT_NEAR(v[i], ev[i], 1e-9 + 1e-5 * std::fabs(ev[i]));
  }
  std::printf("AdamW vs torch: worst relative parameter error over %zu steps: %.3g\n", fx["steps"].size(), worst);
}

namespace {

struct Toy {
  std::vector<ParamView> views = {{"model.embed_tokens.weight", 0, {300, 512}},
                                  {"model.norm.weight", 153600, {512}},
                                  {"lm_head.weight", 154112, {100, 512}}};
  size_t n = 154112 + 51200;
  std::vector<float> p, m, v;
  AdamWOptimizer opt;
  Toy() : p(n), m(n, 0.0f), v(n, 0.0f) {
    std::mt19937 rng(9);
    std::normal_distribution<float> normal;
    for (float& x : p) x = 0.02f * normal(rng);
    opt.spans = decay_spans(views, n);
  }
  // Gradients that depend on the parameters, so any divergence would grow.
  void step(int threads) {
    std::vector<float> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = std::sin(p[i] * 100.0f + float(i % 97)) * 3.0f;
    LrSchedule s{.max_lr = 1e-3f, .min_lr = 1e-4f, .warmup_steps = 2, .total_steps = 10};
    opt.update(p, g, m, v, s.at(opt.step), 2, threads);
  }
};

}  // namespace

TEST(AdamW, DeterministicAcrossThreadCounts) {
  Toy a, b, c;
  for (int i = 0; i < 5; ++i) {
    a.step(1);
    b.step(2);
    c.step(5);
  }
  EXPECT_EQ(a.p, b.p);
  EXPECT_EQ(a.p, c.p);
  EXPECT_EQ(a.m, c.m);
  EXPECT_EQ(a.v, c.v);
}

TEST(AdamW, RejectsMismatchedBuffers) {
  std::vector<float> p(4), g(3), m(4), v(4);
  AdamWOptimizer opt;
  EXPECT_THROW(opt.update(p, g, m, v, 1e-3f), Error);
  g.resize(4);
  EXPECT_THROW(opt.update(p, g, m, v, 1e-3f, 0), Error);
  opt.spans = {{0, 5, true}};
  EXPECT_THROW(opt.update(p, g, m, v, 1e-3f), Error);
}

TEST(Throughput, FlopsAndMfu) {
  EXPECT_DOUBLE_EQ(train_flops_per_token(1e6, 2, 64, 128), 6e6 + 12.0 * 2 * 64 * 128);
  EXPECT_DOUBLE_EQ(mfu(1e9, 100, 200), 0.5);
  EXPECT_EQ(mfu(1e9, 100, 0), 0.0);
}
