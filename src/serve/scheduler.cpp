// Continuous batching (see scheduler.h).
#include "serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "base/base.h"

namespace todae::serve {

using Clock = std::chrono::steady_clock;

// ---- the real engine ----------------------------------------------------------------------------

namespace {

struct InferEngine final : Engine {
  InferModel& m;
  KVCache cache;
  Forward fw;
  InferEngine(InferModel& model, int slots, int ctx, WType kv_type)
      : m(model), cache(make_kv_cache(model, ctx, slots, kv_type)) {}
  int vocab_size() const override { return m.config.vocab_size; }
  int hidden_size() const override { return m.config.hidden_size; }
  int slots() const override { return cache.slots; }
  int ctx() const override { return cache.ctx; }
  int length(int slot) const override { return cache.length[slot]; }
  void truncate(int slot, int len) override { cache.length[slot] = std::min(cache.length[slot], len); }
  void forward(const Batch& b, float* logits, float* hidden) override {
    forward_batch(m, cache, fw, b, logits, hidden);
  }
  const Tokenizer& tokenizer() const override { return m.tokenizer; }
  const std::vector<int32_t>& stop_ids() const override { return m.stop_ids; }
};

}  // namespace

std::unique_ptr<Engine> make_infer_engine(InferModel& m, int slots, int ctx, WType kv_type) {
  return std::make_unique<InferEngine>(m, slots, ctx, kv_type);
}

// ---- jobs ---------------------------------------------------------------------------------------

bool Job::wait_events(std::vector<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu);
  cv.wait_for(lock, timeout, [&] { return !events.empty() || finished; });
  while (!events.empty()) {
    out.push_back(std::move(events.front()));
    events.pop_front();
  }
  return finished;
}

// ---- the scheduler ------------------------------------------------------------------------------

struct Scheduler::Seq {
  std::shared_ptr<Job> job;
  int index = 0;
  const std::vector<int32_t>* prompt = nullptr;
  int slot = -1;
  size_t fed = 0;  // prompt tokens in the cache
  bool decoding = false;
  int32_t next = -1;
  std::optional<Sampler> sampler;
  std::optional<TextStream> text;
  std::unique_ptr<Constraint> constraint;
  int generated = 0;
  Clock::time_point last;
  std::vector<double> emb;
  std::vector<LogprobEntry> plp;  // prompt scoring: entries so far
  bool done = false;
};

namespace {
int total_seqs(const Job& j) { return j.kind == Job::Generate ? j.n : int(j.prompts.size()); }
}  // namespace

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& opt, Metrics* metrics)
    : engine_(engine), opt_(opt), metrics_(metrics) {
  for (int s = engine_.slots() - 1; s >= 0; --s) free_slots_.push_back(s);
  slot_tokens_.resize(engine_.slots());
  slot_adapter_.assign(size_t(engine_.slots()), 0);
  if (metrics_) metrics_->slots_total = engine_.slots();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  if (thread_.joinable()) shutdown(std::chrono::milliseconds(0));
}

int Scheduler::queued() const {
  std::lock_guard lock(mu_);
  return int(queue_.size());
}

int Scheduler::active() const {
  std::lock_guard lock(mu_);
  return int(active_.size());
}

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  if (int(queue_.size()) >= opt_.max_queue) return false;
  job->submitted = Clock::now();
  job->usage.prompt_tokens = 0;
  if (job->kind == Job::Generate) {
    job->usage.prompt_tokens = job->prompts.empty() ? 0 : int(job->prompts[0].size());
  } else {
    for (const auto& p : job->prompts) job->usage.prompt_tokens += int(p.size());
    job->embeddings.assign(job->prompts.size(), {});
  }
  queue_.push_back(job);
  if (metrics_) metrics_->queue_depth = int(queue_.size());
  cv_.notify_all();
  return true;
}

