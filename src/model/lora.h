// todae model, LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a frozen
// linear layer W [out, in] gains a trainable low-rank update, y = x·Wᵀ + scale · (x·Aᵀ)·Bᵀ with
// A [r, in], B [out, r], B = 0 at the start (so the adapted model starts as the base), and
// scale = alpha / r (alpha / sqrt(r) with rsLoRA, Kalajdzievski 2023). The same struct serves
// training (src/model's forward/backward; grads and AdamW moments beside the weights) and inference
// (src/infer's forward_batch, several adapters over one base in one batch).
//
// Layout: like the model's, one flat f32 buffer per role (weights, grads, adam_m, adam_v) with a
// table of named views; names are PEFT's without the "base_model.model." prefix, e.g.
// "model.layers.3.self_attn.q_proj.lora_A.weight" (PEFT adds the prefix on disk, see src/infer's
// adapter files).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"

namespace todae {

// The seven linear layers of a Llama-family decoder layer that can carry an adapter, in the order
// of PEFT's and Hugging Face's module names.
enum LoraTarget : int { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kLoraTargets };
// "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
const char* lora_target_name(int target);
// "self_attn" for q/k/v/o, "mlp" for gate/up/down: the module path inside a layer.
const char* lora_target_module(int target);
inline constexpr uint32_t kLoraAllLinear = (1u << kLoraTargets) - 1;
// "all-linear" (PEFT's spelling), or a comma-separated list of module names ("q_proj,v_proj"; the
// short forms "q", "k", "v", "o", "gate", "up", "down" too). Error naming the unknown name.
uint32_t parse_lora_targets(std::string_view spec);
std::vector<std::string> lora_target_names(uint32_t mask);  // in target order

struct LoraConfig {
  int rank = 16;
  float alpha = 32;
  bool rslora = false;
  uint32_t targets = kLoraAllLinear;  // bit t set: target t of every layer has an adapter
  float scale() const { return rslora ? alpha / std::sqrt(float(rank)) : alpha / float(rank); }
};

// Where one adapter's A and B live in the buffers (offsets in floats), and its shape.
struct LoraSlot {
  bool on = false;
  int in = 0, out = 0;  // the base matrix is [out, in]; A is [rank, in], B is [out, rank]
  size_t a = 0, b = 0;
};

struct Lora {
  LoraConfig config;
  // The factor applied to B·A in the forward pass: config.scale() times the user's multiplier
  // (`--lora DIR:0.5`). Set by make_lora to config.scale().
  float scale = 0;
  std::vector<std::array<LoraSlot, kLoraTargets>> layers;
  std::vector<ParamInfo> params;  // A and B of every slot that is on, in buffer order
  size_t num_floats = 0;
  FloatBuffer weights;            // allocated (zeroed) by make_lora
  FloatBuffer grads;              // allocated by the first forward_backward that trains it
  FloatBuffer adam_m, adam_v;     // allocated by the optimizer's owner
  std::string base_model;         // base_model_name_or_path for adapter_config.json (may be empty)

  const float* A(int layer, int target) const { return weights.data + layers[layer][target].a; }
  const float* B(int layer, int target) const { return weights.data + layers[layer][target].b; }
  bool has(int layer, int target) const { return layers[layer][target].on; }
};

// Input and output widths of target t in a model of this config (q: [q_dim, C], down: [C, F], ...).
void lora_target_shape(const ModelConfig& c, int target, int* in, int* out);

// Adapters on the targets of every layer, A and B zero. Error for rank < 1.
Lora make_lora(const ModelConfig& c, const LoraConfig& cfg);
// PEFT's default init: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
// Deterministic for a seed (a function of seed, tensor index and element index only).
void init_lora(Lora& lora, uint64_t seed);

// ---- the kernels of one adapter ----------------------------------------------------------------
// out[N, ·] (rows ldo floats apart, the adapter's `out` columns starting at out) +=
// scale · (x[N, in]·Aᵀ)·Bᵀ. u[N, rank], if given, receives scale · x·Aᵀ (saved for the backward
// pass); else a per-thread scratch is used. bf16: the two small matmuls with bf16 operands.
void lora_forward(float* out, int ldo, const float* x, int N, const LoraSlot& s, int rank,
                  const float* weights, float scale, float* u = nullptr, bool bf16 = false);
// Given dout[N, ·] (rows ldd apart) of that output, x and the saved u:
//   dB[out, r] += doutᵀ·u;  du = scale · dout·B;  dA[r, in] += duᵀ·x;  dx[N, in] += du·A.
// dx may be null (first layer's input needs no gradient); du_scratch holds N·rank floats.
void lora_backward(float* dx, float* grads, const float* dout, int ldd, const float* x, const float* u,
                   int N, const LoraSlot& s, int rank, const float* weights, float scale,
                   float* du_scratch, bool bf16 = false);

// W[out, in] += scale · B·A for one slot (merging an adapter into its base for export).
void lora_merge(float* W, const Lora& lora, int layer, int target);

}  // namespace todae
