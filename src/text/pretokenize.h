// Internal: pre-tokenizers cut normalised text into pieces that BPE merges never cross.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace todae {

struct Span {
  uint32_t begin, end;  // byte offsets
};

// The Korean-first pre-tokenizer (see korean_pretokenizer_regex() for its exact definition):
//  - a run of Hangul stays one piece, with one leading space: " 학교에서" — Korean attaches its
//    particles and endings to the word, so the word is the natural unit to learn merges in;
//  - runs of Han, of other letters (Latin etc.), digits (1-3 at a time) and punctuation are separate
//    pieces, so no merge crosses a script boundary ("GPU를" -> "GPU" "를");
//  - whitespace and English contractions behave as in the GPT-4 (cl100k) pre-tokenizer;
//  - invalid UTF-8 bytes form pieces of their own (they still encode, byte by byte).
// With max_words > 1 (superword stage), up to max_words consecutive Hangul words joined by single
// spaces form one piece ("할 수 있습니다").
void pretokenize_korean(std::string_view text, int max_words, std::vector<Span>* out);

// A compiled regular expression (PCRE2, UTF + UCP, JIT) used by Split pre-tokenizers.
struct Regex {
  struct Impl;
  std::shared_ptr<Impl> impl;
};
// Throws Error naming `where` when the pattern does not compile.
Regex compile_regex(const std::string& pattern, const std::string& where);
// All non-overlapping matches, left to right (text must be valid UTF-8).
void regex_find_all(const Regex& re, std::string_view text, std::vector<Span>* out);

}  // namespace todae
