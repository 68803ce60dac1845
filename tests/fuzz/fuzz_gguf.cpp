// Any bytes as a .gguf file: a clean todae::Error, or metadata and tensors whose every byte can be read.
#include <cstdint>
#include <string_view>
#include <vector>

#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes on the heap, so ASan flags any read past the end.
  std::vector<char> buf(data, data + size);
  try {
    auto f = todae::parse_gguf(std::string_view(buf.data(), buf.size()), "fuzz.gguf");
    uint64_t sum = f->alignment;
    for (const auto& [key, v] : f->metadata) {
      sum += key.size() + v.size();
      for (const auto& s : v.strings) sum += s.size();
      try {  // the typed getters on whatever is there
        if (v.type == todae::GgufValueType::STRING) sum += f->get_string(key).size();
        if (v.type != todae::GgufValueType::ARRAY && v.type != todae::GgufValueType::STRING &&
            v.type != todae::GgufValueType::BOOL)
          sum += static_cast<uint64_t>(f->get_float(key) != 0) + static_cast<uint64_t>(f->get_int(key, 0));
      } catch (const todae::Error&) {
      }
    }
    for (const auto& t : f->tensors) {
      sum += t.numel();
      for (char c : f->bytes(t)) sum += static_cast<unsigned char>(c);
      if (f->find(t.name) == nullptr) __builtin_trap();
    }
    f->verify_checksums();
    if (sum == 1) return 0;  // keep the reads
  } catch (const todae::Error&) {
  }
  return 0;
}
