// LoRA adapters on disk and in a loaded model: PEFT folders (what Hugging Face PEFT, TRL and
// Unsloth write and read), GGUF LoRA files (what llama.cpp applies with --lora), the --lora
// arguments, and merging an adapter into its base for export. The in-memory adapter is
// model/lora.h's Lora; its tensor names are PEFT's without the "base_model.model." prefix.
//
// PEFT (peft/tuners/lora, peft/utils/save_and_load.py): adapter_config.json holds r, lora_alpha,
// use_rslora, target_modules, layers_to_transform, ...; adapter_model.safetensors holds
// "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" [r, in] and "...lora_B.weight"
// [out, r]. PEFT strips the adapter name (".default") from the keys when saving and puts it back
// when loading; files written by other tools sometimes keep it, so both spellings are read.
//
// GGUF LoRA (llama.cpp's convert_lora_to_gguf.py and src/llama-adapter.cpp): general.type
// "adapter", adapter.type "lora", adapter.lora.alpha (FLOAT32; llama.cpp scales by alpha / rank,
// or by 1 when alpha is 0), general.architecture equal to the base's; tensors
// "blk.N.attn_q.weight.lora_a" with GGUF dims [in, r] (= A [r, in] row-major) and ".lora_b" [r, out]
// (= B [out, r]). For architecture "llama" the base's q/k rows are stored in llama.cpp's
// interleaved RoPE order (see rows_to_gguf_llama), so lora_b of q and k gets the same row order:
// (P·W + P·B·A) = P·(W + B·A).
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "formats/formats.h"
#include "formats/gguf.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"
#include "text/pretokenize.h"

namespace todae {

namespace {

using json = nlohmann::json;

constexpr std::string_view kPeftPrefix = "base_model.model.";
// llama.cpp's tensor names of the seven targets, in LoraTarget order.
constexpr const char* kGgufTargets[kLoraTargets] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down"};

// PEFT's module key of a target: what target_modules entries are matched against.
std::string module_key(int layer, int t) {
  return cat("model.layers.", layer, ".", lora_target_module(t), ".", lora_target_name(t));
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// "123" → 123; anything else (sign, empty, overflow) → -1.
int parse_index(std::string_view s) {
  int v = -1;
  if (s.empty() || s.size() > 9) return -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : -1;
}

// ---- adapter_config.json ------------------------------------------------------------------------

// target_modules / exclude_modules as PEFT matches them: a string is a regular expression that must
// match the whole key (except "all-linear"); a list matches a key equal to an entry or ending in
// "." + entry.
struct ModuleMatcher {
  bool all_linear = false;
  bool is_regex = false;
  Regex regex;
  std::vector<std::string> names;

  bool matches(const std::string& key) const {
    if (all_linear) return true;
    if (is_regex) {
      std::vector<Span> spans;
      regex_find_all(regex, key, &spans);
      return !spans.empty() && spans[0].begin == 0 && spans[0].end == key.size();
    }
    for (const std::string& n : names)
      if (key == n || (key.size() > n.size() && ends_with(key, n) && key[key.size() - n.size() - 1] == '.'))
        return true;
    return false;
  }
};

ModuleMatcher module_matcher(const json& v, const std::string& where, bool allow_all_linear) {
  ModuleMatcher m;
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    std::string lower = s;
    for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (allow_all_linear && lower == "all-linear") {
      m.all_linear = true;
      return m;
    }
    compile_regex(s, where);  // errors point into the pattern as written
    m.is_regex = true;
    m.regex = compile_regex("\\A(?:" + s + ")\\z", where);
    return m;
  }
  if (!v.is_array()) fail(where, ": expected a list of module names or a string");
  for (const json& e : v) {
    if (!e.is_string() || e.get<std::string>().empty()) fail(where, ": every entry must be a non-empty module name");
    m.names.push_back(e.get<std::string>());
  }
  return m;
}

}  // namespace

PeftLoraConfig parse_peft_config(std::string_view text, const std::string& source, int num_layers) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(source, ": expected a JSON object");
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto where = [&](const char* k) { return cat(source, ": ", k); };
  auto unsupported = [&](const char* k, const std::string& what) {
    fail(source, ": ", k, ": ", what, " is not supported (todae applies plain LoRA: one rank and alpha, "
         "no biases, on q/k/v/o/gate/up/down)");
  };

  if (!j.contains("peft_type") || !j["peft_type"].is_string()) fail(where("peft_type"), ": missing (expected \"LORA\")");
  if (j["peft_type"] != "LORA")
    fail(where("peft_type"), ": \"", printable(j["peft_type"].get<std::string>()), "\" is not supported (todae reads LoRA adapters)");
  if (has("task_type")) {
    if (!j["task_type"].is_string()) fail(where("task_type"), ": expected a string");
    if (j["task_type"] != "CAUSAL_LM")
      fail(where("task_type"), ": \"", printable(j["task_type"].get<std::string>()),
           "\" is not supported (todae runs causal language models, CAUSAL_LM)");
  }

