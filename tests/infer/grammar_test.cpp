// Constrained decoding: schemas accept exactly the byte streams they should, token masks agree
// with the byte matcher, and random "models" under the mask always write valid documents.
#include "infer/grammar.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>

#include "base/base.h"
#include "text/test_util.h"

namespace todae {
namespace {

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

// ---- a small validator for the subset the grammar supports --------------------------------------

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

struct Validator {
  const ojson& root;

  bool type_ok(const json& v, const std::string& t) const {
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

  bool valid(const ojson& s, const json& v) const {
    if (s.is_boolean()) return s.get<bool>();
    if (s.contains("nullable") && s["nullable"] == true && v.is_null()) return true;
    if (s.contains("$ref")) return valid(root.at(ojson::json_pointer(s["$ref"].get<std::string>().substr(1))), v);
    if (s.contains("allOf"))
      for (const auto& a : s["allOf"])
        if (!valid(a, v)) return false;
    if (s.contains("anyOf")) {
      bool any = false;
      for (const auto& a : s["anyOf"]) any = any || valid(a, v);
      if (!any) return false;
    }
    if (s.contains("oneOf")) {
      int n = 0;
      for (const auto& a : s["oneOf"]) n += valid(a, v);
      if (n != 1) return false;
    }
    if (s.contains("const") && json(s["const"]) != v) return false;
    if (s.contains("enum")) {
      bool in = false;
      for (const auto& e : s["enum"]) in = in || json(e) == v;
      if (!in) return false;
    }
    if (s.contains("type")) {
      bool ok = false;
      if (s["type"].is_string())
        ok = type_ok(v, s["type"]);
      else
        for (const auto& t : s["type"]) ok = ok || type_ok(v, t);
      if (!ok) return false;
    }
    if (v.is_object()) {
      const ojson empty = ojson::object();
      const ojson& props = s.contains("properties") ? s["properties"] : empty;
      if (s.contains("required"))
        for (const auto& r : s["required"])
          if (!v.contains(r.get<std::string>())) return false;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (props.contains(it.key())) {
          if (!valid(props[it.key()], it.value())) return false;
        } else if (s.contains("additionalProperties")) {
          if (!valid(s["additionalProperties"], it.value())) return false;
        }
      }
    }
    if (v.is_array()) {
      size_t n_prefix = s.contains("prefixItems") ? s["prefixItems"].size() : 0;
      for (size_t i = 0; i < v.size(); ++i) {
        if (i < n_prefix) {
          if (!valid(s["prefixItems"][i], v[i])) return false;
        } else if (s.contains("items") && !valid(s["items"], v[i])) {
          return false;
        }
      }
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    }
    if (v.is_string()) {
      size_t n = code_points(v.get<std::string>());
      if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return false;
      if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return false;
    }
    if (v.is_number()) {
      double x = v.get<double>();
      if (s.contains("minimum") && x < s["minimum"].get<double>()) return false;
      if (s.contains("maximum") && x > s["maximum"].get<double>()) return false;
      if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) return false;
      if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) return false;
    }
    return true;
  }
};

bool validates(const std::string& schema_text, const json& v) {
  ojson s = ojson::parse(schema_text);
  return Validator{s}.valid(s, v);
}

// ---- byte-level matching ---------------------------------------------------------------------------

std::shared_ptr<const Grammar> compile_schema(const std::string& schema) {
  return compile_json_schema_text(schema, "schema");
}

// Feeds `text` one byte at a time: the index of the first rejected byte, or -1 if all are taken.
long first_reject(const std::shared_ptr<const Grammar>& g, const std::string& text, bool* complete = nullptr) {
  GrammarMatcher m(g);
  for (size_t i = 0; i < text.size(); ++i) {
    if (!m.accept_bytes(text.substr(i, 1))) return long(i);
  }
  if (complete) *complete = m.complete();
  return -1;
}

// Every prefix is accepted, the whole is complete, no proper prefix of an object/array is.
void expect_valid(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  for (size_t i = 0; i < text.size(); ++i) {
    ASSERT_TRUE(m.accept_bytes(text.substr(i, 1))) << "byte " << i << " of " << text;
    if (i + 1 < text.size() && (text[0] == '{' || text[0] == '[')) {
      EXPECT_FALSE(m.complete()) << text.substr(0, i + 1);
    }
  }
  EXPECT_TRUE(m.complete()) << text;
  // All at once gives the same.
  GrammarMatcher m2(g);
  EXPECT_TRUE(m2.accept_bytes(text));
  EXPECT_TRUE(m2.complete());
}

const char* kPerson = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": ["string", "null"]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 5},
    "korean": {"type": "string", "minLength": 2}
  },
  "required": ["name", "age"],
  "additionalProperties": false
})";

