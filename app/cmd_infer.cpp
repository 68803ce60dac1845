// `todae generate`, `todae chat`, `todae convert`, `todae quantize`: running a model and moving it
// between formats (see src/infer/infer.h).
//
//   todae generate --model PATH [--lora DIR[:scale]]... --prompt TEXT [--max-tokens N] [--threads N] [sampling] [--stats]
//   todae chat     --model PATH [--lora DIR[:scale]]...   (REPL: /reset, /system TEXT, /save FILE, /exit)
//   todae convert  --input PATH --output OUT [--type f32|f16|bf16|q8_0|q4_0]
//   todae quantize --input PATH --output OUT.gguf --type q8_0|q4_0
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "base/base.h"
#include "base/energy.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"
#include "tensor/tensor.h"
#include "text/jinja.h"

namespace todae::cli {

namespace {

using ojson = nlohmann::ordered_json;

struct SamplingArgs {
  float temperature = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  float frequency_penalty = 0, presence_penalty = 0;
  int top_k = 40;
  long long seed = -1;
  bool greedy = false;

  void add(CLI::App* p) {
    p->add_option("--temperature,--temp", temperature, "Sampling temperature (0: greedy)")->capture_default_str();
    p->add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)")->capture_default_str();
    p->add_option("--top-p", top_p, "Nucleus sampling: smallest set with this probability (1: off)")->capture_default_str();
    p->add_option("--min-p", min_p, "Drop tokens less likely than min-p × the best one (0: off)")->capture_default_str();
    p->add_option("--repeat-penalty", repeat_penalty, "Penalty on the last 64 tokens (1: off)")->capture_default_str();
    p->add_option("--frequency-penalty", frequency_penalty, "OpenAI frequency penalty")->capture_default_str();
    p->add_option("--presence-penalty", presence_penalty, "OpenAI presence penalty")->capture_default_str();
    p->add_option("--seed", seed, "Random seed (same seed, same output)");
    p->add_flag("--greedy", greedy, "Always take the most likely token (= --temperature 0)");
  }
  SamplingParams params() const {
    SamplingParams s;
    s.temperature = greedy ? 0.0f : temperature;
    s.top_k = top_k;
    s.top_p = top_p;
    s.min_p = min_p;
    s.repetition_penalty = repeat_penalty;
    s.frequency_penalty = frequency_penalty;
    s.presence_penalty = presence_penalty;
    s.seed = seed >= 0 ? uint64_t(seed) : std::random_device{}();
    return s;
  }
};

struct ModelArgs {
  std::string model, type, kv_type = "f16";
  int threads = 0, ctx = 0;
  std::vector<std::string> loras;

  void add(CLI::App* p) {
    p->add_option("--model,-m", model, "Run/checkpoint folder, Hugging Face folder or .gguf file")->required();
    p->add_option("--threads,-t", threads, "Threads (default: all cores)");
    p->add_option("--ctx", ctx, "Context length (default: the model's, at most 4096)");
    p->add_option("--type", type, "Convert the weights at load time: f32|f16|bf16|q8_0|q4_0");
    p->add_option("--kv-type", kv_type, "KV cache type: f16|f32|q8_0")->capture_default_str();
    p->add_option("--lora", loras,
                  "LoRA adapter, applied unmerged: a PEFT folder or a GGUF LoRA file, optionally with a "
                  "multiplier (DIR:0.5). Repeatable: several adapters add up, as PEFT's active adapters do");
  }
  WType parse_type(const std::string& s, const char* what) const {
    WType t;
    if (!parse_wtype(s.c_str(), &t)) fail(what, " '", s, "' is not one of f32, f16, bf16, q8_0, q4_0");
    return t;
  }
  InferModel load(int min_ctx = 0) const {
    if (threads > 0) set_threads(threads);
    LoadOptions lo;
    if (!type.empty()) lo.weight_type = parse_type(type, "--type");
    if (ctx > 0) lo.max_context = std::max(ctx, min_ctx);
    return load_model(model, lo);
  }
  KVCache cache(const InferModel& m, int want) const {
    int n = ctx > 0 ? ctx : std::min(m.rope_positions, std::max(4096, want));
    n = std::min(n, m.rope_positions);
    return make_kv_cache(m, n, 1, parse_type(kv_type, "--kv-type"));
  }
};

// ---- generate -------------------------------------------------------------------------------------

struct GenerateArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string prompt, prompt_file;
  std::vector<std::string> stop;
  int max_tokens = 128, random_prompt = 0;
  bool stats = false, chat = false, ignore_eos = false, ids = false;
};

