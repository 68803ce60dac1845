// pii (with near-misses), dedup (precision and recall on generated near-duplicates), mix.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "data_test_util.h"

namespace todae::test {
namespace {

// A valid 주민등록번호 for a date and gender digit: the check digit computed here independently.
std::string make_rrn(const std::string& yymmdd, char g, const std::string& five) {
  std::string d = yymmdd + g + five;
  int w[] = {2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5}, sum = 0;
  for (int i = 0; i < 12; ++i) sum += (d[size_t(i)] - '0') * w[i];
  d.push_back(char('0' + (11 - sum % 11) % 10));
  return d.substr(0, 6) + "-" + d.substr(6);
}

std::string scrub(const std::string& s, PiiCounts* c = nullptr) { return scrub_pii(s, {}, c); }

TEST(Pii, ChecksumsAndLuhn) {
  std::string r = make_rrn("900101", '1', "23456");
  std::string digits = r.substr(0, 6) + r.substr(7);
  EXPECT_TRUE(valid_rrn(digits));
  std::string wrong = digits;
  wrong[12] = char('0' + (wrong[12] - '0' + 1) % 10);
  EXPECT_FALSE(valid_rrn(wrong));
  EXPECT_FALSE(valid_rrn("9013011234567"));  // month 13
  EXPECT_FALSE(valid_rrn("9002301234567"));  // 30 February
  EXPECT_FALSE(valid_rrn(make_rrn("900101", '9', "23456").erase(6, 1)));  // gender digit 9: 1800s
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
}

TEST(Pii, FindsEachType) {
  std::string rrn = make_rrn("880712", '2', "10345");
  struct Case {
    std::string in, out;
  } cases[] = {
      {"문의: hong.gildong@example.co.kr로 보내 주세요.", "문의: [EMAIL]로 보내 주세요."},
      {"Mail me at John.Smith+news@mail.example.com.", "Mail me at [EMAIL]."},
      {"휴대폰 010-1234-5678, 사무실 02-123-4567.", "휴대폰 [PHONE], 사무실 [PHONE]."},
      {"연락처는 01012345678입니다", "연락처는 [PHONE]입니다"},
      {"Tel. (031) 123-4567 / +82-10-9876-5432 / +82 2 312 3456", "Tel. [PHONE] / [PHONE] / [PHONE]"},
      {"고객센터 1588-1234 또는 +1 650 253 0000", "고객센터 [PHONE] 또는 [PHONE]"},
      {"주민등록번호: " + rrn + " 입니다.", "주민등록번호: [RRN] 입니다."},
      {"카드 4111 1111 1111 1111 / 4111-1111-1111-1111 / 4111111111111111", "카드 [CARD] / [CARD] / [CARD]"},
      {"Amex 3782 822463 10005.", "Amex [CARD]."},
      {"서버 192.168.0.1과 10.0.0.255에 접속", "서버 [IP]과 [IP]에 접속"},
      {"IPv6 2001:db8::1 and fe80::1ff:fe23:4567:890a, 2001:0db8:85a3:0000:0000:8a2e:0370:7334.",
       "IPv6 [IP] and [IP], [IP]."},
  };
  for (const auto& c : cases) EXPECT_EQ(scrub(c.in), c.out) << c.in;
  PiiCounts n;
  scrub("a@b.io 010-1234-5678 " + rrn + " 4111111111111111 1.2.3.4", &n);
  EXPECT_EQ(n.email, 1u);
  EXPECT_EQ(n.phone, 1u);
  EXPECT_EQ(n.rrn, 1u);
  EXPECT_EQ(n.card, 1u);
  EXPECT_EQ(n.ip, 1u);
}

TEST(Pii, NearMissesAreLeftAlone) {
  std::string rrn = make_rrn("880712", '2', "10345");
  std::string bad_check = rrn;
  bad_check.back() = char('0' + (bad_check.back() - '0' + 3) % 10);
  const std::string keep[] = {
      "날짜 2023-01-15, 2023.01.15, 20230115, 2023/01/15",
      "시간 12:30:45, 버전 1.2.3.4.5, v1.2.3.4, 3.10.0.1-beta",
      "제품 코드 AB-" + rrn + " 와 " + rrn + "-01",   // looks like an RRN but is part of a longer code
      "주민번호 같은 " + bad_check + " (검증 숫자가 틀림)",
      "881301-1234567 (13월), 880230-1234567 (2월 30일), 880101-9234567 (성별 9)",
      "바코드 8801234567893, 8809876543210",        // 13 bare digits: EAN-13, not RRNs
      "카드처럼 보이는 4111 1111 1111 1112 (Luhn 실패), 1234 5678 9012 3456",
      "ISBN 978-89-1234-567-8, 우편번호 06236, 금액 1,234,567원, 전화 123-45-6789",
      "MAC 00:1a:2b:3c:4d:5e, C++ std::vector, a::b, 256.1.1.1, 1.2.3",
      "user@localhost, @mention, 이메일@없음, x@y",
      "좌표 37.5665, 126.9780 / 비율 1.5.",
  };
  for (const auto& s : keep) EXPECT_EQ(scrub(s), s) << s;
  PiiOptions loose;
  loose.rrn_require_checksum = false;
  EXPECT_EQ(scrub_pii("번호 " + bad_check, loose, nullptr), "번호 [RRN]");
  PiiOptions no_email;
  no_email.email = false;
  EXPECT_EQ(scrub_pii("a.b@example.com", no_email, nullptr), "a.b@example.com");
}

TEST(Pii, StageCountsPerType) {
  TempDir t;
  InputOptions in;
  in.inputs = {t.file("a.txt", "메일 a@example.com, 전화 010-1234-5678\n\n깨끗한 문서입니다.\n\n서버 10.1.2.3\n")};
  StageReport r = run_pii(in, {}, quiet_common(t.path + "/out"));
  EXPECT_EQ(r.counts["email"], 1u);
  EXPECT_EQ(r.counts["phone"], 1u);
  EXPECT_EQ(r.counts["ip"], 1u);
  EXPECT_EQ(r.counts["rrn"], 0u);
  EXPECT_EQ(r.counts["docs_changed"], 2u);
  std::vector<Doc> out = read_docs(t.path + "/out");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].text, "메일 [EMAIL], 전화 [PHONE]");
}

