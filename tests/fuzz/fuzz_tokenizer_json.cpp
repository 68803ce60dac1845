// Any bytes as tokenizer.json: either a clean todae::Error or a tokenizer that encodes and decodes.
#include <cstdint>
#include <string>

#include "base/base.h"
#include "text/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    todae::Tokenizer tok = todae::load_tokenizer_json(json, "fuzz.json");
    auto ids = todae::encode(tok, "hello 안녕하세요 123 \xFF <|end|>");
    todae::decode(tok, ids);
    todae::tokenizer_to_json(tok);
  } catch (const todae::Error&) {
  }
  return 0;
}
