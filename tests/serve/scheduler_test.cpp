// The continuous-batching scheduler against a fake engine that checks every batch obeys
// forward_batch's contract (a slot's entries are consecutive and continue its cache) and writes a
// predictable text: the token for position p is "abc"[(p + adapter) % 3], so a sequence's text
// shows which LoRA adapter id its entries carried.
#include "serve/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "text/test_util.h"

using namespace todae;
using namespace todae::serve;
using namespace std::chrono_literals;

namespace {

const Tokenizer& test_tokenizer() {
  static Tokenizer tok = [] {
    test::TempDir dir;
    TokenizerTrainOptions o;
    o.inputs = {dir.file("c.txt", test::sample_corpus())};
    o.vocab_size = 400;
    o.progress = false;
    return train_bpe(o);
  }();
  return tok;
}

struct FakeEngine : Engine {
  int V, C = 8, S, T;
  std::vector<int> len;
  std::vector<std::vector<int>> adapter_at;  // per slot, the adapter id each cached position was computed with
  int max_adapters_in_batch = 0;
  std::vector<int32_t> stops;
  std::mutex mu;
  int max_slots_in_batch = 0, max_batch = 0, passes = 0;
  std::vector<int> batch_sizes;
  std::atomic<int> delay_ms{0};
  int32_t letter[3];

  FakeEngine(int slots, int ctx) : S(slots), T(ctx), len(size_t(slots), 0), adapter_at(size_t(slots)) {
    const Tokenizer& tok = test_tokenizer();
    V = tok.vocab_size();
    letter[0] = tok.token_id("a");
    letter[1] = tok.token_id("b");
    letter[2] = tok.token_id("c");
    stops = {tok.token_id("<|eos|>")};
  }
  int vocab_size() const override { return V; }
  int hidden_size() const override { return C; }
  int slots() const override { return S; }
  int ctx() const override { return T; }
  int length(int slot) const override { return len[size_t(slot)]; }
  void truncate(int slot, int n) override {
    len[size_t(slot)] = std::min(len[size_t(slot)], n);
    adapter_at[size_t(slot)].resize(size_t(len[size_t(slot)]));
  }
  void forward(const Batch& b, float* logits, float* hidden) override {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
    std::lock_guard lock(mu);
    ++passes;
    batch_sizes.push_back(b.size());
    max_batch = std::max(max_batch, b.size());
    std::vector<int> seen, adapters;
    int row = 0;
    for (int i = 0; i < b.size(); ++i) {
      const int s = b.slot[size_t(i)];
      if (i == 0 || b.slot[size_t(i - 1)] != s) {
        if (std::find(seen.begin(), seen.end(), s) != seen.end()) throw Error("slot entries not consecutive");
        seen.push_back(s);
      }
      if (b.pos[size_t(i)] != len[size_t(s)])
        throw Error(cat("slot ", s, ": pos ", b.pos[size_t(i)], " != length ", len[size_t(s)]));
      if (b.pos[size_t(i)] >= T) throw Error("past the context");
      const int a = b.adapter.empty() ? 0 : b.adapter[size_t(i)];
      // keys and values of one adapter are no prefix for another's sequence
      for (int held : adapter_at[size_t(s)])
        if (held != a) throw Error(cat("slot ", s, ": adapter ", a, " continues a cache made with adapter ", held));
      adapter_at[size_t(s)].push_back(a);
      if (std::find(adapters.begin(), adapters.end(), a) == adapters.end()) adapters.push_back(a);
      ++len[size_t(s)];
      if (hidden)
        for (int c = 0; c < C; ++c) hidden[size_t(i) * size_t(C) + size_t(c)] = float(c + 1);
      if (b.want_logits[size_t(i)]) {
        float* l = logits + size_t(row++) * size_t(V);
        for (int v = 0; v < V; ++v) l[v] = 0;
        l[letter[(b.pos[size_t(i)] + 1 + a) % 3]] = 20;  // the token for the next position
      }
    }
    max_slots_in_batch = std::max(max_slots_in_batch, int(seen.size()));
    max_adapters_in_batch = std::max(max_adapters_in_batch, int(adapters.size()));
  }
  const Tokenizer& tokenizer() const override { return test_tokenizer(); }
  const std::vector<int32_t>& stop_ids() const override { return stops; }
};

std::vector<int32_t> prompt_of(int n) {
  const Tokenizer& tok = test_tokenizer();
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(tok.token_id(i % 2 ? "x" : "y"));
  return p;
}

std::shared_ptr<Job> gen_job(int prompt_len, int max_tokens, int n = 1) {
  auto j = std::make_shared<Job>();
  j->prompts = {prompt_of(prompt_len)};
  j->max_tokens = max_tokens;
  j->n = n;
  j->sampling.temperature = 0;
  j->random_seed = false;
  return j;
}

struct Collected {
  std::vector<std::string> text;
  std::vector<std::string> finish;
  std::vector<int> pieces;
  bool error = false;
};

Collected collect(Job& j, std::chrono::milliseconds limit = 20s) {
  Collected c;
  c.text.resize(size_t(j.n)), c.finish.resize(size_t(j.n)), c.pieces.resize(size_t(j.n));
  auto until = std::chrono::steady_clock::now() + limit;
  std::vector<Event> evs;
  for (;;) {
    evs.clear();
    bool done = j.wait_events(evs, 50ms);
    for (auto& e : evs) {
      c.text[size_t(e.index)] += e.text;
      c.pieces[size_t(e.index)]++;
      if (!e.finish_reason.empty()) c.finish[size_t(e.index)] = e.finish_reason;
    }
    if (done) break;
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "job did not finish";
      break;
    }
  }
  c.error = j.error.has_value();
  return c;
}

