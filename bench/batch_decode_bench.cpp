// Batched decode in the engine alone (no HTTP, no sampling): B sequences, each one token per
// forward_batch step, as the server's continuous batching runs them. Prints aggregate tokens/s
// per batch size and its ratio to B = 1. Built ad hoc (not part of the default build):
//   cmake --build build --target batch_decode_bench   (then build/batch_decode_bench)
// Usage: batch_decode_bench MODEL [steps] [threads] [prompt]: with a prompt length, times that
// prompt's forward instead (one sequence, logits for its last token), best of 10.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "infer/infer.h"
#include "tensor/tensor.h"

using namespace todae;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: batch_decode_bench MODEL [steps] [threads]\n");
    return 2;
  }
  const int steps = argc > 2 ? std::atoi(argv[2]) : 64;
  if (argc > 3) set_threads(std::atoi(argv[3]));
  try {
    InferModel m = load_model(argv[1]);
    const int V = m.config.vocab_size;
    if (argc > 4) {
      const int P = std::atoi(argv[4]);
      std::vector<float> logits(V);
      Forward fw;
      double best = 0;
      for (int rep = 0; rep < 10; rep++) {
        KVCache cache = make_kv_cache(m, P, 1);
        Batch b;
        for (int i = 0; i < P; i++) b.add((i * 7919 + 3) % V, i, 0, i == P - 1);
        const auto t0 = std::chrono::steady_clock::now();
        forward_batch(m, cache, fw, b, logits.data());
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, P / sec);
      }
      std::printf("prompt %d: %.1f tok/s\n", P, best);
      return 0;
    }
    double base = 0;
    for (int B : {1, 2, 4, 8, 16}) {
      double best = 0;
      for (int rep = 0; rep < 3; rep++) {
        KVCache cache = make_kv_cache(m, steps + 8, B);
        Forward fw;
        std::vector<float> logits(size_t(B) * V);
        Batch b;
        for (int s = 0; s < B; s++) b.add(1 + s, 0, s, true);
        forward_batch(m, cache, fw, b, logits.data());
        const auto t0 = std::chrono::steady_clock::now();
        for (int step = 1; step <= steps; step++) {
          b.clear();
          for (int s = 0; s < B; s++) b.add((step * 7 + s) % V, step, s, true);
          forward_batch(m, cache, fw, b, logits.data());
        }
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, double(B) * steps / sec);
      }
      if (B == 1) base = best;
      std::printf("B=%-2d %9.1f tok/s  %5.2fx of B=1\n", B, best, best / base);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
