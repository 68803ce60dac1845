// Metrics against published values: sacrebleu's own test vectors (test/test_chrf.py,
// test/test_bleu.py, the README example) written out here as our test data, hand-worked chrF++
// cases, and Debian's python3-nltk where its definitions agree with sacrebleu's.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/base.h"
#include "eval/eval.h"
#include "text/test_util.h"

using namespace todae;
using namespace todae::eval;

namespace {

using Refs = std::vector<std::vector<std::string>>;

double chrf(const std::vector<std::string>& h, const std::vector<std::string>& r, ChrfOptions o) {
  Refs refs;
  for (const std::string& s : r) refs.push_back({s});
  return corpus_chrf(h, refs, o);
}

ChrfOptions beta3(bool eps, bool ws = false) {
  ChrfOptions o;
  o.beta = 3;
  o.eps_smoothing = eps;
  o.whitespace = ws;
  return o;
}

// sacrebleu's README: two reference streams for three hypotheses.
const std::vector<std::string> kHyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
const Refs kRefs = {{"The dog bit the man.", "The dog had bit the man."},
                    {"It was not unexpected.", "No one was surprised."},
                    {"The man bit him first.", "The man had bitten the dog."}};

}  // namespace

TEST(Chrf, SacrebleuEpsilonSmoothingVectors) {
  struct Case {
    std::vector<std::string> h, r;
    double want;
  };
  const std::vector<Case> cases = {
      {{"abcdefg"}, {"hijklmnop"}, 0.0},
      {{"a"}, {"b"}, 0.0},
      {{""}, {"b"}, 0.0},
      {{""}, {"ref"}, 0.0},
      {{""}, {"reference"}, 0.0},
      {{"aa"}, {"ab"}, 8.3333},
      {{"a", "b"}, {"a", "c"}, 8.3333},
      {{"a"}, {"a"}, 16.6667},
      {{"a b c"}, {"a b c"}, 50.0},
      {{"a b c"}, {"abc"}, 50.0},
      {{" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."},
       {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."},
       63.361730},
      {{" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "},
       {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
       64.1302698},
      {{"Niemand hat die Absicht, eine Mauer zu errichten"}, {"Niemand hat die Absicht, eine Mauer zu errichten"}, 100.0},
  };
  for (const Case& c : cases) EXPECT_NEAR(chrf(c.h, c.r, beta3(true)), c.want, 1e-4) << c.h[0];
}

TEST(Chrf, SacrebleuEffectiveOrderVectors) {
  struct Case {
    std::vector<std::string> h, r;
    double want;
  };
  const std::vector<Case> cases = {{{"a"}, {"a"}, 100.0},        {{""}, {"reference"}, 0.0}, {{"a b c"}, {"a b c"}, 100.0},
                                   {{"a b c"}, {"abc"}, 100.0},  {{""}, {"c"}, 0.0},         {{"a", "b"}, {"a", "c"}, 50.0},
                                   {{"aa"}, {"ab"}, 25.0}};
  for (const Case& c : cases) EXPECT_NEAR(chrf(c.h, c.r, beta3(false)), c.want, 1e-4) << c.h[0];
}

TEST(Chrf, SacrebleuKeepWhitespaceVectors) {
  EXPECT_NEAR(chrf({"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."},
                   {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."}, beta3(false, true)),
              67.3481606, 1e-4);
  EXPECT_NEAR(chrf({"risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."},
                   {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."},
                   beta3(false, true)),
              65.2414427, 1e-4);
}

TEST(Chrf, SacrebleuSentenceLevelVectors) {
  ChrfOptions o;
  o.eps_smoothing = true;  // beta 2, char order 6: sacrebleu's defaults
  auto s = [&](const std::string& h, const std::string& r) { return chrf_from_stats(chrf_stats(h, {r}, o), o); };
  EXPECT_NEAR(s("Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
                "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."),
              39.14078509, 1e-4);
  EXPECT_NEAR(s("Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
                "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."),
              31.22557079, 1e-4);
  EXPECT_NEAR(s("Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
                "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli."),
              57.15704367, 1e-4);
}

TEST(Chrf, ReadmeMultiReferenceCorpus) {
  // sacrebleu README: chrF2 = 59.73 on the example corpus with two references each.
  EXPECT_NEAR(corpus_chrf(kHyps, kRefs), 59.73, 0.005);
}

TEST(Chrf, ChrfPlusPlusWordNgramsByHand) {
  // hyp "ab c", ref "ab d": chars abc/abd give P = R = (2/3 + 1/2 + 0)/3; chrF++ adds words
  // [ab, c]/[ab, d] (1/2) and bigrams (0): (2/3 + 1/2 + 0 + 1/2 + 0)/5 = 1/3.
  ChrfOptions pp;
  pp.word_order = 2;
  EXPECT_NEAR(corpus_chrf({"ab c"}, {{"ab d"}}), 100.0 * (2.0 / 3 + 0.5) / 3, 1e-9);
  EXPECT_NEAR(corpus_chrf({"ab c"}, {{"ab d"}}, pp), 100.0 / 3, 1e-9);
  // Identical texts: 100 either way; the statistics have 3 × (6 + 2) numbers.
  EXPECT_NEAR(corpus_chrf({"한국어 문장입니다."}, {{"한국어 문장입니다."}}, pp), 100.0, 1e-9);
  EXPECT_EQ(chrf_stats("a b", {"a b"}, pp).size(), 24u);
  // Punctuation is split from a word's end (else its start); single characters stay.
  EXPECT_EQ(chrf_words("(hi) there, you! ? -x"),
            (std::vector<std::string>{"(hi", ")", "there", ",", "you", "!", "?", "-", "x"}));
  // "x." vs "x": chrF++ sees the word x in both (the '.' split off), chrF only characters.
  std::vector<int64_t> st = chrf_stats("x.", {"x"}, pp);
  EXPECT_EQ(st[18], 2);  // word unigrams of the hypothesis: x and .
  EXPECT_EQ(st[20], 1);  // matched: x
}

TEST(Chrf, WhitespaceIsPythonsAndCharactersAreCodePoints) {
  // U+3000 (ideographic space) and U+00A0 are whitespace for str.split(): dropped.
  EXPECT_NEAR(corpus_chrf({"가나\u3000다라\u00a0마바"}, {{"가나다라마바"}}), 100.0, 1e-9);
  // One Hangul syllable is one character, not three bytes: 2 of 3 unigrams match.
  std::vector<int64_t> st = chrf_stats("가나다", {"가나라"});
  EXPECT_EQ(st[0], 3);
  EXPECT_EQ(st[2], 2);
}

TEST(Bleu, Tokenize13a) {
  EXPECT_EQ(tokenize_13a("The dog bit the man."), "The dog bit the man .");
  EXPECT_EQ(tokenize_13a("It wasn't surprising."), "It wasn't surprising .");  // no split at '
  EXPECT_EQ(tokenize_13a("costs 1,000.50 dollars, 3-4 times"), "costs 1,000.50 dollars , 3 - 4 times");
  EXPECT_EQ(tokenize_13a("&quot;hi&quot; &amp; (bye)"), "\" hi \" & ( bye )");
  EXPECT_EQ(tokenize_13a("line-\nbreak\nhere<skipped>"), "linebreak here");
  EXPECT_EQ(tokenize_13a("  a\t\tb  "), "a b");
  EXPECT_EQ(tokenize_13a("서울은 한국의 수도다."), "서울은 한국의 수도다 .");
}

TEST(Bleu, SacrebleuCorpusVectors) {
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs), 48.530827, 1e-6);
  BleuOptions none;
  none.tokenize = "none";
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs, none), 49.1919566, 1e-6);
  BleuOptions nosmooth;
  nosmooth.smooth = "none";
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs, nosmooth), 48.530827, 1e-6);
  EXPECT_EQ(corpus_bleu({"", "", ""}, kRefs), 0.0);
  const std::pair<int, double> orders[] = {{1, 77.65}, {2, 60.50}, {3, 53.93}, {4, 48.53}, {5, 46.14}, {6, 43.28}};
  for (auto [n, want] : orders) {
    BleuOptions o;
    o.max_order = n;
    EXPECT_NEAR(corpus_bleu(kHyps, kRefs, o), want, 0.005) << n;
  }
}

