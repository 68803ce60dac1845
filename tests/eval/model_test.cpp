// The local model's log-likelihoods against a direct forward pass of the training model (src/model)
// over context + choice, the shared-prefix batch against each choice alone, rolling windows and
// bits per byte, and the runner (aggregation, samples, --resume) with a scripted model.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>

#include "base/base.h"
#include "eval/eval.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/model.h"
#include "text/test_util.h"
#include "text/text.h"

using namespace todae;
using namespace todae::eval;

namespace {

struct TinyModel {
  test::TempDir dir;
  std::unique_ptr<Model> ref;
  InferModel m;
  Tokenizer tok;
};

// A random 2-layer model with a tokenizer trained on the sample corpus, as a Hugging Face folder.
TinyModel& tiny() {
  static TinyModel* t = [] {
    auto* x = new TinyModel;
    TokenizerTrainOptions o;
    o.inputs = {x->dir.file("c.txt", test::sample_corpus())};
    o.vocab_size = 400;
    o.progress = false;
    x->tok = train_bpe(o);
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.vocab_size = x->tok.vocab_size();
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000;
    c.validate();
    x->ref = std::make_unique<Model>(c);
    init_weights(*x->ref, 42);
    std::vector<TensorRef> ts;
    for (const ParamInfo& p : x->ref->params) ts.push_back(f32_tensor(p.name, p.shape, x->ref->weights.data + p.offset));
    const std::string md = x->dir.path + "/model";
    make_directories(md);
    write_safetensors(md + "/model.safetensors", ts);
    write_file_atomic(md + "/config.json", c.to_json());
    save_tokenizer(x->tok, md);
    x->m = load_model(md);
    return x;
  }();
  return *t;
}

// Sum of log p(tokens[i]) for i >= from, from the training model's logits over the whole sequence.
double direct_loglik(const std::vector<int32_t>& seq, size_t from) {
  TinyModel& t = tiny();
  const int V = t.ref->config.vocab_size, T = int(seq.size());
  std::vector<float> logits(size_t(T) * size_t(V));
  forward_logits(*t.ref, seq.data(), 1, T, logits.data());
  double sum = 0;
  for (size_t i = from; i < seq.size(); i++) {
    const float* row = logits.data() + (i - 1) * size_t(V);
    double mx = row[0], z = 0;
    for (int k = 1; k < V; k++) mx = std::max(mx, double(row[k]));
    for (int k = 0; k < V; k++) z += std::exp(double(row[k]) - mx);
    sum += double(row[seq[i]]) - mx - std::log(z);
  }
  return sum;
}

}  // namespace

TEST(LocalModel, ChoiceLoglikEqualsDirectForwardOverContextPlusChoice) {
  TinyModel& t = tiny();
  auto lm = make_local_model(t.m);
  const std::string ctx = "대한민국의 수도는";
  const std::vector<std::string> conts = {" 서울입니다.", " 부산", " 리눅스에서 사용할 수 있습니다", " 1,234,567원"};
  std::vector<LogLik> got = lm->loglikelihood(ctx, conts);
  ASSERT_EQ(got.size(), conts.size());
  const std::vector<int32_t> c = encode(t.tok, ctx);
  for (size_t j = 0; j < conts.size(); j++) {
    std::vector<int32_t> whole = encode(t.tok, ctx + conts[j]);
    std::vector<int32_t> seq = c;
    seq.insert(seq.end(), whole.begin() + long(c.size()), whole.end());
    const double want = direct_loglik(seq, c.size());
    EXPECT_EQ(got[j].tokens, int(seq.size() - c.size()));
    EXPECT_LT(std::fabs(got[j].logprob - want), 1e-4 * std::fabs(want)) << conts[j] << ": " << got[j].logprob << " vs " << want;
  }
  // A trailing space of the context moves to the continuation (lm-eval's _encode_pair).
  std::vector<LogLik> sp = lm->loglikelihood(ctx + " ", {"서울입니다."});
  EXPECT_NEAR(sp[0].logprob, got[0].logprob, 1e-6 * std::fabs(got[0].logprob));  // batches of other shapes: float rounding
  // The empty context is the prefix token.
  std::vector<LogLik> e = lm->loglikelihood("", {"서울"});
  std::vector<int32_t> seq = {t.m.tokenizer.token_id(t.m.bos_token) >= 0 ? t.m.tokenizer.token_id(t.m.bos_token)
                                                                          : t.m.config.bos_token_id >= 0 ? t.m.config.bos_token_id
                                                                          : t.m.tokenizer.token_id(t.m.eos_token)};
  ASSERT_GE(seq[0], 0);
  for (int32_t id : encode(t.tok, "서울")) seq.push_back(id);
  EXPECT_NEAR(e[0].logprob, direct_loglik(seq, 1), 1e-4 * std::fabs(e[0].logprob));
}

