#include <gtest/gtest.h>

#include <random>

#include "base/base.h"
#include "test_util.h"
#include "text/text.h"

using namespace todae;
using todae::test::TempDir;

static TokenizerTrainOptions options(const std::string& input, int vocab) {
  TokenizerTrainOptions o;
  o.inputs = {input};
  o.vocab_size = vocab;
  o.progress = false;
  o.min_frequency = 2;
  return o;
}

TEST(Train, LearnsTheRequestedVocabularyWithSpecialTokensAtTheEnd) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  Tokenizer tok = train_bpe(options(in, 600));
  EXPECT_EQ(tok.vocab_size(), 600);
  auto specials = default_special_tokens();
  EXPECT_EQ(tok.token_id("<|bos|>"), 600 - int(specials.size()));
  EXPECT_EQ(tok.token_id(specials.back()), 599);
  EXPECT_TRUE(tok.is_special(tok.token_id("<|assistant|>")));
  // Frequent Korean words become single tokens, particles attached.
  auto ids = encode(tok, " 있습니다");
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(decode(tok, ids), " 있습니다");
  // Special tokens in text are recognised.
  auto sp = encode(tok, "<|user|>안녕<|end|>");
  EXPECT_EQ(sp.front(), tok.token_id("<|user|>"));
  EXPECT_EQ(sp.back(), tok.token_id("<|end|>"));
}

TEST(Train, IsDeterministicAcrossThreadCounts) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  auto o1 = options(in, 700), o2 = options(in, 700);
  o1.threads = 1;
  o2.threads = 3;
  EXPECT_EQ(tokenizer_to_json(train_bpe(o1)), tokenizer_to_json(train_bpe(o2)));
}

TEST(Train, RoundTripsAnyBytes) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  Tokenizer tok = train_bpe(options(in, 500));
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(char(i));
  for (const std::string& s : {all, std::string("\0\0a\0", 4), std::string("\xFF\xFE 한\x80글 \xED\xA0\x80"),
                               std::string("<|user|") /* not quite a special token */,
                               std::string("\xCD\xBE e\xCC\x81 \xE1\x84\x92\xE1\x85\xA1") /* not NFC */}) {
    EXPECT_EQ(decode(tok, encode(tok, s)), s);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 300, '\0');
    for (auto& c : s) c = char(rng());
    ASSERT_EQ(decode(tok, encode(tok, s)), s);
  }
}

TEST(Train, SavedTokenizerReloadsWithIdenticalIds) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  Tokenizer tok = train_bpe(options(in, 800));
  save_tokenizer(tok, d.path + "/tok");
  Tokenizer back = load_tokenizer(d.path + "/tok");
  std::string text = test::sample_corpus() + "처음 보는 문장도 잘 나뉩니다 😀 \xFF";
  EXPECT_EQ(encode(tok, text), encode(back, text));
  EXPECT_EQ(tokenizer_to_json(tok), tokenizer_to_json(back));
  std::string cfg = read_file(d.path + "/tok/tokenizer_config.json");
  EXPECT_NE(cfg.find("chat_template"), std::string::npos);
  EXPECT_NE(cfg.find("<|assistant|>"), std::string::npos);
}

TEST(Train, SuperwordStageLearnsMultiWordTokens) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  auto o = options(in, 900);
  o.superword_fraction = 0.3;
  TokenizerTrainStats st;
  Tokenizer tok = train_bpe(o, &st);
  EXPECT_GT(st.superword_merges, 0u);
  auto ids = encode(tok, "사용할 수 있습니다");
  bool spans_space = false;
  for (int32_t id : ids) {
    std::string b = tok.token_bytes(id);
    if (b.find(' ', 1) != std::string::npos) spans_space = true;
  }
  EXPECT_TRUE(spans_space) << "expected a token spanning a space";
  Tokenizer plain = train_bpe(options(in, 900));
  EXPECT_LT(encode(tok, test::sample_corpus()).size(), encode(plain, test::sample_corpus()).size());
  save_tokenizer(tok, d.path + "/super");
  EXPECT_EQ(encode(load_tokenizer(d.path + "/super"), test::sample_corpus()), encode(tok, test::sample_corpus()));
}

TEST(Train, ReadsJsonlFields) {
  TempDir d;
  std::string jl;
  for (int i = 0; i < 50; ++i) jl += R"({"id": 1, "text": "학습 데이터는 JSONL로도 읽습니다.\n두 번째 줄"})" "\n";
  auto in = d.file("data.jsonl", jl);
  Tokenizer tok = train_bpe(options(in, 400));
  EXPECT_LT(encode(tok, "학습 데이터는").size(), 6u);
}

static std::string train_error(const TokenizerTrainOptions& o) {
  try {
    train_bpe(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Train, BadInputGivesClearErrors) {
  TempDir d;
  auto empty = d.file("empty.txt", "");
  EXPECT_NE(train_error(options(empty, 400)).find("no text"), std::string::npos);
  auto in = d.file("c.txt", test::sample_corpus());
  EXPECT_NE(train_error(options(in, 300)).find("too small"), std::string::npos);
  EXPECT_NE(train_error(options(d.path + "/missing.txt", 400)).find("missing.txt"), std::string::npos);
  auto bad = d.file("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": broken\n");
  EXPECT_NE(train_error(options(bad, 400)).find("bad.jsonl:2: malformed JSON"), std::string::npos);
  auto nofield = d.file("nofield.jsonl", "{\"body\": \"ok\"}\n");
  EXPECT_NE(train_error(options(nofield, 400)).find("nofield.jsonl:1: no field 'text'"), std::string::npos);
  auto bin = d.file("bin.txt", std::string("\x7f" "ELF\0\0\0", 7));
  EXPECT_NE(train_error(options(bin, 400)).find("binary"), std::string::npos);
}
