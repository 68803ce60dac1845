// LoRA adapter files (src/infer/adapter.cpp): PEFT folders and GGUF LoRA files round trip bit for
// bit, adapters written by PEFT (other dtypes, ".default" keys, regex targets, layers_to_transform)
// load, every malformed adapter is an error naming the file and the tensor or field, --lora
// arguments parse, and merging an adapter gives the weights and the logits of applying it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "base/base.h"
#include "formats/formats.h"
#include "formats/gguf.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"
#include "infer/infer_test_util.h"
#include "model/lora.h"
#include "model/model.h"

using namespace todae;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string temp_dir(const std::string& name) { return test::fresh_temp_dir("todae_adapter", name); }

ModelConfig tiny(const std::string& arch) { return test::lora_test_config(arch); }

// A random base model (Llama or Qwen3) as a Hugging Face folder.
std::string write_base(const ModelConfig& c, const std::string& dir) {
  Model m(c);
  init_weights(m, 42);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (const ParamInfo& p : m.params)
    if (p.shape.size() == 1)
      for (size_t i = 0; i < p.numel; i++) m.weights.data[p.offset + i] = u(rng);
  std::vector<TensorRef> t;
  for (const ParamInfo& p : m.params) t.push_back(f32_tensor(p.name, p.shape, m.weights.data + p.offset));
  fs::create_directories(dir);
  write_safetensors(dir + "/model.safetensors", t);
  write_file_atomic(dir + "/config.json", c.to_json());
  return dir;
}

// An adapter with A and B both random (B = 0, as training starts, would hide most mistakes).
Lora random_lora(const ModelConfig& c, int rank, float alpha, uint32_t targets, bool rslora = false, uint32_t seed = 1) {
  LoraConfig cfg;
  cfg.rank = rank, cfg.alpha = alpha, cfg.targets = targets, cfg.rslora = rslora;
  Lora l = make_lora(c, cfg);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  for (const ParamInfo& p : l.params)
    for (size_t i = 0; i < p.numel; i++) l.weights.data[p.offset + i] = nd(rng);
  l.base_model = "todae/tiny";
  return l;
}

// The same slots on, and bit-identical A and B in each.
void expect_same_adapter(const Lora& a, const Lora& b) {
  EXPECT_EQ(a.config.rank, b.config.rank);
  EXPECT_EQ(a.config.alpha, b.config.alpha);
  EXPECT_EQ(a.config.rslora, b.config.rslora);
  EXPECT_EQ(a.config.targets, b.config.targets);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  const int r = a.config.rank;
  for (size_t l = 0; l < a.layers.size(); l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot &sa = a.layers[l][t], &sb = b.layers[l][t];
      ASSERT_EQ(sa.on, sb.on) << "layer " << l << " " << lora_target_name(t);
      if (!sa.on) continue;
      ASSERT_EQ(sa.in, sb.in);
      ASSERT_EQ(sa.out, sb.out);
      EXPECT_EQ(0, std::memcmp(a.A(int(l), t), b.A(int(l), t), size_t(r) * sa.in * 4)) << "A of layer " << l << " " << t;
      EXPECT_EQ(0, std::memcmp(a.B(int(l), t), b.B(int(l), t), size_t(sa.out) * r * 4)) << "B of layer " << l << " " << t;
    }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<float> logits_of(InferModel& m, const std::vector<int32_t>& toks, int adapter = 0) {
  const int V = m.config.vocab_size, T = int(toks.size());
  KVCache cache = make_kv_cache(m, 64, 1, WType::F32);
  Forward fw;
  Batch b;
  for (int i = 0; i < T; i++) b.add(toks[i], i, 0, true, adapter);
  std::vector<float> out(size_t(T) * V);
  forward_batch(m, cache, fw, b, out.data());
  return out;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0, ref = 0;
  for (size_t i = 0; i < a.size(); i++) mx = std::max(mx, double(std::fabs(a[i] - b[i]))), ref = std::max(ref, double(std::fabs(b[i])));
  return mx / std::max(ref, 1e-12);
}

const uint32_t kQV = (1u << kLoraQ) | (1u << kLoraV);

}  // namespace

// ---- PEFT folders -------------------------------------------------------------------------------

