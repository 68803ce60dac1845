// `todae eval report`: reading results.json / metrics.jsonl / run folders, the delta and its
// 2-standard-error marker, number formatting, and the HTML being one self-contained file whose
// images are PNGs in data: URIs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "base/base.h"
#include "eval/eval.h"
#include "text/test_util.h"

using namespace todae;
using namespace todae::eval;
using ojson = nlohmann::ordered_json;

namespace {

std::string put(const test::TempDir& d, const std::string& name, const std::string& text) {
  const std::string p = d.path + "/" + name;
  make_directories(std::filesystem::path(p).parent_path().string());
  write_file_atomic(p, text);
  return p;
}

std::string results(double acc, double acc_se, double bpb, const std::string& model_extra = "") {
  return cat(R"({"results": {"kobest_boolq": {"metrics": {"acc": {"value": )", acc, R"(, "stderr": )", acc_se,
             R"(, "higher_is_better": true}, "acc_norm": {"value": 0.5, "stderr": 0.05, "higher_is_better": true}},
      "n": 100, "seconds": 1.5, "joules": 20.0, "config": {"output_type": "multiple_choice", "num_fewshot": 0}},
    "bpb": {"metrics": {"bits_per_byte": {"value": )", bpb, R"(, "stderr": 0.01, "higher_is_better": false}},
      "n": 10, "seconds": 0.5, "joules": 5.0}},
  "model": {"path": "/nonexistent/m", "format": "hf")", model_extra, R"(}, "created_unix": 1})");
}