TEST(Grammar, PersonAcceptsValidDocuments) {
  auto g = compile_schema(kPerson);
  expect_valid(g, R"({"name":"Kim","age":42})");
  expect_valid(g, R"({"name": "Kim", "age": 0, "email": null})");
  expect_valid(
      g,
      R"({"name":"김철수 \"Kim\" \\ \n \t \/ \u00e9","age":150,"email":"kim@example.com","tags":["a","bb",""],"korean":"한국어 텍스트"})");
  expect_valid(g, R"({"name":"","age":7,"tags":[],"korean":"가나"})");
  expect_valid(g, R"({"name":"x","age":1,"tags":["0123456789"]})");
  expect_valid(g, "{\"name\":\"\xF0\x9F\x98\x80 emoji\",\"age\":3}");
}

TEST(Grammar, PersonRejectsAtTheRightByte) {
  auto g = compile_schema(kPerson);
  EXPECT_EQ(first_reject(g, R"({"age":1})"), 2);                                     // "name" is required and first
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":-1})"), 19);                        // "-0" would do, "-1" is below 0
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":200})"), 20);                       // 20 fits, 200 does not
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":01})"), 19);                        // no leading zeros
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1.5})"), 19);                       // integer
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1,"extra":1})"), 22);               // additionalProperties false
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1,"tags":["01234567890"]})"), 39);  // maxLength 10
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1,"korean":"가"})"), 33);           // minLength 2
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1,"tags":["a","b","c","d","e","f"]})"), 47);  // maxItems 5
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1,"name":"y"})"), 21);                        // no repeats, order kept
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1})"
                            " "),
            20);  // nothing after the value
  // Whitespace: one space after ':' and ',' only.
  EXPECT_EQ(first_reject(g, R"({ "name":"x"})"), 1);
  EXPECT_EQ(first_reject(g, R"({"name" :"x"})"), 7);
  EXPECT_EQ(first_reject(g, R"({"name":  "x"})"), 9);
  EXPECT_EQ(first_reject(g, R"({"name":"x" ,"age":1})"), 11);
  // Strings: control characters, bad escapes, invalid UTF-8, surrogate escapes.
  EXPECT_EQ(first_reject(g, "{\"name\":\"a\nb\"}"), 10);
  EXPECT_EQ(first_reject(g, R"({"name":"\x"})"), 10);
  EXPECT_EQ(first_reject(g, R"({"name":"\u12G4"})"), 13);
  EXPECT_EQ(first_reject(g, R"({"name":"\ud83d\ude00"})"), 12);
  EXPECT_EQ(first_reject(g, "{\"name\":\"\xC3\x28\"}"), 10);          // missing continuation byte
  EXPECT_EQ(first_reject(g, "{\"name\":\"\xC0\x80\"}"), 9);           // overlong
  EXPECT_EQ(first_reject(g, "{\"name\":\"\xED\xA0\x80\"}"), 10);      // UTF-16 surrogate
  EXPECT_EQ(first_reject(g, "{\"name\":\"\xF4\x90\x80\x80\"}"), 10);  // past U+10FFFF
  EXPECT_EQ(first_reject(g, "{\"name\":\"\x80\"}"), 9);               // stray continuation byte
  bool complete = true;
  EXPECT_EQ(first_reject(g, R"({"name":"x","age":1)", &complete), -1);
  EXPECT_FALSE(complete);
}

TEST(Grammar, PropertyOrderFollowsTheSchema) {
  // ordered_json (and the text overload) keep the document's order; nlohmann::json sorts keys.
  auto ordered = compile_json_schema(ojson::parse(kPerson), "s");
  EXPECT_EQ(first_reject(ordered, R"({"name":"x","age":1})"), -1);
  EXPECT_EQ(first_reject(ordered, R"({"age":1,"name":"x"})"), 2);
  auto sorted = compile_json_schema(json::parse(kPerson), "s");
  EXPECT_EQ(first_reject(sorted, R"({"age":1,"name":"x"})"), -1);
  EXPECT_EQ(first_reject(sorted, R"({"name":"x","age":1})"), 2);
  // Optional properties may be skipped, but not moved back.
  auto g = compile_schema(
      R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"required":["c"]})");
  expect_valid(g, R"({"c":1})");
  expect_valid(g, R"({"a":1,"c":2})");
  expect_valid(g, R"({"b":1,"c":2})");
  EXPECT_EQ(first_reject(g, R"({"b":1,"a":2})"), 8);
  EXPECT_EQ(first_reject(g, R"({"a":1})"), 6);  // c is required
}