  // What PEFT can express and todae cannot apply: refused by name, never silently ignored.
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (has(k) && !(j[k].is_object() && j[k].empty())) unsupported(k, "a per-module rank or alpha");
  if (has("use_dora") && !(j["use_dora"].is_boolean() && !j["use_dora"])) unsupported("use_dora", "DoRA");
  if (has("use_qalora") && !(j["use_qalora"].is_boolean() && !j["use_qalora"])) unsupported("use_qalora", "QA-LoRA");
  if (has("lora_bias") && !(j["lora_bias"].is_boolean() && !j["lora_bias"])) unsupported("lora_bias", "a bias on lora_B");
  if (has("bias") && j["bias"] != "none") unsupported("bias", "training biases");
  if (has("fan_in_fan_out") && !(j["fan_in_fan_out"].is_boolean() && !j["fan_in_fan_out"]))
    unsupported("fan_in_fan_out", "transposed (Conv1D) weights");
  if (has("modules_to_save") && !(j["modules_to_save"].is_array() && j["modules_to_save"].empty()))
    unsupported("modules_to_save", "fully trained extra modules");
  for (const char* k : {"layer_replication", "trainable_token_indices", "alora_invocation_tokens"})
    if (has(k)) unsupported(k, "this option");
  if (has("target_parameters") && !(j["target_parameters"].is_array() && j["target_parameters"].empty()))
    unsupported("target_parameters", "adapters on parameters");
  if (has("layers_pattern")) {
    const json& p = j["layers_pattern"];
    bool layers = p == "layers" || (p.is_array() && p.size() == 1 && p[0] == "layers") || (p.is_array() && p.empty());
    if (!layers) fail(where("layers_pattern"), ": only \"layers\" is supported (the decoder layers of Llama and Qwen)");
  }

  PeftLoraConfig c;
  if (!j.contains("r") || !j["r"].is_number_integer()) fail(where("r"), ": missing or not an integer");
  const int64_t r = j["r"].get<int64_t>();
  if (r < 1 || r > (1 << 20)) fail(where("r"), ": ", r, " is not a usable rank (1 .. 1048576)");
  c.lora.rank = int(r);
  c.lora.alpha = 8;  // PEFT's default
  if (j.contains("lora_alpha")) {
    if (!j["lora_alpha"].is_number()) fail(where("lora_alpha"), ": expected a number");
    c.lora.alpha = float(j["lora_alpha"].get<double>());
    if (!std::isfinite(c.lora.alpha) || !(c.lora.alpha > 0))
      fail(where("lora_alpha"), ": ", j["lora_alpha"].dump(), " must be a positive number");
  }
  c.lora.rslora = false;
  if (has("use_rslora")) {
    if (!j["use_rslora"].is_boolean()) fail(where("use_rslora"), ": expected true or false");
    c.lora.rslora = j["use_rslora"].get<bool>();
  }
  if (has("base_model_name_or_path")) {
    if (!j["base_model_name_or_path"].is_string()) fail(where("base_model_name_or_path"), ": expected a string");
    c.base_model = j["base_model_name_or_path"].get<std::string>();
  }

  if (!has("target_modules")) fail(where("target_modules"), ": missing (which modules carry the adapter)");
  const ModuleMatcher targets = module_matcher(j["target_modules"], where("target_modules"), true);
  ModuleMatcher exclude;
  const bool has_exclude = has("exclude_modules");
  if (has_exclude) exclude = module_matcher(j["exclude_modules"], where("exclude_modules"), false);
  // The modules of a Llama-family model that are not among the seven targets.
  for (const char* other : {"lm_head", "model.embed_tokens", "model.norm"})
    if (!targets.all_linear && targets.matches(other) && !(has_exclude && exclude.matches(other)))
      fail(where("target_modules"), ": an adapter on ", other, " is not supported (todae adapts q/k/v/o/gate/up/down)");

  // layers_to_transform restricts list targets only (PEFT ignores it for a regular expression).
  std::vector<bool> layer_on(size_t(std::max(num_layers, 0)), true);
  if (has("layers_to_transform") && !targets.is_regex) {
    const json& lt = j["layers_to_transform"];
    std::vector<int64_t> idx;
    if (lt.is_number_integer()) idx.push_back(lt.get<int64_t>());
    else if (lt.is_array())
      for (const json& e : lt) {
        if (!e.is_number_integer()) fail(where("layers_to_transform"), ": expected layer numbers");
        idx.push_back(e.get<int64_t>());
      }
    else fail(where("layers_to_transform"), ": expected a layer number or a list of them");
    std::fill(layer_on.begin(), layer_on.end(), false);
    for (int64_t l : idx) {
      if (l < 0 || l >= num_layers)
        fail(where("layers_to_transform"), ": layer ", l, " does not exist (the base has ", num_layers, " layers)");
      layer_on[size_t(l)] = true;
    }
  }

