// `todae data run --recipe`: all stages end to end, resume, errors; the report; the CLI.
#include <gtest/gtest.h>

#include <filesystem>

#include "data_test_util.h"

namespace todae::test {
namespace {

struct RecipeFixture : ::testing::Test {
  TempDir t;
  std::string tok;
  void SetUp() override {
    tok = make_tokenizer(t);
    make_directories(t.path + "/in");
    std::string ko, en;
    for (int i = 0; i < 60; ++i)
      ko += cat("문서 ", i, "번입니다. 이 문서는 한국어로 쓰여 있으며 서울과 부산에 대한 이야기를 담고 있습니다. 연락처는 010-1234-",
                1000 + i, "입니다.\n\n");
    for (int i = 0; i < 60; ++i)
      en += cat("Document ", i % 40, " is written in English and it talks about the weather and the sea for a while.\n\n");
    t.file("in/ko_docs.txt", ko);
    t.file("in/en_docs.txt", en);
  }
  std::string recipe(const std::string& extra_filter = "") {
    return cat(R"({
  "description": "test",
  "output": ")", t.path, R"(/run",
  "input": [")", t.path, R"(/in"],
  "threads": 2,
  "stages": [
    {"stage": "ingest"},
    {"stage": "clean", "boilerplate_min_docs": 30},
    {"stage": "filter", "min_chars": 20)", extra_filter, R"(},
    {"stage": "pii"},
    {"stage": "dedup", "threshold": 0.9},
    {"stage": "mix", "weights": {"in/ko_*": 0.5, "in/en_*": 0.5}},
    {"stage": "shard", "tokenizer": ")", tok, R"(", "val_fraction": 0.1}
  ]
})");
  }
};

TEST_F(RecipeFixture, RunsEveryStageAndResumes) {
  std::string path = t.file("recipe.json", recipe());
  EXPECT_EQ(check_recipe(read_file(path), path).size(), 7u);
  run_recipe(path, 0, false, "test");
  std::string run = t.path + "/run";
  for (const char* d : {"01-ingest", "02-clean", "03-filter", "04-pii", "05-dedup", "06-mix", "07-shard"})
    EXPECT_TRUE(file_exists(run + "/" + d + "/report.json")) << d;
  StageReport pii = parse_report(read_file(run + "/04-pii/report.json"), "pii");
  EXPECT_EQ(pii.counts["phone"], 60u);
  StageReport dd = parse_report(read_file(run + "/05-dedup/report.json"), "dedup");
  // English documents 40..59 repeat 0..19 exactly, and all English ones are near-duplicates.
  EXPECT_GE(dd.counts["dropped.exact"] + dd.counts["dropped.near"], 59u);
  ShardManifest m = read_manifest(run + "/07-shard");
  EXPECT_GT(m.train.tokens, 0u);
  EXPECT_EQ(m.sources.count("in/ko_docs"), 1u);  // sources of files in a folder: FOLDER/STEM
  verify_shards(run + "/07-shard");
  std::string rep = format_report({run});
  for (const char* s : {"[ingest]", "[filter]", "[dedup]", "dropped.exact", "phone", "tokens: train", "ko_docs"})
    EXPECT_NE(rep.find(s), std::string::npos) << s << "\n" << rep;
  // A re-run skips everything: the outputs are untouched.
  auto mtime = [&](const std::string& f) { return std::filesystem::last_write_time(run + "/" + f); };
  auto before = mtime("07-shard/manifest.json");
  auto filter_before = mtime("03-filter/report.json");
  run_recipe(path, 0, false, "test");
  EXPECT_EQ(mtime("07-shard/manifest.json"), before);
  // A changed filter option re-runs filter and everything after it, but not clean.
  auto clean_before = mtime("02-clean/report.json");
  path = t.file("recipe.json", recipe(", \"max_digit_ratio\": 0.5"));
  run_recipe(path, 0, false, "test");
  EXPECT_EQ(mtime("02-clean/report.json"), clean_before);
  EXPECT_NE(mtime("03-filter/report.json"), filter_before);
  EXPECT_NE(mtime("07-shard/manifest.json"), before);
}

TEST_F(RecipeFixture, Errors) {
  auto expect = [&](const std::string& text, const std::string& want) {
    try {
      check_recipe(text, "r.json");
      ADD_FAILURE() << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect("{", "r.json: malformed JSON");
  expect(R"({"input": ["a"], "stages": [{"stage": "pii"}]})", "r.json: output: missing");
  expect(R"({"output": "o", "input": [], "stages": [{"stage": "pii"}]})", "input: lists no inputs");
  expect(R"({"output": "o", "input": "a", "stages": []})", "stages: lists no stages");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "sort"}]})", "stages[0].stage: is not one of");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "filter", "min_charz": 3}]})",
         "stages[0].min_charz: unknown filter option");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "filter", "min_chars": "3"}]})",
         "stages[0].min_chars: expected a non-negative integer");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "shard", "tokenizer": "t"}, {"stage": "pii"}]})",
         "shard must be the last stage");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "shard"}]})", "stages[0].tokenizer: missing");
  expect(R"({"output": "o", "input": "a", "stages": [{"stage": "mix", "weights": {"a": "x"}}]})", "stages[0].weights.a: expected a number");
  expect(R"({"output": "o", "input": "a", "stagez": []})", "stagez: unknown recipe field");
  expect(R"({"output": "o", "input": "a", "input_options": {"fromat": "text"}, "stages": [{"stage": "pii"}]})",
         "input_options.fromat: unknown input option");
  // A recipe output folder with foreign files is refused.
  make_directories(t.path + "/busy");
  t.file("busy/notes.txt", "x");
  std::string r = recipe();
  r.replace(r.find(t.path + "/run"), t.path.size() + 4, t.path + "/busy");
  std::string path = t.file("busy.json", r);
  EXPECT_THROW(run_recipe(path, 1, false, ""), Error);
}

TEST_F(RecipeFixture, Cli) {
  int rc;
  std::string path = t.file("recipe.json", recipe());
  std::string o = run_cmd(cat(TODAE_BIN, " data run --recipe ", path, " --check"), &rc);
  EXPECT_EQ(rc, 0) << o;
  EXPECT_NE(o.find("ingest -> clean -> filter -> pii -> dedup -> mix -> shard"), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data run --recipe ", path, " --quiet"), &rc);
  EXPECT_EQ(rc, 0) << o;
  o = run_cmd(cat(TODAE_BIN, " data report ", t.path, "/run"), &rc);
  EXPECT_EQ(rc, 0) << o;
  EXPECT_NE(o.find("[shard]"), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data filter --input ", t.path, "/in --output ", t.path, "/f --quiet --set min_chars=10 --disable stopwords,short_lines"), &rc);
  EXPECT_EQ(rc, 0) << o;
  EXPECT_NE(o.find("filter: 120 -> "), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data filter --input ", t.path, "/in --output ", t.path, "/f --quiet --disable nope"), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(o.find("no rule 'nope'"), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data mix --input ", t.path, "/in --output ", t.path, "/m --quiet --weight ko"), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(o.find("expected GROUP=WEIGHT"), std::string::npos) << o;
  for (const char* sub : {"ingest", "clean", "filter", "pii", "dedup", "mix", "shard", "run", "report", "verify"}) {
    o = run_cmd(cat(TODAE_BIN, " data ", sub, " --help"), &rc);
    EXPECT_EQ(rc, 0) << sub;
  }
}

}  // namespace
}  // namespace todae::test
