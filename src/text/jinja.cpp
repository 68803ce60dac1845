// Jinja2 template engine for chat templates; see jinja.h for the semantics and how they relate to
// @huggingface/jinja (the reference) and Python Jinja2.
//
// Pipeline: preprocess (drop final "\n", lstrip_blocks, trim_blocks, generation tags; keeps a map
// back to source offsets) -> lexer (token rules of the reference) -> recursive-descent parser
// (AST of Nodes, filter and test names checked here) -> tree-walking interpreter over Values.
#include "text/jinja.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <set>

#include "base/base.h"

namespace todae {

namespace {

using ojson = nlohmann::ordered_json;

// ================================================================== UTF-8 / JavaScript strings
constexpr uint32_t kBadByte = 0xFFFFFFFF;

uint32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  if (c < 0x80) { ++i; return c; }
  int len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (c >= 0xF5) len = 0;
  if (len == 0 || i + len > s.size()) { ++i; return kBadByte; }
  uint32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    unsigned char d = s[i + k];
    if ((d & 0xC0) != 0x80) { ++i; return kBadByte; }
    cp = (cp << 6) | (d & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    ++i;
    return kBadByte;
  }
  i += len;
  return cp;
}

void put_cp(std::string& out, uint32_t cp) {
  if (cp < 0x80) out += char(cp);
  else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
  }
}

// JavaScript's \s (WhiteSpace + LineTerminator), used by trim() and the reference's lexer.
bool js_space(uint32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

size_t js_space_at(std::string_view s, size_t i) {  // bytes of a whitespace char at i, or 0
  if (i >= s.size()) return 0;
  size_t j = i;
  uint32_t c = next_cp(s, j);
  return js_space(c) ? j - i : 0;
}

std::string_view trim_start(std::string_view s) {
  size_t i = 0;
  while (size_t k = js_space_at(s, i)) i += k;
  return s.substr(i);
}

std::string_view trim_end(std::string_view s) {
  size_t end = 0, i = 0;
  while (i < s.size()) {
    uint32_t c = next_cp(s, i);
    if (!js_space(c)) end = i;
  }
  return s.substr(0, end);
}

std::string_view trim_both(std::string_view s) { return trim_end(trim_start(s)); }

std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    size_t st = i;
    uint32_t c = next_cp(s, i);
    out.push_back(c == kBadByte ? 0x80000000u | (unsigned char)s[st] : c);
  }
  return out;
}

void put_any(std::string& out, uint32_t c) {  // inverse of code_points()
  if (c & 0x80000000u) out += char(c & 0xFF);
  else put_cp(out, c);
}

std::vector<std::string> chars_of(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t st = i;
    next_cp(s, i);
    out.emplace_back(s.substr(st, i - st));
  }
  return out;
}

size_t utf16_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t c = next_cp(s, i);
    n += c != kBadByte && c >= 0x10000 ? 2 : 1;
  }
  return n;
}

std::string map_case(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t st = i;
    uint32_t c = next_cp(s, i);
    if (c == kBadByte) { out += s[st]; continue; }
    put_cp(out, uint32_t(upper ? utf8proc_toupper(int32_t(c)) : utf8proc_tolower(int32_t(c))));
  }
  return out;
}

bool ascii_word(unsigned char c) { return std::isalnum(c) || c == '_'; }

// The reference's title(): upper-cases each ASCII word character that starts a \b\w match.
std::string js_title(std::string_view s) {
  std::string out(s);
  bool prev = false;
  for (char& ch : out) {
    unsigned char c = ch;
    bool w = c < 0x80 && ascii_word(c);
    if (w && !prev && c >= 'a' && c <= 'z') ch = char(c - 32);
    prev = w;
  }
  return out;
}

std::string capitalize(std::string_view s) {
  if (s.empty()) return {};
  size_t i = 0;
  next_cp(s, i);
  return map_case(s.substr(0, i), true) + std::string(s.substr(i));
}

// JavaScript Number.prototype.toString for finite and non-finite doubles.
std::string js_number(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, r.ptr - buf);
  std::string sign;
  if (sci[0] == '-') { sign = "-"; sci.remove_prefix(1); }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) if (c != '.') digits += c;
  int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  int k = int(digits.size()), n = exp10 + 1;
  std::string out;
  if (k <= n && n <= 21) out = digits + std::string(n - k, '0');
  else if (0 < n && n <= 21) out = digits.substr(0, n) + "." + digits.substr(n);
  else if (-6 < n && n <= 0) out = "0." + std::string(-n, '0') + digits;
  else {
    out = digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += cat("e", n - 1 >= 0 ? "+" : "-", std::abs(n - 1));
  }
  return sign + out;
}

// The reference's FloatValue.toString(): integral values keep one decimal ("3.0").
std::string float_str(double d) {
  if (d == 0 && std::signbit(d)) return "-0.0";
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e21) {
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.1f", d);
    return buf;
  }
  return js_number(d);
}

// ================================================================== values
struct Interp;
struct Value;
struct Args;
using Fn = std::function<Value(Interp&, Args&)>;
struct Obj;

struct RtErr {  // a runtime error without position; the evaluating node adds it
  std::string msg;
};
struct RaiseErr {  // raise_exception(msg)
  std::string msg;
};
template <typename... A>
[[noreturn]] void rt_fail(const A&... a) {
  throw RtErr{cat(a...)};
}

constexpr int kMaxNesting = 512;

struct Value {
  enum Kind : uint8_t { Undef, None, Bool, Int, Float, Str, List, Dict, Ns, Func };
  Kind k = Undef;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<Obj> o;             // List, Dict, Ns
  std::shared_ptr<const Fn> fn;       // Func

  static Value none() { Value v; v.k = None; return v; }
  static Value boolean(bool x) { Value v; v.k = Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.k = Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.k = Float; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.k = Str; v.s = std::move(x); return v; }
  static Value func(Fn f) { Value v; v.k = Func; v.fn = std::make_shared<const Fn>(std::move(f)); return v; }
  static Value list(std::vector<Value> items);
  static Value dict(std::vector<std::pair<std::string, Value>> entries, Kind kind = Dict);
  bool is_container() const { return k == List || k == Dict || k == Ns; }
};

struct Obj {
  std::vector<Value> items;                            // List
  std::vector<std::pair<std::string, Value>> entries;  // Dict, Ns
  int depth = 1;
  bool pinned = false;  // holds (transitively) a namespace or a callable: may not go into a namespace
  const Value* find(std::string_view key) const {
    for (auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  }
};

void account_child(Obj& o, const Value& c) {
  if (c.is_container()) {
    o.depth = std::max(o.depth, c.o->depth + 1);
    if (c.o->pinned || c.k == Value::Ns) o.pinned = true;
  } else if (c.k == Value::Func) {
    o.pinned = true;
  }
}

Value Value::list(std::vector<Value> items) {
  Value v;
  v.k = List;
  v.o = std::make_shared<Obj>();
  for (auto& c : items) account_child(*v.o, c);
  if (v.o->depth > kMaxNesting) rt_fail("values nested more than ", kMaxNesting, " deep");
  v.o->items = std::move(items);
  return v;
}

Value Value::dict(std::vector<std::pair<std::string, Value>> entries, Kind kind) {
  Value v;
  v.k = kind;
  v.o = std::make_shared<Obj>();
  for (auto& e : entries) account_child(*v.o, e.second);
  if (v.o->depth > kMaxNesting) rt_fail("values nested more than ", kMaxNesting, " deep");
  v.o->entries = std::move(entries);
  return v;
}

const char* kind_name(const Value& v) {
  switch (v.k) {
    case Value::Undef: return "undefined";
    case Value::None: return "none";
    case Value::Bool: return "boolean";
    case Value::Int: return "integer";
    case Value::Float: return "float";
    case Value::Str: return "string";
    case Value::List: return "list";
    case Value::Dict: return "dict";
    case Value::Ns: return "namespace";
    case Value::Func: return "callable";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.k) {
    case Value::Undef: case Value::None: return false;
    case Value::Bool: return v.b;
    case Value::Int: return v.i != 0;
    case Value::Float: return v.f != 0;
    case Value::Str: return !v.s.empty();
    case Value::List: return !v.o->items.empty();
    case Value::Dict: return !v.o->entries.empty();
    case Value::Ns: case Value::Func: return true;
  }
  return false;
}

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  Value caller;  // set by {% call %}
  const Value* get(size_t i, std::string_view name) const {
    if (i < pos.size()) return &pos[i];
    for (auto& [k, v] : kw)
      if (k == name) return &v;
    return nullptr;
  }
};

// ------------------------------------------------------------------ JSON / string forms
struct JsonOpts {
  int indent = -1;  // -1: none
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool custom_sep = false;
  std::string item_sep, key_sep;
};

void json_string(std::string& out, std::string_view s, bool ascii) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    size_t st = i;
    uint32_t c = next_cp(s, i);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    auto u4 = [&](uint32_t u) {
      out += "\\u";
      for (int sh = 12; sh >= 0; sh -= 4) out += hex[(u >> sh) & 0xF];
    };
    if (c < 0x20) u4(c);
    else if (c == kBadByte) { if (ascii) u4(0xFFFD); else out += s[st]; }
    else if (ascii && c >= 0x7F) {
      if (c >= 0x10000) { u4(0xD800 + ((c - 0x10000) >> 10)); u4(0xDC00 + ((c - 0x10000) & 0x3FF)); }
      else u4(c);
    } else out.append(s.substr(st, i - st));
  }
  out += '"';
}

std::string json_number(const Value& v) {
  if (v.k == Value::Int) return std::to_string(v.i);
  if (!std::isfinite(v.f)) return "null";
  return js_number(v.f);
}

void to_json(std::string& out, const Value& v, const JsonOpts& o, int depth, bool undef_null) {
  if (depth > 2 * kMaxNesting + 8) rt_fail("value nested too deep for tojson");
  switch (v.k) {
    case Value::Undef: out += undef_null ? "null" : "undefined"; return;
    case Value::None: out += "null"; return;
    case Value::Bool: out += v.b ? "true" : "false"; return;
    case Value::Int: case Value::Float: out += json_number(v); return;
    case Value::Str: json_string(out, v.s, o.ensure_ascii); return;
    case Value::Func: rt_fail("cannot convert a callable to JSON");
    default: break;
  }
  bool ind = o.indent > 0;
  std::string item_sep = o.custom_sep ? o.item_sep : ind ? "," : ", ";
  std::string key_sep = o.custom_sep ? o.key_sep : ": ";
  std::string base = "\n" + std::string(size_t(ind ? o.indent : 0) * depth, ' ');
  std::string child = base + std::string(ind ? o.indent : 0, ' ');
  if (v.k == Value::List) {
    const auto& items = v.o->items;
    out += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep;
      if (ind) out += child;
      to_json(out, items[i], o, depth + 1, undef_null);
    }
    if (ind && !items.empty()) out += base;
    out += ']';
    return;
  }
  std::vector<const std::pair<std::string, Value>*> es;
  for (auto& e : v.o->entries) es.push_back(&e);
  if (o.sort_keys)
    std::stable_sort(es.begin(), es.end(), [](auto* a, auto* b) { return a->first < b->first; });
  out += '{';
  for (size_t i = 0; i < es.size(); ++i) {
    if (i) out += item_sep;
    if (ind) out += child;
    json_string(out, es[i]->first, o.ensure_ascii);
    out += key_sep;
    to_json(out, es[i]->second, o, depth + 1, undef_null);
  }
  if (ind && !es.empty()) out += base;
  out += '}';
}

// How a value prints ({{ x }}, ~, +, string filter): the reference's toString().
std::string to_str(const Value& v) {
  switch (v.k) {
    case Value::Undef: return "";
    case Value::None: return "None";
    case Value::Bool: return v.b ? "true" : "false";
    case Value::Int: return std::to_string(v.i);
    case Value::Float: return float_str(v.f);
    case Value::Str: return v.s;
    case Value::Func: return "<function>";
    default: {
      std::string out;
      to_json(out, v, JsonOpts{}, 0, false);
      return out;
    }
  }
}

bool is_num(const Value& v) { return v.k == Value::Int || v.k == Value::Float || v.k == Value::Bool; }
double num_of(const Value& v) { return v.k == Value::Int ? double(v.i) : v.k == Value::Bool ? double(v.b) : v.f; }

bool equal(const Value& a, const Value& b, int depth = 0) {
  if (depth > 2 * kMaxNesting + 8) rt_fail("values nested too deep to compare");
  if (is_num(a) && is_num(b)) {
    if (a.k != Value::Float && b.k != Value::Float) return (a.k == Value::Int ? a.i : a.b) == (b.k == Value::Int ? b.i : b.b);
    return num_of(a) == num_of(b);
  }
  if (a.k != b.k) return false;
  switch (a.k) {
    case Value::Undef: case Value::None: return true;
    case Value::Str: return a.s == b.s;
    case Value::Func: return a.fn == b.fn;
    case Value::Ns: return a.o == b.o;
    case Value::List: {
      if (a.o == b.o) return true;
      if (a.o->items.size() != b.o->items.size()) return false;
      for (size_t i = 0; i < a.o->items.size(); ++i)
        if (!equal(a.o->items[i], b.o->items[i], depth + 1)) return false;
      return true;
    }
    case Value::Dict: {
      if (a.o == b.o) return true;
      if (a.o->entries.size() != b.o->entries.size()) return false;
      for (auto& [k, v] : a.o->entries) {
        const Value* w = b.o->find(k);
        if (!w || !equal(v, *w, depth + 1)) return false;
      }
      return true;
    }
    default: return false;
  }
}

