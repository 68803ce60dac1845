// clean and filter: each rule on hand-made Korean and English examples.
#include <gtest/gtest.h>

#include <utf8proc.h>

#include "data/data_impl.h"
#include "data_test_util.h"

namespace todae::test {
namespace {

std::string clean(std::string_view s, CleanOptions o = {}) { return clean_text(s, o, nullptr); }

TEST(Clean, Nfc) {
  // 한 as conjoining jamo (U+1112 U+1161 U+11AB) becomes the precomposed syllable.
  CleanCounts c;
  EXPECT_EQ(clean_text("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB국어", {}, &c), "한국어");
  EXPECT_EQ(c.nfc, 1u);
  CleanOptions no;
  no.nfc = false;
  EXPECT_EQ(clean("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", no), "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
  EXPECT_EQ(clean("e\xCC\x81t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");  // é decomposed and composed
}

// The NFC fast path skips text whose code points are all "inert". Over all of Unicode: no inert
// code point ends a canonical decomposition (so none can compose with what precedes it), and every
// inert code point is its own NFC.
TEST(Clean, NfcQuickCheckIsSafe) {
  int inert = 0;
  for (utf8proc_int32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    utf8proc_int32_t buf[64];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, buf, 64, UTF8PROC_DECOMPOSE, &last);
    ASSERT_GT(n, 0);
    if (n >= 2) {
      ASSERT_FALSE(data::nfc_inert_cp(uint32_t(buf[n - 1]))) << std::hex << cp << " ends in " << buf[n - 1];
    }
    if (data::nfc_inert_cp(uint32_t(cp))) {
      ++inert;
      utf8proc_uint8_t* out = nullptr;
      utf8proc_uint8_t in[4];
      utf8proc_ssize_t len = utf8proc_encode_char(cp, in);
      utf8proc_ssize_t m = utf8proc_map(in, len, &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
      ASSERT_EQ(std::string(reinterpret_cast<char*>(out), size_t(m)), std::string(reinterpret_cast<char*>(in), size_t(len)))
          << std::hex << cp;
      std::free(out);
    }
  }
  EXPECT_GT(inert, 100000);
  EXPECT_TRUE(data::nfc_quick_check("한국어 text “quoted” — 漢字 ①"));
  EXPECT_FALSE(data::nfc_quick_check("e\xCC\x81"));
  EXPECT_FALSE(data::nfc_quick_check("\xE1\x84\x92\xE1\x85\xA1"));
  // The piecewise normaliser equals the whole-text one.
  const char* texts[] = {"abc e\xCC\x81 def", "\xCC\x81start", "한\xE1\x86\xAB국 \xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB!",
                         "x\xCC\xA3\xCC\x87y \xE2\x84\xA6 \xEF\xA4\x80 q", "bad \xFF\xCC\x81 bytes \xC3", "A\xCC\x8A\xCC\x81"};
  for (const char* t : texts) {
    bool changed;
    EXPECT_EQ(data::nfc_fast(t, &changed), nfc_normalize(t)) << t;
    EXPECT_EQ(changed, nfc_normalize(t) != t) << t;
  }
}

TEST(Clean, ControlCharacters) {
  CleanCounts c;
  EXPECT_EQ(clean_text("a\x01" "b\x7F" "c\xC2\x85" "d\xE2\x80\x8B" "e\xC2\xAD" "f\xEF\xBB\xBFg\th", {}, &c), "abcdefg\th");
  EXPECT_EQ(c.control, 1u);
  EXPECT_EQ(clean(std::string("x\0y", 3)), "xy");
  // Zero-width joiners stay (emoji, Indic scripts).
  EXPECT_EQ(clean("a\xE2\x80\x8D" "b"), "a\xE2\x80\x8D" "b");
}

TEST(Clean, SpacesAndLines) {
  EXPECT_EQ(clean("가\xC2\xA0나\xE3\x80\x80다\xE2\x80\x83라"), "가 나 다 라");
  EXPECT_EQ(clean("line one   \r\nline two\t\rthree"), "line one\nline two\nthree");
  EXPECT_EQ(clean("\n\n  \nfirst\n\n\n\n\nsecond\n\n\n"), "first\n\nsecond");
  CleanOptions o;
  o.max_blank_lines = 0;
  EXPECT_EQ(clean("first\n\n\nsecond", o), "first\nsecond");
  EXPECT_EQ(clean("a    b\t\tc"), "a    b\t\tc");  // indentation and alignment kept by default
  o.collapse_spaces = true;
  EXPECT_EQ(clean("a    b\t\tc", o), "a b c");
  EXPECT_EQ(clean("  \t \n"), "");
}

TEST(Clean, BoilerplateLinesRepeatedAcrossDocuments) {
  TempDir t;
  std::vector<std::string> docs;
  for (int i = 0; i < 12; ++i)
    docs.push_back(cat("문서 ", i, "의 본문입니다. 내용은 서로 다릅니다 ", i * 31, ".\n이 문서의 저작권은 토대 프로젝트에 있습니다. 무단 전재 금지.\n",
                       "Copyright 2024 Example Corp. All rights reserved."));
  docs.push_back("Copyright 2024 Example Corp. All rights reserved.");  // nothing else: dropped
  docs.push_back("짧은 줄\n짧은 줄");  // short lines never count as boilerplate
  InputOptions in;
  in.inputs = {t.file("a.txt", join_docs(docs))};
  CleanOptions o;
  o.boilerplate_min_docs = 10;
  StageReport r = run_clean(in, o, quiet_common(t.path + "/out", 2));
  std::vector<Doc> out = read_docs(t.path + "/out");
  ASSERT_EQ(out.size(), 13u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out[size_t(i)].text, cat("문서 ", i, "의 본문입니다. 내용은 서로 다릅니다 ", i * 31, "."));
  EXPECT_EQ(out[12].text, "짧은 줄\n짧은 줄");
  EXPECT_EQ(r.counts["dropped.empty"], 1u);
  EXPECT_EQ(r.counts["changed.boilerplate"], 13u);
  // Below the threshold nothing is removed.
  o.boilerplate_min_docs = 14;
  run_clean(in, o, quiet_common(t.path + "/out2", 1));
  EXPECT_EQ(read_docs(t.path + "/out2").size(), 14u);
}

// ---- filter ----

const char* kKorean =
    "대한민국의 수도는 서울입니다. 서울에는 많은 사람들이 살고 있으며, 한강이 도시를 가로질러 흐릅니다. "
    "이 도시는 역사와 문화가 풍부하고 교통이 편리합니다. 사람들은 지하철과 버스를 이용해서 출퇴근을 합니다.";
const char* kEnglish =
    "The quick brown fox jumps over the lazy dog. This sentence is often used to test typewriters and fonts, "
    "because it contains every letter of the alphabet. People have used it for more than a century.";

FilterOptions only(const std::string& rule) {
  FilterOptions o;
  for (const auto& r : filter_rule_names())
    if (r != rule) o.disable.push_back(r);
  return o;
}

TEST(Filter, GoodDocumentsPass) {
  std::string lang;
  EXPECT_EQ(filter_reason(kKorean, {}, &lang), "");
  EXPECT_EQ(lang, "ko");
  EXPECT_EQ(filter_reason(kEnglish, {}, &lang), "");
  EXPECT_EQ(lang, "en");
  // Korean technical prose full of Latin names is still Korean.
  std::string mixed =
      "이 패키지에는 GNU coreutils의 arch, base64, basename, cat, chmod, chown 명령이 들어 있습니다. "
      "Debian GNU/Linux 시스템에서 apt-get install coreutils 명령으로 설치할 수 있습니다.";
  EXPECT_EQ(filter_reason(mixed, {}, &lang), "");
  EXPECT_EQ(lang, "ko");
}

TEST(Filter, Language) {
  std::string lang;
  std::string ja = "東京は日本の首都です。たくさんの人が住んでいて、交通がとても便利です。毎日多くの観光客が訪れます。";
  EXPECT_EQ(filter_reason(ja, {}, &lang), "language");
  EXPECT_EQ(lang, "other");
  std::string ru = "Москва является столицей России. В городе живёт много людей, и транспорт очень удобный.";
  EXPECT_EQ(filter_reason(ru, {}, &lang), "language");
  FilterOptions ko_only;
  ko_only.languages = {"ko"};
  EXPECT_EQ(filter_reason(kEnglish, ko_only), "language");
  EXPECT_EQ(filter_reason(kKorean, ko_only), "");
  TextStats s = text_stats("한국어 text 123 !!");
  EXPECT_EQ(s.hangul, 3u);
  EXPECT_EQ(s.latin, 4u);
  EXPECT_EQ(s.digits, 3u);
  EXPECT_EQ(s.symbols, 2u);
  EXPECT_EQ(s.words, 4u);
}

struct RuleCase {
  const char* rule;
  std::string bad;
};

std::string repeat_lines(const std::string& line, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "\n" : "") + line;
  return s;
}

TEST(Filter, EachRuleOnItsOwn) {
  std::vector<std::string> distinct_words;
  for (int i = 0; i < 60; ++i) distinct_words.push_back(cat("word", char('a' + i % 26), char('a' + i / 26)));
  std::string cat_cat;
  for (int i = 0; i < 30; ++i) cat_cat += "the cat and ";
  std::string sentence = "이 문장은 여러 번 반복되는 긴 문장으로 품질 검사에서 걸러져야 합니다. ";
  std::string repeated;
  for (int i = 0; i < 8; ++i) repeated += sentence;
  std::vector<RuleCase> cases = {
      {"min_chars", "짧은 글입니다."},
      {"min_words", "대한민국의수도는서울입니다그리고서울에는많은사람들이살고있습니다한강이도시를가로질러흐릅니다"},
      {"mean_word_chars", "The xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy zzzzzzzzzzzzzzzzzzzzzzzzzz and of the."},
      {"symbol_ratio", std::string(kKorean) + " ※※※※ ◆◆◆◆◆◆ ★★★★★★★★ ♥♥♥♥♥♥♥ ■■■■■■■■■ ▲▲▲▲▲▲▲▲▲▲ @@@@@@@@@@@@ ^^^^^^^^^^^^^^^ &&&&&&&&&&&&&& "
                                           "%%%%%%%%%%%% $$$$$$$$$$$$ ~~~~~~~~~~~~~ |||||||||||||||||| {{{{{{{{{{{{ }}}}}}}}}}}}"},
      {"digit_ratio", std::string(kEnglish) + " 1234567890 0987654321 1122334455 6677889900 1234512345 6789067890 1357913579 2468024680 1112131415 1617181920 2122232425"},
      {"hash_ellipsis", std::string(kEnglish) + " #news #today #korea #seoul #tech #ai #data #ml #fun #life #love"},
      {"bullet_lines", repeat_lines("- 항목은 목록의 한 줄입니다 그리고", 10)},
      {"ellipsis_lines", "그는 말했습니다...\n그리고 떠났습니다...\n아무도 몰랐습니다...\n" + std::string(kKorean)},
      {"alpha_words", std::string(kKorean) + " 12 34 56 78 90 11 22 33 44 55 66 77 88 99 10 20 30 40 50 60 70 80 90 13 14 15"},
      {"stopwords", "apple banana cherry grape lemon mango orange peach pear plum melon kiwi lime fig date"},
      {"dup_lines", repeat_lines("이 줄은 여러 번 반복됩니다 그리고 또 반복됩니다.", 6) + "\n" + kKorean},
      {"top_ngram", cat_cat},
      {"dup_ngram", repeated},
      {"short_lines", "파일\n편집\n보기\n삽입\n서식\n도구\n창\n도움말\n새로 만들기\n열기\n저장\n닫기"},
      {"lorem_ipsum", std::string(kEnglish) + " Lorem ipsum dolor sit amet, consectetur adipiscing elit."},
      {"language", "東京は日本の首都です。たくさんの人が住んでいて、交通がとても便利です。"},
  };
  for (const auto& c : cases) {
    FilterOptions o = only(c.rule);
    EXPECT_EQ(filter_reason(c.bad, o), c.rule) << c.rule << ": " << c.bad;
    EXPECT_EQ(filter_reason(kKorean, o), "") << c.rule;
    EXPECT_EQ(filter_reason(kEnglish, o), "") << c.rule;
    FilterOptions off;
    off.disable = filter_rule_names();
    EXPECT_EQ(filter_reason(c.bad, off), "") << "every rule off: " << c.rule;
  }
  FilterOptions o = only("max_chars");
  o.max_chars = 20;
  EXPECT_EQ(filter_reason(kKorean, o), "max_chars");
  o = only("max_words");
  o.max_words = 5;
  EXPECT_EQ(filter_reason(kEnglish, o), "max_words");
}

TEST(Filter, StageCountsEveryRuleAndTagsLanguage) {
  TempDir t;
  std::vector<std::string> docs = {kKorean, kEnglish, "짧은 글.", "東京は日本の首都です。たくさんの人が住んでいて、交通がとても便利です。毎日多くの観光客が訪れます。"};
  InputOptions in;
  in.inputs = {t.file("a.txt", join_docs(docs))};
  StageReport r = run_filter(in, {}, quiet_common(t.path + "/out"));
  EXPECT_EQ(r.docs_in, 4u);
  EXPECT_EQ(r.docs_out, 2u);
  EXPECT_EQ(r.counts["dropped.min_chars"], 1u);
  EXPECT_EQ(r.counts["dropped.language"], 1u);
  for (const auto& rule : filter_rule_names()) EXPECT_TRUE(r.counts.count("dropped." + rule)) << rule;
  EXPECT_EQ(r.langs["ko"], 1u);
  EXPECT_EQ(r.langs["en"], 1u);
  std::vector<Doc> out = read_docs(t.path + "/out");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].lang, "ko");
  EXPECT_EQ(out[1].lang, "en");
  FilterOptions bad;
  bad.disable = {"no_such_rule"};
  EXPECT_THROW(run_filter(in, bad, quiet_common(t.path + "/out2")), Error);
}

TEST(Filter, SetOptionByName) {
  FilterOptions o;
  set_option(o, "max_digit_ratio", "0.5");
  EXPECT_EQ(o.max_digit_ratio, 0.5);
  set_option(o, "languages", "[\"ko\"]");
  EXPECT_EQ(o.languages, std::vector<std::string>{"ko"});
  set_option(o, "min_chars", "10");
  EXPECT_EQ(o.min_chars, 10u);
  try {
    set_option(o, "min_charz", "10");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown filter option (options: languages"), std::string::npos) << e.what();
  }
  try {
    set_option(o, "min_chars", "-3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--set min_chars=-3"), std::string::npos) << e.what();
  }
  CleanOptions c;
  EXPECT_THROW(set_option(c, "max_blank_lines", "5000"), Error);
  set_option(c, "collapse_spaces", "true");
  EXPECT_TRUE(c.collapse_spaces);
}

}  // namespace
}  // namespace todae::test
