// Loading a model for inference from a Hugging Face folder (todae run and checkpoint folders are
// such folders) or from a GGUF file (mapped: the matrices are used in place, not copied).
#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "formats/formats.h"
#include "formats/gguf.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"

namespace todae {

namespace {

using json = nlohmann::json;

// An owned, 64-byte aligned byte buffer kept alive by the model's storage list.
uint8_t* own_bytes(InferModel& m, size_t n) {
  auto buf = std::make_shared<Buffer<uint8_t>>(std::max<size_t>(n, 1));
  uint8_t* p = buf->data;
  m.storage.push_back(buf);
  return p;
}

float* own_floats(InferModel& m, size_t n) {
  return reinterpret_cast<float*>(own_bytes(m, n * sizeof(float)));
}

// f32 rows [rows, cols] → a WMatrix of type t in owned memory.
WMatrix matrix_from_f32(InferModel& m, const float* w, int rows, int cols, WType t,
                        const std::string& name) {
  if (wtype_is_block(t) && cols % kQuantBlock != 0)
    fail("cannot store tensor '", name, "' as ", wtype_name(t), ": its rows have ", cols,
         " elements, not a multiple of 32");
  WMatrix M;
  M.type = t;
  M.rows = rows;
  M.cols = cols;
  M.row_bytes = wtype_row_bytes(t, cols);
  uint8_t* out = own_bytes(m, M.row_bytes * size_t(rows));
  for (int r = 0; r < rows; r++) quantize_row(t, w + size_t(r) * cols, out + size_t(r) * M.row_bytes, cols);
  M.data = out;
  return M;
}

std::string read_file_prefix(const std::string& path, size_t n) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) fail(path, ": cannot open: ", std::strerror(errno));
  std::string s(n, '\0');
  s.resize(std::fread(s.data(), 1, n, fp));
  std::fclose(fp);
  return s;
}

std::string json_token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

// ---- shared by both formats ---------------------------------------------------------------------

void finish_model(InferModel& m, const LoadOptions& opt) {
  const ModelConfig& c = m.config;
  int n_pos = opt.max_context > 0 ? opt.max_context : c.max_position_embeddings;
  if (n_pos <= 0) n_pos = 2048;
  m.rope_positions = n_pos;
  m.rope_cos.assign(size_t(n_pos) * (c.head_dim / 2), 0.0f);
  m.rope_sin.assign(size_t(n_pos) * (c.head_dim / 2), 0.0f);
  rope_table(m.rope_cos.data(), m.rope_sin.data(), n_pos, c.head_dim, c.rope_theta, c.rope_scaling,
             c.max_position_embeddings, n_pos);

  // End-of-generation ids: the configured eos, the tokenizer's eos text, and the end-of-turn tokens
  // of the chat formats we know, when the vocabulary has them.
  auto add_stop = [&](int32_t id) {
    if (id >= 0 && id < c.vocab_size && std::find(m.stop_ids.begin(), m.stop_ids.end(), id) == m.stop_ids.end())
      m.stop_ids.push_back(id);
  };
  add_stop(c.eos_token_id);
  if (m.has_tokenizer) {
    if (!m.eos_token.empty()) add_stop(m.tokenizer.token_id(m.eos_token));
    for (const char* t : {"<|eos|>", "<|end|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>",
                          "<|endoftext|>", "<｜end▁of▁sentence｜>", "</s>"})
      add_stop(m.tokenizer.token_id(t));
    if (m.tokenizer.vocab_size() > c.vocab_size)
      fail(m.path, ": the tokenizer has ", m.tokenizer.vocab_size(), " tokens but the model only ",
           c.vocab_size, " embeddings");
  }

  // The most common matrix type names the model ("q4_0 model").
  int counts[8] = {};
  for (const InferLayer& L : m.layers)
    for (const LayerTensor& t : kLayerTensors)
      if (t.matrix) counts[int((L.*t.matrix).type)]++;
  m.weight_type = WType(std::max_element(counts, counts + 8) - counts);
}

void load_tokenizer_files(InferModel& m, const std::string& dir) {
  const std::string tj = dir + "/tokenizer.json";
  if (!file_exists(tj)) return;
  const std::string tc = dir + "/tokenizer_config.json";
  set_tokenizer_texts(m, read_file(tj), file_exists(tc) ? read_file(tc) : std::string(), tj, tc);
  const std::string ct = dir + "/chat_template.jinja";  // newer transformers keep it apart
  if (m.chat_template.empty() && file_exists(ct)) m.chat_template = read_file(ct);
}

