// todae model: a Llama-family decoder (Llama, Qwen3) configured by a Hugging Face config.json, with
// forward and backward passes built from the kernels of todae_tensor.
//
// Memory layout: parameters, gradients and the two AdamW moments are four f32 buffers of the same
// size and layout; `params` is the table of named views into them (Hugging Face tensor names and
// shapes). Checkpointing, all-reducing gradients or moving the model to a GPU is one copy per
// buffer. Tensors that are used together are adjacent, so one matmul serves several of them:
// q_proj|k_proj|v_proj form one [(H + 2·KVH)·D, C] matrix, gate_proj|up_proj one [2F, C] matrix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/quant.h"
#include "tensor/tensor.h"

namespace todae {

// ---- configuration ----------------------------------------------------------------------------

struct ModelConfig {
  // "LlamaForCausalLM", "Qwen2ForCausalLM" (q/k/v biases) or "Qwen3ForCausalLM" (per-head
  // QK-norm). Training supports Llama and Qwen3; inference all three.
  std::string architecture = "LlamaForCausalLM";
  bool attention_bias = false;  // q_proj/k_proj/v_proj have biases (Qwen2; "attention_bias" in Llama)
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // grouped-query attention; 0 in a file means "= heads"
  int head_dim = 0;             // 0 in a file means hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;  // "rope_scaling": null | {"type"/"rope_type": linear|dynamic|llama3, ...}
  bool tie_word_embeddings = false;
  int bos_token_id = -1, eos_token_id = -1;  // -1: absent (a list of eos ids keeps the first)

  // Parses a Hugging Face style config.json. Errors name `source` and the field at fault.
  static ModelConfig from_json(std::string_view json, const std::string& source = "config.json");
  // A config.json file, or a folder holding one.
  static ModelConfig load(const std::string& path);
  // A config.json that from_json reads back identically and Hugging Face transformers accepts.
  std::string to_json() const;
  // Checks the numbers are usable together (called by from_json and by Model's constructor).
  void validate(const std::string& source = "config") const;

  bool qk_norm() const { return architecture == "Qwen3ForCausalLM"; }
  std::string model_type() const {
    return qk_norm() ? "qwen3" : architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama";
  }
  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  size_t num_parameters() const;  // trainable floats (tied embeddings counted once)
  // Forward+backward FLOPs per trained token at context T, for MFU, in the PaLM convention that
  // ../shared/perf/SHAPES.md uses: 6 · (matmul parameters, LM head included, embedding lookup not)
  // + 12 · layers · T · q_dim for attention (not halved for the causal mask).
  double flops_per_token(int T) const;
};

// ---- the model --------------------------------------------------------------------------------

struct ParamInfo {
  std::string name;            // Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // e.g. {out, in}
  size_t offset = 0;           // in floats, the same in weights, grads, adam_m and adam_v
  size_t numel = 0;
  bool weight_decay = true;    // false for the 1-D norm weights
  // false for a layer matrix of a model whose matrices are quantized (Model::qlayers): it has a
  // name and shape but no storage in the f32 buffers (offset is meaningless).
  bool in_buffer = true;
};

// Packed rows (fine-tuning): row b of a [B, T] batch holds documents of lengths docs[b][0],
// docs[b][1], ... back to back (summing to at most T; what is left of the row is one more,
// ignored, stretch). Attention never crosses a document boundary and RoPE positions restart at 0
// in each document, so every document computes exactly what it would alone in a row of its own.
struct Packing {
  std::vector<std::vector<int>> docs;  // [B] lists of lengths; an empty list: the row is one document
};

struct Lora;  // model/lora.h

// A layer's four matrices (q|k|v fused, o, gate|up fused, down) in a block type (QLoRA: Q8_0 or
// Q4_0), frozen. Rows as in the f32 layout.
struct QuantLayer {
  WMatrix qkv, o, gate_up, down;
  Buffer<uint8_t> storage;  // owns the four matrices' bytes
};
// QLoRA's embedding and LM head in the same block type (head.data == embed.data when tied).
struct QuantTables {
  WMatrix embed, head;
  Buffer<uint8_t> storage;
};

struct TrainOptions {
  // Keep only each layer's input during the forward pass and recompute the rest of the layer in
  // the backward pass: activation memory drops from ~(10C + 4F + ...)·N per layer to C·N per layer,
  // for about one more forward pass of compute.
  bool recompute = false;
  // Mixed precision: every matmul (attention projections, MLP, LM head; forward and backward)
  // with its operands rounded to bf16 and f32 accumulation; weights, gradients, optimiser state,
  // norms, attention and softmax stay f32. Twice the matmul rate on CPUs with AVX512_BF16; on
  // others the same numbers, computed more slowly than f32.
  bool bf16 = false;
  // Called during the backward pass each time a stretch of the gradient buffer [begin, end) (in
  // floats) holds its final value for this call: LM head and final norm first, then each layer from
  // the last to the first, the embedding last. Data-parallel training starts summing those
  // gradients over ranks while the earlier layers are still being differentiated.
  std::function<void(size_t begin, size_t end)> on_grads_ready;
  // Document masking of packed rows (null: each row is one sequence).
  const Packing* packing = nullptr;
};

struct Activations;  // model.cpp: the forward pass's saved tensors and the backward's scratch

struct Model {
  ModelConfig config;
  std::vector<ParamInfo> params;  // in buffer order
  size_t num_floats = 0;          // length of each buffer (parameters plus 64-byte alignment gaps)
  // Where layer l's parameters start in the buffers; layer_begin[layers] is where the final norm
  // starts. The embedding is [0, layer_begin[0]).
  std::vector<size_t> layer_begin;
  FloatBuffer weights;            // allocated and zeroed by the constructor; see init_weights
  FloatBuffer grads;              // allocated by alloc_grads or the first forward_backward
  FloatBuffer adam_m, adam_v;     // allocated by alloc_optimizer_state