  c.layer_targets.assign(layer_on.size(), 0);
  c.lora.targets = 0;
  for (int l = 0; l < num_layers; l++) {
    if (!layer_on[size_t(l)]) continue;
    for (int t = 0; t < kLoraTargets; t++) {
      const std::string key = module_key(l, t);
      if (targets.matches(key) && !(has_exclude && exclude.matches(key))) c.layer_targets[size_t(l)] |= 1u << t;
    }
    c.lora.targets |= c.layer_targets[size_t(l)];
  }
  if (c.lora.targets == 0)
    fail(where("target_modules"), ": matches none of the base's q/k/v/o/gate/up/down projections");
  return c;
}

std::string peft_config_json(const PeftLoraConfig& c) {
  // Which spelling of the targets: the module names when every adapted layer has the same ones
  // (with layers_to_transform when some layers have none), else every module key in full.
  uint32_t mask = 0;
  bool uniform = true, all_layers = true;
  for (uint32_t m : c.layer_targets) {
    if (m == 0) {
      all_layers = false;
      continue;
    }
    if (mask != 0 && m != mask) uniform = false;
    mask |= m;
  }
  if (mask == 0) fail("adapter_config.json: the adapter has no target module");
  json targets = json::array(), layers = nullptr;
  if (uniform) {
    for (const std::string& n : lora_target_names(mask)) targets.push_back(n);
    if (!all_layers) {
      layers = json::array();
      for (size_t l = 0; l < c.layer_targets.size(); l++)
        if (c.layer_targets[l]) layers.push_back(l);
    }
  } else {
    for (size_t l = 0; l < c.layer_targets.size(); l++)
      for (int t = 0; t < kLoraTargets; t++)
        if (c.layer_targets[l] & (1u << t)) targets.push_back(module_key(int(l), t));
  }
  const float a = c.lora.alpha;
  json alpha = (a == std::floor(a) && std::fabs(a) < 16777216.0f) ? json(int64_t(a)) : json(double(a));
  // PEFT's LoraConfig fields (json's keys sorted, as PEFT writes them); only fields every PEFT
  // release since rsLoRA (0.7) knows, so older releases load it too.
  json j = {
      {"alpha_pattern", json::object()},
      {"base_model_name_or_path", c.base_model.empty() ? json(nullptr) : json(c.base_model)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", layers},
      {"lora_alpha", alpha},
      {"lora_dropout", 0.0},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", c.lora.rank},
      {"rank_pattern", json::object()},
      {"revision", nullptr},
      {"target_modules", targets},
      {"task_type", "CAUSAL_LM"},
      {"use_rslora", c.lora.rslora},
  };
  return j.dump(2) + "\n";
}

namespace {

// ---- shared by both formats ---------------------------------------------------------------------

void check_scale(float scale, const std::string& path) {
  if (!std::isfinite(scale)) fail(path, ": the adapter's scale must be a finite number");
}

// The adapter's slots agree with the base's shapes (an adapter built in memory, before writing).
void check_against_base(const Lora& lora, const ModelConfig& base, const std::string& path) {
  if (int(lora.layers.size()) != base.num_hidden_layers)
    fail(path, ": the adapter has ", lora.layers.size(), " layers, the base ", base.num_hidden_layers);
  bool any = false;
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& s = lora.layers[size_t(l)][size_t(t)];
      if (!s.on) continue;
      any = true;
      int in, out;
      lora_target_shape(base, t, &in, &out);
      if (s.in != in || s.out != out)
        fail(path, ": layer ", l, " ", lora_target_name(t), " is [", s.out, ", ", s.in, "], the base's [", out, ", ", in, "]");
      if (s.a + size_t(lora.config.rank) * in > lora.weights.size || s.b + size_t(out) * lora.config.rank > lora.weights.size)
        fail(path, ": layer ", l, " ", lora_target_name(t), " lies outside the adapter's buffer");
    }
  if (!any) fail(path, ": the adapter has no target module");
}

std::vector<uint32_t> layer_masks(const Lora& lora) {
  std::vector<uint32_t> m(lora.layers.size(), 0);
  for (size_t l = 0; l < lora.layers.size(); l++)
    for (int t = 0; t < kLoraTargets; t++)
      if (lora.layers[l][size_t(t)].on) m[l] |= 1u << t;
  return m;
}

std::string file_magic(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) fail(path, ": cannot open: ", std::strerror(errno));
  char b[4] = {};
  size_t n = std::fread(b, 1, 4, fp);
  std::fclose(fp);
  return std::string(b, n);
}

// ---- PEFT folders -------------------------------------------------------------------------------

