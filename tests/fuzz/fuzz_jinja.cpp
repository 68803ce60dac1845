// Arbitrary bytes as a chat template: parse + render against a small fixed context must end in
// output or a todae::Error — never a crash, a hang, unbounded memory or a stack overflow. The
// bounds are tightened so that loops like range(10**9) or string doubling stop quickly.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/base.h"
#include "text/jinja.h"

static const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "안녕하세요 <think>x</think>"},
      {"role": "assistant", "content": null, "reasoning_content": "r",
       "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
      {"role": "tool", "content": "{\"ok\": true}"},
      {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "10": 1}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "n": 3, "x": 1.5
  })");
  return ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view tmpl(reinterpret_cast<const char*>(data), size);
  todae::JinjaOptions opt;
  opt.max_output_bytes = 1 << 20;
  opt.max_steps = 200'000;
  opt.now_unix = 0;
  opt.utc = true;
  try {
    todae::JinjaTemplate t = todae::JinjaTemplate::parse(tmpl, "fuzz");
    std::string out = t.render(context(), opt);
    if (out.size() > opt.max_output_bytes) __builtin_trap();
  } catch (const todae::Error&) {
  }
  return 0;
}
