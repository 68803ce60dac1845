// Every stage writes byte-identical output for any thread count and chunk size.
#include <gtest/gtest.h>

#include "data_test_util.h"

namespace todae::test {
namespace {

TEST(Determinism, EveryStageAcrossThreadsAndChunks) {
  TempDir t;
  std::string text;
  std::vector<std::string> docs = sample_docs(400);
  for (size_t i = 0; i < docs.size(); ++i)
    text += docs[i] + (i % 7 == 0 ? "\n연락처 010-1234-5678, mail a" + std::to_string(i) + "@example.com" : "") +
            (i % 5 == 0 ? "\nCopyright 2024 Example Corp. All rights reserved." : "") + "\n\n";
  std::string input = t.file("in.txt", text);
  std::string tok = make_tokenizer(t);
  auto run_all = [&](const std::string& dir, int threads, size_t chunk) {
    InputOptions in;
    in.inputs = {input};
    in.chunk_bytes = chunk;
    CommonOptions co = quiet_common(dir + "/ingest", threads);
    co.part_bytes = 5000;  // several parts
    run_ingest(in, co);
    auto next = [&](const std::string& stage) {
      in.inputs = {co.output};
      co.output = dir + "/" + stage;
    };
    next("clean");
    CleanOptions c;
    c.boilerplate_min_docs = 20;
    run_clean(in, c, co);
    next("filter");
    FilterOptions f;
    f.min_chars = 10;
    f.min_words = 2;
    run_filter(in, f, co);
    next("pii");
    run_pii(in, {}, co);
    next("dedup");
    run_dedup(in, {}, co);
    next("mix");
    MixOptions m;
    m.weights = {{"in", 1.5}};
    m.total_bytes = 40000;
    run_mix(in, m, co);
    next("shard");
    ShardOptions s;
    s.tokenizer = tok;
    s.val_fraction = 0.1;
    s.shard_tokens = 3000;
    run_shard(in, s, co);
  };
  run_all(t.path + "/a", 1, 4 << 20);
  run_all(t.path + "/b", 4, 700);
  for (const char* stage : {"ingest", "clean", "filter", "pii", "dedup", "mix", "shard"}) {
    StageReport ra = parse_report(read_file(t.path + "/a/" + stage + "/report.json"), stage);
    StageReport rb = parse_report(read_file(t.path + "/b/" + stage + "/report.json"), stage);
    EXPECT_EQ(ra.outputs, rb.outputs) << stage;
    EXPECT_EQ(ra.docs_out, rb.docs_out) << stage;
    EXPECT_EQ(ra.counts, rb.counts) << stage;
    EXPECT_GT(ra.docs_out, 0u) << stage;
    for (const auto& name : ra.outputs)
      EXPECT_TRUE(read_file(t.path + "/a/" + stage + "/" + name) == read_file(t.path + "/b/" + stage + "/" + name))
          << stage << "/" << name;
  }
  EXPECT_GT(parse_report(read_file(t.path + "/a/clean/report.json"), "c").counts["changed.boilerplate"], 0u);
  EXPECT_GT(parse_report(read_file(t.path + "/a/pii/report.json"), "p").counts["phone"], 0u);
}

}  // namespace
}  // namespace todae::test
