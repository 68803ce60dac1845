// Writing a loaded model out: GGUF (what llama.cpp and its ecosystem run) or a Hugging Face folder
// (what transformers and todae's trainer read), with the matrices in the requested type; plus the
// translation of a byte-level BPE tokenizer between tokenizer.json and GGUF's tokenizer.ggml.* keys.
#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "formats/formats.h"
#include "formats/gguf.h"
#include "infer/infer.h"
#include "infer/infer_impl.h"

namespace todae {

namespace {

using json = nlohmann::json;

// The pre-tokenizer regexes behind the tokenizer.ggml.pre names we read (the published patterns of
// those tokenizers' tokenizer.json files).
const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// The row r of a matrix as f32.
void row_f32(const WMatrix& w, int r, float* out) { dequantize_row(w.type, w.row(r), out, w.cols); }

// A matrix converted to `t` into `out` (rows in order), through f32 unless the type is the same.
std::vector<uint8_t> convert_matrix(const WMatrix& w, WType t, const std::string& name) {
  if (wtype_is_block(t) && w.cols % kQuantBlock != 0)
    fail("cannot write tensor '", name, "' as ", wtype_name(t), ": rows of ", w.cols, " elements are not a multiple of 32");
  const size_t rb = wtype_row_bytes(t, w.cols);
  std::vector<uint8_t> out(rb * size_t(w.rows));
  if (t == w.type) {
    for (int r = 0; r < w.rows; r++) std::memcpy(out.data() + r * rb, w.row(r), rb);
    return out;
  }
  std::vector<float> tmp(w.cols);
  for (int r = 0; r < w.rows; r++) {
    row_f32(w, r, tmp.data());
    quantize_row(t, tmp.data(), out.data() + r * rb, w.cols);
  }
  return out;
}

uint32_t gguf_file_type(WType t) {
  switch (t) {  // llama_ftype numbering
    case WType::F32: return 0;
    case WType::F16: return 1;
    case WType::Q4_0: return 2;
    case WType::Q8_0: return 7;
    case WType::BF16: return 32;
  }
  return 0;
}

}  // namespace

// ---- tokenizer ↔ GGUF ---------------------------------------------------------------------------

void tokenizer_to_gguf(const InferModel& m, std::vector<std::pair<std::string, GgufValue>>& kv) {
  json tj;
  try {
    tj = json::parse(m.tokenizer_json);
  } catch (const json::exception& e) {
    fail("tokenizer.json: not valid JSON: ", e.what());
  }
  const json& model = tj["model"];
  if (!model.is_object() || model.value("type", "") != "BPE")
    fail("tokenizer.json: only BPE tokenizers can be written to GGUF");
  const int V = m.config.vocab_size;
  std::vector<std::string> tokens(V);
  std::vector<int64_t> types(V, 1);  // 1 normal
  const int tv = m.tokenizer.vocab_size();
  for (int i = 0; i < V; i++) {
    if (i < tv) {
      tokens[i] = m.tokenizer.token_text(i);
      if (m.tokenizer.is_special(i)) types[i] = 3;  // control
    } else {
      tokens[i] = cat("[PAD", i, "]");  // embeddings beyond the tokenizer's vocabulary
      types[i] = 5;                     // unused
    }
  }
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (const json& a : tj["added_tokens"])
      if (a.is_object() && a.contains("id") && a["id"].is_number_integer()) {
        int id = a["id"].get<int>();
        if (id >= 0 && id < V) types[id] = a.value("special", false) ? 3 : 4;  // 4 user-defined
      }
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array())
    for (const json& mg : model["merges"]) {
      if (mg.is_string()) merges.push_back(mg.get<std::string>());
      else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
        merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
    }
  kv.push_back({"tokenizer.ggml.model", gguf_string("gpt2")});
  // llama.cpp picks its pre-tokenizer by name; ours (Korean-first) has none there, so we name the
  // closest one it knows and keep the exact tokenizer.json in todae.tokenizer_json.
  // llama.cpp picks its pre-tokenizer by name. None is our Korean-first split; "smaug-bpe" is the
  // Llama-3 (cl100k) regex without llama.cpp's whole-word vocabulary lookup. Our split is finer than
  // that regex only at boundaries no merge of ours crosses, so the ids agree (tested in
  // tests/interop); the exact tokenizer.json also travels in todae.tokenizer_json.
  kv.push_back({"tokenizer.ggml.pre", gguf_string("smaug-bpe")});
  kv.push_back({"tokenizer.ggml.tokens", gguf_strings(std::move(tokens))});
  kv.push_back({"tokenizer.ggml.token_type", gguf_i32s(std::move(types))});
  kv.push_back({"tokenizer.ggml.merges", gguf_strings(std::move(merges))});
  auto id_of = [&](const std::string& t) { return t.empty() ? -1 : m.tokenizer.token_id(t); };
  int bos = m.config.bos_token_id >= 0 ? m.config.bos_token_id : id_of(m.bos_token);
  int eos = m.config.eos_token_id >= 0 ? m.config.eos_token_id : id_of(m.eos_token);
  if (bos < 0) bos = id_of("<|bos|>");
  if (eos < 0) eos = id_of("<|eos|>");
  if (bos >= 0) kv.push_back({"tokenizer.ggml.bos_token_id", gguf_u32(uint32_t(bos))});
  if (eos >= 0) kv.push_back({"tokenizer.ggml.eos_token_id", gguf_u32(uint32_t(eos))});
  int pad = id_of("<|pad|>");
  if (pad >= 0) kv.push_back({"tokenizer.ggml.padding_token_id", gguf_u32(uint32_t(pad))});
  // Our tokenizers add no BOS by themselves (no post-processor); say so, or llama.cpp would.
  bool add_bos = tj.contains("post_processor") && !tj["post_processor"].is_null();
  kv.push_back({"tokenizer.ggml.add_bos_token", gguf_bool(add_bos)});
  kv.push_back({"tokenizer.ggml.add_eos_token", gguf_bool(false)});
}