std::string b64decode(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const int v = val(c);
    if (v < 0) ADD_FAILURE() << "not base64: " << c;
    acc = acc << 6 | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace

TEST(Report, DeltaAndTwoStandardErrors) {
  ReportCell base{0.5, 0.02, true};
  ReportDelta d = report_delta(base, {0.6, 0.03, true});
  EXPECT_NEAR(d.delta, 0.1, 1e-12);
  EXPECT_NEAR(d.se, std::sqrt(0.02 * 0.02 + 0.03 * 0.03), 1e-12);  // 0.0361: 2 se = 0.0721 < 0.1
  EXPECT_TRUE(d.significant);
  EXPECT_TRUE(d.better);
  d = report_delta(base, {0.57, 0.03, true});  // 0.07 < 0.0721
  EXPECT_FALSE(d.significant);
  EXPECT_TRUE(d.better);
  d = report_delta(base, {0.4, 0.03, true});
  EXPECT_TRUE(d.significant);
  EXPECT_FALSE(d.better);
  // Lower is better: a drop in bits per byte is an improvement.
  d = report_delta({3.0, 0.05, false}, {2.7, 0.05, false});
  EXPECT_TRUE(d.significant);
  EXPECT_TRUE(d.better);
  // No uncertainty known (n < 2 gives stderr 0): never flagged.
  d = report_delta({0.0, 0.0, true}, {1.0, 0.0, true});
  EXPECT_FALSE(d.significant);
}

TEST(Report, Formatting) {
  EXPECT_EQ(format_score(0.523412), "0.5234");
  EXPECT_EQ(format_score(45.2134), "45.21");
  EXPECT_EQ(format_score(123.45), "123.5");
  EXPECT_EQ(format_score(3363429129.96), "3.36e+09");
  EXPECT_EQ(format_score(NAN), "—");
  EXPECT_EQ(format_score_like(0.012345, 0.52), "0.0123");
  EXPECT_EQ(format_score_like(1.2345, 45.2), "1.23");
  EXPECT_EQ(todae::base64_encode(""), "");
  EXPECT_EQ(todae::base64_encode("f"), "Zg==");
  EXPECT_EQ(todae::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(todae::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(todae::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64decode(todae::base64_encode(std::string("\x89PNG\r\n\x1a\n\0\xff", 10))), std::string("\x89PNG\r\n\x1a\n\0\xff", 10));
}

TEST(Report, ParsesResultsJson) {
  ReportRow r = parse_results_json(results(0.61, 0.049, 3.2, R"(, "step": 30, "tokens": 30720, "joules": 18.5,
      "checkpoint": "/runs/ko-tiny/step-30")"),
                                   "r.json");
  EXPECT_EQ(r.label, "ko-tiny/step-30");
  EXPECT_EQ(r.run, "/runs/ko-tiny");
  EXPECT_EQ(r.step, 30);
  EXPECT_EQ(r.tokens, 30720);
  EXPECT_EQ(r.joules, 18.5);
  ASSERT_EQ(r.keys, (std::vector<std::string>{"kobest_boolq/acc", "kobest_boolq/acc_norm", "bpb/bits_per_byte"}));
  EXPECT_EQ(r.cells["kobest_boolq/acc"].value, 0.61);
  EXPECT_EQ(r.cells["kobest_boolq/acc"].stderr, 0.049);
  EXPECT_FALSE(r.cells["bpb/bits_per_byte"].higher_is_better);
  EXPECT_EQ(r.tasks["kobest_boolq"]["n"], 100);

  // Without a training record: the model's name; the step from RUN/eval/step-N.
  r = parse_results_json(results(0.5, 0.05, 3.0), "/x/run7/eval/step_000100/results.json");
  EXPECT_EQ(r.step, 100);
  EXPECT_EQ(r.run, "/x/run7");
  EXPECT_EQ(r.label, "run7/step-100");
  r = parse_results_json(results(0.5, 0.05, 3.0, R"(, "adapter": "ko-lora")"), "/x/a/results.json");
  EXPECT_EQ(r.label, "m + ko-lora");
  EXPECT_TRUE(std::isnan(r.step));
}

TEST(Report, ResultsJsonErrorsNameFileAndField) {
  auto msg = [](const std::string& text) {
    try {
      parse_results_json(text, "r.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg("{\"a\": 1"), "r.json: not JSON (a results.json from todae eval was expected)");
  EXPECT_EQ(msg(R"({"step": 1, "loss": 2})"), "r.json: results: missing or not an object (not a results.json from todae eval)");
  EXPECT_EQ(msg(R"({"results": {"boolq": {"n": 3}}})"), "r.json: results.boolq.metrics: missing or not an object");
  EXPECT_EQ(msg(R"({"results": {"boolq": {"metrics": {"acc": {"value": "high"}}}}})"),
            "r.json: results.boolq.metrics.acc.value: missing or not a number");
  EXPECT_EQ(msg(R"({"results": {"boolq": {"metrics": {"acc": {"value": 1, "stderr": "x"}}}}})"),
            "r.json: results.boolq.metrics.acc.stderr: not a number");
}

TEST(Report, ReadsLmEvalResults) {
  ReportRow r = parse_results_json(R"({"results": {"kobest_boolq": {"alias": "kobest_boolq", "acc,none": 0.7,
      "acc_stderr,none": 0.02, "f1,none": 0.6, "f1_stderr,none": "N/A"},
      "gsm8k": {"exact_match,strict-match": 0.1, "exact_match_stderr,strict-match": 0.01}},
    "higher_is_better": {"kobest_boolq": {"acc": true, "f1": true}, "gsm8k": {"exact_match": true}},
    "n-samples": {"kobest_boolq": {"original": 1404, "effective": 1404}},
    "config": {"model": "hf", "model_args": "pretrained=Qwen/Qwen3-0.6B"}})",
                                   "lm/results_2025.json");
  EXPECT_EQ(r.cells["kobest_boolq/acc"].value, 0.7);
  EXPECT_EQ(r.cells["kobest_boolq/acc"].stderr, 0.02);
  EXPECT_EQ(r.cells["kobest_boolq/f1"].stderr, 0);
  EXPECT_EQ(r.cells["gsm8k/exact_match,strict-match"].value, 0.1);
  EXPECT_EQ(r.tasks["kobest_boolq"]["n"], 1404);
  EXPECT_EQ(r.label, "Qwen3-0.6B");
}

TEST(Report, MetricsJsonlPoints) {
  // Pretraining rows (running "tokens"), a second process after a resume whose joules counter
  // started again from 0, eval scores on separate rows, and a torn last line.
  const std::string log =
      R"({"step": 10, "loss": 6.0, "tokens": 1000, "joules": 50}
{"step": 10, "eval/arithmetic/exact_match,extract": 0.1, "eval/arithmetic/exact_match,extract_stderr": 0.05}
{"step": 20, "loss": 5.5, "tokens": 2000, "joules": 100}
{"step": 21, "loss": 5.4, "tokens": 2100, "joules": 4}
{"step": 30, "loss": 5.0, "tokens": 3000, "joules": 40, "eval/bpb/bits_per_byte": 3.1}
{"step": 40, "eval/bpb/bits_per_byte": 2.)";
  std::vector<ReportPoint> p = parse_metrics_jsonl(log, "/r");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].series, "arithmetic/exact_match,extract");
  EXPECT_EQ(p[0].step, 10);
  EXPECT_EQ(p[0].tokens, 1000);
  EXPECT_EQ(p[0].joules, 50);
  EXPECT_EQ(p[0].value, 0.1);
  EXPECT_EQ(p[0].stderr, 0.05);
  EXPECT_EQ(p[1].series, "bpb/bits_per_byte");
  EXPECT_EQ(p[1].tokens, 3000);
  EXPECT_EQ(p[1].joules, 140);  // 100 before the resume + 40 since
  EXPECT_EQ(p[1].run, "/r");

  // Fine-tuning logs each step's tokens: summed.
  p = parse_metrics_jsonl(R"({"step": 1, "step_tokens": 64, "joules": 1}
{"step": 2, "step_tokens": 64, "joules": 2, "eval/copa/acc": 0.5}
)",
                          "/f");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].tokens, 128);
}

