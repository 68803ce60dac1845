// Micro-benchmark of quant.h's matmul_w: GB/s of weights streamed for a few activation rows
// (decode) and GFLOP/s for many (prompt processing), per weight type. Built ad hoc (not part of
// the default build):
//   cmake --build build --target quant_bench   (then build/quant_bench)
// Usage: quant_bench [rows cols N [type]]... ; with no arguments a default set of shapes.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tensor/quant.h"
#include "tensor/tensor.h"

using namespace todae;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// CPU time of the whole process, per repetition and thread (a second opinion on a shared machine).
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void run(int rows, int cols, int N, WType t) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(cols);
  const size_t rb = wtype_row_bytes(t, cols);
  std::vector<uint8_t> w(rb * rows + 64);
  for (int r = 0; r < rows; r++) {
    for (float& v : row) v = nd(rng) * 0.05f;
    quantize_row(t, row.data(), w.data() + rb * r, cols);
  }
  std::vector<float> x(static_cast<size_t>(N) * cols), y(static_cast<size_t>(N) * rows);
  for (float& v : x) v = nd(rng);
  WMatrix W{t, rows, cols, w.data(), rb};
  matmul_w(y.data(), x.data(), N, W);  // warm-up
  // repeat for at least ~0.3 s
  // the fastest of the repetitions (on a shared machine the mean mostly measures the others)
  int reps = 0;
  const double c0 = cpu_now();
  double t0 = now(), t1 = t0, best = 1e30;
  do {
    const double a = now();
    matmul_w(y.data(), x.data(), N, W);
    t1 = now();
    best = std::min(best, t1 - a);
    reps++;
  } while (t1 - t0 < 1.5 || reps < 5);
  const double s = best, sc = (cpu_now() - c0) / reps / get_threads();
  const double bytes = static_cast<double>(rb) * rows, flop = 2.0 * rows * cols * static_cast<double>(N);
  std::printf("%-5s %6d x %-6d N=%-4d %9.3f ms  %7.2f GB/s  %8.1f GFLOP/s   (mean cpu: %7.2f GB/s %8.1f GFLOP/s)\n",
              wtype_name(t), rows, cols, N, s * 1e3, bytes / s / 1e9, flop / s / 1e9, bytes / sc / 1e9, flop / sc / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("isa %s, threads %d, vnni %d, bf16 %d\n", isa_name(active_isa()), get_threads(),
              cpu_features().avx512vnni ? 1 : 0, cpu_features().avx512bf16 ? 1 : 0);
  const WType all[] = {WType::F32, WType::F16, WType::BF16, WType::Q8_0, WType::Q4_0};
  if (argc > 3) {
    for (int i = 1; i + 2 < argc; i += 4) {
      int rows = std::atoi(argv[i]), cols = std::atoi(argv[i + 1]), N = std::atoi(argv[i + 2]);
      if (i + 3 < argc) {
        WType t;
        if (!parse_wtype(argv[i + 3], &t)) return 1;
        run(rows, cols, N, t);
      } else {
        for (WType t : all) run(rows, cols, N, t);
      }
    }
    return 0;
  }
  for (WType t : all) run(32000, 288, 1, t);
  for (WType t : all) run(4096, 4096, 1, t);
  for (WType t : all) run(4096, 4096, 512, t);
  return 0;
}