void Scheduler::cancel(const std::shared_ptr<Job>& job) {
  job->cancelled = true;
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

void Scheduler::fail_job(const std::shared_ptr<Job>& job, const ApiError& e) {
  job->cancelled = true;
  std::lock_guard lock(job->mu);
  if (!job->finished) {
    job->error = e;
    job->finished = true;
  }
  job->cv.notify_all();
}

void Scheduler::shutdown(std::chrono::milliseconds grace) {
  stopping_ = true;
  auto deadline = Clock::now() + grace;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (queue_.empty() && active_.empty()) break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::lock_guard lock(mu_);
    stop_loop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Scheduler::release(Seq& s) {
  if (s.slot >= 0) {
    free_slots_.push_back(s.slot);
    s.slot = -1;
  }
  s.done = true;
}

bool Scheduler::admit_locked() {
  bool any = false;
  // Requests whose clients left while they waited give their queue places back at once.
  for (auto it = queue_.begin(); it != queue_.end();) {
    Job& j = **it;
    if (!j.cancelled) {
      ++it;
      continue;
    }
    j.next_seq_ = total_seqs(j);
    if (j.running_seqs_ == 0) {
      std::lock_guard lock(j.mu);
      j.finished = true;
      j.cv.notify_all();
    }
    it = queue_.erase(it);
  }
  while (!queue_.empty()) {
    std::shared_ptr<Job> job = queue_.front();
    const int total = total_seqs(*job);
    if (job->cancelled || total == 0) {
      queue_.pop_front();
      job->next_seq_ = total;
      if (job->running_seqs_ == 0) {
        std::lock_guard lock(job->mu);
        job->finished = true;
        job->cv.notify_all();
      }
      continue;
    }
    if (free_slots_.empty()) break;
    const int index = job->next_seq_;
    const std::vector<int32_t>& prompt = job->kind == Job::Generate ? job->prompts[0] : job->prompts[index];
    // The free slot whose cached tokens share the longest prefix with this prompt.
    size_t best_i = free_slots_.size() - 1, best_lcp = 0;
    if (opt_.prefix_cache && job->kind == Job::Generate) {
      for (size_t i = 0; i < free_slots_.size() && job->prompt_logprobs < 0; ++i) {
        if (slot_adapter_[size_t(free_slots_[i])] != job->adapter) continue;  // another adapter's cache
        const auto& held = slot_tokens_[free_slots_[i]];
        size_t l = 0;
        while (l < held.size() && l < prompt.size() && held[l] == prompt[l]) ++l;
        if (l > best_lcp) best_lcp = l, best_i = i;
      }
      // No shared prefix: take the free slot holding the least, so the caches of other prompts
      // (and other adapters) live on for their next request.
      if (best_lcp == 0)
        for (size_t i = free_slots_.size(); i-- > 0;)
          if (slot_tokens_[free_slots_[i]].size() < slot_tokens_[free_slots_[best_i]].size()) best_i = i;
    }
    int slot = free_slots_[best_i];
    free_slots_.erase(free_slots_.begin() + best_i);
    size_t reuse = std::min(best_lcp, prompt.empty() ? 0 : prompt.size() - 1);
    engine_.truncate(slot, int(reuse));
    slot_tokens_[slot].resize(reuse);
    slot_adapter_[size_t(slot)] = job->adapter;

    auto s = std::make_unique<Seq>();
    s->job = job;
    s->index = index;
    s->prompt = &prompt;
    s->slot = slot;
    s->fed = reuse;
    if (job->kind == Job::Generate) {
      SamplingParams sp = job->sampling;
      if (job->random_seed)
        sp.seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
      else
        sp.seed = job->sampling.seed + uint64_t(index);
      s->sampler.emplace(sp);
      s->sampler->add_prompt(prompt);
      s->text.emplace(engine_.tokenizer(), job->stop, job->skip_special);
      if (job->make_constraint) s->constraint = job->make_constraint();
      Seq* raw = s.get();
      if (!job->logit_bias.empty() || raw->constraint)
        s->sampler->constrain = [raw](float* logits, int V) {
          for (const auto& [id, b] : raw->job->logit_bias)
            if (id >= 0 && id < V) logits[id] = b <= -100 ? -INFINITY : logits[id] + b;
          if (raw->constraint) raw->constraint->mask(logits, V);
        };
      if (index == 0) {
        std::lock_guard lock(job->mu);
        job->usage.cached_tokens = int(reuse);
      }
    } else {
      s->emb.assign(size_t(engine_.hidden_size()), 0.0);
    }
    active_.push_back(std::move(s));
    ++job->running_seqs_;
    any = true;
    if (++job->next_seq_ == total) queue_.pop_front();
  }
  if (metrics_) {
    metrics_->queue_depth = int(queue_.size());
    metrics_->slots_busy = int(active_.size());
  }
  return any;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      // Cancelled sequences leave at once: their slots are free for the next admission.
      for (auto& s : active_)
        if (s->job->cancelled && !s->done) release(*s);
      for (auto it = active_.begin(); it != active_.end();) {
        if ((*it)->done) {
          Job& j = *(*it)->job;
          if (--j.running_seqs_ == 0 && j.next_seq_ == total_seqs(j)) {
            std::lock_guard jl(j.mu);
            j.finished = true;
            j.cv.notify_all();
          }
          it = active_.erase(it);
        } else {
          ++it;
        }
      }
      if (stop_loop_) break;
      admit_locked();
      if (active_.empty()) {
        cv_.wait(lock, [&] { return stop_loop_ || !queue_.empty(); });
        continue;
      }
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A failure of the engine itself: fail every running job, start again from empty slots.
      std::lock_guard lock(mu_);
      for (auto& s : active_) {
        fail_job(s->job, server_error(cat("inference failed: ", e.what())));
        if (!s->done) release(*s);
      }
      for (int i = 0; i < engine_.slots(); ++i) engine_.truncate(i, 0), slot_tokens_[i].clear();
    }
  }
  // Stopping: whatever is left is told so.
  std::lock_guard lock(mu_);
  for (auto& s : active_) fail_job(s->job, unavailable("The server is shutting down."));
  for (auto& j : queue_) fail_job(j, unavailable("The server is shutting down."));
  active_.clear();
  queue_.clear();
}

