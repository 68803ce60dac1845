#include <gtest/gtest.h>

#include "base/base.h"
#include "test_util.h"
#include "text/text.h"

using namespace todae;
using todae::test::TempDir;

// A tiny byte-level tokenizer.json in Hugging Face's format, written by hand.
static std::string tiny_json(const std::string& merges = R"(["h e", "he l", "l o"])",
                             const std::string& model_type = "BPE") {
  std::string vocab;
  for (int c = 0; c < 256; ++c) {
    // GPT-2 byte alphabet: printable ASCII maps to itself; we only need the letters used here.
    if (c >= 'a' && c <= 'z') vocab += "\"" + std::string(1, char(c)) + "\": " + std::to_string(c - 'a') + ", ";
  }
  vocab += R"("Ġ": 26, "he": 27, "hel": 28, "lo": 29, "<|end|>": 30)";
  return R"({"version": "1.0", "added_tokens": [{"id": 30, "content": "<|end|>", "special": true}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|end|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}},
    "model": {"type": ")" + model_type + R"(", "vocab": {)" + vocab + R"(}, "merges": )" + merges + "}}";
}

static std::string load_error(const std::string& json, const std::string& name = "tokenizer.json") {
  try {
    load_tokenizer_json(json, name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerJson, LoadsAndEncodesAHandWrittenFile) {
  Tokenizer tok = load_tokenizer_json(tiny_json());
  EXPECT_EQ(encode(tok, "hello"), (std::vector<int32_t>{28, 29}));  // "hel" "lo"
  EXPECT_EQ(encode(tok, "hello hello"), (std::vector<int32_t>{28, 29, 26, 28, 29}));
  EXPECT_EQ(decode(tok, encode(tok, "hello hello")), "hello hello");
  EXPECT_EQ(encode(tok, "he<|end|>"), (std::vector<int32_t>{27, 30}));
  EncodeOptions o;
  o.add_special_tokens = true;
  EXPECT_EQ(encode(tok, "lo", o), (std::vector<int32_t>{30, 29}));
  EXPECT_EQ(decode(tok, std::vector<int32_t>{27, 30}, true), "he");
  // Merges in the new ["a", "b"] form give the same result.
  Tokenizer tok2 = load_tokenizer_json(tiny_json(R"([["h", "e"], ["he", "l"], ["l", "o"]])"));
  EXPECT_EQ(encode(tok2, "hello hello"), encode(tok, "hello hello"));
}

TEST(TokenizerJson, ErrorsNameTheFileAndField) {
  EXPECT_NE(load_error("{\"model\": ", "x/tokenizer.json").find("x/tokenizer.json: malformed JSON"), std::string::npos);
  EXPECT_NE(load_error("[]").find("top level"), std::string::npos);
  EXPECT_NE(load_error("{}").find("tokenizer.model: missing"), std::string::npos);
  EXPECT_NE(load_error(tiny_json(R"(["h e"])", "Unigram")).find("model type 'Unigram' is not supported"), std::string::npos);
  EXPECT_NE(load_error(tiny_json(R"(["h q"])")).find("model.merges[0]: token 'hq' is not in model.vocab"), std::string::npos);
  EXPECT_NE(load_error(tiny_json(R"(["x y z"])")).find("model.merges[0]: expected two tokens"), std::string::npos);
  EXPECT_NE(load_error(tiny_json(R"([42])")).find("model.merges[0]"), std::string::npos);
  std::string dup = tiny_json();
  dup.replace(dup.find("\"lo\": 29"), 8, "\"lo\": 28");
  EXPECT_NE(load_error(dup).find("model.vocab: id 28 is used by two tokens"), std::string::npos);
  std::string badnorm = tiny_json();
  badnorm.replace(badnorm.find("\"NFC\""), 5, "\"Precompiled\"");
  EXPECT_NE(load_error(badnorm).find("normalizer.type: normalizer 'Precompiled' is not supported"), std::string::npos);
  std::string badre = tiny_json();
  badre.replace(badre.find("{\"type\": \"ByteLevel\", \"add_prefix_space\""), 0,
                R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}]}, "x": )");
  EXPECT_NE(load_error(badre).find("pre_tokenizer.pretokenizers[0].pattern.Regex: invalid regular expression"), std::string::npos);
  // Truncated file: every prefix is an error, never a crash.
  std::string full = tiny_json();
  for (size_t n = 0; n < full.size(); n += 7) EXPECT_NE(load_error(full.substr(0, n)), "(no error)");
}

