// BFCL's AST check of tool calls (see eval.h, check_tool_calls), written from the description of
// berkeley-function-call-leaderboard's eval_checker/ast_eval/ast_checker.py (Python rules):
//
//   - the function name matches (a dotted name may come back with '_' for '.', as FC models must
//     write it); every required parameter is there; no parameter the schema or the possible answer
//     does not know; a possible-answer parameter that is left out must list "" (optional);
//   - each value's type is the schema's (integer / number / string / boolean / array / object), an
//     int is accepted where a float is expected; arrays' items are type-checked one level deep;
//     a value of the possible answer's own type is a "variable" and compared as it is;
//   - strings (alone, in lists, in dict values) compare after standardize_string; lists as whole
//     lists; dicts key by key; list-of-dicts element by element; other values by Python's ==
//     (1 == 1.0 == True).
//
// Values are JSON (the calls' arguments), so Python's types map to JSON's: int = a JSON integer,
// float = a number with a fraction or exponent, bool, str, list = array, dict = object.
#include <algorithm>
#include <cmath>

#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;

namespace {

enum class Ty { None, Str, Int, Float, Bool, List, Dict, Unknown };

const char* ty_name(Ty t) {
  switch (t) {
    case Ty::None: return "NoneType";
    case Ty::Str: return "str";
    case Ty::Int: return "int";
    case Ty::Float: return "float";
    case Ty::Bool: return "bool";
    case Ty::List: return "list";
    case Ty::Dict: return "dict";
    case Ty::Unknown: return "?";
  }
  return "?";
}

Ty type_of(const ojson& v) {
  if (v.is_string()) return Ty::Str;
  if (v.is_boolean()) return Ty::Bool;
  if (v.is_number_float()) return Ty::Float;
  if (v.is_number()) return Ty::Int;
  if (v.is_array()) return Ty::List;
  if (v.is_object()) return Ty::Dict;
  return Ty::None;
}

// BFCL's PYTHON_TYPE_MAPPING, plus the JSON Schema names OpenAI-style tools use (BFCL writes
// float as number and dict as object when it sends the schemas to FC models).
Ty schema_type(const ojson& prop) {
  if (!prop.is_object() || !prop.contains("type") || !prop["type"].is_string()) return Ty::Unknown;
  const std::string t = prop["type"].get<std::string>();
  if (t == "string" || t == "any") return Ty::Str;
  if (t == "integer") return Ty::Int;
  if (t == "number" || t == "float") return Ty::Float;
  if (t == "boolean") return Ty::Bool;
  if (t == "array" || t == "tuple") return Ty::List;
  if (t == "object" || t == "dict") return Ty::Dict;
  return Ty::Unknown;
}

bool is_number(const ojson& v) { return v.is_number() || v.is_boolean(); }
double number(const ojson& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number_unsigned()) return double(v.get<uint64_t>());
  if (v.is_number_integer()) return double(v.get<int64_t>());
  return v.get<double>();
}

// Python's ==: numbers (bool included) by value, lists element by element, dicts by keys.
bool py_eq(const ojson& a, const ojson& b) {
  if (is_number(a) && is_number(b)) {
    if ((a.is_number_integer() || a.is_boolean()) && (b.is_number_integer() || b.is_boolean()) && !a.is_number_unsigned() &&
        !b.is_number_unsigned())
      return (a.is_boolean() ? int64_t(a.get<bool>()) : a.get<int64_t>()) ==
             (b.is_boolean() ? int64_t(b.get<bool>()) : b.get<int64_t>());
    return number(a) == number(b);
  }
  if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>() == b.get_ref<const std::string&>();
  if (a.is_null() && b.is_null()) return true;
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
      if (!py_eq(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto f = b.find(it.key());
      if (f == b.end() || !py_eq(*it, *f)) return false;
    }
    return true;
  }
  return false;
}

bool py_in(const ojson& v, const ojson& list) {
  if (!list.is_array()) return false;
  for (const ojson& x : list)
    if (py_eq(v, x)) return true;
  return false;
}

bool has_optional_marker(const ojson& possible) { return py_in(ojson(""), possible); }

