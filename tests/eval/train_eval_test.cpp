// Evaluation while training: infer_view (a training model's weights as an inference model, in
// place) gives the same task scores as the same weights written to a folder and loaded, with and
// without a LoRA adapter and with QLoRA's block-type layers; the eval hook of `todae pretrain /
// finetune --eval-tasks` returns those scores as metrics.jsonl fields; the --tasks list parser.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/base.h"
#include "eval/eval.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/lora.h"
#include "model/model.h"
#include "text/test_util.h"
#include "text/text.h"
#include "train/train.h"

using namespace todae;
using namespace todae::eval;

namespace {

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Model> ref;  // the "training" model
  std::string folder, tok_json, tok_cfg, text;
};

// A random 2-layer model (GQA) with a tokenizer trained on the sample corpus, also written as a
// Hugging Face folder (what a checkpoint is).
Fixture& fx() {
  static Fixture* f = [] {
    auto* x = new Fixture;
    TokenizerTrainOptions o;
    o.inputs = {x->dir.file("c.txt", test::sample_corpus())};
    o.vocab_size = 400;
    o.progress = false;
    Tokenizer tok = train_bpe(o);
    ModelConfig c;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.vocab_size = tok.vocab_size();
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-5;
    c.validate();
    x->ref = std::make_unique<Model>(c);
    init_weights(*x->ref, 7);
    std::vector<TensorRef> ts;
    for (const ParamInfo& p : x->ref->params) ts.push_back(f32_tensor(p.name, p.shape, x->ref->weights.data + p.offset));
    x->folder = x->dir.path + "/model";
    make_directories(x->folder);
    write_safetensors(x->folder + "/model.safetensors", ts);
    write_file_atomic(x->folder + "/config.json", c.to_json());
    save_tokenizer(tok, x->folder);
    x->tok_json = read_file(x->folder + "/tokenizer.json");
    x->tok_cfg = read_file(x->folder + "/tokenizer_config.json");  // bos/eos: lm-eval's prefix token
    x->text = x->dir.file("t.txt", test::sample_corpus());
    return x;
  }();
  return *f;
}

RunOptions run_options() {
  RunOptions ro;
  ro.limit = 4;
  ro.text_files = {fx().text};
  ro.quiet = true;
  return ro;
}

// bpb (rolling log-likelihood over the whole context) and arithmetic (greedy generation).
std::vector<TaskResult> score(InferModel& m, int adapter = 0) {
  LocalModelOptions mo;
  mo.adapter = adapter;
  auto model = make_local_model(m, mo);
  std::vector<TaskResult> out;
  for (const TaskConfig& t : tasks_from_spec("bpb,arithmetic")) out.push_back(run_task(*model, t, run_options()));
  return out;
}

void expect_same_scores(const std::vector<TaskResult>& a, const std::vector<TaskResult>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].task, b[i].task);
    EXPECT_EQ(a[i].n, b[i].n);
    EXPECT_EQ(a[i].metrics.dump(), b[i].metrics.dump()) << a[i].task;  // bit for bit
  }
}

TEST(TrainEval, ViewPointsIntoTheTrainingWeights) {
  Fixture& f = fx();
  InferModel v = infer_view(*f.ref, f.tok_json, f.tok_cfg);
  EXPECT_TRUE(v.has_tokenizer);
  EXPECT_EQ(v.layers.size(), 2u);
  EXPECT_EQ(v.layers[1].down.data, f.ref->weights.data + f.ref->param("model.layers.1.mlp.down_proj.weight").offset);
  EXPECT_EQ(v.embed.data, f.ref->weights.data + f.ref->param("model.embed_tokens.weight").offset);
  EXPECT_EQ(v.weight_type, WType::F32);
  EXPECT_TRUE(v.adapters.empty());
  EXPECT_FALSE(infer_view(*f.ref, "").has_tokenizer);
}

TEST(TrainEval, ViewScoresEqualTheLoadedFolder) {
  Fixture& f = fx();
  InferModel file = load_model(f.folder);
  InferModel view = infer_view(*f.ref, f.tok_json, f.tok_cfg);
  const auto a = score(file), b = score(view);
  expect_same_scores(a, b);
  EXPECT_GT(a[0].metrics["bits_per_byte"]["value"].get<double>(), 0.5);  // a real number, not a default
}