// A PEFT key → (layer, target, is_B); false when it is not one of ours.
bool parse_peft_key(std::string_view name, int* layer, int* target, bool* is_b) {
  if (starts_with(name, kPeftPrefix)) name.remove_prefix(kPeftPrefix.size());
  if (!starts_with(name, "model.layers.")) return false;
  name.remove_prefix(13);
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return false;
  *layer = parse_index(name.substr(0, dot));
  if (*layer < 0) return false;
  name.remove_prefix(dot + 1);
  *target = -1;
  for (int t = 0; t < kLoraTargets; t++) {
    const std::string mod = cat(lora_target_module(t), ".", lora_target_name(t), ".");
    if (starts_with(name, mod)) {
      *target = t;
      name.remove_prefix(mod.size());
      break;
    }
  }
  if (*target < 0) return false;
  if (starts_with(name, "lora_A.")) *is_b = false;
  else if (starts_with(name, "lora_B.")) *is_b = true;
  else return false;
  name.remove_prefix(7);
  // "weight", or "<adapter name>.weight" (".default" as PEFT names it in memory)
  if (name == "weight") return true;
  dot = name.find('.');
  return dot != std::string_view::npos && dot > 0 && name.substr(dot) == ".weight";
}

// An adapter of this configuration with exactly the slots of layer_targets (make_lora's layout
// for the union of targets; the slots of layers that lack a target are switched off and their
// floats stay zero: a few unused bytes, only for layers_to_transform-style adapters).
Lora make_lora_for(const ModelConfig& base, const LoraConfig& cfg, const std::vector<uint32_t>& layer_targets) {
  Lora lora = make_lora(base, cfg);
  auto wanted = [&](int l, int t) { return (layer_targets[size_t(l)] >> t) & 1u; };
  std::erase_if(lora.params, [&](const ParamInfo& p) {
    int l, t;
    bool is_b;
    return parse_peft_key(p.name, &l, &t, &is_b) && !wanted(l, t);
  });
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++)
      if (!wanted(l, t)) lora.layers[size_t(l)][size_t(t)].on = false;
  return lora;
}

Lora load_peft(const std::string& dir, const ModelConfig& base, float scale) {
  const std::string cfg_path = dir + "/adapter_config.json";
  const std::string st_path = dir + "/adapter_model.safetensors";
  if (!file_exists(cfg_path))
    fail(dir, ": no adapter_config.json (a PEFT adapter is a folder with adapter_config.json and adapter_model.safetensors)");
  const PeftLoraConfig pc = parse_peft_config(read_file(cfg_path), cfg_path, base.num_hidden_layers);
  if (!file_exists(st_path)) {
    if (file_exists(dir + "/adapter_model.bin"))
      fail(dir, ": adapter_model.bin is a PyTorch pickle, which todae does not read; save the adapter as "
                "adapter_model.safetensors (PEFT's default, safe_serialization=True)");
    fail(dir, ": no adapter_model.safetensors");
  }
  std::unique_ptr<SafetensorsFile> st = open_safetensors(st_path);
  const int r = pc.lora.rank;

  // Every tensor of the file is one of the adapter's, each expected one is there, every shape fits.
  struct Found {
    const TensorInfo* a = nullptr;
    const TensorInfo* b = nullptr;
  };
  std::vector<std::array<Found, kLoraTargets>> found(size_t(base.num_hidden_layers));
  for (const TensorInfo& t : st->tensors) {
    int layer, target;
    bool is_b;
    if (!parse_peft_key(t.name, &layer, &target, &is_b))
      fail(st_path, ": tensor '", printable(t.name), "' is not a lora_A/lora_B weight of a q/k/v/o/gate/up/down projection "
           "(todae applies only those)");
    if (layer >= base.num_hidden_layers)
      fail(st_path, ": tensor '", printable(t.name), "' is for layer ", layer, "; the base has ", base.num_hidden_layers, " layers");
    if (!(pc.layer_targets[size_t(layer)] & (1u << target)))
      fail(st_path, ": tensor '", printable(t.name), "': adapter_config.json does not target ", module_key(layer, target));
    const TensorInfo*& slot = is_b ? found[size_t(layer)][size_t(target)].b : found[size_t(layer)][size_t(target)].a;
    if (slot) fail(st_path, ": tensors '", slot->name, "' and '", printable(t.name), "' are the same weight");
    slot = &t;
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail(st_path, ": tensor '", printable(t.name), "' has dtype ", dtype_name(t.dtype), " (F32, F16 or BF16 expected)");
    int in, out;
    lora_target_shape(base, target, &in, &out);
    const int64_t want0 = is_b ? out : r, want1 = is_b ? r : in;
    if (t.shape.size() != 2 || t.shape[0] != want0 || t.shape[1] != want1) {
      std::string got = "[";
      for (size_t i = 0; i < t.shape.size(); i++) got += cat(i ? ", " : "", t.shape[i]);
      got += "]";
      const bool rank_differs = t.shape.size() == 2 && (is_b ? t.shape[0] == out : t.shape[1] == in);
      fail(st_path, ": tensor '", printable(t.name), "' has shape ", got, ", expected [", want0, ", ", want1, "]",
           rank_differs ? cat(" (rank ", is_b ? t.shape[1] : t.shape[0], ", but adapter_config.json says r = ", r, ")")
                        : cat(" (", is_b ? "[out, r]" : "[r, in]", " for the base's ", lora_target_name(target), ")"));
    }
  }
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      if (!(pc.layer_targets[size_t(l)] & (1u << t))) continue;
      const Found& f = found[size_t(l)][size_t(t)];
      if (!f.a || !f.b)
        fail(st_path, ": tensor '", kPeftPrefix, module_key(l, t), f.a ? ".lora_B" : ".lora_A",
             ".weight' is missing (adapter_config.json targets ", module_key(l, t), ")");
    }

  Lora lora = make_lora_for(base, pc.lora, pc.layer_targets);
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& s = lora.layers[size_t(l)][size_t(t)];
      if (!s.on) continue;
      const Found& f = found[size_t(l)][size_t(t)];
      st->read_f32(f.a->name, std::span<float>(lora.weights.data + s.a, size_t(r) * s.in));
      st->read_f32(f.b->name, std::span<float>(lora.weights.data + s.b, size_t(s.out) * r));
    }
  lora.scale = pc.lora.scale() * scale;
  lora.base_model = pc.base_model;
  return lora;
}

