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

TEST(Strings, PrintableEscapesWhatATerminalLineCannotShow) {
  EXPECT_EQ(printable("plain 한국어"), "plain 한국어");
  EXPECT_EQ(printable(std::string("a\nb\0c", 5)), "a\\x0ab\\x00c");
  EXPECT_EQ(printable("it's a\\b"), "it\\x27s a\\x5cb");
  // Invalid UTF-8: stray continuation, truncated sequence, overlong '/', a surrogate, past U+10FFFF.
  EXPECT_EQ(printable("\x80x\xed\x95"), "\\x80x\\xed\\x95");
  EXPECT_EQ(printable("\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80"), "\\xc0\\xaf \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80");
  EXPECT_EQ(printable("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");  // an emoji is fine
  EXPECT_EQ(printable(std::string(300, 'z'), 10), "zzzzzzzzzz...(300 bytes)");
}
