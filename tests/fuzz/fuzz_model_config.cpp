// Any bytes as a config.json: a configuration or a clean todae::Error naming the field. A
// configuration that parses must write a config.json that reads back to the same text.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<char> buf(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  todae::ModelConfig c;
  try {
    c = todae::ModelConfig::from_json(std::string_view(buf.data(), buf.size()), "fuzz/config.json");
  } catch (const todae::Error&) {
    return 0;
  }
  const std::string once = c.to_json();
  todae::ModelConfig again;
  try {
    again = todae::ModelConfig::from_json(once, "round trip");
  } catch (const todae::Error&) {
    __builtin_trap();  // our own output must load
  }
  if (again.to_json() != once) __builtin_trap();
  (void)c.num_parameters();
  (void)c.flops_per_token(c.max_position_embeddings);
  return 0;
}