// Ordering for sort / dictsort / < >: numbers (booleans count) and strings; NaN sorts last.
int compare(const Value& a, const Value& b, bool case_sensitive) {
  if (a.k == Value::None && b.k == Value::None) return 0;
  if (is_num(a) && is_num(b)) {
    if (a.k == Value::Int && b.k == Value::Int) return a.i < b.i ? -1 : a.i > b.i;
    double x = num_of(a), y = num_of(b);
    bool nx = std::isnan(x), ny = std::isnan(y);
    if (nx || ny) return nx == ny ? 0 : nx ? 1 : -1;
    return x < y ? -1 : x > y;
  }
  if (a.k == Value::Str && b.k == Value::Str) {
    if (case_sensitive) return a.s.compare(b.s) < 0 ? -1 : a.s.compare(b.s) > 0;
    std::string x = map_case(a.s, false), y = map_case(b.s, false);
    return x.compare(y) < 0 ? -1 : x.compare(y) > 0;
  }
  rt_fail("cannot compare ", kind_name(a), " with ", kind_name(b));
}

Value json_to_value(const ojson& j, int depth = 0) {
  if (depth > kMaxNesting) rt_fail("context JSON nested more than ", kMaxNesting, " deep");
  switch (j.type()) {
    case ojson::value_t::null: return Value::none();
    case ojson::value_t::boolean: return Value::boolean(j.get<bool>());
    case ojson::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case ojson::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Value::integer(int64_t(u)) : Value::number(double(u));
    }
    case ojson::value_t::number_float: {
      // JSON.parse has one number type: integral values become integers there.
      double d = j.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) return Value::integer(int64_t(d));
      return Value::number(d);
    }
    case ojson::value_t::string: return Value::str(j.get<std::string>());
    case ojson::value_t::array: {
      std::vector<Value> items;
      for (auto& e : j) items.push_back(json_to_value(e, depth + 1));
      return Value::list(std::move(items));
    }
    case ojson::value_t::object: {
      // JavaScript objects list array-index keys first, in ascending numeric order.
      auto index_key = [](const std::string& k, uint64_t& n) {
        if (k.empty() || k.size() > 10 || (k.size() > 1 && k[0] == '0')) return false;
        n = 0;
        for (char c : k) {
          if (c < '0' || c > '9') return false;
          n = n * 10 + uint64_t(c - '0');
        }
        return n < 4294967295ull;
      };
      std::vector<std::pair<uint64_t, std::pair<std::string, Value>>> idx;
      std::vector<std::pair<std::string, Value>> rest;
      for (auto it = j.begin(); it != j.end(); ++it) {
        uint64_t n;
        Value v = json_to_value(it.value(), depth + 1);
        if (index_key(it.key(), n)) idx.push_back({n, {it.key(), std::move(v)}});
        else rest.emplace_back(it.key(), std::move(v));
      }
      std::stable_sort(idx.begin(), idx.end(), [](auto& a, auto& b) { return a.first < b.first; });
      std::vector<std::pair<std::string, Value>> entries;
      for (auto& e : idx) entries.push_back(std::move(e.second));
      for (auto& e : rest) entries.push_back(std::move(e));
      return Value::dict(std::move(entries));
    }
    default: return Value::none();
  }
}

// ================================================================== source, preprocessing
struct Src {
  std::string text;
  std::vector<uint32_t> pos;  // source offset of each byte of text, plus one for the end
  void add(char c, uint32_t p) { text += c; pos.push_back(p); }
};

bool line_start(std::string_view t, size_t i) {
  if (i == 0) return true;
  char c = t[i - 1];
  if (c == '\n' || c == '\r') return true;
  return i >= 3 && (unsigned char)t[i - 3] == 0xE2 && (unsigned char)t[i - 2] == 0x80 &&
         ((unsigned char)t[i - 1] == 0xA8 || (unsigned char)t[i - 1] == 0xA9);
}

Src preprocess(std::string_view tmpl) {
  if (!tmpl.empty() && tmpl.back() == '\n') tmpl.remove_suffix(1);
  // lstrip_blocks: spaces/tabs at a line start before "{%", "{#" or "{-".
  Src a;
  for (size_t i = 0; i < tmpl.size();) {
    if (line_start(tmpl, i)) {
      size_t j = i;
      while (j < tmpl.size() && (tmpl[j] == ' ' || tmpl[j] == '\t')) ++j;
      if (j > i && j + 1 < tmpl.size() && tmpl[j] == '{' &&
          (tmpl[j + 1] == '#' || tmpl[j + 1] == '%' || tmpl[j + 1] == '-')) {
        i = j;
      }
    }
    a.add(tmpl[i], uint32_t(i));
    ++i;
  }
  a.pos.push_back(uint32_t(tmpl.size()));
  // trim_blocks: the newline right after "#}", "%}" or "-}".
  Src b;
  const std::string& t = a.text;
  for (size_t i = 0; i < t.size();) {
    if (i + 2 < t.size() && (t[i] == '#' || t[i] == '%' || t[i] == '-') && t[i + 1] == '}' && t[i + 2] == '\n') {
      b.add(t[i], a.pos[i]);
      b.add(t[i + 1], a.pos[i + 1]);
      i += 3;
      continue;
    }
    b.add(t[i], a.pos[i]);
    ++i;
  }
  b.pos.push_back(a.pos.back());
  // {% generation %} / {% endgeneration %} (transformers' assistant-mask markers) vanish, with the
  // whitespace around them where the tag says '-'.
  if (b.text.find("generation") == std::string::npos) return b;
  Src c;
  const std::string& u = b.text;
  size_t done = 0;  // bytes of u already copied or consumed
  for (size_t p = u.find("{%"); p != std::string::npos; p = u.find("{%", p + 1)) {
    if (p < done) continue;
    size_t q = p + 2;
    bool lstrip = q < u.size() && u[q] == '-';
    if (lstrip) ++q;
    while (size_t k = js_space_at(u, q)) q += k;
    if (u.compare(q, 3, "end") == 0 && u.compare(q + 3, 10, "generation") == 0) q += 3;
    if (u.compare(q, 10, "generation") != 0) continue;
    q += 10;
    while (size_t k = js_space_at(u, q)) q += k;
    bool rstrip = q < u.size() && u[q] == '-';
    if (rstrip) ++q;
    if (u.compare(q, 2, "%}") != 0) continue;
    q += 2;
    // whitespace run before p (not before `done`)
    size_t ws = p;
    while (ws > done) {
      size_t back = ws - 1;
      while (back > done && ((unsigned char)u[back] & 0xC0) == 0x80) --back;
      if (js_space_at(u, back) != ws - back) break;
      ws = back;
    }
    size_t after = q;
    while (size_t k = js_space_at(u, after)) after += k;
    for (size_t i = done; i < (lstrip ? ws : p); ++i) c.add(u[i], b.pos[i]);
    if (!rstrip)
      for (size_t i = q; i < after; ++i) c.add(u[i], b.pos[i]);
    done = after;
  }
  for (size_t i = done; i < u.size(); ++i) c.add(u[i], b.pos[i]);
  c.pos.push_back(b.pos.back());
  return c;
}

// ================================================================== lexer
enum class T : uint8_t {
  Text, Num, Str, Ident, Equals, LParen, RParen, OpenStmt, CloseStmt, OpenExpr, CloseExpr, LBracket,
  RBracket, LBrace, RBrace, Comma, Dot, Colon, Pipe, Add, Mul, Pow, Cmp, Unary, Comment, End
};

struct Tok {
  T type;
  std::string v;
  uint32_t pos;
};

struct Where {
  std::string source;
  std::string text;  // the original template
  std::string at(uint32_t pos) const {
    size_t line = 1, col = 1;
    size_t end = std::min<size_t>(pos, text.size());
    for (size_t i = 0; i < end;) {
      if (text[i] == '\n') { ++line; col = 1; ++i; continue; }
      next_cp(text, i);
      ++col;
    }
    return cat(source, ":", line, ":", col, ": ");
  }
};

