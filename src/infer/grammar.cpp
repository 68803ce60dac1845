// Constrained decoding: JSON Schema -> grammar nodes -> byte-level pushdown matcher -> token masks.
// See grammar.h for what is generated and which keywords are supported.
#include "infer/grammar.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "base/base.h"

namespace todae {

namespace {

using ojson = nlohmann::ordered_json;

constexpr int kMaxDepth = 33;       // frames on a stack: the root's, then 32 nested values
constexpr int kMaxIntDigits = 15;   // integer part of a number
constexpr int kMaxFracDigits = 15;  // fraction part
constexpr int kMaxExpDigits = 2;    // exponent
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int32_t kNever = 1 << 20;

enum class Kind : uint8_t {
  Any,      // any JSON value: dispatches on its first byte
  Literal,  // one of a set of JSON texts (enum, const, true/false, null)
  Number,
  String,
  Object,  // declared properties, in order
  Map,     // any keys, one value schema
  Array,
  AnyOf,  // alternatives (also $ref aliases); never on a stack
  Root,   // bottom of every stack: holds the schema's root value
};

struct Node {
  Kind kind = Kind::Any;
  std::string where;  // JSON pointer, for messages
  // Stack frames needed to complete the smallest value of this node (itself included);
  // kNever if it has no finite value.
  int32_t min_depth = kNever;
  bool productive() const { return min_depth < kNever; }
  // Literal: the JSON texts, sorted (so texts sharing a prefix are adjacent, the shorter first).
  std::vector<std::string> lits;
  // Number
  bool integer = false, bounded = false, lo_excl = false, hi_excl = false;
  double lo = -kInf, hi = kInf;
  // String: characters (code points), counted only when limited.
  int32_t min_len = 0, max_len = -1;
  bool counted() const { return min_len > 0 || max_len >= 0; }
  // Object: keys as JSON text (with quotes), their schemas, required flags;
  // next_required[i]: first required index >= i (keys.size() if none).
  std::vector<std::string> keys;
  std::vector<int32_t> values;
  std::vector<uint8_t> required;
  std::vector<int32_t> next_required;
  // Map: schema of the values. Array: schema of items past the prefix (-1: none).
  int32_t value = -1;
  std::vector<int32_t> prefix;
  int32_t min_items = 0, max_items = -1;  // -1: unbounded
  // AnyOf: as written, and resolved to productive non-AnyOf nodes.
  std::vector<int32_t> alts, flat;
};

// Nodes every grammar starts with.
enum : int32_t { kAny = 0, kString, kNumber, kBool, kNull, kAnyObject, kAnyArray, kFixedNodes };

}  // namespace

struct GrammarImpl {
  std::vector<Node> nodes;
  int32_t root = kAny;  // the schema's root
  int32_t start = -1;   // the Root node around it
};

namespace {

// ---- compiling ----------------------------------------------------------------------------------

std::string pointer_escape(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

const std::set<std::string>& unsupported_keywords() {
  static const std::set<std::string> k = {"not",
                                          "if",
                                          "then",
                                          "else",
                                          "pattern",
                                          "patternProperties",
                                          "propertyNames",
                                          "minProperties",
                                          "maxProperties",
                                          "dependentRequired",
                                          "dependentSchemas",
                                          "dependencies",
                                          "unevaluatedProperties",
                                          "unevaluatedItems",
                                          "contains",
                                          "minContains",
                                          "maxContains",
                                          "multipleOf",
                                          "$dynamicRef",
                                          "$recursiveRef",
                                          "contentSchema"};
  return k;
}

// Keywords that carry no constraint.
bool is_annotation(const std::string& k) {
  static const std::set<std::string> a = {
      "title",    "description", "default",          "examples",        "$schema", "$id",
      "$comment", "deprecated",  "readOnly",         "writeOnly",       "$defs",   "definitions",
      "format",   "$anchor",     "contentMediaType", "contentEncoding", "strict",  "name"};
  return a.count(k) > 0;
}

void init_fixed(std::vector<Node>& nodes) {
  nodes.assign(kFixedNodes, Node{});
  nodes[kAny].kind = Kind::Any;
  nodes[kString].kind = Kind::String;
  nodes[kNumber].kind = Kind::Number;
  nodes[kBool].kind = Kind::Literal;
  nodes[kBool].lits = {"false", "true"};
  nodes[kNull].kind = Kind::Literal;
  nodes[kNull].lits = {"null"};
  nodes[kAnyObject].kind = Kind::Map;
  nodes[kAnyObject].value = kAny;
  nodes[kAnyArray].kind = Kind::Array;
  nodes[kAnyArray].value = kAny;
}

struct Compiler {
  const ojson& doc;
  std::string where;
  std::vector<Node> nodes;
  std::map<std::string, int32_t> refs;

  [[noreturn]] void error(const std::string& ptr, const std::string& what) const { fail(where, ptr, ": ", what); }

  int32_t add(Node n) {
    nodes.push_back(std::move(n));
    return int32_t(nodes.size() - 1);
  }
  int32_t never(const std::string& ptr) {
    Node n;
    n.kind = Kind::AnyOf;
    n.where = ptr;
    return add(std::move(n));
  }

  int64_t count_of(const ojson& s, const char* key, const std::string& ptr) const {
    const ojson& v = s[key];
    if (!v.is_number_integer() && !(v.is_number_float() && v.get<double>() == std::floor(v.get<double>())))
      error(ptr + "/" + key, "must be a non-negative integer");
    double d = v.get<double>();
    if (d < 0) error(ptr + "/" + key, "must be a non-negative integer");
    return d > 1e9 ? int64_t(1e9) : int64_t(d);
  }
  double number_of(const ojson& s, const char* key, const std::string& ptr) const {
    if (!s[key].is_number()) error(ptr + "/" + key, "must be a number");
    return s[key].get<double>();
  }

  int32_t resolve_ref(const ojson& ref, const std::string& ptr) {
    if (!ref.is_string()) error(ptr + "/$ref", "must be a string");
    std::string r = ref.get<std::string>();
    if (auto it = refs.find(r); it != refs.end()) return it->second;
    if (r.empty() || r[0] != '#')
      error(ptr + "/$ref", cat("only references inside the schema ('#', '#/$defs/...') are supported, not '", r, "'"));
    const ojson* target = nullptr;
    try {
      target = &doc.at(ojson::json_pointer(r.substr(1)));
    } catch (const std::exception&) {
      error(ptr + "/$ref", cat("'", r, "' does not name a schema in the document"));
    }
    Node alias;
    alias.kind = Kind::AnyOf;
    alias.where = ptr;
    int32_t id = add(std::move(alias));
    refs[r] = id;  // before compiling the target, so recursion finds it
    int32_t t = compile(*target, r.substr(1));
    nodes[id].alts = {t};
    return id;
  }

  // Keywords of `s` other than annotations and those listed.
  std::vector<std::string> others(const ojson& s, std::initializer_list<const char*> allowed) const {
    std::vector<std::string> out;
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (is_annotation(it.key())) continue;
      bool ok = false;
      for (const char* a : allowed) ok = ok || it.key() == a;
      if (!ok) out.push_back(it.key());
    }
    return out;
  }

  int32_t compile(const ojson& s, const std::string& ptr) {
    if (s.is_boolean()) return s.get<bool>() ? kAny : never(ptr);
    if (!s.is_object()) error(ptr, "a schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (unsupported_keywords().count(k)) error(ptr, cat("keyword '", k, "' is not supported"));
      if (k == "uniqueItems" && it.value() != false) error(ptr, "keyword 'uniqueItems' is not supported");
      if (k == "additionalItems" && !s.contains("items"))
        error(ptr, "keyword 'additionalItems' without 'items' is not supported");
    }
    if (s.contains("nullable") && s["nullable"] == true) {
      ojson rest = s;
      rest.erase("nullable");
      Node n;
      n.kind = Kind::AnyOf;
      n.where = ptr;
      int32_t inner = compile(rest, ptr);
      n.alts = {inner, kNull};
      return add(std::move(n));
    }
    if (s.contains("$ref")) {
      auto extra = others(s, {"$ref", "nullable"});
      if (!extra.empty()) error(ptr, cat("keyword '", extra[0], "' next to '$ref' is not supported"));
      return resolve_ref(s["$ref"], ptr);
    }
    if (s.contains("allOf")) {
      const ojson& all = s["allOf"];
      if (!all.is_array() || all.size() != 1)
        error(ptr + "/allOf", "keyword 'allOf' is supported with exactly one schema only");
      auto extra = others(s, {"allOf", "nullable"});
      if (!extra.empty()) error(ptr, cat("keyword '", extra[0], "' next to 'allOf' is not supported"));
      return compile(all[0], ptr + "/allOf/0");
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const ojson& alts = s[key];
      if (!alts.is_array() || alts.empty()) error(ptr + "/" + key, "must be a non-empty array of schemas");
      auto extra = others(s, {key, "nullable"});
      if (!extra.empty()) error(ptr, cat("keyword '", extra[0], "' next to '", key, "' is not supported"));
      Node n;
      n.kind = Kind::AnyOf;
      n.where = ptr;
      for (size_t i = 0; i < alts.size(); ++i) n.alts.push_back(compile(alts[i], cat(ptr, "/", key, "/", i)));
      return add(std::move(n));
    }

    std::vector<std::string> types;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      if (t.is_string())
        types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) error(ptr + "/type", "must be a type name or an array of type names");
          types.push_back(x.get<std::string>());
        }
      } else
        error(ptr + "/type", "must be a type name or an array of type names");
      for (const auto& name : types)
        if (name != "object" && name != "array" && name != "string" && name != "number" && name != "integer" &&
            name != "boolean" && name != "null")
          error(ptr + "/type", cat("unknown type '", name, "'"));
    }

    if (s.contains("enum") || s.contains("const")) {
      std::vector<ojson> values;
      if (s.contains("const")) values.push_back(s["const"]);
      if (s.contains("enum")) {
        if (!s["enum"].is_array()) error(ptr + "/enum", "must be an array");
        std::vector<ojson> e(s["enum"].begin(), s["enum"].end());
        if (s.contains("const")) {  // both: the const, if the enum has it
          bool in = std::find(e.begin(), e.end(), s["const"]) != e.end();
          if (!in) values.clear();
        } else {
          values = e;
        }
      }
      Node n;
      n.kind = Kind::Literal;
      n.where = ptr;
      for (const auto& v : values) {
        if (!types.empty() &&
            !std::any_of(types.begin(), types.end(), [&](const std::string& t) { return has_type(v, t); }))
          continue;
        n.lits.push_back(v.dump());
      }
      std::sort(n.lits.begin(), n.lits.end());
      n.lits.erase(std::unique(n.lits.begin(), n.lits.end()), n.lits.end());
      if (n.lits.empty()) return never(ptr);
      return add(std::move(n));
    }

    if (types.empty()) {  // inferred from the keywords
      auto has = [&](std::initializer_list<const char*> keys) {
        for (const char* k : keys)
          if (s.contains(k)) return true;
        return false;
      };
      if (has({"properties", "required", "additionalProperties"}))
        types = {"object"};
      else if (has({"items", "prefixItems", "minItems", "maxItems"}))
        types = {"array"};
      else if (has({"minLength", "maxLength"}))
        types = {"string"};
      else if (has({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}))
        types = {"number"};
      else
        return kAny;
    }
    if (types.size() == 1) return compile_typed(s, types[0], ptr);
    Node n;
    n.kind = Kind::AnyOf;
    n.where = ptr;
    for (const auto& t : types) n.alts.push_back(compile_typed(s, t, ptr));
    return add(std::move(n));
  }

  static bool has_type(const ojson& v, const std::string& t) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer")
      return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    return false;
  }

  int32_t compile_typed(const ojson& s, const std::string& t, const std::string& ptr) {
    if (t == "null") return kNull;
    if (t == "boolean") return kBool;
    if (t == "string") {
      if (!s.contains("minLength") && !s.contains("maxLength")) return kString;
      Node n;
      n.kind = Kind::String;
      n.where = ptr;
      if (s.contains("minLength")) n.min_len = int32_t(count_of(s, "minLength", ptr));
      if (s.contains("maxLength")) n.max_len = int32_t(count_of(s, "maxLength", ptr));
      return add(std::move(n));
    }
    if (t == "number" || t == "integer") {
      Node n;
      n.kind = Kind::Number;
      n.where = ptr;
      n.integer = t == "integer";
      if (s.contains("minimum")) n.lo = number_of(s, "minimum", ptr);
      if (s.contains("maximum")) n.hi = number_of(s, "maximum", ptr);
      for (auto [key, bound, excl, is_lo] : {std::tuple{"exclusiveMinimum", &n.lo, &n.lo_excl, true},
                                             std::tuple{"exclusiveMaximum", &n.hi, &n.hi_excl, false}}) {
        if (!s.contains(key)) continue;
        if (s[key].is_boolean()) {  // draft 4: modifies minimum/maximum
          *excl = s[key].get<bool>();
        } else {
          double v = number_of(s, key, ptr);
          if (is_lo ? v >= *bound : v <= *bound) *bound = v, *excl = true;
        }
      }
      n.bounded = n.lo > -kInf || n.hi < kInf;
      if (!n.integer && !n.bounded) return kNumber;
      return add(std::move(n));
    }
    if (t == "object") {
      Node n;
      n.where = ptr;
      int32_t extra = kAny;  // schema of keys not in "properties"
      bool extra_allowed = true;
      if (s.contains("additionalProperties")) {
        const ojson& ap = s["additionalProperties"];
        if (ap == false)
          extra_allowed = false;
        else
          extra = compile(ap, ptr + "/additionalProperties");
      }
      if (s.contains("properties")) {
        const ojson& props = s["properties"];
        if (!props.is_object()) error(ptr + "/properties", "must be an object");
        for (auto it = props.begin(); it != props.end(); ++it) {
          n.keys.push_back(ojson(it.key()).dump());
          n.values.push_back(compile(it.value(), ptr + "/properties/" + pointer_escape(it.key())));
          n.required.push_back(0);
        }
      }
      if (s.contains("required")) {
        const ojson& req = s["required"];
        if (!req.is_array()) error(ptr + "/required", "must be an array of property names");
        for (size_t i = 0; i < req.size(); ++i) {
          if (!req[i].is_string()) error(cat(ptr, "/required/", i), "must be a property name");
          std::string key = ojson(req[i].get<std::string>()).dump();
          auto it = std::find(n.keys.begin(), n.keys.end(), key);
          if (it != n.keys.end()) {
            n.required[it - n.keys.begin()] = 1;
          } else if (!extra_allowed) {
            error(cat(ptr, "/required/", i),
                  cat("required property ", key, " is not in 'properties' and additionalProperties is false"));
          } else {  // written after the declared ones, with the additionalProperties schema
            n.keys.push_back(key);
            n.values.push_back(extra);
            n.required.push_back(1);
          }
        }
      }
      if (n.keys.empty() && extra_allowed) {
        n.kind = Kind::Map;
        n.value = extra;
      } else {
        n.kind = Kind::Object;
      }
      return add(std::move(n));
    }
    // array
    Node n;
    n.kind = Kind::Array;
    n.where = ptr;
    n.value = kAny;
    if (s.contains("prefixItems")) {
      const ojson& p = s["prefixItems"];
      if (!p.is_array()) error(ptr + "/prefixItems", "must be an array of schemas");
      for (size_t i = 0; i < p.size(); ++i) n.prefix.push_back(compile(p[i], cat(ptr, "/prefixItems/", i)));
    }
    if (s.contains("items")) {
      const ojson& it = s["items"];
      if (it.is_array()) {  // draft 7 tuple
        if (s.contains("prefixItems")) error(ptr + "/items", "an array 'items' next to 'prefixItems' is not supported");
        for (size_t i = 0; i < it.size(); ++i) n.prefix.push_back(compile(it[i], cat(ptr, "/items/", i)));
        if (s.contains("additionalItems")) {
          const ojson& ai = s["additionalItems"];
          n.value = ai == false ? -1 : compile(ai, ptr + "/additionalItems");
        }
      } else {
        n.value = it == false ? -1 : compile(it, ptr + "/items");
      }
    }
    if (s.contains("minItems")) n.min_items = int32_t(count_of(s, "minItems", ptr));
    if (s.contains("maxItems")) n.max_items = int32_t(count_of(s, "maxItems", ptr));
    return add(std::move(n));
  }
};

