// Internal: the tokenizer pipeline as plain data, shared by tokenizer.cpp and tokenizer_json.cpp.
#pragma once

#include <string>
#include <vector>

#include "text/bpe.h"
#include "text/pretokenize.h"
#include "text/text.h"

namespace todae {

struct AddedToken {
  std::string content;
  int32_t id;
  bool special = true;
  bool normalized = false;  // matched after normalisation instead of on the raw text
  bool lstrip = false, rstrip = false, single_word = false;
};

struct NormalizerStep {
  enum Type { kNFC, kNFKC, kLowercase, kReplace, kPrepend, kStrip } type;
  std::string pattern, content;  // Replace: literal pattern -> content; Prepend: content
  bool left = false, right = false;
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PretokenizerStep {
  enum Type { kKorean, kSplit, kByteLevel, kMetaspace } type;
  // kKorean: our hand-written pre-tokenizer (tokenizer.json carries its regex)
  int max_words = 1;
  // kSplit
  bool is_regex = true;
  std::string pattern;  // regex source or literal string
  Regex regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // kMetaspace
  std::string replacement = "\xE2\x96\x81";  // ▁
  std::string prepend_scheme = "always";     // always | first | never
  bool split = true;
};

struct DecoderStep {
  enum Type { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } type;
  std::string pattern, content;
  int start = 0, stop = 0;
  std::string replacement = "\xE2\x96\x81";
  bool prepend = true;
};

struct TemplateItem {
  bool is_sequence;  // the input ids; otherwise a special token
  std::vector<int32_t> ids;
};

struct Trie {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;                            // index into added tokens
  };
  std::vector<Node> nodes{1};
  void insert(std::string_view s, int32_t token);
  // Longest token starting at text[pos], or -1; *len gets its length.
  int32_t longest(std::string_view text, size_t pos, size_t* len) const;
};

struct TokenizerImpl {
  BpeModel model;
  std::vector<AddedToken> added;  // added and special tokens
  std::vector<int32_t> added_index_of_id;  // id -> index in `added`, or -1
  Trie raw_trie, normalized_trie;          // added tokens matched before / after normalisation
  std::vector<NormalizerStep> normalizers;
  std::vector<PretokenizerStep> pretokenizers;
  std::vector<DecoderStep> decoders;
  std::vector<TemplateItem> post_single;  // TemplateProcessing "single"; empty when none
  bool post_processor_null = true;
  std::string json_post_processor;  // kept verbatim for saving
  std::string chat_template;        // from tokenizer_config.json when present
  std::string bos_token, eos_token, pad_token;
  std::string name;                 // where it was loaded from, for messages
  int32_t vocab_size = 0;           // max id + 1 over model and added tokens

  // Called after loading: builds tries and the id tables.
  void finish();
};

}  // namespace todae
