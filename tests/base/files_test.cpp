#include <gtest/gtest.h>

#include <sys/stat.h>

#include "base/base.h"

using namespace todae;

TEST(Files, AtomicWriteReplacesWholeFileAndLeavesNoTemp) {
  char tmpl[] = "/tmp/todae-files-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string p = dir + "/out.json";
  write_file_atomic(p, "first");
  write_file_atomic(p, "second, longer");
  EXPECT_EQ(read_file(p), "second, longer");
  EXPECT_EQ(list_input_files({dir}).size(), 1u);  // no temp file left behind
  MappedFile m(p);
  EXPECT_EQ(m.view(), "second, longer");
  EXPECT_THROW(write_file_atomic(dir + "/missing/x", "y"), Error);
  EXPECT_EQ(read_file(p), "second, longer");
  EXPECT_THROW(read_file(dir + "/nope"), Error);
  EXPECT_THROW(read_file(dir), Error);
  std::system(("rm -rf " + dir).c_str());
}

TEST(Threads, ParallelForRunsEveryIndexAndRethrows) {
  std::vector<int> hits(1000, 0);
  parallel_for(hits.size(), 4, [&](size_t i) { hits[i]++; });
  for (int h : hits) EXPECT_EQ(h, 1);
  EXPECT_THROW(parallel_for(10, 2, [](size_t i) {
                 if (i == 7) fail("boom");
               }),
               Error);
}
