// The HTTP side of `todae serve`: routes, authentication, prompt building (chat template),
// streaming (SSE), tool calls, constrained decoding, graceful shutdown (see serve.h).
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>

#include "base/base.h"
#include "infer/grammar.h"
#include "infer/infer.h"
#include "serve/api.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "serve/serve.h"
#include "text/toolcall.h"
#include "serve/webpage.h"
#include "tensor/tensor.h"
#include "text/jinja.h"

namespace todae::serve {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

int64_t unix_now() { return int64_t(std::time(nullptr)); }

// Unicode code points of UTF-8 text (bytes that do not continue a character), the unit of
// text_offset.
size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string base_name(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t s = p.rfind('/');
  if (s != std::string::npos) p = p.substr(s + 1);
  for (const char* ext : {".gguf", ".safetensors"})
    if (p.size() > std::strlen(ext) && p.compare(p.size() - std::strlen(ext), std::string::npos, ext) == 0)
      p.resize(p.size() - std::strlen(ext));
  return p.empty() ? "todae" : p;
}

// A JSON grammar over one sequence's output.
struct GrammarConstraint final : Constraint {
  GrammarMatcher m;
  std::shared_ptr<const TokenTrie> trie;
  const std::vector<int32_t>* end_ids;
  GrammarConstraint(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTrie> t, const std::vector<int32_t>* e)
      : m(std::move(g)), trie(std::move(t)), end_ids(e) {}
  void mask(float* logits, int V) override { apply_grammar_mask(m, *trie, *end_ids, logits, V); }
  void accept(int32_t id) override { accept_token(m, *trie, id); }
  bool finished() const override { return m.finished(); }
};

struct Server {
  ServeOptions opt;
  InferModel model;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Scheduler> sched;
  Metrics metrics;
  std::string model_id;
  std::vector<std::string> adapter_paths;  // parallel to model.adapter_names (for /v1/models)
  int64_t created = unix_now();
  std::optional<JinjaTemplate> tmpl;
  std::string tool_open;  // the marker a forced tool call starts with
  std::once_flag trie_once;
  std::shared_ptr<const TokenTrie> trie;
  std::vector<int32_t> end_ids;
  httplib::Server http;

  const std::shared_ptr<const TokenTrie>& token_trie() {
    std::call_once(trie_once, [&] { trie = build_token_trie(model.tokenizer); });
    return trie;
  }

  Limits limits() const {
    Limits l;
    l.max_n = std::max(1, std::min(16, opt.parallel * 4));
    l.vocab_size = model.config.vocab_size;
    return l;
  }

  // The adapter id a request's "model" selects: 0 for the base's own id, k for the k-th --lora
  // NAME (vLLM's convention); any other name is OpenAI's 404 model_not_found.
  int adapter_of(const std::string& m) const {
    if (m == model_id) return 0;
    for (size_t i = 0; i < model.adapter_names.size(); ++i)
      if (m == model.adapter_names[i]) return int(i) + 1;
    throw model_not_found(m);
  }

  json models_json() const {
    std::vector<std::pair<std::string, std::string>> list;
    for (size_t i = 0; i < model.adapter_names.size(); ++i) list.emplace_back(model.adapter_names[i], adapter_paths[i]);
    return models_response(model_id, created, engine->ctx(), list);
  }

  std::vector<int32_t> encode_text(const std::string& text, bool add_special) const {
    EncodeOptions eo;
    eo.add_special_tokens = add_special;
    eo.split_special = true;
    return encode(model.tokenizer, text, eo);
  }

  void check_context(size_t n, const char* what) const {
    if (int(n) >= engine->ctx())
      throw invalid_request(cat("This model's maximum context length is ", engine->ctx(), " tokens. However, your ",
                                what, " resulted in ", n, " tokens. Please reduce the length of the ", what, "."),
                            what == std::string("messages") ? "messages" : "prompt", "context_length_exceeded");
  }