std::vector<Tok> lex(const Src& src, const Where& where) {
  const std::string& t = src.text;
  const size_t n = t.size();
  std::vector<Tok> toks;
  size_t i = 0;
  int curly = 0;
  auto err = [&](size_t at, const std::string& msg) {
    throw Error(where.at(src.pos[std::min(at, n)]) + msg);
  };
  auto push = [&](T type, std::string v, size_t at) { toks.push_back(Tok{type, std::move(v), src.pos[at]}); };
  auto last = [&]() { return toks.empty() ? T::End : toks.back().type; };
  auto strip_trailing = [&]() {
    if (!toks.empty() && toks.back().type == T::Text) {
      toks.back().v = std::string(trim_end(toks.back().v));
      if (toks.back().v.empty()) toks.pop_back();
    }
  };
  auto skip_ws = [&]() {
    while (size_t k = js_space_at(t, i)) i += k;
  };
  auto starts = [&](const char* s) { return t.compare(i, std::strlen(s), s) == 0; };
  static const std::pair<const char*, T> table[] = {
      {"{%", T::OpenStmt}, {"%}", T::CloseStmt}, {"{{", T::OpenExpr}, {"}}", T::CloseExpr}, {"(", T::LParen},
      {")", T::RParen},    {"{", T::LBrace},     {"}", T::RBrace},    {"[", T::LBracket},  {"]", T::RBracket},
      {",", T::Comma},     {".", T::Dot},        {":", T::Colon},     {"|", T::Pipe},      {"<=", T::Cmp},
      {">=", T::Cmp},      {"==", T::Cmp},       {"!=", T::Cmp},      {"<", T::Cmp},       {">", T::Cmp},
      {"+", T::Add},       {"-", T::Add},        {"~", T::Add},       {"**", T::Pow},      {"*", T::Mul},
      {"//", T::Mul},      {"/", T::Mul},        {"%", T::Mul},       {"=", T::Equals}};
  while (i < n) {
    T lt = last();
    if (lt == T::End || lt == T::CloseStmt || lt == T::CloseExpr || lt == T::Comment) {
      size_t st = i;
      while (i < n && !(t[i] == '{' && i + 1 < n && (t[i + 1] == '%' || t[i + 1] == '{' || t[i + 1] == '#'))) ++i;
      if (i > st) {
        push(T::Text, t.substr(st, i - st), st);
        continue;
      }
    }
    if (starts("{#")) {
      size_t st = i;
      i += 2;
      bool strip_before = i < n && t[i] == '-';
      if (strip_before) ++i;
      size_t cs = i;
      while (!(i + 1 < n && t[i] == '#' && t[i + 1] == '}')) {
        if (i + 2 >= n) err(st, "unterminated comment (missing '#}')");
        ++i;
      }
      bool strip_after = i > cs && t[i - 1] == '-';
      if (strip_before) strip_trailing();
      push(T::Comment, "", st);
      i += 2;
      if (strip_after) skip_ws();
      continue;
    }
    if (starts("{%-")) {
      strip_trailing();
      push(T::OpenStmt, "{%", i);
      i += 3;
      continue;
    }
    if (starts("{{-")) {
      strip_trailing();
      push(T::OpenExpr, "{{", i);
      curly = 0;
      i += 3;
      continue;
    }
    if (js_space_at(t, i)) {
      skip_ws();
      if (i >= n) err(i, "unexpected end of template");
    }
    if (starts("-%}")) {
      push(T::CloseStmt, "%}", i);
      i += 3;
      skip_ws();
      continue;
    }
    if (starts("-}}")) {
      push(T::CloseExpr, "}}", i);
      i += 3;
      skip_ws();
      continue;
    }
    char ch = t[i];
    if (ch == '-' || ch == '+') {
      T l2 = last();
      if (l2 == T::Text || l2 == T::End) err(i, cat("unexpected character '", ch, "'"));
      if (l2 != T::Ident && l2 != T::Num && l2 != T::Str && l2 != T::RParen && l2 != T::RBracket) {
        size_t st = i++;
        std::string num;
        while (i < n && std::isdigit((unsigned char)t[i])) num += t[i++];
        if (!num.empty() && i + 1 < n && t[i] == '.' && std::isdigit((unsigned char)t[i + 1])) {
          ++i;
          num += '.';
          while (i < n && std::isdigit((unsigned char)t[i])) num += t[i++];
        }
        push(num.empty() ? T::Unary : T::Num, std::string(1, ch) + num, st);
        continue;
      }
    }
    bool matched = false;
    for (auto& [seq, type] : table) {
      if (type == T::CloseExpr && curly > 0) continue;
      if (starts(seq)) {
        push(type, seq, i);
        if (type == T::OpenExpr) curly = 0;
        else if (type == T::LBrace) ++curly;
        else if (type == T::RBrace) --curly;
        i += std::strlen(seq);
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (ch == '\'' || ch == '"') {
      size_t st = i++;
      std::string s;
      for (;;) {
        if (i >= n) err(st, "unterminated string literal");
        char c = t[i];
        if (c == ch) break;
        if (c != '\\') {
          s += c;
          ++i;
          continue;
        }
        if (++i >= n) err(st, "unterminated string literal");
        char e = t[i++];
        auto hexval = [&](size_t len) -> uint32_t {
          if (i + len > n) err(i - 2, "invalid escape sequence");
          uint32_t v = 0;
          for (size_t k = 0; k < len; ++k) {
            char h = t[i + k];
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) err(i - 2, "invalid escape sequence");
            v = v * 16 + uint32_t(d);
          }
          i += len;
          return v;
        };
        switch (e) {
          case 'n': s += '\n'; break;
          case 't': s += '\t'; break;
          case 'r': s += '\r'; break;
          case 'b': s += '\b'; break;
          case 'f': s += '\f'; break;
          case 'v': s += '\v'; break;
          case '\'': s += '\''; break;
          case '"': s += '"'; break;
          case '\\': s += '\\'; break;
          case 'x': put_cp(s, hexval(2)); break;
          case 'u': {
            uint32_t u = hexval(4);
            if (u >= 0xD800 && u < 0xDC00 && i + 6 <= n && t[i] == '\\' && t[i + 1] == 'u') {
              size_t save = i;
              i += 2;
              uint32_t lo = hexval(4);
              if (lo >= 0xDC00 && lo < 0xE000) u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
              else i = save;
            }
            put_cp(s, u >= 0xD800 && u < 0xE000 ? 0xFFFD : u);
            break;
          }
          default: err(i - 2, cat("unknown escape sequence '\\", e, "'"));
        }
      }
      ++i;
      push(T::Str, std::move(s), st);
      continue;
    }
    if (std::isdigit((unsigned char)ch)) {
      size_t st = i;
      std::string num;
      while (i < n && std::isdigit((unsigned char)t[i])) num += t[i++];
      if (last() != T::Dot && i + 1 < n && t[i] == '.' && std::isdigit((unsigned char)t[i + 1])) {
        ++i;
        num += '.';
        while (i < n && std::isdigit((unsigned char)t[i])) num += t[i++];
      }
      push(T::Num, std::move(num), st);
      continue;
    }
    if ((unsigned char)ch < 0x80 && ascii_word((unsigned char)ch)) {
      size_t st = i;
      while (i < n && (unsigned char)t[i] < 0x80 && ascii_word((unsigned char)t[i])) ++i;
      push(T::Ident, t.substr(st, i - st), st);
      continue;
    }
    size_t j = i;
    next_cp(t, j);
    err(i, cat("unexpected character '", t.substr(i, j - i), "'"));
  }
  toks.push_back(Tok{T::End, "", src.pos[n]});
  return toks;
}

// ================================================================== AST
enum class NK : uint8_t {
  Lit, Name, ListLit, TupleLit, DictLit, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Cond,
  Text, Output, If, For, Set, Macro, CallBlock, FilterBlock, Break, Continue
};

struct Node;
using NodeP = std::unique_ptr<Node>;

struct Node {
  NK k;
  uint32_t pos = 0;
  std::string str;  // name, operator, text, filter/test name
  Value lit;
  bool negate = false;
  std::vector<NodeP> kids;          // may hold nullptr (slice parts, defaults)
  std::vector<std::string> names;   // argument names ("" = positional), parameters, loop targets
  std::vector<NodeP> body, orelse;  // statements
};

NodeP mk(NK k, uint32_t pos, std::string str = {}) {
  auto n = std::make_unique<Node>();
  n->k = k;
  n->pos = pos;
  n->str = std::move(str);
  return n;
}

const std::set<std::string, std::less<>>& known_filters() {
  static const std::set<std::string, std::less<>> s = {
      "abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "indent", "int", "items",
      "join", "keys", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace",
      "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
      "unique", "upper", "values", "bool"};
  return s;
}

const std::set<std::string, std::less<>>& known_tests() {
  static const std::set<std::string, std::less<>> s = {
      "defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "integer",
      "float", "true", "false", "boolean", "odd", "even", "divisibleby", "equalto", "eq", "==", "ne", "!=",
      "sameas", "lower", "upper", "callable", "in", "lt", "gt", "le", "ge", "<", ">", "<=", ">=",
      "greaterthan", "lessthan"};
  return s;
}

bool test_takes_arg(std::string_view t) {
  return t == "divisibleby" || t == "equalto" || t == "eq" || t == "ne" || t == "sameas" || t == "in" ||
         t == "lt" || t == "gt" || t == "le" || t == "ge" || t == "greaterthan" || t == "lessthan";
}

// ================================================================== parser
struct Parser {
  const std::vector<Tok>& toks;
  const Where& where;
  size_t cur = 0;
  int depth = 0;
  static constexpr int kMaxParseDepth = 200;

  struct Guard {
    Parser& p;
    explicit Guard(Parser& p) : p(p) {
      if (++p.depth > kMaxParseDepth) p.fail(p.tok(), "template nested too deep");
    }
    ~Guard() { --p.depth; }
  };

  const Tok& tok(size_t k = 0) const { return toks[std::min(cur + k, toks.size() - 1)]; }
  [[noreturn]] void fail(const Tok& t, const std::string& msg) const { throw Error(where.at(t.pos) + msg); }
  static const char* tname(T t) {
    switch (t) {
      case T::Text: return "text";
      case T::Num: return "number";
      case T::Str: return "string";
      case T::Ident: return "name";
      case T::Equals: return "'='";
      case T::LParen: return "'('";
      case T::RParen: return "')'";
      case T::OpenStmt: return "'{%'";
      case T::CloseStmt: return "'%}'";
      case T::OpenExpr: return "'{{'";
      case T::CloseExpr: return "'}}'";
      case T::LBracket: return "'['";
      case T::RBracket: return "']'";
      case T::LBrace: return "'{'";
      case T::RBrace: return "'}'";
      case T::Comma: return "','";
      case T::Dot: return "'.'";
      case T::Colon: return "':'";
      case T::Pipe: return "'|'";
      case T::Add: case T::Mul: case T::Pow: case T::Cmp: case T::Unary: return "operator";
      case T::Comment: return "comment";
      case T::End: return "end of template";
    }
    return "?";
  }
  std::string describe(const Tok& t) const {
    if (t.type == T::Ident || t.type == T::Add || t.type == T::Mul || t.type == T::Pow || t.type == T::Cmp ||
        t.type == T::Unary || t.type == T::Num)
      return cat("'", t.v, "'");
    return tname(t.type);
  }
  bool is(T t, size_t k = 0) const { return tok(k).type == t; }
  bool is_ident(std::string_view name, size_t k = 0) const { return tok(k).type == T::Ident && tok(k).v == name; }
  const Tok& expect(T t, const char* what) {
    if (!is(t)) fail(tok(), cat("expected ", what, ", got ", describe(tok())));
    return toks[cur++];
  }
  bool is_statement(std::initializer_list<std::string_view> names) const {
    if (!is(T::OpenStmt) || !is(T::Ident, 1)) return false;
    for (auto n : names)
      if (tok(1).v == n) return true;
    return false;
  }

  std::vector<NodeP> parse_all() {
    std::vector<NodeP> body;
    while (!is(T::End)) {
      if (auto n = parse_any()) body.push_back(std::move(n));
    }
    return body;
  }

  NodeP parse_any() {
    const Tok& t = tok();
    switch (t.type) {
      case T::Comment: ++cur; return nullptr;
      case T::Text: { ++cur; auto n = mk(NK::Text, t.pos, t.v); return n; }
      case T::OpenStmt: return parse_statement();
      case T::OpenExpr: {
        ++cur;
        auto n = mk(NK::Output, t.pos);
        n->kids.push_back(parse_expression());
        expect(T::CloseExpr, "'}}'");
        return n;
      }
      default: fail(t, cat("unexpected ", describe(t)));
    }
  }

  // Statements until {% <one of stop> %}; error at `open` if the template ends first.
  std::vector<NodeP> parse_until(std::initializer_list<std::string_view> stop, const Tok& open, const char* end_tag) {
    Guard g(*this);
    std::vector<NodeP> body;
    while (!is_statement(stop)) {
      if (is(T::End)) fail(open, cat("missing {% ", end_tag, " %}"));
      if (is(T::OpenStmt) && is(T::Ident, 1)) {
        const std::string& w = tok(1).v;
        if (w.rfind("end", 0) == 0 || w == "elif" || w == "else")
          fail(tok(1), cat("unexpected '", w, "' (expected {% ", end_tag, " %})"));
      }
      if (auto n = parse_any()) body.push_back(std::move(n));
    }
    return body;
  }

  void end_tag(const char* name) {
    expect(T::OpenStmt, "'{%'");
    if (!is_ident(name)) fail(tok(), cat("expected '", name, "'"));
    ++cur;
    expect(T::CloseStmt, "'%}'");
  }

  NodeP parse_statement() {
    const Tok& open = expect(T::OpenStmt, "'{%'");
    if (!is(T::Ident)) fail(tok(), cat("expected a statement name, got ", describe(tok())));
    const Tok& kw = toks[cur++];
    const std::string& name = kw.v;
    if (name == "set") return parse_set(open);
    if (name == "if") {
      auto n = parse_if(open);
      end_tag("endif");
      return n;
    }
    if (name == "for") {
      auto n = parse_for(open);
      end_tag("endfor");
      return n;
    }
    if (name == "macro") {
      auto n = mk(NK::Macro, open.pos);
      if (!is(T::Ident)) fail(tok(), "expected a macro name");
      n->str = toks[cur++].v;
      parse_params(*n);
      expect(T::CloseStmt, "'%}'");
      n->body = parse_until({"endmacro"}, open, "endmacro");
      end_tag("endmacro");
      return n;
    }
    if (name == "call") {
      auto n = mk(NK::CallBlock, open.pos);
      auto callee_params = mk(NK::Macro, open.pos);
      if (is(T::LParen)) parse_params(*callee_params);
      if (!is(T::Ident)) fail(tok(), "expected a macro name after 'call'");
      const Tok& ct = toks[cur++];
      auto callee = mk(NK::Name, ct.pos, ct.v);
      if (!is(T::LParen)) fail(tok(), "expected '(' after the macro name");
      n->kids.push_back(parse_call(std::move(callee)));
      for (auto& d : callee_params->kids) n->kids.push_back(std::move(d));
      n->names = std::move(callee_params->names);
      expect(T::CloseStmt, "'%}'");
      n->body = parse_until({"endcall"}, open, "endcall");
      end_tag("endcall");
      return n;
    }
    if (name == "filter") {
      auto n = mk(NK::FilterBlock, open.pos);
      n->kids.push_back(nullptr);
      parse_filter_spec(*n);
      expect(T::CloseStmt, "'%}'");
      n->body = parse_until({"endfilter"}, open, "endfilter");
      end_tag("endfilter");
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(T::CloseStmt, "'%}'");
      return mk(name == "break" ? NK::Break : NK::Continue, open.pos);
    }
    fail(kw, cat("unknown statement '", name, "'"));
  }

  NodeP parse_set(const Tok& open) {
    auto n = mk(NK::Set, open.pos);
    auto target = parse_sequence(true);
    auto check_target = [&](const Node& t) {
      if (t.k == NK::Name) return;
      if (t.k == NK::Attr && t.kids[0]->k == NK::Name) return;
      fail(open, "cannot assign to this expression");
    };
    if (target->k == NK::TupleLit) {
      for (auto& e : target->kids)
        if (e->k != NK::Name) fail(open, "can only unpack into names");
    } else {
      check_target(*target);
    }
    n->kids.push_back(std::move(target));
    if (is(T::Equals)) {
      ++cur;
      n->kids.push_back(parse_sequence(false));
      expect(T::CloseStmt, "'%}'");
    } else {
      n->kids.push_back(nullptr);
      expect(T::CloseStmt, "'%}' or '='");
      n->body = parse_until({"endset"}, open, "endset");
      end_tag("endset");
    }
    return n;
  }

  NodeP parse_if(const Tok& open) {
    auto n = mk(NK::If, open.pos);
    n->kids.push_back(parse_expression());
    expect(T::CloseStmt, "'%}'");
    n->body = parse_until({"elif", "else", "endif"}, open, "endif");
    if (is_statement({"elif"})) {
      const Tok& o2 = tok();
      cur += 2;
      n->orelse.push_back(parse_if(o2));
    } else if (is_statement({"else"})) {
      cur += 2;
      expect(T::CloseStmt, "'%}'");
      n->orelse = parse_until({"endif"}, open, "endif");
    }
    return n;
  }

  NodeP parse_for(const Tok& open) {
    auto n = mk(NK::For, open.pos);
    do {
      if (!is(T::Ident)) fail(tok(), "expected a loop variable name");
      n->names.push_back(toks[cur++].v);
      if (!is(T::Comma)) break;
      ++cur;
    } while (true);
    if (!is_ident("in")) fail(tok(), "expected 'in' after the loop variable");
    ++cur;
    auto iter = parse_expression();
    if (iter->k == NK::Cond && !iter->kids[2]) {  // for x in xs if cond
      n->kids.push_back(std::move(iter->kids[1]));
      n->kids.push_back(std::move(iter->kids[0]));
    } else {
      n->kids.push_back(std::move(iter));
      n->kids.push_back(nullptr);
    }
    if (is_ident("recursive")) fail(tok(), "recursive loops are not supported");
    expect(T::CloseStmt, "'%}'");
    n->body = parse_until({"endfor", "else"}, open, "endfor");
    if (is_statement({"else"})) {
      cur += 2;
      expect(T::CloseStmt, "'%}'");
      n->orelse = parse_until({"endfor"}, open, "endfor");
    }
    return n;
  }

  void parse_params(Node& n) {  // (a, b=default) -> names + kids (defaults)
    expect(T::LParen, "'('");
    bool saw_default = false;
    while (!is(T::RParen)) {
      if (!is(T::Ident)) fail(tok(), "expected a parameter name");
      const Tok& p = toks[cur++];
      if (std::find(n.names.begin(), n.names.end(), p.v) != n.names.end())
        fail(p, cat("duplicate parameter '", p.v, "'"));
      n.names.push_back(p.v);
      if (is(T::Equals)) {
        ++cur;
        n.kids.push_back(parse_expression());
        saw_default = true;
      } else {
        if (saw_default) fail(p, "non-default parameter follows default parameter");
        n.kids.push_back(nullptr);
      }
      if (!is(T::Comma)) break;
      ++cur;
    }
    expect(T::RParen, "')'");
  }

  // Arguments of a call into n.kids/n.names (appended).
  void parse_args(Node& n) {
    expect(T::LParen, "'('");
    bool saw_kw = false;
    while (!is(T::RParen)) {
      if (is(T::Ident) && is(T::Equals, 1)) {
        n.names.push_back(tok().v);
        cur += 2;
        n.kids.push_back(parse_expression());
        saw_kw = true;
      } else {
        if (is(T::Mul) || is(T::Pow)) fail(tok(), "argument unpacking (* / **) is not supported");
        const Tok& at = tok();
        n.kids.push_back(parse_expression());
        if (saw_kw) fail(at, "positional argument follows keyword argument");
        n.names.push_back("");
      }
      if (!is(T::Comma)) break;
      ++cur;
    }
    expect(T::RParen, "')'");
  }

  NodeP parse_sequence(bool primary) {
    auto first = primary ? parse_postfix(parse_primary()) : parse_expression();
    if (!is(T::Comma)) return first;
    auto t = mk(NK::TupleLit, first->pos);
    t->kids.push_back(std::move(first));
    while (is(T::Comma)) {
      ++cur;
      if (is(T::Equals) || is(T::CloseStmt) || is(T::RParen)) break;
      t->kids.push_back(primary ? parse_postfix(parse_primary()) : parse_expression());
    }
    return t;
  }

  NodeP parse_expression() {
    Guard g(*this);
    auto a = parse_or();
    if (is_ident("if")) {
      uint32_t pos = tok().pos;
      ++cur;
      auto c = parse_or();
      auto n = mk(NK::Cond, pos);
      n->kids.push_back(std::move(c));
      n->kids.push_back(std::move(a));
      if (is_ident("else")) {
        ++cur;
        n->kids.push_back(parse_expression());
      } else {
        n->kids.push_back(nullptr);
      }
      return n;
    }
    return a;
  }

  NodeP binary(std::string op, uint32_t pos, NodeP l, NodeP r) {
    auto n = mk(NK::Binary, pos, std::move(op));
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return n;
  }

  NodeP parse_or() {
    auto l = parse_and();
    while (is_ident("or")) {
      uint32_t pos = toks[cur++].pos;
      l = binary("or", pos, std::move(l), parse_and());
    }
    return l;
  }
  NodeP parse_and() {
    auto l = parse_not();
    while (is_ident("and")) {
      uint32_t pos = toks[cur++].pos;
      l = binary("and", pos, std::move(l), parse_not());
    }
    return l;
  }
  NodeP parse_not() {
    if (is_ident("not")) {
      Guard g(*this);
      auto n = mk(NK::Unary, toks[cur++].pos, "not");
      n->kids.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  NodeP parse_compare() {
    auto l = parse_additive();
    for (;;) {
      std::string op;
      uint32_t pos = tok().pos;
      if (is_ident("not") && is_ident("in", 1)) { op = "not in"; cur += 2; }
      else if (is_ident("in")) { op = "in"; ++cur; }
      else if (is(T::Cmp)) op = toks[cur++].v;
      else break;
      l = binary(op, pos, std::move(l), parse_additive());
    }
    return l;
  }
  NodeP parse_additive() {
    auto l = parse_mul();
    while (is(T::Add)) {
      const Tok& t = toks[cur++];
      l = binary(t.v, t.pos, std::move(l), parse_mul());
    }
    return l;
  }
  NodeP parse_mul() {
    auto l = parse_pow();
    while (is(T::Mul)) {
      const Tok& t = toks[cur++];
      l = binary(t.v, t.pos, std::move(l), parse_pow());
    }
    return l;
  }
  NodeP parse_pow() {
    auto l = parse_test();
    while (is(T::Pow)) {
      const Tok& t = toks[cur++];
      l = binary("**", t.pos, std::move(l), parse_test());
    }
    return l;
  }
  NodeP parse_test() {
    auto operand = parse_filter();
    while (is_ident("is")) {
      uint32_t pos = toks[cur++].pos;
      auto n = mk(NK::Test, pos);
      if (is_ident("not")) { n->negate = true; ++cur; }
      if (!is(T::Ident)) fail(tok(), "expected a test name after 'is'");
      const Tok& tn = toks[cur++];
      if (!known_tests().count(tn.v)) fail(tn, cat("unknown test '", tn.v, "'"));
      n->str = tn.v;
      n->kids.push_back(std::move(operand));
      if (test_takes_arg(tn.v)) {
        if (is(T::LParen)) {
          parse_args(*n);
        } else {
          const Tok& a = tok();
          bool starts_value = a.type == T::Num || a.type == T::Str || a.type == T::LBracket || a.type == T::LBrace ||
                              (a.type == T::Ident && a.v != "and" && a.v != "or" && a.v != "not" && a.v != "in" &&
                               a.v != "is" && a.v != "if" && a.v != "else");
          if (starts_value) {
            n->kids.push_back(parse_postfix(parse_primary()));
            n->names.push_back("");
          }
        }
      }
      operand = std::move(n);
    }
    return operand;
  }
  void parse_filter_spec(Node& n) {
    if (!is(T::Ident)) fail(tok(), "expected a filter name");
    const Tok& fn = toks[cur++];
    if (!known_filters().count(fn.v)) fail(fn, cat("unknown filter '", fn.v, "'"));
    n.str = fn.v;
    n.pos = fn.pos;
    if (is(T::LParen)) parse_args(n);
  }
  NodeP parse_filter() {
    auto operand = parse_unary();
    while (is(T::Pipe)) {
      ++cur;
      auto n = mk(NK::Filter, tok().pos);
      n->kids.push_back(std::move(operand));
      parse_filter_spec(*n);
      operand = std::move(n);
    }
    return operand;
  }
  NodeP parse_unary() {
    const Tok& t = tok();
    if ((t.type == T::Unary || t.type == T::Add) && (t.v == "-" || t.v == "+")) {
      Guard g(*this);
      ++cur;
      auto n = mk(NK::Unary, t.pos, t.v);
      n->kids.push_back(parse_unary());
      return n;
    }
    return parse_postfix(parse_primary());
  }
  NodeP parse_call(NodeP callee) {
    auto n = mk(NK::Call, tok().pos);
    n->kids.push_back(std::move(callee));
    parse_args(*n);
    return n;
  }
  NodeP parse_postfix(NodeP obj) {
    for (;;) {
      if (is(T::Dot)) {
        const Tok& dot = toks[cur++];
        const Tok& p = tok();
        if (p.type == T::Ident) {
          ++cur;
          auto n = mk(NK::Attr, dot.pos, p.v);
          n->kids.push_back(std::move(obj));
          obj = std::move(n);
        } else if (p.type == T::Num && p.v.find('.') == std::string::npos && p.v[0] != '-' && p.v[0] != '+') {
          ++cur;
          auto n = mk(NK::Index, dot.pos);
          n->kids.push_back(std::move(obj));
          auto idx = mk(NK::Lit, p.pos);
          idx->lit = Value::integer(parse_int(p));
          n->kids.push_back(std::move(idx));
          obj = std::move(n);
        } else {
          fail(p, "expected a name or an integer after '.'");
        }
      } else if (is(T::LBracket)) {
        const Tok& br = toks[cur++];
        std::vector<NodeP> parts;
        bool slice = false;
        while (!is(T::RBracket)) {
          if (is(T::Colon)) {
            parts.push_back(nullptr);
            ++cur;
            slice = true;
          } else {
            parts.push_back(parse_expression());
            if (is(T::Colon)) {
              ++cur;
              slice = true;
            } else if (!is(T::RBracket)) {
              fail(tok(), cat("expected ']' or ':', got ", describe(tok())));
            }
          }
        }
        ++cur;
        if (parts.empty()) fail(br, "expected an index or a slice inside '[]'");
        if (slice) {
          // a trailing ':' means one more empty part ([1:] = start only)
          if (parts.size() > 3) fail(br, "a slice has at most 3 parts");
          auto n = mk(NK::Slice, br.pos);
          n->kids.push_back(std::move(obj));
          for (auto& p : parts) n->kids.push_back(std::move(p));
          while (n->kids.size() < 4) n->kids.push_back(nullptr);
          obj = std::move(n);
        } else {
          auto n = mk(NK::Index, br.pos);
          n->kids.push_back(std::move(obj));
          n->kids.push_back(std::move(parts[0]));
          obj = std::move(n);
        }
      } else if (is(T::LParen)) {
        obj = parse_call(std::move(obj));
      } else {
        return obj;
      }
    }
  }
  int64_t parse_int(const Tok& t) {
    int64_t v = 0;
    auto r = std::from_chars(t.v.data() + (t.v[0] == '+' ? 1 : 0), t.v.data() + t.v.size(), v);
    if (r.ec != std::errc()) fail(t, cat("integer literal out of range: ", t.v));
    return v;
  }
  NodeP parse_primary() {
    Guard g(*this);
    const Tok& t = tok();
    switch (t.type) {
      case T::Num: {
        ++cur;
        auto n = mk(NK::Lit, t.pos);
        if (t.v.find('.') != std::string::npos) n->lit = Value::number(std::strtod(t.v.c_str(), nullptr));
        else n->lit = Value::integer(parse_int(t));
        return n;
      }
      case T::Str: {
        ++cur;
        std::string s = t.v;
        while (is(T::Str)) s += toks[cur++].v;
        auto n = mk(NK::Lit, t.pos);
        n->lit = Value::str(std::move(s));
        return n;
      }
      case T::Ident: {
        ++cur;
        auto n = mk(NK::Lit, t.pos);
        if (t.v == "true" || t.v == "True") n->lit = Value::boolean(true);
        else if (t.v == "false" || t.v == "False") n->lit = Value::boolean(false);
        else if (t.v == "none" || t.v == "None") n->lit = Value::none();
        else { n->k = NK::Name; n->str = t.v; }
        return n;
      }
      case T::LParen: {
        ++cur;
        if (is(T::RParen)) {  // () empty tuple
          ++cur;
          return mk(NK::TupleLit, t.pos);
        }
        auto e = parse_sequence(false);
        expect(T::RParen, "')'");
        return e;
      }
      case T::LBracket: {
        ++cur;
        auto n = mk(NK::ListLit, t.pos);
        while (!is(T::RBracket)) {
          n->kids.push_back(parse_expression());
          if (!is(T::Comma)) break;
          ++cur;
        }
        expect(T::RBracket, "']'");
        return n;
      }
      case T::LBrace: {
        ++cur;
        auto n = mk(NK::DictLit, t.pos);
        while (!is(T::RBrace)) {
          n->kids.push_back(parse_expression());
          expect(T::Colon, "':'");
          n->kids.push_back(parse_expression());
          if (!is(T::Comma)) break;
          ++cur;
        }
        expect(T::RBrace, "'}'");
        return n;
      }
      default: fail(t, cat("unexpected ", describe(t), " in expression"));
    }
  }
};

}  // namespace

struct JinjaProgram {
  Where where;
  std::vector<NodeP> body;
};

namespace {

// ================================================================== interpreter
struct Scope {
  Scope* parent = nullptr;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(std::string_view name) const {
    for (const Scope* s = this; s; s = s->parent)
      for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
        if (it->first == name) return &it->second;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};

enum class Flow { Normal, Break, Continue };

std::string strftime_subset(const std::string& fmt, const JinjaOptions& opt) {
  std::time_t t = opt.now_unix >= 0 ? std::time_t(opt.now_unix) : std::time(nullptr);
  std::tm tm{};
  if (opt.utc) gmtime_r(&t, &tm);
  else localtime_r(&t, &tm);
  static const char* months[] = {"January", "February", "March",     "April",   "May",      "June",
                                 "July",    "August",   "September", "October", "November", "December"};
  std::string out;
  auto pad2 = [](int v) { return v < 10 ? cat("0", v) : cat(v); };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out += fmt[i];
      continue;
    }
    char c = fmt[i + 1];
    switch (c) {
      case 'Y': out += cat(tm.tm_year + 1900); break;
      case 'm': out += pad2(tm.tm_mon + 1); break;
      case 'd': out += pad2(tm.tm_mday); break;
      case 'b': out += std::string(months[tm.tm_mon]).substr(0, 3); break;
      case 'B': out += months[tm.tm_mon]; break;
      case 'H': out += pad2(tm.tm_hour); break;
      case 'M': out += pad2(tm.tm_min); break;
      case '%': out += '%'; break;
      default: out += fmt[i]; out += c; break;
    }
    ++i;
  }
  return out;
}

template <typename Op>
int64_t checked_op(Op op, int64_t a, int64_t b) {
  int64_t out = 0;
  if (op(a, b, &out)) rt_fail("integer overflow");
  return out;
}
constexpr auto add_ovf = [](int64_t a, int64_t b, int64_t* o) { return __builtin_add_overflow(a, b, o); };
constexpr auto sub_ovf = [](int64_t a, int64_t b, int64_t* o) { return __builtin_sub_overflow(a, b, o); };
constexpr auto mul_ovf = [](int64_t a, int64_t b, int64_t* o) { return __builtin_mul_overflow(a, b, o); };

std::string py_strip(std::string_view s, const Value* chars, bool left, bool right) {
  if (!chars || chars->k == Value::None || chars->k == Value::Undef) {
    if (left) s = trim_start(s);
    if (right) s = trim_end(s);
    return std::string(s);
  }
  if (chars->k != Value::Str) rt_fail("strip arg must be a string, not ", kind_name(*chars));
  auto set = code_points(chars->s);
  auto cps = code_points(s);
  size_t a = 0, b = cps.size();
  auto in = [&](uint32_t c) { return std::find(set.begin(), set.end(), c) != set.end(); };
  if (left) while (a < b && in(cps[a])) ++a;
  if (right) while (b > a && in(cps[b - 1])) --b;
  std::string out;
  for (size_t i = a; i < b; ++i) put_any(out, cps[i]);
  return out;
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (count == 0) return s;
  std::string out;
  int64_t done = 0;
  if (from.empty()) {
    auto cs = chars_of(s);
    for (size_t i = 0; i <= cs.size(); ++i) {
      if (count < 0 || done < count) { out += to; ++done; }
      if (i < cs.size()) out += cs[i];
    }
    return out;
  }
  size_t i = 0;
  while (i < s.size()) {
    size_t p = s.find(from, i);
    if (p == std::string::npos || (count >= 0 && done >= count)) break;
    out.append(s, i, p - i);
    out += to;
    i = p + from.size();
    ++done;
  }
  out.append(s, std::min(i, s.size()), std::string::npos);
  return out;
}

std::vector<Value> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<Value> out;
  if (!sep || sep->k == Value::None || sep->k == Value::Undef) {
    std::string_view rest = trim_start(s);
    while (!rest.empty()) {
      if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
        out.push_back(Value::str(std::string(rest)));
        break;
      }
      size_t i = 0;
      while (i < rest.size() && !js_space_at(rest, i)) next_cp(rest, i);
      out.push_back(Value::str(std::string(rest.substr(0, i))));
      rest = trim_start(rest.substr(i));
    }
    return out;
  }
  if (sep->k != Value::Str) rt_fail("split separator must be a string");
  if (sep->s.empty()) rt_fail("empty separator");
  size_t i = 0;
  for (;;) {
    size_t p = s.find(sep->s, i);
    if (p == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) >= maxsplit)) {
      out.push_back(Value::str(s.substr(i)));
      break;
    }
    out.push_back(Value::str(s.substr(i, p - i)));
    i = p + sep->s.size();
  }
  return out;
}