int32_t item_schema(const Node& n, int64_t i) { return i < int64_t(n.prefix.size()) ? n.prefix[i] : n.value; }

// Is there a value the number node accepts that can be written within the digit limits?
bool number_feasible(const Node& n) {
  constexpr double kBig = 1e15;  // magnitudes below this fit in kMaxIntDigits
  if (n.integer) {
    double lo = n.lo_excl ? std::floor(n.lo) + 1 : std::ceil(n.lo);
    double hi = n.hi_excl ? std::ceil(n.hi) - 1 : std::floor(n.hi);
    return std::max(lo, -(kBig - 1)) <= std::min(hi, kBig - 1);
  }
  if (n.lo >= kBig || n.hi <= -kBig) return false;
  if (n.lo == n.hi) {  // one value: can it be written with kMaxFracDigits fraction digits?
    if (n.lo_excl || n.hi_excl) return false;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", kMaxFracDigits, n.lo);
    return std::strtod(buf, nullptr) == n.lo;
  }
  // Values are written on a grid of 1e-15; a narrower range may fall between two points.
  return n.lo < n.hi && n.hi - n.lo > 1e-12;
}

void finish_grammar(GrammarImpl& g, const std::string& where) {
  auto& N = g.nodes;
  // Which nodes can produce a finite value, and how deep the smallest one nests (least fixpoint).
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& n : N) {
      int32_t d = kNever;
      auto depth = [&](int32_t id) { return id >= 0 ? N[id].min_depth : kNever; };
      switch (n.kind) {
        case Kind::Any:
        case Kind::Map:
          d = 1;
          break;
        case Kind::Literal:
          d = n.lits.empty() ? kNever : 1;
          break;
        case Kind::Number:
          d = number_feasible(n) ? 1 : kNever;
          break;
        case Kind::String:
          d = n.max_len < 0 || n.min_len <= n.max_len ? 1 : kNever;
          break;
        case Kind::Object:
          d = 1;
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (n.required[i]) d = std::max(d, 1 + depth(n.values[i]));
          break;
        case Kind::Array:
          d = n.max_items < 0 || n.min_items <= n.max_items ? 1 : kNever;
          for (int32_t i = 0; i < n.min_items && d < kNever; ++i) d = std::max(d, 1 + depth(item_schema(n, i)));
          break;
        case Kind::AnyOf:
          for (int32_t a : n.alts) d = std::min(d, depth(a));
          break;
        case Kind::Root:
          d = 1 + depth(n.value);
          break;
      }
      d = std::min(d, kNever);
      if (d < n.min_depth) n.min_depth = d, changed = true;
    }
  }
  if (!N[g.root].productive()) fail(where, N[g.root].where, ": the schema accepts no value that can be generated");
  if (1 + N[g.root].min_depth > kMaxDepth)
    fail(where, N[g.root].where, ": the schema nests values deeper than ", kMaxDepth - 1, " levels");
  // Drop what can never complete: optional properties, items past the last possible, alternatives.
  for (auto& n : N) {
    if (n.kind == Kind::Object) {
      std::vector<std::string> keys;
      std::vector<int32_t> values;
      std::vector<uint8_t> required;
      for (size_t i = 0; i < n.keys.size(); ++i) {
        if (!N[n.values[i]].productive()) continue;
        keys.push_back(n.keys[i]), values.push_back(n.values[i]), required.push_back(n.required[i]);
      }
      n.keys = std::move(keys), n.values = std::move(values), n.required = std::move(required);
      n.next_required.assign(n.keys.size() + 1, int32_t(n.keys.size()));
      for (int32_t i = int32_t(n.keys.size()) - 1; i >= 0; --i)
        n.next_required[i] = n.required[i] ? i : n.next_required[i + 1];
    } else if (n.kind == Kind::Array) {
      int64_t limit = n.value >= 0 && N[n.value].productive() ? -1 : int64_t(n.prefix.size());
      for (size_t i = 0; i < n.prefix.size(); ++i)
        if (!N[n.prefix[i]].productive()) {
          limit = int64_t(i);
          break;
        }
      if (limit >= 0 && (n.max_items < 0 || n.max_items > limit)) n.max_items = int32_t(limit);
    } else if (n.kind == Kind::AnyOf) {
      // Flatten through nested alternatives and aliases; a cycle adds nothing.
      std::vector<uint8_t> seen(N.size(), 0);
      std::vector<int32_t> todo = {int32_t(&n - N.data())};
      while (!todo.empty()) {
        int32_t id = todo.back();
        todo.pop_back();
        if (seen[id]) continue;
        seen[id] = 1;
        if (N[id].kind == Kind::AnyOf) {
          for (auto it = N[id].alts.rbegin(); it != N[id].alts.rend(); ++it) todo.push_back(*it);
        } else if (N[id].productive()) {
          n.flat.push_back(id);
        }
      }
    }
  }
  Node start;
  start.kind = Kind::Root;
  start.value = g.root;
  start.min_depth = 1 + N[g.root].min_depth;
  N.push_back(std::move(start));
  g.start = int32_t(N.size() - 1);
}