// The text the fake writes after a prompt of length n: "abc"[(n + i) % 3] for i = 0..k-1.
std::string expected(int n, int k) {
  std::string s;
  for (int i = 0; i < k; ++i) s += "abc"[(n + i) % 3];
  return s;
}

}  // namespace

TEST(ServeScheduler, OneRequest) {
  FakeEngine e(2, 256);
  Scheduler s(e, SchedulerOptions{});
  auto j = gen_job(5, 6);
  ASSERT_TRUE(s.submit(j));
  Collected c = collect(*j);
  EXPECT_EQ(c.text[0], expected(5, 6));
  EXPECT_EQ(c.finish[0], "length");
  EXPECT_EQ(j->usage.prompt_tokens, 5);
  EXPECT_EQ(j->usage.completion_tokens, 6);
}

TEST(ServeScheduler, ConcurrentRequestsShareForwardPasses) {
  FakeEngine e(4, 512);
  e.delay_ms = 2;
  Scheduler s(e, SchedulerOptions{});
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 10; ++i) {
    jobs.push_back(gen_job(3 + i, 20));
    ASSERT_TRUE(s.submit(jobs.back()));
  }
  for (int i = 0; i < 10; ++i) {
    Collected c = collect(*jobs[size_t(i)]);
    EXPECT_EQ(c.text[0], expected(3 + i, 20)) << i;
    EXPECT_EQ(c.finish[0], "length");
  }
  EXPECT_GE(e.max_slots_in_batch, 3);  // decode steps carried several sequences
  // 10 x 20 tokens in far fewer passes than 200 one-token steps.
  EXPECT_LT(e.passes, 120);
}

TEST(ServeScheduler, ChunkedPrefillDoesNotStallDecoding) {
  FakeEngine e(2, 4096);
  SchedulerOptions o;
  o.batch_tokens = 64;
  o.prefill_chunk = 16;
  // a decodes long enough to still be running while b's prompt goes in (~63 passes of 16 tokens),
  // even when this thread is descheduled for a while on a loaded machine (200 tokens was not always
  // enough in CI). Each pass takes 1 ms: without a floor, 3000 passes of the instant fake engine
  // could all finish before b was sent (seen once in ~100 runs on an idle machine).
  e.delay_ms = 1;
  Scheduler s(e, o);
  auto a = gen_job(4, 1000);
  ASSERT_TRUE(s.submit(a));
  // Wait until a decodes, then send a long prompt.
  std::vector<Event> evs;
  while (evs.empty()) a->wait_events(evs, 50ms);
  auto b = gen_job(1000, 3);
  ASSERT_TRUE(s.submit(b));
  Collected cb = collect(*b);
  Collected ca = collect(*a);
  EXPECT_EQ(cb.text[0], expected(1000, 3));
  EXPECT_EQ(ca.finish[0], "length");
  EXPECT_LE(e.max_batch, 64);
  // While b's 1000-token prompt went in (16 per pass), a kept getting a token per pass.
  int mixed = 0;
  for (int n : e.batch_sizes) mixed += n == 17;
  EXPECT_GE(mixed, 50);
}

