// Any bytes as a .safetensors file: a clean todae::Error or tensors whose every byte can be read.
#include <cstdint>
#include <string_view>
#include <vector>

#include "formats/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes on the heap, so ASan flags any read past the end.
  std::vector<char> buf(data, data + size);
  try {
    auto f = todae::parse_safetensors(std::string_view(buf.data(), buf.size()), "fuzz.safetensors");
    uint64_t sum = 0;
    for (const auto& t : f->tensors) {
      std::string_view b = f->bytes(t);
      for (char c : b) sum += static_cast<unsigned char>(c);
      if ((t.dtype == todae::DType::F32 || t.dtype == todae::DType::F16 || t.dtype == todae::DType::BF16) &&
          t.numel() <= (1u << 20)) {
        std::vector<float> v(t.numel());
        f->read_f32(t.name, v, t.shape);
      }
    }
    if (sum == 1) return 0;  // keep the reads
  } catch (const todae::Error&) {
  }
  return 0;
}