void run_generate(GenerateArgs& a) {
  if (a.max_tokens < 0) fail("--max-tokens must be >= 0");
  InferModel m = a.model.load();
  const int adapter = add_adapters(m, a.model.loras);
  if (!m.has_tokenizer) fail(a.model.model, ": has no tokenizer (tokenizer.json), so it cannot read a prompt");
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) text = read_file(a.prompt_file);
  std::vector<int32_t> ids;
  if (a.random_prompt > 0) {
    std::mt19937 rng(1234);
    for (int i = 0; i < a.random_prompt; i++) ids.push_back(int32_t(rng() % uint32_t(m.tokenizer.vocab_size())));
  } else {
    if (a.chat) {
      if (m.chat_template.empty()) fail(a.model.model, ": has no chat template; drop --chat");
      ojson msgs = ojson::array({{{"role", "user"}, {"content", text}}});
      text = apply_chat_template(m.chat_template, msgs, nullptr, true,
                                 {{"bos_token", m.bos_token}, {"eos_token", m.eos_token}});
    }
    if (text.empty()) fail("the prompt is empty: give --prompt TEXT or --prompt-file FILE");
    EncodeOptions eo;
    eo.add_special_tokens = !a.chat;  // a rendered chat template already holds its special tokens
    ids = encode(m.tokenizer, text, eo);
  }
  KVCache cache = a.model.cache(m, int(ids.size()) + a.max_tokens + 1);
  GenerateOptions go;
  go.max_tokens = a.max_tokens;
  go.stop = a.stop;
  go.sampling = a.sampling.params();
  go.ignore_eos = a.ignore_eos;
  go.adapter = adapter;
  go.skip_special = false;  // a raw continuation shows every token, as llama.cpp does
  EnergyMeter energy;
  std::vector<int32_t> out_ids;
  GenerateStats st = generate(
      m, cache, 0, ids, go,
      [&](std::string_view piece) {
        if (!a.ids) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return true;
      },
      [&](const TokenLogprob& lp) { out_ids.push_back(lp.id); });
  if (a.ids) {
    for (size_t i = 0; i < out_ids.size(); i++) std::printf("%s%d", i ? " " : "", out_ids[i]);
  }
  std::printf("\n");
  std::fflush(stdout);
  if (a.stats) {
    const double joules = energy.joules();
    const int tokens = st.prompt_tokens + st.decode_tokens;
    // Decode rate counts the forward passes after the first token (llama-bench's tg convention).
    const double decode_rate = st.decode_tokens > 1 && st.decode_seconds > 0 ? (st.decode_tokens - 1) / st.decode_seconds : 0;
    std::fprintf(stderr,
                 "prompt_tokens=%d prompt_tokens_per_s=%.1f decode_tokens=%d decode_tokens_per_s=%.1f "
                 "ttft_ms=%.1f peak_rss_mb=%.1f joules_per_token=%.4f energy=%s weights=%s kv=%s threads=%d\n",
                 st.prompt_tokens, st.prompt_seconds > 0 ? st.prompt_tokens / st.prompt_seconds : 0.0,
                 st.decode_tokens, decode_rate, st.ttft_seconds * 1000, peak_rss_mb(),
                 tokens ? joules / tokens : 0.0, energy.label(), wtype_name(m.weight_type),
                 wtype_name(cache.type), get_threads());
  }
}

// ---- chat -----------------------------------------------------------------------------------------

// Line editing in the terminal's own (cooked) mode: IUTF8 makes backspace erase a whole Korean
// syllable instead of one byte of it.
struct Utf8Terminal {
  bool changed = false;
  termios saved{};
  Utf8Terminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) != 0) return;
    termios t = saved;
    t.c_iflag |= IUTF8;
    changed = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  ~Utf8Terminal() {
    if (changed) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  }
};

struct ChatArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string system;
  int max_tokens = 512;
};

// A plain transcript format for models without a chat template.
std::string plain_template() {
  return "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
         "{% if add_generation_prompt %}assistant:{% endif %}";
}