void Scheduler::step() {
  const int V = engine_.vocab_size(), C = engine_.hidden_size();
  batch_.clear();
  std::vector<Seq*> rows;    // sequences that sample a token from this pass ...
  std::vector<int> row_at;   // ... and the logits row each samples from
  int nrows = 0;             // entries with want_logits so far
  struct Span {
    Seq* s;
    int start, count;
  };
  std::vector<Span> embeds;
  // Prompt scoring: logits rows row0.. are those of prompt positions from.. (count of them).
  struct Scored {
    Seq* s;
    int row0, count;
    size_t from;
  };
  std::vector<Scored> scored;
  std::vector<Seq*> prompt_read;  // scored or max_tokens 0 sequences whose prompt ends in this pass
  for (auto& s : active_)
    if (!s->done && s->decoding) {
      batch_.add(s->next, engine_.length(s->slot), s->slot, true, s->job->adapter);
      rows.push_back(s.get());
      row_at.push_back(nrows++);
    }
  const int decoders = batch_.size();
  int budget = decoders > 0 ? std::min(opt_.prefill_chunk, opt_.batch_tokens - decoders) : opt_.batch_tokens;
  budget = std::max(budget, decoders > 0 ? 0 : 1);
  for (auto& sp : active_) {
    Seq* s = sp.get();
    if (s->done || s->decoding || budget <= 0) continue;
    const auto& prompt = *s->prompt;
    if (s->fed >= prompt.size()) continue;
    const int take = int(std::min<size_t>(size_t(budget), prompt.size() - s->fed));
    const int base = engine_.length(s->slot);
    const bool last = s->fed + size_t(take) == prompt.size();
    const bool gen = s->job->kind == Job::Generate;
    const bool score = gen && s->job->prompt_logprobs >= 0;
    const bool sample = gen && last && s->job->max_tokens != 0;
    if (!gen) embeds.push_back({s, batch_.size(), take});
    if (score) scored.push_back({s, nrows, take, s->fed});
    for (int j = 0; j < take; ++j) {
      const bool want = score || (sample && j == take - 1);
      batch_.add(prompt[s->fed + size_t(j)], base + j, s->slot, want, s->job->adapter);
      nrows += want;
    }
    if (sample) rows.push_back(s), row_at.push_back(nrows - 1);
    if (gen && last && (score || s->job->max_tokens == 0)) prompt_read.push_back(s);
    s->fed += size_t(take);
    budget -= take;
  }
  if (batch_.size() == 0) return;

  logits_.resize(size_t(nrows) * size_t(V));
  if (!embeds.empty()) hidden_.resize(size_t(batch_.size()) * size_t(C));
  const auto t0 = Clock::now();
  engine_.forward(batch_, logits_.data(), embeds.empty() ? nullptr : hidden_.data());
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int i = 0; i < batch_.size(); ++i) slot_tokens_[batch_.slot[i]].push_back(batch_.tokens[i]);
  if (metrics_) {
    std::vector<uint16_t> ids;  // distinct adapter ids in this pass (the base is one)
    for (int i = 0; i < batch_.size(); ++i) {
      const uint16_t a = batch_.adapter[size_t(i)];
      if ((i == 0 || a != batch_.adapter[size_t(i - 1)]) && std::find(ids.begin(), ids.end(), a) == ids.end())
        ids.push_back(a);
    }
    metrics_->decode_step(batch_.size(), dt, int(ids.size()));
    int64_t kv = 0;
    for (int i = 0; i < engine_.slots(); ++i) kv += engine_.length(i);
    metrics_->kv_tokens = kv;
    int prompt_tokens = batch_.size() - decoders;
    if (prompt_tokens > 0) metrics_->prompt_tokens(uint64_t(prompt_tokens));
  }

  // Embeddings: sum the final hidden states; at the end of the input, mean and L2-normalise.
  for (const auto& e : embeds) {
    for (int j = 0; j < e.count; ++j) {
      const float* h = &hidden_[size_t(e.start + j) * size_t(C)];
      for (int c = 0; c < C; ++c) e.s->emb[size_t(c)] += h[c];
    }
    if (e.s->fed == e.s->prompt->size()) {
      std::vector<float> v(static_cast<size_t>(C));
      double norm = 0;
      const double n = double(e.s->prompt->size());
      for (int c = 0; c < C; ++c) norm += (e.s->emb[size_t(c)] / n) * (e.s->emb[size_t(c)] / n);
      norm = std::sqrt(norm);
      for (int c = 0; c < C; ++c) v[size_t(c)] = float(norm > 0 ? e.s->emb[size_t(c)] / n / norm : 0.0);
      {
        std::lock_guard lock(e.s->job->mu);
        e.s->job->embeddings[size_t(e.s->index)] = std::move(v);
      }
      release(*e.s);
    }
  }

  const Tokenizer& tok = engine_.tokenizer();
  if (!scored.empty()) {
    // Each prompt position's row predicts the next prompt token: its log-softmax (what the
    // evaluation's local model computes, to ~1e-7, so an endpoint's scores are a local run's) and
    // the top alternatives. Rows are independent: on the thread pool. The last position's row
    // predicts the first generated token and is left to the sampler.
    std::vector<std::pair<size_t, int>> items;  // (scored index, position in the span)
    for (size_t k = 0; k < scored.size(); ++k)
      for (int j = 0; j < scored[k].count; ++j)
        if (scored[k].from + size_t(j) + 1 < scored[k].s->prompt->size()) items.emplace_back(k, j);
    std::vector<LogprobEntry> out(items.size());
    parallel_for_each(int(items.size()), [&](int i) {
      const Scored& sc = scored[items[size_t(i)].first];
      const int j = items[size_t(i)].second;
      const float* row = &logits_[size_t(sc.row0 + j) * size_t(V)];
      const int32_t target = (*sc.s->prompt)[sc.from + size_t(j) + 1];
      // the n most likely, by (logit desc, id asc): one pass, insertion into a short list
      const int n = std::max(0, std::min({sc.s->job->prompt_logprobs, V, 32}));
      int32_t top[32];  // (prompt_logprobs is at most 5: the API's limit)
      int have = 0;
      float mx = row[0];
      for (int v = 0; v < V; ++v) {
        mx = std::max(mx, row[v]);
        if (n == 0 || (have == n && row[v] <= row[top[have - 1]])) continue;
        int k = have < n ? have++ : n - 1;
        while (k > 0 && row[top[k - 1]] < row[v]) top[k] = top[k - 1], --k;
        top[k] = v;
      }
      // float exp, summed in double: the log-softmax to ~1e-7, at a third of double exp's cost
      // (a 32k vocabulary's row takes longer than its share of the forward pass otherwise)
      double sum = 0;
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      const double lse = std::log(sum);
      LogprobEntry& e = out[size_t(i)];
      e.token = tok.token_bytes(target);
      e.logprob = double(row[target]) - mx - lse;
      for (int k = 0; k < have; ++k) e.top.emplace_back(tok.token_bytes(top[k]), double(row[top[k]]) - mx - lse);
    });
    size_t at = 0;
    for (const Scored& sc : scored) {
      if (sc.from == 0) {  // the first prompt token: nothing predicts it
        LogprobEntry first;
        first.token = tok.token_bytes((*sc.s->prompt)[0]);
        first.null = true;
        sc.s->plp.push_back(std::move(first));
      }
      while (at < items.size() && &scored[items[at].first] == &sc)
        sc.s->plp.push_back(std::move(out[at++]));
    }
  }
  for (Seq* s : prompt_read) {
    Job& job = *s->job;
    if (job.cancelled) continue;
    Event ev;
    ev.index = s->index;
    ev.prompt_logprobs = std::move(s->plp);
    if (job.max_tokens == 0) ev.finish_reason = "length";
    {
      std::lock_guard lock(job.mu);
      job.events.push_back(std::move(ev));
      job.cv.notify_all();
    }
    if (job.max_tokens == 0) release(*s);
  }

  // Sampling: one token per sequence with a logits row.
  const auto now = Clock::now();
  const auto& stops = engine_.stop_ids();
  int generated = 0;
  // The draws themselves on the thread pool (each sequence has its own sampler, grammar and
  // logits row); everything that touches shared state stays on this thread, in order.
  struct Drawn {
    int32_t id = -1;
    TokenLogprob lp;
    std::string error;
  };
  std::vector<Drawn> drawn(rows.size());
  parallel_for_each(int(rows.size()), [&](int r) {
    Seq& s = *rows[size_t(r)];
    if (s.job->cancelled) return;
    try {
      drawn[size_t(r)].id = s.sampler->sample(&logits_[size_t(row_at[size_t(r)]) * size_t(V)], V,
                                              s.job->logprobs ? &drawn[size_t(r)].lp : nullptr);
    } catch (const std::exception& e) {
      drawn[size_t(r)].error = e.what();
    }
  });
  for (size_t r = 0; r < rows.size(); ++r) {
    Seq& s = *rows[r];
    Job& job = *s.job;
    if (job.cancelled) continue;
    Event ev;
    ev.index = s.index;
    const TokenLogprob& lp = drawn[r].lp;
    const int32_t id = drawn[r].id;
    if (!drawn[r].error.empty()) {
      fail_job(s.job, server_error(cat("sampling failed: ", drawn[r].error)));
      release(s);
      continue;
    }
    if (metrics_) {
      if (s.generated == 0)
        metrics_->ttft(std::chrono::duration<double>(now - job.submitted).count());
      else
        metrics_->inter_token(std::chrono::duration<double>(now - s.last).count());
    }
    s.last = now;
    if (s.constraint) s.constraint->accept(id);
    const bool eos = !job.ignore_eos && std::find(stops.begin(), stops.end(), id) != stops.end();
    if (eos) {
      ev.text = s.text->finish();
      ev.finish_reason = "stop";
    } else {
      s.sampler->accept(id);
      ++s.generated;
      ++generated;
      if (job.logprobs) {
        LogprobEntry e;
        e.token = tok.token_bytes(id);
        e.logprob = lp.logprob;
        for (const auto& [tid, l] : lp.top) e.top.emplace_back(tok.token_bytes(tid), l);
        ev.logprobs.push_back(std::move(e));
      }
      ev.text = s.text->push(id);
      if (s.text->stopped) {
        ev.finish_reason = "stop";
      } else if (s.constraint && s.constraint->finished()) {
        ev.text += s.text->finish();
        ev.finish_reason = "stop";
      } else if ((job.max_tokens > 0 && s.generated >= job.max_tokens) || engine_.length(s.slot) >= engine_.ctx()) {
        ev.text += s.text->finish();
        ev.finish_reason = "length";
      }
    }
    const std::string reason = ev.finish_reason;
    {
      std::lock_guard lock(job.mu);
      if (!eos) ++job.usage.completion_tokens;
      if (!ev.text.empty() || !ev.logprobs.empty() || !ev.finish_reason.empty()) job.events.push_back(std::move(ev));
      job.cv.notify_all();
    }
    if (!reason.empty()) {
      release(s);
    } else {
      s.decoding = true;
      s.next = id;
    }
  }
  if (metrics_ && generated > 0) metrics_->generated_tokens(uint64_t(generated));
}

}  // namespace todae::serve
