// Any bytes as a PEFT adapter_config.json (the first byte picks the base's layer count, 1..8): a
// configuration or a clean todae::Error naming the field. A configuration that parses must write an
// adapter_config.json that reads back to the same adapter and the same text.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/base.h"
#include "infer/infer_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int layers = 1 + data[0] % 8;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  todae::PeftLoraConfig c;
  try {
    c = todae::parse_peft_config(text, "fuzz/adapter_config.json", layers);
  } catch (const todae::Error&) {
    return 0;
  }
  if (int(c.layer_targets.size()) != layers || c.lora.targets == 0 || c.lora.rank < 1 || !(c.lora.alpha > 0))
    __builtin_trap();
  const std::string once = todae::peft_config_json(c);
  todae::PeftLoraConfig again;
  try {
    again = todae::parse_peft_config(once, "round trip", layers);
  } catch (const todae::Error&) {
    __builtin_trap();  // our own output must load
  }
  if (again.layer_targets != c.layer_targets || again.lora.targets != c.lora.targets || again.lora.rank != c.lora.rank ||
      again.lora.alpha != c.lora.alpha || again.lora.rslora != c.lora.rslora || again.base_model != c.base_model)
    __builtin_trap();
  if (todae::peft_config_json(again) != once) __builtin_trap();
  return 0;
}