// ---- matching -----------------------------------------------------------------------------------

enum : uint8_t {  // object
  O_OPEN,
  O_FIRST,
  O_KEY,
  O_COLON,
  O_AFTER_COLON,
  O_AFTER_COLON_SP,
  O_IN_VALUE,
  O_AFTER_VALUE,
  O_AFTER_COMMA,
  O_AFTER_COMMA_SP,
  O_DONE
};
enum : uint8_t {  // map
  M_OPEN,
  M_FIRST,
  M_IN_KEY,
  M_COLON,
  M_AFTER_COLON,
  M_AFTER_COLON_SP,
  M_IN_VALUE,
  M_AFTER_VALUE,
  M_AFTER_COMMA,
  M_AFTER_COMMA_SP,
  M_DONE
};
enum : uint8_t { A_OPEN, A_FIRST, A_IN_VALUE, A_AFTER_VALUE, A_AFTER_COMMA, A_AFTER_COMMA_SP, A_DONE };
enum : uint8_t { S_OPEN, S_CHAR, S_ESC, S_U, S_UTF8, S_DONE };
enum : uint8_t { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

enum class Res { Consumed, Reject, Push };

using Frame = GrammarFrame;
using Stack = std::vector<Frame>;

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// ---- numbers with bounds: the values still reachable from a prefix ----

double number_value(const Frame& f) {
  double v;
  if (f.st == N_FRAC) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%lld.%0*lld", (long long)f.x, int(f.b), (long long)f.y);
    v = std::strtod(buf, nullptr);
  } else {
    v = double(f.x);
  }
  return f.flags ? -v : v;
}