TEST(AdapterPeft, RoundTripIsBitExactWithPeftNamesAndFields) {
  for (const char* arch : {"llama", "qwen3"}) {
    ModelConfig c = tiny(arch);
    std::string dir = temp_dir(cat("peft_", arch));
    Lora lora = random_lora(c, 4, 8, kLoraAllLinear);
    save_peft_adapter(lora, dir + "/a");
    Lora back = load_lora(dir + "/a", c);
    expect_same_adapter(lora, back);
    EXPECT_FLOAT_EQ(back.scale, 2.0f);  // alpha / r
    EXPECT_EQ(back.base_model, "todae/tiny");
    EXPECT_EQ(back.params.size(), lora.params.size());

    json j = json::parse(read_file(dir + "/a/adapter_config.json"));
    EXPECT_EQ(j["peft_type"], "LORA");
    EXPECT_EQ(j["task_type"], "CAUSAL_LM");
    EXPECT_EQ(j["r"], 4);
    EXPECT_EQ(j["lora_alpha"], 8);
    EXPECT_EQ(j["use_rslora"], false);
    EXPECT_EQ(j["base_model_name_or_path"], "todae/tiny");
    EXPECT_EQ(j["target_modules"],
              json({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}));
    EXPECT_EQ(j["bias"], "none");
    EXPECT_EQ(j["lora_dropout"], 0.0);
    EXPECT_EQ(j["fan_in_fan_out"], false);
    EXPECT_EQ(j["inference_mode"], true);
    EXPECT_TRUE(j["modules_to_save"].is_null());
    EXPECT_TRUE(j["layers_to_transform"].is_null());
    EXPECT_EQ(j["rank_pattern"], json::object());
    EXPECT_EQ(j["alpha_pattern"], json::object());

    auto st = open_safetensors(dir + "/a/adapter_model.safetensors");
    EXPECT_EQ(st->tensors.size(), size_t(2 * 7 * c.num_hidden_layers));
    const TensorInfo& a = st->get("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
    EXPECT_EQ(a.dtype, DType::F32);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{4, c.hidden_size}));
    EXPECT_EQ(st->get("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight").shape,
              (std::vector<int64_t>{c.hidden_size, 4}));
    EXPECT_EQ(st->get("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight").shape,
              (std::vector<int64_t>{c.kv_dim(), 4}));
    // a file of the folder stands for the folder
    expect_same_adapter(lora, load_lora(dir + "/a/adapter_config.json", c));
    fs::remove_all(dir);
  }
}

TEST(AdapterPeft, SomeTargetsAndSomeLayers) {
  ModelConfig c = tiny("llama");
  c.num_hidden_layers = 3;
  std::string dir = temp_dir("subset");
  Lora lora = random_lora(c, 2, 4, kQV);
  save_peft_adapter(lora, dir + "/qv");
  EXPECT_EQ(json::parse(read_file(dir + "/qv/adapter_config.json"))["target_modules"], json({"q_proj", "v_proj"}));
  Lora back = load_lora(dir + "/qv", c);
  expect_same_adapter(lora, back);
  EXPECT_FALSE(back.has(0, kLoraK));

  // layers_to_transform [1, 2]: the file holds layers 1 and 2 only
  json j = json::parse(read_file(dir + "/qv/adapter_config.json"));
  j["layers_to_transform"] = {1, 2};
  fs::create_directories(dir + "/l12");
  write_file_atomic(dir + "/l12/adapter_config.json", j.dump());
  auto st = open_safetensors(dir + "/qv/adapter_model.safetensors");
  std::vector<std::vector<float>> keep;
  std::vector<TensorRef> t;
  for (const TensorInfo& ti : st->tensors) {
    if (ti.name.find("layers.0.") != std::string::npos) continue;
    keep.emplace_back(ti.numel());
    st->read_f32(ti.name, keep.back());
    t.push_back(f32_tensor(ti.name, ti.shape, keep.back().data()));
  }
  write_safetensors(dir + "/l12/adapter_model.safetensors", t);
  Lora part = load_lora(dir + "/l12", c);
  EXPECT_FALSE(part.has(0, kLoraQ));
  EXPECT_FALSE(part.has(0, kLoraV));
  EXPECT_TRUE(part.has(1, kLoraQ) && part.has(2, kLoraV));
  EXPECT_EQ(part.params.size(), 8u);  // A and B of q and v in two layers
  EXPECT_EQ(0, std::memcmp(part.B(2, kLoraV), lora.B(2, kLoraV), size_t(c.kv_dim()) * 2 * 4));
  // written back with layers_to_transform, read back the same
  save_peft_adapter(part, dir + "/l12b");
  EXPECT_EQ(json::parse(read_file(dir + "/l12b/adapter_config.json"))["layers_to_transform"], json({1, 2}));
  expect_same_adapter(part, load_lora(dir + "/l12b", c));
  fs::remove_all(dir);
}