void run_chat(ChatArgs& a) {
  InferModel m = a.model.load();
  const int adapter = add_adapters(m, a.model.loras);
  if (!m.has_tokenizer) fail(a.model.model, ": has no tokenizer (tokenizer.json)");
  const bool interactive = isatty(STDIN_FILENO);
  const std::string tmpl_text = m.chat_template.empty() ? plain_template() : m.chat_template;
  JinjaTemplate tmpl = JinjaTemplate::parse(tmpl_text, m.path + ": chat_template");
  KVCache cache = a.model.cache(m, 4096);
  std::vector<int32_t> cached;  // the ids the cache holds, to reuse the common prefix next turn
  ojson history = ojson::array();
  std::string system = a.system;
  Utf8Terminal term;
  if (interactive)
    std::fprintf(stderr, "todae chat: %s%s%s (%s, ctx %d). /system TEXT, /reset, /save FILE, /exit\n",
                 m.path.c_str(), adapter ? " + LoRA " : "", adapter ? m.adapter_names[adapter - 1].c_str() : "",
                 wtype_name(m.weight_type), cache.ctx);
  std::string line;
  while (true) {
    if (interactive) std::fprintf(stderr, "\n> "), std::fflush(stderr);
    if (!std::getline(std::cin, line)) break;
    line = replace_invalid_utf8(line);
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history = ojson::array();
      std::fprintf(stderr, "(conversation cleared)\n");
      continue;
    }
    if (line.rfind("/system", 0) == 0) {
      system = line.size() > 8 ? line.substr(8) : "";
      std::fprintf(stderr, "(system prompt %s)\n", system.empty() ? "removed" : "set");
      continue;
    }
    if (line.rfind("/save", 0) == 0) {
      std::string file = line.size() > 6 ? line.substr(6) : "";
      if (file.empty()) {
        std::fprintf(stderr, "usage: /save FILE\n");
        continue;
      }
      ojson all = ojson::array();
      if (!system.empty()) all.push_back({{"role", "system"}, {"content", system}});
      for (const auto& h : history) all.push_back(h);
      try {
        write_file_atomic(file, ojson{{"model", m.path}, {"messages", all}}.dump(2) + "\n");
        std::fprintf(stderr, "(saved %zu messages to %s)\n", all.size(), file.c_str());
      } catch (const Error& e) {
        std::fprintf(stderr, "todae: error: %s\n", e.what());
      }
      continue;
    }
    if (line[0] == '/' && line.find(' ') == std::string::npos && line.size() < 12) {
      std::fprintf(stderr, "unknown command %s (commands: /system TEXT, /reset, /save FILE, /exit)\n", line.c_str());
      continue;
    }
    history.push_back({{"role", "user"}, {"content", line}});
    ojson msgs = ojson::array();
    if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
    for (const auto& h : history) msgs.push_back(h);
    std::string text = apply_chat_template(tmpl, msgs, nullptr, true,
                                           {{"bos_token", m.bos_token}, {"eos_token", m.eos_token}});
    std::vector<int32_t> ids = encode(m.tokenizer, text);
    // Keep the cache's common prefix with the new conversation; feed only the rest.
    size_t keep = 0;
    while (keep < cached.size() && keep < ids.size() && cached[keep] == ids[keep]) keep++;
    if (keep == ids.size()) keep--;  // the last prompt token must be fed for its logits
    cache.length[0] = int(keep);
    cached.assign(ids.begin(), ids.begin() + keep);
    std::vector<int32_t> rest(ids.begin() + keep, ids.end());
    if (int(ids.size()) + 1 >= cache.ctx) {
      std::fprintf(stderr, "(the conversation no longer fits the context of %d tokens; /reset to start over)\n", cache.ctx);
      history.erase(history.end() - 1);
      continue;
    }
    GenerateOptions go;
    go.max_tokens = std::min(a.max_tokens, cache.ctx - int(ids.size()) - 1);
    go.sampling = a.sampling.params();
    go.adapter = adapter;
    std::string answer;
    std::vector<int32_t> gen;
    generate(
        m, cache, 0, rest, go,
        [&](std::string_view piece) {
          answer += piece;
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return true;
        },
        [&](const TokenLogprob& lp) { gen.push_back(lp.id); });
    std::printf("\n");
    std::fflush(stdout);
    // The cache holds a prefix of prompt + answer (the last sampled token is not fed back).
    cached.insert(cached.end(), rest.begin(), rest.end());
    cached.insert(cached.end(), gen.begin(), gen.end());
    cached.resize(std::min<size_t>(cached.size(), size_t(cache.length[0])));
    history.push_back({{"role", "assistant"}, {"content", answer}});
  }
}