bool in_range(const Node& n, double v) {
  if (v < n.lo || (v == n.lo && n.lo_excl)) return false;
  if (v > n.hi || (v == n.hi && n.hi_excl)) return false;
  return !n.integer || v == std::floor(v);
}

// Do the values reachable from a prefix, magnitudes [a, b] (b excluded when b_open), meet the
// node's range, given the sign?
bool interval_ok(const Node& n, const Frame& f, double a, double b, bool b_open) {
  if (n.integer) {  // integers in [a, b]
    double lo = f.flags ? -b : a, hi = f.flags ? -a : b;
    lo = std::max(std::ceil(lo), n.lo_excl ? std::floor(n.lo) + 1 : std::ceil(n.lo));
    hi = std::min(std::floor(hi), n.hi_excl ? std::ceil(n.hi) - 1 : std::floor(n.hi));
    return lo <= hi;
  }
  double lo = a, hi = b;
  bool lo_open = false, hi_open = b_open;
  if (f.flags) lo = -b, hi = -a, lo_open = b_open, hi_open = false;
  // Intersect with [n.lo, n.hi].
  if (n.lo > lo || (n.lo == lo && n.lo_excl)) lo = n.lo, lo_open = n.lo_excl;
  if (n.hi < hi || (n.hi == hi && n.hi_excl)) hi = n.hi, hi_open = n.hi_excl;
  return lo < hi || (lo == hi && !lo_open && !hi_open);
}

bool number_viable(const Node& n, const Frame& f) {
  double I = double(f.x);
  switch (f.st) {
    case N_MINUS:
      return interval_ok(n, f, 0, 1e15, true);
    case N_ZERO:
      return interval_ok(n, f, 0, n.integer ? 0 : 1, !n.integer);
    case N_INT: {
      if (interval_ok(n, f, I, n.integer ? I : I + 1, !n.integer)) return true;
      double p = 1;
      for (int k = 1; k + f.a <= kMaxIntDigits; ++k) {
        p *= 10;
        if (interval_ok(n, f, I * p, (I + 1) * p - (n.integer ? 1 : 0), !n.integer)) return true;
      }
      return false;
    }
    case N_DOT:
      return interval_ok(n, f, I, I + 1, true);
    case N_FRAC: {
      double v = std::fabs(number_value(f));
      if (f.b >= kMaxFracDigits) return interval_ok(n, f, v, v, false);  // no more digits
      return interval_ok(n, f, v, v + std::pow(10.0, -f.b), true);
    }
    default:
      return true;
  }
}

Res step_number(const Node& n, Frame& f, uint8_t c) {
  Frame g = f;
  int d = c - '0';
  switch (f.st) {
    case N_START:
      if (c == '-') {
        g.st = N_MINUS, g.flags = 1;
        break;
      }
      [[fallthrough]];
    case N_MINUS:
      if (!is_digit(c)) return Res::Reject;
      g.st = d == 0 ? N_ZERO : N_INT, g.a = 1;
      if (n.bounded) g.x = d;
      break;
    case N_ZERO:
    case N_INT:
      if (is_digit(c) && f.st == N_INT) {
        if (f.a >= kMaxIntDigits) return Res::Reject;
        g.a++;
        if (n.bounded) g.x = f.x * 10 + d;
      } else if (c == '.' && !n.integer) {
        g.st = N_DOT;
      } else if ((c == 'e' || c == 'E') && !n.integer && !n.bounded) {
        g.st = N_E;
      } else {
        return Res::Reject;
      }
      break;
    case N_DOT:
    case N_FRAC:
      if (is_digit(c)) {
        if (f.b >= kMaxFracDigits) return Res::Reject;
        g.st = N_FRAC, g.b++;
        if (n.bounded) g.y = f.y * 10 + d;
      } else if ((c == 'e' || c == 'E') && f.st == N_FRAC && !n.bounded) {
        g.st = N_E;
      } else {
        return Res::Reject;
      }
      break;
    case N_E:
      if (c == '+' || c == '-') {
        g.st = N_ESIGN;
        break;
      }
      [[fallthrough]];
    case N_ESIGN:
    case N_EXP:
      if (!is_digit(c) || f.u >= kMaxExpDigits) return Res::Reject;
      g.st = N_EXP, g.u++;
      break;
  }
  if (n.bounded && !number_viable(n, g)) return Res::Reject;
  f = g;
  return Res::Consumed;
}

// ---- strings ----

Res step_string(const Node& n, Frame& f, uint8_t c) {
  switch (f.st) {
    case S_OPEN:
      if (c != '"') return Res::Reject;
      f.st = S_CHAR;
      return Res::Consumed;
    case S_CHAR: {
      if (c == '"') {
        if (f.a < n.min_len) return Res::Reject;
        f.st = S_DONE;
        return Res::Consumed;
      }
      if (c < 0x20) return Res::Reject;
      uint8_t st = S_CHAR, more = 0;
      uint16_t range = 0;
      if (c == '\\')
        st = S_ESC;
      else if (c < 0x80)
        st = S_CHAR;
      else if (c >= 0xC2 && c <= 0xDF)
        st = S_UTF8, more = 1, range = 0x80BF;
      else if (c == 0xE0)
        st = S_UTF8, more = 2, range = 0xA0BF;
      else if (c == 0xED)
        st = S_UTF8, more = 2, range = 0x809F;
      else if (c >= 0xE1 && c <= 0xEF)
        st = S_UTF8, more = 2, range = 0x80BF;
      else if (c == 0xF0)
        st = S_UTF8, more = 3, range = 0x90BF;
      else if (c >= 0xF1 && c <= 0xF3)
        st = S_UTF8, more = 3, range = 0x80BF;
      else if (c == 0xF4)
        st = S_UTF8, more = 3, range = 0x808F;
      else
        return Res::Reject;
      if (n.counted()) {  // a character starts here
        if (n.max_len >= 0 && f.a >= n.max_len) return Res::Reject;
        f.a++;
      }
      f.st = st, f.flags = more, f.u = range;
      return Res::Consumed;
    }
    case S_ESC:
      if (c == 'u') {
        f.st = S_U, f.b = 0, f.flags = 0;
        return Res::Consumed;
      }
      if (!std::strchr("\"\\/bfnrt", c) || c == 0) return Res::Reject;
      f.st = S_CHAR;
      return Res::Consumed;
    case S_U:
      if (!is_hex(c)) return Res::Reject;
      if (f.b == 0)
        f.flags = c == 'd' || c == 'D';  // U+D800..U+DFFF: surrogates, refused
      else if (f.b == 1 && f.flags && c >= '8')
        return Res::Reject;
      if (++f.b == 4) f.st = S_CHAR, f.b = 0, f.flags = 0;
      return Res::Consumed;
    case S_UTF8:
      if (c < (f.u >> 8) || c > (f.u & 0xFF)) return Res::Reject;
      if (--f.flags == 0)
        f.st = S_CHAR, f.u = 0;
      else
        f.u = 0x80BF;
      return Res::Consumed;
    default:
      return Res::Reject;
  }
}

