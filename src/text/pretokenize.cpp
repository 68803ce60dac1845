#include "text/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "base/base.h"
#include "text/text.h"
#include "text/unicode.h"

namespace todae {

using namespace unicode;

// Literal character ranges rather than \p{Hangul}: every regex engine (PCRE2, Oniguruma, JavaScript
// with the u flag) reads them the same way.
static const char* kHangulClass = "\xea\xb0\x80-\xed\x9e\xa3\xe1\x84\x80-\xe1\x87\xbf\xe3\x84\xb0-\xe3\x86\x8f"
                                  "\xea\xa5\xa0-\xea\xa5\xbf\xed\x9e\xb0-\xed\x9f\xbf";  // 가-힣 ᄀ-ᇿ ㄰-㆏ ꥠ-꥿ ힰ-퟿
static const char* kHanClass = "\xe3\x90\x80-\xe4\xb6\xbf\xe4\xb8\x80-\xe9\xbf\xbf\xef\xa4\x80-\xef\xab\xbf";  // 㐀-䶿 一-鿿 豈-﫿

static std::string word_alternatives(int max_words) {
  std::string h = cat("[", kHangulClass, "]+");
  std::string c = cat("[", kHanClass, "]+");
  // Letters and marks that are neither Hangul nor Han. Written with a lookahead rather than a
  // negated class with \p{C}, so characters that newer Unicode versions assign stay consistent.
  std::string l = cat("(?:(?![", kHangulClass, kHanClass, "])[\\p{L}\\p{M}])+");
  auto word = [&](const std::string& w) {
    if (max_words <= 1) return cat(" ?", w);
    return cat(" ?", w, "(?: ", w, "){0,", max_words - 1, "}");
  };
  // Superwords span Hangul words only: stage-2 merges then go to Korean phrases ("할 수 있습니다")
  // instead of being taken by the far more repetitive English boilerplate ("This package provides").
  return cat(word(h), "|", cat(" ?", c), "|", cat(" ?", l));
}

static std::string pretokenizer_regex(int max_words) {
  return cat("(?i:'s|'t|'re|'ve|'m|'ll|'d)|", word_alternatives(max_words),
             "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
}

std::string korean_pretokenizer_regex() { return pretokenizer_regex(1); }
std::string superword_pretokenizer_regex(int max_words) { return pretokenizer_regex(max_words); }

namespace {

enum Kind : uint8_t { kH, kC, kL, kN, kS, kP, kBad };  // Hangul, Han, other letter/mark, number, space, other

struct Char {
  uint32_t cp;
  uint32_t pos;
  uint8_t len;
  Kind kind;
};

inline Kind kind_of(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kL;
    if (cp >= '0' && cp <= '9') return kN;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kS;
    return kP;
  }
  if (is_hangul(cp)) return kH;
  if (is_han(cp)) return kC;
  switch (classify(cp)) {
    case kLetter:
    case kMark:
      return kL;
    case kNumber:
      return kN;
    case kSpace:
      return kS;
    default:
      return kP;
  }
}

inline bool is_word(Kind k) { return k == kH || k == kC || k == kL; }
inline bool is_nl(uint32_t cp) { return cp == '\r' || cp == '\n'; }
inline uint32_t fold(uint32_t cp) { return cp == 0x17F ? 's' : (cp < 0x80 ? (cp | 0x20) : cp); }

}  // namespace

void pretokenize_korean(std::string_view text, int max_words, std::vector<Span>* out) {
  out->clear();
  // Decode once; pieces are then found on the code point array.
  std::vector<Char> cs;
  cs.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    int n = static_cast<uint8_t>(text[i]) < 0x80 ? (cp = uint8_t(text[i]), 1) : decode(text, i, &cp);
    if (!n) {
      cs.push_back({0xFFFFFFFF, uint32_t(i), 1, kBad});
      ++i;
      continue;
    }
    cs.push_back({cp, uint32_t(i), uint8_t(n), kind_of(cp)});
    i += n;
  }
  const size_t n = cs.size();
  auto emit = [&](size_t a, size_t b) {  // code point range [a, b)
    uint32_t end = b < n ? cs[b].pos : uint32_t(text.size());
    out->push_back({cs[a].pos, end});
  };
  auto run_end = [&](size_t j, Kind k) {
    while (j < n && cs[j].kind == k) ++j;
    return j;
  };
  auto word_end = [&](size_t j, Kind k) {  // j is at the first letter of a word of kind k
    j = run_end(j, k);
    for (int w = 1; w < max_words && k == kH; ++w) {
      if (j + 1 < n && cs[j].cp == ' ' && cs[j + 1].kind == k)
        j = run_end(j + 1, k);
      else
        break;
    }
    return j;
  };
  // [^\s\p{L}\p{N}]+ : punctuation, symbols, controls and marks.
  auto punct_end = [&](size_t j) {
    while (j < n && (cs[j].kind == kP || (cs[j].kind == kL && classify(cs[j].cp) == kMark))) ++j;
    while (j < n && is_nl(cs[j].cp)) ++j;
    return j;
  };