TEST(Bleu, SacrebleuStatisticsAndScoring) {
  BleuOptions raw;  // sacrebleu's raw_corpus_bleu: floor 0.01, no tokenisation, effective order
  raw.tokenize = "none";
  raw.smooth = "floor";
  raw.smooth_value = 0.01;
  raw.effective_order = true;
  BleuStats s = bleu_stats("am I am a character sequence", {"I am a symbol string sequence a a"}, raw);
  EXPECT_EQ(s.correct, (std::vector<double>{4, 2, 1, 0}));
  EXPECT_EQ(s.total, (std::vector<double>{6, 5, 4, 3}));
  BleuStats sc;
  sc.correct = {9, 7, 5, 3};
  sc.total = {10, 8, 6, 4};
  sc.sys_len = sc.ref_len = 11;
  BleuOptions plain;
  plain.smooth = "none";
  EXPECT_NEAR(bleu_from_stats(sc, plain), 83.75922397, 1e-6);
  EXPECT_NEAR(corpus_bleu({"this is a fest"}, {{"this is a test"}}, raw), 22.3606797749979, 1e-6);
  EXPECT_NEAR(corpus_bleu({"this is a test"}, {{"this is a test"}}, raw), 100.0, 1e-6);
  EXPECT_EQ(corpus_bleu({"this is a test", "another test"}, {{"ref1"}, {"ref2"}}, raw), 0.0);
  EXPECT_NEAR(corpus_bleu({"test"}, {{"a test"}}, raw), 36.78794411714425, 1e-6);
  EXPECT_NEAR(corpus_bleu({"a test"}, {{"a test"}}, raw), 100.0, 1e-6);
  EXPECT_NEAR(corpus_bleu({"a little test"}, {{"a test"}}, raw), 3.218297948685433, 1e-6);
  BleuStats deg;
  deg.correct = {6, 5, 4, 0};
  deg.total = {6, 5, 4, 3};
  deg.sys_len = deg.ref_len = 6;
  BleuOptions floor0;
  floor0.smooth = "floor";
  floor0.smooth_value = 0.0;
  EXPECT_EQ(bleu_from_stats(deg, floor0), 0.0);
  BleuOptions bad;
  bad.smooth = "laplace";
  EXPECT_THROW(bleu_from_stats(sc, bad), Error);
}