std::string repr(const ojson& v) { return v.dump(-1, ' ', false, ojson::error_handler_t::replace); }

struct Check {
  bool valid = true, is_variable = false;
  std::string error, error_type;
};
Check bad(std::string type, std::string error) {
  Check c;
  c.valid = false;
  c.error_type = std::move(type);
  c.error = std::move(error);
  return c;
}

// get_possible_answer_type: the type of the first value that is not "" (optional).
Ty possible_type(const ojson& possible) {
  if (!possible.is_array()) return Ty::None;
  for (const ojson& a : possible)
    if (!(a.is_string() && a.get_ref<const std::string&>().empty())) return type_of(a);
  return Ty::None;
}

// type_checker: expected is the schema's type; nested the items' type of an array (or Unknown).
Check type_check(const std::string& param, const ojson& value, const ojson& possible, Ty expected, Ty nested) {
  Check r;
  const Ty pa = possible_type(possible);
  // The possible answer holds a value of another type than the schema's: a variable name, say.
  const bool variable = pa != Ty::None && pa != expected;
  if (type_of(value) == expected) {
    if (nested == Ty::Unknown) {
      r.is_variable = variable;
      return r;
    }
    // Each acceptable list must take every item (one level deep, as BFCL checks it); an
    // acceptable value that is not a list lets it pass.
    if (possible.is_array())
      for (const ojson& item : possible) {
        bool ok = true;
        if (item.is_array())
          for (const ojson& v : value)
            if (!type_check(param, v, item, nested, Ty::Unknown).valid) {
              ok = false;
              break;
            }
        if (ok) {
          r.is_variable = variable;
          return r;
        }
      }
    // (BFCL goes on to the variable rule below after a failed nested check.)
  }
  if (pa != Ty::None && type_of(value) == pa) {
    r.is_variable = true;
    return r;
  }
  return bad("type_error:simple", cat("Incorrect type for parameter '", param, "'. Expected type ", ty_name(expected),
                                      ", got ", ty_name(type_of(value)), ". Parameter value: ", repr(value), "."));
}

// Strings standardized, other values as they are (BFCL standardizes the top level of a list or a dict's values).
ojson standardized(const ojson& v) { return v.is_string() ? ojson(bfcl_standardize(v.get_ref<const std::string&>())) : v; }

Check string_check(const std::string& param, const ojson& value, const ojson& possible) {
  const std::string s = bfcl_standardize(value.get_ref<const std::string&>());
  for (const ojson& a : possible)
    if (a.is_string() && bfcl_standardize(a.get_ref<const std::string&>()) == s) return {};
  return bad("value_error:string", cat("Invalid value for parameter '", param, "': ", repr(value), ". Expected one of ",
                                       repr(possible), ". Case insensitive."));
}

Check list_check(const std::string& param, const ojson& value, const ojson& possible) {
  ojson v = ojson::array();
  for (const ojson& x : value) v.push_back(standardized(x));
  for (const ojson& a : possible) {
    ojson sa = ojson::array();  // "" (optional) iterates as an empty list in BFCL
    if (a.is_array())
      for (const ojson& x : a) sa.push_back(standardized(x));
    else if (!(a.is_string() && a.get_ref<const std::string&>().empty()))
      continue;
    if (py_eq(v, sa)) return {};
  }
  return bad("value_error:list/tuple",
             cat("Invalid value for parameter '", param, "': ", repr(value), ". Expected one of ", repr(possible), "."));
}

