// todae text: tokenizers. Public API of the module; everything else in src/text is internal.
//
// A Tokenizer is the whole Hugging Face pipeline, held as plain data:
//   added tokens -> normalizer -> pre-tokenizer -> BPE model -> post-processor,  and decoders back.
// It loads Hugging Face tokenizer.json files (BPE, byte-level or byte-fallback), tiktoken rank files,
// and the files todae trains itself, and writes tokenizer.json + tokenizer_config.json.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace todae {

struct TokenizerImpl;

struct Tokenizer {
  std::shared_ptr<const TokenizerImpl> impl;

  int32_t vocab_size() const;
  // Id of a token (regular or added) by its text, or -1.
  int32_t token_id(std::string_view token) const;
  // Display form of a token as it appears in tokenizer.json (e.g. "Ġhello", "<|bos|>").
  std::string token_text(int32_t id) const;
  // The bytes a token decodes to on its own.
  std::string token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
};

// Loads a folder holding tokenizer.json (and optionally tokenizer_config.json), a tokenizer.json
// file or a tiktoken rank file (*.tiktoken). Errors name the file and the field at fault.
Tokenizer load_tokenizer(const std::string& path);
Tokenizer load_tokenizer_json(std::string_view json, const std::string& name = "tokenizer.json");

struct EncodeOptions {
  bool add_special_tokens = false;  // apply the post-processor (e.g. prepend <bos>)
  bool split_special = true;        // recognise added/special tokens in the text
};

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text, const EncodeOptions& opt = {});
// Encodes many texts on up to `threads` threads; same result as encoding each alone.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tok, const std::vector<std::string>& texts,
                                               const EncodeOptions& opt = {}, int threads = 0);
// One long text on up to `threads` threads: cut at line starts where no piece can span (byte-level
// tokenizers with a splitting pre-tokenizer), so the ids equal encode()'s.
std::vector<int32_t> encode_parallel(const Tokenizer& tok, std::string_view text, const EncodeOptions& opt = {},
                                     int threads = 0);
// Replaces invalid UTF-8 with U+FFFD exactly as JavaScript's TextDecoder does.
std::string replace_invalid_utf8(std::string_view text);
// Length in bytes of the valid UTF-8 sequence at text[i] (RFC 3629: no overlongs, surrogates or
// code points above U+10FFFF), or 0 when the bytes there are not one.
int utf8_sequence_length(std::string_view text, size_t i);
size_t count_chars(std::string_view text);
std::string nfc_normalize(std::string_view text);  // invalid bytes pass through  // code points; each invalid byte counts as one

// Throws Error on an id outside the vocabulary.
std::string decode(const Tokenizer& tok, std::span<const int32_t> ids, bool skip_special = false);

// The pieces the pre-tokenizer cuts text into (after normalisation), for inspection and tests.
std::vector<std::string> pretokenize(const Tokenizer& tok, std::string_view text);

// ---- training ---------------------------------------------------------------------------------
struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // files or directories (text, or JSONL with jsonl_field)
  std::string jsonl_field = "text";
  int32_t vocab_size = 32000;  // including the 256 bytes and the special tokens
  std::vector<std::string> extra_special;
  int threads = 0;              // 0: all cores
  uint64_t min_frequency = 2;   // pairs seen fewer times are never merged
  // SuperBPE-style second stage: the last `superword_fraction` of the merges may span the single
  // space between Hangul words (e.g. "할 수 있습니다"). 0 disables it.
  double superword_fraction = 0.0;
  int max_superword_words = 16;  // at most 64
  size_t max_unique_words = 20'000'000;  // bound on the word-count table (memory)
  bool progress = true;
};

struct TokenizerTrainStats {
  uint64_t bytes = 0, documents = 0, unique_words = 0, merges = 0, superword_merges = 0;
  double seconds_count = 0, seconds_merge = 0;
};

Tokenizer train_bpe(const TokenizerTrainOptions& opt, TokenizerTrainStats* stats = nullptr);

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (with the default chat template).
void save_tokenizer(const Tokenizer& tok, const std::string& dir);
std::string tokenizer_to_json(const Tokenizer& tok);

// The special tokens every todae tokenizer has, in id order at the end of the vocabulary.
std::vector<std::string> default_special_tokens();
// Jinja chat template written into tokenizer_config.json.
std::string default_chat_template();

// The Korean-first pre-tokenizer as a regular expression (what tokenizer.json carries so other
// tools split text the same way); todae itself runs a hand-written equivalent.
std::string korean_pretokenizer_regex();
std::string superword_pretokenizer_regex(int max_words);

}  // namespace todae
