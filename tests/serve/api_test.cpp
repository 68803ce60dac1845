// The API layer of `todae serve`: request validation, OpenAI-shaped errors and responses, SSE
// framing, tool-call markup, metrics text.
#include "base/base.h"
#include "serve/api.h"

#include <gtest/gtest.h>

#include "serve/metrics.h"

using namespace todae::serve;

namespace {

json J(const char* s) { return json::parse(s); }

// Runs f, expects an ApiError; returns it.
template <typename F>
ApiError expect_error(F f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

ApiError chat_error(const char* body) {
  return expect_error([&] { parse_chat_request(parse_body(body)); });
}

}  // namespace

TEST(ServeApi, ErrorShapeIsOpenAIs) {
  ApiError e = invalid_request("bad thing", "temperature", "invalid_value");
  json j = error_json(e);
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j.size(), 1u);
  const json& err = j["error"];
  EXPECT_EQ(err.size(), 4u);
  EXPECT_EQ(err["message"], "bad thing");
  EXPECT_EQ(err["type"], "invalid_request_error");
  EXPECT_EQ(err["param"], "temperature");
  EXPECT_EQ(err["code"], "invalid_value");
  json n = error_json(server_error("x"));
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_EQ(n["error"]["type"], "server_error");
  EXPECT_EQ(invalid_api_key().status, 401);
  EXPECT_EQ(model_not_found("m").status, 404);
  EXPECT_EQ(model_not_found("m").code, "model_not_found");
  EXPECT_EQ(route_not_found("GET", "/x").status, 404);
  EXPECT_EQ(body_too_large(10).status, 413);
  ApiError q = queue_full(3);
  EXPECT_EQ(q.status, 429);
  EXPECT_EQ(q.retry_after, 3);
  EXPECT_EQ(unavailable("s").status, 503);
}

TEST(ServeApi, BadJsonBodies) {
  for (const char* body : {"", "{", "{\"model\": \"m\", \"messages\": [", "nul", "{\"a\":1,}", "[1,2"}) {
    ApiError e = expect_error([&] { parse_body(body); });
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.code, "invalid_json") << body;
  }
  // Not an object.
  EXPECT_EQ(expect_error([] { parse_body("[1]"); }).code, "invalid_json");
  EXPECT_EQ(expect_error([] { parse_body("\"x\""); }).code, "invalid_json");
  // Invalid UTF-8 inside a string.
  std::string bad = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}";
  EXPECT_EQ(expect_error([&] { parse_body(bad); }).status, 400);
  // Valid UTF-8 (Korean) is fine.
  EXPECT_NO_THROW(parse_body("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"안녕하세요\"}]}"));
  // A number no double holds is a 400 too (nlohmann reports it as out_of_range, not parse_error;
  // found by fuzz_api_request); inside a tool call's arguments string it stays text.
  ApiError big = expect_error([] { parse_body("{\"model\":\"m\",\"temperature\":1e999}"); });
  EXPECT_EQ(big.status, 400);
  EXPECT_EQ(big.code, "invalid_json");
  EXPECT_NE(big.message.find("too large"), std::string::npos) << big.message;
  json with_call = parse_body(
      "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
      "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\": 1e999}\"}}]}]}");
  GenRequest r = parse_chat_request(with_call);
  EXPECT_EQ(r.messages[0]["tool_calls"][0]["function"]["arguments"], "{\"x\": 1e999}");  // kept as the text
}

TEST(ServeApi, ChatDefaultsAndFields) {
  GenRequest r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_DOUBLE_EQ(r.temperature, 1.0);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.seed.has_value());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0]["content"], "hi");

  r = parse_chat_request(J(R"({"model":"m","messages":[
      {"role":"developer","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"42"}],
      "max_tokens":5,"max_completion_tokens":7,"temperature":0,"top_p":0.5,"seed":-3,"n":2,
      "stop":["x","","y"],"logprobs":true,"top_logprobs":3,"stream":true,"stream_options":{"include_usage":true},
      "presence_penalty":0.5,"frequency_penalty":-0.5,"logit_bias":{"5":-100,"7":2.5}})"),
                         Limits{16, 100});
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);
  EXPECT_EQ(r.messages[3]["tool_call_id"], "call_1");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(*r.seed, uint64_t(-3));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.stream && r.include_usage);
  ASSERT_EQ(r.logit_bias.size(), 2u);
  EXPECT_EQ(r.logit_bias[0].first, 5);
  EXPECT_EQ(r.logit_bias[1].second, 2.5f);
  // A single stop string; nulls mean defaults.
  r = parse_chat_request(
      J(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"END","temperature":null,"n":null})"));
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.n, 1);
}

