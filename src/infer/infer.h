// todae infer: running a model — loading weights from the formats people use, the KV cache, one
// forward pass over a batch of tokens from several sequences (what continuous batching needs),
// sampling, and text generation with streaming and stop strings. Public API of the module.
//
// The transformer is the one of src/model (same ModelConfig, same kernels, same Hugging Face
// tensor semantics); what inference adds is weights in compressed types (src/tensor/quant.h),
// a cache of past keys and values, and a batch made of positions from several sequences.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "model/lora.h"
#include "model/model.h"
#include "tensor/quant.h"
#include "text/text.h"

namespace todae {

// ---- the model ----------------------------------------------------------------------------------

struct InferLayer {
  WMatrix q, k, v, o, gate, up, down;
  const float* attn_norm = nullptr;  // [C]
  const float* ffn_norm = nullptr;   // [C]
  const float* q_norm = nullptr;     // [D], Qwen3 only
  const float* k_norm = nullptr;     // [D], Qwen3 only
  const float* q_bias = nullptr;     // [H·D], [KVH·D], [KVH·D]: Qwen2 (attention_bias) only
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
};

struct InferModel {
  ModelConfig config;
  std::string path;          // what was loaded
  std::string format;        // "gguf" or "hf"
  WType weight_type = WType::F32;  // type of the layer matrices (the most common one)
  std::vector<InferLayer> layers;
  WMatrix embed;             // [V, C]
  WMatrix lm_head;           // [V, C] (the embedding itself when tied)
  const float* final_norm = nullptr;

  // Tokenizer and chat template (absent when the source has none: has_tokenizer false).
  bool has_tokenizer = false;
  Tokenizer tokenizer;
  std::string tokenizer_json;         // as loaded or rebuilt (for export)
  std::string tokenizer_config_json;  // may be empty
  std::string chat_template;          // Jinja, may be empty
  std::string bos_token, eos_token;   // texts, may be empty
  std::vector<int32_t> stop_ids;      // end-of-generation ids (eos, <|im_end|>, <|eot_id|>, ...)

  // RoPE tables for positions [0, rope_positions).
  int rope_positions = 0;
  std::vector<float> rope_cos, rope_sin;

  // Backing storage: a mapped file and/or owned buffers the WMatrix pointers point into.
  std::vector<std::shared_ptr<void>> storage;

  // LoRA adapters applied without merging (`--lora`): adapter id k >= 1 of a batch entry is
  // adapters[k - 1]; id 0 is the bare base. Entries with different ids share one forward pass.
  std::vector<std::shared_ptr<const Lora>> adapters;
  std::vector<std::string> adapter_names;  // parallel to adapters (the served model names)
};

struct LoadOptions {
  // Convert the layer matrices (and the LM head / embedding, as llama.cpp's quantize does) to this
  // type at load time; unset: keep the file's types (f32 from a todae run folder).
  std::optional<WType> weight_type;
  bool verify_checksums = true;
  int max_context = 0;  // 0: config's max_position_embeddings
};

// PATH: a todae run or checkpoint folder, a Hugging Face folder (config.json + safetensors), or a
// .gguf file. Errors name the file and the tensor or key at fault.
InferModel load_model(const std::string& path, const LoadOptions& opt = {});

// ---- KV cache -----------------------------------------------------------------------------------

struct KVCache {
  WType type = WType::F16;  // F32, F16 or Q8_0
  int slots = 1;            // independent sequences
  int ctx = 0;              // positions per slot
  int layers = 0, kv_dim = 0;
  size_t row_bytes = 0;
  Buffer<uint8_t> data;     // [layers][slots][2][ctx][row_bytes]
  std::vector<int> length;  // tokens held per slot