// ---- literals ----

Res step_literal(const Node& n, Frame& f, uint8_t c) {
  const std::string& cur = n.lits[f.a];
  size_t b = size_t(f.b);
  if (b < cur.size() && uint8_t(cur[b]) == c) {
    f.b++;
    return Res::Consumed;
  }
  // Texts sharing the prefix so far follow the current one (sorted).
  for (size_t j = size_t(f.a) + 1; j < n.lits.size(); ++j) {
    const std::string& l = n.lits[j];
    if (l.size() < b || l.compare(0, b, cur, 0, b) != 0) break;
    if (l.size() > b && uint8_t(l[b]) == c) {
      f.a = int32_t(j), f.b++;
      return Res::Consumed;
    }
  }
  return Res::Reject;
}

// ---- containers ----
// A container at stack depth `depth` only starts a child whose smallest value still fits under
// kMaxDepth, so that no stack can reach a dead end.

struct Fits {
  const std::vector<Node>& nodes;
  int depth;
  bool operator()(int32_t child) const { return child >= 0 && depth + nodes[child].min_depth <= kMaxDepth; }
};

// Candidates for the next key: from the next property up to the first required one.
int64_t last_candidate(const Node& n, const Frame& f) {
  return std::min<int64_t>(n.next_required[f.x], int64_t(n.keys.size()) - 1);
}

Res start_key(const Node& n, Frame& f, uint8_t c, const Fits& fits) {
  if (c != '"') return Res::Reject;
  for (int64_t j = f.x, last = last_candidate(n, f); j <= last; ++j)
    if (fits(n.values[j])) {
      f.st = O_KEY, f.a = int32_t(j), f.b = 1;
      return Res::Consumed;
    }
  return Res::Reject;
}

Res step_object(const Node& n, Frame& f, uint8_t c, int32_t& child, const Fits& fits) {
  const int64_t nk = int64_t(n.keys.size());
  auto can_close = [&] { return n.next_required[f.x] == nk; };
  switch (f.st) {
    case O_OPEN:
      if (c != '{') return Res::Reject;
      f.st = O_FIRST;
      return Res::Consumed;
    case O_FIRST:
    case O_AFTER_VALUE:
      if (c == '}' && can_close()) {
        f.st = O_DONE;
        return Res::Consumed;
      }
      if (f.st == O_FIRST) return start_key(n, f, c, fits);
      if (c != ',') return Res::Reject;
      {
        Frame probe = f;  // a key must be able to follow
        if (start_key(n, probe, '"', fits) != Res::Consumed) return Res::Reject;
      }
      f.st = O_AFTER_COMMA;
      return Res::Consumed;
    case O_AFTER_COMMA:
      if (c == ' ') {
        f.st = O_AFTER_COMMA_SP;
        return Res::Consumed;
      }
      return start_key(n, f, c, fits);
    case O_AFTER_COMMA_SP:
      return start_key(n, f, c, fits);
    case O_KEY: {
      int64_t last = last_candidate(n, f);
      const std::string& cur = n.keys[f.a];
      size_t b = size_t(f.b);
      if (uint8_t(cur[b]) != c) {
        int64_t j = f.a + 1;
        for (; j <= last; ++j) {
          const std::string& k = n.keys[j];
          if (k.size() > b && uint8_t(k[b]) == c && k.compare(0, b, cur, 0, b) == 0 && fits(n.values[j])) break;
        }
        if (j > last) return Res::Reject;
        f.a = int32_t(j);
      }
      if (size_t(++f.b) == n.keys[f.a].size()) f.st = O_COLON, f.x = f.a + 1;
      return Res::Consumed;
    }
    case O_COLON:
      if (c != ':') return Res::Reject;
      f.st = O_AFTER_COLON;
      return Res::Consumed;
    case O_AFTER_COLON:
      if (c == ' ') {
        f.st = O_AFTER_COLON_SP;
        return Res::Consumed;
      }
      [[fallthrough]];
    case O_AFTER_COLON_SP:
      f.st = O_IN_VALUE;
      child = n.values[f.a];
      return Res::Push;
    default:
      return Res::Reject;
  }
}

Res step_map(const Node& n, Frame& f, uint8_t c, int32_t& child, const Fits& fits) {
  const bool member_fits = fits(kString) && fits(n.value);
  switch (f.st) {
    case M_OPEN:
      if (c != '{') return Res::Reject;
      f.st = M_FIRST;
      return Res::Consumed;
    case M_FIRST:
    case M_AFTER_VALUE:
      if (c == '}') {
        f.st = M_DONE;
        return Res::Consumed;
      }
      if (f.st == M_AFTER_VALUE) {
        if (c != ',' || !member_fits) return Res::Reject;
        f.st = M_AFTER_COMMA;
        return Res::Consumed;
      }
      [[fallthrough]];
    case M_AFTER_COMMA:
    case M_AFTER_COMMA_SP:
      if (c == ' ' && f.st == M_AFTER_COMMA) {
        f.st = M_AFTER_COMMA_SP;
        return Res::Consumed;
      }
      if (c != '"' || !member_fits) return Res::Reject;
      f.st = M_IN_KEY;
      child = kString;
      return Res::Push;
    case M_COLON:
      if (c != ':') return Res::Reject;
      f.st = M_AFTER_COLON;
      return Res::Consumed;
    case M_AFTER_COLON:
      if (c == ' ') {
        f.st = M_AFTER_COLON_SP;
        return Res::Consumed;
      }
      [[fallthrough]];
    case M_AFTER_COLON_SP:
      f.st = M_IN_VALUE;
      child = n.value;
      return Res::Push;
    default:
      return Res::Reject;
  }
}