std::string tokenizer_json_from_gguf(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    fail(f.path, ": tokenizer.ggml.model '", model, "' is not supported (todae reads byte-level BPE, \"gpt2\")");
  const GgufValue* tv = f.find_value("tokenizer.ggml.tokens");
  const GgufValue* mv = f.find_value("tokenizer.ggml.merges");
  if (!tv || tv->type != GgufValueType::ARRAY || tv->elem_type != GgufValueType::STRING)
    fail(f.path, ": tokenizer.ggml.tokens must be an array of strings");
  if (!mv || mv->type != GgufValueType::ARRAY || mv->elem_type != GgufValueType::STRING)
    fail(f.path, ": tokenizer.ggml.merges must be an array of strings");
  const GgufValue* ty = f.find_value("tokenizer.ggml.token_type");
  const std::string pre = f.get_string("tokenizer.ggml.pre", "default");
  const char* regex = nullptr;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe" || pre == "dbrx" || pre == "falcon3") regex = kLlama3Regex;
  else if (pre == "qwen2" || pre == "deepseek-r1-qwen") regex = kQwen2Regex;
  else if (pre == "default" || pre == "gpt-2" || pre == "gpt2") regex = kGpt2Regex;
  else fail(f.path, ": tokenizer.ggml.pre '", pre, "' is not supported (known: llama-bpe, qwen2, default)");

  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < tv->strings.size(); i++) {
    const std::string& t = tv->strings[i];
    int64_t type = ty && i < ty->ints.size() ? ty->ints[i] : 1;
    if (type == 3 || type == 4)
      added.push_back({{"id", i}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", type == 4}, {"special", type == 3}});
    if (!vocab.contains(t)) vocab[t] = i;
  }
  json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        // llama.cpp's "llama-bpe" looks a whole piece up in the vocabulary before merging (as
        // Llama-3's tokenizer.json says with ignore_merges); its other pre-types do not
        {"ignore_merges", pre == "llama-bpe" || pre == "llama3"},
        {"vocab", vocab}, {"merges", mv->strings}}},
  };
  return tj.dump();
}

// ---- writing ------------------------------------------------------------------------------------

