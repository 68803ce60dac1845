// The bridge from a loaded model (any file todae runs) to the training model of src/model, for
// fine-tuning: the same tensors, widened to f32, or — QLoRA — with the layer matrices kept in a
// block type. See infer.h.
#include <cstring>

#include "infer/infer.h"

namespace todae {

namespace {

// Rows of W into dst[rows, cols] as f32, one row at a time (any type).
void widen(const WMatrix& W, float* dst, const std::string& name, int rows, int cols) {
  if (W.rows != rows || W.cols != cols)
    fail("tensor ", name, " is [", W.rows, ", ", W.cols, "], the config says [", rows, ", ", cols, "]");
  for (int r = 0; r < rows; r++) dequantize_row(W.type, W.row(r), dst + size_t(r) * cols, cols);
}

}  // namespace

Model to_train_model(const InferModel& m, WType matrix_type) {
  const ModelConfig& c = m.config;
  Model t(c, matrix_type);
  const int C = c.hidden_size, V = c.vocab_size, D = c.head_dim;
  if (matrix_type != WType::F32) {
    set_quant_tables(t, m.embed, c.tie_word_embeddings ? nullptr : &m.lm_head);
  } else {
    widen(m.embed, t.weight("model.embed_tokens.weight"), "model.embed_tokens.weight", V, C);
    if (!c.tie_word_embeddings) widen(m.lm_head, t.weight("lm_head.weight"), "lm_head.weight", V, C);
  }
  std::memcpy(t.weight("model.norm.weight"), m.final_norm, sizeof(float) * C);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const InferLayer& L = m.layers[size_t(l)];
    const std::string p = cat("model.layers.", l, ".");
    std::memcpy(t.weight(p + "input_layernorm.weight"), L.attn_norm, sizeof(float) * C);
    std::memcpy(t.weight(p + "post_attention_layernorm.weight"), L.ffn_norm, sizeof(float) * C);
    if (c.qk_norm()) {
      std::memcpy(t.weight(p + "self_attn.q_norm.weight"), L.q_norm, sizeof(float) * D);
      std::memcpy(t.weight(p + "self_attn.k_norm.weight"), L.k_norm, sizeof(float) * D);
    }
    if (c.attention_bias) {
      if (!L.q_bias || !L.k_bias || !L.v_bias) fail("layer ", l, ": the model has no q/k/v biases its config asks for");
      std::memcpy(t.weight(p + "self_attn.q_proj.bias"), L.q_bias, sizeof(float) * c.q_dim());
      std::memcpy(t.weight(p + "self_attn.k_proj.bias"), L.k_bias, sizeof(float) * c.kv_dim());
      std::memcpy(t.weight(p + "self_attn.v_proj.bias"), L.v_bias, sizeof(float) * c.kv_dim());
    }
    const std::pair<const char*, const WMatrix*> mats[7] = {
        {"self_attn.q_proj", &L.q},  {"self_attn.k_proj", &L.k}, {"self_attn.v_proj", &L.v},
        {"self_attn.o_proj", &L.o},  {"mlp.gate_proj", &L.gate}, {"mlp.up_proj", &L.up},
        {"mlp.down_proj", &L.down}};
    if (matrix_type == WType::F32) {
      for (auto [name, W] : mats) {
        const ParamInfo& info = t.param(p + name + ".weight");
        widen(*W, t.weights.data + info.offset, info.name, int(info.shape[0]), int(info.shape[1]));
      }
    } else {
      set_quant_matrices(t, l, [&](const char* name) -> WMatrix {
        for (auto [full, W] : mats)
          if (std::strstr(full, name) && std::strlen(std::strstr(full, name)) == std::strlen(name)) return *W;
        fail("to_train_model: no matrix ", name);
      });
    }
  }
  return t;
}

}  // namespace todae
