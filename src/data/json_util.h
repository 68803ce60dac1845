// Internal: strict reading of our JSON files (manifest, report, recipe). Every error is one line
// naming the file and the field path, e.g. "out/manifest.json: splits.train.files[2].tokens: ...".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base/base.h"

namespace todae::data {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

inline json parse_json_text(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line 1, ...";
    // numbers too large for any C++ type come as out_of_range.
    std::string m = e.what();
    auto p = m.find("] ");
    fail(file, ": malformed JSON: ", p == std::string::npos ? m : m.substr(p + 2));
  }
}

struct JsonIn {
  const json& j;
  std::string file, path;

  JsonIn at(const char* key) const {
    if (!j.is_object()) bad("expected an object");
    auto it = j.find(key);
    if (it == j.end()) fail(file, ": ", sub(key), ": missing");
    return {*it, file, sub(key)};
  }
  bool has(const char* key) const { return j.is_object() && j.contains(key); }
  JsonIn operator[](size_t i) const { return {j[i], file, cat(path, "[", i, "]")}; }
  std::string sub(const std::string& key) const { return path.empty() ? key : path + "." + key; }
  [[noreturn]] void bad(const char* what) const { fail(file, ": ", path.empty() ? "top level" : path, ": ", what); }

  uint64_t u64() const {
    if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) bad("expected a non-negative integer");
    return j.get<uint64_t>();
  }
  int64_t i64() const {
    if (!j.is_number_integer()) bad("expected an integer");
    return j.get<int64_t>();
  }
  double num() const {
    if (!j.is_number()) bad("expected a number");
    return j.get<double>();
  }
  bool boolean() const {
    if (!j.is_boolean()) bad("expected true or false");
    return j.get<bool>();
  }
  const std::string& str() const {
    if (!j.is_string()) bad("expected a string");
    return j.get_ref<const std::string&>();
  }
  size_t size_array() const {
    if (!j.is_array()) bad("expected a list");
    return j.size();
  }
  void object() const {
    if (!j.is_object()) bad("expected an object");
  }
  uint64_t hex() const {
    const std::string& s = str();
    if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
      bad("expected 16 lowercase hex digits");
    return std::stoull(s, nullptr, 16);
  }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    for (size_t i = 0, n = size_array(); i < n; ++i) out.push_back((*this)[i].str());
    return out;
  }
};

}  // namespace todae::data
