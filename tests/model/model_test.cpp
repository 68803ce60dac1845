

// The whole model against the PyTorch reference (tests/model/make_fixtures.py): logits, losses and
// the gradient of every parameter, for each fixture model, kernel path and recompute setting; plus
// config.json parsing, init, gradient accumulation, masking and a finite-difference check.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/model.h"
#include "tensor/fixture.h"

using namespace todae;
using namespace todae::testing;

namespace {

constexpr double kTorchTol = 1e-4;  // f32 model vs the float64 PyTorch reference (max-norm relative)

struct Loaded {
  Fixture fx;
  ModelConfig cfg;
  int B, T;
  explicit Loaded(const std::string& name)
      : fx(fixture_path("model/fixtures/" + name + ".bin")),
        cfg(ModelConfig::load(fixture_path("model/fixtures/" + name + ".config.json"))) {
    B = static_cast<int>(fx.at("tokens").shape[0]);
    T = static_cast<int>(fx.at("tokens").shape[1]) - 1;
  }
  void load_weights(Model& m) const {
    for (const ParamInfo& p : m.params) {
      const FxTensor& t = fx.at(p.name);
      ASSERT_EQ(t.shape, p.shape) << p.name;
      std::memcpy(m.weights.data + p.offset, t.f.data(), sizeof(float) * p.numel);
    }
    // and the other way: every tensor of the reference is in the model
    for (auto& [name, t] : fx.t)
      if (name.rfind("model.", 0) == 0 || name.rfind("lm_head.", 0) == 0) {
        EXPECT_NE(m.find(name), nullptr) << name;
      }
  }
};

struct Case {
  std::string model;
  Isa isa;
  bool recompute;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << " " << isa_name(c.isa) << (c.recompute ? " recompute" : "");
}

class ModelVsTorch : public ::testing::TestWithParam<Case> {};

TEST_P(ModelVsTorch, LogitsLossAndEveryGradient) {
  const Case& cs = GetParam();
  IsaScope scope(cs.isa);
  Loaded L(cs.model);
  Model m(L.cfg);
  L.load_weights(m);
  const int B = L.B, T = L.T, V = L.cfg.vocab_size;
  const auto tokens = L.fx.i("tokens");
  std::string tag = cs.model + " [" + isa_name(cs.isa) + (cs.recompute ? ", recompute" : "") + "]";

  // inference: logits at every position, and at the last one only
  std::vector<int32_t> inputs;
  for (int b = 0; b < B; b++) inputs.insert(inputs.end(), tokens.begin() + b * (T + 1), tokens.begin() + b * (T + 1) + T);
  std::vector<float> logits(static_cast<size_t>(B) * T * V), last(static_cast<size_t>(B) * V);
  forward_logits(m, inputs.data(), B, T, logits.data());
  EXPECT_REL(logits, L.fx.f("logits"), kTorchTol, tag + " logits");
  forward_logits(m, inputs.data(), B, T, last.data(), true);
  const auto want_logits = L.fx.f("logits");
  std::vector<float> want_last;
  for (int b = 0; b < B; b++)
    want_last.insert(want_last.end(), want_logits.begin() + (static_cast<size_t>(b) * T + T - 1) * V,
                     want_logits.begin() + (static_cast<size_t>(b) * T + T) * V);
  EXPECT_REL(last, want_last, kTorchTol, tag + " last logits");

  // evaluation
  std::vector<float> losses(static_cast<size_t>(B) * T);
  float eval = forward_loss(m, tokens.data(), B, T, losses.data());
  const float want_loss = L.fx.f("loss")[0];
  EXPECT_NEAR(eval, want_loss, kTorchTol * want_loss) << tag;
  EXPECT_REL(losses, L.fx.f("losses"), kTorchTol, tag + " per-token losses");

  // training: loss and the gradient of every parameter
  zero_grads(m);
  TrainOptions opt;
  opt.recompute = cs.recompute;
  float loss = forward_backward(m, tokens.data(), B, T, 1.0f, opt);
  note_error(kTorchTol, std::fabs(loss - want_loss) / want_loss, tag + " loss");
  EXPECT_NEAR(loss, want_loss, kTorchTol * want_loss) << tag;
  for (const ParamInfo& p : m.params) {
    std::vector<float> g(m.grads.data + p.offset, m.grads.data + p.offset + p.numel);
    EXPECT_REL(g, L.fx.f("grad." + p.name), kTorchTol, tag + " grad " + p.name);
  }
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (std::string name : {"llama_gqa", "llama_tied", "llama_dynamic", "qwen3"})
    for (Isa isa : supported_isas())
      for (bool rc : {false, true})
        if (!rc || isa == best_isa()) v.push_back({name, isa, rc});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelVsTorch, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.model + "_" + isa_name(i.param.isa) + (i.param.recompute ? "_recompute" : "");
                         });