// dict_checker: one acceptable dict (its keys map to lists of acceptable values) must take the value.
Check dict_check(const std::string& param, const ojson& value, const ojson& possible) {
  Check r = bad("dict_checker:unclear", cat("Invalid value for parameter '", param, "': ", repr(value), "."));
  for (const ojson& a : possible) {
    if (a.is_string() && a.get_ref<const std::string&>().empty()) continue;
    if (!a.is_object()) continue;
    bool ok = true;
    for (auto it = value.begin(); it != value.end() && ok; ++it) {
      auto f = a.find(it.key());
      if (f == a.end()) {
        r = bad("value_error:dict_key", cat("Unexpected dict key parameter: '", it.key(), "'."));
        ok = false;
        break;
      }
      ojson accept = ojson::array();
      if (f->is_array())
        for (const ojson& x : *f) accept.push_back(standardized(x));
      if (!py_in(standardized(*it), accept)) {
        r = bad("value_error:dict_value", cat("Invalid value for parameter '", it.key(), "': ", repr(*it),
                                              ". Expected one of ", repr(accept), "."));
        ok = false;
      }
    }
    for (auto it = a.begin(); it != a.end() && ok; ++it)
      if (!value.contains(it.key()) && !has_optional_marker(*it)) {
        r = bad("value_error:dict_key", cat("Missing dict key parameter: '", it.key(), "'."));
        ok = false;
      }
    if (ok) return {};
  }
  return r;
}

// list_dict_checker: one acceptable list of dicts, of the same length, takes every dict in order.
Check list_dict_check(const std::string& param, const ojson& value, const ojson& possible) {
  Check r = bad("list_dict_checker:unclear", cat("Invalid value for parameter '", param, "'."));
  for (const ojson& a : possible) {
    if (!a.is_array() || a.size() != value.size()) {
      r = bad("value_error:list_dict_count", "Wrong number of dictionaries in the list.");
      continue;
    }
    bool ok = true;
    for (size_t i = 0; i < value.size() && ok; i++) {
      Check d = dict_check(param, value[i], ojson::array({a[i]}));
      if (!d.valid) r = d, ok = false;
    }
    if (ok) return {};
  }
  return r;
}

bool name_matches(const std::string& expected, const std::string& got) {
  if (expected == got) return true;
  std::string u = expected;  // FC models cannot write '.' in a name: BFCL accepts '_' for it
  std::replace(u.begin(), u.end(), '.', '_');
  return u == got;
}

const ojson* find_function(const ojson& functions, const std::string& name) {
  for (const ojson& f : functions)
    if (f.is_object() && f.value("name", "") == name) return &f;
  return nullptr;
}

// simple_function_checker: one call against one expected {func: {param: [values]}}.
Check simple_check(const ojson& func, const ToolCall& call, const std::string& exp_name, const ojson& possible) {
  if (!name_matches(exp_name, call.name))
    return bad("simple_function_checker:wrong_func_name", cat("Function name '", exp_name, "' not found in model output."));
  const ojson args = ojson::parse(call.arguments, nullptr, false);
  if (args.is_discarded() || !args.is_object())
    return bad("simple_function_checker:invalid_arguments",
               cat("The arguments of '", call.name, "' are not a JSON object: ", printable(call.arguments, 80)));
  static const ojson empty = ojson::object();
  const ojson& params = func.contains("parameters") && func["parameters"].is_object() ? func["parameters"] : empty;
  const ojson& props = params.contains("properties") && params["properties"].is_object() ? params["properties"] : empty;
  if (params.contains("required") && params["required"].is_array())
    for (const ojson& req : params["required"])
      if (req.is_string() && !args.contains(req.get<std::string>()))
        return bad("simple_function_checker:missing_required", cat("Missing required parameter: '", req.get<std::string>(), "'."));
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string& param = it.key();
    if (!props.contains(param) || !possible.contains(param))
      return bad("simple_function_checker:unexpected_param", cat("Unexpected parameter: '", param, "'."));
    const ojson& prop = props[param];
    const ojson& accept = possible[param];
    const Ty expected = schema_type(prop);
    ojson value = *it;
    if (expected == Ty::Unknown) {  // a schema type BFCL does not know: compare the values only
      ojson std_accept = ojson::array();
      for (const ojson& x : accept) std_accept.push_back(standardized(x));
      if (!py_in(standardized(value), std_accept))
        return bad("value_error:others", cat("Invalid value for parameter '", param, "': ", repr(value),
                                             ". Expected one of ", repr(accept), "."));
      continue;
    }
    const Ty nested = expected == Ty::List && prop.contains("items") ? schema_type(prop["items"]) : Ty::Unknown;
    if (expected == Ty::Float && type_of(value) == Ty::Int) value = number(value);  // Python's int -> float
    Check tc = type_check(param, value, accept, expected, nested);
    if (!tc.valid) return tc;
    if (!tc.is_variable) {
      Check c;
      if (expected == Ty::Dict) c = dict_check(param, value, accept);
      else if (expected == Ty::List && nested == Ty::Dict) c = list_dict_check(param, value, accept);
      else if (expected == Ty::Str) c = string_check(param, value, accept);
      else if (expected == Ty::List) c = list_check(param, value, accept);
      else if (!py_in(value, accept))
        c = bad("value_error:others", cat("Invalid value for parameter '", param, "': ", repr(value),
                                          ". Expected one of ", repr(accept), "."));
      if (!c.valid) return c;
      continue;
    }
    if (!py_in(value, accept))
      return bad("value_error:others",
                 cat("Invalid value for parameter '", param, "': ", repr(value), ". Expected one of ", repr(accept), "."));
  }
  for (auto it = possible.begin(); it != possible.end(); ++it)
    if (!args.contains(it.key()) && !has_optional_marker(*it))
      return bad("simple_function_checker:missing_optional",
                 cat("Optional parameter '", it.key(), "' not provided and not marked as optional."));
  return {};
}

}  // namespace