  std::shared_ptr<Job> make_job(const GenRequest& r, std::vector<int32_t> prompt, bool tools_active) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Generate;
    job->prompts.push_back(std::move(prompt));
    job->n = r.n;
    job->max_tokens = r.max_tokens;
    SamplingParams& sp = job->sampling;
    sp.temperature = float(r.temperature);
    sp.top_p = std::max(float(r.top_p), 1e-6f);
    sp.top_k = r.top_k;
    sp.min_p = float(r.min_p);
    sp.repetition_penalty = float(r.repetition_penalty);
    sp.presence_penalty = float(r.presence_penalty);
    sp.frequency_penalty = float(r.frequency_penalty);
    sp.top_logprobs = r.logprobs ? r.top_logprobs : 0;
    if (r.seed) {
      sp.seed = *r.seed;
      job->random_seed = false;
    }
    job->stop = r.stop;
    job->ignore_eos = r.ignore_eos;
    job->skip_special = !tools_active;
    job->logprobs = r.logprobs;
    job->logit_bias = r.logit_bias;
    json schema = output_schema(r);
    if (!schema.is_null()) {
      const bool forced = r.tool_choice.mode == ToolChoice::Required || r.tool_choice.mode == ToolChoice::Named;
      std::shared_ptr<const Grammar> g;
      try {
        g = compile_json_schema(schema, forced ? "tools" : "response_format.json_schema.schema");
      } catch (const Error& e) {
        throw invalid_request(e.what(), forced ? "tools" : "response_format", "invalid_schema");
      }
      auto trie_ptr = token_trie();
      const std::vector<int32_t>* ends = &end_ids;
      job->make_constraint = [g, trie_ptr, ends] { return std::make_unique<GrammarConstraint>(g, trie_ptr, ends); };
    }
    return job;
  }

  void submit(const std::shared_ptr<Job>& job) {
    if (sched->stopping()) throw unavailable("The server is shutting down.");
    if (!sched->submit(job)) {
      if (sched->stopping()) throw unavailable("The server is shutting down.");
      throw queue_full(std::max(1, sched->active() > 0 ? 2 : 1));
    }
  }

  // ---- chat / completions ----

  struct Choice {
    ToolCallParser tools;
    std::string text;  // all content so far (non-streaming)
    std::string forced_body;
    std::vector<ToolCall> calls;
    std::vector<LogprobEntry> logprobs;
    std::vector<LogprobEntry> prompt_logprobs;  // echo + logprobs: the prompt's tokens, scored
    bool prompt_scored = false;
    std::string finish;
    bool started = false;  // streaming: role chunk sent
    size_t calls_sent = 0;
    size_t sent_chars = 0;  // streaming completions: code points sent (text_offset of the next chunk)
  };

  // One request: a job per prompt (completions may send a list of them; chat has one), n choices
  // each; choice index = prompt index * n + choice.
  struct Gen {
    GenRequest r;
    std::vector<std::shared_ptr<Job>> jobs;
    std::vector<bool> jobs_done;
    std::shared_ptr<Job> job;  // jobs[0] (streaming takes one prompt)
    bool tools_active = false, forced = false;
    std::string id;
    int64_t created = 0;
    std::vector<std::string> echoes;  // completions with echo: each prompt's text
    std::vector<Choice> choices;
  };