// ---- mixed precision --------------------------------------------------------------------------

TEST(ModelBf16, CloseToFloat32AndTheSameOnEveryPath) {
  // bf16 operands carry 8 significant bits: the loss moves by well under 1%, every gradient
  // tensor keeps its direction (cosine ≥ 0.999) and its size (max-norm error ≤ 5%). The paths
  // (vdpbf16ps, or rounded operands through sgemm) differ in summation order only, but an
  // activation that lands near a bf16 rounding boundary can round the other way, so paths agree
  // to bf16 resolution (2%), not f32's.
  for (std::string name : {"llama_gqa", "qwen3"}) {
    Loaded L(name);
    Model m(L.cfg);
    L.load_weights(m);
    const auto tokens = L.fx.i("tokens");
    const float want_loss = L.fx.f("loss")[0];
    TrainOptions bf;
    bf.bf16 = true;
    std::vector<float> first_grads;
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      zero_grads(m);
      float loss = forward_backward(m, tokens.data(), L.B, L.T, 1.0f, bf);
      std::string tag = name + " bf16 [" + isa_name(isa) + "]";
      note_error(1e-2, std::fabs(loss - want_loss) / want_loss, tag + " loss");
      EXPECT_NEAR(loss, want_loss, 1e-2 * want_loss) << tag;
      EXPECT_NEAR(forward_loss(m, tokens.data(), L.B, L.T, nullptr, true), loss, 1e-6 * loss) << tag;
      for (const ParamInfo& p : m.params) {
        std::vector<float> g(m.grads.data + p.offset, m.grads.data + p.offset + p.numel);
        auto want = L.fx.f("grad." + p.name);
        double dot = 0, ng = 0, nw = 0;
        for (size_t i = 0; i < g.size(); i++) dot += static_cast<double>(g[i]) * want[i], ng += static_cast<double>(g[i]) * g[i], nw += static_cast<double>(want[i]) * want[i];
        EXPECT_GE(dot / std::sqrt(ng * nw), 0.999) << tag << " " << p.name;
        EXPECT_REL(g, want, 5e-2, tag + " grad " + p.name);
      }
      std::vector<float> all(m.grads.begin(), m.grads.end());
      if (first_grads.empty()) first_grads = all;
      else EXPECT_REL(all, first_grads, 2e-2, tag + " vs " + isa_name(supported_isas().front()));
    }
  }
}

// ---- training behaviour -----------------------------------------------------------------------

ModelConfig tiny_config() {
  ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 40;
  c.max_position_embeddings = 64;
  return c;
}

std::vector<int32_t> random_tokens(int B, int T, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(B) * (T + 1));
  for (auto& x : t) x = static_cast<int32_t>(rng() % V);
  return t;
}

