// The inference engine against the training model of src/model (same logits), the KV cache against
// full recomputation, batches of several sequences against each sequence alone, GGUF and Hugging
// Face round trips, quantized models against f32, the sampler and the text stream.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "base/base.h"
#include "formats/formats.h"
#include "formats/gguf.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"
#include "infer/infer_test_util.h"
#include "model/model.h"

using namespace todae;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) { return test::fresh_temp_dir("todae_infer", name); }

ModelConfig tiny_config(bool qwen3, int kv_heads = 2) {
  ModelConfig c;
  c.architecture = qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.validate();
  return c;
}

// A random model written as a Hugging Face folder (the layout `todae pretrain` writes).
std::string write_random_model(const ModelConfig& c, const std::string& name, Model* keep = nullptr) {
  Model m(c);
  init_weights(m, 42);
  // norms away from 1 so that a missing norm shows up in the logits
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (const ParamInfo& p : m.params)
    if (p.shape.size() == 1)
      for (size_t i = 0; i < p.numel; i++) m.weights.data[p.offset + i] = u(rng);
  std::string dir = temp_dir(name);
  std::vector<TensorRef> t;
  for (const ParamInfo& p : m.params) t.push_back(f32_tensor(p.name, p.shape, m.weights.data + p.offset));
  write_safetensors(dir + "/model.safetensors", t);
  write_file_atomic(dir + "/config.json", c.to_json());
  if (keep) *keep = std::move(m);
  return dir;
}

std::vector<int32_t> random_tokens(int n, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % uint32_t(V));
  return t;
}

double max_rel_diff(const float* a, const float* b, size_t n) {
  double mx = 0, ref = 0;
  for (size_t i = 0; i < n; i++) mx = std::max(mx, double(std::fabs(a[i] - b[i]))), ref = std::max(ref, double(std::fabs(b[i])));
  return mx / std::max(ref, 1e-12);
}

// Logits of every position from the inference engine, prompt fed in chunks of `chunk`.
std::vector<float> engine_logits(InferModel& im, const std::vector<int32_t>& toks, int chunk, WType kv = WType::F32) {
  const int V = im.config.vocab_size, T = int(toks.size());
  KVCache cache = make_kv_cache(im, 64, 1, kv);
  Forward fw;
  std::vector<float> out(size_t(T) * V);
  for (int i = 0; i < T; i += chunk) {
    Batch b;
    for (int j = i; j < std::min(T, i + chunk); j++) b.add(toks[j], j, 0, true);
    forward_batch(im, cache, fw, b, out.data() + size_t(i) * V);
  }
  return out;
}

class InferVsTrainingModel : public ::testing::TestWithParam<bool> {};

TEST_P(InferVsTrainingModel, SameLogitsAtEveryPositionWhateverTheChunking) {
  const bool qwen3 = GetParam();
  ModelConfig c = tiny_config(qwen3);
  Model ref(c);
  std::string dir = write_random_model(c, qwen3 ? "q3" : "llama", &ref);
  const int T = 21, V = c.vocab_size;
  auto toks = random_tokens(T, V, 3);
  std::vector<float> want(size_t(T) * V);
  forward_logits(ref, toks.data(), 1, T, want.data());

  InferModel im = load_model(dir);
  EXPECT_EQ(im.format, "hf");
  EXPECT_EQ(im.weight_type, WType::F32);
  for (int chunk : {1, 5, T}) {
    auto got = engine_logits(im, toks, chunk);
    EXPECT_LT(max_rel_diff(got.data(), want.data(), want.size()), 1e-5) << "chunk " << chunk;
  }
  // f16 and q8_0 caches stay close
  auto f16 = engine_logits(im, toks, 7, WType::F16);
  EXPECT_LT(max_rel_diff(f16.data(), want.data(), want.size()), 5e-3);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Arch, InferVsTrainingModel, ::testing::Values(false, true),
                         [](const auto& i) { return std::string(i.param ? "Qwen3" : "Llama"); });