Res step_array(const Node& n, Frame& f, uint8_t c, int32_t& child, const Fits& fits) {
  const bool item_fits = (n.max_items < 0 || f.a < n.max_items) && fits(item_schema(n, f.a));
  switch (f.st) {
    case A_OPEN:
      if (c != '[') return Res::Reject;
      f.st = A_FIRST;
      return Res::Consumed;
    case A_FIRST:
    case A_AFTER_VALUE:
      if (c == ']') {
        if (f.a < n.min_items) return Res::Reject;
        f.st = A_DONE;
        return Res::Consumed;
      }
      if (f.st == A_AFTER_VALUE) {
        if (c != ',' || !item_fits) return Res::Reject;
        f.st = A_AFTER_COMMA;
        return Res::Consumed;
      }
      if (!item_fits) return Res::Reject;
      f.st = A_IN_VALUE;
      child = item_schema(n, f.a);
      return Res::Push;
    case A_AFTER_COMMA:
      if (c == ' ') {
        f.st = A_AFTER_COMMA_SP;
        return Res::Consumed;
      }
      [[fallthrough]];
    case A_AFTER_COMMA_SP:
      f.st = A_IN_VALUE;
      child = item_schema(n, f.a);
      return Res::Push;
    default:
      return Res::Reject;
  }
}

// ---- the stack machine ----

bool frame_finished(const Node& n, const Frame& f) {
  switch (n.kind) {
    case Kind::Object:
      return f.st == O_DONE;
    case Kind::Map:
      return f.st == M_DONE;
    case Kind::Array:
      return f.st == A_DONE;
    case Kind::String:
      return f.st == S_DONE;
    case Kind::Root:
      return f.st == 2;
    case Kind::Literal: {
      const std::string& cur = n.lits[f.a];
      if (size_t(f.b) != cur.size()) return false;
      return !(size_t(f.a) + 1 < n.lits.size() && n.lits[f.a + 1].compare(0, cur.size(), cur) == 0);
    }
    default:
      return false;
  }
}

// A value that may end here but could also go on (numbers, literal sets like 1 / 12).
bool frame_can_end(const Node& n, const Frame& f) {
  if (n.kind == Kind::Literal) return size_t(f.b) == n.lits[f.a].size();
  if (n.kind == Kind::Number) {
    if (f.st != N_ZERO && f.st != N_INT && f.st != N_FRAC && f.st != N_EXP) return false;
    return !n.bounded || in_range(n, number_value(f));
  }
  return frame_finished(n, f);
}

void child_done(const Node& n, Frame& f) {
  switch (n.kind) {
    case Kind::Object:
      f.st = O_AFTER_VALUE;
      break;
    case Kind::Map:
      f.st = f.st == M_IN_KEY ? M_COLON : M_AFTER_VALUE;
      break;
    case Kind::Array:
      f.st = A_AFTER_VALUE, f.a++;
      break;
    case Kind::Root:
      f.st = 2;
      break;
    default:
      break;
  }
}

// A set of stacks (the matcher's state), stored flat.
struct State {
  std::vector<Frame> frames;
  std::vector<uint32_t> ends;
  void clear() { frames.clear(), ends.clear(); }
  bool empty() const { return ends.empty(); }
  // Adds a stack unless an identical one is there.
  void add(const Stack& s) {
    uint32_t begin = 0;
    for (uint32_t e : ends) {
      if (e - begin == s.size() && (s.empty() || std::memcmp(&frames[begin], s.data(), s.size() * sizeof(Frame)) == 0))
        return;
      begin = e;
    }
    frames.insert(frames.end(), s.begin(), s.end());
    ends.push_back(uint32_t(frames.size()));
  }
};

struct Machine {
  const GrammarImpl& g;

  void settle(Stack& st) const {
    while (!st.empty() && frame_finished(g.nodes[st.back().node], st.back())) {
      st.pop_back();
      if (!st.empty()) child_done(g.nodes[st.back().node], st.back());
    }
  }

  void push(Stack& st, int32_t node, uint8_t c, State& out) const {
    const Node& n = g.nodes[node];
    if (n.kind == Kind::AnyOf) {
      for (size_t i = 0; i < n.flat.size(); ++i) {
        if (i + 1 == n.flat.size()) {
          push(st, n.flat[i], c, out);
        } else {
          Stack copy = st;
          push(copy, n.flat[i], c, out);
        }
      }
      return;
    }
    if (n.kind == Kind::Any) {
      if (c == '{')
        node = kAnyObject;
      else if (c == '[')
        node = kAnyArray;
      else if (c == '"')
        node = kString;
      else if (c == '-' || is_digit(c))
        node = kNumber;
      else if (c == 't' || c == 'f')
        node = kBool;
      else if (c == 'n')
        node = kNull;
      else
        return;
    }
    if (int(st.size()) + g.nodes[node].min_depth > kMaxDepth) return;
    Frame f{};
    f.node = node;
    st.push_back(f);
    feed(st, c, out);
  }

  // Feeds one byte to one stack, adding the resulting stacks (none, one, or several) to `out`.
  void feed(Stack& st, uint8_t c, State& out) const {
    while (!st.empty()) {
      Frame& f = st.back();
      const Node& n = g.nodes[f.node];
      int32_t child = -1;
      Res r = Res::Reject;
      const Fits fits{g.nodes, int(st.size())};
      switch (n.kind) {
        case Kind::Literal:
          r = step_literal(n, f, c);
          break;
        case Kind::Number:
          r = step_number(n, f, c);
          break;
        case Kind::String:
          r = step_string(n, f, c);
          break;
        case Kind::Object:
          r = step_object(n, f, c, child, fits);
          break;
        case Kind::Map:
          r = step_map(n, f, c, child, fits);
          break;
        case Kind::Array:
          r = step_array(n, f, c, child, fits);
          break;
        case Kind::Root:
          if (f.st == 0) f.st = 1, child = n.value, r = Res::Push;
          break;
        default:
          break;
      }
      if (r == Res::Consumed) {
        settle(st);
        out.add(st);
        return;
      }
      if (r == Res::Push) {
        push(st, child, c, out);
        return;
      }
      // Rejected: a value that may end here ends, and the byte goes to its container.
      if (st.size() == 1 || !frame_can_end(n, f)) return;
      st.pop_back();
      child_done(g.nodes[st.back().node], st.back());
    }
  }

  // out = in after byte c; false if no stack survives.
  bool step(const State& in, uint8_t c, State& out, Stack& scratch) const {
    out.clear();
    uint32_t begin = 0;
    for (uint32_t e : in.ends) {
      scratch.assign(in.frames.begin() + begin, in.frames.begin() + e);
      begin = e;
      if (!scratch.empty()) feed(scratch, c, out);
    }
    return !out.empty();
  }

  // Finished, or the root's value may end here (a number at the root).
  bool complete(const State& s) const {
    uint32_t begin = 0;
    for (uint32_t e : s.ends) {
      if (e == begin) return true;
      if (e - begin == 2) {
        const Frame& f = s.frames[begin + 1];
        if (frame_can_end(g.nodes[f.node], f)) return true;
      }
      begin = e;
    }
    return false;
  }
};

State initial_state(const GrammarImpl& g) {
  State s;
  Frame f{};
  f.node = g.start;
  s.add(Stack{f});
  return s;
}

bool step_state(const Machine& m, const State& in, uint8_t c, State& out, Stack& scratch) {
  return m.step(in, c, out, scratch);
}

State load_state(const GrammarMatcher& gm) { return State{gm.frames, gm.ends}; }

}  // namespace

// ---- Grammar / compile ------------------------------------------------------------------------------

