// Training-step benchmark for the shapes of ../shared/perf/SHAPES.md (driven by train_bench.sh,
// which runs PyTorch on the same model alternately). Prints one JSON line per measurement.
//
//   train_bench --shape S|M [--steps N] [--warmup N] [--threads N] [--recompute] [--forward]
//               [--batch B] [--context T] [--bf16]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"

using namespace todae;

int main(int argc, char** argv) {
  std::string shape = "S";
  int steps = 5, warmup = 1, threads = 2, B = 0, T = 0;
  bool recompute = false, forward_only = false, bf16 = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shape") shape = next();
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--batch") B = std::stoi(next());
    else if (a == "--context") T = std::stoi(next());
    else if (a == "--recompute") recompute = true;
    else if (a == "--forward") forward_only = true;
    else if (a == "--bf16") bf16 = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  ModelConfig c;
  c.vocab_size = 32000;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1e4;
  if (shape == "S") {
    c.hidden_size = 288, c.num_hidden_layers = 6, c.num_attention_heads = 6, c.intermediate_size = 768;
    c.max_position_embeddings = 256;
    B = B ? B : 8, T = T ? T : 256;
  } else if (shape == "M") {
    c.hidden_size = 512, c.num_hidden_layers = 8, c.num_attention_heads = 8, c.intermediate_size = 1408;
    c.max_position_embeddings = 512;
    B = B ? B : 4, T = T ? T : 512;
  } else {
    std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
    return 2;
  }
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  set_threads(threads);
  Model m(c);
  init_weights(m, 1234);
  alloc_grads(m);
  alloc_optimizer_state(m);
  std::mt19937 rng(1);
  std::vector<int32_t> tok(static_cast<size_t>(B) * (T + 1));
  for (auto& t : tok) t = static_cast<int32_t>(rng() % c.vocab_size);
  AdamW opt{3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
  TrainOptions to;
  to.recompute = recompute;
  to.bf16 = bf16;
  std::vector<double> times;
  float loss = 0;
  for (int s = 0; s < warmup + steps; s++) {
    auto t0 = std::chrono::steady_clock::now();
    if (forward_only) {
      loss = forward_loss(m, tok.data(), B, T, nullptr, bf16);
    } else {
      zero_grads(m);
      loss = forward_backward(m, tok.data(), B, T, 1.0f, to);
      adamw_step(m, opt, s + 1);
    }
    auto t1 = std::chrono::steady_clock::now();
    if (s >= warmup) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double tps = B * T / med;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double flops = forward_only ? c.flops_per_token(T) / 3 : c.flops_per_token(T);
  std::printf("{\"impl\": \"todae\", \"shape\": \"%s\", \"mode\": \"%s\", \"precision\": \"%s\", \"isa\": \"%s\", \"threads\": %d, "
              "\"tokens_per_s\": %.1f, \"step_s\": %.4f, \"gflops\": %.1f, \"loss\": %.4f, \"peak_rss_mb\": %.0f}\n",
              shape.c_str(), forward_only ? "forward" : (recompute ? "train-recompute" : "train"), bf16 ? "bf16" : "f32",
              isa_name(active_isa()), threads, tps, med, tps * flops / 1e9, loss, ru.ru_maxrss / 1024.0);
  return 0;
}