TEST(ServeScheduler, StopStringsAndEos) {
  FakeEngine e(1, 256);
  Scheduler s(e, SchedulerOptions{});
  auto j = gen_job(3, 50);  // writes "abcabc..."
  j->stop = {"ca"};
  ASSERT_TRUE(s.submit(j));
  Collected c = collect(*j);
  EXPECT_EQ(c.text[0], "ab");  // "abca": the text ends before the stop string
  EXPECT_EQ(c.finish[0], "stop");

  auto k = gen_job(3, 50);
  k->logit_bias = {{e.stops[0], 100.0f}};  // force end-of-generation at once
  ASSERT_TRUE(s.submit(k));
  c = collect(*k);
  EXPECT_EQ(c.text[0], "");
  EXPECT_EQ(c.finish[0], "stop");
  EXPECT_EQ(k->usage.completion_tokens, 0);
}

TEST(ServeScheduler, ContextFullEndsWithLength) {
  FakeEngine e(1, 16);
  Scheduler s(e, SchedulerOptions{});
  auto j = gen_job(10, -1);
  ASSERT_TRUE(s.submit(j));
  Collected c = collect(*j);
  EXPECT_EQ(c.finish[0], "length");
  EXPECT_EQ(int(c.text[0].size()), 16 - 10 + 1);
}