void set_tokenizer_texts(InferModel& m, std::string tokenizer_json, std::string tokenizer_config_json,
                         const std::string& tj, const std::string& tc) {
  m.tokenizer_json = std::move(tokenizer_json);
  m.tokenizer = load_tokenizer_json(m.tokenizer_json, tj);
  m.has_tokenizer = true;
  if (!tokenizer_config_json.empty()) {
    m.tokenizer_config_json = std::move(tokenizer_config_json);
    json j;
    try {
      j = json::parse(m.tokenizer_config_json);
    } catch (const json::exception& e) {
      fail(tc, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(tc, ": expected a JSON object");
    if (j.contains("chat_template")) {
      const json& t = j["chat_template"];
      if (t.is_string()) m.chat_template = t.get<std::string>();
      else if (t.is_array())  // [{"name": "default", "template": ...}, ...]
        for (const json& e : t)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
            m.chat_template = e["template"].get<std::string>();
    }
    if (j.contains("bos_token")) m.bos_token = json_token_text(j["bos_token"]);
    if (j.contains("eos_token")) m.eos_token = json_token_text(j["eos_token"]);
  }
}

// ---- the tensors of a layer --------------------------------------------------------------------

const LayerTensor kLayerTensors[14] = {
    {"input_layernorm.weight", "attn_norm.weight", nullptr, &InferLayer::attn_norm, LayerTensor::kHidden, LayerTensor::kHidden, LayerTensor::kAlways, 0},
    {"self_attn.q_proj.weight", "attn_q.weight", &InferLayer::q, nullptr, LayerTensor::kQ, LayerTensor::kHidden, LayerTensor::kAlways, 1},
    {"self_attn.k_proj.weight", "attn_k.weight", &InferLayer::k, nullptr, LayerTensor::kKV, LayerTensor::kHidden, LayerTensor::kAlways, 2},
    {"self_attn.v_proj.weight", "attn_v.weight", &InferLayer::v, nullptr, LayerTensor::kKV, LayerTensor::kHidden, LayerTensor::kAlways, 0},
    {"self_attn.o_proj.weight", "attn_output.weight", &InferLayer::o, nullptr, LayerTensor::kHidden, LayerTensor::kQ, LayerTensor::kAlways, 0},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", nullptr, &InferLayer::q_norm, LayerTensor::kHeadDim, LayerTensor::kHeadDim, LayerTensor::kQkNorm, 0},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", nullptr, &InferLayer::k_norm, LayerTensor::kHeadDim, LayerTensor::kHeadDim, LayerTensor::kQkNorm, 0},
    {"self_attn.q_proj.bias", "attn_q.bias", nullptr, &InferLayer::q_bias, LayerTensor::kQ, LayerTensor::kQ, LayerTensor::kBias, 1},
    {"self_attn.k_proj.bias", "attn_k.bias", nullptr, &InferLayer::k_bias, LayerTensor::kKV, LayerTensor::kKV, LayerTensor::kBias, 2},
    {"self_attn.v_proj.bias", "attn_v.bias", nullptr, &InferLayer::v_bias, LayerTensor::kKV, LayerTensor::kKV, LayerTensor::kBias, 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", nullptr, &InferLayer::ffn_norm, LayerTensor::kHidden, LayerTensor::kHidden, LayerTensor::kAlways, 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", &InferLayer::gate, nullptr, LayerTensor::kFfn, LayerTensor::kHidden, LayerTensor::kAlways, 0},
    {"mlp.up_proj.weight", "ffn_up.weight", &InferLayer::up, nullptr, LayerTensor::kFfn, LayerTensor::kHidden, LayerTensor::kAlways, 0},
    {"mlp.down_proj.weight", "ffn_down.weight", &InferLayer::down, nullptr, LayerTensor::kHidden, LayerTensor::kFfn, LayerTensor::kAlways, 0},
};

int layer_dim(const ModelConfig& c, LayerTensor::Dim d) {
  switch (d) {
    case LayerTensor::kHidden: return c.hidden_size;
    case LayerTensor::kFfn: return c.intermediate_size;
    case LayerTensor::kQ: return c.q_dim();
    case LayerTensor::kKV: return c.kv_dim();
    case LayerTensor::kHeadDim: return c.head_dim;
  }
  return 0;
}

bool layer_has(const ModelConfig& c, LayerTensor::When w) {
  return w == LayerTensor::kAlways || (w == LayerTensor::kQkNorm && c.qk_norm()) || (w == LayerTensor::kBias && c.attention_bias);
}

int layer_llama_heads(const ModelConfig& c, const LayerTensor& t) {
  return t.llama_heads == 1 ? c.num_attention_heads : t.llama_heads == 2 ? c.num_key_value_heads : 0;
}

// ---- Hugging Face folders -----------------------------------------------------------------------

// The folder a model path names: itself, or the folder of a file in it (model.safetensors).
static std::string model_folder(const std::string& path) {
  if (is_directory(path)) return path;
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

static InferModel load_hf(const std::string& path, const LoadOptions& opt) {
  InferModel m;
  m.path = path;
  m.format = "hf";
  const std::string dir = model_folder(path);
  m.config = ModelConfig::load(dir);
  const ModelConfig& c = m.config;
  SafetensorsOpenOptions so;
  so.verify_checksums = opt.verify_checksums;
  SafetensorsSet st = open_safetensors_model(dir, so);

  std::vector<float> tmp;
  auto matrix = [&](const std::string& name, int rows, int cols) {
    const auto& e = st.get(name);
    WType file_type = e.info->dtype == DType::F16 ? WType::F16 : e.info->dtype == DType::BF16 ? WType::BF16 : WType::F32;
    WType t = opt.weight_type ? *opt.weight_type : file_type;
    tmp.resize(size_t(rows) * cols);
    const int64_t shape[2] = {rows, cols};
    st.read_f32(name, tmp, shape);
    return matrix_from_f32(m, tmp.data(), rows, cols, t, name);
  };
  auto vec = [&](const std::string& name, int n) {
    float* p = own_floats(m, size_t(n));
    const int64_t shape[1] = {n};
    st.read_f32(name, std::span<float>(p, size_t(n)), shape);
    return static_cast<const float*>(p);
  };

  const int C = c.hidden_size, V = c.vocab_size;
  m.embed = matrix("model.embed_tokens.weight", V, C);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = cat("model.layers.", l, ".");
    InferLayer L;
    for (const LayerTensor& t : kLayerTensors) {
      if (!layer_has(c, t.when)) continue;
      if (t.matrix) L.*t.matrix = matrix(p + t.hf, layer_dim(c, t.rows), layer_dim(c, t.cols));
      else L.*t.vec = vec(p + t.hf, layer_dim(c, t.rows));
    }
    m.layers.push_back(L);
  }
  m.final_norm = vec("model.norm.weight", C);
  if (c.tie_word_embeddings || !st.find("lm_head.weight")) m.lm_head = m.embed;
  else m.lm_head = matrix("lm_head.weight", V, C);

  load_tokenizer_files(m, dir);
  finish_model(m, opt);
  return m;
}

// ---- GGUF ---------------------------------------------------------------------------------------

bool wtype_from_ggml(GgmlType g, WType* out) {
  switch (g) {
    case GgmlType::F32: *out = WType::F32; return true;
    case GgmlType::F16: *out = WType::F16; return true;
    case GgmlType::BF16: *out = WType::BF16; return true;
    case GgmlType::Q8_0: *out = WType::Q8_0; return true;
    case GgmlType::Q4_0: *out = WType::Q4_0; return true;
    default: return false;
  }
}

GgmlType ggml_from_wtype(WType t) {
  switch (t) {
    case WType::F32: return GgmlType::F32;
    case WType::F16: return GgmlType::F16;
    case WType::BF16: return GgmlType::BF16;
    case WType::Q8_0: return GgmlType::Q8_0;
    case WType::Q4_0: return GgmlType::Q4_0;
  }
  return GgmlType::F32;
}

// llama.cpp rotates "llama" models' q/k in interleaved pairs (GGML's NORM RoPE), so its converter
// reorders each head's rows from Hugging Face's rotate-half layout: GGUF row 2i+h holds HF row
// h·D/2 + i. These two undo and apply that reordering (whole rows, so any row type works).
void rows_from_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes) {
  for (int hd = 0; hd < heads; hd++)
    for (int i = 0; i < D / 2; i++)
      for (int h = 0; h < 2; h++)
        std::memcpy(out + (size_t(hd) * D + h * (D / 2) + i) * row_bytes,
                    in + (size_t(hd) * D + 2 * i + h) * row_bytes, row_bytes);
}
void rows_to_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes) {
  for (int hd = 0; hd < heads; hd++)
    for (int i = 0; i < D / 2; i++)
      for (int h = 0; h < 2; h++)
        std::memcpy(out + (size_t(hd) * D + 2 * i + h) * row_bytes,
                    in + (size_t(hd) * D + h * (D / 2) + i) * row_bytes, row_bytes);
}

