// Internal: UTF-8 decoding, character classes for the pre-tokenizer, NFC, byte-level alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace todae::unicode {

// Decodes one code point at s[i]; returns its length in bytes, or 0 when the bytes at i are not a
// valid UTF-8 sequence (overlong, surrogate, > U+10FFFF, truncated, stray continuation).
int decode(std::string_view s, size_t i, uint32_t* cp);
void append_utf8(std::string& out, uint32_t cp);
bool is_valid_utf8(std::string_view s);

// Replaces each maximal invalid subpart with U+FFFD, as the WHATWG decoder (TextDecoder, Node's
// Buffer.toString) does, so text handed to us matches what JavaScript tools see.
std::string replace_invalid(std::string_view s);

// NFC normalisation of the valid parts; invalid bytes pass through untouched so byte-level
// tokenizers stay lossless. Fast path: text made only of code points below U+0300 and Hangul
// syllables is already NFC.
std::string nfc(std::string_view s);
std::string nfkc(std::string_view s);
std::string lowercase(std::string_view s);

// Character classes, matching PCRE2 with UCP (what \s, \p{L}, \p{N}, \p{M}, \p{P}, \p{S} mean).
enum Class : uint8_t {
  kLetter,   // \p{L}
  kMark,     // \p{M}
  kNumber,   // \p{N}
  kSpace,    // \s
  kOther,    // anything else (punctuation, symbols, controls, unassigned)
};
Class classify(uint32_t cp);
bool is_letter_lower(uint32_t cp);  // \p{Ll}

// Scripts the Korean pre-tokenizer keeps apart.
enum Script : uint8_t { kNone, kHangul, kHan, kOtherLetters };
inline bool is_hangul(uint32_t c) {
  return (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F) ||
         (c >= 0xA960 && c <= 0xA97F) || (c >= 0xD7B0 && c <= 0xD7FF);
}
inline bool is_han(uint32_t c) {
  return (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF);
}

// GPT-2's byte <-> printable code point map used by ByteLevel tokenizers ("Ġ" is the space).
uint32_t byte_to_unicode(uint8_t b);
int unicode_to_byte(uint32_t cp);  // -1 when cp is not in the byte alphabet
std::string bytes_to_bytelevel(std::string_view bytes);
// Returns false when a character is outside the byte alphabet.
bool bytelevel_to_bytes(std::string_view text, std::string* out);

}  // namespace todae::unicode
