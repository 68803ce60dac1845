// todae agent: the tool registry and the JSON Schema checker the runtime and the MCP server run on
// every call's arguments before a tool sees them.
#include "agent/tool.h"

#include <cmath>
#include <regex>

#include "base/base.h"

namespace todae::agent {

static bool valid_tool_name(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

void ToolRegistry::add(Tool t) {
  if (!valid_tool_name(t.spec.name))
    fail("tool name '", printable(t.spec.name), "': use 1-128 letters, digits, '_', '-' or '.'");
  if (find(t.spec.name)) fail("tool '", t.spec.name, "' is declared twice");
  if (!t.run) fail("tool '", t.spec.name, "' has no implementation");
  tools.push_back(std::move(t));
}

const Tool* ToolRegistry::find(std::string_view name) const {
  for (const Tool& t : tools)
    if (t.spec.name == name) return &t;
  return nullptr;
}

json ToolRegistry::openai_tools() const {
  json out = json::array();
  for (const Tool& t : tools)
    out.push_back({{"type", "function"},
                   {"function",
                    {{"name", t.spec.name}, {"description", t.spec.description}, {"parameters", t.spec.input_schema}}}});
  return out;
}

// ---- JSON Schema -------------------------------------------------------------------------------

static std::string escape_pointer_token(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

static const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "value";
  }
}

static bool has_type(const json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_boolean();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  return false;
}

static size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

static bool check_format(const std::string& fmt, const std::string& s) {
  static const std::regex date(R"(\d{4}-\d{2}-\d{2})");
  static const std::regex date_time(R"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)");
  static const std::regex email(R"([^@\s<>]+@[^@\s<>]+\.[^@\s<>]+)");
  if (fmt == "date") return std::regex_match(s, date);
  if (fmt == "date-time") return std::regex_match(s, date_time);
  if (fmt == "email") return std::regex_match(s, email);
  return true;  // unknown formats are annotations (JSON Schema 2020-12)
}

static std::string validate_at(const json& schema, const json& v, const std::string& path) {
  auto where = [&] { return path.empty() ? std::string("(root)") : path; };
  if (schema.is_boolean()) return schema.get<bool>() ? "" : where() + ": no value is allowed here";
  if (!schema.is_object()) return "";
  if (auto it = schema.find("type"); it != schema.end()) {
    bool ok = false;
    std::string want;
    if (it->is_string()) {
      ok = has_type(v, it->get<std::string>());
      want = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& t : *it)
        if (t.is_string()) {
          ok = ok || has_type(v, t.get<std::string>());
          want += (want.empty() ? "" : " or ") + t.get<std::string>();
        }
    } else {
      ok = true;
    }
    if (!ok) return cat(where(), ": expected ", want, ", got ", type_name(v));
  }
  if (auto it = schema.find("const"); it != schema.end() && *it != v)
    return cat(where(), ": must be ", it->dump());
  if (auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
    bool found = false;
    for (const auto& e : *it) found = found || e == v;
    if (!found) return cat(where(), ": must be one of ", printable(it->dump(), 120));
  }
  if (v.is_number()) {
    double x = v.get<double>();
    if (auto it = schema.find("minimum"); it != schema.end() && it->is_number() && x < it->get<double>())
      return cat(where(), ": must be at least ", it->dump());
    if (auto it = schema.find("maximum"); it != schema.end() && it->is_number() && x > it->get<double>())
      return cat(where(), ": must be at most ", it->dump());
    if (auto it = schema.find("exclusiveMinimum"); it != schema.end() && it->is_number() && x <= it->get<double>())
      return cat(where(), ": must be greater than ", it->dump());
    if (auto it = schema.find("exclusiveMaximum"); it != schema.end() && it->is_number() && x >= it->get<double>())
      return cat(where(), ": must be less than ", it->dump());
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    size_t n = utf8_length(s);
    if (auto it = schema.find("minLength"); it != schema.end() && it->is_number_unsigned() && n < it->get<size_t>())
      return cat(where(), ": must be at least ", it->dump(), " characters");
    if (auto it = schema.find("maxLength"); it != schema.end() && it->is_number_unsigned() && n > it->get<size_t>())
      return cat(where(), ": must be at most ", it->dump(), " characters");
    if (auto it = schema.find("format"); it != schema.end() && it->is_string() && !check_format(it->get<std::string>(), s))
      return cat(where(), ": '", printable(s, 60), "' is not a valid ", it->get<std::string>());
  }
  if (v.is_array()) {
    if (auto it = schema.find("minItems"); it != schema.end() && it->is_number_unsigned() && v.size() < it->get<size_t>())
      return cat(where(), ": needs at least ", it->dump(), " items");
    if (auto it = schema.find("maxItems"); it != schema.end() && it->is_number_unsigned() && v.size() > it->get<size_t>())
      return cat(where(), ": takes at most ", it->dump(), " items");
    if (auto it = schema.find("items"); it != schema.end())
      for (size_t i = 0; i < v.size(); i++)
        if (auto e = validate_at(*it, v[i], cat(path, "/", i)); !e.empty()) return e;
  }
  if (v.is_object()) {
    const json* props = schema.contains("properties") && schema["properties"].is_object() ? &schema["properties"] : nullptr;
    if (auto it = schema.find("required"); it != schema.end() && it->is_array())
      for (const auto& r : *it)
        if (r.is_string() && !v.contains(r.get<std::string>()))
          return cat(where(), ": missing required field '", r.get<std::string>(), "'");
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string sub = path + "/" + escape_pointer_token(it.key());
      if (props && props->contains(it.key())) {
        if (auto e = validate_at((*props)[it.key()], it.value(), sub); !e.empty()) return e;
      } else if (auto ap = schema.find("additionalProperties"); ap != schema.end()) {
        if (ap->is_boolean() && !ap->get<bool>()) return cat(where(), ": unknown field '", printable(it.key(), 60), "'");
        if (ap->is_object())
          if (auto e = validate_at(*ap, it.value(), sub); !e.empty()) return e;
      }
    }
  }
  if (auto it = schema.find("allOf"); it != schema.end() && it->is_array())
    for (const auto& s : *it)
      if (auto e = validate_at(s, v, path); !e.empty()) return e;
  if (auto it = schema.find("anyOf"); it != schema.end() && it->is_array()) {
    std::string first;
    for (const auto& s : *it) {
      auto e = validate_at(s, v, path);
      if (e.empty()) return "";
      if (first.empty()) first = e;
    }
    if (!it->empty()) return first;
  }
  if (auto it = schema.find("oneOf"); it != schema.end() && it->is_array()) {
    int matches = 0;
    std::string first;
    for (const auto& s : *it) {
      auto e = validate_at(s, v, path);
      if (e.empty()) matches++;
      else if (first.empty()) first = e;
    }
    if (matches == 0 && !it->empty()) return first;
    if (matches > 1) return cat(where(), ": matches more than one of oneOf's schemas");
  }
  return "";
}