// ---- GGUF LoRA files ----------------------------------------------------------------------------

// "blk.N.attn_q.weight.lora_a" → (layer, target, is_b); false when it is not one of ours.
bool parse_gguf_key(std::string_view name, int* layer, int* target, bool* is_b) {
  if (!starts_with(name, "blk.")) return false;
  name.remove_prefix(4);
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return false;
  *layer = parse_index(name.substr(0, dot));
  if (*layer < 0) return false;
  name.remove_prefix(dot + 1);
  for (int t = 0; t < kLoraTargets; t++)
    for (int b = 0; b < 2; b++)
      if (name == cat(kGgufTargets[t], ".weight.lora_", b ? "b" : "a")) {
        *target = t, *is_b = b;
        return true;
      }
  return false;
}

// The row permutation of lora_b for target t in a "llama" GGUF: the head count, or 0.
int llama_heads(const ModelConfig& c, int t) {
  if (c.model_type() != "llama") return 0;
  return t == kLoraQ ? c.num_attention_heads : t == kLoraK ? c.num_key_value_heads : 0;
}

Lora load_gguf_lora(const std::string& path, const ModelConfig& base, float scale) {
  std::unique_ptr<GgufFile> f = open_gguf(path);
  const std::string type = f->get_string("general.type", "");
  if (type != "adapter")
    fail(path, ": general.type is '", printable(type), "', not 'adapter'",
         type == "model" || type.empty() ? " (a model file: give it to --model, not --lora)" : "");
  const std::string atype = f->get_string("adapter.type", "");
  if (atype != "lora") fail(path, ": adapter.type is '", printable(atype), "', not 'lora' (todae reads LoRA adapters)");
  const std::string arch = f->get_string("general.architecture", "");
  if (arch != base.model_type())
    fail(path, ": general.architecture: an adapter for '", printable(arch), "', but the base is '", base.model_type(), "'");

  struct Found {
    const GgufTensorInfo* a = nullptr;
    const GgufTensorInfo* b = nullptr;
  };
  std::vector<std::array<Found, kLoraTargets>> found(size_t(base.num_hidden_layers));
  std::vector<uint32_t> masks(size_t(base.num_hidden_layers), 0);
  int rank = 0;
  const GgufTensorInfo* rank_from = nullptr;
  for (const GgufTensorInfo& t : f->tensors) {
    int layer, target;
    bool is_b;
    if (!parse_gguf_key(t.name, &layer, &target, &is_b))
      fail(path, ": tensor '", printable(t.name), "' is not the lora_a/lora_b of attn_q/attn_k/attn_v/attn_output/"
           "ffn_gate/ffn_up/ffn_down (todae applies only those)");
    if (layer >= base.num_hidden_layers)
      fail(path, ": tensor '", t.name, "' is for layer ", layer, "; the base has ", base.num_hidden_layers, " layers");
    const GgufTensorInfo*& slot = is_b ? found[size_t(layer)][size_t(target)].b : found[size_t(layer)][size_t(target)].a;
    if (slot) fail(path, ": tensor '", t.name, "' appears twice");
    slot = &t;
    masks[size_t(layer)] |= 1u << target;
    WType wt;
    if (!wtype_from_ggml(t.type, &wt))
      fail(path, ": tensor '", t.name, "' has type ", ggml_type_name(t.type), " (F32, F16, BF16, Q8_0 or Q4_0 expected)");
    int in, out;
    lora_target_shape(base, target, &in, &out);
    if (t.dims.size() != 2) fail(path, ": tensor '", t.name, "' has ", t.dims.size(), " dimensions, expected 2");
    // GGUF order: lora_a [in, r], lora_b [r, out]
    const int64_t r = is_b ? t.dims[0] : t.dims[1];
    if (!rank_from) rank = int(std::min<int64_t>(r, 1 << 20)), rank_from = &t;
    if ((is_b ? t.dims[1] : t.dims[0]) != (is_b ? out : in) || r != rank)
      fail(path, ": tensor '", t.name, "' has shape [", t.dims[0], ", ", t.dims[1], "], expected [",
           is_b ? cat(rank, ", ", out) : cat(in, ", ", rank), "] (GGUF order; ",
           r != rank ? cat("rank ", r, ", but '", rank_from->name, "' has rank ", rank)
                     : cat(is_b ? "[r, out]" : "[in, r]", " for the base's ", kGgufTargets[target]), ")");
  }
  if (!rank_from) fail(path, ": the adapter has no tensors");
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const Found& fd = found[size_t(l)][size_t(t)];
      if (bool(fd.a) != bool(fd.b))
        fail(path, ": tensor 'blk.", l, ".", kGgufTargets[t], ".weight.lora_", fd.a ? "b" : "a", "' is missing (its pair is there)");
    }

  // llama.cpp scales by alpha / rank (by 1 when alpha is 0 or absent). todae's own files also keep
  // the alpha and rsLoRA flag they were trained with, used when they agree with adapter.lora.alpha.
  LoraConfig cfg;
  cfg.rank = rank;
  const GgufValue* av = f->find_value("adapter.lora.alpha");
  const float alpha = av ? float(f->get_float("adapter.lora.alpha")) : 0.0f;
  if (!std::isfinite(alpha) || alpha < 0) fail(path, ": adapter.lora.alpha must be a number >= 0, got ", alpha);
  cfg.alpha = alpha > 0 ? alpha : float(rank);
  cfg.rslora = false;
  if (f->find_value("todae.lora.alpha") && f->find_value("todae.lora.rslora")) {
    LoraConfig own = cfg;
    own.alpha = float(f->get_float("todae.lora.alpha"));
    own.rslora = f->get_bool("todae.lora.rslora");
    if (std::isfinite(own.alpha) && own.alpha > 0 && std::fabs(own.scale() - cfg.scale()) <= 1e-6f * cfg.scale()) cfg = own;
  }
  cfg.targets = 0;
  for (uint32_t m : masks) cfg.targets |= m;

  Lora lora = make_lora_for(base, cfg, masks);
  std::vector<float> tmp;
  for (int l = 0; l < base.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& s = lora.layers[size_t(l)][size_t(t)];
      if (!s.on) continue;
      const Found& fd = found[size_t(l)][size_t(t)];
      WType wa, wb;
      wtype_from_ggml(fd.a->type, &wa);
      wtype_from_ggml(fd.b->type, &wb);
      // rows of A [r, in] and B [out, r], each row one GGUF row
      const uint8_t* pa = f->data(*fd.a);
      const size_t rba = wtype_row_bytes(wa, s.in);
      for (int i = 0; i < rank; i++) dequantize_row(wa, pa + i * rba, lora.weights.data + s.a + size_t(i) * s.in, s.in);
      const uint8_t* pb = f->data(*fd.b);
      const size_t rbb = wtype_row_bytes(wb, rank);
      float* B = lora.weights.data + s.b;
      for (int o = 0; o < s.out; o++) dequantize_row(wb, pb + o * rbb, B + size_t(o) * rank, rank);
      if (const int heads = llama_heads(base, t)) {
        tmp.assign(B, B + size_t(s.out) * rank);
        rows_from_gguf_llama(reinterpret_cast<const uint8_t*>(tmp.data()), reinterpret_cast<uint8_t*>(B), heads,
                             base.head_dim, size_t(rank) * sizeof(float));
      }
    }
  lora.scale = cfg.scale() * scale;
  lora.base_model = f->get_string("todae.lora.base_model", "");
  return lora;
}