TEST(LocalModel, SharedPrefixBatchEqualsEachChoiceAlone) {
  TinyModel& t = tiny();
  LocalModelOptions sep;
  sep.share_prefix = false;
  auto shared = make_local_model(t.m), alone = make_local_model(t.m, sep);
  const std::string ctx = "문서를 저장하려면 파일 메뉴에서";
  const std::vector<std::string> conts = {" 저장을 선택할 수 있습니다.", " 열기", "", " GPU를 사용하면 학습이 빨라집니다", " 漢字"};
  std::vector<LogLik> a = shared->loglikelihood(ctx, conts), b = alone->loglikelihood(ctx, conts);
  for (size_t j = 0; j < conts.size(); j++) {
    EXPECT_NEAR(a[j].logprob, b[j].logprob, 1e-5 * std::max(1.0, std::fabs(b[j].logprob))) << j;
    EXPECT_EQ(a[j].tokens, b[j].tokens);
    EXPECT_EQ(a[j].greedy, b[j].greedy);
  }
  EXPECT_EQ(a[2].tokens, 0);
  EXPECT_EQ(a[2].logprob, 0.0);
  // Questions one after another reuse the cache without leaking: the same answer again.
  std::vector<LogLik> again = shared->loglikelihood(ctx, conts);
  for (size_t j = 0; j < conts.size(); j++) EXPECT_EQ(again[j].logprob, a[j].logprob);
}

TEST(LocalModel, RollingWindowsPredictEveryTokenOnce) {
  std::vector<int32_t> toks(23);
  for (int i = 0; i < 23; i++) toks[size_t(i)] = 100 + i;
  for (int L : {1, 4, 7, 23, 50}) {
    std::vector<TokenWindow> w = rolling_windows(toks, 9, L);
    std::vector<int32_t> predicted;
    for (const TokenWindow& x : w) {
      ASSERT_LE(x.input.size(), size_t(L));
      ASSERT_LE(x.targets.size(), x.input.size());
      // each target's context is the input up to it: target k is the token after input[n-len+k]
      for (size_t k = 0; k + 1 < x.targets.size(); k++)
        EXPECT_EQ(x.input[x.input.size() - x.targets.size() + k + 1], x.targets[k]);
      predicted.insert(predicted.end(), x.targets.begin(), x.targets.end());
    }
    EXPECT_EQ(predicted, toks) << L;
    EXPECT_EQ(w[0].input[0], 9);
  }
  EXPECT_TRUE(rolling_windows({}, 9, 4).empty());
}

TEST(LocalModel, RollingLoglikEqualsDirectForwardPerWindow) {
  TinyModel& t = tiny();
  const std::string text = "이 패키지는 리눅스에서 사용할 수 있습니다. 설치하려면 다음 명령을 실행하십시오. 서울에는 많은 사람들이 살고 있습니다.";
  const std::vector<int32_t> toks = encode(t.tok, text);
  LocalModelOptions o;
  o.ctx = 12;
  auto lm = make_local_model(t.m, o);
  LogLik got = lm->loglikelihood_rolling(text);
  EXPECT_EQ(got.tokens, int(toks.size()));
  int32_t prefix = t.m.tokenizer.token_id(t.m.bos_token);
  if (prefix < 0) prefix = t.m.config.bos_token_id >= 0 ? t.m.config.bos_token_id : t.m.tokenizer.token_id(t.m.eos_token);
  double want = 0;
  for (const TokenWindow& w : rolling_windows(toks, prefix, 12)) {
    std::vector<int32_t> seq = w.input;
    seq.push_back(w.targets.back());
    want += direct_loglik(seq, seq.size() - w.targets.size());
  }
  ASSERT_GT(toks.size(), 24u);  // several windows
  EXPECT_LT(std::fabs(got.logprob - want), 1e-4 * std::fabs(want));
}