TEST(Infer, BatchOfSeveralSequencesEqualsEachAlone) {
  ModelConfig c = tiny_config(false);
  std::string dir = write_random_model(c, "multi");
  InferModel im = load_model(dir);
  const int V = c.vocab_size;
  auto a = random_tokens(9, V, 1), b = random_tokens(4, V, 2);
  auto la = engine_logits(im, a, 9), lb = engine_logits(im, b, 4);
  // both prompts in one batch, then one more step for each in one batch
  KVCache cache = make_kv_cache(im, 32, 3, WType::F32);
  Forward fw;
  Batch batch;
  for (int i = 0; i < 8; i++) batch.add(a[i], i, 2, i == 7);
  for (int i = 0; i < 3; i++) batch.add(b[i], i, 0, i == 2);
  std::vector<float> out(2 * size_t(V));
  forward_batch(im, cache, fw, batch, out.data());
  EXPECT_LT(max_rel_diff(out.data(), la.data() + 7 * size_t(V), V), 1e-5);
  EXPECT_LT(max_rel_diff(out.data() + V, lb.data() + 2 * size_t(V), V), 1e-5);
  batch.clear();
  batch.add(b[3], 3, 0, true);
  batch.add(a[8], 8, 2, true);
  forward_batch(im, cache, fw, batch, out.data());
  EXPECT_LT(max_rel_diff(out.data(), lb.data() + 3 * size_t(V), V), 1e-5);
  EXPECT_LT(max_rel_diff(out.data() + V, la.data() + 8 * size_t(V), V), 1e-5);
  EXPECT_EQ(cache.length[0], 4);
  EXPECT_EQ(cache.length[2], 9);
  EXPECT_EQ(cache.length[1], 0);
  // a position that does not continue the slot is refused and changes nothing
  batch.clear();
  batch.add(a[0], 5, 1, true);
  EXPECT_THROW(forward_batch(im, cache, fw, batch, out.data()), Error);
  EXPECT_EQ(cache.length[1], 0);
  fs::remove_all(dir);
}

class GgufRoundTrip : public ::testing::TestWithParam<std::tuple<bool, WType>> {};

