// Energy (RAPL or CPU-time estimate) and the FMA peak probe. See energy.h.
#include "base/energy.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TODAE_X86 1
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace todae {

// ---- energy -----------------------------------------------------------------------------------

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

static bool read_u64_file(const std::string& path, uint64_t* out) {
  std::string s;
  try {
    s = read_file(path);
  } catch (const Error&) {
    return false;  // energy_uj is root-only on most kernels since 2020: fall back quietly
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str() || errno != 0) return false;
  *out = v;
  return true;
}

EnergyMeter::EnergyMeter(const EnergyOptions& opt) {
  watts_per_core = opt.watts_per_core;
  if (watts_per_core <= 0) {
    const char* env = std::getenv("TODAE_WATTS_PER_CORE");
    double w = env ? std::atof(env) : 0;
    watts_per_core = w > 0 ? w : 15.0;
  }
  cpu_start_s = process_cpu_seconds();
  if (!opt.allow_rapl) return;
  std::error_code ec;
  std::vector<std::string> dirs;
  for (auto it = fs::directory_iterator(opt.powercap_root, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    // Top-level package zones only ("intel-rapl:0"); sub-zones ("intel-rapl:0:0", core/uncore/dram)
    // are parts of their package and would be counted twice.
    if (name.starts_with("intel-rapl:") && std::count(name.begin(), name.end(), ':') == 1)
      dirs.push_back(it->path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    Zone z;
    z.path = d + "/energy_uj";
    if (!read_u64_file(z.path, &z.last_uj) || !read_u64_file(d + "/max_energy_range_uj", &z.max_uj)) continue;
    try {
      z.name = read_file(d + "/name");
      while (!z.name.empty() && (z.name.back() == '\n' || z.name.back() == ' ')) z.name.pop_back();
    } catch (const Error&) {
    }
    z.path = d + "/energy_uj";
    zones.push_back(z);
  }
}

double EnergyMeter::joules() {
  std::lock_guard lock(mu);
  if (zones.empty()) return (process_cpu_seconds() - cpu_start_s) * watts_per_core;
  double total = 0;
  for (auto& z : zones) {
    uint64_t cur;
    // A zone that stops being readable keeps its last total rather than switching to an estimate
    // halfway through a run.
    if (read_u64_file(z.path, &cur)) {
      uint64_t delta = cur >= z.last_uj ? cur - z.last_uj : (z.max_uj - z.last_uj) + cur;
      z.total_j += double(delta) * 1e-6;
      z.last_uj = cur;
    }
    total += z.total_j;
  }
  return total;
}

std::string EnergyMeter::source() const {
  if (zones.empty()) return cat("CPU time × ", watts_per_core, " W/core");
  std::string s = "RAPL";
  for (const auto& z : zones) {
    std::string zone = fs::path(z.path).parent_path().filename().string();
    s += cat(" ", zone, z.name.empty() ? "" : cat(" (", z.name, ")"));
  }
  return s;
}

// ---- FMA peak ---------------------------------------------------------------------------------
//
// Twelve independent accumulator chains hide the FMA latency (4 cycles × 2 ports needs 8). The
// values stay in registers: no loads or stores in the loop, so this is the arithmetic ceiling.

namespace {

constexpr int kChains = 12;

#ifdef TODAE_X86
#define TODAE_FMA_BODY(VEC, SET1, FMADD, ADD, LANES)                                                          \
  VEC a0 = SET1(1.0f), a1 = SET1(1.1f), a2 = SET1(1.2f), a3 = SET1(1.3f), a4 = SET1(1.4f), a5 = SET1(1.5f);   \
  VEC a6 = SET1(1.6f), a7 = SET1(1.7f), a8 = SET1(1.8f), a9 = SET1(1.9f), a10 = SET1(2.0f), a11 = SET1(2.1f); \
  const VEC b = SET1(0.999999f), c = SET1(1e-7f);                                                             \
  for (uint64_t i = 0; i < iters; ++i) {                                                                      \
    a0 = FMADD(a0, b, c);                                                                                     \
    a1 = FMADD(a1, b, c);                                                                                     \
    a2 = FMADD(a2, b, c);                                                                                     \
    a3 = FMADD(a3, b, c);                                                                                     \
    a4 = FMADD(a4, b, c);                                                                                     \
    a5 = FMADD(a5, b, c);                                                                                     \
    a6 = FMADD(a6, b, c);                                                                                     \
    a7 = FMADD(a7, b, c);                                                                                     \
    a8 = FMADD(a8, b, c);                                                                                     \
    a9 = FMADD(a9, b, c);                                                                                     \
    a10 = FMADD(a10, b, c);                                                                                   \
    a11 = FMADD(a11, b, c);                                                                                   \
  }                                                                                                           \
  VEC s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                                  \
  s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                                \
  float lanes[LANES];                                                                                         \
  std::memcpy(lanes, &s, sizeof lanes);                                                                       \
  float r = 0;                                                                                                \
  for (float x : lanes) r += x;                                                                               \
  return r;

__attribute__((target("avx512f"))) float fma_avx512(uint64_t iters) {
  TODAE_FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}
__attribute__((target("avx2,fma"))) float fma_avx2(uint64_t iters) {
  TODAE_FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}
#endif

float fma_scalar(uint64_t iters) {
  float a[kChains];
  for (int k = 0; k < kChains; ++k) a[k] = 1.0f + 0.1f * k;
  for (uint64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kChains; ++k) a[k] = a[k] * 0.999999f + 1e-7f;
  float r = 0;
  for (float x : a) r += x;
  return r;
}

struct Kernel {
  const char* isa;
  int lanes;
  float (*fn)(uint64_t);
};

Kernel best_kernel() {
#ifdef TODAE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512", 16, fma_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {"avx2", 8, fma_avx2};
#endif
  return {"scalar", 1, fma_scalar};
}

std::string cpu_model_name() {
  try {
    std::string info = read_file("/proc/cpuinfo");
    size_t p = info.find("model name");
    if (p != std::string::npos) {
      size_t colon = info.find(':', p), nl = info.find('\n', p);
      if (colon != std::string::npos && colon < nl) {
        std::string s = info.substr(colon + 1, nl - colon - 1);
        size_t b = s.find_first_not_of(' ');
        return b == std::string::npos ? "" : s.substr(b);
      }
    }
  } catch (const Error&) {
  }
  return "unknown";
}

int hw_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

volatile float g_sink;

// Wall time of `threads` threads each running `iters` iterations, started together.
double timed_run(const Kernel& k, int threads, uint64_t iters) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      g_sink = k.fn(iters);
    });
  while (ready.load() < threads) {
  }
  auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double FmaPeak::at(int t) const {
  if (threads.empty()) return 0;
  if (t <= threads.front()) return gflops.front();
  for (size_t i = 1; i < threads.size(); ++i) {
    if (t == threads[i]) return gflops[i];
    if (t < threads[i]) {
      double f = double(t - threads[i - 1]) / double(threads[i] - threads[i - 1]);
      return gflops[i - 1] + f * (gflops[i] - gflops[i - 1]);
    }
  }
  return gflops.back();
}

FmaPeak probe_fma_peak(int max_threads, double seconds) {
  Kernel k = best_kernel();
  FmaPeak p;
  p.cpu = cpu_model_name();
  p.isa = k.isa;
  p.hw_threads = hw_threads();
  if (max_threads <= 0) max_threads = p.hw_threads;
  for (int t = 1; t < max_threads; t *= 2) p.threads.push_back(t);
  p.threads.push_back(max_threads);
  const double flops_per_iter = double(kChains) * k.lanes * 2;
  // Calibrate on one thread so each measurement lasts about `seconds`.
  uint64_t iters = 1 << 16;
  double dt = timed_run(k, 1, iters);
  while (dt < 0.02) {
    iters *= 4;
    dt = timed_run(k, 1, iters);
  }
  iters = std::max<uint64_t>(1, static_cast<uint64_t>(double(iters) * seconds / dt));
  for (int t : p.threads) {
    // Best of two: the first run may pay for frequency ramp-up or a busy neighbour.
    double best = 1e300;
    for (int rep = 0; rep < 2; ++rep) best = std::min(best, timed_run(k, t, iters));
    p.gflops.push_back(flops_per_iter * double(iters) * t / best * 1e-9);
  }
  // More threads can always do at least what fewer did (the extra ones could idle): a dip means a
  // busy neighbour during that probe, not a lower peak.
  for (size_t i = 1; i < p.gflops.size(); ++i) p.gflops[i] = std::max(p.gflops[i], p.gflops[i - 1]);
  return p;
}

std::string default_peak_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) return cat(xdg, "/todae/peak.json");
  const char* home = std::getenv("HOME");
  return cat(home && *home ? home : "/tmp", "/.cache/todae/peak.json");
}

