// Any bytes as a fine-tuning JSONL file through load_sft_jsonl_text (a fixed byte-level tokenizer
// with ChatML special tokens and a ChatML template with tools): examples or a todae::Error, never
// a crash. What comes back must hold the loader's promises (masks as long as the ids, nothing
// past max_length, no loss on the first token, a loss token in every example, a report that adds
// up), and both kinds of batches must carry every loss token exactly once. The input's length
// picks the options, so plain JSONL seeds cover them all.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/base.h"
#include "data/sft.h"

namespace {

const todae::Tokenizer& tokenizer() {
  static const todae::Tokenizer tok = [] {
    // GPT-2's byte alphabet, one token per byte (id = byte), two merges, three special tokens.
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool shown = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      uint32_t c = shown ? b : next++;
      std::string s;
      if (c < 0x80) {
        s += char(c);
      } else {
        s += char(0xC0 | (c >> 6));
        s += char(0x80 | (c & 0x3F));
      }
      vocab[s] = b;
    }
    vocab["he"] = 256;
    vocab["hel"] = 257;
    const char* special[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    nlohmann::ordered_json added = nlohmann::ordered_json::array();
    for (int i = 0; i < 3; ++i) {
      vocab[special[i]] = 258 + i;
      added.push_back({{"id", 258 + i}, {"content", special[i]}, {"special", true}});
    }
    nlohmann::ordered_json j = {
        {"version", "1.0"},
        {"added_tokens", added},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
        {"post_processor", nullptr},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::ordered_json::array({nlohmann::ordered_json::array({"h", "e"}),
                                                     nlohmann::ordered_json::array({"he", "l"})})}}}};
    return todae::load_tokenizer_json(j.dump(), "fuzz-tokenizer.json");
  }();
  return tok;
}

const char* kTemplate =
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n"
    "</tools><|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{%- for c in m.tool_calls %}\n<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const todae::Tokenizer& tok = tokenizer();  // outside the try: a bad fixture must not pass as an Error
  todae::SftOptions opt;
  opt.chat_template = kTemplate;
  opt.eos_token = "<|endoftext|>";
  opt.bos_token = "<|im_start|>";
  opt.loss_all = size & 1;
  opt.add_eos = size & 2;
  opt.max_length = 2 + int(size % 97);
  todae::SftReport rep;
  std::vector<todae::SftExample> ex;
  try {
    ex = todae::load_sft_jsonl_text(in, "fuzz.jsonl", tok, opt, &rep);
  } catch (const todae::Error&) {
    return 0;
  }
  int64_t tokens = 0, loss = 0;
  for (const auto& e : ex) {
    if (e.ids.size() != e.loss.size() || e.ids.size() > size_t(opt.max_length) || e.ids.size() < 2) __builtin_trap();
    if (e.loss[0] != 0) __builtin_trap();
    int64_t l = std::count(e.loss.begin(), e.loss.end(), uint8_t{1});
    if (l == 0) __builtin_trap();
    for (int32_t id : e.ids)
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    tokens += int64_t(e.ids.size());
    loss += l;
  }
  if (rep.examples != int64_t(ex.size()) || rep.tokens != tokens || rep.loss_tokens != loss) __builtin_trap();
  if (rep.dropped != int64_t(rep.notes.size()) || rep.examples + rep.dropped != rep.lines) __builtin_trap();
  std::vector<size_t> order(ex.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (i + size) % order.size();  // a rotation
  for (bool packed : {false, true}) {
    int batch_tokens = 1 + int(size % 300);
    int64_t got = 0;
    try {
      for (const auto& b : todae::make_sft_batches(ex, order, batch_tokens, opt.max_length, packed)) {
        if (b.B < 1 || b.T < 1 || b.T > opt.max_length || b.inputs.size() != size_t(b.B) * size_t(b.T)) __builtin_trap();
        if (b.B > 1 && int64_t(b.B) * b.T > batch_tokens) __builtin_trap();
        int64_t n = 0;
        for (int32_t t : b.targets) n += t >= 0;
        if (n != b.loss_tokens) __builtin_trap();
        for (const auto& d : b.docs) {
          int sum = 0;
          for (int len : d) sum += len;
          if (sum > b.T) __builtin_trap();
        }
        got += b.loss_tokens;
      }
    } catch (const todae::Error&) {
      __builtin_trap();  // the loader's examples always batch
    }
    if (got != loss) __builtin_trap();
  }
  return 0;
}