TEST(ServeApi, ChatValidationErrors) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":5,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":"hi"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":[5]})", "messages[0]"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"king","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":7}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})",
       "messages[0].content[0].type"},
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5})", "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":1.5})", "top_p"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":100})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":1.5})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"10"})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":5})", "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a",1]})", "stop[1]"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})",
       "stream_options"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})", "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"presence_penalty":3})", "presence_penalty"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":"1"})", "seed"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"abc":1}})", "logit_bias"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":500}})", "logit_bias"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":{}})", "tools"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})",
       "tools[0].function"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name"}}]})",
       "tools[0].function.name"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"})", "tool_choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"})",
       "tool_choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})",
       "tool_choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})",
       "response_format.type"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
       "response_format.json_schema"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}}})",
       "response_format.json_schema.name"},
  };
  for (const auto& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_FALSE(e.message.empty());
  }
  // Token ids are checked against the vocabulary when it is known.
  ApiError e = expect_error([] {
    parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1000":1}})"),
                       Limits{16, 100});
  });
  EXPECT_EQ(e.param, "logit_bias");
}

TEST(ServeApi, ToolsAndResponseFormat) {
  GenRequest r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],
    "tools":[{"type":"function","function":{"name":"get_weather","description":"d",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
             {"type":"function","function":{"name":"add","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],
    "tool_choice":"auto"})"));
  ASSERT_EQ(r.tools.size(), 2u);
  EXPECT_EQ(r.tools[0].name, "get_weather");
  EXPECT_EQ(r.tools_json.size(), 2u);
  EXPECT_EQ(r.tool_choice.mode, ToolChoice::Auto);
  EXPECT_TRUE(output_schema(r).is_null());  // auto: free text, the model decides

  r.tool_choice.mode = ToolChoice::Required;
  json s = output_schema(r);
  ASSERT_TRUE(s.contains("anyOf"));
  EXPECT_EQ(s["anyOf"].size(), 2u);
  EXPECT_EQ(s["anyOf"][0]["properties"]["name"]["enum"][0], "get_weather");
  // Property order: name first, then arguments (the grammar writes them in this order).
  EXPECT_EQ(s["anyOf"][0]["properties"].begin().key(), "name");

  r.tool_choice = {ToolChoice::Named, "add"};
  s = output_schema(r);
  EXPECT_EQ(s["properties"]["name"]["enum"][0], "add");
  EXPECT_EQ(s["properties"]["arguments"]["properties"]["a"]["type"], "integer");

  r = parse_chat_request(
      J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})"));
  EXPECT_EQ(output_schema(r), J(R"({"type":"object"})"));
  r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"}},"required":["z","a"]}}}})"));
  s = output_schema(r);
  EXPECT_EQ(s["properties"].begin().key(), "z");  // document order kept
  r = parse_chat_request(
      J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})"));
  EXPECT_TRUE(output_schema(r).is_null());
}

TEST(ServeApi, CompletionAndEmbeddingRequests) {
  GenRequest r =
      parse_completion_request(J(R"({"model":"m","prompt":"Once","max_tokens":3,"logprobs":2,"echo":true})"));
  EXPECT_EQ(r.endpoint, Endpoint::Completion);
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.echo);
  r = parse_completion_request(J(R"({"model":"m","prompt":[1,2,3]})"), Limits{16, 10});
  EXPECT_TRUE(r.prompt_is_ids);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  r = parse_completion_request(J(R"({"model":"m","prompt":["only"]})"));
  EXPECT_EQ(r.prompt, "only");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m"})")); }).param, "prompt");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":5})")); }).param, "prompt");
  EXPECT_EQ(expect_error([] {
              parse_completion_request(J(R"({"model":"m","prompt":[1,99]})"), Limits{16, 10});
            }).param,
            "prompt[1]");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":"x","logprobs":9})")); }).param,
            "logprobs");

  EmbedRequest e =
      parse_embedding_request(J(R"({"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":4})"));
  EXPECT_EQ(e.texts.size(), 2u);
  EXPECT_TRUE(e.base64);
  EXPECT_EQ(e.dimensions, 4);
  e = parse_embedding_request(J(R"({"model":"m","input":[[1,2],[3]]})"));
  EXPECT_EQ(e.token_ids.size(), 2u);
  e = parse_embedding_request(J(R"({"model":"m","input":"x"})"));
  EXPECT_EQ(e.texts, std::vector<std::string>{"x"});
  for (const char* bad :
       {R"({"model":"m"})", R"({"model":"m","input":""})", R"({"model":"m","input":[]})", R"({"model":"m","input":{}})",
        R"({"model":"m","input":["a",1.5]})", R"({"model":"m","input":"a","encoding_format":"hex"})"})
    EXPECT_EQ(expect_error([&] { parse_embedding_request(J(bad)); }).status, 400) << bad;
}