// The matrix of target t in a layer.
WMatrix InferLayer::* const kLayerMatrix[kLoraTargets] = {&InferLayer::q, &InferLayer::k, &InferLayer::v, &InferLayer::o,
                                                          &InferLayer::gate, &InferLayer::up, &InferLayer::down};

}  // namespace

// ---- the public functions -----------------------------------------------------------------------

void save_peft_adapter(const Lora& lora, const std::string& dir) {
  PeftLoraConfig pc;
  pc.lora = lora.config;
  pc.layer_targets = layer_masks(lora);
  pc.base_model = lora.base_model;
  const std::string config = peft_config_json(pc);
  const int r = lora.config.rank;
  std::vector<TensorRef> tensors;
  for (size_t l = 0; l < lora.layers.size(); l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& s = lora.layers[l][size_t(t)];
      if (!s.on) continue;
      if (s.a + size_t(r) * s.in > lora.weights.size || s.b + size_t(s.out) * r > lora.weights.size)
        fail(dir, ": layer ", l, " ", lora_target_name(t), " lies outside the adapter's buffer");
      const std::string key = cat(kPeftPrefix, module_key(int(l), t));
      tensors.push_back(f32_tensor(key + ".lora_A.weight", {r, s.in}, lora.weights.data + s.a));
      tensors.push_back(f32_tensor(key + ".lora_B.weight", {s.out, r}, lora.weights.data + s.b));
    }
  make_directories(dir);
  write_safetensors(dir + "/adapter_model.safetensors", tensors);
  // the config last: a folder with adapter_config.json holds a complete adapter
  write_file_atomic(dir + "/adapter_config.json", config);
}

