// LoRA adapters applied unmerged in forward_batch (src/infer/forward.cpp): a base with an adapter
// gives the logits of the model with the adapter merged by hand (W += scale·B·A, PEFT's rule), a
// batch mixing the base and several adapters gives every row exactly what it gets alone, bad
// adapter ids are refused before the cache changes, and stacked adapters add up.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "base/base.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "infer/infer_test_util.h"
#include "model/lora.h"
#include "model/model.h"

using namespace todae;
namespace fs = std::filesystem;

namespace {

using test::lora_test_config;

// A random training model: Normal weights, norms and biases away from 1 / 0 so a misplaced term shows.
Model random_model(const ModelConfig& c) {
  Model m(c);
  init_weights(m, 42);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (const ParamInfo& p : m.params)
    if (p.shape.size() == 1)
      for (size_t i = 0; i < p.numel; i++)
        m.weights.data[p.offset + i] = p.name.find("bias") != std::string::npos ? u(rng) - 1.0f : u(rng);
  return m;
}

std::string save_hf(const Model& m, const std::string& name) {
  std::string dir = (fs::temp_directory_path() / cat("todae_lora_infer_", name, "_", ::getpid())).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<TensorRef> t;
  for (const ParamInfo& p : m.params) t.push_back(f32_tensor(p.name, p.shape, m.weights.data + p.offset));
  write_safetensors(dir + "/model.safetensors", t);
  write_file_atomic(dir + "/config.json", m.config.to_json());
  return dir;
}

// A and B both random: with B = 0 (training's start) the adapter would change nothing.
Lora random_adapter(const ModelConfig& c, int rank, float alpha, uint32_t targets, uint32_t seed) {
  LoraConfig cfg;
  cfg.rank = rank, cfg.alpha = alpha, cfg.targets = targets;
  Lora l = make_lora(c, cfg);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.15f);
  for (const ParamInfo& p : l.params)
    for (size_t i = 0; i < p.numel; i++) l.weights.data[p.offset + i] = nd(rng);
  return l;
}

// PEFT's merge, written out: W[o, i] += scale · Σ_j B[o, j] · A[j, i], in double.
void merge_by_hand(Model& m, const Lora& lora) {
  const int r = lora.config.rank;
  for (int l = 0; l < m.config.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      if (!lora.has(l, t)) continue;
      const LoraSlot& s = lora.layers[l][t];
      const ParamInfo& p =
          m.param(cat("model.layers.", l, ".", lora_target_module(t), ".", lora_target_name(t), ".weight"));
      ASSERT_EQ(p.shape[0], s.out);
      ASSERT_EQ(p.shape[1], s.in);
      float* W = m.weights.data + p.offset;
      const float *A = lora.A(l, t), *B = lora.B(l, t);
      for (int o = 0; o < s.out; o++)
        for (int i = 0; i < s.in; i++) {
          double acc = 0;
          for (int j = 0; j < r; j++) acc += double(B[size_t(o) * r + j]) * A[size_t(j) * s.in + i];
          W[size_t(o) * s.in + i] += float(lora.scale * acc);
        }
    }
}

std::vector<int32_t> tokens_of(int n, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % uint32_t(V));
  return t;
}

double rel_diff(const float* a, const float* b, size_t n) {
  double mx = 0, ref = 0;
  for (size_t i = 0; i < n; i++)
    mx = std::max(mx, double(std::fabs(a[i] - b[i]))), ref = std::max(ref, double(std::fabs(b[i])));
  return mx / std::max(ref, 1e-12);
}

// Every position's logits, the prompt fed in chunks, every entry with `adapter`.
std::vector<float> run_alone(InferModel& m, const std::vector<int32_t>& toks, int chunk, int adapter) {
  const int V = m.config.vocab_size, T = int(toks.size());
  KVCache cache = make_kv_cache(m, 64, 1, WType::F32);
  Forward fw;
  std::vector<float> out(size_t(T) * V);
  for (int i = 0; i < T; i += chunk) {
    Batch b;
    for (int j = i; j < std::min(T, i + chunk); j++) b.add(toks[j], j, 0, true, adapter);
    forward_batch(m, cache, fw, b, out.data() + size_t(i) * V);
  }
  return out;
}