// ---- dedup ----

// Random Korean-looking words, so that unrelated documents share few character n-grams.
std::string random_word(std::mt19937& rng) {
  static const char* syl[] = {"가", "나", "다", "라", "마", "바", "사", "아", "자", "차", "카", "타", "파", "하",
                              "강", "산", "물", "빛", "별", "달", "해", "길", "집", "문", "책", "꽃", "눈", "비"};
  std::string w;
  int n = 1 + int(rng() % 4);
  for (int i = 0; i < n; ++i) w += syl[rng() % 28];
  static const char* josa[] = {"", "은", "는", "이", "가", "을", "를", "에", "의"};
  return w + josa[rng() % 9];
}

TEST(Dedup, SignatureEstimatesJaccard) {
  std::mt19937 rng(7);
  DedupOptions o;
  o.bands = 32;
  o.rows = 8;  // 256 values: a tighter estimate
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::string> words;
    for (int i = 0; i < 150; ++i) words.push_back(random_word(rng));
    std::string a, b;
    for (size_t i = 0; i < words.size(); ++i) {
      a += words[i] + " ";
      b += (rng() % 100 < uint32_t(trial * 4) ? random_word(rng) : words[i]) + " ";
    }
    // True Jaccard of the 5-gram sets of code points, computed directly.
    auto grams = [](const std::string& s) {
      std::vector<std::string> cps;
      for (size_t i = 0; i < s.size();) {
        size_t n = (uint8_t(s[i]) >= 0xE0) ? 3 : 1;
        cps.push_back(s.substr(i, n));
        i += n;
      }
      while (!cps.empty() && cps.back() == " ") cps.pop_back();
      std::set<std::string> g;
      for (size_t i = 0; i + 5 <= cps.size(); ++i) g.insert(cps[i] + cps[i + 1] + cps[i + 2] + cps[i + 3] + cps[i + 4]);
      return g;
    };
    std::set<std::string> ga = grams(a), gb = grams(b);
    size_t inter = 0;
    for (const auto& g : ga) inter += gb.count(g);
    double j = double(inter) / double(ga.size() + gb.size() - inter);
    double est = signature_similarity(minhash_signature(a, o), minhash_signature(b, o));
    EXPECT_NEAR(est, j, 0.09) << "trial " << trial;
  }
  EXPECT_EQ(minhash_signature("Hello   World", {}), minhash_signature("hello world", {}));
}