Value index_value(const Value& obj, const Value& idx) {
  if (obj.k == Value::Dict || obj.k == Value::Ns) {
    if (idx.k != Value::Str) return Value();
    const Value* v = obj.o->find(idx.s);
    return v ? *v : Value();
  }
  if ((obj.k == Value::List || obj.k == Value::Str) && (idx.k == Value::Int || idx.k == Value::Bool)) {
    int64_t i = idx.k == Value::Int ? idx.i : idx.b;
    if (obj.k == Value::List) {
      int64_t n = int64_t(obj.o->items.size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? obj.o->items[size_t(i)] : Value();
    }
    auto cs = chars_of(obj.s);
    int64_t n = int64_t(cs.size());
    if (i < 0) i += n;
    return i >= 0 && i < n ? Value::str(cs[size_t(i)]) : Value();
  }
  return Value();
}

// Items a for loop / filter iterates: list items, dict keys, string characters.
std::vector<Value> iterate(const Value& v, const char* what) {
  switch (v.k) {
    case Value::List: return v.o->items;
    case Value::Dict: {
      std::vector<Value> out;
      for (auto& e : v.o->entries) out.push_back(Value::str(e.first));
      return out;
    }
    case Value::Str: {
      std::vector<Value> out;
      for (auto& c : chars_of(v.s)) out.push_back(Value::str(c));
      return out;
    }
    case Value::Undef: return {};
    default: rt_fail(what, ": ", kind_name(v), " is not iterable");
  }
}

Value items_of(const Value& d) {
  std::vector<Value> out;
  for (auto& [k, v] : d.o->entries) out.push_back(Value::list({Value::str(k), v}));
  return Value::list(std::move(out));
}

// attribute path "a.b.0"
Value attr_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t i = 0;
  for (;;) {
    size_t dot = path.find('.', i);
    std::string part = path.substr(i, dot == std::string::npos ? std::string::npos : dot - i);
    if (v.k == Value::Dict || v.k == Value::Ns) {
      const Value* f = v.o->find(part);
      v = f ? *f : Value();
    } else if (v.k == Value::List && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
               part.size() < 10) {
      size_t n = std::stoul(part);
      v = n < v.o->items.size() ? v.o->items[n] : Value();
    } else {
      return Value();
    }
    if (dot == std::string::npos) return v;
    i = dot + 1;
  }
}

