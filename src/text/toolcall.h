// todae text: finding tool calls in generated text. Models write a call as a marked JSON object,
//   <|tool_call|>{"name": "get_weather", "arguments": {"city": "Seoul"}}<|/tool_call|>
// (todae's tokenizers have these marker tokens; Qwen/Hermes-style <tool_call>...</tool_call> is
// understood too). The parser works on streamed text: it passes plain content through at once,
// holds back what could be the start of a marker, and returns each call when its closing marker
// (or the end of the output) arrives.
//
// It lives here, beside the chat templates that write these markers, because both `todae serve`
// (OpenAI tool_calls) and `todae eval` (tool-calling tasks) read them. Call ids are the API's
// business: the parser leaves ToolCall::id empty and todae serve assigns them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace todae {

struct ToolCall {
  std::string id, name, arguments;  // arguments: JSON text
};

struct ToolCallParser {
  bool enabled = true;
  std::string buf;          // text not yet returned (a possible marker start, or a call's body)
  int open_marker = -1;     // inside a call: which marker pair opened it
  bool after_call = false;  // whitespace right after a call is not content
  // Feeds generated text; returns content that can be shown now and appends finished calls.
  std::string push(std::string_view text, std::vector<ToolCall>& calls);
  // End of output: an unclosed call is parsed if its body is complete JSON, else returned as content.
  std::string finish(std::vector<ToolCall>& calls);

 private:
  static std::string cat_marker(int which, const std::string& body);
};

// Parses a call body {"name": ..., "arguments": {...}} ("parameters" accepted too); false if it is
// not one. Arguments given as a JSON value become its JSON text; given as a string, that string.
bool parse_tool_call_body(std::string_view body, ToolCall& out);

}  // namespace todae