// ---- convert / quantize ---------------------------------------------------------------------------

struct ConvertArgs {
  std::string input, output, type;
  int threads = 0;
};

void run_convert(ConvertArgs& a, bool quantize) {
  if (quantize && a.type.empty()) fail("todae quantize needs --type q8_0|q4_0|f16|bf16|f32");
  if (a.threads > 0) set_threads(a.threads);
  auto t0 = std::chrono::steady_clock::now();
  InferModel m = load_model(a.input);
  WType t = m.weight_type;
  if (!a.type.empty() && !parse_wtype(a.type.c_str(), &t))
    fail("--type '", a.type, "' is not one of f32, f16, bf16, q8_0, q4_0");
  save_model(m, a.output, t);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // the bytes actually written (the GGUF file, or the folder's weight files)
  const bool gguf = !is_directory(a.output);
  uint64_t bytes = 0;
  if (gguf) bytes = file_size(a.output);
  else
    for (const std::string& f : list_input_files({a.output}))
      if (f.find(".safetensors") != std::string::npos) bytes += file_size(f);
  std::fprintf(stderr, "wrote %s (%s, %.1f MB, weights in %s) in %.1f s\n", a.output.c_str(),
               gguf ? "GGUF" : "Hugging Face folder", double(bytes) / 1e6, wtype_name(t), s);
}

void add_commands(CLI::App& app) {
  {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* p = app.add_subcommand("generate", "Continue a prompt with a model, streaming the text");
    a->model.add(p);
    a->sampling.add(p);
    p->add_option("--prompt,-p", a->prompt, "Text to continue");
    p->add_option("--prompt-file", a->prompt_file, "Read the prompt from a file");
    p->add_option("--max-tokens,-n", a->max_tokens, "Tokens to generate at most")->capture_default_str();
    p->add_option("--stop", a->stop, "Stop before this string (repeatable)");
    p->add_flag("--chat", a->chat, "Wrap the prompt as a user message in the model's chat template");
    p->add_flag("--stats", a->stats, "One line of speed, memory and energy figures on stderr");
    p->add_flag("--ids", a->ids, "Print the generated token ids instead of the text");
    p->add_flag("--ignore-eos", a->ignore_eos, "Keep generating past end-of-text tokens (benchmarks)");
    p->add_option("--random-prompt", a->random_prompt, "Use N random token ids as the prompt (benchmarks)");
    p->callback([a] { run_generate(*a); });
  }
  {
    auto a = std::make_shared<ChatArgs>();
    CLI::App* p = app.add_subcommand("chat", "Chat with a model in the terminal (its chat template, history kept)");
    a->model.add(p);
    a->sampling.add(p);
    p->add_option("--system", a->system, "System prompt");
    p->add_option("--max-tokens,-n", a->max_tokens, "Tokens per answer at most")->capture_default_str();
    p->callback([a] { run_chat(*a); });
  }
  {
    auto a = std::make_shared<ConvertArgs>();
    CLI::App* p = app.add_subcommand("convert", "Convert a model between formats (OUT.gguf: GGUF, else a Hugging Face folder)");
    p->add_option("--input,-i", a->input, "Run/checkpoint folder, Hugging Face folder or .gguf file")->required();
    p->add_option("--output,-o", a->output, "OUT.gguf or a folder")->required();
    p->add_option("--type", a->type, "Weight type: f32|f16|bf16|q8_0|q4_0 (default: keep)");
    p->add_option("--threads,-t", a->threads, "Threads");
    p->callback([a] { run_convert(*a, false); });
  }
  {
    auto a = std::make_shared<ConvertArgs>();
    CLI::App* p = app.add_subcommand("quantize", "Write a model with its weights in a smaller type (= convert --type)");
    p->add_option("--input,-i", a->input, "Run/checkpoint folder, Hugging Face folder or .gguf file")->required();
    p->add_option("--output,-o", a->output, "OUT.gguf (or a folder for f16/bf16)")->required();
    p->add_option("--type", a->type, "q8_0|q4_0|f16|bf16|f32")->required();
    p->add_option("--threads,-t", a->threads, "Threads");
    p->callback([a] { run_convert(*a, true); });
  }
}

CommandRegistrar registrar(40, add_commands);

}  // namespace

}  // namespace todae::cli
