// ModelConfig <-> Hugging Face config.json.
#include <nlohmann/json.hpp>

#include <cmath>

#include "model/model.h"

namespace todae {

namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& source;

  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

  int get_int(const char* key, int def, bool required, int min_value) const {
    if (!has(key)) {
      if (required) fail(source, ": missing field '", key, "'");
      return def;
    }
    const json& v = j.at(key);
    if (!v.is_number_integer()) fail(source, ": field '", key, "' must be an integer");
    long long x = v.get<long long>();
    if (x < min_value || x > (1ll << 30))
      fail(source, ": field '", key, "' is ", x, ", expected at least ", min_value);
    return static_cast<int>(x);
  }
  double get_number(const char* key, double def) const {
    if (!has(key)) return def;
    const json& v = j.at(key);
    if (!v.is_number()) fail(source, ": field '", key, "' must be a number");
    double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) fail(source, ": field '", key, "' must be positive, got ", x);
    return x;
  }
  bool get_bool(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j.at(key).is_boolean()) fail(source, ": field '", key, "' must be true or false");
    return j.at(key).get<bool>();
  }
  std::string get_string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j.at(key).is_string()) fail(source, ": field '", key, "' must be a string");
    return j.at(key).get<std::string>();
  }
  // bos/eos: an integer or a list of integers (Llama 3.1 lists several eos ids; we keep the first)
  int get_token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& v = j.at(key);
    if (v.is_array() && !v.empty()) {
      if (!v[0].is_number_integer()) fail(source, ": field '", key, "' must hold integers");
      return v[0].get<int>();
    }
    if (!v.is_number_integer()) fail(source, ": field '", key, "' must be an integer or a list of integers");
    return v.get<int>();
  }
};

}  // namespace