TEST(Grammar, KeysSharingPrefixes) {
  auto g = compile_schema(
      R"({"type":"object","properties":{"a":{"type":"integer"},"ab":{"type":"string"},"abc":{"type":"boolean"}},"additionalProperties":false})");
  expect_valid(g, R"({"a":1,"ab":"x","abc":true})");
  expect_valid(g, R"({"ab":"x"})");
  expect_valid(g, R"({"abc":false})");
  expect_valid(g, R"({"a":1,"abc":false})");
  expect_valid(g, "{}");
  EXPECT_EQ(first_reject(g, R"({"ab":1})"), 6);
  EXPECT_EQ(first_reject(g, R"({"abcd":true})"), 5);
}

TEST(Grammar, EnumConstAndLiterals) {
  auto g = compile_schema(R"({"type":"object","properties":{
      "kind":{"enum":["a","ab","한국",1,12,1.5,true,null,{"x":1}]},
      "fixed":{"const":{"x":[1,2]}},
      "flag":{"type":"boolean"}},
    "required":["kind","fixed","flag"]})");
  for (const char* kind : {R"("a")", R"("ab")", R"("한국")", "1", "12", "1.5", "true", "null", R"({"x":1})"})
    expect_valid(g, cat(R"({"kind":)", kind, R"(,"fixed":{"x":[1,2]},"flag":false})"));
  EXPECT_EQ(first_reject(g, R"({"kind":"abc")"), 11);
  EXPECT_EQ(first_reject(g, R"({"kind":13)"), 9);
  EXPECT_EQ(first_reject(g, R"({"kind":1.6)"), 10);
  EXPECT_EQ(first_reject(g, R"({"kind":1,"fixed":{"x":[1, 2]})"), 26);
  EXPECT_EQ(first_reject(g, R"({"kind":1,"fixed":{"x":[1,2]},"flag":tru})"), 40);
  // enum filtered by type; const at the root.
  auto t = compile_schema(R"({"type":"string","enum":["x",1,"y"]})");
  expect_valid(t, R"("x")");
  EXPECT_EQ(first_reject(t, "1"), 0);
  auto c = compile_schema(R"({"const":"안녕"})");
  expect_valid(c, R"("안녕")");
}

TEST(Grammar, AnyOfAndNullable) {
  auto g = compile_schema(R"({"anyOf":[
      {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a","b"],"additionalProperties":false},
      {"type":"object","properties":{"a":{"type":"integer"},"c":{"type":"boolean"}},"required":["a","c"],"additionalProperties":false},
      {"type":"number","minimum":-1.5,"exclusiveMaximum":2.25},
      {"type":"string","nullable":true}]})");
  expect_valid(g, R"({"a":1,"b":"x"})");
  expect_valid(g, R"({"a":1,"c":true})");
  expect_valid(g, R"("s")");
  expect_valid(g, "null");
  EXPECT_EQ(first_reject(g, R"({"a":1,"d":1})"), 8);
  EXPECT_EQ(first_reject(g, R"({"a":1,"b":true})"), 11);
  // Root numbers: complete after every digit, bounds checked as the digits come.
  bool complete = false;
  EXPECT_EQ(first_reject(g, "-1.5", &complete), -1);
  EXPECT_TRUE(complete);
  EXPECT_EQ(first_reject(g, "-1.51"), 4);
  EXPECT_EQ(first_reject(g, "-2"), 1);
  EXPECT_EQ(first_reject(g, "2.25"), 3);
  EXPECT_EQ(first_reject(g, "2.249999", &complete), -1);
  EXPECT_TRUE(complete);
  EXPECT_EQ(first_reject(g, "1e5"), 1);  // no exponent under bounds
  EXPECT_EQ(first_reject(g, "-", &complete), -1);
  EXPECT_FALSE(complete);
  EXPECT_EQ(first_reject(g, "2.", &complete), -1);
  EXPECT_FALSE(complete);
}

TEST(Grammar, Numbers) {
  auto n = compile_schema(R"({"type":"number"})");
  for (const char* ok : {"0", "-0", "12.5", "1e5", "1E+10", "-3.25e-7", "123456789012345"}) expect_valid(n, ok);
  EXPECT_EQ(first_reject(n, "1e123"), 4);
  EXPECT_EQ(first_reject(n, "1234567890123456"), 15);
  EXPECT_EQ(first_reject(n, ".5"), 0);
  EXPECT_EQ(first_reject(n, "1.e5"), 2);
  EXPECT_EQ(first_reject(n, "+1"), 0);
  auto i = compile_schema(R"({"type":"integer","exclusiveMinimum":10,"maximum":20})");
  for (const char* ok : {"11", "15", "20"}) expect_valid(i, ok);
  EXPECT_EQ(first_reject(i, "-"), 0);
  EXPECT_EQ(first_reject(i, "21"), 1);
  bool complete = true;
  EXPECT_EQ(first_reject(i, "1", &complete), -1);  // 1 itself is too small; 10..19 are reachable
  EXPECT_FALSE(complete);
  EXPECT_EQ(first_reject(i, "3"), 0);  // 3, 30.., 300.. never land in (10, 20]
  // The last fraction digit must land inside the range.
  auto x = compile_schema(R"({"type":"number","exclusiveMinimum":0.5,"maximum":1})");
  EXPECT_EQ(first_reject(x, "0.500000000000000"), 16);
  expect_valid(x, "0.500000000000001");
  expect_valid(x, "1.000");
  EXPECT_EQ(first_reject(x, "1.0001"), 5);
  EXPECT_EQ(first_reject(x, "0.5"), -1);
  // Ranges no writable number reaches are refused.
  EXPECT_THROW(compile_schema(R"({"type":"integer","minimum":1e16})"), Error);
  EXPECT_THROW(compile_schema(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1e-20})"), Error);
  expect_valid(compile_schema(R"({"type":"number","minimum":0.25,"maximum":0.25})"), "0.25");
}

