// The tool-call parser of generated text (text/toolcall.h), as todae serve and todae eval use it.
#include "text/toolcall.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace todae;
using json = nlohmann::ordered_json;

TEST(ToolCalls, ParsesMarkedCallsInStreamedText) {
  ToolCallParser p;
  std::vector<ToolCall> calls;
  std::string shown;
  const std::string out =
      "Let me check.<|tool_call|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"서울\"}}<|/tool_call|>\n"
      "<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":1}}</tool_call>";
  for (char ch : out) shown += p.push(std::string(1, ch), calls);  // byte by byte
  shown += p.finish(calls);
  EXPECT_EQ(shown, "Let me check.");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(calls[0].arguments)["city"], "서울");
  EXPECT_EQ(calls[1].name, "add");
  EXPECT_TRUE(calls[0].id.empty());  // ids are todae serve's to give
}

TEST(ToolCalls, HoldsBackOnlyPossibleMarkers) {
  ToolCallParser p;
  std::vector<ToolCall> calls;
  EXPECT_EQ(p.push("a <", calls), "a ");
  EXPECT_EQ(p.push("b", calls), "<b");
  EXPECT_EQ(p.push("<|tool", calls), "");
  EXPECT_EQ(p.finish(calls), "<|tool");
  // Not JSON inside the markers: shown as text.
  ToolCallParser q;
  std::string s = q.push("<|tool_call|>not json<|/tool_call|>", calls);
  EXPECT_EQ(s, "<|tool_call|>not json<|/tool_call|>");
  EXPECT_TRUE(calls.empty());
  // A number no double holds (the model can write one): not a call, shown as text.
  ToolCallParser big;
  EXPECT_EQ(big.push("<|tool_call|>{\"name\":\"f\",\"arguments\":{\"x\":1e999}}<|/tool_call|>", calls),
            "<|tool_call|>{\"name\":\"f\",\"arguments\":{\"x\":1e999}}<|/tool_call|>");
  EXPECT_TRUE(calls.empty());
  // An unclosed call whose body is complete JSON still counts at the end.
  ToolCallParser r;
  EXPECT_EQ(r.push("<|tool_call|>{\"name\":\"f\",\"parameters\":{}}", calls), "");
  EXPECT_EQ(r.finish(calls), "");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].arguments, "{}");
  // Disabled: everything is text.
  ToolCallParser off;
  off.enabled = false;
  EXPECT_EQ(off.push("<|tool_call|>{}", calls), "<|tool_call|>{}");
}