std::shared_ptr<const Lora> shared(Lora l) { return std::make_shared<const Lora>(std::move(l)); }

const uint32_t kQV = (1u << kLoraQ) | (1u << kLoraV);

}  // namespace

class LoraInferVsMerged : public ::testing::TestWithParam<std::tuple<std::string, uint32_t>> {};

TEST_P(LoraInferVsMerged, AdapterUnmergedGivesTheMergedModelsLogits) {
  const auto& [arch, targets] = GetParam();
  const ModelConfig c = lora_test_config(arch);
  Model base = random_model(c);
  const auto lora = shared(random_adapter(c, 4, 8, targets, 11));
  Model merged = random_model(c);
  merge_by_hand(merged, *lora);
  const std::string base_dir = save_hf(base, arch + "_base"), merged_dir = save_hf(merged, arch + "_merged");

  InferModel im = load_model(base_dir), want_model = load_model(merged_dir);
  im.adapters.push_back(lora);
  im.adapter_names.push_back("a");
  const int T = 19, V = c.vocab_size;
  const auto toks = tokens_of(T, V, 3);
  const auto want = run_alone(want_model, toks, T, 0);
  const auto bare = run_alone(im, toks, T, 0);
  // the adapter must matter, or the comparison below proves nothing
  EXPECT_GT(rel_diff(bare.data(), want.data(), want.size()), 1e-2);
  for (int chunk : {1, 5, T}) {  // decode rows, cached prompt chunks and the tiled prompt kernel
    const auto got = run_alone(im, toks, chunk, 1);
    EXPECT_LT(rel_diff(got.data(), want.data(), want.size()), 1e-4) << "chunk " << chunk;
  }
  fs::remove_all(base_dir);
  fs::remove_all(merged_dir);
}

INSTANTIATE_TEST_SUITE_P(Arch, LoraInferVsMerged,
                         ::testing::Combine(::testing::Values("llama", "qwen2", "qwen3"),
                                            ::testing::Values(kLoraAllLinear, kQV)),
                         [](const auto& i) {
                           return std::get<0>(i.param) + (std::get<1>(i.param) == kLoraAllLinear ? "_all" : "_qv");
                         });

TEST(LoraInfer, MixedBatchOfBaseAndTwoAdaptersGivesEachRowItsLogitsAlone) {
  const ModelConfig c = lora_test_config("llama");
  const std::string dir = save_hf(random_model(c), "mixed");
  InferModel m = load_model(dir);
  m.adapters = {shared(random_adapter(c, 4, 8, kLoraAllLinear, 1)), shared(random_adapter(c, 2, 4, kQV, 2))};
  m.adapter_names = {"one", "two"};
  const int V = c.vocab_size;
  // four sequences: slot 0 base, slot 1 adapter 1, slot 2 adapter 2, slot 3 adapter 1 again
  const int adapter_of[4] = {0, 1, 2, 1};
  std::vector<std::vector<int32_t>> toks;
  std::vector<std::vector<float>> alone;
  for (int s = 0; s < 4; s++) {
    toks.push_back(tokens_of(8, V, 20 + s));
    alone.push_back(run_alone(m, toks[s], 8, adapter_of[s]));
  }
  // (same tokens under the base and under each adapter differ: the ids do select something)
  const auto t1_base = run_alone(m, toks[1], 8, 0);
  EXPECT_GT(rel_diff(t1_base.data(), alone[1].data(), t1_base.size()), 1e-2);

  KVCache cache = make_kv_cache(m, 32, 4, WType::F32);
  Forward fw;
  // one pass: prompts of 5, 4, 3 and 6 tokens of the four sequences
  const int prompt[4] = {5, 4, 3, 6};
  Batch b;
  for (int s : {2, 0, 3, 1})
    for (int i = 0; i < prompt[s]; i++) b.add(toks[s][i], i, s, i + 1 == prompt[s], adapter_of[s]);
  std::vector<float> out(4 * size_t(V));
  forward_batch(m, cache, fw, b, out.data());
  int row = 0;
  for (int s : {2, 0, 3, 1}) {
    EXPECT_LT(rel_diff(out.data() + size_t(row) * V, alone[s].data() + size_t(prompt[s] - 1) * V, V), 1e-5)
        << "prompt of slot " << s;
    row++;
  }
  // decode steps, all four in each pass; slots 3 and 1 (both adapter 1) are neighbours, one run
  for (int step = 0; step < 2; step++) {
    b.clear();
    for (int s : {3, 1, 0, 2}) {
      const int p = cache.length[s];
      b.add(toks[s][p], p, s, true, adapter_of[s]);
    }
    forward_batch(m, cache, fw, b, out.data());
    row = 0;
    for (int s : {3, 1, 0, 2}) {
      const int p = cache.length[s] - 1;
      EXPECT_LT(rel_diff(out.data() + size_t(row) * V, alone[s].data() + size_t(p) * V, V), 1e-5)
          << "step " << step << " slot " << s;
      row++;
    }
  }
  fs::remove_all(dir);
}

