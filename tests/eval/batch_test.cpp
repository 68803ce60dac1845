// Several multiple-choice questions read in one pass of the local model (prefetch_loglikelihood,
// as run_task drives it) give the answers of each question alone and of each choice alone, also
// when the budgets split the passes mid-context, with empty contexts and continuations, and with
// a question whose context is cut per choice (lm-eval's left truncation); and run_task's
// prefetching gives the same samples as a model that reads one question at a time.
#include <gtest/gtest.h>

#include <cmath>

#include "base/base.h"
#include "eval/eval.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/model.h"
#include "infer/infer_test_util.h"
#include "text/test_util.h"
#include "text/text.h"

using namespace todae;
using namespace todae::eval;

namespace {

// A random 2-layer model (64 positions, so a long context is cut) with a trained tokenizer.
InferModel& tiny() {
  static test::TempDir* dir = new test::TempDir;
  static InferModel* m = [] {
    const std::string md = dir->path + "/model";
    test::write_tiny_llama(md, dir->file("c.txt", test::sample_corpus()), 64);
    return new InferModel(load_model(md));
  }();
  return *m;
}

std::vector<EvalModel::LoglikRequest> questions() {
  std::string long_ctx;
  for (int i = 0; i < 12; i++) long_ctx += "데비안은 자유 소프트웨어로 만든 운영체제입니다. ";
  return {{"대한민국의 수도는", {" 서울입니다.", " 부산", " 리눅스에서 사용할 수 있습니다"}},
          {"문서를 저장하려면 파일 메뉴에서 ", {"저장을 선택할 수 있습니다.", "", "열기"}},
          {"", {"서울", " 데비안"}},
          {long_ctx + "그래서", {" 좋다", " 아주 오래된 운영체제이다 그리고 지금도 널리 쓰인다", " x"}},  // cut per choice
          {"GPU를 사용하면", {" 학습이 빨라집니다", " 漢字"}},
          {"질문: 1 더하기 1은? 답:", {" 2"}}};
}

void expect_same(const std::vector<LogLik>& a, const std::vector<LogLik>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t j = 0; j < a.size(); j++) {
    EXPECT_NEAR(a[j].logprob, b[j].logprob, 1e-5 * std::max(1.0, std::fabs(b[j].logprob))) << what << " choice " << j;
    EXPECT_EQ(a[j].tokens, b[j].tokens) << what << " choice " << j;
    EXPECT_EQ(a[j].greedy, b[j].greedy) << what << " choice " << j;
  }
}

}  // namespace

TEST(LocalModelBatch, PrefetchedQuestionsEqualEachAloneAndEachChoiceAlone) {
  InferModel& m = tiny();
  LocalModelOptions sep_o;
  sep_o.share_prefix = false;
  auto alone = make_local_model(m), sep = make_local_model(m, sep_o);
  const auto qs = questions();
  std::vector<std::vector<LogLik>> want;
  for (const auto& q : qs) {
    want.push_back(alone->loglikelihood(q.context, q.continuations));
    expect_same(want.back(), sep->loglikelihood(q.context, q.continuations), "shared vs separate: " + q.context.substr(0, 20));
  }
  EXPECT_LT(want[3][1].logprob, 0.0);
  // Budgets from roomy to tiny: one pass for all, passes cut inside contexts and continuations.
  for (int tokens : {1024, 40, 7}) {
    LocalModelOptions o;
    o.batch_tokens = tokens;
    auto batched = make_local_model(m, o);
    EXPECT_EQ(batched->batch_questions(), 8);
    batched->prefetch_loglikelihood(qs);
    for (size_t k = 0; k < qs.size(); k++)
      expect_same(batched->loglikelihood(qs[k].context, qs[k].continuations), want[k], cat("budget ", tokens, " question ", k));
    // Asked again (nothing prefetched any more): computed as usual, the same.
    expect_same(batched->loglikelihood(qs[0].context, qs[0].continuations), want[0], "again");
  }
  EXPECT_EQ(sep->batch_questions(), 1);  // one request per choice: nothing to read together
}

namespace {

// Counts how the runner drives a model, answering from a local model.
struct Counting : EvalModel {
  std::unique_ptr<EvalModel> inner;
  int prefetched = 0, asked = 0;
  std::vector<LogLik> loglikelihood(const std::string& c, const std::vector<std::string>& k) override {
    asked++;
    return inner->loglikelihood(c, k);
  }
  LogLik loglikelihood_rolling(const std::string& t) override { return inner->loglikelihood_rolling(t); }
  std::string generate_until(const std::string& c, const std::vector<std::string>& u, int n) override {
    return inner->generate_until(c, u, n);
  }
  nlohmann::ordered_json describe() override { return {{"path", "counting"}}; }
  int batch_questions() const override { return inner->batch_questions(); }
  void prefetch_loglikelihood(const std::vector<LoglikRequest>& r) override {
    prefetched += int(r.size());
    inner->prefetch_loglikelihood(r);
  }
};

}  // namespace

TEST(LocalModelBatch, RunnerPrefetchesAndScoresAsOneAtATime) {
  test::TempDir d;
  std::string rows;
  const char* qs[] = {"서울은 대한민국의 수도이다.", "부산은 항구 도시이다.", "데비안은 리눅스 배포판이다.", "GPU는 빠르다.",
                      "파일 메뉴에서 저장한다.", "한글은 과학적이다.", "토대는 C++로 만들었다.", "커널은 운영체제의 핵심이다.",
                      "학교에서 공부한다.", "비가 온다."};
  for (int i = 0; i < 10; i++) rows += cat("{\"q\": \"", qs[i], "\", \"c\": [\"예\", \"아니오\", \"모르겠다\"], \"label\": ", i % 3, "}\n");
  d.file("test.jsonl", rows);
  const std::string y = d.file("mc.yaml", "task: mc\noutput_type: multiple_choice\ntest_split: test\ndataset_path: .\n"
                                          "doc_to_text: \"{{q}} 질문: 맞나요? 답:\"\ndoc_to_choice: c\ndoc_to_target: label\n");
  Counting batched, single;
  batched.inner = make_local_model(tiny());
  LocalModelOptions one;
  one.batch_questions = 1;
  single.inner = make_local_model(tiny(), one);
  RunOptions ro;
  ro.out_dir = d.path + "/a";
  TaskResult a = run_task(batched, load_task_file(y), ro);
  ro.out_dir = d.path + "/b";
  TaskResult b = run_task(single, load_task_file(y), ro);
  EXPECT_EQ(batched.prefetched, 10);  // groups of 8 and 2
  EXPECT_EQ(batched.asked, 10);
  EXPECT_EQ(single.prefetched, 0);
  EXPECT_EQ(a.metrics, b.metrics);
  const std::string sa = read_file(d.path + "/a/samples_mc.jsonl"), sb = read_file(d.path + "/b/samples_mc.jsonl");
  size_t pa = 0, pb = 0;
  for (int i = 0; i < 10; i++) {
    const size_t ea = sa.find('\n', pa), eb = sb.find('\n', pb);
    nlohmann::json x = nlohmann::json::parse(sa.substr(pa, ea - pa)), z = nlohmann::json::parse(sb.substr(pb, eb - pb));
    for (size_t k = 0; k < 3; k++)
      EXPECT_NEAR(x["loglikelihoods"][k].get<double>(), z["loglikelihoods"][k].get<double>(),
                  1e-5 * std::fabs(z["loglikelihoods"][k].get<double>()));
    EXPECT_EQ(x["prediction"], z["prediction"]);
    pa = ea + 1, pb = eb + 1;
  }
}
