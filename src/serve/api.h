// todae serve, the API layer: OpenAI request parsing and validation, response and chunk shapes,
// errors in OpenAI's shape, SSE framing. Pure functions over JSON: no model, no sockets, so every
// rule here is unit-tested (tests/serve/api_test.cpp).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/toolcall.h"

namespace todae::serve {

using json = nlohmann::ordered_json;

// ---- errors -------------------------------------------------------------------------------------

// A failure reported to the client: HTTP status plus OpenAI's {"error":{message,type,param,code}}.
struct ApiError : std::exception {
  int status = 400;
  std::string message, type, param, code;  // empty param/code serialise as null
  int retry_after = 0;                     // seconds, 429 only (sent as the retry-after header)
  ApiError(int status, std::string message, std::string type, std::string param = {}, std::string code = {});
  const char* what() const noexcept override { return message.c_str(); }
};

ApiError invalid_request(std::string message, std::string param = {}, std::string code = {});  // 400
ApiError invalid_api_key();                                                                    // 401
ApiError model_not_found(const std::string& model);                                            // 404
ApiError route_not_found(const std::string& method, const std::string& path);                  // 404
ApiError body_too_large(size_t limit);                                                         // 413
ApiError queue_full(int retry_after_s);                                                        // 429
ApiError server_error(std::string message);                                                    // 500
ApiError unavailable(std::string message);                                                     // 503

json error_json(const ApiError& e);
// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const json& j);

// ---- requests -----------------------------------------------------------------------------------

// Parses a request body: 400 for invalid JSON or a body that is not an object.
json parse_body(std::string_view body);

struct ToolSpec {
  std::string name, description;
  json parameters = json::object();  // JSON Schema of the arguments
  bool strict = false;
};

struct ToolChoice {
  enum Mode { Auto, None, Required, Named } mode = Auto;
  std::string name;  // Named
};

struct ResponseFormat {
  enum Type { Text, JsonObject, JsonSchema } type = Text;
  json schema;       // JsonSchema: the schema; JsonObject: {"type":"object"}
  std::string name;  // json_schema.name
};

enum class Endpoint { Chat, Completion, Embedding };

// A chat or text completion request, validated (ranges, types, combinations).
struct GenRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  // Chat: the messages as the chat template expects them: role, content (a string; text parts
  // joined), tool_calls (function.arguments parsed into an object when it is JSON), tool_call_id, name.
  json messages = json::array();
  // Completion: the prompt as text, or as token ids (the first of `prompts` / `prompts_ids`).
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  // Every prompt of the request ("prompt": a list of texts or of token-id lists, as lm-eval's
  // local-completions batches them): choice index = prompt index * n + choice (OpenAI's rule).
  std::vector<std::string> prompts;
  std::vector<std::vector<int32_t>> prompts_ids;
  bool echo = false;

  int max_tokens = -1;  // -1: until the context is full; 0 (completions with echo): score the prompt only
  double temperature = 1.0, top_p = 1.0, min_p = 0.0, repetition_penalty = 1.0;
  int top_k = 0;
  double presence_penalty = 0, frequency_penalty = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int n = 1;
  bool logprobs = false;
  int top_logprobs = 0;
  bool stream = false, include_usage = false;
  std::vector<ToolSpec> tools;
  json tools_json = json::array();  // the tools as given (for the chat template)
  ToolChoice tool_choice;
  bool parallel_tool_calls = true;
  ResponseFormat response_format;
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool ignore_eos = false;  // extension (benchmarks)
};

struct EmbedRequest {
  std::string model;
  std::vector<std::string> texts;               // either texts ...
  std::vector<std::vector<int32_t>> token_ids;  // ... or token ids
  bool base64 = false;                          // encoding_format
  int dimensions = 0;                           // 0: full
};

struct Limits {
  int max_n = 16;      // choices per request
  int vocab_size = 0;  // token ids in logit_bias / prompts are checked against it (0: not)
};

GenRequest parse_chat_request(const json& body, const Limits& lim = {});
GenRequest parse_completion_request(const json& body, const Limits& lim = {});
EmbedRequest parse_embedding_request(const json& body, const Limits& lim = {});

// The JSON Schema the output must follow (response_format or a forced tool call), or null.
// A forced tool call (tool_choice required/named) is {"name": ..., "arguments": {...}} objects.
json output_schema(const GenRequest& r);

// ---- responses ----------------------------------------------------------------------------------

struct LogprobEntry {
  std::string token;  // the token's bytes (possibly an incomplete UTF-8 character)
  // double: prompt scoring (echo + logprobs) reports the log-softmax exactly as computed, so a
  // client summing them gets what a local forward pass gives.
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;
  bool null = false;  // the prompt's first token: nothing predicts it (null in the JSON, as OpenAI/vLLM)
};

using todae::ToolCall;  // {id, name, arguments}: text/toolcall.h, where the parser of generated calls lives

struct ChoiceResult {
  int index = 0;
  std::string text;  // content (chat) or text (completion)
  std::vector<ToolCall> tool_calls;
  std::vector<LogprobEntry> logprobs;
  std::string finish_reason;  // stop, length, tool_calls
};

struct Usage {
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

json usage_json(const Usage& u);
json chat_logprobs_json(const std::vector<LogprobEntry>& lps);
// Legacy completions logprobs: tokens, token_logprobs, top_logprobs, text_offset. `text` is the text
// the tokens make (echoed prompt + completion): each token's offset is where its bytes start in it,
// counted in code points from offset0 (Python string indices, as OpenAI and vLLM report them; a
// token starting inside a character gets that character's index); a token absent from the text
// (a special token the tokenizer added, or one cut by a stop string) takes the current position.
// top_logprobs holds the token itself too (vLLM's rule), so the top-1 check is always possible.
json completion_logprobs_json(const std::vector<LogprobEntry>& lps, std::string_view text, size_t offset0 = 0);

json chat_response(const std::string& id, int64_t created, const std::string& model,
                   const std::vector<ChoiceResult>& choices, const Usage& usage, bool want_logprobs);
json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::vector<ChoiceResult>& choices, const Usage& usage, bool want_logprobs);

// One streamed chunk (object chat.completion.chunk) with a single choice delta.
json chat_chunk(const std::string& id, int64_t created, const std::string& model, int index, const json& delta,
                const json& logprobs, const json& finish_reason, bool include_usage);
json completion_chunk(const std::string& id, int64_t created, const std::string& model, int index,
                      const std::string& text, const json& logprobs, const json& finish_reason, bool include_usage);
// The final usage chunk: choices [] and usage.
json usage_chunk(const std::string& id, int64_t created, const std::string& model, const char* object,
                 const Usage& usage);
json tool_call_delta(int index, const ToolCall& c);

json embeddings_response(const std::string& model, const std::vector<std::vector<float>>& vectors, bool base64,
                         int prompt_tokens);
// The base model, then each LoRA adapter (name, path) as vLLM lists them: "parent" is the base's
// id, "root" the adapter's path.
json models_response(const std::string& model, int64_t created, int ctx,
                     const std::vector<std::pair<std::string, std::string>>& adapters = {});

// ---- SSE ----------------------------------------------------------------------------------------

std::string sse_event(const json& j);  // "data: {...}\n\n"
std::string sse_done();                // "data: [DONE]\n\n"
std::string sse_error(const ApiError& e);

// ---- helpers ------------------------------------------------------------------------------------

std::string random_id(const char* prefix);  // prefix + 24 random alphanumerics
bool constant_time_equal(std::string_view a, std::string_view b);
// Bearer token of an Authorization header value, or empty.
std::string bearer_token(std::string_view header);

}  // namespace todae::serve