std::shared_ptr<const Grammar> Grammar::any_json_object() {
  static const std::shared_ptr<const Grammar> g = [] {
    auto impl = std::make_shared<GrammarImpl>();
    init_fixed(impl->nodes);
    impl->root = kAnyObject;
    finish_grammar(*impl, "json_object");
    auto out = std::make_shared<Grammar>();
    out->impl = impl;
    return std::shared_ptr<const Grammar>(out);
  }();
  return g;
}

std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::ordered_json& schema, const std::string& where) {
  Compiler c{schema, where, {}, {}};
  init_fixed(c.nodes);
  auto impl = std::make_shared<GrammarImpl>();
  impl->root = c.compile(schema, "");
  impl->nodes = std::move(c.nodes);
  finish_grammar(*impl, where);
  auto out = std::make_shared<Grammar>();
  out->impl = impl;
  return out;
}

std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::json& schema, const std::string& where) {
  return compile_json_schema(nlohmann::ordered_json(schema), where);
}

std::shared_ptr<const Grammar> compile_json_schema_text(std::string_view schema_json, const std::string& where) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(schema_json);
  } catch (const std::exception& e) {
    fail(where, ": not valid JSON (", e.what(), ")");
  }
  return compile_json_schema(j, where);
}

std::shared_ptr<const Grammar> compile_response_format(const nlohmann::ordered_json& rf, const std::string& where) {
  if (rf.is_null()) return nullptr;
  if (!rf.is_object()) fail(where, ": must be an object");
  if (!rf.contains("type") || !rf["type"].is_string()) fail(where, ".type: missing (text, json_object or json_schema)");
  std::string type = rf["type"].get<std::string>();
  if (type == "text") return nullptr;
  if (type == "json_object") return Grammar::any_json_object();
  if (type != "json_schema")
    fail(where, ".type: unknown response format type '", type, "' (expected text, json_object or json_schema)");
  if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
    fail(where, ".json_schema: missing or not an object");
  const auto& js = rf["json_schema"];
  if (!js.contains("schema")) fail(where, ".json_schema.schema: missing");
  return compile_json_schema(js["schema"], where + ".json_schema.schema");
}

std::shared_ptr<const Grammar> compile_response_format(const nlohmann::json& rf, const std::string& where) {
  return compile_response_format(nlohmann::ordered_json(rf), where);
}

// ---- GrammarMatcher ------------------------------------------------------------------------------

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> g) : grammar(std::move(g)) {
  if (!grammar || !grammar->impl) fail("GrammarMatcher: no grammar");
  State s = initial_state(*grammar->impl);
  frames = std::move(s.frames);
  ends = std::move(s.ends);
}

bool GrammarMatcher::can_accept(std::string_view bytes) const {
  Machine m{*grammar->impl};
  State a = load_state(*this), b;
  Stack scratch;
  for (char c : bytes) {
    if (!step_state(m, a, uint8_t(c), b, scratch)) return false;
    std::swap(a, b);
  }
  return true;
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  Machine m{*grammar->impl};
  State a = load_state(*this), b;
  Stack scratch;
  for (char c : bytes) {
    if (!step_state(m, a, uint8_t(c), b, scratch)) return false;
    std::swap(a, b);
  }
  frames = std::move(a.frames);
  ends = std::move(a.ends);
  text_.append(bytes);
  return true;
}

bool GrammarMatcher::complete() const {
  Machine m{*grammar->impl};
  return m.complete(load_state(*this));
}

bool GrammarMatcher::finished() const {
  for (size_t k = 0; k < ends.size(); ++k)
    if (ends[k] == (k ? ends[k - 1] : 0)) return true;
  return false;
}

// ---- token tries ---------------------------------------------------------------------------------

namespace {

ByteTrie build_byte_trie(std::vector<std::pair<std::string, int32_t>> items) {
  std::sort(items.begin(), items.end());
  ByteTrie t;
  t.byte.push_back(0), t.depth.push_back(0), t.end.push_back(0), t.first_id.push_back(0);
  std::vector<uint32_t> path = {0};  // nodes from the root to the current one
  const std::string* prev = nullptr;
  auto close_to = [&](size_t depth) {  // pops nodes deeper than `depth`
    while (path.size() > depth + 1) {
      t.end[path.back()] = uint32_t(t.byte.size());
      path.pop_back();
    }
  };
  for (const auto& [bytes, id] : items) {
    size_t lcp = 0;
    if (prev)
      while (lcp < prev->size() && lcp < bytes.size() && (*prev)[lcp] == bytes[lcp]) ++lcp;
    close_to(lcp);
    for (size_t d = lcp; d < bytes.size(); ++d) {
      path.push_back(uint32_t(t.byte.size()));
      t.byte.push_back(uint8_t(bytes[d]));
      t.depth.push_back(uint16_t(d + 1));
      t.end.push_back(0);
      t.first_id.push_back(uint32_t(t.ids.size()));
    }
    t.ids.push_back(id);  // belongs to the last node (ids of a node are contiguous: sorted input)
    t.max_depth = std::max(t.max_depth, bytes.size());
    prev = &bytes;
  }
  close_to(0);
  t.end[0] = uint32_t(t.byte.size());
  t.first_id.push_back(uint32_t(t.ids.size()));
  // first_id[n] was recorded when node n was created, before its own ids were added: node n's
  // ids are those added after its creation and before the next node's creation.
  return t;
}

// Walks the trie from `start`, setting the bit of every id whose bytes the grammar accepts.
void walk_trie(const Machine& m, const ByteTrie& t, const State& start, std::vector<uint64_t>& bits,
               std::vector<State>& level, Stack& scratch) {
  if (level.size() < t.max_depth + 1) level.resize(t.max_depth + 1);
  level[0] = start;
  const uint32_t n_nodes = uint32_t(t.byte.size());
  for (uint32_t n = 1; n < n_nodes;) {
    uint16_t d = t.depth[n];
    if (!step_state(m, level[d - 1], t.byte[n], level[d], scratch)) {
      n = t.end[n];
      continue;
    }
    for (uint32_t i = t.first_id[n]; i < t.first_id[n + 1]; ++i) {
      int32_t id = t.ids[i];
      bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63);
    }
    ++n;
  }
}

// String fast path: does the state sit inside a string, between characters (one stack)?
bool in_string(const GrammarImpl& g, const State& s) {
  if (s.ends.size() != 1 || s.frames.empty()) return false;
  const Frame& f = s.frames.back();
  return g.nodes[f.node].kind == Kind::String && f.st == S_CHAR;
}

void set_bit(std::vector<uint64_t>& bits, int32_t id) { bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63); }
bool get_bit(const std::vector<uint64_t>& bits, int32_t id) { return (bits[size_t(id) >> 6] >> (id & 63)) & 1; }

