// Prometheus text exposition of the server's counters, gauges and histograms (see metrics.h).
#include "serve/metrics.h"

#include <chrono>
#include <sstream>

namespace todae::serve {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::vector<double> latency_buckets() { return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}; }
std::string num(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}
void write_histogram(std::ostringstream& os, const std::string& name, const std::string& labels, const Histogram& h) {
  uint64_t cum = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cum += h.counts[i];
    os << name << "_bucket{" << labels << sep << "le=\"" << num(h.bounds[i]) << "\"} " << cum << "\n";
  }
  cum += h.counts.back();
  os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << cum << "\n";
  std::string l = labels.empty() ? "" : "{" + labels + "}";
  os << name << "_sum" << l << " " << num(h.sum) << "\n";
  os << name << "_count" << l << " " << h.count << "\n";
}
// A Prometheus label value: backslash, double quote and newline escaped (model names are the
// user's --alias and --lora NAME).
std::string label(const std::string& v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\' || ch == '"') out += '\\', out += ch;
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}
}  // namespace

Histogram::Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

Metrics::Metrics()
    : ttft_(latency_buckets()),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      start_(now_s()) {}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}
void Metrics::prompt_tokens(uint64_t n) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += n;
}
void Metrics::generated_tokens(uint64_t n) {
  std::lock_guard lock(mu_);
  generated_tokens_ += n;
  double t = now_s();
  recent_.emplace_back(t, int(n));
  size_t drop = 0;
  while (drop < recent_.size() && recent_[drop].first < t - 10) ++drop;
  if (drop > 1024) recent_.erase(recent_.begin(), recent_.begin() + drop);
}
void Metrics::ttft(double s) {
  std::lock_guard lock(mu_);
  ttft_.observe(s);
}
void Metrics::inter_token(double s) {
  std::lock_guard lock(mu_);
  itl_.observe(s);
}
void Metrics::duration(const std::string& endpoint, double s) {
  std::lock_guard lock(mu_);
  auto it = durations_.find(endpoint);
  if (it == durations_.end()) it = durations_.emplace(endpoint, Histogram(latency_buckets())).first;
  it->second.observe(s);
}
void Metrics::decode_step(int tokens, double, int adapters) {
  std::lock_guard lock(mu_);
  ++steps_;
  step_tokens_ += uint64_t(tokens);
  if (adapters > 1) ++mixed_steps_;
}
void Metrics::model_request(const std::string& model) {
  std::lock_guard lock(mu_);
  ++model_requests_[model];
}

std::string Metrics::render() const {
  std::lock_guard lock(mu_);
  std::ostringstream os;
  os << "# HELP todae_requests_total HTTP requests by endpoint and status code.\n"
        "# TYPE todae_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    os << "todae_requests_total{endpoint=\"" << k.first << "\",code=\"" << k.second << "\"} " << v << "\n";
  os << "# HELP todae_prompt_tokens_total Prompt tokens processed.\n# TYPE todae_prompt_tokens_total counter\n"
     << "todae_prompt_tokens_total " << prompt_tokens_ << "\n";
  os << "# HELP todae_generated_tokens_total Tokens generated.\n# TYPE todae_generated_tokens_total counter\n"
     << "todae_generated_tokens_total " << generated_tokens_ << "\n";
  os << "# HELP todae_forward_passes_total Batched forward passes run by the scheduler.\n"
        "# TYPE todae_forward_passes_total counter\n"
     << "todae_forward_passes_total " << steps_ << "\n";
  os << "# HELP todae_batch_tokens_total Tokens in all forward passes (prompt + decode).\n"
        "# TYPE todae_batch_tokens_total counter\n"
     << "todae_batch_tokens_total " << step_tokens_ << "\n";
  os << "# HELP todae_mixed_adapter_passes_total Forward passes that decoded sequences of several LoRA "
        "adapters (or adapters and the base) together.\n"
        "# TYPE todae_mixed_adapter_passes_total counter\n"
     << "todae_mixed_adapter_passes_total " << mixed_steps_ << "\n";
  os << "# HELP todae_model_requests_total Generation and embedding requests by model id (the base or an "
        "adapter).\n# TYPE todae_model_requests_total counter\n";
  for (const auto& [name, n] : model_requests_) os << "todae_model_requests_total{model=\"" << label(name) << "\"} " << n << "\n";
  os << "# HELP todae_queue_depth Requests waiting for a slot.\n# TYPE todae_queue_depth gauge\n"
     << "todae_queue_depth " << queue_depth.load() << "\n";
  os << "# HELP todae_slots_busy Sequences in the KV cache.\n# TYPE todae_slots_busy gauge\n"
     << "todae_slots_busy " << slots_busy.load() << "\n";
  os << "# HELP todae_slots_total KV cache slots (--parallel).\n# TYPE todae_slots_total gauge\n"
     << "todae_slots_total " << slots_total.load() << "\n";
  os << "# HELP todae_kv_cache_tokens Positions held in the KV cache.\n# TYPE todae_kv_cache_tokens gauge\n"
     << "todae_kv_cache_tokens " << kv_tokens.load() << "\n";
  double t = now_s(), window = std::min(10.0, std::max(1e-3, t - start_));
  uint64_t recent = 0;
  for (const auto& [ts, n] : recent_)
    if (ts >= t - window) recent += uint64_t(n);
  os << "# HELP todae_tokens_per_second Generated tokens per second over the last 10 s.\n"
        "# TYPE todae_tokens_per_second gauge\n"
     << "todae_tokens_per_second " << num(double(recent) / window) << "\n";
  os << "# HELP todae_time_to_first_token_seconds Time from request to first generated token.\n"
        "# TYPE todae_time_to_first_token_seconds histogram\n";
  write_histogram(os, "todae_time_to_first_token_seconds", "", ttft_);
  os << "# HELP todae_inter_token_latency_seconds Time between consecutive generated tokens of a sequence.\n"
        "# TYPE todae_inter_token_latency_seconds histogram\n";
  write_histogram(os, "todae_inter_token_latency_seconds", "", itl_);
  os << "# HELP todae_request_duration_seconds Request latency by endpoint.\n"
        "# TYPE todae_request_duration_seconds histogram\n";
  for (const auto& [ep, h] : durations_)
    write_histogram(os, "todae_request_duration_seconds", "endpoint=\"" + ep + "\"", h);
  return os.str();
}

}  // namespace todae::serve