ModelConfig ModelConfig::from_json(std::string_view text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(source, ": expected a JSON object");
  Reader r{j, source};
  ModelConfig c;

  // architecture: "architectures": [...] first, else "model_type"
  if (r.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string())
      fail(source, ": field 'architectures' must be a non-empty list of strings");
    c.architecture = a[0].get<std::string>();
  } else {
    std::string mt = r.get_string("model_type", "llama");
    if (mt == "llama") c.architecture = "LlamaForCausalLM";
    else if (mt == "qwen3") c.architecture = "Qwen3ForCausalLM";
    else if (mt == "qwen2") c.architecture = "Qwen2ForCausalLM";
    else fail(source, ": field 'model_type' is '", mt, "'; supported: llama, qwen2, qwen3");
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "Qwen3ForCausalLM" &&
      c.architecture != "Qwen2ForCausalLM")
    fail(source, ": field 'architectures' is '", c.architecture,
         "'; supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");

  c.hidden_size = r.get_int("hidden_size", 0, true, 1);
  c.intermediate_size = r.get_int("intermediate_size", 0, true, 1);
  c.num_hidden_layers = r.get_int("num_hidden_layers", 0, true, 1);
  c.num_attention_heads = r.get_int("num_attention_heads", 0, true, 1);
  c.num_key_value_heads = r.get_int("num_key_value_heads", c.num_attention_heads, false, 1);
  c.head_dim = r.get_int("head_dim", 0, false, 2);
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads)
      fail(source, ": field 'hidden_size' (", c.hidden_size, ") is not a multiple of 'num_attention_heads' (",
           c.num_attention_heads, ") and there is no 'head_dim'");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.vocab_size = r.get_int("vocab_size", 0, true, 1);
  c.max_position_embeddings = r.get_int("max_position_embeddings", 2048, false, 1);
  c.rms_norm_eps = r.get_number("rms_norm_eps", 1e-6);
  c.rope_theta = r.get_number("rope_theta", 10000.0);
  c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
  c.bos_token_id = r.get_token_id("bos_token_id");
  c.eos_token_id = r.get_token_id("eos_token_id");

  if (r.has("rope_scaling")) {
    const json& s = j.at("rope_scaling");
    const std::string where = source + ": field 'rope_scaling'";
    if (!s.is_object()) fail(where, " must be null or an object");
    Reader rs{s, where};
    std::string type = rs.has("rope_type") ? rs.get_string("rope_type", "") : rs.get_string("type", "");
    if (type == "default" || type.empty()) {
      c.rope_scaling.kind = RopeScaling::none;
    } else {
      if (type == "linear") c.rope_scaling.kind = RopeScaling::linear;
      else if (type == "dynamic" || type == "ntk") c.rope_scaling.kind = RopeScaling::dynamic;
      else if (type == "llama3") c.rope_scaling.kind = RopeScaling::llama3;
      else fail(where, " has type '", type, "'; supported: linear, dynamic (NTK), llama3");
      if (!rs.has("factor")) fail(where, " needs a 'factor'");
      c.rope_scaling.factor = rs.get_number("factor", 1.0);
      if (c.rope_scaling.kind == RopeScaling::llama3) {
        c.rope_scaling.low_freq_factor = rs.get_number("low_freq_factor", 1.0);
        c.rope_scaling.high_freq_factor = rs.get_number("high_freq_factor", 4.0);
        c.rope_scaling.original_max_position_embeddings =
            rs.get_int("original_max_position_embeddings", 8192, false, 1);
      }
    }
  }

  // Things this implementation does not do: refuse them rather than silently compute another model.
  std::string act = r.get_string("hidden_act", "silu");
  if (act != "silu") fail(source, ": field 'hidden_act' is '", act, "'; only 'silu' (SwiGLU) is supported");
  // Qwen2 always has q/k/v biases (its config.json does not say so); Llama says attention_bias.
  c.attention_bias = c.architecture == "Qwen2ForCausalLM" || r.get_bool("attention_bias", false);
  if (c.attention_bias && c.architecture == "Qwen3ForCausalLM")
    fail(source, ": field 'attention_bias' is true; Qwen3 with attention biases is not supported");
  if (r.get_bool("mlp_bias", false)) fail(source, ": field 'mlp_bias' is true; biases are not supported");
  if (r.get_bool("use_sliding_window", false))
    fail(source, ": field 'use_sliding_window' is true; sliding-window attention is not supported");
  if (r.has("attention_dropout") &&
      (!j.at("attention_dropout").is_number() || j.at("attention_dropout").get<double>() != 0.0))
    fail(source, ": field 'attention_dropout' must be 0 (dropout is not supported)");
  c.validate(source);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::string file = is_directory(path) ? path + "/config.json" : path;
  return from_json(read_file(file), file);
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int v) {
    if (v <= 0) fail(source, ": field '", name, "' must be positive, got ", v);
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("vocab_size", vocab_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads % num_key_value_heads)
    fail(source, ": field 'num_attention_heads' (", num_attention_heads,
         ") must be a multiple of 'num_key_value_heads' (", num_key_value_heads, ")");
  if (head_dim <= 0 || head_dim % 2)
    fail(source, ": field 'head_dim' must be a positive even number (RoPE rotates pairs), got ", head_dim);
  if (!(rms_norm_eps > 0)) fail(source, ": field 'rms_norm_eps' must be positive");
  if (!(rope_theta > 0)) fail(source, ": field 'rope_theta' must be positive");
  if (rope_scaling.kind != RopeScaling::none && !(rope_scaling.factor >= 1.0))
    fail(source, ": field 'rope_scaling.factor' must be at least 1, got ", rope_scaling.factor);
  if (architecture != "LlamaForCausalLM" && architecture != "Qwen3ForCausalLM" && architecture != "Qwen2ForCausalLM")
    fail(source, ": field 'architectures' is '", architecture,
         "'; supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");
  // every buffer index must fit comfortably in the int dimensions the kernels take
  if (static_cast<double>(vocab_size) * hidden_size > 2e9 || static_cast<double>(intermediate_size) * 2 * hidden_size > 2e9)
    fail(source, ": matrices larger than 2^31 elements are not supported");
}

std::string ModelConfig::to_json() const {
  json j;
  j["architectures"] = {architecture};
  j["model_type"] = model_type();
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.kind == RopeScaling::none) {
    j["rope_scaling"] = nullptr;
  } else {
    const char* names[] = {"default", "linear", "dynamic", "llama3"};
    json s;
    s["rope_type"] = names[rope_scaling.kind];
    s["type"] = names[rope_scaling.kind];  // older transformers read "type"
    s["factor"] = rope_scaling.factor;
    if (rope_scaling.kind == RopeScaling::llama3) {
      s["low_freq_factor"] = rope_scaling.low_freq_factor;
      s["high_freq_factor"] = rope_scaling.high_freq_factor;
      s["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = s;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  if (architecture != "Qwen2ForCausalLM") j["attention_bias"] = attention_bias;
  j["attention_dropout"] = 0.0;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

size_t ModelConfig::num_parameters() const {
  const size_t C = hidden_size, F = intermediate_size, V = vocab_size, D = head_dim;
  size_t layer = C + static_cast<size_t>(qkv_dim()) * C + (qk_norm() ? 2 * D : 0) +
                 static_cast<size_t>(q_dim()) * C + C + 3 * F * C;
  return V * C + num_hidden_layers * layer + C + (tie_word_embeddings ? 0 : V * C);
}

double ModelConfig::flops_per_token(int T) const {
  const double C = hidden_size, F = intermediate_size, V = vocab_size;
  const double matmul = num_hidden_layers * (static_cast<double>(qkv_dim()) * C + q_dim() * C + 3 * F * C) + V * C;
  return 6 * matmul + 12.0 * num_hidden_layers * T * q_dim();
}

}  // namespace todae
