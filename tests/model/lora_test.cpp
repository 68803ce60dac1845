// Fine-tuning in the model: LoRA adapters (frozen base), loss masks, packed rows with document
// masking, Qwen2's q/k/v biases and QLoRA (Q8_0 / Q4_0 base), against the PyTorch float64
// fixtures of tests/model/make_lora_fixtures.py on every kernel path, plus the properties the
// fixtures cannot show: B = 0 starts at the base, packed = unpacked, no base gradient memory,
// QLoRA = LoRA on the dequantized base, recompute = no recompute, bf16 close to f32.
//
// Tolerances (max-norm relative error, see tests/tensor/fixture.h):
//   1e-4  f32 model vs the float64 reference (as model_test.cpp: f32 rounding through two layers)
//   1e-5  two f32 computations of the same numbers in different orders (packed vs unpacked,
//         QLoRA vs f32 on dequantized weights, accumulation); bit-exact where the order is the same
//   bf16  loss within 1%, gradients cosine >= 0.999 and within 5% (as model_test.cpp's ModelBf16;
//         8% for QLoRA's bf16 vs f32, see there)
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/lora.h"
#include "model/model.h"
#include "tensor/fixture.h"

using namespace todae;
using namespace todae::testing;

namespace {

constexpr double kTorchTol = 1e-4;
constexpr double kSameTol = 1e-5;

struct Loaded {
  Fixture fx;
  ModelConfig cfg;
  int B, T;
  explicit Loaded(const std::string& name)
      : fx(fixture_path("model/fixtures/" + name + ".bin")),
        cfg(ModelConfig::load(fixture_path("model/fixtures/" + name + ".config.json"))) {
    B = static_cast<int>(fx.at("inputs").shape[0]);
    T = static_cast<int>(fx.at("inputs").shape[1]);
  }
  void load_weights(Model& m) const {
    for (const ParamInfo& p : m.params) {
      const FxTensor& t = fx.at(p.name);
      ASSERT_EQ(t.shape, p.shape) << p.name;
      std::memcpy(m.weights.data + p.offset, t.f.data(), sizeof(float) * p.numel);
    }
    for (auto& [name, t] : fx.t)  // every base tensor of the reference is in the model
      if (name.rfind("model.", 0) == 0 || name.rfind("lm_head.", 0) == 0) {
        EXPECT_NE(m.find(name), nullptr) << name;
      }
  }
  // The adapter of case `tag` ("r4", "rs"), its A and B as in the fixture.
  Lora load_lora(const std::string& tag) const {
    auto c = fx.i(tag + ".config");
    LoraConfig lc;
    lc.rank = c[0];
    lc.rslora = c[1] != 0;
    lc.targets = static_cast<uint32_t>(c[2]);
    lc.alpha = fx.f(tag + ".alpha")[0];
    Lora lora = make_lora(cfg, lc);
    size_t adapters = 0;
    for (auto& [name, t] : fx.t)
      if (name.rfind(tag + ".model.", 0) == 0) adapters++;
    EXPECT_EQ(lora.params.size(), adapters) << tag << ": the fixture's adapters and make_lora's differ";
    for (const ParamInfo& p : lora.params) {
      const FxTensor& t = fx.at(tag + "." + p.name);
      EXPECT_EQ(t.shape, p.shape) << p.name;
      std::memcpy(lora.weights.data + p.offset, t.f.data(), sizeof(float) * p.numel);
    }
    return lora;
  }
};

void zero_lora_grads(Lora& l) { l.grads.zero(); }

std::vector<float> lora_grad(const Lora& l, const ParamInfo& p) {
  return std::vector<float>(l.grads.data + p.offset, l.grads.data + p.offset + p.numel);
}

std::string isa_tag(const std::string& what, Isa isa, bool rc = false, bool bf = false) {
  return what + " [" + isa_name(isa) + (rc ? ", recompute" : "") + (bf ? ", bf16" : "") + "]";
}

std::vector<Isa> isas() { return supported_isas(); }

// ---- LoRA vs PyTorch --------------------------------------------------------------------------

struct LoraCase {
  std::string fixture, tag;
  Isa isa;
  bool recompute;
};

void PrintTo(const LoraCase& c, std::ostream* os) {
  *os << c.fixture << "/" << c.tag << " " << isa_name(c.isa) << (c.recompute ? " recompute" : "");
}

class LoraVsTorch : public ::testing::TestWithParam<LoraCase> {};

TEST_P(LoraVsTorch, LossAndAdapterGradients) {
  const LoraCase& cs = GetParam();
  IsaScope scope(cs.isa);
  Loaded L(cs.fixture);
  Model m(L.cfg);
  L.load_weights(m);
  Lora lora = L.load_lora(cs.tag);
  m.lora = &lora;
  m.frozen = true;
  const auto in = L.fx.i("inputs"), tg = L.fx.i("targets");
  const float want = L.fx.f(cs.tag + ".loss")[0];
  const std::string tag = isa_tag(cs.fixture + "/" + cs.tag, cs.isa, cs.recompute);

  // every forward pass applies the adapters: evaluation too
  int valid = 0;
  EXPECT_NEAR(forward_loss(m, in.data(), tg.data(), L.B, L.T, nullptr, false, nullptr, &valid), want,
              kTorchTol * want) << tag;
  int want_valid = 0;
  for (int32_t t : tg) want_valid += t >= 0;
  EXPECT_EQ(valid, want_valid) << tag;

  TrainOptions opt;
  opt.recompute = cs.recompute;
  const float loss = forward_backward(m, in.data(), tg.data(), L.B, L.T, 1.0f, opt);
  note_error(kTorchTol, std::fabs(loss - want) / want, tag + " loss");
  EXPECT_NEAR(loss, want, kTorchTol * want) << tag;
  // frozen: no gradient (or its memory) for the base; gradients only for the adapters
  EXPECT_EQ(m.grads.size, 0u) << tag;
  ASSERT_EQ(lora.grads.size, lora.num_floats) << tag;
  for (const ParamInfo& p : lora.params) EXPECT_REL(lora_grad(lora, p), L.fx.f(cs.tag + ".grad." + p.name), kTorchTol, tag + " grad " + p.name);
  // targets without an adapter have no slot
  for (int l = 0; l < L.cfg.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) EXPECT_EQ(lora.has(l, t), ((lora.config.targets >> t) & 1) != 0);
}

std::vector<LoraCase> lora_cases() {
  std::vector<LoraCase> v;
  for (auto [fx, tag] : std::vector<std::pair<std::string, std::string>>{
           {"lora_llama", "r4"}, {"lora_llama", "rs"}, {"lora_qwen3", "r4"}, {"lora_qwen2", "r4"}})
    for (Isa isa : isas())
      for (bool rc : {false, true})
        if (!rc || isa == best_isa()) v.push_back({fx, tag, isa, rc});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraVsTorch, ::testing::ValuesIn(lora_cases()),
                         [](const ::testing::TestParamInfo<LoraCase>& i) {
                           return i.param.fixture + "_" + i.param.tag + "_" + isa_name(i.param.isa) +
                                  (i.param.recompute ? "_recompute" : "");
                         });

// ---- full fine-tuning: loss masks, packing, Qwen2 biases, vs PyTorch ---------------------------

Packing packing_of(const Fixture& fx) {
  const FxTensor& d = fx.at("docs");
  Packing pk;
  for (int64_t b = 0; b < d.shape[0]; b++) {
    pk.docs.emplace_back();
    for (int64_t k = 0; k < d.shape[1]; k++)
      if (int n = d.i[b * d.shape[1] + k]) pk.docs.back().push_back(n);
  }
  return pk;
}

struct SftCase {
  std::string fixture;
  Isa isa;
  bool recompute;
};

void PrintTo(const SftCase& c, std::ostream* os) {
  *os << c.fixture << " " << isa_name(c.isa) << (c.recompute ? " recompute" : "");
}

class LoraSftVsTorch : public ::testing::TestWithParam<SftCase> {};

TEST_P(LoraSftVsTorch, LossAndEveryGradient) {
  const SftCase& cs = GetParam();
  IsaScope scope(cs.isa);
  Loaded L(cs.fixture);
  Model m(L.cfg);
  L.load_weights(m);
  const auto in = L.fx.i("inputs"), tg = L.fx.i("targets");
  const bool packed = L.fx.has("docs");
  Packing pk;
  if (packed) pk = packing_of(L.fx);
  const float want = L.fx.f("loss")[0];
  const std::string tag = isa_tag(cs.fixture, cs.isa, cs.recompute);

  EXPECT_NEAR(forward_loss(m, in.data(), tg.data(), L.B, L.T, nullptr, false, packed ? &pk : nullptr), want,
              kTorchTol * want) << tag;
  zero_grads(m);
  TrainOptions opt;
  opt.recompute = cs.recompute;
  opt.packing = packed ? &pk : nullptr;
  const float loss = forward_backward(m, in.data(), tg.data(), L.B, L.T, 1.0f, opt);
  note_error(kTorchTol, std::fabs(loss - want) / want, tag + " loss");
  EXPECT_NEAR(loss, want, kTorchTol * want) << tag;
  size_t biases = 0;
  for (const ParamInfo& p : m.params) {
    std::vector<float> g(m.grads.data + p.offset, m.grads.data + p.offset + p.numel);
    EXPECT_REL(g, L.fx.f("grad." + p.name), kTorchTol, tag + " grad " + p.name);
    biases += p.name.find(".bias") != std::string::npos;
  }
  EXPECT_EQ(biases, L.cfg.attention_bias ? 3u * L.cfg.num_hidden_layers : 0u) << tag;
}

std::vector<SftCase> sft_cases() {
  std::vector<SftCase> v;
  for (std::string fx : {"lora_packed", "lora_qwen2"})
    for (Isa isa : isas())
      for (bool rc : {false, true})
        if (!rc || isa == best_isa()) v.push_back({fx, isa, rc});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraSftVsTorch, ::testing::ValuesIn(sft_cases()),
                         [](const ::testing::TestParamInfo<SftCase>& i) {
                           return i.param.fixture + "_" + isa_name(i.param.isa) + (i.param.recompute ? "_recompute" : "");
                         });

TEST(LoraPacking, PackedEqualsEachDocumentAloneOnEveryPath) {
  // The fixture's documents one at a time, each in a row of its own: their losses are the
  // reference's, the packed loss is their token-weighted mean and the packed gradient is the sum of
  // theirs weighted the same way (grad_scale = valid_k / valid).
  Loaded L("lora_packed");
  const Packing pk = packing_of(L.fx);
  const auto in = L.fx.i("inputs"), tg = L.fx.i("targets");
  int docs = 0;
  for (auto& row : pk.docs) docs += static_cast<int>(row.size());
  for (Isa isa : isas()) {
    IsaScope scope(isa);
    Model packed(L.cfg), alone(L.cfg);
    L.load_weights(packed);
    L.load_weights(alone);
    zero_grads(packed);
    zero_grads(alone);
    TrainOptions opt;
    opt.packing = &pk;
    int valid = 0;
    std::vector<float> losses(static_cast<size_t>(L.B) * L.T);
    const float eval = forward_loss(packed, in.data(), tg.data(), L.B, L.T, losses.data(), false, &pk, &valid);
    const float loss = forward_backward(packed, in.data(), tg.data(), L.B, L.T, 1.0f, opt);
    EXPECT_EQ(eval, loss) << isa_name(isa);
    double weighted = 0;
    int k = 0, total = 0;
    for (int b = 0; b < L.B; b++)
      for (int at = 0; int n : pk.docs[b]) {
        const std::string d = "doc." + std::to_string(k++) + ".";
        const auto di = L.fx.i(d + "inputs"), dt = L.fx.i(d + "targets");
        ASSERT_EQ(static_cast<int>(di.size()), n);
        const int nv = L.fx.i(d + "valid")[0];
        const float want = L.fx.f(d + "loss")[0];
        std::vector<float> dl(n);
        int v = 0;
        const float alone_eval = forward_loss(alone, di.data(), dt.data(), 1, n, dl.data(), false, nullptr, &v);
        EXPECT_EQ(v, nv);
        EXPECT_NEAR(alone_eval, want, kTorchTol * want) << isa_tag(d, isa);
        const float l = forward_backward(alone, di.data(), dt.data(), 1, n, static_cast<float>(nv) / valid);
        EXPECT_EQ(l, alone_eval) << isa_tag(d, isa);
        weighted += static_cast<double>(l) * nv;
        total += nv;
        // per-position losses: the same in the packed row as alone
        std::vector<float> in_row(losses.begin() + b * L.T + at, losses.begin() + b * L.T + at + n);
        EXPECT_REL(in_row, dl, kSameTol, isa_tag(d + "per-position losses", isa));
        at += n;
      }
    EXPECT_EQ(k, docs);
    EXPECT_EQ(total, valid);
    EXPECT_NEAR(loss, weighted / total, kSameTol * loss) << isa_name(isa);
    std::vector<float> gp(packed.grads.begin(), packed.grads.end()), ga(alone.grads.begin(), alone.grads.end());
    EXPECT_REL(gp, ga, kSameTol, isa_tag("packed grads vs sum of documents'", isa));
  }
}

// ---- properties on a random tiny model ----------------------------------------------------------

ModelConfig tiny_config(int dim = 32) {
  ModelConfig c;
  c.hidden_size = dim;
  c.intermediate_size = 2 * dim;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = dim / 4;
  c.vocab_size = 40;
  c.max_position_embeddings = 128;
  return c;
}

struct Batch {
  std::vector<int32_t> in, tg;
};

Batch random_batch(int B, int T, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  for (int i = 0; i < B * T; i++) b.in.push_back(static_cast<int32_t>(rng() % V));
  for (int i = 0; i < B * T; i++) b.tg.push_back(rng() % 4 == 0 ? -1 : static_cast<int32_t>(rng() % V));
  return b;
}

// An adapter after init_lora with B set to small random values too (B = 0 would make dA zero).
Lora random_lora(const ModelConfig& c, LoraConfig lc, uint64_t seed) {
  Lora lora = make_lora(c, lc);
  init_lora(lora, seed);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (auto& slots : lora.layers)
    for (const LoraSlot& s : slots)
      if (s.on)
        for (size_t i = 0; i < static_cast<size_t>(s.out) * lc.rank; i++) lora.weights[s.b + i] = nd(rng);
  return lora;
}

void scale_weights(Model& m, float f) {  // std 0.02 is too small for the adapters' effect to show
  for (size_t i = 0; i < m.weights.size; i++) m.weights[i] *= f;
}

TEST(Lora, MakeAndInitFollowPeft) {
  const ModelConfig c = tiny_config();
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  lc.targets = (1u << kLoraQ) | (1u << kLoraV) | (1u << kLoraDown);
  Lora lora = make_lora(c, lc);
  EXPECT_EQ(lora.scale, 2.0f);
  ASSERT_EQ(lora.params.size(), 2u * 3 * c.num_hidden_layers);
  EXPECT_EQ(lora.params[0].name, "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(lora.params[1].name, "model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ(lora.params[0].shape, (std::vector<int64_t>{4, c.hidden_size}));
  EXPECT_EQ(lora.params[1].shape, (std::vector<int64_t>{c.q_dim(), 4}));
  EXPECT_EQ(lora.params.back().name, "model.layers.1.mlp.down_proj.lora_B.weight");
  EXPECT_EQ(lora.params.back().shape, (std::vector<int64_t>{c.hidden_size, 4}));
  init_lora(lora, 5);
  for (const ParamInfo& p : lora.params) {
    const bool is_a = p.name.find("lora_A") != std::string::npos;
    const float bound = 1.0f / std::sqrt(static_cast<float>(p.shape[1]));
    float maxabs = 0;
    for (size_t i = 0; i < p.numel; i++) maxabs = std::max(maxabs, std::fabs(lora.weights[p.offset + i]));
    if (is_a) {
      EXPECT_TRUE(maxabs > 0.5f * bound && maxabs <= bound) << p.name << " " << maxabs;
    } else {
      EXPECT_EQ(maxabs, 0.0f) << p.name;  // B = 0: the adapted model starts as the base
    }
  }
  lc.rslora = true;
  EXPECT_FLOAT_EQ(make_lora(c, lc).scale, 4.0f);  // 8 / sqrt(4)
  lc.rank = 0;
  EXPECT_THROW(make_lora(c, lc), Error);
}

TEST(Lora, ZeroBStartsExactlyAtTheBase) {
  const ModelConfig c = tiny_config();
  Model base(c), m(c);
  init_weights(base, 3);
  init_weights(m, 3);
  Batch b = random_batch(2, 17, c.vocab_size, 1);
  zero_grads(base);
  const float want = forward_backward(base, b.in.data(), b.tg.data(), 2, 17);
  std::vector<float> want_logits(2 * 17 * c.vocab_size), logits(want_logits.size());
  forward_logits(base, b.in.data(), 2, 17, want_logits.data());
  Lora lora = make_lora(c, LoraConfig{});
  init_lora(lora, 9);
  m.lora = &lora;
  m.frozen = true;
  EXPECT_EQ(forward_backward(m, b.in.data(), b.tg.data(), 2, 17), want);
  forward_logits(m, b.in.data(), 2, 17, logits.data());
  EXPECT_EQ(0, std::memcmp(logits.data(), want_logits.data(), logits.size() * sizeof(float)));
  // with B = 0, dA = 0 exactly; dB carries the whole first gradient
  double na = 0, nb = 0;
  for (const ParamInfo& p : lora.params)
    for (size_t i = 0; i < p.numel; i++) (p.name.find("lora_A") != std::string::npos ? na : nb) += std::fabs(lora.grads[p.offset + i]);
  EXPECT_EQ(na, 0.0);
  EXPECT_GT(nb, 0.0);
  EXPECT_EQ(m.grads.size, 0u);
}

TEST(Lora, GradientsAccumulateOverMicroBatches) {
  const ModelConfig c = tiny_config();
  Model m(c);
  init_weights(m, 4);
  scale_weights(m, 5);
  LoraConfig lc;
  lc.rank = 4;
  Lora a = random_lora(c, lc, 2), b = random_lora(c, lc, 2);
  const int B = 4, T = 12;
  Batch x = random_batch(B, T, c.vocab_size, 2);
  for (auto& t : x.tg) t = t < 0 ? 1 : t;  // equal valid counts per half, so the mean splits in two
  m.frozen = true;
  m.lora = &a;
  const float full = forward_backward(m, x.in.data(), x.tg.data(), B, T);
  m.lora = &b;
  const float h1 = forward_backward(m, x.in.data(), x.tg.data(), B / 2, T, 0.5f);
  const float h2 = forward_backward(m, x.in.data() + B / 2 * T, x.tg.data() + B / 2 * T, B / 2, T, 0.5f);
  EXPECT_NEAR(full, 0.5f * (h1 + h2), 1e-6);
  std::vector<float> ga(a.grads.begin(), a.grads.end()), gb(b.grads.begin(), b.grads.end());
  EXPECT_REL(gb, ga, kSameTol, "accumulated adapter grads");
}

TEST(Lora, RecomputeGivesIdenticalGradients) {
  const ModelConfig c = tiny_config();
  Model m(c);
  init_weights(m, 7);
  scale_weights(m, 5);
  LoraConfig lc;
  lc.rank = 8;
  lc.targets = kLoraAllLinear & ~(1u << kLoraK);
  Lora a = random_lora(c, lc, 1), b = random_lora(c, lc, 1);
  Batch x = random_batch(3, 21, c.vocab_size, 3);
  m.frozen = true;
  m.lora = &a;
  const float la = forward_backward(m, x.in.data(), x.tg.data(), 3, 21);
  TrainOptions rc;
  rc.recompute = true;
  m.lora = &b;
  const float lb = forward_backward(m, x.in.data(), x.tg.data(), 3, 21, 1.0f, rc);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(0, std::memcmp(a.grads.data, b.grads.data, a.num_floats * sizeof(float)));
}

TEST(Lora, PackedLoraEqualsEachDocumentAlone) {
  // LoRA and packing together (the fixtures test each alone): row 0 holds documents of 7, 9 and 5
  // tokens and 3 positions over, row 1 one of 24 (an empty list: the whole row).
  const ModelConfig c = tiny_config();
  Model m(c);
  init_weights(m, 8);
  scale_weights(m, 5);
  m.frozen = true;
  LoraConfig lc;
  lc.rank = 4;
  Lora packed = random_lora(c, lc, 6), alone = random_lora(c, lc, 6);
  const int T = 24;
  Batch x = random_batch(2, T, c.vocab_size, 4);
  for (int t = 21; t < T; t++) x.tg[t] = -1;  // the stretch after the last document has no targets
  Packing pk;
  pk.docs = {{7, 9, 5}, {}};
  TrainOptions opt;
  opt.packing = &pk;
  m.lora = &packed;
  int valid = 0;
  forward_loss(m, x.in.data(), x.tg.data(), 2, T, nullptr, false, &pk, &valid);
  const float loss = forward_backward(m, x.in.data(), x.tg.data(), 2, T, 1.0f, opt);
  m.lora = &alone;
  double weighted = 0;
  auto one = [&](int at, int n) {
    int v = 0;
    for (int t = at; t < at + n; t++) v += x.tg[t] >= 0;
    const float l = forward_backward(m, x.in.data() + at, x.tg.data() + at, 1, n, static_cast<float>(v) / valid);
    weighted += static_cast<double>(l) * v;
  };
  one(0, 7), one(7, 9), one(16, 5), one(T, T);
  EXPECT_NEAR(loss, weighted / valid, kSameTol * loss);
  std::vector<float> gp(packed.grads.begin(), packed.grads.end()), ga(alone.grads.begin(), alone.grads.end());
  EXPECT_REL(gp, ga, kSameTol, "packed LoRA grads vs sum of documents'");
}

TEST(Lora, PackingOfWholeRowsChangesNothing) {
  const ModelConfig c = tiny_config();
  Model m(c);
  init_weights(m, 10);
  Batch x = random_batch(2, 16, c.vocab_size, 5);
  zero_grads(m);
  const float plain = forward_backward(m, x.in.data(), x.tg.data(), 2, 16);
  std::vector<float> g(m.grads.begin(), m.grads.end());
  Packing pk;
  pk.docs = {{16}, {}};
  TrainOptions opt;
  opt.packing = &pk;
  zero_grads(m);
  EXPECT_NEAR(forward_backward(m, x.in.data(), x.tg.data(), 2, 16, 1.0f, opt), plain, 1e-6 * plain);
  std::vector<float> gk(m.grads.begin(), m.grads.end());
  EXPECT_REL(gk, g, kSameTol, "one document per row vs no packing");
  pk.docs = {{10, 7}, {}};  // longer than the row
  EXPECT_THROW(forward_backward(m, x.in.data(), x.tg.data(), 2, 16, 1.0f, opt), Error);
}

TEST(Lora, AdamWOnTheAdaptersLowersTheLoss) {
  // training only the adapters (base frozen) fits one batch: the loss falls well below the start
  const ModelConfig c = tiny_config();
  Model m(c);
  init_weights(m, 1);
  scale_weights(m, 5);
  m.frozen = true;
  LoraConfig lc;
  lc.rank = 8;
  Lora lora = make_lora(c, lc);
  init_lora(lora, 2);
  m.lora = &lora;
  lora.adam_m = FloatBuffer(lora.num_floats);
  lora.adam_v = FloatBuffer(lora.num_floats);
  Batch x = random_batch(2, 16, c.vocab_size, 6);
  std::vector<float> base(m.weights.begin(), m.weights.end());
  AdamW opt{1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f};
  float first = 0, last = 0;
  for (int step = 1; step <= 40; step++) {
    zero_lora_grads(lora);
    last = forward_backward(m, x.in.data(), x.tg.data(), 2, 16);
    if (step == 1) first = last;
    adamw_update(lora.weights.data, lora.grads.data, lora.adam_m.data, lora.adam_v.data, lora.num_floats, opt, step);
  }
  EXPECT_LT(last, 0.7f * first);
  EXPECT_EQ(0, std::memcmp(base.data(), m.weights.data, base.size() * sizeof(float)));  // base untouched
  EXPECT_EQ(m.grads.size, 0u);
}

TEST(Lora, Bf16IsCloseToTheFixtureOnEveryPath) {
  for (auto [fx, tag] : std::vector<std::pair<std::string, std::string>>{{"lora_llama", "r4"}, {"lora_qwen3", "r4"}}) {
    Loaded L(fx);
    Model m(L.cfg);
    L.load_weights(m);
    Lora lora = L.load_lora(tag);
    m.lora = &lora;
    m.frozen = true;
    const auto in = L.fx.i("inputs"), tg = L.fx.i("targets");
    const float want = L.fx.f(tag + ".loss")[0];
    TrainOptions bf;
    bf.bf16 = true;
    for (Isa isa : isas()) {
      IsaScope scope(isa);
      zero_lora_grads(lora);
      const float loss = forward_backward(m, in.data(), tg.data(), L.B, L.T, 1.0f, bf);
      const std::string t = isa_tag(fx + "/" + tag, isa, false, true);
      note_error(1e-2, std::fabs(loss - want) / want, t + " loss");
      EXPECT_NEAR(loss, want, 1e-2 * want) << t;
      for (const ParamInfo& p : lora.params) {
        auto g = lora_grad(lora, p), w = L.fx.f(tag + ".grad." + p.name);
        double dot = 0, ng = 0, nw = 0;
        for (size_t i = 0; i < g.size(); i++) dot += double(g[i]) * w[i], ng += double(g[i]) * g[i], nw += double(w[i]) * w[i];
        EXPECT_GE(dot / std::sqrt(ng * nw), 0.999) << t << " " << p.name;
        EXPECT_REL(g, w, 5e-2, t + " grad " + p.name);
      }
    }
  }
}

// ---- QLoRA --------------------------------------------------------------------------------------

const char* kMatrices[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::string matrix_name(int l, const char* t) {
  return "model.layers." + std::to_string(l) + "." + (t[0] == 'q' || t[0] == 'k' || t[0] == 'v' || t[0] == 'o' ? "self_attn." : "mlp.") + t + ".weight";
}

// A QLoRA model of `base`'s weights in block type t, and an f32 model holding exactly the values
// that t's blocks represent (quantize, then dequantize: what QLoRA computes with).
struct QPair {
  Model q, deq;
  std::vector<std::vector<uint8_t>> bytes;  // per (layer, matrix): the quantized rows
  QPair(const Model& base, WType t) : q(base.config, t), deq(base.config) {
    std::memcpy(deq.weights.data, base.weights.data, base.num_floats * sizeof(float));
    for (const ParamInfo& p : q.params)
      if (p.in_buffer) std::memcpy(q.weights.data + p.offset, base.weights.data + base.param(p.name).offset, p.numel * sizeof(float));
    for (int l = 0; l < base.config.num_hidden_layers; l++) {
      for (const char* name : kMatrices) {
        const ParamInfo& p = base.param(matrix_name(l, name));
        const int rows = static_cast<int>(p.shape[0]), cols = static_cast<int>(p.shape[1]);
        const size_t rb = wtype_row_bytes(t, cols);
        std::vector<uint8_t> qb(rb * rows);
        for (int r = 0; r < rows; r++) {
          quantize_row(t, base.weights.data + p.offset + static_cast<size_t>(r) * cols, qb.data() + r * rb, cols);
          dequantize_row(t, qb.data() + r * rb, deq.weights.data + p.offset + static_cast<size_t>(r) * cols, cols);
        }
        bytes.push_back(std::move(qb));
      }
      // set_quant_matrices quantizes the f32 rows itself (ggml's rounding)
      set_quant_matrices(q, l, [&](const char* name) {
        const ParamInfo& p = base.param(matrix_name(l, name));
        return WMatrix{WType::F32, static_cast<int>(p.shape[0]), static_cast<int>(p.shape[1]),
                       base.weights.data + p.offset, static_cast<size_t>(p.shape[1]) * sizeof(float)};
      });
    }
    // the embedding and the LM head are quantized too (QLoRA keeps the whole base in the block type)
    const ModelConfig& c = base.config;
    const int V = c.vocab_size, C = c.hidden_size;
    std::vector<WMatrix> tables;
    for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
      if (c.tie_word_embeddings && std::strcmp(name, "lm_head.weight") == 0) continue;
      const ParamInfo& p = base.param(name);
      std::vector<uint8_t> qb(wtype_row_bytes(t, C));
      for (int r = 0; r < V; r++) {
        quantize_row(t, base.weights.data + p.offset + static_cast<size_t>(r) * C, qb.data(), C);
        dequantize_row(t, qb.data(), deq.weights.data + p.offset + static_cast<size_t>(r) * C, C);
      }
      tables.push_back(WMatrix{WType::F32, V, C, base.weights.data + p.offset, static_cast<size_t>(C) * sizeof(float)});
    }
    set_quant_tables(q, tables[0], tables.size() > 1 ? &tables[1] : nullptr);
    q.frozen = deq.frozen = true;
  }
};

ModelConfig qlora_config() {  // every matrix width a multiple of the 32-weight block
  ModelConfig c = tiny_config(64);
  c.intermediate_size = 96;
  return c;
}

TEST(Qlora, LayoutKeepsTheMatricesOutOfTheF32Buffers) {
  // every 2-D tensor (layer matrices, embedding, LM head) lives in the block type; the f32 buffer
  // keeps only the norms (and biases)
  const ModelConfig c = qlora_config();
  Model f(c);
  for (WType t : {WType::Q8_0, WType::Q4_0}) {
    Model q(c, t);
    size_t matrix_floats = 0;
    for (const ParamInfo& p : q.params) {
      const bool matrix = p.shape.size() == 2;
      EXPECT_EQ(p.in_buffer, !matrix) << p.name;
      if (matrix) matrix_floats += p.numel;
    }
    EXPECT_EQ(q.params.size(), f.params.size());
    EXPECT_LE(q.num_floats + matrix_floats, f.num_floats + 64 * c.num_hidden_layers) << wtype_name(t);
  }
}

TEST(Qlora, EqualsLoraOnTheDequantizedBaseOnEveryPath) {
  const ModelConfig c = qlora_config();
  Model base(c);
  init_weights(base, 21);
  scale_weights(base, 5);
  const int B = 2, T = 19;
  Batch x = random_batch(B, T, c.vocab_size, 7);
  LoraConfig lc;
  lc.rank = 8;
  lc.alpha = 16;
  for (WType t : {WType::Q8_0, WType::Q4_0}) {
    QPair P(base, t);
    ASSERT_EQ(P.q.qlayers.size(), static_cast<size_t>(c.num_hidden_layers));
    const QuantLayer& ql = P.q.qlayers[1];
    EXPECT_EQ(ql.qkv.type, t);
    EXPECT_EQ(ql.qkv.rows, c.qkv_dim());
    EXPECT_EQ(ql.qkv.cols, c.hidden_size);
    EXPECT_EQ(ql.gate_up.rows, 2 * c.intermediate_size);
    EXPECT_EQ(ql.down.cols, c.intermediate_size);
    // the stored blocks are ggml's rounding of the f32 rows: layer 1's down_proj, byte for byte
    const std::vector<uint8_t>& want = P.bytes[7 + 6];
    ASSERT_EQ(ql.down.row_bytes, wtype_row_bytes(t, c.intermediate_size));
    for (int r = 0; r < ql.down.rows; r++)
      ASSERT_EQ(0, std::memcmp(ql.down.row(r), want.data() + r * ql.down.row_bytes, ql.down.row_bytes)) << "row " << r;
    // and the embedding's rows (QLoRA never holds a float copy of the tables either)
    const WMatrix& emb = P.q.qtables.embed;
    ASSERT_EQ(emb.type, t);
    ASSERT_EQ(emb.rows, c.vocab_size);
    std::vector<uint8_t> qrow(wtype_row_bytes(t, c.hidden_size));
    for (int r = 0; r < emb.rows; r++) {
      quantize_row(t, base.weight("model.embed_tokens.weight") + static_cast<size_t>(r) * c.hidden_size, qrow.data(), c.hidden_size);
      ASSERT_EQ(0, std::memcmp(emb.row(r), qrow.data(), qrow.size())) << "embedding row " << r;
    }
    EXPECT_NE(P.q.qtables.head.data, emb.data);  // untied: a head of its own
    for (Isa isa : isas()) {
      IsaScope scope(isa);
      for (bool rc : {false, true}) {
        if (rc && isa != best_isa()) continue;
        Lora lq = random_lora(c, lc, 3), ld = random_lora(c, lc, 3);
        P.q.lora = &lq;
        P.deq.lora = &ld;
        TrainOptions opt;
        opt.recompute = rc;
        const std::string tag = isa_tag(std::string("qlora ") + wtype_name(t), isa, rc);
        const float want_loss = forward_backward(P.deq, x.in.data(), x.tg.data(), B, T, 1.0f, opt);
        const float loss = forward_backward(P.q, x.in.data(), x.tg.data(), B, T, 1.0f, opt);
        note_error(kSameTol, std::fabs(loss - want_loss) / want_loss, tag + " loss");
        EXPECT_NEAR(loss, want_loss, kSameTol * want_loss) << tag;
        EXPECT_EQ(P.q.grads.size, 0u);
        for (const ParamInfo& p : lq.params) EXPECT_REL(lora_grad(lq, p), lora_grad(ld, p), kSameTol, tag + " grad " + p.name);
        EXPECT_NEAR(forward_loss(P.q, x.in.data(), x.tg.data(), B, T, nullptr, false, nullptr), want_loss, kSameTol * want_loss) << tag;
      }
    }
  }
}

TEST(Qlora, PrequantizedBlocksAreCopiedAndRecomputeIsExact) {
  const ModelConfig c = qlora_config();
  Model base(c);
  init_weights(base, 22);
  scale_weights(base, 5);
  const WType t = WType::Q4_0;
  QPair P(base, t);
  // the same model from the already-quantized rows (as a GGUF file holds them)
  Model q2(c, t);
  for (const ParamInfo& p : q2.params)
    if (p.in_buffer) std::memcpy(q2.weights.data + p.offset, P.q.weights.data + P.q.param(p.name).offset, p.numel * sizeof(float));
  for (int l = 0; l < c.num_hidden_layers; l++)
    set_quant_matrices(q2, l, [&](const char* name) {
      int k = 0;
      while (std::strcmp(kMatrices[k], name) != 0) k++;
      const ParamInfo& p = base.param(matrix_name(l, name));
      const int cols = static_cast<int>(p.shape[1]);
      return WMatrix{t, static_cast<int>(p.shape[0]), cols, P.bytes[l * 7 + k].data(), wtype_row_bytes(t, cols)};
    });
  set_quant_tables(q2, P.q.qtables.embed, c.tie_word_embeddings ? nullptr : &P.q.qtables.head);
  q2.frozen = true;
  for (int l = 0; l < c.num_hidden_layers; l++)
    for (auto mp : {&QuantLayer::qkv, &QuantLayer::o, &QuantLayer::gate_up, &QuantLayer::down}) {
      const WMatrix &a = P.q.qlayers[l].*mp, &b = q2.qlayers[l].*mp;
      ASSERT_EQ(a.rows, b.rows);
      for (int r = 0; r < a.rows; r++) ASSERT_EQ(0, std::memcmp(a.row(r), b.row(r), a.row_bytes)) << "layer " << l << " row " << r;
    }
  LoraConfig lc;
  lc.rank = 4;
  Lora a = random_lora(c, lc, 5), b = random_lora(c, lc, 5);
  Batch x = random_batch(2, 15, c.vocab_size, 8);
  P.q.lora = &a;
  q2.lora = &b;
  TrainOptions rc;
  rc.recompute = true;
  const float la = forward_backward(P.q, x.in.data(), x.tg.data(), 2, 15);
  const float lb = forward_backward(q2, x.in.data(), x.tg.data(), 2, 15, 1.0f, rc);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(0, std::memcmp(a.grads.data, b.grads.data, a.num_floats * sizeof(float)));
}

TEST(Qlora, Bf16RunsAndStaysClose) {
  // bf16 QLoRA computes what bf16 LoRA on the dequantized base does (the same panels, rounded the
  // same way), and stays near f32 QLoRA within bf16's tolerances. Weights at init scale: a sharp
  // model (the other tests' 5x weights, loss ~7) amplifies bf16's rounding past any useful bound.
  const ModelConfig c = qlora_config();
  Model base(c);
  init_weights(base, 23);
  QPair P(base, WType::Q8_0);
  LoraConfig lc;
  lc.rank = 4;
  Lora a = random_lora(c, lc, 7), b = random_lora(c, lc, 7), d = random_lora(c, lc, 7);
  Batch x = random_batch(2, 17, c.vocab_size, 9);
  TrainOptions bf;
  bf.bf16 = true;
  P.q.lora = &a;
  const float f32 = forward_backward(P.q, x.in.data(), x.tg.data(), 2, 17);
  P.q.lora = &b;
  const float lb = forward_backward(P.q, x.in.data(), x.tg.data(), 2, 17, 1.0f, bf);
  P.deq.lora = &d;
  const float ld = forward_backward(P.deq, x.in.data(), x.tg.data(), 2, 17, 1.0f, bf);
  EXPECT_NEAR(lb, ld, kSameTol * ld);
  EXPECT_NEAR(lb, f32, 1e-2 * f32);
  note_error(1e-2, std::fabs(lb - f32) / f32, "qlora bf16 loss vs f32");
  for (const ParamInfo& p : a.params) {
    auto g = lora_grad(b, p), w = lora_grad(a, p);
    EXPECT_REL(g, lora_grad(d, p), kSameTol, "qlora bf16 vs bf16 on the dequantized base " + p.name);
    double dot = 0, ng = 0, nw = 0;
    for (size_t i = 0; i < g.size(); i++) dot += double(g[i]) * w[i], ng += double(g[i]) * g[i], nw += double(w[i]) * w[i];
    EXPECT_GE(dot / std::sqrt(ng * nw), 0.999) << p.name;
    // 8% (measured 4.6%): a small rank-4 gradient in the max norm, through a quantized embedding
    // and head as well; the direction check above and the 1e-5 match are the tight ones
    EXPECT_REL(g, w, 8e-2, "qlora bf16 vs f32 " + p.name);
  }
}

TEST(Qlora, NeedsAFrozenBase) {
  const ModelConfig c = qlora_config();
  Model base(c);
  init_weights(base, 24);
  QPair P(base, WType::Q8_0);
  Lora lora = random_lora(c, LoraConfig{}, 1);
  P.q.lora = &lora;
  P.q.frozen = false;  // the quantized matrices cannot be trained
  Batch x = random_batch(1, 8, c.vocab_size, 10);
  EXPECT_THROW(forward_backward(P.q, x.in.data(), x.tg.data(), 1, 8), Error);
}

}  // namespace