TEST(TrainEval, LoraViewScoresEqualTheAdapterLoadedFromDisk) {
  Fixture& f = fx();
  LoraConfig lc;
  lc.rank = 4;
  Lora lora = make_lora(f.ref->config, lc);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (size_t i = 0; i < lora.num_floats; i++) lora.weights.data[i] = nd(rng);  // B != 0: the adapter matters
  const std::string ad = f.dir.path + "/adapter";
  save_peft_adapter(lora, ad);

  f.ref->lora = &lora;
  InferModel view = infer_view(*f.ref, f.tok_json, f.tok_cfg);
  f.ref->lora = nullptr;
  ASSERT_EQ(view.adapters.size(), 1u);
  EXPECT_EQ(view.adapters[0].get(), &lora);  // unmerged, the training adapter itself
  InferModel file = load_model(f.folder);
  const int id = add_adapters(file, {ad});
  const auto a = score(file, id), b = score(view, 1);
  expect_same_scores(a, b);
  InferModel bare = load_model(f.folder);
  EXPECT_NE(score(bare)[0].metrics.dump(), b[0].metrics.dump());  // and it changes the scores
}

TEST(TrainEval, QloraViewScoresEqualTheQuantizedFolder) {
  Fixture& f = fx();
  InferModel f32 = infer_view(*f.ref, f.tok_json, f.tok_cfg);
  Model q = to_train_model(f32, WType::Q8_0);  // QLoRA's frozen base: block-type layers and tables
  InferModel view = infer_view(q, f.tok_json, f.tok_cfg);
  EXPECT_EQ(view.weight_type, WType::Q8_0);
  EXPECT_EQ(view.layers[0].q.data, q.qlayers[0].qkv.data);
  EXPECT_EQ(view.layers[0].v.rows, f.ref->config.kv_dim());
  LoadOptions lo;
  lo.weight_type = WType::Q8_0;
  InferModel file = load_model(f.folder, lo);
  expect_same_scores(score(file), score(view));
}

TEST(TrainEval, HookReturnsTheScoresAsMetricsFields) {
  Fixture& f = fx();
  TrainEvalOptions o;
  o.tasks = "bpb, arithmetic";
  o.run = run_options();
  auto hook = make_train_eval_hook(o);
  const nlohmann::json j = hook(EvalHookArgs{*f.ref, 10, 1000, 5, f.tok_json, f.tok_cfg});
  InferModel file = load_model(f.folder);
  EXPECT_EQ(j.dump(), metrics_fields(score(file)).dump());
  ASSERT_TRUE(j.contains("eval/bpb/bits_per_byte"));
  ASSERT_TRUE(j.contains("eval/bpb/bits_per_byte_stderr"));
  ASSERT_TRUE(j.contains("eval/arithmetic/exact_match,extract"));
  EXPECT_TRUE(std::isfinite(j["eval/bpb/bits_per_byte"].get<double>()));
  // Bad task data fails when the hook is made, before any training.
  TrainEvalOptions bad = o;
  bad.run.text_files.clear();
  EXPECT_THROW(make_train_eval_hook(bad), Error);
}

TEST(TrainEval, TasksFromSpec) {
  auto t = tasks_from_spec(" arithmetic ,bpb,");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].task, "arithmetic");
  EXPECT_EQ(t[1].task, "bpb");
  EXPECT_EQ(tasks_from_spec("kobest").size(), 5u);
  try {
    tasks_from_spec("arithmetik");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'arithmetik'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tasks_from_spec(" , "), Error);
}

TEST(TrainEval, MetricsFieldsNames) {
  TaskResult r;
  r.task = "kobest_boolq";
  r.metrics["acc"] = {{"value", 0.5}, {"stderr", 0.1}, {"higher_is_better", true}};
  r.metrics["exact_match,extract"] = {{"value", 1.0}, {"stderr", 0.0}, {"higher_is_better", true}};
  const nlohmann::json j = metrics_fields({r});
  EXPECT_EQ(j.dump(), R"({"eval/kobest_boolq/acc":0.5,"eval/kobest_boolq/acc_stderr":0.1,)"
                      R"("eval/kobest_boolq/exact_match,extract":1.0,"eval/kobest_boolq/exact_match,extract_stderr":0.0})");
}

}  // namespace