TEST(Grammar, ArraysAndTuples) {
  auto g = compile_schema(R"({"type":"array","prefixItems":[{"type":"string","minLength":2,"maxLength":3},
      {"type":"integer","exclusiveMinimum":10,"maximum":20}],"items":{"type":"boolean"},"minItems":2,"maxItems":4})");
  expect_valid(g, R"(["ab",11])");
  expect_valid(g, R"(["한국어", 20, true, false])");
  EXPECT_EQ(first_reject(g, R"(["ab"])"), 5);
  EXPECT_EQ(first_reject(g, R"([])"), 1);
  EXPECT_EQ(first_reject(g, R"(["ab",11,true,false,true])"), 19);
  EXPECT_EQ(first_reject(g, R"(["ab",11,1])"), 9);
  EXPECT_EQ(first_reject(g, R"(["a"])"), 3);
  // Draft-07 tuples and items:false.
  auto t = compile_schema(R"({"type":"array","items":[{"type":"null"},{"type":"boolean"}],"additionalItems":false})");
  expect_valid(t, "[null,true]");
  expect_valid(t, "[]");
  EXPECT_EQ(first_reject(t, "[null,true,"), 10);
  auto nested = compile_schema(R"({"type":"array","items":{"type":"array","items":{"type":"integer"}}})");
  expect_valid(nested, "[[1,2], [], [3]]");
}

TEST(Grammar, RecursiveRefs) {
  const char* tree = R"({"$defs":{"node":{"type":"object","properties":{
      "label":{"type":"string","maxLength":8},
      "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":3}},
    "required":["label","children"],"additionalProperties":false}},
    "$ref":"#/$defs/node"})";
  auto g = compile_schema(tree);
  expect_valid(
      g,
      R"({"label":"root","children":[{"label":"a","children":[]},{"label":"b","children":[{"label":"c","children":[]}]}]})");
  EXPECT_EQ(first_reject(g, R"({"label":"root","children":[{"label":"a"}]})"), 40);
  // Recursion through "#" and through definitions; a cycle of aliases adds nothing.
  auto list = compile_schema(
      R"({"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},"required":["v","next"]})");
  expect_valid(list, R"({"v":1,"next":{"v":2,"next":null}})");
  auto cyc = compile_schema(R"({"definitions":{"a":{"anyOf":[{"$ref":"#/definitions/b"},{"type":"string"}]},
      "b":{"anyOf":[{"$ref":"#/definitions/a"},{"type":"integer"}]}},"$ref":"#/definitions/a"})");
  expect_valid(cyc, R"("x")");
  expect_valid(cyc, "7");
  EXPECT_EQ(first_reject(cyc, "true"), 0);
  // Deep nesting stops at the depth limit: 32 nested values, and no dead end on the way (a
  // node needs its "children" array, so past depth 31 no node may open).
  auto any_arr = compile_schema(R"({"type":"array"})");
  EXPECT_EQ(first_reject(any_arr, std::string(40, '[')), 32);
  EXPECT_EQ(first_reject(any_arr, std::string(32, '[') + "1"), 32);
  std::string deep, closing;
  for (int i = 0; i < 16; ++i) deep += R"({"label":"","children":[)", closing += "]}";
  EXPECT_EQ(first_reject(g, deep + "{"), long(deep.size()));
  expect_valid(g, deep + closing);
}

