// The hand-written Korean pre-tokenizer must cut text exactly where its regex (what tokenizer.json
// carries for other tools) cuts it.
#include "text/pretokenize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "text/text.h"
#include "text/unicode.h"

using namespace todae;

static std::vector<std::string> fast(std::string_view s, int words = 1) {
  std::vector<Span> spans;
  pretokenize_korean(s, words, &spans);
  std::vector<std::string> out;
  for (auto sp : spans) out.emplace_back(s.substr(sp.begin, sp.end - sp.begin));
  return out;
}

static std::vector<std::string> slow(std::string_view s, int words = 1) {
  static Regex re1 = compile_regex(korean_pretokenizer_regex(), "test");
  static Regex re4 = compile_regex(superword_pretokenizer_regex(4), "test");
  std::vector<Span> spans;
  regex_find_all(words == 1 ? re1 : re4, s, &spans);
  std::vector<std::string> out;
  size_t pos = 0;
  for (auto sp : spans) {
    EXPECT_EQ(sp.begin, pos) << "regex left a gap in: " << s;
    out.emplace_back(s.substr(sp.begin, sp.end - sp.begin));
    pos = sp.end;
  }
  return out;
}

TEST(KoreanPretokenizer, KeepsHangulWordsWholeAndSplitsScripts) {
  using V = std::vector<std::string>;
  EXPECT_EQ(fast("학교에서 공부했다"), (V{"학교에서", " 공부했다"}));
  EXPECT_EQ(fast("GPU를 샀다"), (V{"GPU", "를", " 샀다"}));
  EXPECT_EQ(fast("漢字를"), (V{"漢字", "를"}));
  EXPECT_EQ(fast("1234567원"), (V{"123", "456", "7", "원"}));
  EXPECT_EQ(fast("I'll go"), (V{"I", "'ll", " go"}));
  EXPECT_EQ(fast("a  b\n\n  c"), (V{"a", " ", " b", "\n\n", " ", " c"}));
  EXPECT_EQ(fast("끝!!\n다음"), (V{"끝", "!!\n", "다음"}));
  EXPECT_EQ(fast("할 수 있습니다", 4), (V{"할 수 있습니다"}));
  EXPECT_EQ(fast("할 수 있습니다. 그러나", 4), (V{"할 수 있습니다", ".", " 그러나"}));
  EXPECT_EQ(fast("가 나 다 라 마", 4), (V{"가 나 다 라", " 마"}));
  EXPECT_EQ(fast("can be used 할 수", 4), (V{"can", " be", " used", " 할 수"}));  // superwords are Korean only
  EXPECT_EQ(fast("a\xFF\xFE" "b"), (V{"a", "\xFF\xFE", "b"}));
}

// PCRE2 10.42 (Debian 12) knows Unicode 14, utf8proc 2.8 Unicode 15: code points whose class
// differs between the two are left out (JavaScript, the reference, follows the newer tables).
static bool same_class_in_pcre2(uint32_t cp) {
  static Regex l = compile_regex("^[\\p{L}\\p{M}]$", "t"), n = compile_regex("^\\p{N}$", "t"), sp = compile_regex("^\\s$", "t");
  std::string c;
  unicode::append_utf8(c, cp);
  std::vector<Span> m;
  auto hit = [&](const Regex& r) {
    regex_find_all(r, c, &m);
    return !m.empty();
  };
  auto k = unicode::classify(cp);
  return hit(l) == (k == unicode::kLetter || k == unicode::kMark) && hit(n) == (k == unicode::kNumber) &&
         hit(sp) == (k == unicode::kSpace);
}

TEST(KoreanPretokenizer, MatchesItsRegexOnEveryCodePoint) {
  // Each code point in several contexts: after a letter, after a space, doubled, before a digit,
  // next to Hangul and newlines.
  int skipped = 0;
  for (uint32_t base = 0; base < 0x110000; base += 0x400) {
    std::string s;
    for (uint32_t cp = base; cp < base + 0x400; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      if (!same_class_in_pcre2(cp)) {
        ++skipped;
        continue;
      }
      std::string c;
      unicode::append_utf8(c, cp);
      s += "x" + c + " " + c + c + "1" + c + "가" + c + "\n " + c + "  " + c + "'s" + c + "\t";
    }
    ASSERT_EQ(fast(s), slow(s)) << "block U+" << std::hex << base;
    ASSERT_EQ(fast(s, 4), slow(s, 4)) << "superword, block U+" << std::hex << base;
  }
  EXPECT_LT(skipped, 6000) << "too many code points classified differently by PCRE2 and utf8proc";
  std::printf("code points skipped (Unicode version differences): %d\n", skipped);
}

TEST(KoreanPretokenizer, MatchesItsRegexOnRandomText) {
  const std::vector<std::string> alphabet = {
      " ", " ", " ", "\n", "\r", "\t", "a", "B", "z", "가", "힣", "ㅋ", "漢", "字", "1", "9", "٣", ".", ",", "!",
      "'", "'s", "'LL", "é", "\xCC\x81", "\xC2\xA0", "\xE3\x80\x80", "😀", "\xE2\x80\x8D", "-", "_", "(", "は", "Ж"};
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s;
    int n = int(rng() % 24);
    for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(fast(s), slow(s)) << "text: [" << s << "]";
    ASSERT_EQ(fast(s, 4), slow(s, 4)) << "superword text: [" << s << "]";
  }
}
