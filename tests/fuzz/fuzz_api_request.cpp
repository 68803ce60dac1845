// Any bytes as the body of POST /v1/chat/completions, /v1/completions and /v1/embeddings: a request,
// or an ApiError (what the server answers with 400/413/...). Nothing else may escape: any other
// exception would be a 500 for a malformed request. A chat request's output schema (response_format
// or a forced tool call) must compile or fail with a todae::Error.
#include <cstdint>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "infer/grammar.h"
#include "serve/api.h"

using namespace todae::serve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<char> buf(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  json body;
  try {
    body = parse_body(std::string_view(buf.data(), buf.size()));
  } catch (const ApiError& e) {
    (void)dump(error_json(e));
    return 0;
  }
  Limits lim;
  lim.vocab_size = 1000;
  try {
    GenRequest r = parse_chat_request(body, lim);
    json schema = output_schema(r);
    if (!schema.is_null()) {
      try {
        (void)todae::compile_json_schema(schema, "schema");
      } catch (const todae::Error&) {
      }
    }
    (void)dump(r.messages);
  } catch (const ApiError& e) {
    (void)dump(error_json(e));
  }
  try {
    (void)parse_completion_request(body, lim);
  } catch (const ApiError&) {
  }
  try {
    (void)parse_embedding_request(body, lim);
  } catch (const ApiError&) {
  }
  return 0;
}
