// Any bytes as a .tiktoken rank file: a clean error or a usable tokenizer.
#include <cstdint>
#include <string>
#include <unistd.h>

#include "base/base.h"
#include "text/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string path = "/tmp/todae-fuzz-" + std::to_string(::getpid()) + ".tiktoken";
  todae::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    todae::Tokenizer tok = todae::load_tokenizer(path);
    todae::decode(tok, todae::encode(tok, "hello 안녕 \xFF"));
  } catch (const todae::Error&) {
  }
  return 0;
}