// Random cases where nltk's definitions coincide with sacrebleu's: chrF of one sentence whose
// hypothesis and reference have the same number of non-space characters (then P = R at every
// order, so nltk's mean of F equals sacrebleu's F of the means), and corpus BLEU without
// smoothing on pre-tokenized text.
TEST(Metrics, NltkAgreesWhereDefinitionsCoincide) {
  if (std::system("/usr/bin/python3 -c 'import nltk' 2>/dev/null") != 0) GTEST_SKIP() << "python3-nltk missing";
  std::mt19937 rng(11);
  const std::vector<std::string> chars = {"가", "나", "다", "라", "a", "b", "c", "서", "울", "."};
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  nlohmann::json in = {{"chrf", nlohmann::json::array()}};
  std::vector<double> ours;
  for (int k = 0; k < 40; k++) {
    const int L = 6 + int(rng() % 20);
    std::vector<std::string> h, r;
    for (int i = 0; i < L; i++) h.push_back(pick(chars)), r.push_back(rng() % 3 ? h.back() : pick(chars));
    std::string hs, rs;
    for (int i = 0; i < L; i++) hs += (i && rng() % 4 == 0 ? " " : "") + h[size_t(i)], rs += (i && rng() % 5 == 0 ? " " : "") + r[size_t(i)];
    in["chrf"].push_back({hs, rs});
    ours.push_back(corpus_chrf({hs}, {{rs}}));
  }
  const std::vector<std::string> words = {"the", "dog", "bit", "man", "개가", "사람을", "물었다", "a", "."};
  std::vector<std::string> hyps;
  Refs refs;
  for (int k = 0; k < 30; k++) {
    auto sent = [&] {
      std::string s;
      const int n = 4 + int(rng() % 10);  // nltk counts 1 for an empty n-gram order (max(1, ...))
      for (int i = 0; i < n; i++) s += (i ? " " : "") + pick(words);
      return s;
    };
    // references: the hypothesis with some words replaced or dropped, so n-grams of every
    // order match somewhere, and sometimes a second, unrelated one
    hyps.push_back(sent());
    std::string r, w;
    for (size_t p = 0, q; p <= hyps.back().size(); p = q + 1) {
      q = hyps.back().find(' ', p);
      if (q == std::string::npos) q = hyps.back().size();
      w = hyps.back().substr(p, q - p);
      const unsigned roll = rng() % 8;
      if (roll == 0) continue;
      r += (r.empty() ? "" : " ") + (roll == 1 ? pick(words) : w);
    }
    refs.push_back({r.empty() ? sent() : r});
    if (k % 2) refs.back().push_back(sent());
  }
  in["bleu"] = {{"hyps", hyps}, {"refs", refs}};
  test::TempDir dir;
  const std::string f = dir.file("case.json", in.dump());
  const std::string outf = dir.path + "/out.json";
  const std::string cmd = cat("/usr/bin/python3 ", TODAE_SOURCE_DIR, "/tests/eval/nltk_reference.py ", f, " > ", outf);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  nlohmann::json got = nlohmann::json::parse(read_file(outf));
  ASSERT_EQ(got["chrf"].size(), ours.size());
  for (size_t i = 0; i < ours.size(); i++) EXPECT_NEAR(got["chrf"][i].get<double>(), ours[i], 1e-9) << in["chrf"][i].dump();
  BleuOptions o;
  o.smooth = "none";
  o.tokenize = "none";
  const double b = corpus_bleu(hyps, refs, o);
  EXPECT_GT(b, 1.0);  // a case with matches at every order, so the comparison means something
  EXPECT_NEAR(got["bleu"].get<double>(), b, 1e-9);
}