static void save_gguf(const InferModel& m, const std::string& out, WType type) {
  const ModelConfig& c = m.config;
  const bool llama = c.architecture == "LlamaForCausalLM";  // interleaved RoPE: q/k rows reordered
  const std::string arch = c.model_type();
  std::vector<std::pair<std::string, GgufValue>> kv;
  auto key = [&](const char* k) { return arch + "." + k; };
  kv.push_back({"general.architecture", gguf_string(arch)});
  kv.push_back({"general.name", gguf_string("todae")});
  kv.push_back({"general.file_type", gguf_u32(gguf_file_type(type))});
  kv.push_back({key("context_length"), gguf_u32(uint32_t(c.max_position_embeddings))});
  kv.push_back({key("embedding_length"), gguf_u32(uint32_t(c.hidden_size))});
  kv.push_back({key("block_count"), gguf_u32(uint32_t(c.num_hidden_layers))});
  kv.push_back({key("feed_forward_length"), gguf_u32(uint32_t(c.intermediate_size))});
  kv.push_back({key("attention.head_count"), gguf_u32(uint32_t(c.num_attention_heads))});
  kv.push_back({key("attention.head_count_kv"), gguf_u32(uint32_t(c.num_key_value_heads))});
  kv.push_back({key("attention.key_length"), gguf_u32(uint32_t(c.head_dim))});
  kv.push_back({key("attention.value_length"), gguf_u32(uint32_t(c.head_dim))});
  kv.push_back({key("rope.dimension_count"), gguf_u32(uint32_t(c.head_dim))});
  kv.push_back({key("rope.freq_base"), gguf_f32(float(c.rope_theta))});
  kv.push_back({key("attention.layer_norm_rms_epsilon"), gguf_f32(float(c.rms_norm_eps))});
  kv.push_back({key("vocab_size"), gguf_u32(uint32_t(c.vocab_size))});
  if (c.rope_scaling.kind == RopeScaling::linear) {
    kv.push_back({key("rope.scaling.type"), gguf_string("linear")});
    kv.push_back({key("rope.scaling.factor"), gguf_f32(float(c.rope_scaling.factor))});
  } else if (c.rope_scaling.kind != RopeScaling::none) {
    fail(out, ": rope_scaling other than linear cannot be written to GGUF yet");
  }
  if (m.has_tokenizer) {
    tokenizer_to_gguf(m, kv);
    kv.push_back({"todae.tokenizer_json", gguf_string(m.tokenizer_json)});
    if (!m.tokenizer_config_json.empty())
      kv.push_back({"todae.tokenizer_config_json", gguf_string(m.tokenizer_config_json)});
  }
  if (!m.chat_template.empty()) kv.push_back({"tokenizer.chat_template", gguf_string(m.chat_template)});

  std::vector<std::vector<uint8_t>> blobs;  // converted data, alive until written
  std::vector<GgufTensorRef> tensors;
  blobs.reserve(4 + 12 * m.layers.size());
  auto add_matrix = [&](const std::string& name, const WMatrix& w, int permute_heads = 0) {
    std::vector<uint8_t> data = convert_matrix(w, type, name);
    if (permute_heads) {
      std::vector<uint8_t> perm(data.size());
      rows_to_gguf_llama(data.data(), perm.data(), permute_heads, c.head_dim, wtype_row_bytes(type, w.cols));
      data.swap(perm);
    }
    blobs.push_back(std::move(data));
    tensors.push_back({name, ggml_from_wtype(type), {w.cols, w.rows}, blobs.back().data(), blobs.back().size()});
  };
  auto add_vec = [&](const std::string& name, const float* v, int n) {
    blobs.emplace_back(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v + n));
    tensors.push_back({name, GgmlType::F32, {n}, blobs.back().data(), blobs.back().size()});
  };
  add_matrix("token_embd.weight", m.embed);
  add_vec("output_norm.weight", m.final_norm, c.hidden_size);
  if (m.lm_head.data != m.embed.data) add_matrix("output.weight", m.lm_head);
  for (size_t l = 0; l < m.layers.size(); l++) {
    const InferLayer& L = m.layers[l];
    const std::string p = cat("blk.", l, ".");
    for (const LayerTensor& t : kLayerTensors) {
      const int heads = llama ? layer_llama_heads(c, t) : 0;
      if (t.matrix) {
        add_matrix(p + t.gguf, L.*t.matrix, heads);
      } else if (const float* v = L.*t.vec) {
        const int n = layer_dim(c, t.rows);
        std::vector<float> out(v, v + n);
        if (heads)  // a bias follows its weight rows' interleaved order
          rows_to_gguf_llama(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<uint8_t*>(out.data()), heads,
                             c.head_dim, sizeof(float));
        add_vec(p + t.gguf, out.data(), n);
      }
    }
  }
  write_gguf(out, kv, tensors);
}