TEST(TokenizerJson, LoadTokenizerReportsMissingAndCorruptFiles) {
  TempDir d;
  auto expect_error = [](const std::string& path, const std::string& part) {
    try {
      load_tokenizer(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error(d.path + "/nope.json", "nope.json");
  expect_error(d.path, "no tokenizer.json");
  d.file("tokenizer.json", "\x89PNG garbage");
  expect_error(d.path, "malformed JSON");
  d.file("bad.tiktoken", "!!!! 0\n");
  expect_error(d.path + "/bad.tiktoken", "bad.tiktoken:1: invalid base64");
  d.file("rank.tiktoken", "YQ== x\n");
  expect_error(d.path + "/rank.tiktoken", "invalid rank");
  d.file("few.tiktoken", "YQ== 0\n");
  expect_error(d.path + "/few.tiktoken", "byte 0 has no token");
}

TEST(Tiktoken, LoadsRankFilesAndMergesByRank) {
  TempDir d;
  // All 256 bytes, then "ab" (rank 256) and "abc" (rank 257).
  auto b64 = [](const std::string& s) {
    static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
      uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
      for (int k = 3; k >= 0; --k) out += tbl[(v >> (6 * k)) & 63];
    }
    if (i + 1 == s.size()) {
      uint32_t v = uint8_t(s[i]) << 16;
      out += tbl[(v >> 18) & 63], out += tbl[(v >> 12) & 63], out += "==";
    } else if (i + 2 == s.size()) {
      uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
      out += tbl[(v >> 18) & 63], out += tbl[(v >> 12) & 63], out += tbl[(v >> 6) & 63], out += "=";
    }
    return out;
  };
  std::string f;
  for (int b = 0; b < 256; ++b) f += b64(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
  f += b64("ab") + " 256\n" + b64("abc") + " 257\n" + b64("bc") + " 258\n";
  d.file("test_base.tiktoken", f);
  Tokenizer tok = load_tokenizer(d.path + "/test_base.tiktoken");
  EXPECT_EQ(encode(tok, "abc"), (std::vector<int32_t>{257}));
  EXPECT_EQ(encode(tok, "abcab"), (std::vector<int32_t>{257, 256}));
  EXPECT_EQ(decode(tok, encode(tok, "x\xFF y")), "x\xFF y");
}

TEST(Encode, BatchAndParallelEqualSequential) {
  TempDir d;
  auto in = d.file("corpus.txt", test::sample_corpus());
  TokenizerTrainOptions o;
  o.inputs = {in};
  o.vocab_size = 700;
  o.progress = false;
  Tokenizer tok = train_bpe(o);
  std::vector<std::string> texts;
  std::string big;
  for (int i = 0; i < 200; ++i) {
    texts.push_back(test::sample_corpus().substr(size_t(i) * 37 % 5000, 300));
    big += texts.back() + "\n";
  }
  while (big.size() < (3u << 20)) big += big;
  auto batch = encode_batch(tok, texts, {}, 4);
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(batch[i], encode(tok, texts[i]));
  EXPECT_EQ(encode_parallel(tok, big, {}, 3), encode(tok, big));
  EXPECT_EQ(decode(tok, encode(tok, big)), big);
}

TEST(Decode, RejectsIdsOutsideTheVocabulary) {
  Tokenizer tok = load_tokenizer_json(tiny_json());
  EXPECT_THROW(decode(tok, std::vector<int32_t>{31}), Error);
  EXPECT_THROW(decode(tok, std::vector<int32_t>{-1}), Error);
}