// Mask inside a string: the precomputed tokens that stay inside (within maxLength), and those
// that close it, by walking only what follows their closing quote.
void string_mask(const Machine& m, const TokenTrie& trie, const State& start, std::vector<uint64_t>& bits,
                 std::vector<State>& level, Stack& scratch) {
  const Frame& f = start.frames.back();
  const Node& n = m.g.nodes[f.node];
  bits = trie.inside_string;
  if (n.max_len >= 0) {
    const int room = n.max_len - f.a;
    for (auto [chars, id] : trie.inside_by_chars) {
      if (chars <= room) break;
      bits[size_t(id) >> 6] &= ~(uint64_t(1) << (id & 63));
    }
  }
  if (!n.counted()) {
    walk_trie(m, trie.closing_string, start, bits, level, scratch);
    return;
  }
  // The length only matters up to the closing quote: walk as if it were fine, then check it.
  State s = start;
  s.frames.back().a = n.min_len;
  std::vector<uint64_t> closing(bits.size(), 0);
  walk_trie(m, trie.closing_string, s, closing, level, scratch);
  for (int32_t id : trie.closing_string.ids) {
    const int64_t len = int64_t(f.a) + trie.string_chars[id];
    if (get_bit(closing, id) && len >= n.min_len && (n.max_len < 0 || len <= n.max_len)) set_bit(bits, id);
  }
}

}  // namespace

std::shared_ptr<const TokenTrie> build_token_trie(std::vector<std::string> token_bytes, std::vector<uint8_t> excluded) {
  auto t = std::make_shared<TokenTrie>();
  t->vocab_size = int32_t(token_bytes.size());
  excluded.resize(token_bytes.size(), 0);
  std::vector<std::pair<std::string, int32_t>> all, closing;
  t->inside_string.assign((token_bytes.size() + 63) / 64, 0);
  t->string_chars.assign(token_bytes.size(), 0);
  Node counting;  // a string node that counts characters, without limits
  counting.kind = Kind::String;
  counting.min_len = 1 << 30;
  for (int32_t id = 0; id < t->vocab_size; ++id) {
    const std::string& b = token_bytes[id];
    if (b.empty()) excluded[id] = 1;
    if (excluded[id]) continue;
    all.emplace_back(b, id);
    Frame f{};
    f.st = S_CHAR;
    size_t i = 0;
    for (; i < b.size(); ++i) {
      if (f.st == S_CHAR && b[i] == '"') break;
      if (step_string(counting, f, uint8_t(b[i])) != Res::Consumed) break;
    }
    t->string_chars[id] = uint16_t(std::min(f.a, 65535));
    if (i == b.size()) {
      set_bit(t->inside_string, id);
      if (f.a > 0) t->inside_by_chars.emplace_back(t->string_chars[id], id);
    } else if (b[i] == '"' && f.st == S_CHAR) {
      closing.emplace_back(b.substr(i), id);
    }
  }
  std::sort(t->inside_by_chars.begin(), t->inside_by_chars.end(), std::greater<>());
  t->tokens = build_byte_trie(std::move(all));
  t->closing_string = build_byte_trie(std::move(closing));
  t->token_bytes = std::move(token_bytes);
  t->excluded = std::move(excluded);
  return t;
}

std::shared_ptr<const TokenTrie> build_token_trie(const Tokenizer& tok) {
  int32_t V = tok.vocab_size();
  std::vector<std::string> bytes(V);
  std::vector<uint8_t> excluded(V, 0);
  for (int32_t id = 0; id < V; ++id) {
    excluded[id] = tok.is_special(id);
    if (!excluded[id]) bytes[id] = tok.token_bytes(id);
  }
  return build_token_trie(std::move(bytes), std::move(excluded));
}

namespace {

std::string state_key(const State& s) {
  std::string key(reinterpret_cast<const char*>(s.frames.data()), s.frames.size() * sizeof(GrammarFrame));
  key.append(reinterpret_cast<const char*>(s.ends.data()), s.ends.size() * sizeof(uint32_t));
  return key;
}

const std::vector<uint64_t>& state_mask(const Machine& m, const TokenTrie& trie, const State& s,
                                        GrammarMatcher::MaskCache& cache) {
  std::string key = state_key(s);
  if (auto it = cache.masks.find(key); it != cache.masks.end()) {
    cache.hits++;
    return it->second;
  }
  cache.misses++;
  std::vector<uint64_t> bits((size_t(trie.vocab_size) + 63) / 64, 0);
  if (s.ends.size() > 1) {
    // Several alternatives alive: a token is allowed if one of them takes it. Each stack alone
    // may use the string fast path (and is cached on its own).
    uint32_t begin = 0;
    for (uint32_t e : s.ends) {
      State one;
      one.frames.assign(s.frames.begin() + begin, s.frames.begin() + e);
      one.ends = {e - begin};
      begin = e;
      const auto& sub = state_mask(m, trie, one, cache);
      for (size_t w = 0; w < bits.size(); ++w) bits[w] |= sub[w];
    }
  } else {
    std::vector<State> level;
    Stack scratch;
    if (in_string(m.g, s))
      string_mask(m, trie, s, bits, level, scratch);
    else
      walk_trie(m, trie.tokens, s, bits, level, scratch);
  }
  if (cache.masks.size() * bits.size() * sizeof(uint64_t) >= (size_t(4) << 20)) cache.masks.clear();
  return cache.masks.emplace(std::move(key), std::move(bits)).first->second;
}

}  // namespace

const std::vector<uint64_t>& grammar_token_bitset(const GrammarMatcher& gm, const TokenTrie& trie) {
  if (!gm.cache) gm.cache = std::make_shared<GrammarMatcher::MaskCache>();
  auto& cache = *gm.cache;
  if (cache.trie != &trie) cache.masks.clear(), cache.trie = &trie;
  Machine m{*gm.grammar->impl};
  return state_mask(m, trie, load_state(gm), cache);
}

void apply_grammar_mask(const GrammarMatcher& gm, const TokenTrie& trie, const std::vector<int32_t>& end_ids,
                        float* logits, int V) {
  const auto& bits = grammar_token_bitset(gm, trie);
  const bool complete = gm.complete();
  std::vector<std::pair<int32_t, float>> keep;
  if (complete)
    for (int32_t id : end_ids)
      if (id >= 0 && id < V) keep.emplace_back(id, logits[id]);
  const float ninf = -std::numeric_limits<float>::infinity();
  const int limit = std::min(V, trie.vocab_size);
  for (int base = 0; base < limit; base += 64) {
    const int top = std::min(64, limit - base);
    uint64_t rejected = ~bits[size_t(base) >> 6];
    if (top < 64) rejected &= (uint64_t(1) << top) - 1;
    if (rejected == 0) continue;
    float* p = logits + base;
    if (rejected == ~uint64_t(0)) {
      std::fill(p, p + 64, ninf);
      continue;
    }
    for (; rejected; rejected &= rejected - 1) p[__builtin_ctzll(rejected)] = ninf;
  }
  for (int id = limit; id < V; ++id) logits[id] = ninf;
  for (auto [id, v] : keep) logits[id] = v;
}

bool accept_token(GrammarMatcher& gm, const TokenTrie& trie, int32_t id) {
  if (id < 0 || id >= trie.vocab_size) return false;
  if (trie.excluded[id]) return gm.complete();
  return gm.accept_bytes(trie.token_bytes[id]);
}

std::function<void(float*, int)> grammar_constraint(std::shared_ptr<GrammarMatcher> matcher,
                                                    std::shared_ptr<const TokenTrie> trie,
                                                    std::vector<int32_t> end_ids) {
  return [matcher = std::move(matcher), trie = std::move(trie), end_ids = std::move(end_ids)](float* logits, int V) {
    apply_grammar_mask(*matcher, *trie, end_ids, logits, V);
  };
}

}  // namespace todae