std::string bfcl_standardize(std::string_view s) {
  std::u32string u;
  for (char32_t c : to_u32(s))
    if (c != ' ' && c != ',' && c != '.' && c != '/' && c != '-' && c != '_' && c != '*' && c != '^') u.push_back(c);
  u = py_lower(std::move(u));
  for (char32_t& c : u)
    if (c == '\'') c = '"';
  return to_utf8(u);
}

ToolCallCheck check_tool_calls(const ojson& functions, const ojson& expected, const std::vector<ToolCall>& calls) {
  ToolCallCheck out;
  if (!expected.is_array()) fail("the possible answer is not a list of calls");
  // The names, as a multiset (each expected name takes one call of that name).
  {
    std::vector<bool> used(calls.size(), false);
    size_t matched = 0;
    for (const ojson& e : expected) {
      if (!e.is_object() || e.size() != 1) continue;
      for (size_t j = 0; j < calls.size(); j++)
        if (!used[j] && name_matches(e.begin().key(), calls[j].name)) {
          used[j] = true;
          matched++;
          break;
        }
    }
    out.name_ok = matched == expected.size() && calls.size() == expected.size();
  }
  if (expected.empty()) {  // irrelevance: the right answer is no call at all
    out.valid = calls.empty();
    if (!out.valid) {
      out.error_type = "irrelevance:called";
      out.error = cat("Expected no function call, got ", calls.size(), " (", calls[0].name, ").");
    }
    return out;
  }
  if (calls.size() != expected.size()) {
    out.error_type = "parallel_function_checker_no_order:wrong_count";
    out.error = cat("Wrong number of functions: expected ", expected.size(), ", got ", calls.size(), ".");
    return out;
  }
  std::vector<bool> used(calls.size(), false);
  for (size_t i = 0; i < expected.size(); i++) {
    const ojson& e = expected[i];
    if (!e.is_object() || e.size() != 1 || !e.begin()->is_object())
      fail("possible answer [", i, "]: expected {\"function_name\": {\"param\": [values...]}}");
    const std::string name = e.begin().key();
    const ojson* func = find_function(functions, name);
    if (!func) fail("possible answer [", i, "]: no function '", name, "' among the tools");
    Check first_error;
    bool found = false;
    for (size_t j = 0; j < calls.size() && !found; j++) {
      if (used[j]) continue;
      Check c = simple_check(*func, calls[j], name, *e.begin());
      if (c.valid) {
        used[j] = true;
        found = true;
      } else if (first_error.valid) {
        first_error = c;
      }
    }
    if (!found) {
      out.error_type = calls.size() == 1 ? first_error.error_type : "parallel_function_checker_no_order:cannot_find_match";
      out.error = calls.size() == 1 ? first_error.error
                                    : cat("Could not find a matching function for possible answer ", i, " (", name,
                                          "): ", first_error.error);
      return out;
    }
  }
  out.valid = true;
  return out;
}

}  // namespace todae::eval
