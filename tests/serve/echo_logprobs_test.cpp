// `todae serve` answering the request lm-eval's local-completions model sends for log-likelihood —
// {"model", "prompt", "echo": true, "logprobs": N, "max_tokens": 0, "temperature": 0, "seed"} — over
// real HTTP, on a small random model: every prompt token's logprob equals the log-softmax of a
// local forward pass over the same tokens (1e-5), the first is null (OpenAI/vLLM), top_logprobs
// holds the argmax and the token itself, text_offset counts code points. Also the batched shape
// lm-eval sends (a list of token-id prompts, max_tokens 1, parsed as token_logprobs[ctxlen:-1]).
#include <httplib.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "base/base.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/model.h"
#include "serve/api.h"
#include "infer/infer_test_util.h"
#include "text/test_util.h"
#include "text/text.h"

using namespace todae;
using json = nlohmann::ordered_json;

namespace {

// A random 2-layer Llama with a tokenizer trained on the sample corpus, as a Hugging Face folder,
// served by a `todae serve` child process (f32 KV cache: the scores are the model's, not the
// cache's rounding).
struct Served {
  test::TempDir dir;
  std::string model_dir;
  InferModel m;
  pid_t pid = -1;
  int port = 0;

  Served() {
    model_dir = dir.path + "/model";
    test::write_tiny_llama(model_dir, dir.file("c.txt", test::sample_corpus()), 256);
    m = load_model(model_dir);

    const std::string port_file = dir.path + "/port";
    pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlives the test, even one that crashed
      ::execl(TODAE_BIN, TODAE_BIN, "serve", "--model", model_dir.c_str(), "--port", "0", "--port-file",
              port_file.c_str(), "--kv-type", "f32", "--parallel", "2", "--threads", "1", "-q", (char*)nullptr);
      _exit(127);
    }
    for (int i = 0; i < 600 && port == 0; ++i) {  // (loading a 2-layer model takes well under a second)
      if (file_exists(port_file)) port = std::atoi(read_file(port_file).c_str());
      if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~Served() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  }

  json post(const json& body) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(60, 0);
    auto res = cli.Post("/v1/completions", body.dump(), "application/json");
    if (!res) throw Error("no answer from todae serve");
    if (res->status != 200) throw Error(cat("HTTP ", res->status, ": ", res->body));
    return json::parse(res->body);
  }

  // log_softmax(logits at position i)[tokens[i + 1]] for every i, and the argmax of each row, from
  // one forward pass over all of `tokens` in a fresh f32 cache.
  void reference(const std::vector<int32_t>& tokens, std::vector<double>& lp, std::vector<int32_t>& best) {
    const int V = m.config.vocab_size;
    KVCache cache = make_kv_cache(m, 256, 1, WType::F32);
    Forward fw;
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(i), 0, true);
    std::vector<float> logits(tokens.size() * size_t(V));
    forward_batch(m, cache, fw, b, logits.data());
    lp.assign(tokens.size(), 0);
    best.assign(tokens.size(), 0);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const float* row = &logits[i * size_t(V)];
      double mx = row[0], z = 0;
      for (int v = 0; v < V; ++v)
        if (row[v] > mx) mx = row[v], best[i] = v;
      for (int v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
      if (i + 1 < tokens.size()) lp[i + 1] = double(row[tokens[i + 1]]) - mx - std::log(z);
    }
  }
};

Served& served() {
  static Served s;  // one server for the whole binary, stopped at exit
  return s;
}

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