  std::shared_ptr<Gen> prepare(const httplib::Request& req, Endpoint ep) {
    json body = parse_body(req.body);
    auto g = std::make_shared<Gen>();
    g->r = ep == Endpoint::Chat ? parse_chat_request(body, limits()) : parse_completion_request(body, limits());
    GenRequest& r = g->r;
    const int adapter = adapter_of(r.model);
    metrics.model_request(r.model);
    if (!model.has_tokenizer)
      throw invalid_request("This model has no tokenizer, so it cannot take text.", "model", "no_tokenizer");
    std::vector<std::vector<int32_t>> prompts;
    if (ep == Endpoint::Chat) {
      g->tools_active = !r.tools.empty() && r.tool_choice.mode != ToolChoice::None;
      g->forced = r.tool_choice.mode == ToolChoice::Required || r.tool_choice.mode == ToolChoice::Named;
      json extra = {{"bos_token", model.bos_token}, {"eos_token", model.eos_token}};
      std::string text;
      try {
        text = apply_chat_template(*tmpl, r.messages, g->tools_active ? r.tools_json : json(nullptr), true, extra);
      } catch (const Error& e) {
        throw invalid_request(cat("The chat template could not render these messages: ", e.what()), "messages",
                              "invalid_messages");
      }
      if (g->forced) text += tool_open;
      prompts.push_back(encode_text(text, false));
      check_context(prompts[0].size(), "messages");
    } else {
      const size_t count = r.prompt_is_ids ? r.prompts_ids.size() : r.prompts.size();
      if (count * size_t(r.n) > size_t(std::max(1, opt.max_queue)))
        throw invalid_request(cat("This server queues at most ", opt.max_queue, " sequences; the request has ", count,
                                  " prompts x n ", r.n, "."),
                              "prompt", "invalid_value");
      for (size_t i = 0; i < count; ++i) {
        std::vector<int32_t> prompt = r.prompt_is_ids ? r.prompts_ids[i] : encode_text(r.prompts[i], true);
        if (prompt.empty())
          throw invalid_request("The prompt is empty: a model needs at least one token to continue.", "prompt",
                                "empty_prompt");
        check_context(prompt.size(), "prompt");
        if (r.echo) g->echoes.push_back(r.prompt_is_ids ? decode(model.tokenizer, prompt) : r.prompts[i]);
        prompts.push_back(std::move(prompt));
      }
    }
    for (auto& prompt : prompts) {
      auto job = make_job(r, std::move(prompt), g->tools_active);
      job->adapter = adapter;
      // lm-eval's log-likelihood request: echo + logprobs scores the prompt's own tokens
      if (ep == Endpoint::Completion && r.echo && r.logprobs) job->prompt_logprobs = r.top_logprobs;
      g->jobs.push_back(std::move(job));
    }
    g->job = g->jobs[0];
    g->jobs_done.assign(g->jobs.size(), false);
    g->id = random_id(ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
    g->created = unix_now();
    g->choices.resize(g->jobs.size() * size_t(r.n));
    for (auto& c : g->choices) c.tools.enabled = g->tools_active && !g->forced;
    for (size_t i = 0; i < g->jobs.size(); ++i) {
      try {
        submit(g->jobs[i]);
      } catch (...) {
        for (size_t k = 0; k < i; ++k) sched->cancel(g->jobs[k]);  // all of the request or none of it
        throw;
      }
    }
    return g;
  }

  // Waits up to `timeout` for events of the request's jobs (on the first unfinished one; the others
  // are polled) and absorbs them; true when every job has finished.
  bool poll(Gen& g, std::chrono::milliseconds timeout) {
    bool all = true;
    for (size_t p = 0; p < g.jobs.size(); ++p) {
      if (g.jobs_done[p]) continue;
      std::vector<Event> evs;
      g.jobs_done[p] = g.jobs[p]->wait_events(evs, all ? timeout : std::chrono::milliseconds(0));
      for (auto& ev : evs) absorb(g, ev, p);
      all = all && g.jobs_done[p];
    }
    return all;
  }

  const std::optional<ApiError>& first_error(const Gen& g) const {
    for (const auto& j : g.jobs)
      if (j->error) return j->error;
    return g.jobs[0]->error;
  }

  // Applies an event to its choice: returns content that can be shown now.
  std::string absorb(Gen& g, Event& ev, size_t prompt_index = 0) {
    Choice& c = g.choices[prompt_index * size_t(g.r.n) + size_t(ev.index)];
    for (auto& lp : ev.logprobs) c.logprobs.push_back(lp);
    if (!ev.prompt_logprobs.empty()) {
      c.prompt_logprobs = std::move(ev.prompt_logprobs);
      c.prompt_scored = true;
    }
    std::string shown;
    if (g.forced) {
      c.forced_body += ev.text;
    } else {
      shown = c.tools.push(ev.text, c.calls);
    }
    if (!ev.finish_reason.empty()) {
      if (g.forced) {
        ToolCall call;
        if (parse_tool_call_body(c.forced_body, call))
          c.calls.push_back(std::move(call));
        else
          shown += c.forced_body;  // (cut short by max_tokens: not a whole call)
      } else {
        shown += c.tools.finish(c.calls);
      }
      c.finish = ev.finish_reason;
      if (!c.calls.empty() && c.finish == "stop") c.finish = "tool_calls";
    }
    for (ToolCall& call : c.calls)  // the parser leaves ids to the API
      if (call.id.empty()) call.id = random_id("call_");
    c.text += shown;
    return shown;
  }

  // The finished (non-streamed) response body of a job that ended.
  std::string final_body(Gen& g, Endpoint ep) {
    std::vector<ChoiceResult> out;
    for (size_t i = 0; i < g.choices.size(); ++i) {
      Choice& c = g.choices[i];
      ChoiceResult cr;
      cr.index = int(i);
      cr.text = (g.echoes.empty() ? std::string() : g.echoes[i / size_t(g.r.n)]) + c.text;
      cr.tool_calls = c.calls;
      cr.logprobs = c.prompt_logprobs;  // (empty unless echo + logprobs)
      cr.logprobs.insert(cr.logprobs.end(), c.logprobs.begin(), c.logprobs.end());
      cr.finish_reason = c.finish.empty() ? "stop" : c.finish;
      out.push_back(std::move(cr));
    }
    Usage u;
    for (const auto& job : g.jobs) {
      std::lock_guard lock(job->mu);
      u.prompt_tokens += job->usage.prompt_tokens;
      u.completion_tokens += job->usage.completion_tokens;
      u.cached_tokens += job->usage.cached_tokens;
    }
    json j = ep == Endpoint::Chat ? chat_response(g.id, g.created, g.r.model, out, u, g.r.logprobs)
                                  : completion_response(g.id, g.created, g.r.model, out, u, g.r.logprobs);
    return dump(j);
  }

  void handle_generate(const httplib::Request& req, httplib::Response& res, Endpoint ep) {
    auto g = prepare(req, ep);
    if (g->r.stream) {
      stream_generate(res, g, ep);
      return;
    }
    // A plain response when the jobs end within a second (their errors keep their HTTP status).
    const auto until = Clock::now() + std::chrono::seconds(1);
    bool done = false;
    while (!done && Clock::now() < until) done = poll(*g, std::chrono::milliseconds(100));
    if (done) {
      if (const auto& e = first_error(*g)) throw *e;
      res.set_content(final_body(*g, ep), "application/json");
      return;
    }
    // Longer jobs answer 200 at once with a chunked body that starts with a space every 250 ms
    // (whitespace before a JSON value is valid JSON): cpp-httplib 0.11 tells a handler nothing
    // about a closed connection, but a failed write does, and it cancels the jobs, so a client that
    // gives up frees its slots at once, as a streaming one does. An engine failure after this point
    // can only be reported in the body (an OpenAI-shaped error object).
    Scheduler* s = sched.get();
    auto provider = [this, g, ep](size_t, httplib::DataSink& sink) -> bool {
      while (!poll(*g, std::chrono::milliseconds(250))) {
        if (!sink.write(" ", 1)) {
          for (const auto& j : g->jobs) sched->cancel(j);
          return false;
        }
      }
      const auto& err = first_error(*g);
      const std::string body = err ? dump(error_json(*err)) : final_body(*g, ep);
      if (!sink.write(body.data(), body.size())) return false;
      sink.done();
      return true;
    };
    auto jobs = g->jobs;
    res.set_chunked_content_provider("application/json", provider, [s, jobs](bool success) {
      if (!success)
        for (const auto& j : jobs) s->cancel(j);
    });
  }

  void stream_generate(httplib::Response& res, std::shared_ptr<Gen> g, Endpoint ep) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    Scheduler* s = sched.get();
    auto provider = [this, g, ep](size_t, httplib::DataSink& sink) -> bool {
      const bool chat = ep == Endpoint::Chat;
      const bool usage_on = g->r.include_usage;
      auto send = [&](const std::string& data) {
        if (!sink.write(data.data(), data.size())) {
          sched->cancel(g->job);
          return false;
        }
        return true;
      };
      // (completions: text_offset continues from what this choice has sent so far)
      auto lp_json = [&](const std::vector<LogprobEntry>& lps, const std::string& text, size_t offset0) -> json {
        if (!g->r.logprobs || lps.empty()) return nullptr;
        return chat ? chat_logprobs_json(lps) : completion_logprobs_json(lps, text, offset0);
      };
      const std::string echo = g->echoes.empty() ? std::string() : g->echoes[0];
      // echo + logprobs: the echoed prompt goes out with its scores, once the prompt is read
      const bool echo_scored = !chat && g->r.echo && g->r.logprobs;
      auto chunk = [&](int index, const json& delta, const json& lps, const json& finish) {
        return sse_event(chat ? chat_chunk(g->id, g->created, g->r.model, index, delta, lps, finish, usage_on)
                              : completion_chunk(g->id, g->created, g->r.model, index,
                                                 delta.is_string() ? delta.get<std::string>() : std::string(), lps,
                                                 finish, usage_on));
      };
      if (chat) {
        for (size_t i = 0; i < g->choices.size(); ++i) {
          if (!send(
                  chunk(int(i), json{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr, nullptr)))
            return false;
          g->choices[i].started = true;
        }
      } else if (!echo.empty() && !echo_scored) {
        for (size_t i = 0; i < g->choices.size(); ++i) {
          if (!send(chunk(int(i), json(echo), nullptr, nullptr))) return false;
          g->choices[i].sent_chars = code_points(echo);
        }
      }
      std::vector<Event> evs;
      auto last_write = Clock::now();
      for (;;) {
        evs.clear();
        bool done = g->job->wait_events(evs, std::chrono::milliseconds(250));
        for (auto& ev : evs) {
          const int index = ev.index;
          std::vector<LogprobEntry> lps = ev.logprobs;
          Choice& c = g->choices[size_t(index)];
          const bool scored_now = echo_scored && !ev.prompt_logprobs.empty();
          const std::string shown = absorb(*g, ev);
          if (scored_now) {
            if (!send(chunk(index, json(echo), lp_json(c.prompt_logprobs, echo, 0), nullptr))) return false;
            c.sent_chars = code_points(echo);
          }
          if (!shown.empty() || !lps.empty()) {
            json delta = chat ? json{{"content", shown}} : json(shown);
            if (!send(chunk(index, delta, lp_json(lps, shown, c.sent_chars), nullptr))) return false;
            c.sent_chars += code_points(shown);
            last_write = Clock::now();
          }
          if (!c.finish.empty()) {
            if (chat)
              for (; c.calls_sent < c.calls.size(); ++c.calls_sent)
                if (!send(chunk(
                        index,
                        json{{"tool_calls", json::array({tool_call_delta(int(c.calls_sent), c.calls[c.calls_sent])})}},
                        nullptr, nullptr)))
                  return false;
            if (!send(chunk(index, chat ? json::object() : json(""), nullptr, c.finish))) return false;
            last_write = Clock::now();
          }
        }
        if (done) break;
        // A comment line now and then: SSE clients ignore it, and a closed connection shows up as a
        // failed write, which cancels the job (frees its slot) even while it waits in the queue.
        if (Clock::now() - last_write > std::chrono::seconds(1)) {
          if (!send(": keep-alive\n\n")) return false;
          last_write = Clock::now();
        }
      }
      if (g->job->error) {
        send(sse_error(*g->job->error));
      } else if (usage_on) {
        Usage u;
        {
          std::lock_guard lock(g->job->mu);
          u = g->job->usage;
        }
        if (!send(sse_event(
                usage_chunk(g->id, g->created, g->r.model, chat ? "chat.completion.chunk" : "text_completion", u))))
          return false;
      }
      if (!send(sse_done())) return false;
      sink.done();
      return true;
    };
    auto job = g->job;
    res.set_chunked_content_provider("text/event-stream", provider, [s, job](bool success) {
      if (!success) s->cancel(job);
    });
  }

  // ---- embeddings ----

  void handle_embeddings(const httplib::Request& req, httplib::Response& res) {
    EmbedRequest r = parse_embedding_request(parse_body(req.body), limits());
    const int adapter = adapter_of(r.model);
    metrics.model_request(r.model);
    if (r.dimensions > model.config.hidden_size)
      throw invalid_request(
          cat("Invalid 'dimensions': this model's embeddings have ", model.config.hidden_size, " dimensions."),
          "dimensions", "invalid_value");
    auto job = std::make_shared<Job>();
    job->kind = Job::Embed;
    job->adapter = adapter;
    if (!r.texts.empty()) {
      if (!model.has_tokenizer)
        throw invalid_request("This model has no tokenizer, so it cannot take text.", "input", "no_tokenizer");
      for (const auto& t : r.texts) job->prompts.push_back(encode_text(t, false));
    } else {
      job->prompts = r.token_ids;
    }
    for (size_t i = 0; i < job->prompts.size(); ++i) {
      if (job->prompts[i].empty())
        throw invalid_request("'$.input' is invalid: an input encodes to no tokens.", "input", "invalid_value");
      if (int(job->prompts[i].size()) > engine->ctx())
        throw invalid_request(cat("This model's maximum context length is ", engine->ctx(), " tokens, however input ",
                                  i, " has ", job->prompts[i].size(), " tokens."),
                              "input", "context_length_exceeded");
    }
    submit(job);
    std::vector<Event> evs;
    while (!job->wait_events(evs, std::chrono::milliseconds(500))) {
    }
    if (job->error) throw *job->error;
    std::vector<std::vector<float>> vecs;
    int tokens;
    {
      std::lock_guard lock(job->mu);
      vecs = job->embeddings;
      tokens = job->usage.prompt_tokens;
    }
    if (r.dimensions > 0)
      for (auto& v : vecs) {
        v.resize(size_t(r.dimensions));
        double n = 0;
        for (float x : v) n += double(x) * x;
        n = std::sqrt(n);
        if (n > 0)
          for (float& x : v) x = float(x / n);
      }
    res.set_content(dump(embeddings_response(r.model, vecs, r.base64, tokens)), "application/json");
  }

  // ---- plumbing ----

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
    res.set_content(dump(error_json(e)), "application/json");
  }