struct Interp {
  const JinjaProgram& prog;
  const JinjaOptions& opt;
  Scope* global = nullptr;
  uint64_t steps = 0;
  int depth = 0;

  struct Guard {
    Interp& in;
    explicit Guard(Interp& in) : in(in) {
      if (++in.depth > in.opt.max_depth) rt_fail("template nested or recursed more than ", in.opt.max_depth, " deep");
    }
    ~Guard() { --in.depth; }
  };

  void tick() {
    if (++steps > opt.max_steps) rt_fail("template exceeded ", opt.max_steps, " steps");
  }
  void emit(std::string& out, std::string_view s) {
    if (out.size() + s.size() > opt.max_output_bytes) rt_fail("output exceeds ", opt.max_output_bytes, " bytes");
    out.append(s);
  }
  Value make_str(std::string s) {
    if (s.size() > opt.max_output_bytes) rt_fail("string exceeds ", opt.max_output_bytes, " bytes");
    return Value::str(std::move(s));
  }
  [[noreturn]] void fail_at(uint32_t pos, const std::string& msg) { throw Error(prog.where.at(pos) + msg); }

  // ---------------------------------------------------------------- statements
  Flow exec_block(const std::vector<NodeP>& body, Scope& sc, std::string& out) {
    for (auto& n : body) {
      Flow f = exec(*n, sc, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n, Scope& sc, std::string& out) {
    try {
      tick();
      Guard g(*this);
      switch (n.k) {
        case NK::Text: emit(out, n.str); return Flow::Normal;
        case NK::Output: {
          Value v = eval(*n.kids[0], sc);
          if (v.k != Value::None && v.k != Value::Undef) {
            if (v.k == Value::Str) emit(out, v.s);
            else emit(out, to_str(v));
          }
          return Flow::Normal;
        }
        case NK::If: return exec_block(truthy(eval(*n.kids[0], sc)) ? n.body : n.orelse, sc, out);
        case NK::For: return exec_for(n, sc, out);
        case NK::Set: exec_set(n, sc); return Flow::Normal;
        case NK::Macro: {
          const Node* m = &n;
          sc.set(n.str, Value::func([m](Interp& in, Args& a) { return in.call_macro(*m, a); }));
          return Flow::Normal;
        }
        case NK::CallBlock: return exec_call_block(n, sc, out);
        case NK::FilterBlock: {
          std::string body;
          exec_block(n.body, sc, body);
          Args a = eval_args(n, 1, sc);
          Value r = apply_filter(n.str, make_str(std::move(body)), a, sc);
          if (r.k != Value::None && r.k != Value::Undef) emit(out, to_str(r));
          return Flow::Normal;
        }
        case NK::Break: return Flow::Break;
        case NK::Continue: return Flow::Continue;
        default: rt_fail("not a statement");
      }
    } catch (const RtErr& e) {
      fail_at(n.pos, e.msg);
    }
  }

  Flow exec_for(const Node& n, Scope& sc, std::string& out) {
    Value iterable = eval(*n.kids[0], sc);
    if (iterable.k == Value::None) rt_fail("cannot iterate over none");
    std::vector<Value> all = iterate(iterable, "for loop");
    Scope loop_scope;
    loop_scope.parent = &sc;
    auto bind = [&](Scope& s, const Value& item) {
      if (n.names.size() == 1) {
        s.set(n.names[0], item);
        return;
      }
      std::vector<Value> parts;
      if (item.k == Value::List) parts = item.o->items;
      else if (item.k == Value::Str) parts = iterate(item, "unpacking");
      else rt_fail("cannot unpack ", kind_name(item), " into ", n.names.size(), " loop variables");
      if (parts.size() != n.names.size())
        rt_fail("too ", parts.size() < n.names.size() ? "few" : "many", " values to unpack (expected ",
                n.names.size(), ", got ", parts.size(), ")");
      for (size_t i = 0; i < parts.size(); ++i) s.set(n.names[i], parts[i]);
    };
    std::vector<Value> items;
    if (n.kids[1]) {
      for (auto& item : all) {
        tick();
        Scope test_scope;
        test_scope.parent = &sc;
        bind(test_scope, item);
        if (truthy(eval(*n.kids[1], test_scope))) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const int64_t len = int64_t(items.size());
    for (int64_t i = 0; i < len; ++i) {
      tick();
      std::vector<std::pair<std::string, Value>> loop = {
          {"index", Value::integer(i + 1)},
          {"index0", Value::integer(i)},
          {"revindex", Value::integer(len - i)},
          {"revindex0", Value::integer(len - i - 1)},
          {"first", Value::boolean(i == 0)},
          {"last", Value::boolean(i == len - 1)},
          {"length", Value::integer(len)},
          {"previtem", i > 0 ? items[size_t(i - 1)] : Value()},
          {"nextitem", i + 1 < len ? items[size_t(i + 1)] : Value()}};
      loop_scope.set("loop", Value::dict(std::move(loop)));
      bind(loop_scope, items[size_t(i)]);
      Flow f = exec_block(n.body, loop_scope, out);
      if (f == Flow::Break) break;
    }
    if (items.empty()) exec_block(n.orelse, loop_scope, out);
    return Flow::Normal;
  }

  void exec_set(const Node& n, Scope& sc) {
    Value v;
    if (n.kids[1]) {
      v = eval(*n.kids[1], sc);
    } else {
      std::string body;
      exec_block(n.body, sc, body);
      v = Value::str(std::move(body));
    }
    const Node& t = *n.kids[0];
    if (t.k == NK::Name) {
      sc.set(t.str, std::move(v));
    } else if (t.k == NK::TupleLit) {
      std::vector<Value> parts;
      if (v.k == Value::List) parts = v.o->items;
      else rt_fail("cannot unpack ", kind_name(v), " in set");
      if (parts.size() != t.kids.size())
        rt_fail("too ", parts.size() < t.kids.size() ? "few" : "many", " values to unpack in set");
      for (size_t i = 0; i < parts.size(); ++i) sc.set(t.kids[i]->str, parts[i]);
    } else {  // ns.attr
      Value obj = eval(*t.kids[0], sc);
      if (obj.k != Value::Ns) rt_fail("cannot assign attribute on ", kind_name(obj), " (only on namespace())");
      if (v.k == Value::Ns || v.k == Value::Func || (v.is_container() && v.o->pinned))
        rt_fail("a namespace attribute cannot hold a namespace or a callable");
      for (auto& [k, old] : obj.o->entries)
        if (k == t.str) {
          old = std::move(v);
          account_child(*obj.o, old);
          return;
        }
      obj.o->entries.emplace_back(t.str, std::move(v));
      account_child(*obj.o, obj.o->entries.back().second);
    }
  }

  Value call_macro(const Node& m, Args& a) {
    Guard g(*this);
    Scope s;
    s.parent = global;
    size_t np = m.names.size();
    std::vector<Value> varargs;
    for (size_t i = np; i < a.pos.size(); ++i) varargs.push_back(a.pos[i]);
    std::vector<std::pair<std::string, Value>> kwargs;
    for (auto& [k, v] : a.kw)
      if (std::find(m.names.begin(), m.names.end(), k) == m.names.end()) kwargs.emplace_back(k, v);
    for (size_t i = 0; i < np; ++i) {
      const Value* v = a.get(i, m.names[i]);
      if (i >= a.pos.size()) {
        v = nullptr;
        for (auto& [k, val] : a.kw)
          if (k == m.names[i]) v = &val;
      }
      s.set(m.names[i], v ? *v : Value());
    }
    for (size_t i = 0; i < np; ++i) {
      bool given = i < a.pos.size();
      for (auto& [k, val] : a.kw)
        if (k == m.names[i]) given = true;
      if (!given && m.kids[i]) s.set(m.names[i], eval(*m.kids[i], s));
    }
    s.set("varargs", Value::list(std::move(varargs)));
    s.set("kwargs", Value::dict(std::move(kwargs)));
    if (a.caller.k == Value::Func) s.set("caller", a.caller);
    std::string out;
    exec_block(m.body, s, out);
    return Value::str(std::move(out));
  }

  Flow exec_call_block(const Node& n, Scope& sc, std::string& out) {
    const Node& call = *n.kids[0];
    Value fn = eval(*call.kids[0], sc);
    if (fn.k != Value::Func) rt_fail("'", call.kids[0]->str, "' is not a macro");
    Args a = eval_args(call, 1, sc);
    Scope* site = &sc;
    const Node* blk = &n;
    a.caller = Value::func([site, blk](Interp& in, Args& ca) -> Value {
      Guard g(in);
      Scope s;
      s.parent = site;
      for (size_t i = 0; i < blk->names.size(); ++i) {
        const Value* v = ca.get(i, blk->names[i]);
        if (v) s.set(blk->names[i], *v);
        else if (blk->kids[i + 1]) s.set(blk->names[i], in.eval(*blk->kids[i + 1], s));
        else s.set(blk->names[i], Value());
      }
      std::string body;
      in.exec_block(blk->body, s, body);
      return Value::str(std::move(body));
    });
    Value r = (*fn.fn)(*this, a);
    if (r.k != Value::None && r.k != Value::Undef) emit(out, to_str(r));
    return Flow::Normal;
  }

  // ---------------------------------------------------------------- expressions
  Args eval_args(const Node& n, size_t first, Scope& sc) {
    Args a;
    for (size_t i = first; i < n.kids.size(); ++i) {
      const std::string& name = n.names[i - first];
      Value v = eval(*n.kids[i], sc);
      if (name.empty()) {
        a.pos.push_back(std::move(v));
      } else {
        for (auto& [k, _] : a.kw)
          if (k == name) rt_fail("got multiple values for keyword argument '", name, "'");
        a.kw.emplace_back(name, std::move(v));
      }
    }
    return a;
  }

  Value eval(const Node& n, Scope& sc) {
    try {
      tick();
      Guard g(*this);
      return eval_inner(n, sc);
    } catch (const RtErr& e) {
      fail_at(n.pos, e.msg);
    }
  }

  Value eval_inner(const Node& n, Scope& sc) {
    switch (n.k) {
      case NK::Lit: return n.lit;
      case NK::Name: return lookup(n.str, sc);
      case NK::ListLit: case NK::TupleLit: {
        std::vector<Value> items;
        for (auto& k : n.kids) items.push_back(eval(*k, sc));
        return Value::list(std::move(items));
      }
      case NK::DictLit: {
        std::vector<std::pair<std::string, Value>> es;
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          Value k = eval(*n.kids[i], sc);
          if (k.k != Value::Str) rt_fail("dict keys must be strings, got ", kind_name(k));
          Value v = eval(*n.kids[i + 1], sc);
          bool found = false;
          for (auto& e : es)
            if (e.first == k.s) { e.second = v; found = true; }
          if (!found) es.emplace_back(k.s, std::move(v));
        }
        return Value::dict(std::move(es));
      }
      case NK::Attr: return get_attr(eval(*n.kids[0], sc), n.str);
      case NK::Index: {
        Value obj = eval(*n.kids[0], sc);
        Value idx = eval(*n.kids[1], sc);
        if (obj.k == Value::Dict && idx.k == Value::Str && !obj.o->find(idx.s)) return get_attr(obj, idx.s);
        if (obj.k == Value::Str && idx.k == Value::Str) return get_attr(obj, idx.s);
        return index_value(obj, idx);
      }
      case NK::Slice: return eval_slice(n, sc);
      case NK::Call: {
        Value fn = eval(*n.kids[0], sc);
        Args a = eval_args(n, 1, sc);
        if (fn.k != Value::Func) {
          const Node& c = *n.kids[0];
          if (c.k == NK::Name || c.k == NK::Attr) rt_fail("'", c.str, "' is ", kind_name(fn), ", not callable");
          rt_fail(kind_name(fn), " is not callable");
        }
        return (*fn.fn)(*this, a);
      }
      case NK::Filter: {
        Value v = eval(*n.kids[0], sc);
        Args a = eval_args(n, 1, sc);
        return apply_filter(n.str, std::move(v), a, sc);
      }
      case NK::Test: {
        Value v = eval(*n.kids[0], sc);
        Args a = eval_args(n, 1, sc);
        bool r = run_test(n.str, v, a.pos);
        return Value::boolean(n.negate ? !r : r);
      }
      case NK::Unary: {
        Value v = eval(*n.kids[0], sc);
        if (n.str == "not") return Value::boolean(!truthy(v));
        bool neg = n.str == "-";
        if (v.k == Value::Int) {
          if (neg && v.i == INT64_MIN) rt_fail("integer overflow");
          return Value::integer(neg ? -v.i : v.i);
        }
        if (v.k == Value::Bool) return Value::integer(neg ? -int64_t(v.b) : int64_t(v.b));
        if (v.k == Value::Float) return Value::number(neg ? -v.f : v.f);
        rt_fail("bad operand for unary ", n.str, ": ", kind_name(v));
      }
      case NK::Binary: return eval_binary(n, sc);
      case NK::Cond: {
        if (truthy(eval(*n.kids[0], sc))) return eval(*n.kids[1], sc);
        return n.kids[2] ? eval(*n.kids[2], sc) : Value();
      }
      default: rt_fail("not an expression");
    }
  }

  Value lookup(const std::string& name, Scope& sc) {
    if (const Value* v = sc.find(name)) return *v;
    if (name == "range") return Value::func([](Interp& in, Args& a) { return in.fn_range(a); });
    if (name == "namespace") return Value::func([](Interp&, Args& a) { return fn_namespace(a); });
    if (name == "raise_exception")
      return Value::func([](Interp&, Args& a) -> Value {
        throw RaiseErr{a.pos.empty() ? std::string("raise_exception() called") : to_str(a.pos[0])};
      });
    if (name == "strftime_now")
      return Value::func([](Interp& in, Args& a) {
        const Value* f = a.get(0, "format");
        if (!f || f->k != Value::Str) rt_fail("strftime_now() needs a format string");
        return Value::str(strftime_subset(f->s, in.opt));
      });
    if (name == "dict") return Value::func([](Interp&, Args& a) { return Value::dict(a.kw); });
    return Value();
  }

  Value fn_range(Args& a) {
    auto num = [](const Value& v) -> int64_t {
      if (v.k == Value::Int) return v.i;
      if (v.k == Value::Bool) return v.b;
      rt_fail("range() arguments must be integers, got ", kind_name(v));
    };
    if (a.pos.empty() || a.pos.size() > 3) rt_fail("range() takes 1 to 3 arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) stop = num(a.pos[0]);
    else { start = num(a.pos[0]); stop = num(a.pos[1]); }
    if (a.pos.size() == 3) step = num(a.pos[2]);
    if (step == 0) rt_fail("range() step must not be zero");
    long double count = step > 0 ? ((long double)stop - start + step - 1) / step : ((long double)start - stop - step - 1) / -step;
    if (count > (long double)std::min<uint64_t>(opt.max_steps, 10'000'000))
      rt_fail("range() of ", (int64_t)count, " items is too long");
    std::vector<Value> out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      tick();
      out.push_back(Value::integer(i));
      if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    return Value::list(std::move(out));
  }

  static Value fn_namespace(Args& a) {
    std::vector<std::pair<std::string, Value>> es;
    auto put = [&](const std::string& k, const Value& v) {
      for (auto& e : es)
        if (e.first == k) { e.second = v; return; }
      es.emplace_back(k, v);
    };
    if (a.pos.size() > 1) rt_fail("namespace() takes at most 1 positional argument");
    if (a.pos.size() == 1) {
      const Value& src = a.pos[0];
      if (src.k == Value::Dict || src.k == Value::Ns) {
        for (auto& [k, v] : src.o->entries) put(k, v);
      } else if (src.k == Value::List) {
        for (auto& p : src.o->items) {
          if (p.k != Value::List || p.o->items.size() != 2 || p.o->items[0].k != Value::Str)
            rt_fail("namespace() expects a mapping or a list of [key, value] pairs");
          put(p.o->items[0].s, p.o->items[1]);
        }
      } else {
        rt_fail("namespace() expects a mapping, got ", kind_name(src));
      }
    }
    for (auto& [k, v] : a.kw) put(k, v);
    return Value::dict(std::move(es), Value::Ns);
  }

  Value eval_slice(const Node& n, Scope& sc) {
    Value obj = eval(*n.kids[0], sc);
    auto part = [&](int i) -> std::optional<int64_t> {
      if (!n.kids[i]) return std::nullopt;
      Value v = eval(*n.kids[i], sc);
      if (v.k == Value::Undef || v.k == Value::None) return std::nullopt;
      if (v.k != Value::Int) rt_fail("slice indices must be integers, got ", kind_name(v));
      return v.i;
    };
    auto start = part(1), stop = part(2), step_o = part(3);
    int64_t step = step_o.value_or(1);
    if (step == 0) rt_fail("slice step cannot be zero");
    std::vector<Value> items;
    std::vector<std::string> cs;
    int64_t len;
    if (obj.k == Value::List) len = int64_t(obj.o->items.size());
    else if (obj.k == Value::Str) { cs = chars_of(obj.s); len = int64_t(cs.size()); }
    else if (obj.k == Value::Undef) return Value();
    else rt_fail("cannot slice ", kind_name(obj));
    int64_t a, b;
    if (step > 0) {
      a = !start ? 0 : *start < 0 ? std::max<int64_t>(len + *start, 0) : std::min(*start, len);
      b = !stop ? len : *stop < 0 ? std::max<int64_t>(len + *stop, 0) : std::min(*stop, len);
    } else {
      a = !start ? len - 1 : *start < 0 ? std::max<int64_t>(len + *start, -1) : std::min(*start, len - 1);
      b = !stop ? -1 : *stop < 0 ? std::max<int64_t>(len + *stop, -1) : std::min(*stop, len - 1);
    }
    std::string s;
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step) {
      if (obj.k == Value::List) items.push_back(obj.o->items[size_t(i)]);
      else s += cs[size_t(i)];
      if (std::abs(step) > len) break;
    }
    if (obj.k == Value::Str) return Value::str(std::move(s));
    return Value::list(std::move(items));
  }

  static Value arith(const std::string& op, const Value& l, const Value& r) {
    bool flt = l.k == Value::Float || r.k == Value::Float;
    if (!flt) {
      int64_t a = l.k == Value::Int ? l.i : l.b, b = r.k == Value::Int ? r.i : r.b;
      if (op == "+") return Value::integer(checked_op(add_ovf, a, b));
      if (op == "-") return Value::integer(checked_op(sub_ovf, a, b));
      if (op == "*") return Value::integer(checked_op(mul_ovf, a, b));
      if (op == "/") {
        if (b == 0) rt_fail("division by zero");
        return Value::number(double(a) / double(b));
      }
      if (op == "//" || op == "%") {
        if (b == 0) rt_fail("integer division or modulo by zero");
        if (a == INT64_MIN && b == -1) rt_fail("integer overflow");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) { --q; m += b; }
        return Value::integer(op == "//" ? q : m);
      }
      if (op == "**") {
        if (b < 0) return Value::number(std::pow(double(a), double(b)));
        int64_t result = 1, base = a;
        int64_t e = b;
        while (e > 0) {
          if (e & 1) result = checked_op(mul_ovf, result, base);
          e >>= 1;
          if (e > 0) base = checked_op(mul_ovf, base, base);
        }
        return Value::integer(result);
      }
    } else {
      double a = num_of(l), b = num_of(r);
      if (op == "+") return Value::number(a + b);
      if (op == "-") return Value::number(a - b);
      if (op == "*") return Value::number(a * b);
      if (op == "/" || op == "//" || op == "%") {
        if (b == 0) rt_fail("float division by zero");
        if (op == "/") return Value::number(a / b);
        if (op == "//") return Value::number(std::floor(a / b));
        double m = std::fmod(a, b);
        if (m != 0 && ((m < 0) != (b < 0))) m += b;
        return Value::number(m);
      }
      if (op == "**") {
        if (a == 0 && b < 0) rt_fail("0.0 cannot be raised to a negative power");
        return Value::number(std::pow(a, b));
      }
    }
    rt_fail("unknown operator ", op);
  }

  bool contains(const Value& hay, const Value& needle) {
    switch (hay.k) {
      case Value::Str:
        if (needle.k != Value::Str) rt_fail("'in <string>' requires a string, not ", kind_name(needle));
        return hay.s.find(needle.s) != std::string::npos;
      case Value::List:
        for (auto& x : hay.o->items)
          if (equal(x, needle)) return true;
        return false;
      case Value::Dict: case Value::Ns:
        return needle.k == Value::Str && hay.o->find(needle.s);
      case Value::Undef: return false;
      default: rt_fail("argument of type ", kind_name(hay), " is not iterable");
    }
  }

  Value eval_binary(const Node& n, Scope& sc) {
    const std::string& op = n.str;
    Value l = eval(*n.kids[0], sc);
    if (op == "and") return truthy(l) ? eval(*n.kids[1], sc) : l;
    if (op == "or") return truthy(l) ? l : eval(*n.kids[1], sc);
    Value r = eval(*n.kids[1], sc);
    if (op == "==") return Value::boolean(equal(l, r));
    if (op == "!=") return Value::boolean(!equal(l, r));
    if (op == "in") return Value::boolean(contains(r, l));
    if (op == "not in") return Value::boolean(!contains(r, l));
    if (op == "~") return make_str(to_str(l) + to_str(r));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      if (!((is_num(l) && is_num(r)) || (l.k == Value::Str && r.k == Value::Str)))
        rt_fail("'", op, "' not supported between ", kind_name(l), " and ", kind_name(r));
      int c = compare(l, r, true);
      if (is_num(l) && (std::isnan(num_of(l)) || std::isnan(num_of(r)))) return Value::boolean(false);
      return Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (l.k == Value::Undef || r.k == Value::Undef)
      rt_fail("cannot apply '", op, "' to an undefined value");
    if (l.k == Value::None || r.k == Value::None) rt_fail("cannot apply '", op, "' to none");
    if (is_num(l) && is_num(r)) return arith(op, l, r);
    if (op == "+") {
      if (l.k == Value::List && r.k == Value::List) {
        if (l.o->items.size() + r.o->items.size() > opt.max_output_bytes) rt_fail("list too long");
        std::vector<Value> items = l.o->items;
        items.insert(items.end(), r.o->items.begin(), r.o->items.end());
        return Value::list(std::move(items));
      }
      if (l.k == Value::Str || r.k == Value::Str) return make_str(to_str(l) + to_str(r));
    }
    rt_fail("unsupported operand types for ", op, ": ", kind_name(l), " and ", kind_name(r));
  }

  // ---------------------------------------------------------------- attributes & methods
  static Value method(Value self, Value (*f)(Interp&, const Value&, Args&)) {
    return Value::func([self = std::move(self), f](Interp& in, Args& a) { return f(in, self, a); });
  }

  Value get_attr(const Value& obj, const std::string& name) {
    if (obj.k == Value::Dict || obj.k == Value::Ns) {
      if (const Value* v = obj.o->find(name)) return *v;
      if (obj.k == Value::Ns) return Value();
      if (name == "get")
        return method(obj, [](Interp&, const Value& d, Args& a) -> Value {
          const Value* k = a.get(0, "key");
          if (!k) rt_fail("get() needs a key");
          if (k->k == Value::Str)
            if (const Value* v = d.o->find(k->s)) return *v;
          const Value* def = a.get(1, "default");
          return def ? *def : Value::none();
        });
      if (name == "items") return method(obj, [](Interp&, const Value& d, Args&) { return items_of(d); });
      if (name == "keys") return method(obj, [](Interp&, const Value& d, Args&) { return Value::list(iterate(d, "keys")); });
      if (name == "values")
        return method(obj, [](Interp&, const Value& d, Args&) {
          std::vector<Value> out;
          for (auto& e : d.o->entries) out.push_back(e.second);
          return Value::list(std::move(out));
        });
      return Value();
    }
    if (obj.k == Value::Str) return string_method(obj, name);
    return Value();
  }

  Value string_method(const Value& obj, const std::string& name) {
    using F = Value (*)(Interp&, const Value&, Args&);
    static const std::vector<std::pair<std::string, F>> methods = {
        {"strip", [](Interp&, const Value& s, Args& a) { return Value::str(py_strip(s.s, a.get(0, "chars"), true, true)); }},
        {"lstrip", [](Interp&, const Value& s, Args& a) { return Value::str(py_strip(s.s, a.get(0, "chars"), true, false)); }},
        {"rstrip", [](Interp&, const Value& s, Args& a) { return Value::str(py_strip(s.s, a.get(0, "chars"), false, true)); }},
        {"upper", [](Interp&, const Value& s, Args&) { return Value::str(map_case(s.s, true)); }},
        {"lower", [](Interp&, const Value& s, Args&) { return Value::str(map_case(s.s, false)); }},
        {"title", [](Interp&, const Value& s, Args&) { return Value::str(js_title(s.s)); }},
        {"capitalize", [](Interp&, const Value& s, Args&) { return Value::str(capitalize(s.s)); }},
        {"startswith", [](Interp&, const Value& s, Args& a) { return Value::boolean(affix(s, a, true)); }},
        {"endswith", [](Interp&, const Value& s, Args& a) { return Value::boolean(affix(s, a, false)); }},
        {"split",
         [](Interp&, const Value& s, Args& a) {
           const Value* m = a.get(1, "maxsplit");
           if (m && m->k != Value::Int) rt_fail("maxsplit must be an integer");
           return Value::list(py_split(s.s, a.get(0, "sep"), m ? m->i : -1));
         }},
        {"replace",
         [](Interp& in, const Value& s, Args& a) {
           const Value* from = a.get(0, "old");
           const Value* to = a.get(1, "new");
           const Value* count = a.get(2, "count");
           if (!from || !to || from->k != Value::Str || to->k != Value::Str) rt_fail("replace() needs two strings");
           if (count && count->k != Value::Int && count->k != Value::None) rt_fail("replace() count must be an integer");
           if (!from->s.size() && to->s.size() * (s.s.size() + 1) > in.opt.max_output_bytes) rt_fail("string too long");
           return in.make_str(py_replace(s.s, from->s, to->s, count && count->k == Value::Int ? count->i : -1));
         }},
        {"join",
         [](Interp& in, const Value& s, Args& a) {
           const Value* it = a.get(0, "iterable");
           if (!it) rt_fail("join() needs an iterable");
           std::string out;
           bool first = true;
           for (auto& x : iterate(*it, "join")) {
             if (!first) out += s.s;
             first = false;
             out += to_str(x);
             if (out.size() > in.opt.max_output_bytes) rt_fail("string too long");
           }
           return Value::str(std::move(out));
         }},
        {"format", [](Interp& in, const Value& s, Args& a) { return in.make_str(py_format(s.s, a)); }},
    };
    for (auto& [n, f] : methods)
      if (n == name) return method(obj, f);
    if (name == "length") return Value::integer(int64_t(utf16_length(obj.s)));
    return Value();
  }

  static bool affix(const Value& s, Args& a, bool start) {
    const Value* p = a.get(0, "prefix");
    if (!p) rt_fail(start ? "startswith" : "endswith", "() needs an argument");
    auto one = [&](const Value& x) {
      if (x.k != Value::Str) rt_fail(start ? "startswith" : "endswith", "() argument must be a string or a tuple of strings");
      if (x.s.size() > s.s.size()) return false;
      return start ? s.s.compare(0, x.s.size(), x.s) == 0 : s.s.compare(s.s.size() - x.s.size(), x.s.size(), x.s) == 0;
    };
    if (p->k == Value::List) {
      for (auto& x : p->o->items)
        if (one(x)) return true;
      return false;
    }
    return one(*p);
  }

  static std::string py_format(const std::string& f, Args& a) {
    std::string out;
    size_t auto_idx = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      char c = f[i];
      if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') { out += '{'; ++i; continue; }
      if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') { out += '}'; ++i; continue; }
      if (c == '}') rt_fail("single '}' in format string");
      if (c != '{') { out += c; continue; }
      size_t e = f.find('}', i);
      if (e == std::string::npos) rt_fail("single '{' in format string");
      std::string field = f.substr(i + 1, e - i - 1);
      if (field.find_first_of(":!") != std::string::npos) rt_fail("format specs are not supported");
      const Value* v = nullptr;
      if (field.empty()) v = auto_idx < a.pos.size() ? &a.pos[auto_idx++] : nullptr;
      else if (std::all_of(field.begin(), field.end(), ::isdigit) && field.size() < 6) {
        size_t k = std::stoul(field);
        v = k < a.pos.size() ? &a.pos[k] : nullptr;
      } else {
        for (auto& [k, val] : a.kw)
          if (k == field) v = &val;
      }
      if (!v) rt_fail("format(): no value for field {", field, "}");
      out += to_str(*v);
      i = e;
    }
    return out;
  }

  // ---------------------------------------------------------------- tests
  bool run_test(const std::string& t, const Value& v, const std::vector<Value>& args) {
    auto arg = [&]() -> const Value& {
      if (args.empty()) rt_fail("test '", t, "' needs an argument");
      return args[0];
    };
    if (t == "defined") return v.k != Value::Undef;
    if (t == "undefined") return v.k == Value::Undef;
    if (t == "none") return v.k == Value::None;
    if (t == "string") return v.k == Value::Str;
    if (t == "mapping") return v.k == Value::Dict;
    if (t == "iterable") return v.k == Value::List || v.k == Value::Str || v.k == Value::Dict;
    if (t == "sequence") return v.k == Value::List || v.k == Value::Str || v.k == Value::Dict;
    if (t == "number") return v.k == Value::Int || v.k == Value::Float || v.k == Value::Bool;
    if (t == "integer") return v.k == Value::Int;
    if (t == "float") return v.k == Value::Float;
    if (t == "true") return v.k == Value::Bool && v.b;
    if (t == "false") return v.k == Value::Bool && !v.b;
    if (t == "boolean") return v.k == Value::Bool;
    if (t == "callable") return v.k == Value::Func;
    if (t == "odd" || t == "even") {
      if (v.k != Value::Int) rt_fail("test '", t, "' needs an integer, got ", kind_name(v));
      return (v.i % 2 != 0) == (t == "odd");
    }
    if (t == "divisibleby") {
      const Value& d = arg();
      if (v.k != Value::Int || d.k != Value::Int) rt_fail("divisibleby needs integers");
      if (d.i == 0) rt_fail("divisibleby 0");
      return d.i == -1 || v.i % d.i == 0;
    }
    if (t == "equalto" || t == "eq" || t == "==") return equal(v, arg());
    if (t == "ne" || t == "!=") return !equal(v, arg());
    if (t == "sameas") {
      const Value& o = arg();
      if (v.is_container() || o.is_container()) return v.k == o.k && v.o == o.o;
      return v.k == o.k && equal(v, o);
    }
    if (t == "lower") return v.k == Value::Str && map_case(v.s, false) == v.s;
    if (t == "upper") return v.k == Value::Str && map_case(v.s, true) == v.s;
    if (t == "in") return contains(arg(), v);
    int c;
    if (t == "lt" || t == "<" || t == "lessthan") return compare(v, arg(), true) < 0;
    if (t == "gt" || t == ">" || t == "greaterthan") return compare(v, arg(), true) > 0;
    if (t == "le" || t == "<=") return (c = compare(v, arg(), true)) <= 0;
    if (t == "ge" || t == ">=") return (c = compare(v, arg(), true)) >= 0;
    rt_fail("unknown test '", t, "'");
  }

  // ---------------------------------------------------------------- filters
  static bool boolean_arg(const Value* v, const char* name) {
    if (!v) return false;
    if (v->k != Value::Bool) rt_fail(name, " must be a boolean");
    return v->b;
  }

  Value apply_filter(const std::string& f, Value v, Args& a, Scope& sc) {
    if (f == "safe") return v;
    if (f == "default" || f == "d") {
      const Value* def = a.get(0, "default_value");
      bool boolean = boolean_arg(a.get(1, "boolean"), "boolean");
      if (v.k == Value::Undef || (boolean && !truthy(v))) return def ? *def : Value::str("");
      return v;
    }
    if (f == "tojson") {
      JsonOpts o;
      const Value* ind = a.get(0, "indent");
      if (ind && ind->k == Value::Int) o.indent = int(std::clamp<int64_t>(ind->i, -1, 64));
      else if (ind && ind->k != Value::None) rt_fail("tojson indent must be an integer");
      o.ensure_ascii = boolean_arg(a.get(99, "ensure_ascii"), "ensure_ascii");
      o.sort_keys = boolean_arg(a.get(99, "sort_keys"), "sort_keys");
      if (const Value* sep = a.get(99, "separators"); sep && sep->k != Value::None) {
        if (sep->k != Value::List || sep->o->items.size() != 2 || sep->o->items[0].k != Value::Str ||
            sep->o->items[1].k != Value::Str)
          rt_fail("separators must be a tuple of two strings");
        o.custom_sep = true;
        o.item_sep = sep->o->items[0].s;
        o.key_sep = sep->o->items[1].s;
      }
      std::string out;
      to_json(out, v, o, 0, true);
      return make_str(std::move(out));
    }
    if (f == "string") return make_str(to_str(v));
    if (f == "length" || f == "count") {
      switch (v.k) {
        case Value::Str: return Value::integer(int64_t(utf16_length(v.s)));
        case Value::List: return Value::integer(int64_t(v.o->items.size()));
        case Value::Dict: case Value::Ns: return Value::integer(int64_t(v.o->entries.size()));
        case Value::Undef: return Value::integer(0);
        default: rt_fail("object of type ", kind_name(v), " has no length");
      }
    }
    if (f == "list") {
      if (v.k == Value::List) return v;
      return Value::list(iterate(v, "list"));
    }
    if (f == "first" || f == "last") {
      std::vector<Value> items = v.k == Value::List ? v.o->items : iterate(v, f.c_str());
      if (items.empty()) return Value();
      return f == "first" ? items.front() : items.back();
    }
    if (f == "reverse") {
      if (v.k == Value::Str) {
        auto cs = chars_of(v.s);
        std::string out;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
        return Value::str(std::move(out));
      }
      std::vector<Value> items = iterate(v, "reverse");
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (f == "join") {
      const Value* sep = a.get(0, "d");
      const Value* attr = a.get(1, "attribute");
      if (sep && sep->k != Value::Str) rt_fail("join separator must be a string");
      std::string out;
      bool first = true;
      for (auto& x : iterate(v, "join")) {
        if (!first && sep) out += sep->s;
        first = false;
        out += to_str(attr ? attr_path(x, to_str(*attr)) : x);
        if (out.size() > opt.max_output_bytes) rt_fail("string too long");
      }
      return Value::str(std::move(out));
    }
    if (f == "unique") {
      std::vector<Value> out;
      for (auto& x : iterate(v, "unique")) {
        tick();
        bool seen = false;
        for (auto& y : out)
          if (equal(x, y)) { seen = true; break; }
        if (!seen) out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    if (f == "sort") {
      bool reverse = boolean_arg(a.get(0, "reverse"), "reverse");
      bool cs = boolean_arg(a.get(1, "case_sensitive"), "case_sensitive");
      const Value* attr = a.get(2, "attribute");
      std::vector<Value> items = iterate(v, "sort");
      std::vector<std::pair<Value, Value>> keyed;
      for (auto& x : items) keyed.emplace_back(attr && attr->k != Value::None ? attr_path(x, to_str(*attr)) : x, x);
      steps += keyed.size() * 8;
      std::stable_sort(keyed.begin(), keyed.end(), [&](auto& p, auto& q) {
        int c = compare(p.first, q.first, cs);
        return reverse ? c > 0 : c < 0;
      });
      std::vector<Value> out;
      for (auto& p : keyed) out.push_back(std::move(p.second));
      return Value::list(std::move(out));
    }
    if (f == "dictsort") {
      if (v.k != Value::Dict) rt_fail("dictsort needs a dict, got ", kind_name(v));
      bool cs = boolean_arg(a.get(0, "case_sensitive"), "case_sensitive");
      const Value* by = a.get(1, "by");
      bool reverse = boolean_arg(a.get(2, "reverse"), "reverse");
      bool by_value = false;
      if (by) {
        if (by->k != Value::Str || (by->s != "key" && by->s != "value")) rt_fail("dictsort by must be 'key' or 'value'");
        by_value = by->s == "value";
      }
      auto es = v.o->entries;
      std::stable_sort(es.begin(), es.end(), [&](auto& p, auto& q) {
        int c = by_value ? compare(p.second, q.second, cs) : compare(Value::str(p.first), Value::str(q.first), cs);
        return reverse ? c > 0 : c < 0;
      });
      std::vector<Value> out;
      for (auto& [k, x] : es) out.push_back(Value::list({Value::str(k), x}));
      return Value::list(std::move(out));
    }
    if (f == "items") {
      if (v.k == Value::Undef) return Value::list({});
      if (v.k != Value::Dict && v.k != Value::Ns) rt_fail("items needs a dict, got ", kind_name(v));
      return items_of(v);
    }
    if (f == "keys" || f == "values") {
      if (v.k != Value::Dict) rt_fail(f, " needs a dict, got ", kind_name(v));
      std::vector<Value> out;
      for (auto& [k, x] : v.o->entries) out.push_back(f == "keys" ? Value::str(k) : x);
      return Value::list(std::move(out));
    }
    if (f == "map") {
      std::vector<Value> out;
      const Value* attr = nullptr;
      for (auto& [k, x] : a.kw)
        if (k == "attribute") attr = &x;
      const Value* def = nullptr;
      for (auto& [k, x] : a.kw)
        if (k == "default") def = &x;
      if (attr) {
        for (auto& x : iterate(v, "map")) {
          tick();
          Value r = attr_path(x, to_str(*attr));
          out.push_back(r.k == Value::Undef && def ? *def : r);
        }
        return Value::list(std::move(out));
      }
      if (a.pos.empty() || a.pos[0].k != Value::Str) rt_fail("map needs a filter name or attribute=");
      std::string name = a.pos[0].s;
      if (!known_filters().count(name)) rt_fail("unknown filter '", name, "'");
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (auto& x : iterate(v, "map")) {
        tick();
        Args copy = rest;
        out.push_back(apply_filter(name, x, copy, sc));
      }
      return Value::list(std::move(out));
    }
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      bool attr_mode = f == "selectattr" || f == "rejectattr";
      bool want = f == "select" || f == "selectattr";
      size_t k = 0;
      std::string attr;
      if (attr_mode) {
        if (a.pos.empty() || a.pos[0].k != Value::Str) rt_fail(f, " needs an attribute name");
        attr = a.pos[0].s;
        k = 1;
      }
      std::string test;
      if (a.pos.size() > k) {
        if (a.pos[k].k != Value::Str) rt_fail(f, " test name must be a string");
        test = a.pos[k].s;
        if (!known_tests().count(test)) rt_fail("unknown test '", test, "'");
      }
      std::vector<Value> targs(a.pos.begin() + std::min(a.pos.size(), k + 1), a.pos.end());
      std::vector<Value> out;
      for (auto& x : iterate(v, f.c_str())) {
        tick();
        Value subject = attr_mode ? attr_path(x, attr) : x;
        bool r = test.empty() ? truthy(subject) : run_test(test, subject, targs);
        if (r == want) out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    if (f == "min" || f == "max") {
      std::vector<Value> items = iterate(v, f.c_str());
      if (items.empty()) return Value();
      bool cs = boolean_arg(a.get(0, "case_sensitive"), "case_sensitive");
      const Value* attr = a.get(1, "attribute");
      auto key = [&](const Value& x) { return attr ? attr_path(x, to_str(*attr)) : x; };
      size_t best = 0;
      for (size_t i = 1; i < items.size(); ++i) {
        int c = compare(key(items[i]), key(items[best]), cs);
        if (f == "min" ? c < 0 : c > 0) best = i;
      }
      return items[best];
    }
    if (f == "sum") {
      const Value* attr = a.get(0, "attribute");
      const Value* start = a.get(1, "start");
      Value acc = start ? *start : Value::integer(0);
      for (auto& x : iterate(v, "sum")) {
        Value y = attr ? attr_path(x, to_str(*attr)) : x;
        if (!is_num(acc) || !is_num(y)) rt_fail("sum needs numbers");
        acc = arith("+", acc, y);
      }
      return acc;
    }
    if (f == "int") {
      const Value* def = a.get(0, "default");
      Value d = def ? *def : Value::integer(0);
      switch (v.k) {
        case Value::Int: return v;
        case Value::Bool: return Value::integer(v.b);
        case Value::Float:
          if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return d;
          return Value::integer(int64_t(std::trunc(v.f)));
        case Value::Str: {
          std::string s(trim_both(v.s));
          std::string digits;
          for (char c : s) if (c != '_') digits += c;
          int64_t x;
          auto r = std::from_chars(digits.data() + (digits.size() && digits[0] == '+'), digits.data() + digits.size(), x);
          if (r.ec == std::errc() && r.ptr == digits.data() + digits.size() && !digits.empty()) return Value::integer(x);
          char* end = nullptr;
          double dv = std::strtod(s.c_str(), &end);
          if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(dv) && std::fabs(dv) < 9.2e18)
            return Value::integer(int64_t(std::trunc(dv)));
          return d;
        }
        default: return d;
      }
    }
    if (f == "float") {
      const Value* def = a.get(0, "default");
      Value d = def ? *def : Value::number(0);
      if (is_num(v)) return Value::number(num_of(v));
      if (v.k == Value::Str) {
        std::string s(trim_both(v.s));
        char* end = nullptr;
        double dv = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size()) return Value::number(dv);
      }
      return d;
    }
    if (f == "bool") return Value::boolean(truthy(v));
    if (f == "abs") {
      if (v.k == Value::Int) {
        if (v.i == INT64_MIN) rt_fail("integer overflow");
        return Value::integer(v.i < 0 ? -v.i : v.i);
      }
      if (v.k == Value::Float) return Value::number(std::fabs(v.f));
      if (v.k == Value::Bool) return Value::integer(v.b);
      rt_fail("bad operand type for abs(): ", kind_name(v));
    }
    if (f == "round") {
      if (!is_num(v)) rt_fail("round needs a number, got ", kind_name(v));
      const Value* pr = a.get(0, "precision");
      const Value* method_v = a.get(1, "method");
      int64_t p = pr ? (pr->k == Value::Int ? pr->i : (rt_fail("precision must be an integer"), 0)) : 0;
      p = std::clamp<int64_t>(p, -300, 300);
      std::string m = method_v ? to_str(*method_v) : "common";
      double x = num_of(v), scale = std::pow(10.0, double(p));
      double y = x * scale;
      if (m == "common") y = std::round(y);
      else if (m == "floor") y = std::floor(y);
      else if (m == "ceil") y = std::ceil(y);
      else rt_fail("round method must be 'common', 'floor' or 'ceil'");
      return Value::number(y / scale);
    }
    // string filters
    if (v.k != Value::Str) {
      if (f == "upper" || f == "lower" || f == "title" || f == "capitalize" || f == "trim" || f == "replace" ||
          f == "indent")
        v = Value::str(to_str(v));
    }
    if (f == "upper") return Value::str(map_case(v.s, true));
    if (f == "lower") return Value::str(map_case(v.s, false));
    if (f == "title") return Value::str(js_title(v.s));
    if (f == "capitalize") return Value::str(capitalize(v.s));
    if (f == "trim") return Value::str(py_strip(v.s, a.get(0, "chars"), true, true));
    if (f == "replace") {
      Value fn = string_method(v, "replace");
      return (*fn.fn)(*this, a);
    }
    if (f == "indent") {
      const Value* w = a.get(0, "width");
      std::string pad;
      if (!w) pad = "    ";
      else if (w->k == Value::Int) pad = std::string(size_t(std::clamp<int64_t>(w->i, 0, 1000)), ' ');
      else if (w->k == Value::Str) pad = w->s;
      else rt_fail("indent width must be an integer or a string");
      bool first = boolean_arg(a.get(1, "first"), "first");
      bool blank = boolean_arg(a.get(2, "blank"), "blank");
      std::string out;
      size_t i = 0, line = 0;
      for (;;) {
        size_t e = v.s.find('\n', i);
        std::string_view l = std::string_view(v.s).substr(i, e == std::string::npos ? std::string::npos : e - i);
        if ((line > 0 || first) && (blank || !l.empty())) out += pad;
        out += l;
        if (out.size() > opt.max_output_bytes) rt_fail("string too long");
        if (e == std::string::npos) break;
        out += '\n';
        i = e + 1;
        ++line;
      }
      return Value::str(std::move(out));
    }
    rt_fail("unknown filter '", f, "'");
  }
};

}  // namespace

// ================================================================== public API
JinjaTemplate JinjaTemplate::parse(std::string_view tmpl, const std::string& source) {
  auto prog = std::make_shared<JinjaProgram>();
  prog->where.source = source;
  prog->where.text = std::string(tmpl);
  Src src = preprocess(tmpl);
  std::vector<Tok> toks = lex(src, prog->where);
  Parser p{toks, prog->where};
  prog->body = p.parse_all();
  JinjaTemplate t;
  t.prog_ = std::move(prog);
  return t;
}

const std::string& JinjaTemplate::source() const { return prog_->where.source; }

std::string JinjaTemplate::render(const ojson& context, const JinjaOptions& opt) const {
  if (!context.is_object() && !context.is_null()) throw Error(source() + ": the context must be a JSON object");
  Interp in{*prog_, opt};
  Scope global;
  in.global = &global;
  try {
    if (context.is_object()) {
      Value ctx = json_to_value(context);
      for (auto& [k, v] : ctx.o->entries) global.set(k, v);
    }
    std::string out;
    in.exec_block(prog_->body, global, out);
    return out;
  } catch (const RaiseErr& e) {
    throw Error(e.msg);
  } catch (const RtErr& e) {
    throw Error(source() + ": " + e.msg);
  }
}

std::string render_jinja(std::string_view tmpl, const ojson& context, const std::string& source,
                         const JinjaOptions& opt) {
  return JinjaTemplate::parse(tmpl, source).render(context, opt);
}

std::string apply_chat_template(const JinjaTemplate& tmpl, const ojson& messages, const ojson& tools,
                                bool add_generation_prompt, const ojson& extra, const JinjaOptions& opt) {
  if (!messages.is_array()) throw Error("apply_chat_template: messages must be a JSON array");
  if (!extra.is_object() && !extra.is_null()) throw Error("apply_chat_template: extra must be a JSON object");
  ojson ctx = ojson::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  return tmpl.render(ctx, opt);
}

std::string apply_chat_template(std::string_view tmpl, const ojson& messages, const ojson& tools,
                                bool add_generation_prompt, const ojson& extra, const JinjaOptions& opt) {
  return apply_chat_template(JinjaTemplate::parse(tmpl), messages, tools, add_generation_prompt, extra, opt);
}

}  // namespace todae
