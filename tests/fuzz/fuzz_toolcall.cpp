// Any bytes as generated text, streamed into the tool-call parser in pieces whose sizes the first
// byte chooses. Text without a marker must come back unchanged; text with markers must not crash.
// A call body whose arguments are a JSON value gives JSON arguments text; arguments written as a
// string are passed on as that string (as OpenAI does: they may not be valid JSON).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/toolcall.h"

using namespace todae;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned step = 1 + data[0] % 13;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  ToolCallParser parser;
  std::vector<ToolCall> calls;
  std::string content;
  for (size_t i = 0; i < text.size(); i += step) content += parser.push(std::string_view(text).substr(i, step), calls);
  content += parser.finish(calls);
  const bool markers = text.find("<|tool_call|>") != std::string::npos || text.find("<tool_call>") != std::string::npos;
  if (!markers && (content != text || !calls.empty())) __builtin_trap();
  (void)calls;
  ToolCall one;
  if (parse_tool_call_body(text, one)) {
    const nlohmann::json body = nlohmann::json::parse(text);  // it parsed as an object to get here
    auto args = body.find("arguments");
    if (args == body.end()) args = body.find("parameters");
    if (args != body.end() && !args->is_string() && !nlohmann::json::accept(one.arguments)) __builtin_trap();
  }
  return 0;
}