TEST(ServeApi, ChatResponseShape) {
  ChoiceResult c;
  c.index = 0;
  c.text = "안녕";
  c.finish_reason = "stop";
  LogprobEntry lp;
  lp.token = "\xec\x95";  // half a character: bytes kept, text replaced
  lp.logprob = -0.5f;
  lp.top = {{"a", -0.5f}};
  c.logprobs = {lp};
  Usage u{5, 2, 1};
  json j = chat_response("chatcmpl-1", 123, "m", {c}, u, true);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "안녕");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
  const json& t = j["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(t["bytes"], J("[236,149]"));
  EXPECT_EQ(t["top_logprobs"][0]["token"], "a");
  EXPECT_NO_THROW(dump(j));

  ChoiceResult tc;
  tc.tool_calls = {{"call_x", "f", "{\"a\":1}"}};
  tc.finish_reason = "tool_calls";
  j = chat_response("id", 1, "m", {tc}, u, false);
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());

  j = completion_response("cmpl-1", 1, "m", {c}, u, true);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "안녕");
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"][0], 0);
}

// lm-eval's local-completions log-likelihood request: echo + logprobs + max_tokens 0, one prompt or a
// list of them (texts or token ids).
TEST(ServeApi, EchoLogprobsRequestsAndShape) {
  GenRequest r = parse_completion_request(J(
      R"({"model":"m","prompt":"ctx cont","echo":true,"logprobs":1,"max_tokens":0,"temperature":0,"seed":1234})"));
  EXPECT_EQ(r.max_tokens, 0);
  EXPECT_TRUE(r.echo && r.logprobs);
  EXPECT_EQ(r.top_logprobs, 1);
  EXPECT_EQ(r.prompts, std::vector<std::string>{"ctx cont"});
  r = parse_completion_request(J(R"({"model":"m","prompt":[[1,2],[3]],"echo":true,"logprobs":1,"max_tokens":1})"),
                               Limits{16, 10});
  ASSERT_EQ(r.prompts_ids.size(), 2u);
  EXPECT_EQ(r.prompts_ids[1], std::vector<int32_t>{3});
  EXPECT_TRUE(r.prompt_is_ids);
  r = parse_completion_request(J(R"({"model":"m","prompt":["a","b","c"]})"));
  EXPECT_EQ(r.prompts, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r.prompt, "a");
  // max_tokens 0 generates nothing: only with echo (else there is no output at all)
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":"x","max_tokens":0})")); }).param,
            "max_tokens");
  EXPECT_EQ(expect_error([] { parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})")); }).param,
            "max_tokens");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":["a",[1]]})")); }).param, "prompt[1]");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":[[1],[]]})")); }).param, "prompt[1]");
  EXPECT_EQ(expect_error([] { parse_completion_request(J(R"({"model":"m","prompt":["a","b"],"stream":true})")); }).param,
            "prompt");

  // The prompt's tokens: the first has no logprob (null, as OpenAI and vLLM); offsets are code
  // points, a token starting inside a character gets that character's index; a token the text does
  // not hold (a special token the tokenizer added) takes the current position; the token itself
  // is among top_logprobs.
  std::vector<LogprobEntry> lps(5);
  lps[0].token = "<s>", lps[0].null = true;
  lps[1].token = "가", lps[1].logprob = -1.25, lps[1].top = {{"나", -0.5}};
  lps[2].token = "\xeb\x82", lps[2].logprob = -2;  // half of 나
  lps[3].token = "\x98", lps[3].logprob = -3;
  lps[4].token = " b", lps[4].logprob = -0.125, lps[4].top = {{" b", -0.125}};
  json j = completion_logprobs_json(lps, "가나 b");
  EXPECT_EQ(j["text_offset"], J("[0,0,1,1,2]"));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_EQ(j["token_logprobs"][1], -1.25);
  EXPECT_EQ(j["top_logprobs"][1], J(R"({"나":-0.5,"가":-1.25})"));
  EXPECT_EQ(j["top_logprobs"][4], J(R"({" b":-0.125})"));
  EXPECT_EQ(j["tokens"][2], "\ufffd");
  EXPECT_EQ(completion_logprobs_json({lps[4]}, " b", 7)["text_offset"], J("[7]"));
}

