// todae text: a Jinja2 template engine for chat templates (tokenizer_config.json "chat_template").
//
// Renders the templates of real models (Qwen3, Llama-3, Gemma-3, DeepSeek-V3, ...) and todae's own
// default template byte-identically to @huggingface/jinja (the renderer of transformers.js), which
// it follows in everything that shows in the output:
//   * the template's final "\n" is dropped; trim_blocks + lstrip_blocks are on (as in transformers);
//     {%- -%} {{- -}} {#- -#} strip JavaScript whitespace (\s: Unicode spaces, U+FEFF, ...);
//     {% generation %} / {% endgeneration %} tags are removed;
//   * values print as there: true/false, none and undefined print nothing, 1.0 prints "1.0",
//     lists and dicts print as JSON;
//   * tojson: Python json.dumps layout (", " and ": ", or "," with indent=N), keys in insertion
//     order, non-ASCII kept (ensure_ascii=false), floats with integer values print as ints;
//     input JSON objects list integer-like keys first, as JavaScript objects do.
// Semantics otherwise follow Python Jinja2 where the two differ and the reference ignores
// arguments: str.strip/lstrip/rstrip(chars) strip exactly `chars` (the reference strips all
// whitespace), % and // floor like Python, comparisons work on strings, == is deep equality,
// `x is number` is true for booleans, division by zero is an error. tojson(sort_keys=true) sorts by
// code point (the reference uses localeCompare).
//
// Errors (syntax, unknown filter/test, type errors) are todae::Error "SOURCE:LINE:COL: message";
// raise_exception(msg) throws todae::Error(msg) exactly. Rendering is bounded (steps, output size,
// nesting depth) so any template terminates with output or an Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace todae {

struct JinjaOptions {
  size_t max_output_bytes = size_t{64} << 20;  // bounds the output and every string built
  uint64_t max_steps = 100'000'000;            // evaluated nodes + loop iterations
  int max_depth = 400;                         // expression / macro call nesting
  // strftime_now(): seconds since the epoch to use (-1: the current time), in local time
  // unless utc. Supports %Y %m %d %b %B %H %M %% like the reference; others stay as written.
  int64_t now_unix = -1;
  bool utc = false;
};

struct JinjaProgram;

class JinjaTemplate {
 public:
  // Parses once; render() may then be called many times, from any thread.
  static JinjaTemplate parse(std::string_view tmpl, const std::string& source = "chat_template");
  std::string render(const nlohmann::ordered_json& context, const JinjaOptions& opt = {}) const;
  const std::string& source() const;

 private:
  std::shared_ptr<const JinjaProgram> prog_;
};

std::string render_jinja(std::string_view tmpl, const nlohmann::ordered_json& context,
                         const std::string& source = "chat_template", const JinjaOptions& opt = {});

// The context transformers builds: messages, tools (null when absent, as in transformers),
// add_generation_prompt, then every key of `extra` (bos_token, eos_token, enable_thinking, ...).
std::string apply_chat_template(const JinjaTemplate& tmpl, const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
                                const JinjaOptions& opt = {});
std::string apply_chat_template(std::string_view tmpl, const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
                                const JinjaOptions& opt = {});

}  // namespace todae