  size_t i = 0;
  while (i < n) {
    const Char& c = cs[i];
    if (c.kind == kBad) {
      size_t j = i;
      while (j < n && cs[j].kind == kBad) ++j;
      emit(i, j);
      i = j;
      continue;
    }
    if (c.cp == '\'' && i + 1 < n) {  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
      uint32_t a = fold(cs[i + 1].cp), b = i + 2 < n ? fold(cs[i + 2].cp) : 0;
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    size_t start = i, j = i;
    if (c.cp == ' ' && i + 1 < n) ++j;  // optional leading space for words and punctuation
    Kind k = cs[j].kind;
    if (is_word(k)) {
      size_t e = word_end(j, k);
      emit(start, e);
      i = e;
      continue;
    }
    if (k == kP) {
      size_t e = punct_end(j);
      emit(start, e);
      i = e;
      continue;
    }
    j = i;  // no word or punctuation after the space: back to the space itself
    k = c.kind;
    if (k == kN) {
      size_t e = i;
      while (e < n && e < i + 3 && cs[e].kind == kN) ++e;
      emit(i, e);
      i = e;
      continue;
    }
    // Whitespace run [i, e).
    size_t e = run_end(i, kS);
    size_t last_nl = n;
    for (size_t t = i; t < e; ++t)
      if (is_nl(cs[t].cp)) last_nl = t;
    if (last_nl != n) {  // \s*[\r\n]+
      emit(i, last_nl + 1);
      i = last_nl + 1;
    } else if (e == n || e - i == 1) {  // \s+(?!\S) at the end, or \s+ for a single space
      emit(i, e);
      i = e;
    } else {  // \s+(?!\S): leave the last space to start the next word
      emit(i, e - 1);
      i = e - 1;
    }
  }
}

// ---- PCRE2 ------------------------------------------------------------------------------------

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

static pcre2_code* compile_raw(const std::string& pattern, const std::string& where) {
  int err;
  PCRE2_SIZE off;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(where, ": invalid regular expression at offset ", off, ": ", reinterpret_cast<char*>(msg));
  }
  return code;
}

// Unicode White_Space, which the reference tokenizers (Rust regex, tiktoken, JavaScript's
// \p{White_Space}) mean by \s. PCRE2's \s adds U+180E, which left White_Space in Unicode 6.3.
static const char* kWhiteSpace = "\\t\\n\\x0B\\f\\r\\x20\\x85\\xA0\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Code points utf8proc (Unicode 15) puts in general category `prop` but Debian's PCRE2 10.42
// (Unicode 14) does not — letters of CJK Extension H, Kawi, ... — as class ranges "\x{..}-\x{..}".
// Computed once for all categories: one pass over the code points, one PCRE2 scan per category.
static const std::string& missing_from_pcre2(const std::string& prop) {
  static const std::map<std::string, std::vector<uint32_t>> missing = [] {
    std::map<std::string, std::string> by_cat;
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      const char* name = utf8proc_category_string(static_cast<utf8proc_int32_t>(cp));
      if (name[0] == 'L' || name[0] == 'M' || name[0] == 'N' || name[0] == 'P' || name[0] == 'S')
        append_utf8(by_cat[name], cp);
    }
    std::map<std::string, std::vector<uint32_t>> out;
    std::vector<Span> spans;
    for (auto& [name, text] : by_cat) {
      Regex re;
      re.impl = std::make_shared<Regex::Impl>();
      re.impl->code = compile_raw(cat("\\P{", name, "}"), "internal");
      regex_find_all(re, text, &spans);
      for (const Span& sp : spans) {
        uint32_t cp;
        decode(text, sp.begin, &cp);
        out[name].push_back(cp);
      }
    }
    return out;
  }();
  static std::mutex mu;
  static std::map<std::string, std::string> ranges_of;
  std::lock_guard lock(mu);
  auto it = ranges_of.find(prop);
  if (it != ranges_of.end()) return it->second;
  std::vector<uint32_t> cps;
  for (auto& [name, list] : missing)
    if (prop.size() == 1 ? name[0] == prop[0] : name == prop) cps.insert(cps.end(), list.begin(), list.end());
  std::sort(cps.begin(), cps.end());
  std::string ranges;
  for (size_t i = 0; i < cps.size();) {
    size_t j = i;
    while (j + 1 < cps.size() && cps[j + 1] == cps[j] + 1) ++j;
    ranges += i == j ? cat("\\x{", std::hex, cps[i], "}") : cat("\\x{", std::hex, cps[i], "}-\\x{", cps[j], "}");
    i = j + 1;
  }
  return ranges_of[prop] = ranges;
}