TEST(Report, TrainingInfoOfRunAndCheckpoint) {
  test::TempDir d;
  put(d, "run/metrics.jsonl", R"({"step": 10, "tokens": 1024, "joules": 7.5, "energy": "estimated"}
{"step": 20, "tokens": 2048, "joules": 15.0, "energy": "estimated"}
)");
  put(d, "run/step-10/state.json", R"({"format": "todae-checkpoint", "step": 10, "metrics": {}})");
  put(d, "run/step-20/state.json", R"({"format": "todae-checkpoint", "step": 20, "metrics": {"tokens": 2048, "joules": 16.25}})");
  put(d, "run/latest", "step-20\n");
  const std::string run = std::filesystem::canonical(d.path + "/run").string();
  ojson ti = training_info(d.path + "/run/step-10");
  EXPECT_EQ(ti["run"], run);
  EXPECT_EQ(ti["checkpoint"], run + "/step-10");
  EXPECT_EQ(ti["step"], 10);
  EXPECT_EQ(ti["tokens"], 1024);  // from metrics.jsonl: the checkpoint recorded none
  EXPECT_EQ(ti["joules"], 7.5);
  EXPECT_EQ(ti["energy"], "estimated");
  ti = training_info(d.path + "/run");  // the run folder: its latest checkpoint
  EXPECT_EQ(ti["step"], 20);
  EXPECT_EQ(ti["joules"], 16.25);  // the checkpoint's own record wins
  EXPECT_EQ(ti["checkpoint"], run + "/step-20");
  EXPECT_TRUE(training_info(d.path + "/nothing.gguf").empty());
  put(d, "hf/config.json", "{}");
  EXPECT_TRUE(training_info(d.path + "/hf").empty());
}