TEST(Grammar, JsonObjectAndMaps) {
  auto g = Grammar::any_json_object();
  expect_valid(g, R"({"a":[1,2.5,-3e2,{"b":null}],"c":"한국어","d":true,"e":{}})");
  expect_valid(g, "{}");
  EXPECT_EQ(first_reject(g, "[1]"), 0);
  EXPECT_EQ(first_reject(g, "\"x\""), 0);
  auto m = compile_schema(R"({"type":"object","additionalProperties":{"type":"integer"}})");
  expect_valid(m, R"({"x":1, "y":2})");
  EXPECT_EQ(first_reject(m, R"({"x":"1"})"), 5);
  auto rf = compile_response_format(json::parse(R"({"type":"json_object"})"));
  EXPECT_EQ(rf, Grammar::any_json_object());
  EXPECT_EQ(compile_response_format(json::parse(R"({"type":"text"})")), nullptr);
  auto js = compile_response_format(json::parse(R"({"type":"json_schema","json_schema":{"name":"x","strict":true,
      "schema":{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"],"additionalProperties":false}}})"));
  expect_valid(js, R"({"ok":true})");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Grammar, UnsupportedKeywordsNameThePointer) {
  const std::string where = "response_format.json_schema.schema";
  auto err = [&](const char* schema) { return error_of([&] { compile_json_schema(ojson::parse(schema), where); }); };
  EXPECT_EQ(err(R"({"type":"object","properties":{"x":{"not":{"type":"string"}}}})"),
            "response_format.json_schema.schema/properties/x: keyword 'not' is not supported");
  EXPECT_EQ(err(R"({"type":"string","pattern":"^a+$"})"), where + ": keyword 'pattern' is not supported");
  EXPECT_EQ(err(R"({"type":"object","properties":{"a/b":{"type":"array","items":{"uniqueItems":true}}}})"),
            where + "/properties/a~1b/items: keyword 'uniqueItems' is not supported");
  EXPECT_EQ(err(R"({"$ref":"http://example.com/s.json"})"),
            where +
                "/$ref: only references inside the schema ('#', '#/$defs/...') are supported, not "
                "'http://example.com/s.json'");
  EXPECT_EQ(err(R"({"$ref":"#/$defs/missing"})"),
            where + "/$ref: '#/$defs/missing' does not name a schema in the document");
  EXPECT_EQ(err(R"({"type":"strin"})"), where + "/type: unknown type 'strin'");
  EXPECT_EQ(err(R"({"type":"integer","minimum":1.2,"maximum":1.8})"),
            where + ": the schema accepts no value that can be generated");
  EXPECT_EQ(err(R"({"type":"object","required":["a"],"additionalProperties":false})"),
            where + "/required/0: required property \"a\" is not in 'properties' and additionalProperties is false");
  EXPECT_EQ(err(R"({"type":"object","anyOf":[{"required":["a"]}]})"),
            where + ": keyword 'type' next to 'anyOf' is not supported");
  EXPECT_EQ(err(R"({"allOf":[{"type":"string"},{"maxLength":3}]})"),
            where + "/allOf: keyword 'allOf' is supported with exactly one schema only");
  EXPECT_EQ(error_of([] { compile_response_format(json::parse(R"({"type":"xml"})")); }),
            "response_format.type: unknown response format type 'xml' (expected text, json_object or json_schema)");
  // Annotations and format are fine; an unsatisfiable optional property is just never written.
  auto g = compile_schema(R"({"title":"T","description":"d","type":"object","properties":{
      "when":{"type":"string","format":"date-time","examples":["x"]},"never":false}})");
  expect_valid(g, R"({"when":"2024"})");
  EXPECT_EQ(first_reject(g, R"({"n)"), 2);
}

// ---- token masks ----------------------------------------------------------------------------------

// A byte-level vocabulary: every single byte, JSON punctuation runs, words, Korean (whole and split
// syllables), escapes, and two special tokens.
std::vector<std::string> test_vocab() {
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.push_back(std::string(1, char(b)));
  const char* pieces[] = {
      "{\"",
      "\":",
      "\": ",
      "\",",
      "\", \"",
      "\",\"",
      "\"}",
      "\"]",
      "\"}]",
      "\"},",
      "}]",
      "]}",
      "},",
      "}, {",
      "[\"",
      "[{",
      "[]",
      "{}",
      "[[",
      "]]",
      "true",
      "false",
      "null",
      "nu",
      "ll",
      "tr",
      "ue",
      "fa",
      ", ",
      ": ",
      ":\"",
      ":{",
      ":[",
      ":1",
      "00",
      "12",
      "123",
      "999",
      "-1",
      ".5",
      ".25",
      "e+",
      "E-",
      "1.",
      "0.",
      "\\n",
      "\\\"",
      "\\\\",
      "\\u00e9",
      "\\u",
      "\\ud83d",
      "\\ude00",
      "\\t",
      "name",
      "age",
      "email",
      "tags",
      "korean",
      "label",
      "children",
      "kind",
      "value",
      "fixed",
      "flag",
      "\"name\":",
      "\"age\":",
      "\"label\":\"",
      "\"children\":[",
      "\"kind\":",
      "\"a\"",
      "\"ab\"",
      "abc",
      "한",
      "국",
      "어",
      "한국어",
      " 텍스트",
      "안녕",
      "\xed\x95",
      "\x9c",
      "\xea\xb5",
      "\xad",
      "hello",
      " world",
      "  ",
      "\n",
      "\t",
      " \"",
      "\"\"",
      "\",\"b\":",
      "{\"a\":",
      "\"x\"",
      "\"\n",
      "a\"b",
      "😀",
      "\xf0\x9f",
      "\x98\x80",
      "@example.com",
      "<|x|>",
  };
  for (const char* p : pieces) v.push_back(p);
  v.push_back("<eos>");
  v.push_back("<pad>");
  return v;
}

std::shared_ptr<const TokenTrie> test_trie() {
  auto v = test_vocab();
  std::vector<uint8_t> special(v.size(), 0);
  special[v.size() - 1] = special[v.size() - 2] = 1;
  return build_token_trie(v, special);
}

// The mask, from scratch: which tokens can the matcher take?
std::vector<uint8_t> brute_force(const GrammarMatcher& m, const TokenTrie& t) {
  std::vector<uint8_t> ok(t.vocab_size, 0);
  for (int32_t id = 0; id < t.vocab_size; ++id) ok[id] = !t.excluded[id] && m.can_accept(t.token_bytes[id]);
  return ok;
}

struct GenResult {
  std::string text;
  int tokens = 0;
  bool ended = false;  // chose the end token
};

// A random "model": uniform among the allowed tokens (end included when allowed).
GenResult generate_doc(const std::shared_ptr<const Grammar>& g, const TokenTrie& t, std::mt19937_64& rng,
                       int max_tokens, bool check_masks, int32_t eos = -1) {
  if (eos < 0) eos = t.vocab_size - 2;  // test_vocab's <eos>
  GrammarMatcher m(g);
  GenResult r;
  std::vector<float> logits(t.vocab_size + 3);  // the model's vocabulary may be padded
  for (; r.tokens < max_tokens; ++r.tokens) {
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& x : logits) x = u(rng);
    apply_grammar_mask(m, t, {eos}, logits.data(), int(logits.size()));
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < int32_t(logits.size()); ++id)
      if (!std::isinf(logits[id])) allowed.push_back(id);
    if (check_masks) {
      auto expect = brute_force(m, t);
      for (int32_t id = 0; id < t.vocab_size; ++id) {
        bool masked_ok = !std::isinf(logits[id]);
        bool want = expect[id] || (id == eos && m.complete());
        EXPECT_EQ(masked_ok, want) << "token " << id << " '" << t.token_bytes[id] << "' after '" << m.text() << "'";
      }
    }
    if (allowed.empty()) {
      ADD_FAILURE() << "dead end after '" << m.text() << "'";
      return r;
    }
    int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
    if (id == eos) {
      EXPECT_TRUE(accept_token(m, t, id));
      r.ended = true;
      break;
    }
    EXPECT_TRUE(accept_token(m, t, id)) << t.token_bytes[id];
    if (m.finished()) {  // only the end token is left
      ++r.tokens;
      r.ended = true;
      break;
    }
  }
  r.text = m.text();
  return r;
}