std::string validate_json(const json& schema, const json& value) { return validate_at(schema, value, ""); }

static void collect(const json& doc, const std::vector<std::string>& tokens, size_t i, std::vector<std::string>& out) {
  if (i == tokens.size()) {
    if (doc.is_string()) out.push_back(doc.get<std::string>());
    else if (doc.is_array())
      for (const auto& e : doc)
        if (e.is_string()) out.push_back(e.get<std::string>());
    return;
  }
  const std::string& t = tokens[i];
  if (t == "*") {
    if (doc.is_array())
      for (const auto& e : doc) collect(e, tokens, i + 1, out);
    else if (doc.is_object())
      for (const auto& e : doc) collect(e, tokens, i + 1, out);
    return;
  }
  if (doc.is_object()) {
    if (auto it = doc.find(t); it != doc.end()) collect(*it, tokens, i + 1, out);
  } else if (doc.is_array() && !t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
    size_t k = std::stoul(t);
    if (k < doc.size()) collect(doc[k], tokens, i + 1, out);
  }
}

std::vector<std::string> values_at(const json& doc, std::string_view pointer) {
  std::vector<std::string> tokens;
  if (!pointer.empty() && pointer[0] == '/') {
    std::string cur;
    for (size_t i = 1; i <= pointer.size(); i++) {
      if (i == pointer.size() || pointer[i] == '/') {
        std::string tok;
        for (size_t k = 0; k < cur.size(); k++) {
          if (cur[k] == '~' && k + 1 < cur.size()) {
            tok += cur[k + 1] == '1' ? '/' : '~';
            k++;
          } else {
            tok += cur[k];
          }
        }
        tokens.push_back(tok);
        cur.clear();
      } else {
        cur += pointer[i];
      }
    }
  }
  std::vector<std::string> out;
  collect(doc, tokens, 0, out);
  return out;
}

}  // namespace todae::agent