TEST(Report, LoadsAFolderInTrainingOrder) {
  test::TempDir d;
  // Checkpoints evaluated by --watch (step-100 sorts before step-20 as a name) and a metrics.jsonl
  // with in-training scores, one of them at a step a results.json already has.
  put(d, "run/eval/step-100/results.json", results(0.7, 0.04, 2.5, R"(, "step": 100, "tokens": 10000, "joules": 90)"));
  put(d, "run/eval/step-20/results.json", results(0.5, 0.05, 3.0, R"(, "step": 20, "tokens": 2000, "joules": 20)"));
  put(d, "run/metrics.jsonl", R"({"step": 20, "tokens": 2000, "joules": 20, "eval/kobest_boolq/acc": 0.49}
{"step": 60, "tokens": 6000, "joules": 55, "eval/kobest_boolq/acc": 0.6, "eval/kobest_boolq/acc_stderr": 0.05}
)");
  ReportData r = load_report({d.path});
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].label, "run/step-20");
  EXPECT_EQ(r.rows[1].label, "run/step-100");
  EXPECT_EQ(r.columns, (std::vector<std::string>{"kobest_boolq/acc", "kobest_boolq/acc_norm", "bpb/bits_per_byte"}));
  EXPECT_EQ(r.inputs.size(), 3u);
  int acc_points = 0;
  for (const ReportPoint& p : r.points)
    if (p.series == "kobest_boolq/acc") {
      acc_points++;
      if (p.step == 20) {
        EXPECT_EQ(p.value, 0.5);  // the results.json's, not the log's 0.49
      }
      if (p.step == 60) {
        EXPECT_EQ(p.joules, 55);
      }
    }
  EXPECT_EQ(acc_points, 3);  // steps 20, 60, 100

  EXPECT_THROW(load_report({d.path + "/missing"}), Error);
  put(d, "empty/readme.txt", "x");
  try {
    load_report({d.path + "/empty"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no results.json or metrics.jsonl"), std::string::npos) << e.what();
  }
}

TEST(Report, HtmlIsOneSelfContainedFile) {
  test::TempDir d;
  put(d, "run/eval/step-20/results.json", results(0.5, 0.02, 3.0, R"(, "step": 20, "tokens": 2000, "joules": 20)"));
  put(d, "run/eval/step-100/results.json", results(0.62, 0.03, 2.9995, R"(, "step": 100, "tokens": 10000, "joules": 90)"));
  put(d, "base/results.json", results(0.55, 0.02, 3.5, R"(, "path": "/models/한국어-기준")"));
  ReportData r = load_report({d.path + "/run", d.path + "/base/results.json"});
  ASSERT_EQ(r.rows.size(), 3u);
  std::string warning;
  std::vector<ReportPlot> plots = report_plots(r, &warning);
  if (plots.empty() && warning.find("cannot run gnuplot") != std::string::npos) GTEST_SKIP() << warning;
  ASSERT_EQ(warning, "");
  // accuracy and bits per byte, each vs step, tokens and joules
  ASSERT_EQ(plots.size(), 6u);
  EXPECT_EQ(plots[0].name, "score_vs_step_accuracy");
  const std::string html = report_html(r, plots);

  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(html.find("Noto Sans CJK KR"), std::string::npos);
  EXPECT_NE(html.find("평가 보고서"), std::string::npos);
  // Nothing fetched: no scripts, no style sheets, no http(s) or relative references.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  // (A scan, not std::regex: its recursion overflows the stack on 50 kB of base64.)
  int refs = 0, decoded = 0;
  for (const char* attr : {"src=", "href=", "src =", "href ="}) {
    for (size_t at = html.find(attr); at != std::string::npos; at = html.find(attr, at + 1)) {
      refs++;
      const std::string head = html.substr(at, 60);
      EXPECT_EQ(head.rfind(std::string(attr) + "\"data:image/png;base64,", 0), 0u) << head;
    }
  }
  EXPECT_EQ(refs, 6);
  for (size_t at = html.find("<img "); at != std::string::npos; at = html.find("<img ", at + 1)) {
    const size_t b64 = html.find("base64,", at) + 7, end = html.find('"', b64);
    ASSERT_NE(end, std::string::npos);
    const std::string png = b64decode(html.substr(b64, end - b64));
    ASSERT_GT(png.size(), 1000u);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
    decoded++;
  }
  EXPECT_EQ(decoded, 6);

  // The table: the second row's acc is 0.12 above the baseline, more than 2 × √(0.02² + 0.03²) =
  // 0.072: marked better; its bits per byte moved by 0.0005, well inside the noise: not marked.
  EXPECT_NE(html.find("class=\"d sig better\""), std::string::npos);
  EXPECT_NE(html.find("▲ +0.1200"), std::string::npos);
  EXPECT_NE(html.find("-0.0005</div>"), std::string::npos);
  EXPECT_EQ(html.find("\">▼ "), std::string::npos);
  // The third row's bits per byte is 0.5 higher (worse: lower is better), far outside 2 × 0.014.
  const size_t worse = html.find("class=\"d sig worse\"");
  ASSERT_NE(worse, std::string::npos);
  EXPECT_NE(html.substr(worse, 200).find("▲ +0.5000</div>"), std::string::npos) << html.substr(worse, 200);
  EXPECT_NE(html.find(">baseline<"), std::string::npos);
  EXPECT_NE(html.find("run/step-100"), std::string::npos);
  EXPECT_NE(html.find("한국어-기준"), std::string::npos);  // a row without a step: no point, a row
}

TEST(Report, MarkdownLinksThePlots) {
  test::TempDir d;
  put(d, "a/results.json", results(0.5, 0.02, 3.0, R"(, "step": 20)"));
  put(d, "b/results.json", results(0.4, 0.02, 3.5, R"(, "step": 40)"));
  ReportData r = load_report({d.path + "/a/results.json", d.path + "/b/results.json"});
  ASSERT_EQ(r.rows.size(), 2u);
  std::vector<ReportPlot> plots = {{"score_vs_step_accuracy", "accuracy vs step", "png", "accuracy", "step"}};
  const std::string md = report_markdown(r, plots, "report_files");
  EXPECT_NE(md.find("| model | step | kobest\\_boolq/acc | kobest\\_boolq/acc\\_norm | bpb/bits\\_per\\_byte |"), std::string::npos) << md;
  EXPECT_NE(md.find("0.4000 ± 0.0200 (**-0.1000 ▼** worse)"), std::string::npos) << md;
  EXPECT_NE(md.find("3.5000 ± 0.0100 (**+0.5000 ▲** worse)"), std::string::npos) << md;
  EXPECT_NE(md.find("![accuracy vs step](report_files/score_vs_step_accuracy.png)"), std::string::npos);

  // write_report: the .md, and its plots as files beside it.
  const std::string out = d.path + "/rep/report.md";
  write_report(r, out, "md");
  ASSERT_TRUE(file_exists(out));
  EXPECT_TRUE(file_exists(d.path + "/rep/report_files/score_vs_step_accuracy.png"));
  EXPECT_EQ(read_file(d.path + "/rep/report_files/score_vs_step_accuracy.png").substr(1, 3), "PNG");
}
