// todae base: energy and the machine's arithmetic peak, for the joules and MFU every run reports.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace todae {

// Joules used since construction. Measured from RAPL package counters
// (/sys/class/powercap/intel-rapl:N/energy_uj, whole package, all processes) when readable;
// otherwise estimated as this process's CPU time × watts per busy core. Always say which
// (label()), since the two are not comparable.
struct EnergyOptions {
  double watts_per_core = 0;  // <= 0: $TODAE_WATTS_PER_CORE, else 15 W
  std::string powercap_root = "/sys/class/powercap";
  bool allow_rapl = true;  // false forces the estimate
};

struct EnergyMeter {
  explicit EnergyMeter(const EnergyOptions& opt = {});
  // Thread-safe. Call at least every few minutes when measured: counters wrap (at
  // max_energy_range_uj, often ~262 kJ) and one wrap between reads is all that can be undone.
  double joules();
  bool measured() const { return !zones.empty(); }
  const char* label() const { return measured() ? "measured" : "estimated"; }
  // What the number is: "RAPL intel-rapl:0 (package-0)" or "CPU time × 15 W/core".
  std::string source() const;

  struct Zone {
    std::string path;  // .../energy_uj
    std::string name;
    uint64_t max_uj = 0, last_uj = 0;
    double total_j = 0;
  };
  std::vector<Zone> zones;
  double watts_per_core = 15;
  double cpu_start_s = 0;
  std::mutex mu;
};

// This process's CPU time (user + system, all threads), in seconds.
double process_cpu_seconds();

// Peak f32 FMA throughput, probed with a register-only loop (no memory traffic) on 1..N threads,
// with the widest vector unit the CPU has (AVX-512, AVX2+FMA or scalar).
struct FmaPeak {
  std::string cpu;  // /proc/cpuinfo model name
  std::string isa;  // "avx512", "avx2", "scalar"
  int hw_threads = 0;
  std::vector<int> threads;    // thread counts probed, ascending
  std::vector<double> gflops;  // f32 GFLOP/s at each (an FMA counts as 2)
  // GFLOP/s at t threads: the probed value, or interpolated between probes, or the last one beyond.
  double at(int t) const;
};

// Probes now: thread counts 1, 2, 4, ... up to max_threads and max_threads itself, each for about
// `seconds`. max_threads <= 0 means the hardware concurrency.
FmaPeak probe_fma_peak(int max_threads = 0, double seconds = 0.2);
// The cached probe ($XDG_CACHE_HOME or ~/.cache, todae/peak.json) when it was made on this CPU,
// ISA and core count and covers max_threads; otherwise probes and rewrites the cache (a cache that
// cannot be written is skipped silently: the probe is only a few seconds).
FmaPeak fma_peak(int max_threads = 0, const std::string& cache_path = "");
std::string default_peak_cache_path();

}  // namespace todae