TEST(Model, RecomputeGivesIdenticalGradients) {
  Model a(tiny_config()), b(tiny_config());
  init_weights(a, 7);
  init_weights(b, 7);
  auto tok = random_tokens(3, 21, 40, 1);
  zero_grads(a);
  zero_grads(b);
  float la = forward_backward(a, tok.data(), 3, 21);
  TrainOptions rc;
  rc.recompute = true;
  float lb = forward_backward(b, tok.data(), 3, 21, 1.0f, rc);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(0, std::memcmp(a.grads.data, b.grads.data, a.num_floats * sizeof(float)));
}

TEST(Model, RepeatedStepsAreBitIdentical) {
  // what resuming a run exactly relies on: the same inputs give the same bits, f32 and bf16
  for (bool bf : {false, true}) {
    Model a(tiny_config());
    init_weights(a, 9);
    auto tok = random_tokens(4, 33, 40, 6);
    TrainOptions o;
    o.bf16 = bf;
    zero_grads(a);
    float l1 = forward_backward(a, tok.data(), 4, 33, 1.0f, o);
    std::vector<float> g1(a.grads.begin(), a.grads.end());
    zero_grads(a);
    float l2 = forward_backward(a, tok.data(), 4, 33, 1.0f, o);
    EXPECT_EQ(l1, l2);
    EXPECT_EQ(0, std::memcmp(g1.data(), a.grads.data, g1.size() * sizeof(float))) << (bf ? "bf16" : "f32");
  }
}

TEST(Model, ThreadCountDoesNotChangeTheBitsOnTheAvx512Path) {
  // every kernel and GEMM of the avx512 path reduces in a fixed order, so a run may resume on a
  // different number of threads (OpenBLAS, used by the other paths, does not promise this)
  if (!isa_supported(Isa::avx512)) GTEST_SKIP() << "no AVX-512";
  IsaScope scope(Isa::avx512);
  for (bool bf : {false, true}) {
    Model a(tiny_config());
    init_weights(a, 4);
    auto tok = random_tokens(4, 40, 40, 8);
    TrainOptions o;
    o.bf16 = bf;
    const int saved = get_threads();
    std::vector<float> g[2];
    float l[2];
    for (int k = 0; k < 2; k++) {
      set_threads(k == 0 ? 1 : 3);
      zero_grads(a);
      l[k] = forward_backward(a, tok.data(), 4, 40, 1.0f, o);
      g[k].assign(a.grads.begin(), a.grads.end());
    }
    set_threads(saved);
    EXPECT_EQ(l[0], l[1]);
    EXPECT_EQ(0, std::memcmp(g[0].data(), g[1].data(), g[0].size() * sizeof(float))) << (bf ? "bf16" : "f32");
  }
}

TEST(Model, GradientAccumulationEqualsOneBigBatch) {
  Model a(tiny_config()), b(tiny_config());
  init_weights(a, 3);
  init_weights(b, 3);
  const int B = 4, T = 16;
  auto tok = random_tokens(B, T, 40, 2);
  zero_grads(a);
  zero_grads(b);
  float full = forward_backward(a, tok.data(), B, T);
  float h1 = forward_backward(b, tok.data(), B / 2, T, 0.5f);
  float h2 = forward_backward(b, tok.data() + (B / 2) * (T + 1), B / 2, T, 0.5f);
  EXPECT_NEAR(full, 0.5f * (h1 + h2), 1e-6);
  std::vector<float> ga(a.grads.begin(), a.grads.end()), gb(b.grads.begin(), b.grads.end());
  EXPECT_REL(gb, ga, 1e-5, "accumulated grads");
}