  // Runs a handler, turning every failure into an OpenAI-shaped error.
  template <typename F>
  httplib::Server::Handler guarded(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        // (cpp-httplib enforces the limit on Content-Length bodies; chunked ones arrive whole)
        if (req.body.size() > opt.max_body_bytes) throw body_too_large(opt.max_body_bytes);
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, invalid_request(e.what()));
      } catch (const std::exception& e) {
        send_error(res, server_error(cat("internal error: ", e.what())));
      }
    };
  }

  static std::string endpoint_label(const std::string& path) {
    for (const char* p :
         {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics", "/props"})
      if (path == p) return p;
    return path == "/" ? "/" : "other";
  }

  void routes() {
    static thread_local Clock::time_point t_start;
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_start = Clock::now();
      res.set_header("Access-Control-Allow-Origin", "*");
      if (req.method == "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;
      if (!opt.api_keys.empty() && req.path.rfind("/v1/", 0) == 0) {
        std::string key = bearer_token(req.get_header_value("Authorization"));
        bool ok = false;
        for (const auto& k : opt.api_keys) ok |= constant_time_equal(key, k);
        if (!ok) {
          send_error(res, invalid_api_key());
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      std::string ep = endpoint_label(req.path);
      metrics.request(ep, res.status);
      metrics.duration(ep, std::chrono::duration<double>(Clock::now() - t_start).count());
    });
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          ApiError e = res.status == 413   ? body_too_large(opt.max_body_bytes)
                       : res.status == 404 ? route_not_found(req.method, req.path)
                       : res.status == 400 ? invalid_request("Malformed HTTP request.")
                       : res.status >= 500 ? server_error("internal error")
                                           : ApiError(res.status, "Request failed.", "invalid_request_error");
          int status = res.status;
          send_error(res, e);
          res.status = status;
          return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, server_error(what));
    });
    http.Options(".*", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.status = 204;
    });

    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      auto page = chat_page_html();
      res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      json j = {{"status", sched->stopping() ? "shutting_down" : "ok"},
                {"slots_total", engine->slots()},
                {"slots_busy", metrics.slots_busy.load()},
                {"queue", metrics.queue_depth.load()}};
      if (sched->stopping()) res.status = 503;
      res.set_content(dump(j), "application/json");
    });
    // llama-server's /props subset: what a client scoring text needs besides /v1 (the prefix token
    // that conditions a document's first token, as lm-eval's loglikelihood_rolling does, and n_ctx).
    http.Get("/props", [this](const httplib::Request&, httplib::Response& res) {
      auto text_of = [&](const std::string& name, int32_t id) -> std::string {
        if (!model.has_tokenizer) return "";
        int32_t t = name.empty() ? -1 : model.tokenizer.token_id(name);
        if (t < 0) t = id;
        return t >= 0 && t < model.tokenizer.vocab_size() ? model.tokenizer.token_bytes(t) : std::string();
      };
      json j = {{"model_alias", model_id},
                {"total_slots", engine->slots()},
                {"bos_token", text_of(model.bos_token, model.config.bos_token_id)},
                {"eos_token", text_of(model.eos_token, model.config.eos_token_id)},
                {"default_generation_settings", {{"n_ctx", engine->ctx()}}}};
      res.set_content(dump(j), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
               res.set_content(dump(models_json()), "application/json");
             }));
    http.Get("/v1/models/(.+)", guarded([this](const httplib::Request& req, httplib::Response& res) {
               const std::string id = req.matches[1];
               res.set_content(dump(models_json()["data"][adapter_of(id)]), "application/json");
             }));
    http.Post("/v1/chat/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
                handle_generate(req, res, Endpoint::Chat);
              }));
    http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
                handle_generate(req, res, Endpoint::Completion);
              }));
    http.Post("/v1/embeddings",
              guarded([this](const httplib::Request& req, httplib::Response& res) { handle_embeddings(req, res); }));
  }
};