namespace {

// A scripted model: log-likelihoods from a table, generations from a table, calls counted.
struct FakeModel : EvalModel {
  std::map<std::string, double> ll;  // continuation -> log-likelihood
  std::map<std::string, std::string> gen;  // context suffix -> output
  double rolling = -10;
  int calls = 0;
  std::vector<LogLik> loglikelihood(const std::string&, const std::vector<std::string>& conts) override {
    calls++;
    std::vector<LogLik> out;
    for (const std::string& c : conts) out.push_back({ll.count(c) ? ll[c] : -50.0, false, 1});
    return out;
  }
  LogLik loglikelihood_rolling(const std::string& text) override {
    calls++;
    return {rolling * double(text.size()), false, int(text.size())};
  }
  std::string generate_until(const std::string& ctx, const std::vector<std::string>&, int) override {
    calls++;
    for (auto& [k, v] : gen)
      if (ctx.size() >= k.size() && ctx.compare(ctx.size() - k.size(), k.size(), k) == 0) return v;
    return "";
  }
  nlohmann::ordered_json describe() override { return {{"path", "fake"}}; }
};

}  // namespace

TEST(Runner, MultipleChoiceAccuracyNormalisedByBytesWithStderr) {
  test::TempDir d;
  d.file("test.jsonl",
         "{\"q\": \"one\", \"c\": [\"A\", \"BBBB\"], \"label\": 1}\n"
         "{\"q\": \"two\", \"c\": [\"A\", \"BBBB\"], \"label\": 0}\n"
         "{\"q\": \"three\", \"c\": [\"CC\", \"D\"], \"label\": 0}\n");
  const std::string y = d.file("mc.yaml",
                               "task: mc\noutput_type: multiple_choice\ntest_split: test\ndataset_path: .\n"
                               "doc_to_text: \"{{q}}\"\ndoc_to_choice: c\ndoc_to_target: label\n");
  FakeModel fm;
  // A: -1 (per byte -1), BBBB: -2 (per byte -0.5): acc picks A, acc_norm picks BBBB.
  fm.ll = {{" A", -1.0}, {" BBBB", -2.0}, {" CC", -1.0}, {" D", -3.0}};
  RunOptions ro;
  ro.out_dir = d.path + "/out";
  TaskResult r = run_task(fm, load_task_file(y), ro);
  EXPECT_EQ(r.n, 3);
  EXPECT_NEAR(r.metrics["acc"]["value"].get<double>(), 2.0 / 3, 1e-12);       // docs 2, 3
  EXPECT_NEAR(r.metrics["acc_norm"]["value"].get<double>(), 2.0 / 3, 1e-12);  // docs 1, 3
  const double se = std::sqrt((2 * (1.0 / 9) + 4.0 / 9) / 2) / std::sqrt(3.0);
  EXPECT_NEAR(r.metrics["acc"]["stderr"].get<double>(), se, 1e-12);
  // samples: prompt, choices, log-likelihoods, prediction, target
  const std::string samples = read_file(ro.out_dir + "/samples_mc.jsonl");
  nlohmann::json s0 = nlohmann::json::parse(samples.substr(0, samples.find('\n')));
  EXPECT_EQ(s0["prompt"], "one");
  EXPECT_EQ(s0["choices"], nlohmann::json::array({"A", "BBBB"}));
  EXPECT_EQ(s0["loglikelihoods"], nlohmann::json::array({-1.0, -2.0}));
  EXPECT_EQ(s0["prediction"], 0);
  EXPECT_EQ(s0["target"], "BBBB");
  EXPECT_EQ(fm.calls, 3);  // one request batch per question

  // --resume: nothing redone; a torn last line and a missing line are redone, nothing else.
  ro.resume = true;
  TaskResult again = run_task(fm, load_task_file(y), ro);
  EXPECT_EQ(fm.calls, 3);
  EXPECT_EQ(again.reused, 3);
  EXPECT_EQ(again.metrics, r.metrics);
  std::string first_two = samples.substr(0, samples.find('\n', samples.find('\n') + 1) + 1);
  write_file_atomic(ro.out_dir + "/samples_mc.jsonl", first_two + "{\"doc_id\": 2, \"prom");
  TaskResult third = run_task(fm, load_task_file(y), ro);
  EXPECT_EQ(fm.calls, 4);
  EXPECT_EQ(third.reused, 2);
  EXPECT_EQ(third.metrics, r.metrics);
  EXPECT_EQ(read_file(ro.out_dir + "/samples_mc.jsonl"), samples);
  // A different prompt (here: few-shot) is not reused.
  ro.shots = 1;
  d.file("mc2.yaml", read_file(y) + "fewshot_split: test\n");
  run_task(fm, load_task_file(d.path + "/mc2.yaml"), ro);
  EXPECT_EQ(fm.calls, 7);
}