static void save_hf(const InferModel& m, const std::string& dir, WType type) {
  if (wtype_is_block(type))
    fail("a Hugging Face folder holds f32, f16 or bf16 weights; write ", wtype_name(type), " to a .gguf file instead");
  make_directories(dir);
  const ModelConfig& c = m.config;
  const DType dt = type == WType::F32 ? DType::F32 : type == WType::F16 ? DType::F16 : DType::BF16;
  std::vector<std::vector<uint8_t>> blobs;
  blobs.reserve(4 + 12 * m.layers.size());
  std::vector<TensorRef> tensors;
  auto add_matrix = [&](const std::string& name, const WMatrix& w) {
    blobs.push_back(convert_matrix(w, type, name));
    tensors.push_back({name, dt, {w.rows, w.cols}, blobs.back().data(), blobs.back().size()});
  };
  auto add_vec = [&](const std::string& name, const float* v, int n) {
    std::vector<uint8_t> b(size_t(n) * dtype_size(dt));
    if (dt == DType::F32) std::memcpy(b.data(), v, b.size());
    else
      for (int i = 0; i < n; i++) {
        uint16_t h = dt == DType::F16 ? f16_from_float(v[i]) : bf16_from_float(v[i]);
        std::memcpy(b.data() + 2 * size_t(i), &h, 2);
      }
    blobs.push_back(std::move(b));
    tensors.push_back({name, dt, {n}, blobs.back().data(), blobs.back().size()});
  };
  add_matrix("model.embed_tokens.weight", m.embed);
  add_vec("model.norm.weight", m.final_norm, c.hidden_size);
  ModelConfig cfg = c;
  cfg.tie_word_embeddings = m.lm_head.data == m.embed.data;
  if (!cfg.tie_word_embeddings) add_matrix("lm_head.weight", m.lm_head);
  for (size_t l = 0; l < m.layers.size(); l++) {
    const InferLayer& L = m.layers[l];
    const std::string p = cat("model.layers.", l, ".");
    for (const LayerTensor& t : kLayerTensors) {
      if (t.matrix) add_matrix(p + t.hf, L.*t.matrix);
      else if (const float* v = L.*t.vec) add_vec(p + t.hf, v, layer_dim(c, t.rows));
    }
  }
  write_safetensors_model(dir, tensors);
  write_file_atomic(dir + "/config.json", cfg.to_json());
  if (m.has_tokenizer) {
    write_file_atomic(dir + "/tokenizer.json", m.tokenizer_json);
    json tc = json::object();
    if (!m.tokenizer_config_json.empty()) {
      try {
        tc = json::parse(m.tokenizer_config_json);
      } catch (const json::exception&) {
        tc = json::object();
      }
    }
    if (!m.chat_template.empty()) tc["chat_template"] = m.chat_template;
    if (!m.bos_token.empty() && !tc.contains("bos_token")) tc["bos_token"] = m.bos_token;
    if (!m.eos_token.empty() && !tc.contains("eos_token")) tc["eos_token"] = m.eos_token;
    write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2));
  }
}

void save_model(const InferModel& m, const std::string& out, WType type) {
  const bool gguf = out.size() >= 5 && out.compare(out.size() - 5, 5, ".gguf") == 0;
  if (out == m.path) fail(out, ": the output would overwrite the input; choose another path");
  if (gguf) save_gguf(m, out, type);
  else save_hf(m, out, type);
}

}  // namespace todae