TEST(Model, NegativeTargetsAreMaskedOut) {
  Model a(tiny_config()), b(tiny_config());
  init_weights(a, 5);
  init_weights(b, 5);
  const int T = 12;
  auto tok = random_tokens(1, T, 40, 3);
  std::vector<int32_t> in(tok.begin(), tok.begin() + T), tg(tok.begin() + 1, tok.end());
  // masking the second half of the targets = the loss of the first half only
  std::vector<int32_t> masked = tg;
  for (int t = T / 2; t < T; t++) masked[t] = -1;
  zero_grads(a);
  float lm = forward_backward(a, in.data(), masked.data(), 1, T);
  std::vector<float> losses(T);
  forward_loss(b, tok.data(), 1, T, losses.data());
  double first_half = 0;
  for (int t = 0; t < T / 2; t++) first_half += losses[t];
  EXPECT_NEAR(lm, first_half / (T / 2), 1e-5);
  // all targets masked: loss 0, gradients untouched
  std::vector<int32_t> none(T, -1);
  zero_grads(b);
  EXPECT_EQ(forward_backward(b, in.data(), none.data(), 1, T), 0.0f);
  EXPECT_EQ(grad_norm(b), 0.0);
}

TEST(Model, FiniteDifferenceOfTheWholeModel) {
  // For every tensor, its element with the largest gradient: central differences of the f32 loss
  // vs the analytic gradient. Weights are scaled up (embeddings std 1, the rest 0.1) so the loss
  // changes well above f32 rounding; eps is small enough for the curvature that brings.
  Model m(tiny_config());
  init_weights(m, 11);
  for (size_t i = 0; i < m.num_floats; i++) m.weights[i] *= 5;
  const ParamInfo& emb = m.param("model.embed_tokens.weight");
  for (size_t i = 0; i < emb.numel; i++) m.weights[emb.offset + i] *= 10;
  auto tok = random_tokens(2, 10, 40, 4);
  zero_grads(m);
  forward_backward(m, tok.data(), 2, 10);
  const float eps = 3e-3f;
  for (const ParamInfo& p : m.params) {
    size_t k = p.offset;
    for (size_t i = p.offset; i < p.offset + p.numel; i++)
      if (std::fabs(m.grads[i]) > std::fabs(m.grads[k])) k = i;
    const float w0 = m.weights[k];
    m.weights[k] = w0 + eps;
    double lp = forward_loss(m, tok.data(), 2, 10);
    m.weights[k] = w0 - eps;
    double lm = forward_loss(m, tok.data(), 2, 10);
    m.weights[k] = w0;
    double fd = (lp - lm) / (2 * eps), an = m.grads[k];
    double e = std::fabs(fd - an) / std::fabs(an);
    note_error(1e-2, e, "finite difference " + p.name);
    EXPECT_LT(e, 1e-2) << p.name << ": fd " << fd << " analytic " << an;
  }
}