FmaPeak fma_peak(int max_threads, const std::string& cache_path) {
  std::string path = cache_path.empty() ? default_peak_cache_path() : cache_path;
  Kernel k = best_kernel();
  int hw = hw_threads();
  if (max_threads <= 0) max_threads = hw;
  try {
    json j = json::parse(read_file(path));
    FmaPeak p;
    p.cpu = j.at("cpu").get<std::string>();
    p.isa = j.at("isa").get<std::string>();
    p.hw_threads = j.at("hw_threads").get<int>();
    p.threads = j.at("threads").get<std::vector<int>>();
    p.gflops = j.at("gflops").get<std::vector<double>>();
    bool ok = p.cpu == cpu_model_name() && p.isa == k.isa && p.hw_threads == hw && !p.threads.empty() &&
              p.threads.size() == p.gflops.size() && p.threads.back() >= max_threads &&
              std::is_sorted(p.threads.begin(), p.threads.end()) &&
              std::all_of(p.gflops.begin(), p.gflops.end(), [](double g) { return g > 0; });
    if (ok) return p;
  } catch (const std::exception&) {
    // missing, unreadable or stale cache: probe again
  }
  FmaPeak p = probe_fma_peak(std::max(max_threads, hw));
  json j = {{"cpu", p.cpu}, {"isa", p.isa}, {"hw_threads", p.hw_threads}, {"threads", p.threads}, {"gflops", p.gflops}};
  try {
    make_directories(fs::path(path).parent_path().string());
    write_file_atomic(path, j.dump(2) + "\n");
  } catch (const Error&) {
  }
  return p;
}

}  // namespace todae