void log(const ServeOptions& o, const std::string& s) {
  if (!o.quiet) std::fprintf(stderr, "%s\n", s.c_str());
}

}  // namespace

int run_serve(const ServeOptions& opt) {
  if (opt.parallel < 1 || opt.parallel > 256) fail("--parallel: expected 1..256, got ", opt.parallel);
  if (opt.max_queue < 0) fail("--queue: expected >= 0");
  if (opt.threads > 0) set_threads(opt.threads);
  auto s = std::make_unique<Server>();
  s->opt = opt;
  const auto t0 = Clock::now();
  LoadOptions lo;
  lo.weight_type = opt.weight_type;
  int ctx = opt.ctx;
  lo.max_context = ctx > 0 ? ctx : 0;
  s->model = load_model(opt.model_path, lo);
  if (ctx <= 0) ctx = std::min(s->model.rope_positions > 0 ? s->model.rope_positions : 2048, 4096);
  s->engine = make_infer_engine(s->model, opt.parallel, ctx, opt.kv_type);
  s->model_id = opt.alias.empty() ? base_name(opt.model_path) : opt.alias;
  for (const std::string& spec : opt.loras) {
    const LoraArg a = parse_lora_arg(spec);
    if (a.name == s->model_id)
      fail("--lora ", spec, ": the name '", a.name, "' is the base model's id; give the adapter another (NAME=DIR)");
    add_adapter(s->model, a);
    s->adapter_paths.push_back(a.path);
  }
  s->tmpl = JinjaTemplate::parse(s->model.chat_template.empty() ? default_chat_template() : s->model.chat_template);
  s->tool_open =
      s->model.has_tokenizer && s->model.tokenizer.token_id("<|tool_call|>") >= 0 ? "<|tool_call|>" : "<tool_call>";
  s->end_ids = s->model.stop_ids;
  SchedulerOptions so;
  so.max_queue = opt.max_queue;
  so.batch_tokens = std::max(1, opt.batch_tokens);
  so.prefill_chunk = std::max(1, std::min(opt.prefill_chunk, so.batch_tokens));
  s->sched = std::make_unique<Scheduler>(*s->engine, so, &s->metrics);

  httplib::Server& http = s->http;
  const int workers = std::max(8, opt.parallel + opt.max_queue + 8);
  http.new_task_queue = [workers] { return new httplib::ThreadPool(size_t(workers)); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_read_timeout(60, 0);
  http.set_write_timeout(60, 0);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);
  s->routes();

  int port = opt.port;
  if (port == 0) {
    port = http.bind_to_any_port(opt.host);
    if (port <= 0) fail("serve: could not bind to ", opt.host);
  } else if (!http.bind_to_port(opt.host, port)) {
    fail("serve: could not listen on ", opt.host, ":", port, " (in use, or not an address of this machine)");
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  log(opt, cat("todae serve: model '", s->model_id, "' (", s->model.format, ", ", wtype_name(s->model.weight_type),
               ", ", s->model.config.num_hidden_layers, " layers, vocab ", s->model.config.vocab_size, ") loaded in ",
               std::chrono::duration<double>(Clock::now() - t0).count(), " s; ", opt.parallel, " slots x ", ctx,
               " positions, KV cache ", s->engine->slots() > 0 ? "" : "", wtype_name(opt.kv_type)));
  for (size_t i = 0; i < s->model.adapter_names.size(); ++i)
    log(opt, cat("todae serve: LoRA adapter '", s->model.adapter_names[i], "' (", s->adapter_paths[i], ", rank ",
                 s->model.adapters[i]->config.rank, ", scale ", s->model.adapters[i]->scale, ")"));
  log(opt, cat("todae serve: listening on http://", opt.host, ":", port, "  (chat page at /, API at /v1)"));
  if (!opt.port_file.empty()) write_file_atomic(opt.port_file, std::to_string(port) + "\n");

  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      if (g_signal != 0) {
        log(opt, cat("todae serve: signal ", int(g_signal), ": finishing running requests (up to ",
                     opt.shutdown_grace_s, " s), then stopping"));
        s->sched->shutdown(std::chrono::milliseconds(int64_t(opt.shutdown_grace_s * 1000)));
        // Let the HTTP threads send the last events before the sockets close.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        http.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  bool ok = http.listen_after_bind();
  done = true;
  watcher.join();
  s->sched->shutdown(std::chrono::milliseconds(0));
  log(opt, "todae serve: stopped");
  return ok || g_signal != 0 ? 0 : 1;
}

}  // namespace todae::serve