void save_gguf_lora(const Lora& lora, const ModelConfig& base, const std::string& path) {
  check_against_base(lora, base, path);
  const LoraConfig& c = lora.config;
  const int r = c.rank;
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.push_back({"general.architecture", gguf_string(base.model_type())});
  kv.push_back({"general.type", gguf_string("adapter")});
  kv.push_back({"general.name", gguf_string("todae LoRA")});
  kv.push_back({"adapter.type", gguf_string("lora")});
  // llama.cpp's factor is alpha / rank: rsLoRA's alpha / sqrt(rank) is written as alpha · sqrt(rank)
  kv.push_back({"adapter.lora.alpha", gguf_f32(c.rslora ? c.alpha * std::sqrt(float(r)) : c.alpha)});
  kv.push_back({"todae.lora.alpha", gguf_f32(c.alpha)});
  kv.push_back({"todae.lora.rslora", gguf_bool(c.rslora)});
  if (!lora.base_model.empty()) kv.push_back({"todae.lora.base_model", gguf_string(lora.base_model)});

  std::vector<std::vector<float>> permuted;  // lora_b of q/k in llama row order, alive until written
  permuted.reserve(2 * lora.layers.size());
  std::vector<GgufTensorRef> tensors;
  for (size_t l = 0; l < lora.layers.size(); l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& s = lora.layers[l][size_t(t)];
      if (!s.on) continue;
      const std::string name = cat("blk.", l, ".", kGgufTargets[t], ".weight.lora_");
      const float* A = lora.weights.data + s.a;
      const float* B = lora.weights.data + s.b;
      const size_t nb = size_t(s.out) * r;
      if (const int heads = llama_heads(base, t)) {
        permuted.emplace_back(nb);
        rows_to_gguf_llama(reinterpret_cast<const uint8_t*>(B), reinterpret_cast<uint8_t*>(permuted.back().data()),
                           heads, base.head_dim, size_t(r) * sizeof(float));
        B = permuted.back().data();
      }
      tensors.push_back({name + "a", GgmlType::F32, {s.in, r}, A, uint64_t(r) * s.in * sizeof(float)});
      tensors.push_back({name + "b", GgmlType::F32, {r, s.out}, B, nb * sizeof(float)});
    }
  write_gguf(path, kv, tensors);
}

Lora load_lora(const std::string& path, const ModelConfig& base, float scale) {
  if (path.empty()) fail("--lora: no adapter given (a PEFT folder or a GGUF LoRA file)");
  check_scale(scale, path);
  if (is_directory(path)) return load_peft(path, base, scale);
  if (!file_exists(path)) fail(path, ": no such file or folder");
  if (file_magic(path) == "GGUF") return load_gguf_lora(path, base, scale);
  // a file of a PEFT folder stands for its folder
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    if (path == f || ends_with(path, std::string("/") + f)) {
      const size_t slash = path.find_last_of('/');
      return load_peft(slash == std::string::npos ? "." : path.substr(0, slash), base, scale);
    }
  fail(path, ": not a LoRA adapter (give a PEFT folder with adapter_config.json, or a GGUF LoRA file)");
}