TEST(LoraInfer, AnAdapterIdThatIsNotLoadedIsRefusedBeforeTheCacheChanges) {
  const ModelConfig c = lora_test_config("llama");
  const std::string dir = save_hf(random_model(c), "badid");
  InferModel m = load_model(dir);
  m.adapters = {shared(random_adapter(c, 2, 4, kQV, 1))};
  m.adapter_names = {"one"};
  KVCache cache = make_kv_cache(m, 16, 2, WType::F32);
  Forward fw;
  std::vector<float> out(size_t(c.vocab_size));
  Batch b;
  b.add(5, 0, 0, false, 1);
  b.add(6, 0, 1, true, 2);  // only adapter 1 exists
  try {
    forward_batch(m, cache, fw, b, out.data());
    ADD_FAILURE() << "adapter 2 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter 2 is not loaded"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.length[0], 0);
  EXPECT_EQ(cache.length[1], 0);
  // generate() checks its option the same way
  GenerateOptions go;
  go.adapter = 2;
  EXPECT_THROW(generate(m, cache, 0, {1, 2}, go, {}), Error);

  // an adapter for another shape (built in memory, so load_lora's checks never saw it)
  ModelConfig wide = c;
  wide.intermediate_size = 128;
  wide.validate();
  m.adapters.push_back(shared(random_adapter(wide, 2, 4, kLoraAllLinear, 3)));
  m.adapter_names.push_back("wide");
  b.clear();
  b.add(5, 0, 0, true, 2);
  try {
    forward_batch(m, cache, fw, b, out.data());
    ADD_FAILURE() << "an adapter of the wrong shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gate_proj"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.length[0], 0);
  fs::remove_all(dir);
}

TEST(LoraInfer, StackedAdaptersEqualTheModelWithBothMerged) {
  const ModelConfig c = lora_test_config("qwen3");
  Lora a = random_adapter(c, 2, 4, kQV, 5);
  Lora b = random_adapter(c, 4, 8, kLoraAllLinear, 6);
  a.scale *= 0.5f;  // the user's multiplier (--lora DIR:0.5) travels with each adapter
  Model merged = random_model(c);
  merge_by_hand(merged, a);
  merge_by_hand(merged, b);
  const std::string base_dir = save_hf(random_model(c), "stack_base"), merged_dir = save_hf(merged, "stack_merged");
  InferModel m = load_model(base_dir), want_model = load_model(merged_dir);
  const auto stacked = shared(stack_loras({&a, &b}, c));
  EXPECT_EQ(stacked->config.rank, 6);
  EXPECT_EQ(stacked->scale, 1.0f);
  m.adapters = {stacked};
  m.adapter_names = {"a+b"};
  const auto toks = tokens_of(17, c.vocab_size, 9);
  const auto want = run_alone(want_model, toks, 17, 0);
  const auto got = run_alone(m, toks, 4, 1);
  EXPECT_LT(rel_diff(got.data(), want.data(), want.size()), 1e-4);
  EXPECT_THROW(stack_loras({}, c), Error);
  fs::remove_all(base_dir);
  fs::remove_all(merged_dir);
}