TEST_P(GgufRoundTrip, LogitsAfterSavingAndLoading) {
  auto [qwen3, type] = GetParam();
  ModelConfig c = tiny_config(qwen3);
  c.vocab_size = 320;
  std::string dir = write_random_model(c, "gguf");
  InferModel im = load_model(dir);
  auto toks = random_tokens(12, c.vocab_size, 5);
  auto want = engine_logits(im, toks, 12);
  const std::string path = dir + "/model.gguf";
  save_model(im, path, type);
  auto f = open_gguf(path);
  EXPECT_EQ(f->get_string("general.architecture"), qwen3 ? "qwen3" : "llama");
  InferModel back = load_model(path);
  EXPECT_EQ(back.format, "gguf");
  EXPECT_EQ(back.weight_type, type);
  EXPECT_EQ(back.config.qk_norm(), qwen3);
  auto got = engine_logits(back, toks, 4);
  const double tol = type == WType::F32 ? 1e-6 : type == WType::F16 ? 2e-3 : type == WType::BF16 ? 2e-2
                   : type == WType::Q8_0 ? 2e-2 : 0.3;  // 4-bit random weights: a sanity bound only
  EXPECT_LT(max_rel_diff(got.data(), want.data(), want.size()), tol) << wtype_name(type);
  // The exact check: the file holds the same blocks as quantizing at load time, so the same logits.
  LoadOptions lo;
  lo.weight_type = type;
  InferModel direct = load_model(dir, lo);
  auto same = engine_logits(direct, toks, 4);
  EXPECT_EQ(max_rel_diff(got.data(), same.data(), got.size()), 0.0) << wtype_name(type);
  // and back to a Hugging Face folder (f32): same logits as the GGUF
  if (!wtype_is_block(type)) {
    save_model(back, dir + "/hf2", WType::F32);
    InferModel hf2 = load_model(dir + "/hf2");
    auto again = engine_logits(hf2, toks, 12);
    EXPECT_LT(max_rel_diff(again.data(), got.data(), got.size()), 1e-6);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Types, GgufRoundTrip,
                         ::testing::Combine(::testing::Values(false, true),
                                            ::testing::Values(WType::F32, WType::F16, WType::BF16, WType::Q8_0, WType::Q4_0)),
                         [](const auto& i) {
                           return std::string(std::get<0>(i.param) ? "Qwen3_" : "Llama_") + wtype_name(std::get<1>(i.param));
                         });

// q/k/v biases (Qwen2-style attention_bias) survive GGUF (as architecture "llama": the q and k
// biases follow their rows' interleaved order) and Hugging Face round trips: same logits.
TEST(Infer, AttentionBiasesRoundTrip) {
  ModelConfig c = tiny_config(false);
  c.vocab_size = 320;
  std::string dir = write_random_model(c, "bias");
  InferModel im = load_model(dir);
  im.config.attention_bias = true;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::vector<std::vector<float>> keep;
  for (InferLayer& L : im.layers)
    for (auto [ptr, n] : {std::pair{&L.q_bias, c.q_dim()}, {&L.k_bias, c.kv_dim()}, {&L.v_bias, c.kv_dim()}}) {
      keep.emplace_back(size_t(n));
      for (float& x : keep.back()) x = nd(rng);
      *ptr = keep.back().data();
    }
  auto toks = random_tokens(10, c.vocab_size, 3);
  auto want = engine_logits(im, toks, 10);
  save_model(im, dir + "/b.gguf", WType::F32);
  InferModel g = load_model(dir + "/b.gguf");
  EXPECT_TRUE(g.config.attention_bias);
  auto got = engine_logits(g, toks, 10);
  EXPECT_LT(max_rel_diff(got.data(), want.data(), want.size()), 1e-6);
  save_model(g, dir + "/hf2", WType::F32);
  InferModel hf2 = load_model(dir + "/hf2");
  auto again = engine_logits(hf2, toks, 10);
  EXPECT_LT(max_rel_diff(again.data(), want.data(), want.size()), 1e-6);
  fs::remove_all(dir);
}

TEST(Infer, LlamaGgufRowOrderIsInterleavedPairs) {
  // 1 head of D=4, rows r0..r3 (HF rotate-half) → GGUF order r0 r2 r1 r3, and back
  const uint8_t in[4] = {0, 1, 2, 3};
  uint8_t out[4], back[4];
  rows_to_gguf_llama(in, out, 1, 4, 1);
  EXPECT_EQ(std::vector<uint8_t>(out, out + 4), (std::vector<uint8_t>{0, 2, 1, 3}));
  rows_from_gguf_llama(out, back, 1, 4, 1);
  EXPECT_EQ(std::vector<uint8_t>(back, back + 4), (std::vector<uint8_t>{0, 1, 2, 3}));
}

TEST(Infer, LoadErrorsNameTheFile) {
  std::string dir = temp_dir("errors");
  try {
    load_model(dir + "/nothing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing: no such file"), std::string::npos) << e.what();
  }
  write_file_atomic(dir + "/bad.gguf", "GGUF\x03\0\0\0garbage");
  EXPECT_THROW(load_model(dir + "/bad.gguf"), Error);
  write_file_atomic(dir + "/x.gguf", "not a gguf at all");
  try {
    load_model(dir + "/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a GGUF"), std::string::npos) << e.what();
  }
  // A file that is no model at all, and a safetensors file without its config.json: said so, not
  // "cannot read ./config.json".
  auto message = [&](const std::string& p) {
    try {
      load_model(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  write_file_atomic(dir + "/notes.txt", "hello");
  EXPECT_NE(message(dir + "/notes.txt").find("notes.txt: not a model: give a .gguf file"), std::string::npos)
      << message(dir + "/notes.txt");
  write_file_atomic(dir + "/model.safetensors", "x");
  EXPECT_NE(message(dir + "/model.safetensors").find("model.safetensors: no config.json next to it"), std::string::npos)
      << message(dir + "/model.safetensors");
  fs::remove_all(dir);
}

// ---- sampler ------------------------------------------------------------------------------------

TEST(Sampler, GreedyTakesTheArgmaxAndLogprobsAreNormalised) {
  SamplingParams p;
  p.temperature = 0;
  p.top_logprobs = 3;
  Sampler s(p);
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.5f, 0.0f};
  TokenLogprob lp;
  EXPECT_EQ(s.sample(l.data(), 5, &lp), 1);
  double z = 0;
  for (float x : {0.1f, 2.0f, -1.0f, 1.5f, 0.0f}) z += std::exp(x);
  EXPECT_NEAR(lp.logprob, 2.0 - std::log(z), 1e-5);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 3);
  EXPECT_EQ(lp.top[2].first, 0);
}