TEST(GrammarMask, TrieMatchesBruteForce) {
  auto t = test_trie();
  std::mt19937_64 rng(7);
  for (const char* s :
       {kPerson,
        R"({"type":"array","items":{"anyOf":[{"type":"integer","minimum":-5,"maximum":500},{"enum":["a","ab",1.5]}]}})",
        R"({"type":"object","additionalProperties":{"type":"string","maxLength":4}})",
        R"({"type":"array","items":{"anyOf":[{"type":"string","maxLength":5},{"type":"string","minLength":3},
                            {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a","b"]},
                            {"type":"object","properties":{"a":{"type":"integer"},"c":{"type":"boolean"}},"required":["a","c"]}]}})"}) {
    auto g = compile_schema(s);
    for (int doc = 0; doc < 5; ++doc) generate_doc(g, *t, rng, 400, true);
  }
  for (int doc = 0; doc < 5; ++doc) generate_doc(Grammar::any_json_object(), *t, rng, 400, true);
}

TEST(GrammarMask, SpecialTokensAndEnd) {
  auto t = test_trie();
  const int32_t eos = t->vocab_size - 2, pad = t->vocab_size - 1;
  GrammarMatcher m(compile_schema(R"({"type":"integer"})"));
  std::vector<float> logits(t->vocab_size, 0.f);
  apply_grammar_mask(m, *t, {eos}, logits.data(), int(logits.size()));
  EXPECT_TRUE(std::isinf(logits[eos]));
  EXPECT_TRUE(std::isinf(logits[pad]));
  EXPECT_FALSE(std::isinf(logits['7']));
  EXPECT_FALSE(accept_token(m, *t, eos));
  EXPECT_TRUE(accept_token(m, *t, '7'));
  std::fill(logits.begin(), logits.end(), 0.f);
  apply_grammar_mask(m, *t, {eos}, logits.data(), int(logits.size()));
  EXPECT_FALSE(std::isinf(logits[eos]));  // "7" is a whole value
  EXPECT_FALSE(std::isinf(logits['0']));  // so is "70"
  EXPECT_TRUE(std::isinf(logits[pad]));
  EXPECT_FALSE(accept_token(
      m, *t, int32_t(std::find(t->token_bytes.begin(), t->token_bytes.end(), "true") - t->token_bytes.begin())));
  EXPECT_TRUE(accept_token(m, *t, eos));
}

