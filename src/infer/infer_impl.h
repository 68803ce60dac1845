// Internal to todae_infer: pieces shared by the loader, the converter and the tests.
#pragma once

#include <string>

#include "formats/gguf.h"
#include "infer/infer.h"

namespace todae {

// Rope tables, stop ids and the model's headline weight type, after the weights are in place.
void finish_model(InferModel& m, const LoadOptions& opt);
// tokenizer.json (+ tokenizer_config.json, chat template) from a Hugging Face style folder.
void load_tokenizer_files(InferModel& m, const std::string& dir);
// The same from the files' texts (tokenizer_config_json may be empty); tj / tc name them in errors.
void set_tokenizer_texts(InferModel& m, std::string tokenizer_json, std::string tokenizer_config_json,
                         const std::string& tj, const std::string& tc);

GgmlType ggml_from_wtype(WType t);
// The WType of a GGUF tensor type todae multiplies with; false for any other.
bool wtype_from_ggml(GgmlType g, WType* out);
// llama.cpp's q/k row order for architecture "llama" (interleaved RoPE pairs) and back.
void rows_from_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes);
void rows_to_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes);

// A Hugging Face tokenizer.json rebuilt from a GGUF's tokenizer.ggml.* keys (byte-level BPE,
// "gpt2" model; the pre-tokenizer chosen by tokenizer.ggml.pre).
std::string tokenizer_json_from_gguf(const GgufFile& f);
// The reverse: tokenizer.ggml.* metadata for our tokenizer (model, pre, tokens, token_type, merges,
// special ids), appended to `kv`.
void tokenizer_to_gguf(const InferModel& m, std::vector<std::pair<std::string, GgufValue>>& kv);

// The tensors of one decoder layer, in both namings: a Hugging Face folder's "model.layers.N." + hf
// and a GGUF's "blk.N." + gguf. Both loaders and both writers walk this one list.
struct LayerTensor {
  enum Dim : uint8_t { kHidden, kFfn, kQ, kKV, kHeadDim };  // ModelConfig sizes
  enum When : uint8_t { kAlways, kQkNorm, kBias };            // optional tensors: Qwen3, Qwen2
  const char* hf;
  const char* gguf;
  WMatrix InferLayer::*matrix;    // a weight matrix [rows, cols] ...
  const float* InferLayer::*vec;  // ... or an f32 vector [rows]
  Dim rows, cols;
  When when;
  // Rows that GGUF's "llama" architecture stores in llama.cpp's interleaved RoPE order: 1 in the
  // query heads, 2 in the key/value heads, 0 none.
  uint8_t llama_heads;
};
extern const LayerTensor kLayerTensors[14];
int layer_dim(const ModelConfig& c, LayerTensor::Dim d);
bool layer_has(const ModelConfig& c, LayerTensor::When w);
// The head count a tensor's rows are permuted by in a "llama" GGUF (0: not permuted).
int layer_llama_heads(const ModelConfig& c, const LayerTensor& t);

// adapter_config.json of a PEFT LoRA adapter, as todae reads and writes it (src/infer/adapter.cpp).
struct PeftLoraConfig {
  LoraConfig lora;                      // r, lora_alpha, use_rslora; targets: the union over layers
  std::vector<uint32_t> layer_targets;  // [layers]: the targets that carry an adapter in each layer
  std::string base_model;               // base_model_name_or_path (may be empty)
};
// Resolves target_modules (list, "all-linear" or a regular expression, as PEFT matches them
// against "model.layers.N.self_attn.q_proj"), exclude_modules and layers_to_transform for a base
// of num_layers layers; refuses what todae cannot apply (rank_pattern, DoRA, biases, ...). Errors
// name `source` and the field.
PeftLoraConfig parse_peft_config(std::string_view json, const std::string& source, int num_layers);
// The adapter_config.json PEFT writes for such an adapter (parse_peft_config reads it back equal).
std::string peft_config_json(const PeftLoraConfig& c);

// Peak resident memory of this process (VmHWM), in MiB.
double peak_rss_mb();

}  // namespace todae
