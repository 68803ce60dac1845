// todae serve: Prometheus metrics (text exposition format 0.0.4), thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace todae::serve {

struct Histogram {
  std::vector<double> bounds;    // upper bounds, ascending (+Inf implied)
  std::vector<uint64_t> counts;  // per bucket (not cumulative), size bounds+1
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> b);
  void observe(double v);
};

struct Metrics {
  Metrics();
  // requests by endpoint and status code
  void request(const std::string& endpoint, int status);
  void prompt_tokens(uint64_t n);
  void generated_tokens(uint64_t n);
  void ttft(double seconds);
  void inter_token(double seconds);
  void duration(const std::string& endpoint, double seconds);
  // One forward pass of the scheduler; `adapters`: distinct LoRA adapter ids in it (the base is one).
  void decode_step(int tokens, double seconds, int adapters = 1);
  // A generation or embedding request for this model id (the base's or an adapter's name).
  void model_request(const std::string& model);
  // Gauges, set by the scheduler.
  std::atomic<int> queue_depth{0}, slots_busy{0}, slots_total{0};
  std::atomic<int64_t> kv_tokens{0};
  std::string render() const;  // Prometheus text

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, steps_ = 0, step_tokens_ = 0, mixed_steps_ = 0;
  std::map<std::string, uint64_t> model_requests_;
  Histogram ttft_, itl_;
  std::map<std::string, Histogram> durations_;
  // tokens/s over a sliding window of recent steps
  std::vector<std::pair<double, int>> recent_;  // (time, generated tokens)
  double start_;
};

}  // namespace todae::serve