TEST(ExactMatch, OptionsAsHfEvaluate) {
  EXPECT_EQ(exact_match("81", "81"), 1.0);
  EXPECT_EQ(exact_match(" 81", "81"), 0.0);
  ExactMatchOptions o;
  o.ignore_case = true;
  o.ignore_punctuation = true;
  EXPECT_EQ(exact_match("The Answer.", "the answer", o), 1.0);
  ExactMatchOptions re;
  re.regexes_to_ignore = {",", "\\$"};
  EXPECT_EQ(exact_match("$1,000", "1000", re), 1.0);
  ExactMatchOptions bad;
  bad.regexes_to_ignore = {"(unclosed"};
  EXPECT_THROW(exact_match("a", "a", bad), Error);
}

TEST(RegexExtract, FindallSemanticsOfLmEvalsFilter) {
  EXPECT_EQ(regex_extract("The answer is 42 and then 7", "-?[0-9]+"), "42");
  EXPECT_EQ(regex_extract("The answer is 42 and then 7", "-?[0-9]+", -1), "7");
  EXPECT_EQ(regex_extract("#### 1,234", R"(#### (\-?[0-9\.\,]+))"), "1,234");  // one group: the group
  EXPECT_EQ(regex_extract("no number", "[0-9]+"), "[invalid]");
  EXPECT_EQ(regex_extract("no number", "[0-9]+", 0, "X"), "X");
  EXPECT_EQ(regex_extract("답: B", "(A)|(B)"), "B");  // tuples: the first non-empty group
  EXPECT_EQ(regex_extract("정답은 ３ 입니다", R"(\d)"), "３");  // \d is Unicode, as in Python
  EXPECT_EQ(regex_extract("x", "y*", 0), "");  // empty matches count, as re.findall
  EXPECT_THROW(regex_extract("x", "(", 0), Error);
}

TEST(Stderr, MeanStderrAndBootstrap) {
  MeanStderr m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  EXPECT_NEAR(m.stderr, std::sqrt((3 * 0.0625 + 0.5625) / 3.0) / 2.0, 1e-12);
  EXPECT_EQ(mean_stderr({1}).stderr, 0.0);
  // The bootstrap of a mean approaches its standard error.
  std::vector<double> x;
  for (int i = 0; i < 400; i++) x.push_back(i % 3 == 0 ? 1 : 0);
  auto score = [&](const std::vector<size_t>& idx) {
    double s = 0;
    for (size_t i : idx) s += x[i];
    return s / double(idx.size());
  };
  const double bs = bootstrap_stderr(x.size(), score, 400, 5);
  EXPECT_NEAR(bs, mean_stderr(x).stderr, 0.25 * mean_stderr(x).stderr);
  EXPECT_EQ(bootstrap_stderr(x.size(), score, 400, 5), bs);  // seeded
}

// sklearn.metrics.f1_score on the same labels: binary (class 1) 0.5, macro 0.58333 (class 0:
// tp 2, fp 2, fn 0 -> 2/3; class 1: tp 1, fp 0, fn 2 -> 1/2); a class only predicted counts in the
// macro mean with F1 0; an empty sample set is 0.
TEST(F1, AsSklearnComputesIt) {
  const std::vector<int> gold = {0, 1, 1, 0, 1}, pred = {0, 1, 0, 0, 0};
  const std::vector<size_t> all = {0, 1, 2, 3, 4};
  EXPECT_NEAR(f1_score(gold, pred, all, false), 0.5, 1e-12);
  EXPECT_NEAR(f1_score(gold, pred, all, true), (2.0 / 3 + 0.5) / 2, 1e-12);
  const std::vector<int> g3 = {0, 0, 1}, p3 = {0, 2, 1};  // class 2 never gold
  EXPECT_NEAR(f1_score(g3, p3, {0, 1, 2}, true), (2.0 / 3 + 1.0 + 0.0) / 3, 1e-12);
  EXPECT_NEAR(f1_score(gold, pred, {}, false), 0.0, 1e-12);
  EXPECT_NEAR(f1_score(gold, pred, {0, 0, 3}, false), 0.0, 1e-12);  // no class 1 at all: sklearn's zero_division 0
}
