// EvalModel over an OpenAI-compatible server (todae serve, vLLM, llama-server): what lm-eval's
// local-completions model does, with text prompts. Log-likelihoods come from one completions
// request per (context + continuation) with echo, logprobs 1 and max_tokens 0: the server scores
// the prompt's own tokens, and the continuation's are those whose text_offset (code points, as
// Python indexes strings) falls at or after the context's end. Greedy means every such token was
// the top-1 of its position (the largest value in top_logprobs, lm-eval's check).
//
// Requests are independent, so run_task evaluates `concurrency` documents at once, each on its
// own thread with a keep-alive connection from a small pool. Failures that may pass (no
// connection, 429, 5xx, a timeout) are retried with exponential backoff, Retry-After first; the
// rest (401, 400, ...) and the last retry end the run with one line naming the URL and the status.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;

namespace {

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// http(s)://host[:port][/prefix][/v1][/completions | /chat/completions]: the server part and the
// API's base path (default /v1), so lm-eval's base_url (the full completions URL) works too.
struct Url {
  std::string server;  // scheme://host[:port], what httplib::Client takes
  std::string base;    // "/v1"
};

Url parse_url(std::string u) {
  const size_t scheme = u.find("://");
  if (scheme == std::string::npos || (u.compare(0, scheme, "http") != 0 && u.compare(0, scheme, "https") != 0))
    fail("--endpoint '", u, "': expected http://HOST[:PORT][/v1] or https://...");
  const size_t slash = u.find('/', scheme + 3);
  Url r;
  r.server = u.substr(0, slash);
  if (r.server.size() == scheme + 3) fail("--endpoint '", u, "': no host");
  std::string path = slash == std::string::npos ? "" : u.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (const char* tail : {"/chat/completions", "/completions"})
    if (path.ends_with(tail)) {
      path.resize(path.size() - std::strlen(tail));
      break;
    }
  r.base = path.empty() ? "/v1" : path;
  return r;
}

// The message of an OpenAI-shaped error body, else the body's start.
std::string error_message(const std::string& body) {
  ojson j = ojson::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const ojson& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  return printable(body, 200);
}

struct EndpointModel final : EvalModel {
  EndpointOptions o;
  Url url;
  std::string name;
  std::mutex mu;  // the idle connections, the warnings
  std::vector<std::unique_ptr<httplib::Client>> idle;
  std::once_flag props_once;
  std::string prefix_text;  // the server's prefix token as text ("" when it does not say)
  bool warned_unscored = false;

  explicit EndpointModel(const EndpointOptions& opt) : o(opt), url(parse_url(opt.url)) {
    if (o.concurrency < 1) fail("--concurrency must be >= 1");
    if (o.max_retries < 0) fail("--max-retries must be >= 0");
    if (!(o.timeout_s > 0)) fail("--timeout must be > 0");
    name = o.model;
    if (name.empty()) {  // the server's (first) model, as lm-eval users name it with model=
      ojson j = request(url.base + "/models", nullptr);
      if (!j.contains("data") || !j["data"].is_array() || j["data"].empty() || !j["data"][0].contains("id"))
        fail("endpoint ", where(url.base + "/models"), ": no model listed; pass --endpoint-model NAME");
      name = j["data"][0]["id"].get<std::string>();
    }
  }

  std::string where(const std::string& path) const { return url.server + path; }

  // A keep-alive connection for one request at a time; back to the pool afterwards.
  struct Lease {
    EndpointModel& m;
    std::unique_ptr<httplib::Client> c;
    explicit Lease(EndpointModel& model) : m(model) {
      {
        std::lock_guard lock(m.mu);
        if (!m.idle.empty()) {
          c = std::move(m.idle.back());
          m.idle.pop_back();
        }
      }
      if (!c) c = m.connect();
    }
    ~Lease() {
      std::lock_guard lock(m.mu);
      m.idle.push_back(std::move(c));
    }
  };

  std::unique_ptr<httplib::Client> connect() {
    auto c = std::make_unique<httplib::Client>(url.server);
    if (!c->is_valid()) fail("--endpoint ", url.server, ": not a URL this build can reach (https needs OpenSSL)");
    const auto timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
    c->set_connection_timeout(std::min(timeout, std::chrono::milliseconds(30000)));
    c->set_read_timeout(timeout);
    c->set_write_timeout(timeout);
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);  // (headers and body go in two writes: Nagle would hold the body for the ACK)
    if (!o.api_key.empty()) c->set_bearer_token_auth(o.api_key);
    return c;
  }