struct SchemaCase {
  const char* name;
  const char* schema;  // nullptr: json_object
};

TEST(GrammarMask, RandomModelAlwaysWritesValidDocuments) {
  const SchemaCase cases[] = {
      {"person", kPerson},
      {"json_object", nullptr},
      {"enum_anyof", R"({"type":"object","properties":{
          "kind":{"enum":["a","ab","abc",1,12,true,null]},
          "fixed":{"const":{"x":[1,2]}},
          "value":{"anyOf":[{"type":"number","minimum":-1.5,"exclusiveMaximum":2.25},{"type":"boolean"},
                            {"type":"object","properties":{"v":{"type":"integer"}},"required":["v"]}]}},
          "required":["kind","fixed","value"]})"},
      // (maxItems 2: a uniform random walk then has fewer than one child per node on average, so
      // the trees stay finite; with 3 it is close to a critical branching process)
      {"tree", R"({"$defs":{"node":{"type":"object","properties":{
          "label":{"type":"string","maxLength":8},
          "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},
          "required":["label","children"],"additionalProperties":false}},"$ref":"#/$defs/node"})"},
      {"tuple", R"({"type":"array","prefixItems":[{"type":"string","minLength":2,"maxLength":3},
          {"type":"integer","exclusiveMinimum":10,"maximum":20}],"items":{"type":"boolean"},"minItems":2,"maxItems":4})"},
      {"overlapping_anyof", R"({"anyOf":[
          {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a","b"],"additionalProperties":false},
          {"type":"object","properties":{"a":{"type":"integer"},"c":{"type":"boolean"}},"required":["a","c"],"additionalProperties":false}]})"},
      {"map", R"({"type":"object","additionalProperties":{"type":["number","null"]}})"},
  };
  auto t = test_trie();
  const int kDocs = 200, kMaxTokens = 3000;
  for (const auto& c : cases) {
    auto g = c.schema ? compile_schema(c.schema) : Grammar::any_json_object();
    const std::string schema_text = c.schema ? c.schema : R"({"type":"object"})";
    std::mt19937_64 rng(1234);
    int total_tokens = 0, longest = 0;
    for (int doc = 0; doc < kDocs; ++doc) {
      GenResult r = generate_doc(g, *t, rng, kMaxTokens, false);
      ASSERT_TRUE(r.ended) << c.name << ": no end within " << kMaxTokens << " tokens: " << r.text.substr(0, 200);
      json v;
      try {
        v = json::parse(r.text);
      } catch (const std::exception& e) {
        FAIL() << c.name << ": does not parse (" << e.what() << "): " << r.text;
      }
      EXPECT_TRUE(validates(schema_text, v)) << c.name << ": does not validate: " << r.text;
      total_tokens += r.tokens, longest = std::max(longest, r.tokens);
    }
    std::printf("  %-18s %d documents, %.1f tokens on average, longest %d\n", c.name, kDocs,
                double(total_tokens) / kDocs, longest);
  }
}

TEST(GrammarMask, TrainedTokenizer) {
  // A real byte-level BPE vocabulary (Korean merges, JSON punctuation merges, special tokens).
  test::TempDir d;
  std::string corpus = test::sample_corpus();
  for (int i = 0; i < 30; ++i)
    corpus += cat(R"({"name": "김철수", "age": )", i,
                  R"(, "email": null, "tags": ["a", "한국어"], "korean": "학교에서"})", "\n");
  TokenizerTrainOptions o;
  o.inputs = {d.file("corpus.txt", corpus)};
  o.vocab_size = 700;
  o.progress = false;
  Tokenizer tok = train_bpe(o);
  auto trie = build_token_trie(tok);
  const int32_t eos = tok.token_id("<|eos|>");
  ASSERT_GE(eos, 0);
  for (const char* schema : {kPerson, R"({"type":"object"})"}) {
    auto g = compile_schema(schema);
    std::mt19937_64 rng(99);
    for (int doc = 0; doc < 50; ++doc) {
      GenResult r = generate_doc(g, *trie, rng, 5000, doc < 3, eos);
      ASSERT_TRUE(r.ended) << r.text.substr(0, 200);
      json v;
      ASSERT_NO_THROW(v = json::parse(r.text)) << r.text;
      EXPECT_TRUE(validates(schema, v)) << r.text;
    }
  }
}