TEST(Runner, GenerationMetricsWithFilters) {
  test::TempDir d;
  d.file("test.tsv", "q\ta\n1+1\t2\n2+2\t4\n3+3\t6\n");
  const std::string y = d.file("g.yaml", R"Y(task: gen
output_type: generate_until
test_split: test
dataset_path: .
doc_to_text: "Q: {{q}} A:"
doc_to_target: "{{a}}"
generation_kwargs:
  until: ["\n"]
filter_list:
  - name: number
    filter:
      - function: regex
        regex_pattern: "-?[0-9]+"
      - function: take_first
  - name: none
    filter:
      - function: take_first
metric_list:
  - metric: exact_match
  - metric: chrf
  - metric: bleu
)Y");
  FakeModel fm;
  fm.gen = {{"1+1 A:", " 2"}, {"2+2 A:", " 정답은 4"}, {"3+3 A:", " 5"}};
  TaskResult r = run_task(fm, load_task_file(y), RunOptions{});
  EXPECT_NEAR(r.metrics["exact_match,number"]["value"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(r.metrics["exact_match"]["value"].get<double>(), 0.0, 1e-12);  // " 2" != "2" unfiltered
  EXPECT_NEAR(r.metrics["chrf,number"]["value"].get<double>(), corpus_chrf({"2", "4", "5"}, {{"2"}, {"4"}, {"6"}}), 1e-9);
  EXPECT_NEAR(r.metrics["bleu"]["value"].get<double>(), corpus_bleu({" 2", " 정답은 4", " 5"}, {{"2"}, {"4"}, {"6"}}), 1e-9);
  EXPECT_GE(r.metrics["chrf,number"]["stderr"].get<double>(), 0.0);
}

TEST(Runner, BitsPerByteArithmetic) {
  test::TempDir d;
  const std::string f = d.file("t.txt", "가나다 라마\n\nabc def ghi\n");
  FakeModel fm;
  fm.rolling = -0.5;  // log-likelihood = -0.5 per byte of the text
  RunOptions ro;
  ro.text_files = {f};
  TaskResult r = run_task(fm, builtin_task("bpb"), ro);
  EXPECT_EQ(r.n, 2);
  const double bytes = std::string("가나다 라마").size() + 11.0, ll = -0.5 * bytes;
  EXPECT_NEAR(r.metrics["bits_per_byte"]["value"].get<double>(), -ll / bytes / std::log(2.0), 1e-12);
  EXPECT_NEAR(r.metrics["byte_perplexity"]["value"].get<double>(), std::exp(0.5), 1e-12);
  EXPECT_NEAR(r.metrics["word_perplexity"]["value"].get<double>(), std::exp(-ll / 5.0), 1e-9);  // 2 + 3 words
}

namespace {

// A model whose requests may run at once (an endpoint's are): run_task gives it concurrency()
// documents at a time. Log-likelihoods depend only on the continuation; a context containing
// `fail_on` fails, as a request to a server that went away does.
struct ConcurrentFake : EvalModel {
  int threads = 4;
  bool overlap = false;  // the first request waits for a second one to be in flight (at most 2 s)
  std::string fail_on;
  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0, max_inflight = 0, done = 0;
  std::vector<LogLik> loglikelihood(const std::string& ctx, const std::vector<std::string>& conts) override {
    {
      std::unique_lock lock(mu);
      max_inflight = std::max(max_inflight, ++inflight);
      cv.notify_all();
      // (until a second request is in flight, or a while: shows that documents overlap)
      if (overlap) cv.wait_for(lock, std::chrono::seconds(2), [&] { return inflight >= 2 || done > 0; });
      --inflight;
    }
    if (!fail_on.empty() && ctx.find(fail_on) != std::string::npos) throw Error("endpoint x: HTTP 503: gone");
    std::vector<LogLik> out;
    for (const std::string& c : conts) out.push_back({-double(c.size() % 7) - 0.25, false, 1});
    std::lock_guard lock(mu);
    ++done;
    cv.notify_all();
    return out;
  }
  LogLik loglikelihood_rolling(const std::string&) override { return {}; }
  std::string generate_until(const std::string&, const std::vector<std::string>&, int) override { return ""; }
  nlohmann::ordered_json describe() override { return {{"path", "concurrent"}}; }
  int concurrency() const override { return threads; }
};

}  // namespace

TEST(Runner, ConcurrentDocumentsGiveTheSameResultsAndKeepFinishedSamplesOnFailure) {
  test::TempDir d;
  std::string rows;
  for (int i = 0; i < 20; i++)
    rows += cat("{\"q\": \"q", i, "\", \"c\": [\"", std::string(size_t(i % 5 + 1), 'a'), "\", \"bb\", \"ccc\"], \"label\": ",
                i % 3, "}\n");
  d.file("test.jsonl", rows);
  const std::string y = d.file("mc.yaml",
                               "task: mc\noutput_type: multiple_choice\ntest_split: test\ndataset_path: .\n"
                               "doc_to_text: \"{{q}}\"\ndoc_to_choice: c\ndoc_to_target: label\n");
  ConcurrentFake one;
  one.threads = 1;
  RunOptions ro;
  ro.out_dir = d.path + "/one";
  const TaskResult r1 = run_task(one, load_task_file(y), ro);
  ConcurrentFake four;
  four.overlap = true;
  ro.out_dir = d.path + "/four";
  const TaskResult r4 = run_task(four, load_task_file(y), ro);
  EXPECT_GE(four.max_inflight, 2);
  EXPECT_EQ(r4.n, 20);
  EXPECT_EQ(r4.metrics, r1.metrics);  // samples aggregated in document order, whatever order they finished in
  auto lines = [](const std::string& f) {
    std::map<size_t, std::string> m;
    std::string t = read_file(f);
    for (size_t p = 0, e; (e = t.find('\n', p)) != std::string::npos; p = e + 1) {
      nlohmann::json j = nlohmann::json::parse(t.substr(p, e - p));
      m[j["doc_id"].get<size_t>()] = j.dump();
    }
    return m;
  };
  EXPECT_EQ(lines(d.path + "/four/samples_mc.jsonl"), lines(d.path + "/one/samples_mc.jsonl"));

  // Document 7 fails: the error comes out, every finished document's sample is on disk, and
  // --resume evaluates only the rest.
  ConcurrentFake failing;
  failing.fail_on = "q7";
  ro.out_dir = d.path + "/fail";
  try {
    run_task(failing, load_task_file(y), ro);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "endpoint x: HTTP 503: gone");
  }
  const auto kept = lines(d.path + "/fail/samples_mc.jsonl");
  EXPECT_EQ(int(kept.size()), failing.done);
  EXPECT_EQ(kept.count(7), 0u);
  EXPECT_GE(kept.size(), 7u);  // documents 0-6 were handed out before 7, and those in flight finish
  ConcurrentFake rest;
  ro.resume = true;
  const TaskResult rr = run_task(rest, load_task_file(y), ro);
  EXPECT_EQ(rr.reused, int(kept.size()));
  EXPECT_EQ(rest.done, 20 - int(kept.size()));
  EXPECT_EQ(rr.metrics, r1.metrics);
}