  KVView view(int layer, int slot);
  void clear(int slot) { length[slot] = 0; }
  size_t bytes() const { return data.size; }
};
KVCache make_kv_cache(const InferModel& m, int ctx, int slots = 1, WType type = WType::F16);

// ---- forward ------------------------------------------------------------------------------------

// Tokens of one or more sequences, processed together: entries of a slot must be consecutive and
// continue that slot's cache (pos == cache.length[slot] for the first, then +1 each).
struct Batch {
  std::vector<int32_t> tokens, pos, slot;
  std::vector<uint8_t> want_logits;  // 1: return this entry's logits
  std::vector<uint16_t> adapter;     // per entry: 0 = base, k = InferModel::adapters[k-1] (or empty: all 0)
  void add(int32_t token, int32_t position, int32_t slot_id, bool logits, int adapter_id = 0) {
    tokens.push_back(token), pos.push_back(position), slot.push_back(slot_id), want_logits.push_back(logits);
    adapter.push_back(static_cast<uint16_t>(adapter_id));
  }
  void clear() { tokens.clear(), pos.clear(), slot.clear(), want_logits.clear(), adapter.clear(); }
  int size() const { return int(tokens.size()); }
};

struct ForwardScratch;  // infer.cpp: activations for the largest batch seen
struct Forward {
  std::unique_ptr<ForwardScratch> s;
  Forward();
  ~Forward();
  Forward(Forward&&) noexcept;
  Forward& operator=(Forward&&) noexcept;
};

// Runs the batch through the model, appending its keys/values to the cache (cache.length grows).
// logits[n_want, V]: one row per entry with want_logits, in batch order. hidden[N, C], if given,
// receives every entry's final normed hidden state (for embeddings).
void forward_batch(InferModel& m, KVCache& cache, Forward& fw, const Batch& batch, float* logits,
                   float* hidden = nullptr);

// ---- sampling -----------------------------------------------------------------------------------

struct SamplingParams {
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;            // 0: off
  float top_p = 0.95f;       // 1: off
  float min_p = 0.05f;       // 0: off
  float repetition_penalty = 1.0f;  // 1: off (over the last penalty_last_n tokens)
  float frequency_penalty = 0.0f, presence_penalty = 0.0f;  // OpenAI's, over generated tokens
  int penalty_last_n = 64;
  uint64_t seed = 0xC0FFEE;
  int top_logprobs = 0;      // alternatives reported with each token (0..20)
};

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0;  // under the model's distribution (temperature 1, before any filtering)
  std::vector<std::pair<int32_t, float>> top;  // the top_logprobs most likely, descending
};

struct Sampler {
  SamplingParams p;
  std::mt19937_64 rng;
  std::vector<int32_t> recent;              // last penalty_last_n tokens (prompt included)
  std::vector<std::pair<int32_t, int>> counts;  // generated token -> count (sorted by id)
  // Grammar hook (constrained decoding): sets disallowed logits to -inf before sampling.
  std::function<void(float* logits, int V)> constrain;

  explicit Sampler(const SamplingParams& p);
  void add_prompt(const std::vector<int32_t>& ids);
  // Picks the next token from logits[V] (modified in place); fills lp if non-null.
  int32_t sample(float* logits, int V, TokenLogprob* lp = nullptr);
  void accept(int32_t id);  // records a generated token for the penalties

 private:
  std::vector<int32_t> ids_;  // scratch of sample(): the ids that pass the min-p cut
};

// ---- text output ----------------------------------------------------------------------------------

// Turns generated ids into text pieces that are safe to show: never half a UTF-8 character, and
// never text that could be the start of a stop string (held back until it is ruled out).
struct TextStream {
  const Tokenizer* tok = nullptr;
  std::vector<std::string> stops;
  std::string pending;  // decoded but not yet emitted
  bool stopped = false; // a stop string was found (emitted text ends before it)
  bool skip_special = true;

  TextStream(const Tokenizer& t, std::vector<std::string> stop_strings, bool skip_special_tokens = true);
  // Adds a token; returns text that may be emitted now (possibly empty).
  std::string push(int32_t id);
  // End of generation: whatever is pending (minus an incomplete stop prefix's nothing).
  std::string finish();
};

// ---- generation -----------------------------------------------------------------------------------

struct GenerateOptions {
  int max_tokens = 256;
  std::vector<std::string> stop;
  SamplingParams sampling;
  bool ignore_eos = false;   // benchmarks: keep going past end-of-generation tokens
  bool logprobs = false;     // fill TokenLogprob::logprob / top for on_token (costs a softmax)
  bool skip_special = true;  // leave special tokens (<|image_0|>, <|user|>, ...) out of the text
  int prompt_chunk = 512;    // tokens per forward pass while reading the prompt
  int adapter = 0;           // LoRA adapter id of every batch entry (0: the base; see Batch::adapter)
};

struct GenerateStats {
  int prompt_tokens = 0, decode_tokens = 0;
  double prompt_seconds = 0, decode_seconds = 0, ttft_seconds = 0;
  std::string finish_reason;  // "stop" (eos or stop string) or "length"
};