TEST(ServeScheduler, SeveralChoicesAndLogprobs) {
  FakeEngine e(4, 256);
  Scheduler s(e, SchedulerOptions{});
  auto j = gen_job(4, 5, 3);
  j->logprobs = true;
  j->sampling.top_logprobs = 2;
  ASSERT_TRUE(s.submit(j));
  std::vector<Event> all;
  while (!j->wait_events(all, 50ms)) {
  }
  std::vector<std::string> text(3);
  int lps = 0;
  for (auto& ev : all) {
    text[size_t(ev.index)] += ev.text;
    for (auto& l : ev.logprobs) {
      ++lps;
      EXPECT_EQ(l.top.size(), 2u);
      EXPECT_EQ(l.top[0].first, l.token);
      EXPECT_LE(l.logprob, 0.0f);
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(text[size_t(i)], expected(4, 5));
  EXPECT_EQ(lps, 15);
  EXPECT_EQ(j->usage.completion_tokens, 15);
  EXPECT_EQ(j->usage.prompt_tokens, 4);
}

TEST(ServeScheduler, CancelFreesTheSlotAtOnce) {
  FakeEngine e(1, 100000);
  e.delay_ms = 1;
  Scheduler s(e, SchedulerOptions{});
  auto a = gen_job(3, -1);  // would run for 100k tokens
  ASSERT_TRUE(s.submit(a));
  std::vector<Event> evs;
  while (evs.empty()) a->wait_events(evs, 50ms);
  auto b = gen_job(3, 4);
  ASSERT_TRUE(s.submit(b));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s.queued(), 1);  // b waits: the only slot is a's
  s.cancel(a);
  Collected cb = collect(*b, 5s);
  EXPECT_EQ(cb.text[0], expected(3, 4));
  Collected ca = collect(*a, 5s);  // a is finished too (no more events)
  EXPECT_LT(e.len[0], 1000);
}

TEST(ServeScheduler, BoundedQueue) {
  FakeEngine e(1, 100000);
  e.delay_ms = 1;
  SchedulerOptions o;
  o.max_queue = 2;
  Scheduler s(e, o);
  auto a = gen_job(3, -1);
  ASSERT_TRUE(s.submit(a));
  std::vector<Event> evs;
  while (evs.empty()) a->wait_events(evs, 50ms);
  auto b = gen_job(3, 2), c = gen_job(3, 2), d = gen_job(3, 2);
  EXPECT_TRUE(s.submit(b));
  EXPECT_TRUE(s.submit(c));
  EXPECT_FALSE(s.submit(d));  // queue full: the server answers 429
  s.cancel(a);
  collect(*b, 5s);
  collect(*c, 5s);
  EXPECT_TRUE(s.submit(d));
  collect(*d, 5s);
}

TEST(ServeScheduler, PrefixReuse) {
  FakeEngine e(2, 512);
  Scheduler s(e, SchedulerOptions{});
  auto a = gen_job(40, 3);
  ASSERT_TRUE(s.submit(a));
  collect(*a);
  auto b = gen_job(40, 3);
  ASSERT_TRUE(s.submit(b));
  Collected c = collect(*b);
  EXPECT_EQ(c.text[0], expected(40, 3));
  EXPECT_EQ(b->usage.cached_tokens, 39);  // all but the last prompt token came from the cache
}

TEST(ServeScheduler, Embeddings) {
  FakeEngine e(2, 64);
  SchedulerOptions o;
  o.batch_tokens = 16;  // several passes per input
  Scheduler s(e, o);
  auto j = std::make_shared<Job>();
  j->kind = Job::Embed;
  j->prompts = {prompt_of(40), prompt_of(3), prompt_of(20)};
  ASSERT_TRUE(s.submit(j));
  collect(*j);
  ASSERT_EQ(j->embeddings.size(), 3u);
  double norm = 0;
  for (int c = 0; c < 8; ++c) norm += double(c + 1) * (c + 1);
  norm = std::sqrt(norm);
  for (const auto& v : j->embeddings) {
    ASSERT_EQ(v.size(), 8u);
    for (int c = 0; c < 8; ++c) EXPECT_NEAR(v[size_t(c)], (c + 1) / norm, 1e-6);
  }
  EXPECT_EQ(j->usage.prompt_tokens, 63);
}

TEST(ServeScheduler, ShutdownFailsWhatIsLeft) {
  FakeEngine e(1, 100000);
  e.delay_ms = 1;
  auto s = std::make_unique<Scheduler>(e, SchedulerOptions{});
  auto a = gen_job(3, -1), b = gen_job(3, 5);
  ASSERT_TRUE(s->submit(a));
  ASSERT_TRUE(s->submit(b));
  s->shutdown(100ms);
  EXPECT_TRUE(s->stopping());
  EXPECT_FALSE(s->submit(gen_job(3, 5)));
  Collected ca = collect(*a, 2s), cb = collect(*b, 2s);
  EXPECT_TRUE(ca.error);
  EXPECT_EQ(a->error->status, 503);
  EXPECT_TRUE(cb.error);
}

TEST(ServeScheduler, EngineFailureIsReportedNotFatal) {
  struct Failing : FakeEngine {
    using FakeEngine::FakeEngine;
    bool fail_next = true;
    void forward(const Batch& b, float* l, float* h) override {
      if (fail_next) {
        fail_next = false;
        throw Error("boom");
      }
      FakeEngine::forward(b, l, h);
    }
  } e(1, 256);
  Scheduler s(e, SchedulerOptions{});
  auto a = gen_job(3, 5);
  ASSERT_TRUE(s.submit(a));
  Collected ca = collect(*a);
  ASSERT_TRUE(ca.error);
  EXPECT_EQ(a->error->status, 500);
  auto b = gen_job(3, 5);
  ASSERT_TRUE(s.submit(b));
  EXPECT_EQ(collect(*b).text[0], expected(3, 5));
}

TEST(ServeScheduler, JobsOfDifferentAdaptersShareForwardPasses) {
  FakeEngine e(4, 512);
  e.delay_ms = 1;
  Metrics metrics;
  Scheduler s(e, SchedulerOptions{}, &metrics);
  std::vector<std::shared_ptr<Job>> jobs;
  for (int a : {0, 1, 2, 1}) {
    jobs.push_back(gen_job(5, 24));
    jobs.back()->adapter = a;
    ASSERT_TRUE(s.submit(jobs.back()));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    Collected c = collect(*jobs[i]);
    // each sequence decoded with its own adapter id all the way (the fake's text shifts with it)
    EXPECT_EQ(c.text[0], expected(5 + jobs[i]->adapter, 24)) << i;
  }
  EXPECT_EQ(e.max_adapters_in_batch, 3);  // base, adapter 1 and adapter 2 in one forward pass
  EXPECT_LT(e.passes, 60);                // 4 x 24 tokens: shared passes, not one sequence at a time
  const std::string text = metrics.render();
  const std::string key = "\ntodae_mixed_adapter_passes_total ";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stoi(text.substr(at + key.size())), 10);
}