// Mask timing with a real tokenizer: TODAE_GRAMMAR_BENCH_TOKENIZER=path/to/tokenizer.json.
TEST(GrammarMask, Timing) {
  const char* path = std::getenv("TODAE_GRAMMAR_BENCH_TOKENIZER");
  if (!path) GTEST_SKIP() << "set TODAE_GRAMMAR_BENCH_TOKENIZER to a tokenizer.json to time masks";
  Tokenizer tok = load_tokenizer(path);
  auto t0 = std::chrono::steady_clock::now();
  auto trie = build_token_trie(tok);
  double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  vocab %d, trie %zu nodes, built in %.0f ms, %zu tokens close a string\n", trie->vocab_size,
              trie->tokens.byte.size(), build_ms, trie->closing_string.ids.size());
  std::vector<int32_t> end_ids;
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.is_special(id)) end_ids.push_back(id);
  auto g = compile_schema(kPerson);
  // States along a document; each mask computed cold (fresh cache) and then warm.
  const std::string doc =
      R"({"name":"김철수 \"Kim\" writes","age":42,"email":null,"tags":["a","bb"],"korean":"한국어 텍스트"})";
  std::vector<float> logits(tok.vocab_size());
  GrammarMatcher m(g);
  double cold = 0, warm = 0, worst = 0;
  int n = 0;
  for (size_t i = 0; i <= doc.size(); ++i) {
    GrammarMatcher fresh = m;
    fresh.cache.reset();
    auto a = std::chrono::steady_clock::now();
    apply_grammar_mask(fresh, *trie, end_ids, logits.data(), int(logits.size()));
    auto b = std::chrono::steady_clock::now();
    apply_grammar_mask(fresh, *trie, end_ids, logits.data(), int(logits.size()));
    auto c = std::chrono::steady_clock::now();
    double us = std::chrono::duration<double, std::micro>(b - a).count();
    if (std::getenv("TODAE_GRAMMAR_BENCH_VERBOSE")) std::printf("  %8.0f us  %s\n", us, m.text().c_str());
    cold += us, worst = std::max(worst, us);
    warm += std::chrono::duration<double, std::micro>(c - b).count();
    ++n;
    if (i < doc.size()) {
      ASSERT_TRUE(m.accept_bytes(doc.substr(i, 1)));
    }
  }
  std::printf("  mask over %d states: cold %.0f us average (worst %.0f us), cached %.0f us average\n", n, cold / n,
              worst, warm / n);
  // The slow path: inside a string while two alternatives are alive, every token is walked.
  {
    GrammarMatcher two(
        compile_schema(R"({"anyOf":[{"type":"string","maxLength":50},{"type":"string","minLength":3}]})"));
    ASSERT_TRUE(two.accept_bytes(R"("abc)"));
    auto a = std::chrono::steady_clock::now();
    apply_grammar_mask(two, *trie, end_ids, logits.data(), int(logits.size()));
    std::printf("  generic walk inside a string (two anyOf alternatives alive): %.0f us\n",
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  // Random walks (uniform among allowed tokens) under json_object and the person schema; only the
  // mask and the accept are timed.
  std::vector<uint8_t> special(tok.vocab_size());
  for (int32_t id = 0; id < tok.vocab_size(); ++id) special[id] = tok.is_special(id);
  for (auto grammar : {Grammar::any_json_object(), g}) {
    std::mt19937_64 rng(1);
    uint64_t hits = 0, misses = 0;
    int steps = 0, docs = 0;
    double mask_us = 0, worst_us = 0;
    while (steps < 1000) {
      GrammarMatcher w(grammar);
      for (; steps < 1000 && !w.finished(); ++steps) {
        std::fill(logits.begin(), logits.end(), 0.f);
        auto a = std::chrono::steady_clock::now();
        apply_grammar_mask(w, *trie, end_ids, logits.data(), int(logits.size()));
        double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < int32_t(logits.size()); ++id)
          if (!std::isinf(logits[id]) && !special[id]) allowed.push_back(id);
        ASSERT_FALSE(allowed.empty()) << "dead end after " << w.text();
        int32_t pick = allowed[rng() % allowed.size()];
        a = std::chrono::steady_clock::now();
        ASSERT_TRUE(accept_token(w, *trie, pick));
        us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
        mask_us += us, worst_us = std::max(worst_us, us);
      }
      ++docs;
      hits += w.cache ? w.cache->hits : 0, misses += w.cache ? w.cache->misses : 0;
    }
    std::printf(
        "  %s random walk: %d tokens in %d documents, mask + accept %.0f us per token (worst %.0f us; "
        "%llu masks cached, %llu computed)\n",
        grammar == g ? "person" : "json_object", steps, docs, mask_us / steps, worst_us, (unsigned long long)hits,
        (unsigned long long)misses);
  }
}

}  // namespace
}  // namespace todae