// Reads the prompt into `slot` of the cache (after what it already holds), then samples up to
// max_tokens, calling on_text with each safe piece; on_text returning false stops early.
// on_token, if set, sees every generated id with its logprobs.
GenerateStats generate(InferModel& m, KVCache& cache, int slot, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<bool(std::string_view)>& on_text,
                       const std::function<void(const TokenLogprob&)>& on_token = {});

// ---- LoRA adapters (src/infer/adapter.cpp) -------------------------------------------------------
//
// On disk an adapter is a PEFT folder (adapter_config.json: peft_type LORA, task_type CAUSAL_LM, r,
// lora_alpha, target_modules, use_rslora, base_model_name_or_path; adapter_model.safetensors with
// PEFT's names "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight") or a GGUF LoRA
// file (general.type = adapter, adapter.type = lora, adapter.lora.alpha; tensors
// "blk.N.attn_q.weight.lora_a" [in, r in GGUF order] / ".lora_b"), as llama.cpp reads with --lora.

// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (atomically; DIR created).
void save_peft_adapter(const Lora& lora, const std::string& dir);
// Writes a GGUF LoRA adapter for a base of this config.
void save_gguf_lora(const Lora& lora, const ModelConfig& base, const std::string& path);
// A PEFT folder (ours or one made by PEFT) or a GGUF LoRA file, checked against the base's shapes:
// errors name the file and the tensor or field at fault. lora.scale = config.scale() · scale.
Lora load_lora(const std::string& path, const ModelConfig& base, float scale = 1.0f);
// "DIR", "DIR:0.5" (generate/chat) or "NAME=DIR[:scale]" (serve). name defaults to DIR's last part.
struct LoraArg {
  std::string name, path;
  float scale = 1.0f;
};
LoraArg parse_lora_arg(std::string_view arg);
// Loads and appends to m.adapters; returns its adapter id (>= 1).
int add_adapter(InferModel& m, const LoraArg& arg);
// The `--lora` flags of generate/chat/eval: none -> 0; one -> add_adapter; several -> their sum,
// stacked into one adapter (stack_loras: exact, the base stays as loaded). Returns the adapter id.
int add_adapters(InferModel& m, const std::vector<std::string>& lora_args);
// W += scale·B·A into the base: layer matrices become owned f32 copies first (any type loads).
void merge_lora(InferModel& m, const Lora& lora);
// One adapter that computes the sum of several (`--lora A --lora B`, as PEFT's several active
// adapters add up): ranks concatenated, each scale folded into its B, scale 1. Exact, and the
// base stays as loaded (quantized weights are not widened, as merging would). src/infer/forward.cpp.
Lora stack_loras(const std::vector<const Lora*>& loras, const ModelConfig& base);

// ---- fine-tuning bridge ---------------------------------------------------------------------------

// A training model (src/model) with the weights of an inference model (any type todae loads).
// matrix_type F32: everything widened to f32 (full SFT, LoRA). Q8_0 / Q4_0: the layer matrices
// stay in that block type (QLoRA; copied byte for byte when the file already has that type, else
// quantized row by row — never expanded to f32 as a whole) and the model is frozen.
Model to_train_model(const InferModel& m, WType matrix_type = WType::F32);

// The inverse, without a copy (src/infer/from_train.cpp): an inference model whose matrices and
// vectors point into the training model's buffers (f32, or QLoRA's block-type layers and tables),
// for evaluating the weights while they train. `t` must outlive the view and not change while it
// is used. With t.lora set, the adapter is the view's adapter 1, unmerged (its weights as they are
// now, applied as `--lora` would). The tokenizer comes from the texts of tokenizer.json and
// tokenizer_config.json (empty: none; has_tokenizer stays false).
InferModel infer_view(const Model& t, const std::string& tokenizer_json, const std::string& tokenizer_config_json = "",
                      const LoadOptions& opt = {});

// ---- conversion ---------------------------------------------------------------------------------

// Writes the model as GGUF (OUT ends in .gguf) or as a Hugging Face folder, with the matrices in
// `type` (norms stay f32; Hugging Face folders hold f32/f16/bf16 only). Tokenizer and chat
// template travel along.
void save_model(const InferModel& m, const std::string& out, WType type);

}  // namespace todae