TEST(Model, AdamWOverfitsOneBatch) {
  Model m(tiny_config());
  init_weights(m, 1);
  auto tok = random_tokens(2, 16, 40, 5);
  AdamW opt{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
  float first = 0, last = 0;
  for (int step = 1; step <= 60; step++) {
    zero_grads(m);
    float l = forward_backward(m, tok.data(), 2, 16);
    if (step == 1) first = l;
    last = l;
    adamw_step(m, opt, step);
  }
  EXPECT_NEAR(first, std::log(40.0f), 0.1f);  // random init: about uniform over the vocabulary
  EXPECT_LT(last, 0.5f * first);
}

// ---- init and layout --------------------------------------------------------------------------

TEST(Model, InitIsDeterministicScaledAndThreadIndependent) {
  ModelConfig c = tiny_config();
  c.num_hidden_layers = 8;
  Model a(c), b(c), d(c);
  init_weights(a, 42);
  const int saved = get_threads();
  set_threads(1);
  init_weights(b, 42);
  set_threads(saved);
  init_weights(d, 43);
  EXPECT_EQ(0, std::memcmp(a.weights.data, b.weights.data, a.num_floats * 4));
  EXPECT_NE(0, std::memcmp(a.weights.data, d.weights.data, a.num_floats * 4));
  auto stdev = [&](const std::string& name) {
    const ParamInfo& p = a.param(name);
    double s = 0;
    for (size_t i = 0; i < p.numel; i++) s += static_cast<double>(a.weights[p.offset + i]) * a.weights[p.offset + i];
    return std::sqrt(s / p.numel);
  };
  EXPECT_NEAR(stdev("model.embed_tokens.weight"), 0.02, 0.002);
  EXPECT_NEAR(stdev("model.layers.0.mlp.up_proj.weight"), 0.02, 0.002);
  EXPECT_NEAR(stdev("model.layers.3.self_attn.o_proj.weight"), 0.02 / 4, 0.0008);  // 1/sqrt(2·8)
  EXPECT_NEAR(stdev("model.layers.7.mlp.down_proj.weight"), 0.02 / 4, 0.0008);
  EXPECT_EQ(a.weight("model.norm.weight")[5], 1.0f);
}

TEST(Model, ParameterTableLayout) {
  ModelConfig c = tiny_config();
  Model m(c);
  EXPECT_EQ(m.params.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(m.params.back().name, "lm_head.weight");
  size_t total = 0;
  for (const ParamInfo& p : m.params) {
    total += p.numel;
    EXPECT_EQ(p.weight_decay, p.shape.size() == 2) << p.name;
    EXPECT_LE(p.offset + p.numel, m.num_floats);
  }
  EXPECT_EQ(total, c.num_parameters());
  // fused groups are adjacent
  const ParamInfo &q = m.param("model.layers.1.self_attn.q_proj.weight"), &k = m.param("model.layers.1.self_attn.k_proj.weight"),
                  &v = m.param("model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  const ParamInfo &g = m.param("model.layers.0.mlp.gate_proj.weight"), &u = m.param("model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(u.offset, g.offset + g.numel);
  EXPECT_EQ(q.offset % 16, 0u);
  EXPECT_THROW(m.param("model.layers.2.mlp.up_proj.weight"), Error);
  c.tie_word_embeddings = true;
  Model t(c);
  EXPECT_EQ(t.find("lm_head.weight"), nullptr);
  EXPECT_EQ(t.params.size(), m.params.size() - 1);
  c.architecture = "Qwen3ForCausalLM";
  Model qw(c);
  EXPECT_NE(qw.find("model.layers.0.self_attn.k_norm.weight"), nullptr);
}

TEST(Model, TokenOutsideVocabularyIsAnError) {
  Model m(tiny_config());
  std::vector<int32_t> tok = {1, 2, 40, 3};
  EXPECT_THROW(forward_loss(m, tok.data(), 1, 3), Error);
  tok[2] = 3;
  tok[3] = 99;  // a target outside the vocabulary too
  EXPECT_THROW(forward_loss(m, tok.data(), 1, 3), Error);
}

// ---- config.json ------------------------------------------------------------------------------

const char* kQwen3_06B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

TEST(Config, RealHuggingFaceConfigs) {
  ModelConfig q = ModelConfig::from_json(kQwen3_06B);
  EXPECT_TRUE(q.qk_norm());
  EXPECT_EQ(q.head_dim, 128);
  EXPECT_EQ(q.q_dim(), 2048);
  EXPECT_EQ(q.num_parameters(), 596049920u);  // Qwen3-0.6B
  EXPECT_EQ(q.eos_token_id, 151645);
  ModelConfig l = ModelConfig::from_json(kLlama32_1B);
  EXPECT_FALSE(l.qk_norm());
  EXPECT_EQ(l.rope_scaling.kind, RopeScaling::llama3);
  EXPECT_EQ(l.rope_scaling.factor, 32.0);
  EXPECT_EQ(l.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(l.eos_token_id, 128001);
  EXPECT_EQ(l.num_parameters(), 1235814400u);  // Llama-3.2-1B
}

TEST(Config, RoundTripThroughJson) {
  for (const char* text : {kQwen3_06B, kLlama32_1B}) {
    ModelConfig a = ModelConfig::from_json(text);
    ModelConfig b = ModelConfig::from_json(a.to_json());
    EXPECT_EQ(a.to_json(), b.to_json());
    EXPECT_EQ(b.architecture, a.architecture);
    EXPECT_EQ(b.head_dim, a.head_dim);
    EXPECT_EQ(b.rope_theta, a.rope_theta);
    EXPECT_EQ(b.rms_norm_eps, a.rms_norm_eps);
    EXPECT_EQ(b.rope_scaling.kind, a.rope_scaling.kind);
    EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
  }
}

TEST(Config, ShapeSFlopsMatchSHAPES) {
  ModelConfig s;
  s.hidden_size = 288, s.intermediate_size = 768, s.num_hidden_layers = 6, s.num_attention_heads = 6;
  s.num_key_value_heads = 6, s.head_dim = 48, s.vocab_size = 32000, s.max_position_embeddings = 256;
  EXPECT_NEAR(s.num_parameters() / 1e6, 24.4, 0.05);
  EXPECT_NEAR(s.flops_per_token(256) / 1e6, 96.4, 0.2);
}

void expect_error(const std::string& json, const std::string& needle) {
  try {
    ModelConfig::from_json(json, "my/config.json");
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("my/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Config, ErrorsNameTheField) {
  const std::string ok = R"("hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "vocab_size": 100)";
  EXPECT_NO_THROW(ModelConfig::from_json("{" + ok + "}"));
  expect_error("{", "not valid JSON");
  expect_error("[1]", "JSON object");
  expect_error(R"({"intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})", "'hidden_size'");
  expect_error("{" + ok + R"(, "num_key_value_heads": 3})", "'num_key_value_heads'");
  expect_error("{" + ok + R"(, "num_key_value_heads": 0})", "'num_key_value_heads'");
  expect_error(R"({"hidden_size": "64", "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})", "'hidden_size' must be an integer");
  expect_error(R"({"hidden_size": 66, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})", "'head_dim'");
  expect_error("{" + ok + R"(, "head_dim": 7})", "'head_dim'");
  expect_error("{" + ok + R"(, "rms_norm_eps": -1})", "'rms_norm_eps'");
  expect_error("{" + ok + R"(, "rope_theta": "big"})", "'rope_theta'");
  expect_error("{" + ok + R"(, "rope_scaling": {"type": "yarn", "factor": 4}})", "'rope_scaling'");
  expect_error("{" + ok + R"(, "rope_scaling": {"type": "linear"}})", "'factor'");
  expect_error("{" + ok + R"(, "rope_scaling": 3})", "'rope_scaling'");
  expect_error("{" + ok + R"(, "architectures": ["GPT2LMHeadModel"]})", "'architectures'");
  expect_error("{" + ok + R"(, "hidden_act": "gelu"})", "'hidden_act'");
  expect_error("{" + ok + R"(, "architectures": ["Qwen3ForCausalLM"], "attention_bias": true})", "'attention_bias'");
  {
    // q/k/v biases (Llama with attention_bias, Qwen2): read for inference and trained (one fused [q|k|v] bias)
    ModelConfig b = ModelConfig::from_json("{" + ok + R"(, "attention_bias": true})");
    EXPECT_TRUE(b.attention_bias);
    ModelConfig q2 = ModelConfig::from_json("{" + ok + R"(, "model_type": "qwen2"})");
    EXPECT_EQ(q2.architecture, "Qwen2ForCausalLM");
    EXPECT_TRUE(q2.attention_bias);
    EXPECT_EQ(ModelConfig::from_json(q2.to_json()).model_type(), "qwen2");
    Model mb{b};
    EXPECT_NE(mb.find("model.layers.0.self_attn.k_proj.bias"), nullptr);
  }
  expect_error("{" + ok + R"(, "use_sliding_window": true})", "'use_sliding_window'");
  expect_error("{" + ok + R"(, "tie_word_embeddings": 1})", "'tie_word_embeddings'");
  EXPECT_THROW(ModelConfig::load("/nonexistent/config.json"), Error);
}

}  // namespace
