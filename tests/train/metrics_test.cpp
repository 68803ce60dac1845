#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "formats/formats_test_util.h"
#include "train/train.h"

using namespace todae;
using json = nlohmann::json;
using todae::test::error_of;
using todae::test::TmpDir;

TEST(Metrics, OneObjectPerLineFlushedAsWritten) {
  TmpDir dir;
  std::string p = dir / "metrics.jsonl";
  MetricsLog log(p);
  for (int s = 1; s <= 3; ++s)
    log.write({{"step", s},
               {"loss", 5.0 / s},
               {"lr", 1e-3},
               {"grad_norm", 0.5},
               {"tokens_per_s", 1000.0},
               {"mfu", 0.4},
               {"joules", 10.0 * s},
               {"energy", "estimated"}});
  // Readable by another process right away: nothing is buffered.
  std::string text = read_file(p);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  auto rows = read_metrics(p);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2]["step"], 3);
  EXPECT_DOUBLE_EQ(rows[1]["loss"].get<double>(), 2.5);
  log.write({{"step", 4}, {"loss", std::nan("")}});  // NaN has no JSON spelling: null
  EXPECT_TRUE(read_metrics(p).back()["loss"].is_null());
}

TEST(Metrics, ResumeDropsRowsAfterTheCheckpointAndTornLines) {
  TmpDir dir;
  std::string p = dir / "metrics.jsonl";
  {
    MetricsLog log(p);
    for (int s = 1; s <= 6; ++s) log.write({{"step", s}, {"loss", 1.0 * s}});
    log.write({{"step", 4}, {"val_loss", 3.5}});  // an eval row for step 4 after step 6? still kept
  }
  // A crash in the middle of a write.
  std::string text = read_file(p);
  write_file_atomic(p, text + "{\"step\": 5, \"loss\": 1e999}\n{\"step\": 7, \"lo");  // no double holds 1e999
  {
    MetricsLog log(p, /*resume_step=*/4);
    log.write({{"step", 5}, {"loss", 50.0}});
  }
  auto rows = read_metrics(p);
  std::vector<int> steps;
  for (auto& r : rows) steps.push_back(r["step"]);
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 4, 5}));
  EXPECT_EQ(rows.back()["loss"], 50.0);
  std::string after = read_file(p);
  EXPECT_EQ(after.back(), '\n');
  // A fresh start truncates; resuming with no file creates one.
  { MetricsLog log(p); }
  EXPECT_EQ(read_file(p), "");
  { MetricsLog log(dir / "new.jsonl", 10); }
  EXPECT_TRUE(file_exists(dir / "new.jsonl"));
  EXPECT_NE(error_of([&] { MetricsLog log(dir / "missing/m.jsonl"); }).find("cannot write " + dir / "missing/m.jsonl"),
            std::string::npos);
}

TEST(Metrics, LossCurvePng) {
  std::string out;
  if (todae::test::run_command("gnuplot --version", &out) != 0) GTEST_SKIP() << "gnuplot not installed";
  TmpDir dir;
  std::string p = dir / "metrics.jsonl";
  {
    MetricsLog log(p);
    for (int s = 1; s <= 50; ++s) {
      json row = {{"step", s}, {"loss", 8.0 * std::exp(-s / 20.0) + 2.0}};
      if (s % 10 == 0) row["val_loss"] = 8.0 * std::exp(-s / 20.0) + 2.2;
      log.write(row);
    }
  }
  std::string png = dir / "it's loss.png";  // a quote in the name survives gnuplot's quoting
  plot_loss(p, png);
  std::string bytes = read_file(png);
  ASSERT_GT(bytes.size(), 1000u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  for (const auto& e : std::filesystem::directory_iterator(dir.path))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  {
    MetricsLog log(p);
    log.write({{"step", 1}, {"lr", 0.1}});
  }
  EXPECT_NE(error_of([&] { plot_loss(p, dir / "x.png"); }).find("no rows with a numeric"), std::string::npos);
}