// Rewrites \s, \S and \p{X} so PCRE2 classifies characters as the reference implementations do
// (see kWhiteSpace and missing_from_pcre2). Inside a character class the extra ranges are added to
// the class; outside, the escape becomes a class of its own.
static std::string modernize_pattern(const std::string& p) {
  std::string out;
  bool in_class = false;
  size_t class_start = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : cat("[", kWhiteSpace, "]");
        ++i;
        continue;
      }
      if (e == 'S' && !in_class) {
        out += cat("[^", kWhiteSpace, "]");
        ++i;
        continue;
      }
      if (e == 'p' && i + 2 < p.size() && p[i + 2] == '{') {
        size_t close = p.find('}', i + 3);
        std::string prop = close == std::string::npos ? "" : p.substr(i + 3, close - i - 3);
        static const std::string known = "L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So";
        if (!prop.empty() && (" " + known + " ").find(" " + prop + " ") != std::string::npos) {
          const std::string& extra = missing_from_pcre2(prop);
          std::string esc = cat("\\p{", prop, "}");
          out += in_class || extra.empty() ? esc + extra : cat("[", esc, extra, "]");
          i = close;
          continue;
        }
      }
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_start = out.size();
    } else if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      size_t close = p.find(":]", i + 2);  // POSIX class such as [:alpha:]
      if (close != std::string::npos) {
        out.append(p, i, close + 2 - i);
        i = close + 1;
        continue;
      }
    } else if (in_class && c == ']') {
      // A ']' right after '[' or '[^' is a literal.
      size_t len = out.size() - class_start;
      bool literal = len == 1 || (len == 2 && out[class_start + 1] == '^');
      if (!literal) in_class = false;
    }
    out += c;
  }
  return out;
}

Regex compile_regex(const std::string& pattern, const std::string& where) {
  pcre2_code_free(compile_raw(pattern, where));  // errors point into the pattern as written
  pcre2_code* code = compile_raw(modernize_pattern(pattern), where);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  Regex r;
  r.impl = std::make_shared<Regex::Impl>();
  r.impl->code = code;
  return r;
}

void regex_find_all(const Regex& re, std::string_view text, std::vector<Span>* out) {
  out->clear();
  thread_local pcre2_match_data* md = nullptr;
  if (!md) md = pcre2_match_data_create(4, nullptr);
  size_t pos = 0;
  uint32_t opts = 0;  // the first call checks UTF-8; later ones skip the check
  while (pos <= text.size()) {
    int rc = pcre2_match(re.impl->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, opts, md,
                         nullptr);
    opts = PCRE2_NO_UTF_CHECK;
    if (rc < 0) {
      if (rc == PCRE2_ERROR_NOMATCH) break;
      fail("regular expression failed on the input (PCRE2 error ", rc, ")");
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e == b) {  // empty match: move on by one code point
      if (e >= text.size()) break;
      pos = e + 1;
      while (pos < text.size() && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    out->push_back({uint32_t(b), uint32_t(e)});
    pos = e;
  }
}

}  // namespace todae