TEST(ServeEchoLogprobs, LmEvalLoglikelihoodRequestScoresEveryPromptToken) {
  Served& s = served();
  ASSERT_GT(s.port, 0) << "todae serve did not start (" << TODAE_BIN << ")";
  const std::string prompt = "대한민국의 수도는 서울입니다. GPU를 사용하면";
  const json r = s.post({{"model", "model"}, {"prompt", prompt}, {"echo", true}, {"logprobs", 1},
                         {"max_tokens", 0}, {"temperature", 0}, {"seed", 1234}});
  ASSERT_EQ(r["choices"].size(), 1u);
  const json& c = r["choices"][0];
  EXPECT_EQ(c["text"], prompt);  // echo, nothing generated
  EXPECT_EQ(c["finish_reason"], "length");
  const json& lp = c["logprobs"];
  const std::vector<int32_t> ids = encode(s.m.tokenizer, prompt);
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["text_offset"].size(), ids.size());
  EXPECT_EQ(r["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(r["usage"]["completion_tokens"], 0);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  std::vector<double> want;
  std::vector<int32_t> best;
  s.reference(ids, want, best);
  std::string before;  // the prompt's bytes before token i
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string bytes = s.m.tokenizer.token_bytes(ids[i]);
    // the index of the character holding the token's first byte
    size_t off = code_points(before);
    if (!bytes.empty() && (static_cast<unsigned char>(bytes[0]) & 0xC0) == 0x80) off--;
    EXPECT_EQ(lp["text_offset"][i].get<size_t>(), off) << i;
    before += bytes;
    if (i == 0) continue;
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), want[i], 1e-5) << i;
    const json& top = lp["top_logprobs"][i];
    const std::string tok = replace_invalid_utf8(bytes), arg = replace_invalid_utf8(s.m.tokenizer.token_bytes(best[i - 1]));
    ASSERT_TRUE(top.contains(tok)) << i;
    ASSERT_TRUE(top.contains(arg)) << i;
    // (keys are token texts: two partial UTF-8 tokens may share the key U+FFFD, the argmax first)
    if (tok != arg || ids[i] == best[i - 1]) {
      EXPECT_NEAR(top[tok].get<double>(), want[i], 1e-5) << i;
    }
    // lm-eval's greedy check: the token's logprob is the largest of the row
    double mx = -INFINITY;
    for (const auto& [k, v] : top.items()) mx = std::max(mx, v.get<double>());
    EXPECT_EQ(lp["token_logprobs"][i].get<double>() == mx, ids[i] == best[i - 1]) << i;
  }
  EXPECT_EQ(before, prompt);
}

TEST(ServeEchoLogprobs, BatchedTokenIdPromptsAsLmEvalSendsThem) {
  Served& s = served();
  ASSERT_GT(s.port, 0);
  // lm-eval's current payload: token ids, several prompts per request, max_tokens 1, logprobs 1;
  // it sums token_logprobs[ctxlen:-1] (the last entry is the generated token).
  const std::vector<int32_t> ctx = encode(s.m.tokenizer, "문서를 저장하려면 파일 메뉴에서");
  std::vector<std::vector<int32_t>> prompts;
  for (const char* cont : {" 저장을 선택할 수 있습니다.", " 열기"}) {
    std::vector<int32_t> whole = encode(s.m.tokenizer, std::string("문서를 저장하려면 파일 메뉴에서") + cont);
    prompts.push_back(whole);
  }
  const json r = s.post({{"model", "model"}, {"prompt", prompts}, {"echo", true}, {"logprobs", 1},
                         {"max_tokens", 1}, {"temperature", 0}, {"seed", 1234}});
  ASSERT_EQ(r["choices"].size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const json& c = r["choices"][k];
    EXPECT_EQ(c["index"], k);
    const json& lp = c["logprobs"];
    ASSERT_EQ(lp["token_logprobs"].size(), prompts[k].size() + 1);  // prompt + the one generated
    std::vector<double> want;
    std::vector<int32_t> best;
    s.reference(prompts[k], want, best);
    double got = 0, ref = 0;
    for (size_t i = ctx.size(); i < prompts[k].size(); ++i) got += lp["token_logprobs"][i].get<double>(), ref += want[i];
    EXPECT_NEAR(got, ref, 1e-5 * std::max(1.0, std::fabs(ref)));
    // the generated token is the greedy continuation of the prompt
    EXPECT_EQ(lp["tokens"].back(), replace_invalid_utf8(s.m.tokenizer.token_bytes(best.back())));
    EXPECT_EQ(lp["text_offset"].back(), code_points(decode(s.m.tokenizer, prompts[k])));
  }
  // A list of texts: each choice is its own prompt's echo.
  const json t = s.post({{"model", "model"}, {"prompt", json::array({"서울", "부산은"})}, {"echo", true}, {"logprobs", 0},
                         {"max_tokens", 0}});
  ASSERT_EQ(t["choices"].size(), 2u);
  EXPECT_EQ(t["choices"][0]["text"], "서울");
  EXPECT_EQ(t["choices"][1]["text"], "부산은");
  EXPECT_EQ(t["usage"]["prompt_tokens"],
            encode(s.m.tokenizer, "서울").size() + encode(s.m.tokenizer, "부산은").size());
}
