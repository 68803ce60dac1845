// Internal helpers of todae_eval shared between its files (not part of the public API).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eval/eval.h"

namespace todae::eval {

// Python str semantics on UTF-8: code points (an invalid byte is one code point of its own).
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
bool is_py_space(char32_t c);
std::vector<std::u32string> py_split(std::u32string_view s);
std::string py_strip(std::string_view s);
std::u32string py_lower(std::u32string s);

// A compiled PCRE2 pattern (UTF, Unicode properties). Errors name `what` and the pattern.
struct Regex {
  struct Impl;
  std::shared_ptr<Impl> impl;
  std::string pattern;
  int groups = 0;
  Regex(const std::string& pattern, const std::string& what);
  // Python re.finditer: every match's group spans (npos for a group that did not take part).
  std::vector<std::vector<std::pair<size_t, size_t>>> find_all(std::string_view s) const;
  std::string remove_all(std::string_view s) const;
  std::string substitute(std::string_view s, const std::string& replacement) const;  // "\1" references
};
const Regex& cached_regex(const std::string& pattern, const std::string& what);

// Tool-calling tasks (tool_task.cpp): a document's prompt (messages, functions, possible answer;
// errors name file:line and the column), and the sample of the model's reply, scored.
Prompt tool_prompt(const TaskConfig& t, const Doc& d);
nlohmann::ordered_json tool_sample(EvalModel& model, const TaskConfig& t, const Prompt& p);

}  // namespace todae::eval
