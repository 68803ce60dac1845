// todae serve: continuous batching. One scheduler thread owns the model and the KV cache (one slot
// per active sequence) and loops: admit queued sequences into free slots, build ONE batch with the
// next token of every decoding sequence plus a chunk of prompt of some prefilling ones (chunked
// prefill, so running streams never stall behind a long prompt), run forward once, sample per
// sequence and hand the text to each request. HTTP threads only submit jobs and read their events.
// Sequences of different LoRA adapters (and of the bare base) share those batches: each entry
// carries its sequence's adapter id (llama-server, by contrast, batches only equal LoRA settings).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "infer/infer.h"
#include "serve/api.h"
#include "serve/metrics.h"

namespace todae::serve {

// What the scheduler needs of a model. The server uses InferEngine (a loaded model and its KV
// cache); the unit tests use a small deterministic fake.
struct Engine {
  virtual ~Engine() = default;
  virtual int vocab_size() const = 0;
  virtual int hidden_size() const = 0;
  virtual int slots() const = 0;
  virtual int ctx() const = 0;
  virtual int length(int slot) const = 0;        // positions the slot holds
  virtual void truncate(int slot, int len) = 0;  // keep the first len positions
  // Runs the batch (see todae::forward_batch): logits[n_want, V], hidden[N, C] if non-null.
  virtual void forward(const Batch& b, float* logits, float* hidden) = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual const std::vector<int32_t>& stop_ids() const = 0;
};

std::unique_ptr<Engine> make_infer_engine(InferModel& m, int slots, int ctx, WType kv_type);

// Constrained decoding for one sequence (a JSON grammar in the server).
struct Constraint {
  virtual ~Constraint() = default;
  virtual void mask(float* logits, int V) = 0;
  virtual void accept(int32_t id) = 0;
  virtual bool finished() const = 0;  // nothing more may be written
};

// One piece of output for one choice: text that may be shown, the token's logprobs, and at the
// end the finish reason.
struct Event {
  int index = 0;
  std::string text;
  std::vector<LogprobEntry> logprobs;
  // Once, when the prompt has been read, for jobs with prompt_logprobs >= 0: one entry per prompt
  // token (the first null), before any generated token's event.
  std::vector<LogprobEntry> prompt_logprobs;
  std::string finish_reason;  // empty until the choice ends: "stop" or "length"
};

// One HTTP request as the scheduler sees it: input set before submit(), output read through
// wait_events() by the HTTP thread.
struct Job {
  enum Kind { Generate, Embed } kind = Generate;
  // Generate: one prompt shared by the n choices; Embed: one per input.
  std::vector<std::vector<int32_t>> prompts;
  int n = 1;
  int max_tokens = -1;  // -1: until the context is full; 0: read the prompt, generate nothing ("length")
  SamplingParams sampling;
  bool random_seed = true;  // no seed given: each choice draws one
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool skip_special = true;
  bool logprobs = false;
  // >= 0: score the prompt (completions with echo + logprobs, lm-eval's log-likelihood request):
  // every prompt position's logits come out of the same prefill passes that fill the cache, and each
  // prompt token gets its log-softmax and this many alternatives. Such a job reuses no cached
  // prefix, since a reused position has no logits.
  int prompt_logprobs = -1;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::function<std::unique_ptr<Constraint>()> make_constraint;  // null: unconstrained
  // LoRA adapter id of every token of this job (0: the base; see Batch::adapter). Jobs of
  // different adapters are decoded in the same forward passes.
  int adapter = 0;

  // ---- output (guarded by mu) ----
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  std::vector<std::vector<float>> embeddings;
  Usage usage;
  bool finished = false;
  std::optional<ApiError> error;  // set instead of output when the job failed
  std::atomic<bool> cancelled{false};
  std::chrono::steady_clock::time_point submitted;

  // Waits for events (or the end); returns them and whether the job is finished.
  bool wait_events(std::vector<Event>& out, std::chrono::milliseconds timeout);

  // Scheduler thread only: sequences admitted so far, and admitted ones still running.
  int next_seq_ = 0, running_seqs_ = 0;
};

struct SchedulerOptions {
  int max_queue = 64;        // jobs waiting for a slot before submit() refuses
  int batch_tokens = 512;    // tokens per forward pass at most
  int prefill_chunk = 256;   // prompt tokens per pass while other sequences are decoding
  bool prefix_cache = true;  // reuse a free slot's cached prefix
};

class Scheduler {
 public:
  Scheduler(Engine& engine, const SchedulerOptions& opt, Metrics* metrics = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the job; false when the queue is full (answer 429) or the scheduler is stopping.
  bool submit(const std::shared_ptr<Job>& job);
  // Wakes the loop so it sees job->cancelled now.
  void cancel(const std::shared_ptr<Job>& job);
  // Stops admitting; waits up to `grace` for running jobs, then cancels the rest and joins.
  void shutdown(std::chrono::milliseconds grace);
  bool stopping() const { return stopping_; }
  int queued() const;
  int active() const;

 private:
  struct Seq;
  void loop();
  bool admit_locked();
  void step();
  void release(Seq& s);
  void fail_job(const std::shared_ptr<Job>& job, const ApiError& e);

  Engine& engine_;
  SchedulerOptions opt_;
  Metrics* metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;  // jobs with sequences not yet admitted
  std::vector<std::unique_ptr<Seq>> active_;
  std::vector<int> free_slots_;
  std::vector<std::vector<int32_t>> slot_tokens_;  // what each slot's cache holds (prefix reuse)
  std::vector<int> slot_adapter_;  // ... and under which adapter: keys and values differ per adapter
  std::atomic<bool> stopping_{false}, stop_loop_{false};
  std::thread thread_;
  // per-step buffers
  Batch batch_;
  std::vector<float> logits_, hidden_;
};

}  // namespace todae::serve