TEST(ServeApi, SseFraming) {
  json ch = chat_chunk("id", 1, "m", 0, json{{"content", "hi\nthere"}}, nullptr, nullptr, true);
  std::string ev = sse_event(ch);
  ASSERT_EQ(ev.rfind("data: ", 0), 0u);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n");
  // One line: newlines inside strings are escaped, so the event cannot be split.
  EXPECT_EQ(ev.find('\n'), ev.size() - 2);
  json back = json::parse(ev.substr(6));
  EXPECT_EQ(back["object"], "chat.completion.chunk");
  EXPECT_TRUE(back["usage"].is_null());
  EXPECT_TRUE(back["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(back["choices"][0]["delta"]["content"], "hi\nthere");
  EXPECT_FALSE(chat_chunk("id", 1, "m", 0, json::object(), nullptr, "stop", false).contains("usage"));
  json u = usage_chunk("id", 1, "m", "chat.completion.chunk", Usage{3, 4, 0});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["completion_tokens"], 4);
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  std::string err = sse_error(invalid_request("x"));
  EXPECT_EQ(json::parse(err.substr(6))["error"]["message"], "x");
  // Invalid UTF-8 in generated text never breaks the JSON.
  std::string bad =
      sse_event(chat_chunk("id", 1, "m", 0, json{{"content", std::string("a\xff")}}, nullptr, nullptr, false));
  EXPECT_NO_THROW(json::parse(bad.substr(6)));
}

TEST(ServeApi, Helpers) {
  EXPECT_EQ(todae::base64_encode(""), "");
  EXPECT_EQ(todae::base64_encode("f"), "Zg==");
  EXPECT_EQ(todae::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(todae::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(todae::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_EQ(bearer_token("Bearer sk-1"), "sk-1");
  EXPECT_EQ(bearer_token("bearer  sk-1 "), "sk-1");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token(""), "");
  std::string id = random_id("chatcmpl-");
  EXPECT_EQ(id.size(), 9u + 24u);
  EXPECT_NE(id, random_id("chatcmpl-"));
  json e = embeddings_response("m", {{1.0f, 0.0f}}, true, 3);
  EXPECT_EQ(e["data"][0]["embedding"], todae::base64_encode(std::string("\x00\x00\x80\x3f\x00\x00\x00\x00", 8)));
  EXPECT_EQ(models_response("m", 1, 64)["data"][0]["id"], "m");
  // LoRA adapters follow the base, as vLLM lists them: parent = the base's id, root = the path
  json ml = models_response("m", 1, 64, {{"sql", "/a/sql"}, {"ko", "/a/ko"}});
  ASSERT_EQ(ml["data"].size(), 3u);
  EXPECT_FALSE(ml["data"][0].contains("parent"));
  EXPECT_EQ(ml["data"][1]["id"], "sql");
  EXPECT_EQ(ml["data"][1]["parent"], "m");
  EXPECT_EQ(ml["data"][1]["root"], "/a/sql");
  EXPECT_EQ(ml["data"][2]["id"], "ko");
  EXPECT_EQ(ml["data"][2]["object"], "model");
}

TEST(ServeMetrics, PrometheusText) {
  Metrics m;
  m.request("/v1/chat/completions", 200);
  m.request("/v1/chat/completions", 200);
  m.request("/v1/chat/completions", 400);
  m.generated_tokens(10);
  m.prompt_tokens(7);
  m.ttft(0.02);
  m.inter_token(0.004);
  m.duration("/v1/chat/completions", 0.3);
  m.queue_depth = 2;
  m.decode_step(8, 0.01, 1);
  m.decode_step(8, 0.01, 3);  // a pass mixing LoRA adapters
  m.model_request("tiny");
  m.model_request("a\"b");  // names are the user's: quoted in the label
  m.model_request("a\"b");
  std::string t = m.render();
  EXPECT_NE(t.find("todae_forward_passes_total 2\n"), std::string::npos);
  EXPECT_NE(t.find("todae_mixed_adapter_passes_total 1\n"), std::string::npos);
  EXPECT_NE(t.find("todae_model_requests_total{model=\"tiny\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("todae_model_requests_total{model=\"a\\\"b\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("todae_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("todae_requests_total{endpoint=\"/v1/chat/completions\",code=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("todae_generated_tokens_total 10\n"), std::string::npos);
  EXPECT_NE(t.find("todae_prompt_tokens_total 7\n"), std::string::npos);
  EXPECT_NE(t.find("todae_queue_depth 2\n"), std::string::npos);
  EXPECT_NE(t.find("# TYPE todae_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(t.find("todae_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("todae_time_to_first_token_seconds_bucket{le=\"0.01\"} 0\n"), std::string::npos);
  EXPECT_NE(t.find("todae_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("todae_time_to_first_token_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(t.find("todae_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.5\"} 1\n"),
            std::string::npos);
  EXPECT_NE(t.find("todae_tokens_per_second "), std::string::npos);
  // Every non-comment line is "name{labels} value" or "name value".
  std::istringstream in(t);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
}