// What PEFT itself may write: 16-bit tensors, the adapter name in the keys, a regular expression
// or "all-linear" for the targets, exclude_modules, newer fields todae does not need.
TEST(AdapterPeft, ReadsAdaptersMadeByPeft) {
  ModelConfig c = tiny("llama");
  std::string dir = temp_dir("peftmade");
  const int r = 2;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<uint16_t>> keep;
  std::vector<TensorRef> t;
  std::map<std::string, std::vector<uint16_t>> raw;
  auto add = [&](int l, int target, bool b, DType dt) {
    int in, out;
    lora_target_shape(c, target, &in, &out);
    std::vector<int64_t> shape = b ? std::vector<int64_t>{out, r} : std::vector<int64_t>{r, in};
    keep.emplace_back(size_t(shape[0] * shape[1]));
    for (uint16_t& h : keep.back()) h = dt == DType::BF16 ? bf16_from_float(nd(rng)) : f16_from_float(nd(rng));
    std::string name = cat("base_model.model.model.layers.", l, ".", lora_target_module(target), ".",
                           lora_target_name(target), b ? ".lora_B" : ".lora_A", ".default.weight");
    t.push_back({name, dt, shape, keep.back().data(), keep.back().size() * 2});
    raw[cat(l, target, b)] = keep.back();
  };
  keep.reserve(64);
  for (int l = 0; l < 2; l++)
    for (int target : {kLoraQ, kLoraV})
      if (!(l == 0 && target == kLoraV))  // excluded below
        for (bool b : {false, true}) add(l, target, b, target == kLoraQ ? DType::BF16 : DType::F16);
  fs::create_directories(dir + "/p");
  SafetensorsWriteOptions wo;
  wo.checksums = false;  // as the safetensors library writes: no todae checksums
  write_safetensors(dir + "/p/adapter_model.safetensors", t, {}, wo);
  json cfg = {{"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"r", r}, {"lora_alpha", 3.5},
              {"target_modules", ".*\\.(q_proj|v_proj)"}, {"exclude_modules", {"model.layers.0.self_attn.v_proj"}},
              {"lora_dropout", 0.05}, {"use_dora", false}, {"lora_bias", false}, {"megatron_config", nullptr},
              {"loftq_config", json::object()}, {"rank_pattern", json::object()}, {"layers_to_transform", nullptr},
              {"revision", nullptr}, {"auto_mapping", nullptr}, {"base_model_name_or_path", "Qwen/Qwen3-0.6B"}};
  write_file_atomic(dir + "/p/adapter_config.json", cfg.dump(2));
  Lora l = load_lora(dir + "/p", c, 0.5f);
  EXPECT_TRUE(l.has(0, kLoraQ) && l.has(1, kLoraQ) && l.has(1, kLoraV));
  EXPECT_FALSE(l.has(0, kLoraV));
  EXPECT_FALSE(l.has(0, kLoraK));
  EXPECT_FLOAT_EQ(l.scale, 3.5f / 2 * 0.5f);
  EXPECT_EQ(l.base_model, "Qwen/Qwen3-0.6B");
  const auto& bq = raw[cat(1, int(kLoraQ), true)];
  for (size_t i = 0; i < bq.size(); i++) ASSERT_EQ(l.B(1, kLoraQ)[i], float_from_bf16(bq[i]));
  const auto& av = raw[cat(1, int(kLoraV), false)];
  for (size_t i = 0; i < av.size(); i++) ASSERT_EQ(l.A(1, kLoraV)[i], float_from_f16(av[i]));

  // "all-linear" (any case) with the keys of every target
  cfg["target_modules"] = "All-Linear";
  cfg.erase("exclude_modules");
  write_file_atomic(dir + "/p/adapter_config.json", cfg.dump());
  EXPECT_NE(error_of([&] { load_lora(dir + "/p", c); }).find("layers.0.self_attn.k_proj.lora_A.weight' is missing"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(AdapterPeft, ConfigRoundTripForEveryShapeOfTargets) {
  // uniform, some layers, and a different set per layer (written as full module keys)
  for (std::vector<uint32_t> masks : {std::vector<uint32_t>{kQV, kQV, kQV}, {0, kLoraAllLinear, kLoraAllLinear},
                                      {1u << kLoraQ, 1u << kLoraDown, 0}}) {
    PeftLoraConfig pc;
    pc.lora.rank = 8, pc.lora.alpha = 12.5f, pc.lora.rslora = true;
    pc.layer_targets = masks;
    pc.lora.targets = 0;
    for (uint32_t m : masks) pc.lora.targets |= m;
    const std::string text = peft_config_json(pc);
    PeftLoraConfig back = parse_peft_config(text, "x.json", 3);
    EXPECT_EQ(back.layer_targets, masks) << text;
    EXPECT_EQ(back.lora.targets, pc.lora.targets);
    EXPECT_EQ(back.lora.alpha, 12.5f);
    EXPECT_TRUE(back.lora.rslora);
    EXPECT_EQ(peft_config_json(back), text);
  }
}

// ---- scales -------------------------------------------------------------------------------------

TEST(AdapterScale, AlphaOverRankRsloraAndTheUsersMultiplier) {
  ModelConfig c = tiny("llama");
  std::string dir = temp_dir("scale");
  Lora plain = random_lora(c, 4, 16, kQV);
  save_peft_adapter(plain, dir + "/plain");
  EXPECT_FLOAT_EQ(load_lora(dir + "/plain", c).scale, 4.0f);
  EXPECT_FLOAT_EQ(load_lora(dir + "/plain", c, 0.25f).scale, 1.0f);
  EXPECT_FLOAT_EQ(load_lora(dir + "/plain", c, -1.0f).scale, -4.0f);  // negation is a use of scales

  Lora rs = random_lora(c, 4, 16, kQV, true);
  save_peft_adapter(rs, dir + "/rs");
  EXPECT_EQ(json::parse(read_file(dir + "/rs/adapter_config.json"))["use_rslora"], true);
  EXPECT_FLOAT_EQ(load_lora(dir + "/rs", c).scale, 8.0f);  // 16 / sqrt(4)
  EXPECT_FLOAT_EQ(load_lora(dir + "/rs", c, 0.5f).scale, 4.0f);

  // GGUF: llama.cpp's factor is adapter.lora.alpha / rank, so rsLoRA's alpha is written times sqrt(r)
  save_gguf_lora(rs, c, dir + "/rs.gguf");
  auto f = open_gguf(dir + "/rs.gguf");
  EXPECT_EQ(f->find_value("adapter.lora.alpha")->type, GgufValueType::FLOAT32);
  EXPECT_FLOAT_EQ(float(f->get_float("adapter.lora.alpha")) / 4, 8.0f);
  Lora g = load_lora(dir + "/rs.gguf", c, 0.5f);
  EXPECT_TRUE(g.config.rslora);
  EXPECT_EQ(g.config.alpha, 16.0f);
  EXPECT_FLOAT_EQ(g.scale, 4.0f);
  EXPECT_THROW(load_lora(dir + "/plain", c, std::nanf("")), Error);
  fs::remove_all(dir);
}

// ---- GGUF ---------------------------------------------------------------------------------------

TEST(AdapterGguf, RoundTripIsBitExactAndUsesLlamaCppConventions) {
  for (const char* arch : {"llama", "qwen3", "qwen2"}) {
    ModelConfig c = tiny(arch);
    std::string dir = temp_dir(cat("gguf_", arch));
    Lora lora = random_lora(c, 4, 8, kLoraAllLinear & ~(1u << kLoraUp));
    save_gguf_lora(lora, c, dir + "/a.gguf");
    Lora back = load_lora(dir + "/a.gguf", c);
    expect_same_adapter(lora, back);
    EXPECT_FLOAT_EQ(back.scale, 2.0f);
    EXPECT_EQ(back.base_model, "todae/tiny");

    auto f = open_gguf(dir + "/a.gguf");
    EXPECT_EQ(f->get_string("general.type"), "adapter");
    EXPECT_EQ(f->get_string("adapter.type"), "lora");
    EXPECT_EQ(f->get_string("general.architecture"), arch);
    EXPECT_FLOAT_EQ(float(f->get_float("adapter.lora.alpha")), 8.0f);
    EXPECT_EQ(f->find("blk.0.ffn_up.weight.lora_a"), nullptr);
    const GgufTensorInfo& qa = f->get("blk.1.attn_q.weight.lora_a");
    EXPECT_EQ(qa.type, GgmlType::F32);
    EXPECT_EQ(qa.dims, (std::vector<int64_t>{c.hidden_size, 4}));  // [in, r], innermost first
    EXPECT_EQ(f->get("blk.1.attn_q.weight.lora_b").dims, (std::vector<int64_t>{4, c.q_dim()}));
    EXPECT_EQ(f->get("blk.0.attn_output.weight.lora_a").dims, (std::vector<int64_t>{c.q_dim(), 4}));
    EXPECT_EQ(f->get("blk.0.ffn_down.weight.lora_b").dims, (std::vector<int64_t>{4, c.hidden_size}));
    // A as is; B of q and k in llama.cpp's row order for "llama" only
    EXPECT_EQ(0, std::memcmp(f->data(qa), lora.A(1, kLoraQ), qa.nbytes));
    for (int t : {int(kLoraQ), int(kLoraK), int(kLoraV)}) {
      const GgufTensorInfo& b = f->get(cat("blk.1.", t == kLoraQ ? "attn_q" : t == kLoraK ? "attn_k" : "attn_v", ".weight.lora_b"));
      std::vector<float> want(lora.B(1, t), lora.B(1, t) + b.numel());
      const int heads = std::string(arch) == "llama" && t != kLoraV ? (t == kLoraQ ? c.num_attention_heads : c.num_key_value_heads) : 0;
      if (heads)
        rows_to_gguf_llama(reinterpret_cast<const uint8_t*>(lora.B(1, t)), reinterpret_cast<uint8_t*>(want.data()), heads,
                           c.head_dim, 4 * 4);
      EXPECT_EQ(0, std::memcmp(f->data(b), want.data(), b.nbytes)) << arch << " target " << t;
    }
    fs::remove_all(dir);
  }
}

// What llama.cpp computes from our base GGUF and our GGUF LoRA, W_file + scale·B_file·A_file, is
// the file's row order of what todae computes, W + scale·B·A: the permutation of lora_b matches
// the base's.
TEST(AdapterGguf, LlamaFileRowsOfBaseAndAdapterAgree) {
  ModelConfig c = tiny("llama");
  std::string dir = temp_dir("rows");
  InferModel m = load_model(write_base(c, dir + "/base"));
  save_model(m, dir + "/base.gguf", WType::F32);
  Lora lora = random_lora(c, 3, 6, kLoraAllLinear);
  save_gguf_lora(lora, c, dir + "/a.gguf");
  auto fb = open_gguf(dir + "/base.gguf");
  auto fa = open_gguf(dir + "/a.gguf");
  for (int t : {int(kLoraQ), int(kLoraK)}) {
    const char* n = t == kLoraQ ? "attn_q" : "attn_k";
    const int out = t == kLoraQ ? c.q_dim() : c.kv_dim(), in = c.hidden_size, r = 3;
    // todae's merged rows, then into the file's order
    std::vector<float> merged(size_t(out) * in), merged_file(merged.size());
    const WMatrix& W = t == kLoraQ ? m.layers[1].q : m.layers[1].k;
    std::memcpy(merged.data(), W.data, merged.size() * 4);
    lora_merge(merged.data(), lora, 1, t);
    rows_to_gguf_llama(reinterpret_cast<const uint8_t*>(merged.data()), reinterpret_cast<uint8_t*>(merged_file.data()),
                       t == kLoraQ ? c.num_attention_heads : c.num_key_value_heads, c.head_dim, size_t(in) * 4);
    const float* Wf = reinterpret_cast<const float*>(fb->data(fb->get(cat("blk.1.", n, ".weight"))));
    const float* Af = reinterpret_cast<const float*>(fa->data(fa->get(cat("blk.1.", n, ".weight.lora_a"))));
    const float* Bf = reinterpret_cast<const float*>(fa->data(fa->get(cat("blk.1.", n, ".weight.lora_b"))));
    const double scale = fa->get_float("adapter.lora.alpha") / r;
    double worst = 0;
    for (int o = 0; o < out; o++)
      for (int i = 0; i < in; i++) {
        double acc = 0;
        for (int k = 0; k < r; k++) acc += double(Bf[o * r + k]) * Af[k * in + i];
        worst = std::max(worst, std::fabs(Wf[o * in + i] + scale * acc - merged_file[size_t(o) * in + i]));
      }
    EXPECT_LT(worst, 1e-6) << n;
  }
  fs::remove_all(dir);
}

// ---- errors -------------------------------------------------------------------------------------

TEST(AdapterErrors, EachNamesTheFileAndTheTensorOrField) {
  ModelConfig c = tiny("llama");
  std::string dir = temp_dir("errors");
  Lora lora = random_lora(c, 4, 8, kQV);
  save_peft_adapter(lora, dir + "/good");
  const std::string good_cfg = read_file(dir + "/good/adapter_config.json");
  auto st = open_safetensors(dir + "/good/adapter_model.safetensors");

  // a copy of the good adapter with the config edited and tensors dropped / replaced
  int n = 0;
  auto variant = [&](const std::function<void(json&)>& edit_cfg, const std::string& drop = "",
                     const std::string& replace = "", std::vector<int64_t> shape = {}) {
    std::string d = cat(dir, "/v", n++);
    fs::create_directories(d);
    json j = json::parse(good_cfg);
    edit_cfg(j);
    write_file_atomic(d + "/adapter_config.json", j.dump());
    std::vector<std::vector<float>> keep;
    std::vector<TensorRef> t;
    keep.reserve(st->tensors.size() + 1);
    for (const TensorInfo& ti : st->tensors) {
      if (ti.name == drop) continue;
      keep.emplace_back(ti.numel());
      st->read_f32(ti.name, keep.back());
      if (ti.name == replace) {
        keep.back().assign(size_t(shape[0] * shape[1]), 0.5f);
        t.push_back(f32_tensor(ti.name, shape, keep.back().data()));
      } else {
        t.push_back(f32_tensor(ti.name, ti.shape, keep.back().data()));
      }
    }
    write_safetensors(d + "/adapter_model.safetensors", t);
    return d;
  };
  auto expect_error = [&](const std::string& path, const std::vector<std::string>& parts) {
    std::string e = error_of([&] { load_lora(path, c); });
    for (const std::string& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << p << "' not in: " << e;
  };
  auto none = [](json&) {};
  const std::string qa = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
  const std::string vb = "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight";

  expect_error(variant(none, qa), {"adapter_model.safetensors", "layers.1.self_attn.q_proj.lora_A.weight' is missing"});
  expect_error(variant(none, "", qa, {4, 32}), {"adapter_model.safetensors", qa, "shape [4, 32], expected [4, 64]"});
  expect_error(variant(none, "", vb, {32, 3}), {"adapter_model.safetensors", vb, "rank 3", "r = 4"});
  expect_error(variant([](json& j) { j["r"] = 8; }), {"adapter_model.safetensors", "rank 4", "r = 8"});
  expect_error(variant([](json& j) { j["rank_pattern"] = {{"q_proj", 8}}; }), {"adapter_config.json", "rank_pattern", "not supported"});
  expect_error(variant([](json& j) { j["alpha_pattern"] = {{"v_proj", 3}}; }), {"adapter_config.json", "alpha_pattern", "not supported"});
  expect_error(variant([](json& j) { j["use_dora"] = true; }), {"adapter_config.json", "use_dora", "DoRA"});
  expect_error(variant([](json& j) { j["bias"] = "all"; }), {"adapter_config.json", "bias", "not supported"});
  expect_error(variant([](json& j) { j["modules_to_save"] = {"lm_head"}; }), {"adapter_config.json", "modules_to_save"});
  expect_error(variant([](json& j) { j["peft_type"] = "PREFIX_TUNING"; }), {"adapter_config.json", "peft_type", "PREFIX_TUNING"});
  expect_error(variant([](json& j) { j["task_type"] = "SEQ_CLS"; }), {"adapter_config.json", "task_type", "SEQ_CLS"});
  expect_error(variant([](json& j) { j["target_modules"] = {"q_proj"}; }),
               {"adapter_model.safetensors", "v_proj.lora_A.weight", "does not target model.layers.0.self_attn.v_proj"});
  expect_error(variant([](json& j) { j["target_modules"] = {"q_proj", "v_proj", "lm_head"}; }),
               {"adapter_config.json", "target_modules", "lm_head", "not supported"});
  expect_error(variant([](json& j) { j["target_modules"] = {"c_attn"}; }), {"adapter_config.json", "target_modules", "matches none"});
  expect_error(variant([](json& j) { j["target_modules"] = "(q_proj"; }), {"adapter_config.json", "target_modules", "regular expression"});
  expect_error(variant([](json& j) { j["layers_to_transform"] = {0, 5}; }), {"adapter_config.json", "layers_to_transform", "layer 5"});
  expect_error(variant([](json& j) { j["lora_alpha"] = -2; }), {"adapter_config.json", "lora_alpha"});
  expect_error(variant([](json& j) { j["r"] = "four"; }), {"adapter_config.json", ": r:"});
  expect_error(variant([](json& j) { j.erase("target_modules"); }), {"adapter_config.json", "target_modules", "missing"});

  // an extra tensor (an adapter on lm_head, a norm, ...)
  {
    std::string d = variant(none);
    std::vector<float> z(4 * 64);
    std::vector<TensorRef> t;
    std::vector<std::vector<float>> keep;
    keep.reserve(st->tensors.size());
    for (const TensorInfo& ti : st->tensors) {
      keep.emplace_back(ti.numel());
      st->read_f32(ti.name, keep.back());
      t.push_back(f32_tensor(ti.name, ti.shape, keep.back().data()));
    }
    t.push_back(f32_tensor("base_model.model.lm_head.lora_A.weight", {4, 64}, z.data()));
    write_safetensors(d + "/adapter_model.safetensors", t);
    expect_error(d, {"adapter_model.safetensors", "base_model.model.lm_head.lora_A.weight", "not a lora_A/lora_B"});
  }
  // files that are not there or not adapters
  fs::create_directories(dir + "/empty");
  expect_error(dir + "/empty", {"empty", "no adapter_config.json"});
  {
    std::string d = variant(none);
    fs::remove(d + "/adapter_model.safetensors");
    write_file_atomic(d + "/adapter_model.bin", "pickle");
    expect_error(d, {"adapter_model.bin", "pickle"});
  }
  {
    std::string d = variant(none);
    write_file_atomic(d + "/adapter_config.json", "{\"peft_type\": \"LORA\", ");
    expect_error(d, {"adapter_config.json", "not valid JSON"});
  }
  expect_error(dir + "/nothing", {"nothing", "no such file"});
  write_file_atomic(dir + "/notes.txt", "hello");
  expect_error(dir + "/notes.txt", {"notes.txt", "not a LoRA adapter"});
  // shapes against another base
  ModelConfig wide = c;
  wide.hidden_size = 128;
  wide.validate();
  EXPECT_NE(error_of([&] { load_lora(dir + "/good", wide); }).find("q_proj.lora_A.weight' has shape [4, 64], expected [4, 128]"),
            std::string::npos);

  // GGUF: not an adapter, another architecture, half a pair, a wrong shape, a foreign tensor
  InferModel m = load_model(write_base(c, dir + "/base"));
  save_model(m, dir + "/base.gguf", WType::F32);
  expect_error(dir + "/base.gguf", {"base.gguf", "general.type", "give it to --model"});
  save_gguf_lora(lora, c, dir + "/a.gguf");
  EXPECT_NE(error_of([&] { load_lora(dir + "/a.gguf", tiny("qwen3")); }).find("a.gguf: general.architecture: an adapter for 'llama', but the base is 'qwen3'"),
            std::string::npos);
  auto g = open_gguf(dir + "/a.gguf");
  auto rewrite = [&](const std::string& name, const std::string& drop, const std::string& rename = "",
                     std::vector<int64_t> dims = {}) {
    std::vector<std::pair<std::string, GgufValue>> kv(g->metadata.begin(), g->metadata.end());
    std::vector<GgufTensorRef> t;
    std::vector<float> z(4096, 0.25f);
    for (const GgufTensorInfo& ti : g->tensors) {
      if (ti.name == drop) continue;
      if (!dims.empty() && ti.name == rename) t.push_back({ti.name, GgmlType::F32, dims, z.data(), uint64_t(dims[0] * dims[1] * 4)});
      else t.push_back({ti.name == rename && dims.empty() ? "blk.0.attn_q_norm.weight" : ti.name, ti.type, ti.dims, g->data(ti), ti.nbytes});
    }
    write_gguf(dir + "/" + name, kv, t);
    return dir + "/" + name;
  };
  expect_error(rewrite("half.gguf", "blk.1.attn_v.weight.lora_b"), {"half.gguf", "blk.1.attn_v.weight.lora_b' is missing"});
  expect_error(rewrite("shape.gguf", "", "blk.0.attn_q.weight.lora_a", {32, 4}),
               {"shape.gguf", "blk.0.attn_q.weight.lora_a", "shape [32, 4], expected [64, 4]"});
  expect_error(rewrite("rank.gguf", "", "blk.0.attn_v.weight.lora_b", {2, 32}), {"rank.gguf", "blk.0.attn_v.weight.lora_b", "rank 2"});
  expect_error(rewrite("norm.gguf", "", "blk.0.attn_q.weight.lora_b"), {"norm.gguf", "blk.0.attn_q_norm.weight", "not the lora_a/lora_b"});
  fs::remove_all(dir);
}

// ---- --lora arguments and loading into a model -------------------------------------------------

TEST(AdapterArg, PathsNamesAndScales) {
  auto p = [](std::string_view s) { return parse_lora_arg(s); };
  LoraArg a = p("runs/sql");
  EXPECT_EQ(a.path, "runs/sql");
  EXPECT_EQ(a.name, "sql");
  EXPECT_EQ(a.scale, 1.0f);
  a = p("runs/sql/:0.5");
  EXPECT_EQ(a.path, "runs/sql/");
  EXPECT_EQ(a.name, "sql");
  EXPECT_EQ(a.scale, 0.5f);
  a = p("sql-v2=/data/adapters/sql:1.25");
  EXPECT_EQ(a.name, "sql-v2");
  EXPECT_EQ(a.path, "/data/adapters/sql");
  EXPECT_EQ(a.scale, 1.25f);
  a = p("org/model=x.gguf");
  EXPECT_EQ(a.name, "org/model");
  EXPECT_EQ(a.path, "x.gguf");
  a = p("a/b.gguf:-1");
  EXPECT_EQ(a.name, "b");
  EXPECT_EQ(a.scale, -1.0f);
  // a ':' not followed by a number belongs to the path
  a = p("C:stuff/x:y");
  EXPECT_EQ(a.path, "C:stuff/x:y");
  EXPECT_EQ(a.scale, 1.0f);
  a = p("n=dir:with:colons:2");
  EXPECT_EQ(a.path, "dir:with:colons");
  EXPECT_EQ(a.scale, 2.0f);
  // an existing path wins over the reading of '=' and ':'
  std::string dir = temp_dir("arg");
  fs::create_directories(dir + "/x=y:3");
  a = p(dir + "/x=y:3");
  EXPECT_EQ(a.path, dir + "/x=y:3");
  EXPECT_EQ(a.scale, 1.0f);
  fs::remove_all(dir);

  for (const char* bad : {"", "=dir", "name=", ":0.5", "dir:", "dir:inf", "my name=dir"})
    EXPECT_NE(error_of([&] { p(bad); }).find("--lora"), std::string::npos) << bad;
}

TEST(AdapterAdd, IdsFromOneAndNamesUnique) {
  ModelConfig c = tiny("qwen3");
  std::string dir = temp_dir("add");
  InferModel m = load_model(write_base(c, dir + "/base"));
  save_peft_adapter(random_lora(c, 2, 4, kQV), dir + "/a");
  save_gguf_lora(random_lora(c, 2, 4, kLoraAllLinear, false, 9), c, dir + "/b.gguf");
  EXPECT_EQ(add_adapter(m, parse_lora_arg(dir + "/a:0.5")), 1);
  EXPECT_EQ(add_adapter(m, parse_lora_arg(dir + "/b.gguf")), 2);
  EXPECT_EQ(m.adapter_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(m.adapters[0]->scale, 1.0f);
  EXPECT_NE(error_of([&] { add_adapter(m, parse_lora_arg(dir + "/a")); }).find("'a' is already loaded"), std::string::npos);
  EXPECT_EQ(add_adapter(m, parse_lora_arg("a2=" + dir + "/a")), 3);
  EXPECT_EQ(m.adapters.size(), 3u);
  fs::remove_all(dir);
}

// ---- merging ------------------------------------------------------------------------------------

TEST(AdapterMerge, WeightsAreTheBasePlusScaledBA) {
  for (WType type : {WType::F32, WType::Q8_0}) {
    ModelConfig c = tiny("llama");
    std::string dir = temp_dir("merge");
    LoadOptions lo;
    lo.weight_type = type;
    InferModel m = load_model(write_base(c, dir + "/base"), lo);
    Lora lora = random_lora(c, 4, 8, kQV | (1u << kLoraDown));
    lora.scale *= 0.75f;  // the user's multiplier is merged too
    std::vector<float> q0(size_t(c.q_dim()) * c.hidden_size);
    for (int r = 0; r < c.q_dim(); r++) dequantize_row(type, m.layers[1].q.row(r), q0.data() + size_t(r) * c.hidden_size, c.hidden_size);
    const void* k_before = m.layers[1].k.data;
    merge_lora(m, lora);
    EXPECT_EQ(m.layers[1].q.type, WType::F32);
    EXPECT_EQ(m.layers[1].k.data, k_before);  // untouched: no adapter on k
    EXPECT_EQ(m.layers[1].k.type, type);
    const float* A = lora.A(1, kLoraQ);
    const float* B = lora.B(1, kLoraQ);
    const float* W = static_cast<const float*>(m.layers[1].q.data);
    double worst = 0;
    for (int o = 0; o < c.q_dim(); o++)
      for (int i = 0; i < c.hidden_size; i++) {
        double acc = 0;
        for (int k = 0; k < 4; k++) acc += double(B[o * 4 + k]) * A[k * c.hidden_size + i];
        worst = std::max(worst, std::fabs(W[o * c.hidden_size + i] - (q0[size_t(o) * c.hidden_size + i] + 1.5 * acc)));
      }
    EXPECT_LT(worst, 1e-6) << wtype_name(type);
    fs::remove_all(dir);
  }
}

// The merged model computes what the base computes with the adapter applied beside it, and keeps
// doing so once saved (HF folder and GGUF) and loaded again.
TEST(AdapterMerge, LogitsEqualApplyingTheAdapter) {
  for (const char* arch : {"llama", "qwen3"}) {
    ModelConfig c = tiny(arch);
    std::string dir = temp_dir(cat("mergelogits_", arch));
    const std::string base = write_base(c, dir + "/base");
    Lora lora = random_lora(c, 4, 8, kLoraAllLinear, true, 5);
    save_peft_adapter(lora, dir + "/a");
    std::vector<int32_t> toks = {5, 77, 12, 250, 3, 3, 199, 40, 8};

    InferModel applied = load_model(base);
    std::vector<float> plain = logits_of(applied, toks);
    const int id = add_adapter(applied, parse_lora_arg(dir + "/a:0.5"));
    std::vector<float> want = logits_of(applied, toks, id);
    EXPECT_GT(max_rel_diff(want, plain), 1e-2) << "the adapter must change the logits";

    InferModel merged = load_model(base);
    merge_lora(merged, load_lora(dir + "/a", c, 0.5f));
    EXPECT_LT(max_rel_diff(logits_of(merged, toks), want), 1e-5) << arch;
    save_model(merged, dir + "/merged", WType::F32);
    save_model(merged, dir + "/merged.gguf", WType::F32);
    for (const char* out : {"/merged", "/merged.gguf"}) {
      InferModel again = load_model(dir + out);
      EXPECT_LT(max_rel_diff(logits_of(again, toks), want), 1e-5) << arch << out;
    }
    fs::remove_all(dir);
  }
}