static InferModel load_gguf(const std::string& path, const LoadOptions& opt) {
  InferModel m;
  m.path = path;
  m.format = "gguf";
  GgufOpenOptions go;
  go.verify_checksums = opt.verify_checksums;
  std::shared_ptr<GgufFile> f(open_gguf(path, go).release());
  m.storage.push_back(f);

  const std::string arch = f->get_string("general.architecture");
  if (arch != "llama" && arch != "qwen3" && arch != "qwen2")
    fail(path, ": architecture '", arch, "' is not supported (todae runs llama, qwen2 and qwen3)");
  auto key = [&](const char* k) { return arch + "." + k; };
  ModelConfig c;
  c.architecture = arch == "qwen3" ? "Qwen3ForCausalLM" : arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.hidden_size = int(f->get_int(key("embedding_length")));
  c.num_hidden_layers = int(f->get_int(key("block_count")));
  c.intermediate_size = int(f->get_int(key("feed_forward_length")));
  c.num_attention_heads = int(f->get_int(key("attention.head_count")));
  c.num_key_value_heads = int(f->get_int(key("attention.head_count_kv"), c.num_attention_heads));
  c.head_dim = int(f->get_int(key("attention.key_length"), c.num_attention_heads ? c.hidden_size / c.num_attention_heads : 0));
  c.rms_norm_eps = f->get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
  c.rope_theta = f->get_float(key("rope.freq_base"), 10000.0);
  c.max_position_embeddings = int(f->get_int(key("context_length"), 2048));
  const GgufTensorInfo& te = f->get("token_embd.weight");
  if (te.dims.size() != 2) fail(path, ": tensor 'token_embd.weight' should have 2 dimensions");
  c.vocab_size = int(te.dims[1]);
  c.tie_word_embeddings = f->find("output.weight") == nullptr;
  c.bos_token_id = int(f->get_int("tokenizer.ggml.bos_token_id", -1));
  c.eos_token_id = int(f->get_int("tokenizer.ggml.eos_token_id", -1));
  c.attention_bias = f->find("blk.0.attn_q.bias") != nullptr;
  c.validate(path);
  m.config = c;
  const bool permuted = arch == "llama";

  auto matrix = [&](const std::string& name, int rows, int cols, int permute_heads = 0) {
    const GgufTensorInfo& t = f->get(name);
    if (t.dims.size() != 2 || t.dims[0] != cols || t.dims[1] != rows)
      fail(path, ": tensor '", name, "' has shape [", t.dims.size() > 0 ? t.dims[0] : 0, ", ",
           t.dims.size() > 1 ? t.dims[1] : 0, "], expected [", cols, ", ", rows, "] (GGUF order)");
    WMatrix M;
    if (!wtype_from_ggml(t.type, &M.type))
      fail(path, ": tensor '", name, "' has type ", ggml_type_name(t.type),
           ", which todae cannot compute with yet (supported: F32, F16, BF16, Q8_0, Q4_0; "
           "llama-quantize --pure writes only the requested type)");
    M.rows = rows;
    M.cols = cols;
    M.row_bytes = wtype_row_bytes(M.type, cols);
    M.data = f->data(t);
    if (permute_heads) {
      uint8_t* out = own_bytes(m, M.row_bytes * size_t(rows));
      rows_from_gguf_llama(static_cast<const uint8_t*>(M.data), out, permute_heads, c.head_dim, M.row_bytes);
      M.data = out;
    }
    if (opt.weight_type && *opt.weight_type != M.type) {
      std::vector<float> w(size_t(rows) * cols);
      for (int r = 0; r < rows; r++) dequantize_row(M.type, M.row(r), w.data() + size_t(r) * cols, cols);
      return matrix_from_f32(m, w.data(), rows, cols, *opt.weight_type, name);
    }
    return M;
  };
  auto vec = [&](const std::string& name, int n) {
    const GgufTensorInfo& t = f->get(name);
    if (t.numel() != uint64_t(n)) fail(path, ": tensor '", name, "' has ", t.numel(), " elements, expected ", n);
    WType wt;
    if (!wtype_from_ggml(t.type, &wt) || wtype_is_block(wt))
      fail(path, ": tensor '", name, "' has type ", ggml_type_name(t.type), "; norm weights must be F32, F16 or BF16");
    float* p = own_floats(m, size_t(n));
    dequantize_row(wt, f->data(t), p, n);
    return static_cast<const float*>(p);
  };

  const int C = c.hidden_size, V = c.vocab_size;
  m.embed = matrix("token_embd.weight", V, C);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = cat("blk.", l, ".");
    InferLayer L;
    for (const LayerTensor& t : kLayerTensors) {
      if (!layer_has(c, t.when)) continue;
      const int rows = layer_dim(c, t.rows), heads = permuted ? layer_llama_heads(c, t) : 0;
      if (t.matrix) {
        L.*t.matrix = matrix(p + t.gguf, rows, layer_dim(c, t.cols), heads);
      } else {
        L.*t.vec = vec(p + t.gguf, rows);
        if (heads) {  // a bias follows its weight rows' interleaved order
          float* v = const_cast<float*>(L.*t.vec);
          std::vector<float> tmp(v, v + rows);
          rows_from_gguf_llama(reinterpret_cast<const uint8_t*>(tmp.data()), reinterpret_cast<uint8_t*>(v), heads,
                               c.head_dim, sizeof(float));
        }
      }
    }
    m.layers.push_back(L);
  }
  m.final_norm = vec("output_norm.weight", C);
  m.lm_head = c.tie_word_embeddings ? m.embed : matrix("output.weight", V, C);

  // Tokenizer: todae's own files carry the exact tokenizer.json; others are rebuilt from
  // tokenizer.ggml.* (byte-level BPE).
  if (f->find_value("todae.tokenizer_json")) {
    m.tokenizer_json = f->get_string("todae.tokenizer_json");
    m.tokenizer = load_tokenizer_json(m.tokenizer_json, path + ": todae.tokenizer_json");
    m.has_tokenizer = true;
    m.tokenizer_config_json = f->get_string("todae.tokenizer_config_json", "");
  } else if (f->find_value("tokenizer.ggml.tokens")) {
    m.tokenizer_json = tokenizer_json_from_gguf(*f);
    m.tokenizer = load_tokenizer_json(m.tokenizer_json, path + ": tokenizer.ggml.*");
    m.has_tokenizer = true;
  }
  m.chat_template = f->get_string("tokenizer.chat_template", "");
  if (m.has_tokenizer) {
    if (c.bos_token_id >= 0 && c.bos_token_id < m.tokenizer.vocab_size()) m.bos_token = m.tokenizer.token_text(c.bos_token_id);
    if (c.eos_token_id >= 0 && c.eos_token_id < m.tokenizer.vocab_size()) m.eos_token = m.tokenizer.token_text(c.eos_token_id);
  }
  finish_model(m, opt);
  return m;
}

InferModel load_model(const std::string& path, const LoadOptions& opt) {
  if (path.empty()) fail("no model given (--model PATH: a run folder, a Hugging Face folder or a .gguf file)");
  if (!file_exists(path) && !is_directory(path)) fail(path, ": no such file or folder");
  if (!is_directory(path)) {
    std::string magic = read_file_prefix(path, 4);
    if (magic == "GGUF") return load_gguf(path, opt);
    auto ends = [&](std::string_view suffix) {
      return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".gguf")) fail(path, ": not a GGUF file (it does not start with \"GGUF\")");
    // A file of a Hugging Face folder (model.safetensors, config.json) stands for its folder.
    if (!ends(".safetensors") && !ends(".json"))
      fail(path, ": not a model: give a .gguf file, or a Hugging Face, run or checkpoint folder "
                 "(config.json + *.safetensors)");
    if (!file_exists(model_folder(path) + "/config.json"))
      fail(path, ": no config.json next to it (a Hugging Face model is a folder with config.json and *.safetensors)");
  }
  return load_hf(path, opt);
}

}  // namespace todae