  // Adapters applied in every forward pass and trained by forward_backward when set (not owned;
  // see model/lora.h). With frozen, the base receives no gradient: no grads buffer is allocated
  // for it and only lora->grads is written (LoRA / QLoRA fine-tuning).
  Lora* lora = nullptr;
  bool frozen = false;
  // QLoRA: when not empty, every layer's matrices live here in a block type and are never
  // expanded to f32 as a whole (each matmul dequantizes one panel of rows at a time); `weights`
  // holds the rest (embedding, norms, biases, LM head). Requires frozen.
  std::vector<QuantLayer> qlayers;
  QuantTables qtables;  // with qlayers: the embedding and LM head (set_quant_tables)

  // matrix_type F32: everything in `weights`. Q8_0 / Q4_0: the layer matrices, the embedding and
  // the LM head are left out of the buffers (ParamInfo::in_buffer false) and must be filled with
  // set_quant_matrices and set_quant_tables.
  explicit Model(const ModelConfig& config, WType matrix_type = WType::F32);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ParamInfo* find(std::string_view name) const;  // null if absent
  const ParamInfo& param(std::string_view name) const;  // todae::Error naming it if absent
  float* weight(std::string_view name) { return weights.data + param(name).offset; }
  float* grad(std::string_view name) { return grads.data + param(name).offset; }

  std::unique_ptr<Activations> acts;
};

// QLoRA: stores layer l's matrices, given as f32 rows (q, k, v, o, gate, up, down in Hugging Face
// layout, each [out, in]) or already in the model's block type, quantized with ggml's rounding.
// `get(name)` returns a WMatrix for "q_proj", "k_proj", ... of that layer (any type; float types
// are quantized row by row, block types of the same kind are copied byte for byte).
void set_quant_matrices(Model& m, int layer, const std::function<WMatrix(const char* name)>& get);
// QLoRA: stores the embedding [V, C] and the LM head (null when the config ties them) the same way.
void set_quant_tables(Model& m, const WMatrix& embed, const WMatrix* lm_head);

// Normal(0, 0.02) for embeddings and matrices, with the residual-output projections (o_proj,
// down_proj) scaled by 1/sqrt(2·layers) so the residual stream's variance does not grow with depth
// (GPT-2); norm weights 1. Deterministic for a seed: each element's value is a function of (seed,
// tensor index, element index) only — independent of threads and of allocation.
void init_weights(Model& m, uint64_t seed);
void alloc_grads(Model& m);  // zeroed
void zero_grads(Model& m);
void alloc_optimizer_state(Model& m);  // adam_m, adam_v zeroed

// One AdamW step over all parameters (no weight decay on norm weights), using m.grads · grad_scale.
void adamw_step(Model& m, const AdamW& opt, int step, float grad_scale = 1.0f);
// Global L2 norm of the gradient buffer.
double grad_norm(const Model& m);

// Training step: tokens[B, T+1] (inputs are the first T of each row, targets the last T). Returns
// the mean cross-entropy and ADDS the gradient of grad_scale · mean loss to m.grads (so gradient
// accumulation over micro-batches is grad_scale = 1/steps, with zero_grads between optimiser steps).
float forward_backward(Model& m, const int32_t* tokens, int B, int T, float grad_scale = 1.0f,
                       const TrainOptions& opt = {});
// The same with separate inputs[B, T] and targets[B, T]; a negative target is ignored (masked out
// of the loss and the mean), e.g. for fine-tuning on answers only.
float forward_backward(Model& m, const int32_t* inputs, const int32_t* targets, int B, int T,
                       float grad_scale = 1.0f, const TrainOptions& opt = {});
// Evaluation: mean loss over tokens[B, T+1]; losses[B*T], if given, receives every position's loss.
float forward_loss(Model& m, const int32_t* tokens, int B, int T, float* losses = nullptr,
                   bool bf16 = false);
// The same with inputs[B, T] and targets[B, T] (negative: ignored) and optional packing; returns the
// mean over valid targets, and their count in *valid if given.
float forward_loss(Model& m, const int32_t* inputs, const int32_t* targets, int B, int T,
                   float* losses, bool bf16, const Packing* packing, int* valid = nullptr);
// Inference: logits for inputs[B, T] at positions 0..T-1: logits[B, T, V], or only the last
// position's logits[B, V] if last_only. The B×T×V logits are materialised only when asked for.
void forward_logits(Model& m, const int32_t* inputs, int B, int T, float* logits,
                    bool last_only = false, bool bf16 = false);

}  // namespace todae
