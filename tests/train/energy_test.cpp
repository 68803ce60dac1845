#include "base/energy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/formats_test_util.h"

using namespace todae;
using todae::test::TmpDir;

// Spins until this process has used `seconds` of CPU time (wall time varies with the load).
static void burn_cpu(double seconds) {
  double t0 = process_cpu_seconds();
  volatile double x = 0;
  while (process_cpu_seconds() - t0 < seconds) x = x + 1.0;
}

TEST(Energy, EstimateFromCpuTime) {
  EnergyOptions opt;
  opt.allow_rapl = false;
  opt.watts_per_core = 20;
  EnergyMeter e(opt);
  EXPECT_FALSE(e.measured());
  EXPECT_STREQ(e.label(), "estimated");
  EXPECT_EQ(e.source(), "CPU time × 20 W/core");
  double c0 = process_cpu_seconds();
  burn_cpu(0.3);
  double j = e.joules();
  double cpu = process_cpu_seconds() - c0;
  EXPECT_GE(cpu, 0.3);
  EXPECT_GT(j, 20 * 0.29);
  EXPECT_LE(j, 20 * (cpu + 0.05));
  EXPECT_GE(e.joules(), j);  // never goes back
}

TEST(Energy, RaplCountersWithWraparound) {
  TmpDir root;
  auto zone = [&](const std::string& name, const std::string& label, uint64_t uj, uint64_t max) {
    std::filesystem::create_directories(root / name);
    write_file_atomic(root / (name + "/energy_uj"), std::to_string(uj) + "\n");
    write_file_atomic(root / (name + "/max_energy_range_uj"), std::to_string(max) + "\n");
    write_file_atomic(root / (name + "/name"), label + "\n");
  };
  zone("intel-rapl:0", "package-0", 1'000'000, 10'000'000);
  zone("intel-rapl:1", "package-1", 5'000'000, 10'000'000);
  zone("intel-rapl:0:0", "core", 123, 10'000'000);  // a sub-zone: part of package-0, not added
  EnergyOptions opt;
  opt.powercap_root = root.path;
  EnergyMeter e(opt);
  ASSERT_TRUE(e.measured());
  EXPECT_STREQ(e.label(), "measured");
  EXPECT_EQ(e.source(), "RAPL intel-rapl:0 (package-0) intel-rapl:1 (package-1)");
  EXPECT_DOUBLE_EQ(e.joules(), 0.0);
  zone("intel-rapl:0", "package-0", 3'500'000, 10'000'000);  // +2.5 J
  zone("intel-rapl:1", "package-1", 9'000'000, 10'000'000);  // +4 J
  EXPECT_DOUBLE_EQ(e.joules(), 6.5);
  zone("intel-rapl:1", "package-1", 1'000'000, 10'000'000);  // wrapped: +1 J to the top, +1 J after
  EXPECT_DOUBLE_EQ(e.joules(), 8.5);
  std::filesystem::remove(root / "intel-rapl:0/energy_uj");  // unreadable later: keeps its total
  EXPECT_DOUBLE_EQ(e.joules(), 8.5);
  EnergyOptions none;
  none.powercap_root = root / "missing";
  EXPECT_FALSE(EnergyMeter(none).measured());
}

TEST(Energy, FmaPeakProbeAndCache) {
  FmaPeak p = probe_fma_peak(2, 0.02);
  ASSERT_EQ(p.threads, (std::vector<int>{1, 2}));
  EXPECT_GT(p.gflops[0], 0.5);  // any CPU of this century does more than 0.5 GFLOP/s on one core
  EXPECT_FALSE(p.isa.empty());
  std::printf("FMA peak (%s, %s): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n", p.cpu.c_str(), p.isa.c_str(),
              p.gflops[0], p.gflops[1]);

  FmaPeak q;
  q.threads = {1, 2, 4};
  q.gflops = {10, 20, 36};
  EXPECT_DOUBLE_EQ(q.at(1), 10);
  EXPECT_DOUBLE_EQ(q.at(3), 28);
  EXPECT_DOUBLE_EQ(q.at(8), 36);
  EXPECT_DOUBLE_EQ(q.at(0), 10);

  TmpDir dir;
  std::string cache = dir / "sub/peak.json";
  // A cache written for this machine is used as is: plant numbers no probe would give.
  FmaPeak first = fma_peak(1, cache);
  ASSERT_TRUE(file_exists(cache));
  auto j = nlohmann::json::parse(read_file(cache));
  j["gflops"] = std::vector<double>(j["gflops"].size(), 12345.0);
  write_file_atomic(cache, j.dump());
  EXPECT_EQ(fma_peak(1, cache).at(1), 12345.0);
  // A cache from another CPU is probed again.
  j["cpu"] = "some other cpu";
  write_file_atomic(cache, j.dump());
  EXPECT_NE(fma_peak(1, cache).at(1), 12345.0);
  write_file_atomic(cache, "not json");
  EXPECT_GT(fma_peak(1, cache).at(1), 0.5);
}
