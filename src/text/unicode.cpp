#include "text/unicode.h"

#include <cstdlib>
#include <utf8proc.h>

#include "base/base.h"

namespace todae::unicode {

int decode(std::string_view s, size_t i, uint32_t* cp) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  size_t left = s.size() - i;
  uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  if (b0 < 0xC2) return 0;
  if (b0 < 0xE0) {
    if (left < 2 || (p[1] & 0xC0) != 0x80) return 0;
    *cp = (uint32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
    return 2;
  }
  if (b0 < 0xF0) {
    if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (b0 == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && p[1] >= 0xA0) return 0;  // surrogate
    *cp = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  if (b0 < 0xF5) {
    if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (b0 == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && p[1] >= 0x90) return 0;  // > U+10FFFF
    *cp = (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) | (uint32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    return 4;
  }
  return 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int n = decode(s, i, &cp);
    if (!n) return false;
    i += n;
  }
  return true;
}

// Length of the maximal subpart of an ill-formed sequence starting at i (WHATWG / Unicode 3.9):
// the longest prefix that could still begin a valid sequence, at least one byte.
static size_t maximal_subpart(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  uint8_t b0 = p[i];
  int need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t n = 1;
  for (int k = 0; k < need; ++k) {
    if (i + n >= s.size()) break;
    uint8_t b = p[i + n];
    if (b < lo || b > hi) break;
    lo = 0x80, hi = 0xBF;
    ++n;
  }
  return n;
}

std::string replace_invalid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    int n = static_cast<uint8_t>(s[i]) < 0x80 ? 1 : decode(s, i, &cp);
    if (n) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal_subpart(s, i);
    }
  }
  return out;
}

static std::string utf8proc_map_valid(std::string_view s, int options) {
  utf8proc_uint8_t* res = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &res,
                                    static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    std::free(res);
    return std::string(s);  // cannot happen for valid UTF-8; keep the text rather than lose it
  }
  std::string out(reinterpret_cast<char*>(res), static_cast<size_t>(n));
  std::free(res);
  return out;
}

// Applies a utf8proc mapping to the valid runs of s, copying invalid bytes through. Runs that are
// trivially stable (ASCII, Latin-1 below U+0300, Hangul syllables) are copied without calling it.
static std::string map_valid_runs(std::string_view s, int options, bool fast_ok) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    bool simple = true;
    uint32_t cp;
    while (i < s.size()) {
      int n = static_cast<uint8_t>(s[i]) < 0x80 ? (cp = uint8_t(s[i]), 1) : decode(s, i, &cp);
      if (!n) break;
      if (!(cp < 0x300 || (cp >= 0xAC00 && cp <= 0xD7A3))) simple = false;
      i += n;
    }
    if (i > start) {
      std::string_view run = s.substr(start, i - start);
      if (simple && fast_ok)
        out.append(run);
      else
        out += utf8proc_map_valid(run, options);
    }
    while (i < s.size() && static_cast<uint8_t>(s[i]) >= 0x80 && !decode(s, i, &cp)) out.push_back(s[i++]);
  }
  return out;
}

std::string nfc(std::string_view s) { return map_valid_runs(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE, true); }
std::string nfkc(std::string_view s) {
  return map_valid_runs(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, false);
}
std::string lowercase(std::string_view s) { return map_valid_runs(s, UTF8PROC_CASEFOLD, false); }

Class classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kSpace;
    return kOther;
  }
  if (cp >= 0xAC00 && cp <= 0xD7A3) return kLetter;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
      return kMark;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return kSpace;
    default:
      return cp == 0x85 ? kSpace : kOther;
  }
}

bool is_letter_lower(uint32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_LL;
}

// GPT-2: printable bytes map to themselves; the other 68 go to U+0100.. in byte order.
static struct ByteTables {
  uint32_t to_cp[256];
  int16_t from_cp[512];
  ByteTables() {
    for (auto& v : from_cp) v = -1;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? uint32_t(b) : uint32_t(256 + n++);
      from_cp[to_cp[b]] = int16_t(b);
    }
  }
} g_bytes;

uint32_t byte_to_unicode(uint8_t b) { return g_bytes.to_cp[b]; }
int unicode_to_byte(uint32_t cp) { return cp < 512 ? g_bytes.from_cp[cp] : -1; }

std::string bytes_to_bytelevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) append_utf8(out, g_bytes.to_cp[c]);
  return out;
}

bool bytelevel_to_bytes(std::string_view text, std::string* out) {
  out->clear();
  uint32_t cp;
  for (size_t i = 0; i < text.size();) {
    int n = decode(text, i, &cp);
    if (!n) return false;
    int b = unicode_to_byte(cp);
    if (b < 0) return false;
    out->push_back(char(b));
    i += n;
  }
  return true;
}

}  // namespace todae::unicode
