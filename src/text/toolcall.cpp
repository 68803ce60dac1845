// Tool-call markup in generated text (see toolcall.h).
#include "text/toolcall.h"

#include <nlohmann/json.hpp>

namespace todae {

namespace {

struct MarkerPair {
  std::string_view open, close;
};
constexpr MarkerPair kMarkers[] = {{"<|tool_call|>", "<|/tool_call|>"}, {"<tool_call>", "</tool_call>"}};

// Length of the longest suffix of s that is a proper prefix of some opening marker.
size_t partial_open_suffix(std::string_view s) {
  size_t best = 0;
  for (const auto& m : kMarkers)
    for (size_t n = std::min(s.size(), m.open.size() - 1); n > best; --n)
      if (s.substr(s.size() - n) == m.open.substr(0, n)) {
        best = n;
        break;
      }
  return best;
}

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD): generated text can hold any bytes.
std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

bool parse_tool_call_body(std::string_view body, ToolCall& out) {
  using json = nlohmann::ordered_json;
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  out.name = name->get<std::string>();
  if (args == j.end() || args->is_null())
    out.arguments = "{}";
  else if (args->is_string())
    out.arguments = args->get<std::string>();
  else
    out.arguments = dump(*args);
  return true;
}

std::string ToolCallParser::push(std::string_view text, std::vector<ToolCall>& calls) {
  if (!enabled) return std::string(text);
  buf.append(text);
  std::string content;
  for (;;) {
    if (open_marker < 0) {
      if (after_call) {
        size_t ws = buf.find_first_not_of(" \t\r\n");
        buf.erase(0, ws == std::string::npos ? buf.size() : ws);
        if (buf.empty()) return content;
        after_call = false;
      }
      // Earliest opening marker in the buffer.
      size_t at = std::string::npos;
      int which = -1;
      for (int k = 0; k < int(std::size(kMarkers)); ++k) {
        size_t p = buf.find(kMarkers[k].open);
        if (p < at) at = p, which = k;
      }
      if (which < 0) {
        size_t hold = partial_open_suffix(buf);
        content += buf.substr(0, buf.size() - hold);
        buf.erase(0, buf.size() - hold);
        return content;
      }
      content += buf.substr(0, at);
      buf.erase(0, at + kMarkers[which].open.size());
      open_marker = which;
    } else {
      size_t end = buf.find(kMarkers[open_marker].close);
      if (end == std::string::npos) return content;
      std::string body = buf.substr(0, end);
      ToolCall c;
      if (parse_tool_call_body(body, c))
        calls.push_back(std::move(c));
      else
        content += cat_marker(open_marker, body) + std::string(kMarkers[open_marker].close);
      buf.erase(0, end + kMarkers[open_marker].close.size());
      open_marker = -1;
      after_call = true;
    }
  }
}

std::string ToolCallParser::finish(std::vector<ToolCall>& calls) {
  std::string content;
  if (open_marker >= 0) {
    ToolCall c;
    if (parse_tool_call_body(buf, c))
      calls.push_back(std::move(c));
    else
      content = cat_marker(open_marker, buf);
    open_marker = -1;
  } else {
    content = buf;
  }
  buf.clear();
  return content;
}

std::string ToolCallParser::cat_marker(int which, const std::string& body) {
  return std::string(kMarkers[which].open) + body;
}

}  // namespace todae