  // GET (body null) or POST JSON, with retries. allow_404: a 404 answers null (optional routes).
  ojson request(const std::string& path, const ojson* body, bool allow_404 = false) {
    const std::string text = body ? body->dump(-1, ' ', false, ojson::error_handler_t::replace) : "";
    for (int attempt = 0;; attempt++) {
      double wait = std::min(60.0, o.backoff_s * std::pow(2.0, attempt));
      std::string why;
      bool retry = true;
      {
        Lease l(*this);
        httplib::Result res = body ? l.c->Post(path, text, "application/json") : l.c->Get(path);
        if (!res) {
          why = res.error() == httplib::Error::Read ? cat("no answer within ", o.timeout_s, " s (or the connection dropped)")
                                                    : cat("connection failed (", httplib::to_string(res.error()), ")");
        } else if (res->status == 200) {
          ojson j = ojson::parse(res->body, nullptr, false);
          if (j.is_discarded()) {
            why = cat("HTTP 200 with a body that is not JSON: ", printable(res->body, 120));
            retry = false;
          } else if (j.is_object() && j.contains("error")) {
            // todae serve reports a failure after it started answering in the body of a 200
            why = cat("error in the response: ", error_message(res->body));
          } else {
            return j;
          }
        } else if (res->status == 404 && allow_404) {
          return nullptr;
        } else {
          why = cat("HTTP ", res->status, ": ", error_message(res->body));
          retry = res->status == 429 || res->status == 408 || res->status >= 500;
          if (retry && res->has_header("Retry-After")) {
            const std::string ra = res->get_header_value("Retry-After");
            char* end = nullptr;
            const double s = std::strtod(ra.c_str(), &end);
            if (end != ra.c_str() && s >= 0) wait = std::min(s, 300.0);  // seconds (an HTTP date: backoff)
          }
        }
      }
      if (!retry) fail("endpoint ", where(path), ": ", why);
      if (attempt >= o.max_retries)
        fail("endpoint ", where(path), ": ", why, attempt > 0 ? cat(" (gave up after ", attempt + 1, " tries)") : "");
      std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(wait * 1000)));
    }
  }

  // The text of the server's prefix token (todae serve's and llama-server's GET /props); what the
  // local model puts before an empty context and a rolling text's first token.
  const std::string& prefix() {
    std::call_once(props_once, [&] {
      ojson p = request("/props", nullptr, true);
      if (!p.is_object()) return;
      for (const char* k : {"bos_token", "eos_token"})
        if (p.contains(k) && p[k].is_string() && !p[k].get<std::string>().empty()) {
          prefix_text = p[k].get<std::string>();
          return;
        }
    });
    return prefix_text;
  }

  void warn_unscored() {
    std::lock_guard lock(mu);
    if (warned_unscored) return;
    warned_unscored = true;
    std::fprintf(stderr,
                 "eval: warning: %s has no /props with a bos_token or eos_token, so the first token of a text "
                 "with no context before it cannot be scored; it is left out\n",
                 url.server.c_str());
  }

  static const ojson& choice0(const ojson& j, const std::string& at) {
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() || !j["choices"][0].is_object())
      fail("endpoint ", at, ": the response has no choices");
    return j["choices"][0];
  }

  // The log-likelihood of the prompt's tokens that start at code point from_cp or later.
  LogLik score(const std::string& prompt, size_t from_cp) {
    const std::string path = url.base + "/completions";
    ojson body = {{"model", name},     {"prompt", prompt},     {"echo", true}, {"logprobs", 1},
                  {"max_tokens", 0},   {"temperature", 0},     {"seed", o.seed}};
    const ojson j = request(path, &body);
    const ojson& c = choice0(j, where(path));
    const ojson* lp = c.contains("logprobs") && c["logprobs"].is_object() ? &c["logprobs"] : nullptr;
    if (!lp || !lp->contains("token_logprobs") || !lp->contains("text_offset") || !lp->contains("top_logprobs") ||
        !(*lp)["token_logprobs"].is_array() || !(*lp)["text_offset"].is_array() ||
        (*lp)["text_offset"].size() != (*lp)["token_logprobs"].size())
      fail("endpoint ", where(path),
           ": the response has no logprobs.token_logprobs / top_logprobs / text_offset for the prompt "
           "(the server must support echo with logprobs, as vLLM and todae serve do)");
    const ojson& lps = (*lp)["token_logprobs"];
    const ojson& offs = (*lp)["text_offset"];
    const ojson& tops = (*lp)["top_logprobs"];
    const size_t end_cp = code_points(prompt);  // tokens past the prompt were generated: not ours
    LogLik r;
    r.greedy = true;
    for (size_t i = 0; i < lps.size(); i++) {
      if (!offs[i].is_number()) fail("endpoint ", where(path), ": text_offset[", i, "] is not a number");
      const size_t off = offs[i].get<size_t>();
      if (off < from_cp || off >= end_cp) continue;
      if (lps[i].is_null()) {  // the prompt's first token: nothing before it to condition on
        warn_unscored();
        continue;
      }
      if (!lps[i].is_number()) fail("endpoint ", where(path), ": token_logprobs[", i, "] is not a number");
      const double v = lps[i].get<double>();
      r.logprob += v;
      r.tokens++;
      bool top1 = false;
      if (tops.is_array() && i < tops.size() && tops[i].is_object() && !tops[i].empty()) {
        double mx = -INFINITY;
        for (const auto& [k, x] : tops[i].items())
          if (x.is_number()) mx = std::max(mx, x.get<double>());
        top1 = v >= mx;
      }
      r.greedy = r.greedy && top1;
    }
    return r;
  }

  std::vector<LogLik> loglikelihood(const std::string& context_in, const std::vector<std::string>& conts) override {
    // Trailing whitespace of the context belongs to the continuation, as in the local model.
    std::u32string cu = to_u32(context_in);
    size_t keep = cu.size();
    while (keep > 0 && is_py_space(cu[keep - 1])) keep--;
    const std::string context = to_utf8(std::u32string_view(cu).substr(0, keep));
    const std::string spaces = to_utf8(std::u32string_view(cu).substr(keep));
    const std::string head = (context.empty() || o.add_bos ? prefix() : std::string()) + context;
    std::vector<LogLik> out;
    for (const std::string& c : conts) out.push_back(score(head + spaces + c, code_points(head)));
    return out;
  }

  LogLik loglikelihood_rolling(const std::string& text) override {
    if (text.empty()) return LogLik{0, true, 0};
    const std::string& pre = prefix();
    return score(pre + text, code_points(pre));
  }

  static std::string cut_at_stops(std::string text, const std::vector<std::string>& until) {
    for (const std::string& s : until)  // as lm-eval does after any server's own stop handling
      if (!s.empty()) {
        auto p = text.find(s);
        if (p != std::string::npos) text.resize(p);
      }
    return text;
  }

  std::string generate_until(const std::string& context, const std::vector<std::string>& until, int max_tokens) override {
    std::vector<std::string> stop;
    for (const std::string& s : until)
      if (!s.empty()) stop.push_back(s);
    max_tokens = std::max(1, max_tokens);
    if (o.chat) {
      ojson messages = ojson::array({{{"role", "user"}, {"content", context}}});
      const ChatReply r = chat(messages, ojson::array(), stop, max_tokens);
      return cut_at_stops(r.content, until);
    }
    const std::string path = url.base + "/completions";
    ojson body = {{"model", name},
                  {"prompt", (context.empty() || o.add_bos ? prefix() : std::string()) + context},
                  {"max_tokens", max_tokens},
                  {"temperature", 0},
                  {"stop", stop},
                  {"seed", o.seed}};
    const ojson j = request(path, &body);
    const ojson& c = choice0(j, where(path));
    if (!c.contains("text") || !c["text"].is_string()) fail("endpoint ", where(path), ": choices[0].text is missing");
    return cut_at_stops(c["text"].get<std::string>(), until);
  }

  ChatReply chat(const ojson& messages, const ojson& tools, const std::vector<std::string>& until,
                 int max_tokens) override {
    const std::string path = url.base + "/chat/completions";
    ojson body = {{"model", name}, {"messages", messages}, {"max_tokens", std::max(1, max_tokens)}, {"temperature", 0},
                  {"seed", o.seed}};
    if (tools.is_array() && !tools.empty()) body["tools"] = tools;
    ojson stop = ojson::array();
    for (const std::string& s : until)
      if (!s.empty() && stop.size() < 4) stop.push_back(s);  // OpenAI takes at most 4 (lm-eval's stop[:4])
    if (!stop.empty()) body["stop"] = stop;
    const ojson j = request(path, &body);
    const ojson& c = choice0(j, where(path));
    if (!c.contains("message") || !c["message"].is_object()) fail("endpoint ", where(path), ": choices[0].message is missing");
    const ojson& m = c["message"];
    ChatReply r;
    if (m.contains("content") && m["content"].is_string()) r.content = m["content"].get<std::string>();
    if (m.contains("tool_calls") && m["tool_calls"].is_array())
      for (const ojson& t : m["tool_calls"]) {
        if (!t.contains("function") || !t["function"].is_object()) continue;
        const ojson& f = t["function"];
        ToolCall k;
        k.id = t.value("id", "");
        k.name = f.value("name", "");
        if (f.contains("arguments")) k.arguments = f["arguments"].is_string() ? f["arguments"].get<std::string>() : f["arguments"].dump();
        r.calls.push_back(std::move(k));
      }
    r.text = r.content;
    for (const ToolCall& k : r.calls)  // (the API returns calls apart from the text: shown as JSON)
      r.text += cat(r.text.empty() ? "" : "\n", ojson{{"name", k.name}, {"arguments", k.arguments}}.dump());
    return r;
  }

  ojson describe() override {
    return {{"endpoint", url.server + url.base},
            {"model", name},
            {"api", o.chat ? "completions (log-likelihood), chat completions (generation)" : "completions"},
            {"concurrency", o.concurrency},
            {"add_bos", o.add_bos}};
  }

  int concurrency() const override { return o.concurrency; }
};

}  // namespace

std::unique_ptr<EvalModel> make_endpoint_model(const EndpointOptions& o) { return std::make_unique<EndpointModel>(o); }

}  // namespace todae::eval
