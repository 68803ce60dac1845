// A small JSON reader for one JSONL record: validates the whole object, decodes the string values
// of a few requested top-level keys and skips the rest without building a DOM. Several times
// faster than a general parser on text-heavy records, which is where the pipeline spends its time.
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "data/data_impl.h"

namespace todae {

namespace {

constexpr int kMaxDepth = 256;

// First byte in [p, e) that a JSON string cannot hold as is: '"', '\\' or a control character.
// Sixteen bytes at a time where SSE2 is there (every x86-64): most of a text is plain.
inline const char* scan_plain(const char* p, const char* e) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
  while (e - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                               _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));  // v <= 0x1F (unsigned)
    int mask = _mm_movemask_epi8(hit);
    if (mask) return p + __builtin_ctz(unsigned(mask));
    p += 16;
  }
#endif
  while (p < e && *p != '"' && *p != '\\' && static_cast<unsigned char>(*p) >= 0x20) ++p;
  return p;
}

struct Parser {
  const char* b;
  const char* p;
  const char* e;
  std::string* err;

  bool error(const char* what) {
    if (err) *err = cat(what, " at column ", (p - b) + 1);
    return false;
  }
  void ws() {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  static int hex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  }
  bool hex4(uint32_t* v) {
    if (e - p < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(p[i]);
      if (h < 0) return false;
      x = x * 16 + uint32_t(h);
    }
    p += 4;
    *v = x;
    return true;
  }
  static void put_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(char(cp));
    } else if (cp < 0x800) {
      out->push_back(char(0xC0 | (cp >> 6)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(char(0xE0 | (cp >> 12)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(char(0xF0 | (cp >> 18)));
      out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  // At the opening quote. Decodes into `out` when not null. Bytes >= 0x80 pass through unchanged
  // (UTF-8 is validated later, where invalid text is repaired or dropped and counted); lone
  // surrogate escapes become U+FFFD.
  bool string(std::string* out) {
    ++p;
    if (out) out->clear();
    while (true) {
      const char* s = p;
      p = scan_plain(p, e);
      if (out) out->append(s, size_t(p - s));
      if (p >= e) return error("unterminated string");
      char c = *p;
      if (c == '"') {
        ++p;
        return true;
      }
      if (c != '\\') return error("control character in string");
      ++p;
      if (p >= e) return error("unterminated string");
      char x = *p++;
      char lit = 0;
      switch (x) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return error("bad \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
              const char* save = p;
              p += 2;
              if (hex4(&lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                p = save;
                cp = 0xFFFD;
              }
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
          }
          if (out) put_utf8(out, cp);
          continue;
        }
        default: --p; return error("bad escape in string");
      }
      if (out) out->push_back(lit);
    }
  }
  bool digits() {
    const char* s = p;
    while (p < e && *p >= '0' && *p <= '9') ++p;
    return p > s;
  }
  bool number() {
    if (p < e && *p == '-') ++p;
    if (p < e && *p == '0') {
      ++p;
    } else if (!digits()) {
      return error("bad number");
    }
    if (p < e && *p == '.') {
      ++p;
      if (!digits()) return error("bad number");
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p < e && (*p == '+' || *p == '-')) ++p;
      if (!digits()) return error("bad number");
    }
    return true;
  }
  bool literal(const char* lit) {
    size_t n = std::strlen(lit);
    if (size_t(e - p) < n || std::memcmp(p, lit, n) != 0) return error("unexpected character");
    p += n;
    return true;
  }
  bool value(int depth) {
    if (depth > kMaxDepth) return error("nested too deeply");
    ws();
    if (p >= e) return error("unexpected end of line");
    switch (*p) {
      case '"': return string(nullptr);
      case '{': {
        ++p;
        ws();
        if (p < e && *p == '}') return ++p, true;
        while (true) {
          ws();
          if (p >= e || *p != '"') return error("expected a key");
          if (!string(nullptr)) return false;
          ws();
          if (p >= e || *p != ':') return error("expected ':'");
          ++p;
          if (!value(depth + 1)) return false;
          ws();
          if (p < e && *p == ',') {
            ++p;
            continue;
          }
          if (p < e && *p == '}') return ++p, true;
          return error("expected ',' or '}'");
        }
      }
      case '[': {
        ++p;
        ws();
        if (p < e && *p == ']') return ++p, true;
        while (true) {
          if (!value(depth + 1)) return false;
          ws();
          if (p < e && *p == ',') {
            ++p;
            continue;
          }
          if (p < e && *p == ']') return ++p, true;
          return error("expected ',' or ']'");
        }
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) return number();
        return error("unexpected character");
    }
  }
};

}  // namespace

bool parse_json_line(std::string_view line, std::span<const std::string_view> keys, std::string* values, bool* found,
                     std::string* error) {
  Parser ps{line.data(), line.data(), line.data() + line.size(), error};
  for (size_t i = 0; i < keys.size(); ++i) found[i] = false;
  ps.ws();
  if (ps.p >= ps.e || *ps.p != '{') return ps.error("expected a JSON object");
  ++ps.p;
  ps.ws();
  std::string key;
  if (ps.p < ps.e && *ps.p == '}') {
    ++ps.p;
  } else {
    while (true) {
      ps.ws();
      if (ps.p >= ps.e || *ps.p != '"') return ps.error("expected a key");
      if (!ps.string(&key)) return false;
      ps.ws();
      if (ps.p >= ps.e || *ps.p != ':') return ps.error("expected ':'");
      ++ps.p;
      ps.ws();
      size_t k = keys.size();
      for (size_t i = 0; i < keys.size(); ++i)
        if (keys[i] == key) k = i;
      if (k < keys.size()) {
        if (ps.p < ps.e && *ps.p == '"') {
          if (!ps.string(&values[k])) return false;
          found[k] = true;
        } else if (ps.p < ps.e && *ps.p == 'n' && ps.e - ps.p >= 4 && std::memcmp(ps.p, "null", 4) == 0) {
          ps.p += 4;  // "field": null is as good as absent
          found[k] = false;
        } else {
          if (error) *error = cat("field '", key, "' is not a string");
          return false;
        }
      } else if (!ps.value(1)) {
        return false;
      }
      ps.ws();
      if (ps.p < ps.e && *ps.p == ',') {
        ++ps.p;
        continue;
      }
      if (ps.p < ps.e && *ps.p == '}') {
        ++ps.p;
        break;
      }
      return ps.error("expected ',' or '}'");
    }
  }
  ps.ws();
  if (ps.p != ps.e) return ps.error("text after the JSON object");
  return true;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* hexd = "0123456789abcdef";
  out.push_back('"');
  const char* p = s.data();
  const char* e = p + s.size();
  while (p < e) {
    const char* q = scan_plain(p, e);
    out.append(p, size_t(q - p));
    if (q >= e) break;
    char c = *q;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out.push_back(hexd[(static_cast<unsigned char>(c) >> 4) & 15]);
        out.push_back(hexd[static_cast<unsigned char>(c) & 15]);
    }
    p = q + 1;
  }
  out.push_back('"');
}

void append_doc_jsonl(std::string& out, const Doc& d) {
  out += "{\"text\":";
  append_json_string(out, d.text);
  if (!d.source.empty()) {
    out += ",\"source\":";
    append_json_string(out, d.source);
  }
  if (!d.lang.empty()) {
    out += ",\"lang\":";
    append_json_string(out, d.lang);
  }
  out += "}\n";
}

}  // namespace todae