TEST(ServeScheduler, PrefixReuseOnlyUnderTheSameAdapter) {
  FakeEngine e(2, 512);
  Scheduler s(e, SchedulerOptions{});
  auto run = [&](int adapter) {
    auto j = gen_job(40, 3);
    j->adapter = adapter;
    EXPECT_TRUE(s.submit(j));
    Collected c = collect(*j);
    EXPECT_FALSE(c.error);
    EXPECT_EQ(c.text[0], expected(40 + adapter, 3)) << "adapter " << adapter;
    return j->usage.cached_tokens;
  };
  EXPECT_EQ(run(1), 0);
  // the same prompt for the base: the cached prefix was computed with adapter 1, so it is not
  // reused (the fake throws if a slot's cache mixes adapters)
  EXPECT_EQ(run(0), 0);
  EXPECT_EQ(run(1), 39);  // adapter 1's slot still holds its prefix
  EXPECT_EQ(run(0), 39);
  EXPECT_EQ(run(2), 0);
}

// Prompt scoring (completions with echo + logprobs, lm-eval's log-likelihood request): every
// prompt token's logprob from the passes that read the prompt, stitched across chunked prefill,
// never from a reused cached prefix (it has no logits); max_tokens 0 ends after the prompt.
TEST(ServeScheduler, PromptLogprobsAcrossChunksAndNoPrefixReuse) {
  FakeEngine e(2, 1024);
  SchedulerOptions so;
  so.batch_tokens = 100;
  so.prefill_chunk = 40;
  Scheduler s(e, so);
  const Tokenizer& tok = test_tokenizer();
  const int V = e.V;
  // the fake's row for position p puts 20 on "abc"[(p + 1) % 3], 0 elsewhere
  const double lz = std::log(std::exp(20.0) + double(V - 1));
  for (int round = 0; round < 2; ++round) {
    auto other = gen_job(3, 30);  // decoding beside it: the prompt is read 40 tokens a pass
    auto j = gen_job(250, round == 0 ? 0 : 2);
    j->prompt_logprobs = 1;
    ASSERT_TRUE(s.submit(other));
    ASSERT_TRUE(s.submit(j));
    std::vector<Event> all;
    while (!j->wait_events(all, 50ms)) {
    }
    collect(*other);
    ASSERT_FALSE(all.empty());
    const std::vector<LogprobEntry>& p = all[0].prompt_logprobs;
    ASSERT_EQ(p.size(), 250u) << round;
    EXPECT_TRUE(p[0].null);
    EXPECT_EQ(p[0].token, "y");
    for (size_t i = 1; i < p.size(); ++i) {
      ASSERT_FALSE(p[i].null);
      EXPECT_EQ(p[i].token, i % 2 ? "x" : "y") << i;
      EXPECT_NEAR(p[i].logprob, -lz, 1e-5) << i;
      ASSERT_EQ(p[i].top.size(), 1u);
      EXPECT_EQ(p[i].top[0].first, tok.token_bytes(e.letter[i % 3]));
      EXPECT_NEAR(p[i].top[0].second, 20.0 - lz, 1e-5);
    }
    std::string text, finish;
    for (size_t k = 1; k < all.size(); ++k) EXPECT_TRUE(all[k].prompt_logprobs.empty());
    for (const Event& ev : all) text += ev.text, finish = ev.finish_reason.empty() ? finish : ev.finish_reason;
    EXPECT_EQ(finish, "length");
    EXPECT_EQ(text, round == 0 ? "" : expected(250, 2));
    EXPECT_EQ(j->usage.completion_tokens, round == 0 ? 0 : 2);
    EXPECT_EQ(j->usage.cached_tokens, 0);  // the second round's prompt is cached, but not reused
  }
  EXPECT_LE(e.max_batch, 100);
}