TEST(Dedup, PrecisionAndRecallOnGeneratedNearDuplicates) {
  TempDir t;
  std::mt19937 rng(42);
  // 200 originals; 150 of them get 1-3 near copies (2-4% of words replaced, or a sentence
  // appended), 20 get an exact copy with other spacing and case; all shuffled together.
  struct D {
    std::string text;
    int origin;  // which original it copies, -1 for originals
  };
  std::vector<D> all;
  std::vector<std::vector<std::string>> originals;
  for (int i = 0; i < 200; ++i) {
    std::vector<std::string> w;
    int n = 60 + int(rng() % 100);
    for (int k = 0; k < n; ++k) w.push_back(random_word(rng));
    originals.push_back(w);
    std::string s;
    for (auto& x : w) s += x + " ";
    all.push_back({s, -1});
  }
  for (int i = 0; i < 150; ++i) {
    int copies = 1 + int(rng() % 3);
    for (int c = 0; c < copies; ++c) {
      std::string s;
      for (auto& x : originals[size_t(i)]) s += (rng() % 100 < 3 ? random_word(rng) : x) + " ";
      if (c == 2) s += "끝에 붙은 문장입니다.";
      all.push_back({s, i});
    }
  }
  for (int i = 150; i < 170; ++i) {
    std::string s;
    for (auto& x : originals[size_t(i)]) s += x + "  ";
    all.push_back({s + "\n", i});
  }
  // Originals first so each cluster's kept document is its original, then copies in random order.
  std::shuffle(all.begin() + 200, all.end(), rng);
  std::vector<std::string> texts;
  for (auto& d : all) texts.push_back(d.text);
  InputOptions in;
  in.inputs = {t.file("docs.txt", join_docs(texts))};
  in.chunk_bytes = 3000;
  StageReport r = run_dedup(in, {}, quiet_common(t.path + "/out", 3));
  std::vector<Doc> out = read_docs(t.path + "/out");
  auto trim = [](std::string x) {
    while (!x.empty() && (x.back() == ' ' || x.back() == '\n')) x.pop_back();
    return x;
  };
  std::set<std::string> kept;
  for (auto& d : out) kept.insert(trim(d.text));
  // Ground truth: precision = removed documents that are copies / removed; recall = copies
  // removed / copies. All originals must be kept (a copy can equal its original when its random
  // edits changed nothing, so copies are counted through the output size).
  size_t originals_kept = 0, copies = all.size() - 200;
  for (size_t i = 0; i < 200; ++i) originals_kept += kept.count(trim(all[i].text));
  size_t removed = all.size() - out.size(), originals_removed = 200 - originals_kept;
  size_t copies_kept = out.size() - originals_kept;
  double precision = removed ? double(removed - originals_removed) / double(removed) : 1.0;
  double recall = double(copies - copies_kept) / double(copies);
  std::printf("dedup: %zu documents, %zu near/exact copies; precision %.3f, recall %.3f; exact %llu, near %llu\n",
              all.size(), copies, precision, recall, (unsigned long long)r.counts["dropped.exact"],
              (unsigned long long)r.counts["dropped.near"]);
  EXPECT_EQ(originals_kept, 200u);
  EXPECT_EQ(precision, 1.0);
  EXPECT_GE(recall, 0.97);
  EXPECT_GE(r.counts["dropped.exact"], 20u);  // plus copies whose random edits changed nothing
  // Same output on one thread and big chunks.
  in.chunk_bytes = 1 << 20;
  run_dedup(in, {}, quiet_common(t.path + "/one", 1));
  EXPECT_EQ(read_file(t.path + "/one/part-00000.jsonl"), read_file(t.path + "/out/part-00000.jsonl"));
  // Exact only.
  DedupOptions exact_only;
  exact_only.near = false;
  StageReport e = run_dedup(in, exact_only, quiet_common(t.path + "/exact", 2));
  EXPECT_EQ(e.counts["dropped.exact"], r.counts["dropped.exact"]);
  EXPECT_EQ(e.counts["dropped.near"], 0u);
  DedupOptions bad;
  bad.bands = 0;
  EXPECT_THROW(run_dedup(in, bad, quiet_common(t.path + "/bad")), Error);
}

// ---- mix ----

TEST(Mix, WeightsSetShares) {
  TempDir t;
  std::string a, b;
  for (int i = 0; i < 100; ++i) a += cat("한국어 문서 번호 ", i, " 입니다.\n\n");
  for (int i = 0; i < 400; ++i) b += cat("English document number ", i, " here.\n\n");
  InputOptions in;
  in.inputs = {t.file("ko_x.txt", a), t.file("en_y.txt", b)};
  MixOptions m;
  m.weights = {{"ko_*", 0.5}, {"en_*", 0.5}};
  StageReport r = run_mix(in, m, quiet_common(t.path + "/out", 2));
  uint64_t ko = r.sources["ko_x"].bytes_out, en = r.sources["en_y"].bytes_out;
  EXPECT_NEAR(double(ko) / double(ko + en), 0.5, 0.06) << ko << " " << en;
  EXPECT_GT(r.counts["repeated_docs"], 50u);  // Korean is up-sampled
  EXPECT_GT(r.counts["dropped.sampled_out"], 100u);  // English down-sampled
  // Deterministic, and independent of threads.
  run_mix(in, m, quiet_common(t.path + "/one", 1));
  EXPECT_EQ(read_file(t.path + "/one/part-00000.jsonl"), read_file(t.path + "/out/part-00000.jsonl"));
  // Capped repeats.
  m.weights = {{"ko_*", 0.99}, {"en_*", 0.01}};
  m.max_repeat = 2;
  StageReport c = run_mix(in, m, quiet_common(t.path + "/cap", 2));
  EXPECT_LE(c.sources["ko_x"].docs_out, 200u + 10u);
  m.weights = {{"fr_*", 1}};
  try {
    run_mix(in, m, quiet_common(t.path + "/none", 1));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no documents match any weight (the source groups are: en_y, ko_x)"),
              std::string::npos)
        << e.what();
  }
  m.weights = {};
  EXPECT_THROW(run_mix(in, m, quiet_common(t.path + "/e")), Error);
}

}  // namespace
}  // namespace todae::test