TEST(Sampler, SameSeedSameTokensAndTheDistributionIsRight) {
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.seed = 99;
  std::vector<float> base = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto run = [&](uint64_t seed) {
    SamplingParams q = p;
    q.seed = seed;
    Sampler s(q);
    std::vector<int> seq;
    for (int i = 0; i < 20000; i++) {
      auto l = base;
      seq.push_back(s.sample(l.data(), 3));
    }
    return seq;
  };
  auto a = run(99), b = run(99), c = run(100);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int n0 = 0, n2 = 0;
  for (int x : a) n0 += x == 0, n2 += x == 2;
  EXPECT_NEAR(n0 / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(n2 / 20000.0, 0.2, 0.02);
}

TEST(Sampler, FiltersAndPenalties) {
  std::vector<float> base = {3.0f, 2.9f, 0.0f, -5.0f};
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 1;  // top-k 1 is greedy
  {
    Sampler s(p);
    for (int i = 0; i < 50; i++) {
      auto l = base;
      EXPECT_EQ(s.sample(l.data(), 4), 0);
    }
  }
  p.top_k = 0;
  p.min_p = 0.5f;  // only tokens with p >= 0.5·p_max: 0 and 1
  {
    Sampler s(p);
    for (int i = 0; i < 200; i++) {
      auto l = base;
      EXPECT_LE(s.sample(l.data(), 4), 1);
    }
  }
  // presence penalty pushes a generated token below the runner-up
  p = SamplingParams();
  p.temperature = 0;
  p.presence_penalty = 0.5f;
  Sampler s(p);
  auto l = base;
  EXPECT_EQ(s.sample(l.data(), 4), 0);
  s.accept(0);
  l = base;
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  // the grammar hook removes tokens
  s.constrain = [](float* x, int) { x[0] = x[1] = -INFINITY; };
  l = base;
  EXPECT_EQ(s.sample(l.data(), 4), 2);
  SamplingParams bad;
  bad.top_p = 0;
  EXPECT_THROW(Sampler{bad}, Error);
}

// ---- text stream --------------------------------------------------------------------------------

Tokenizer byte_tokenizer() {
  // 256 byte tokens (byte-level BPE without merges) and one special token
  std::string vocab = "{";
  for (int b = 0; b < 256; b++) {
    // GPT-2 byte-to-unicode mapping
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp = b;
    else {
      int n = 0;
      for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
      cp = 256 + n;
    }
    std::string u;
    if (cp < 0x80) u = std::string(1, char(cp));
    else u = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    if (u == "\"") u = "\\\"";
    if (u == "\\") u = "\\\\";
    vocab += cat(b ? "," : "", "\"", u, "\":", b);
  }
  vocab += "}";
  std::string j = cat(R"({"version":"1.0","added_tokens":[{"id":256,"content":"<|end|>","special":true,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false}],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false},"post_processor":null,"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)",
                      vocab, R"(,"merges":[]}})");
  return load_tokenizer_json(j);
}

std::string feed(TextStream& ts, std::string_view bytes, std::vector<std::string>* pieces = nullptr) {
  std::string out;
  for (unsigned char c : bytes) {
    std::string p = ts.push(c);
    if (pieces) pieces->push_back(p);
    out += p;
    if (ts.stopped) break;
  }
  return out;
}

TEST(TextStream, NeverSplitsACharacterAndStopsBeforeTheStopString) {
  Tokenizer tok = byte_tokenizer();
  {
    TextStream ts(tok, {});
    std::vector<std::string> pieces;
    std::string all = feed(ts, "한국어 ok", &pieces);
    all += ts.finish();
    EXPECT_EQ(all, "한국어 ok");
    for (const auto& p : pieces) EXPECT_EQ(replace_invalid_utf8(p), p);  // each piece is valid UTF-8
  }
  {
    TextStream ts(tok, {"\nUser:", "끝"});
    std::string out = feed(ts, "안녕\nUs");
    EXPECT_EQ(out, "안녕");  // "\nUs" held back: it may become "\nUser:"
    out += feed(ts, "e");
    out += feed(ts, "r: more");
    EXPECT_TRUE(ts.stopped);
    EXPECT_EQ(out + ts.finish(), "안녕");
  }
  {
    TextStream ts(tok, {"\nUser:"});
    std::string out = feed(ts, "a\nUx");  // ruled out: released
    EXPECT_EQ(out + ts.finish(), "a\nUx");
  }
  {
    TextStream ts(tok, {"끝"});  // a multi-byte stop string
    std::string out = feed(ts, "abc끝def");
    EXPECT_EQ(out, "abc");
    EXPECT_TRUE(ts.stopped);
  }
  {
    TextStream ts(tok, {});  // special tokens are skipped
    EXPECT_EQ(ts.push(256), "");
  }
}

}  // namespace