LoraArg parse_lora_arg(std::string_view arg) {
  const std::string quoted = cat("--lora '", printable(arg), "'");
  if (arg.empty()) fail("--lora: empty (DIR, DIR:SCALE, NAME=DIR or NAME=DIR:SCALE)");
  LoraArg out;
  std::string_view rest = arg;
  // NAME=: everything before the first '=', unless the whole argument names an existing path
  const size_t eq = arg.find('=');
  if (eq != std::string_view::npos && !file_exists(std::string(arg)) && !is_directory(std::string(arg))) {
    out.name = std::string(arg.substr(0, eq));
    rest = arg.substr(eq + 1);
    if (out.name.empty()) fail(quoted, ": empty adapter name before '='");
    for (unsigned char ch : out.name)
      if (ch <= ' ' || ch == 0x7f) fail(quoted, ": the adapter name may not contain spaces or control characters");
  }
  // :SCALE: a ':' followed by a number (a path may contain ':' otherwise)
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos) {
    const std::string_view num = rest.substr(colon + 1);
    float v = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    const bool is_number = !num.empty() && ec == std::errc() && p == num.data() + num.size();
    const std::string whole(rest);
    if (is_number && !(file_exists(whole) || is_directory(whole))) {
      if (!std::isfinite(v)) fail(quoted, ": the scale must be a finite number");
      out.scale = v;
      rest = rest.substr(0, colon);
    } else if (num.empty() && !(file_exists(whole) || is_directory(whole))) {
      fail(quoted, ": ':' with no scale after it (DIR:0.5)");
    }
  }
  if (rest.empty()) fail(quoted, ": no adapter path");
  out.path = std::string(rest);
  if (out.name.empty()) {
    std::string_view p = rest;
    while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
    const size_t slash = p.find_last_of('/');
    if (slash != std::string_view::npos && slash + 1 < p.size()) p = p.substr(slash + 1);
    if (ends_with(p, ".gguf") && p.size() > 5) p.remove_suffix(5);
    out.name = std::string(p);
  }
  return out;
}

int add_adapter(InferModel& m, const LoraArg& arg) {
  if (arg.name.empty()) fail("--lora ", arg.path, ": the adapter needs a name");
  for (const std::string& n : m.adapter_names)
    if (n == arg.name)
      fail("--lora ", arg.path, ": an adapter named '", arg.name, "' is already loaded (give another one with NAME=", arg.path, ")");
  if (m.adapters.size() >= 65535) fail("--lora ", arg.path, ": at most 65535 adapters can be loaded");
  m.adapters.push_back(std::make_shared<const Lora>(load_lora(arg.path, m.config, arg.scale)));
  m.adapter_names.push_back(arg.name);
  return int(m.adapters.size());
}

int add_adapters(InferModel& m, const std::vector<std::string>& lora_args) {
  if (lora_args.empty()) return 0;
  if (lora_args.size() == 1) return add_adapter(m, parse_lora_arg(lora_args[0]));
  std::vector<Lora> each;
  std::string name;
  for (const std::string& s : lora_args) {
    const LoraArg a = parse_lora_arg(s);
    each.push_back(load_lora(a.path, m.config, a.scale));
    name += (name.empty() ? "" : "+") + a.name;
  }
  std::vector<const Lora*> ptrs;
  for (const Lora& l : each) ptrs.push_back(&l);
  m.adapters.push_back(std::make_shared<const Lora>(stack_loras(ptrs, m.config)));
  m.adapter_names.push_back(name);
  return int(m.adapters.size());
}

void merge_lora(InferModel& m, const Lora& lora) {
  check_against_base(lora, m.config, "merge");
  // each adapted matrix becomes an owned f32 copy (any type loads), then W += scale·B·A; the slots
  // are independent, so they are merged in parallel
  struct Job {
    int layer, target;
    float* w;
  };
  std::vector<Job> jobs;
  for (size_t l = 0; l < m.layers.size(); l++)
    for (int t = 0; t < kLoraTargets; t++) {
      if (!lora.has(int(l), t)) continue;
      const WMatrix& W = m.layers[l].*kLayerMatrix[t];
      const LoraSlot& s = lora.layers[l][size_t(t)];
      if (W.rows != s.out || W.cols != s.in)
        fail("merge: layer ", l, " ", lora_target_name(t), " of the model is [", W.rows, ", ", W.cols, "], the adapter's [",
             s.out, ", ", s.in, "]");
      auto buf = std::make_shared<FloatBuffer>(size_t(W.rows) * W.cols);
      jobs.push_back({int(l), t, buf->data});
      m.storage.push_back(buf);
    }
  parallel_for(jobs.size(), default_threads(), [&](size_t i) {
    const Job& j = jobs[i];
    const WMatrix& W = m.layers[size_t(j.layer)].*kLayerMatrix[j.target];
    for (int r = 0; r < W.rows; r++) dequantize_row(W.type, W.row(r), j.w + size_t(r) * W.cols, W.cols);
    lora_merge(j.w, lora, j.layer, j.target);
  });
  for (const Job& j : jobs) {
    WMatrix& W = m.layers[size_t(j.layer)].*kLayerMatrix[j.target];
    W.type = WType::F32;
    W.row_bytes = size_t(W.cols) * sizeof(float);
    W.data = j.w;
  }
}

}  // namespace todae
