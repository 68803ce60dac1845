// The bridge back from a training model (src/model) to an inference model, without a copy: the
// InferModel's matrices and vectors point into the training model's buffers, so evaluating the
// weights being trained costs no memory and no disk round trip. See infer.h (infer_view).
#include <memory>

#include "infer/infer.h"
#include "infer/infer_impl.h"
#include "model/lora.h"

namespace todae {

namespace {

// rows [row0, row0 + rows) of a matrix: the fused q|k|v and gate|up matrices of QLoRA's layers
// hold their parts one after the other, whole rows each.
WMatrix row_range(const WMatrix& W, int row0, int rows) {
  WMatrix out = W;
  out.rows = rows;
  out.data = W.row(row0);
  return out;
}

}  // namespace

InferModel infer_view(const Model& t, const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                      const LoadOptions& opt) {
  const ModelConfig& c = t.config;
  InferModel m;
  m.config = c;
  m.path = "(training weights)";
  m.format = "train";
  const float* w = t.weights.data;
  auto vec = [&](const std::string& name) { return static_cast<const float*>(w + t.param(name).offset); };
  // An f32 matrix [shape[0], shape[1]] in place.
  auto mat = [&](const std::string& name) {
    const ParamInfo& p = t.param(name);
    if (!p.in_buffer || p.shape.size() != 2) fail("infer_view: ", name, " is not an f32 matrix of the model");
    const int rows = int(p.shape[0]), cols = int(p.shape[1]);
    return WMatrix{WType::F32, rows, cols, w + p.offset, wtype_row_bytes(WType::F32, cols)};
  };
  const bool quant = !t.qlayers.empty();
  if (quant) {
    m.embed = t.qtables.embed;
    m.lm_head = t.qtables.head;
  } else {
    m.embed = mat("model.embed_tokens.weight");
    m.lm_head = c.tie_word_embeddings ? m.embed : mat("lm_head.weight");
  }
  m.final_norm = vec("model.norm.weight");
  const int F = c.intermediate_size;
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = cat("model.layers.", l, ".");
    InferLayer L;
    L.attn_norm = vec(p + "input_layernorm.weight");
    L.ffn_norm = vec(p + "post_attention_layernorm.weight");
    if (c.qk_norm()) L.q_norm = vec(p + "self_attn.q_norm.weight"), L.k_norm = vec(p + "self_attn.k_norm.weight");
    if (c.attention_bias) {
      L.q_bias = vec(p + "self_attn.q_proj.bias");
      L.k_bias = vec(p + "self_attn.k_proj.bias");
      L.v_bias = vec(p + "self_attn.v_proj.bias");
    }
    if (quant) {
      const QuantLayer& q = t.qlayers[size_t(l)];
      L.q = row_range(q.qkv, 0, c.q_dim());
      L.k = row_range(q.qkv, c.q_dim(), c.kv_dim());
      L.v = row_range(q.qkv, c.q_dim() + c.kv_dim(), c.kv_dim());
      L.o = q.o;
      L.gate = row_range(q.gate_up, 0, F);
      L.up = row_range(q.gate_up, F, F);
      L.down = q.down;
    } else {
      L.q = mat(p + "self_attn.q_proj.weight");
      L.k = mat(p + "self_attn.k_proj.weight");
      L.v = mat(p + "self_attn.v_proj.weight");
      L.o = mat(p + "self_attn.o_proj.weight");
      L.gate = mat(p + "mlp.gate_proj.weight");
      L.up = mat(p + "mlp.up_proj.weight");
      L.down = mat(p + "mlp.down_proj.weight");
    }
    m.layers.push_back(L);
  }
  if (t.lora) {
    // Not owned: an aliasing shared_ptr with no control block, so the training run keeps the adapter.
    m.adapters.push_back(std::shared_ptr<const Lora>(std::shared_ptr<const Lora>(), t.lora));
    m.adapter_names.push_back("training");
  }
  if (!tokenizer_json.empty())
    set_tokenizer_texts(m, tokenizer_json, tokenizer_config_json, "tokenizer.json", "tokenizer_config.json");
  finish_model(m, opt);
  return m;
}

}  // namespace todae
