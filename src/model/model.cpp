// The Llama-family decoder: parameter table, init, forward and backward.
//
// One layer, as Hugging Face's LlamaDecoderLayer / Qwen3DecoderLayer computes it:
//   h   = RMSNorm(x)                         ln1, rstd1
//   qkv = h · [Wq|Wk|Wv]ᵀ                    one matmul into [N, (H + 2·KVH)·D]
//   (Qwen3) q, k = RMSNorm per head          qk_raw keeps the pre-norm copy for the backward pass
//   q, k = RoPE(q, k)                        in place
//   a   = causal attention(q, k, v)          att, lse
//   x'  = x + a · Woᵀ                        xmid
//   h'  = RMSNorm(x')                        ln2, rstd2
//   g|u = h' · [Wgate|Wup]ᵀ                  one matmul into [N, 2F]
//   y   = x' + (silu(g)·u) · Wdownᵀ          h = silu(g)·u
// and the backward pass walks the same list upwards, each kernel's backward next to its forward.
//
// Fine-tuning goes through the same layer code: a LoRA adapter (model/lora.h) adds its low-rank
// term to the output of each matmul it targets (before the bias-free QK-norm/RoPE, as PEFT wraps
// the nn.Linear), a frozen base skips every base gradient, QLoRA's block-type matrices go
// through matmul_dq_*, and packed rows split attention into one call per document.
#include "model/model.h"

#include <cmath>
#include <cstring>

#include "model/lora.h"

namespace todae {

namespace {
struct LayerOffsets {
  size_t ln1, qkv, qkv_bias, q_norm, k_norm, o, ln2, gate_up, down;
};
}  // namespace

// Everything the forward pass saves for the backward pass, plus the backward's scratch. Sized for
// the largest (B, T) seen; `stored` layers of per-layer tensors (all layers when training without
// recomputation, else one slot reused by every layer).
struct Activations {
  // parameter layout (fixed for the model)
  std::vector<LayerOffsets> layers;
  size_t embed = 0, norm = 0, head = 0;

  int B = 0, T = 0, stored = 0;
  FloatBuffer resid;  // [L+1][N][C]: the input of every layer, then the last layer's output
  FloatBuffer ln1, rstd1, qkv, qk_raw, qk_rstd, att, lse, xmid, ln2, rstd2, gu, h;
  FloatBuffer lnf, rstdf;
  FloatBuffer dres, dln, dqkv, datt, dgu, dh;
  FloatBuffer cos, sin;
  int rope_T = -1;
  std::vector<int32_t> pos, inputs, targets;
  // Packed rows: attention runs per segment (first row index in [0, N), length); empty: per row.
  std::vector<std::pair<int, int>> segments;
  // LoRA: u = scale·x·Aᵀ of every adapter, [stored][kLoraTargets][N][rank]; du scratch [N][rank].
  FloatBuffer lora_u, lora_du;
  // Gradients of a frozen base's norm weights land here and are dropped.
  FloatBuffer discard;
};

// ---- parameter table --------------------------------------------------------------------------

Model::Model(const ModelConfig& c, WType matrix_type) : config(c), acts(std::make_unique<Activations>()) {
  config.validate();
  const bool quant = matrix_type != WType::F32;
  if (quant) {
    if (!wtype_is_block(matrix_type))
      fail("a quantized training base must be q8_0 or q4_0, not ", wtype_name(matrix_type));
    if (c.hidden_size % kQuantBlock || c.q_dim() % kQuantBlock || c.intermediate_size % kQuantBlock)
      fail(wtype_name(matrix_type), " needs hidden_size, heads·head_dim and intermediate_size divisible by 32 (",
           c.hidden_size, ", ", c.q_dim(), ", ", c.intermediate_size, ")");
    frozen = true;
    qlayers.resize(c.num_hidden_layers);
    for (QuantLayer& q : qlayers) q.qkv.type = q.o.type = q.gate_up.type = q.down.type = matrix_type;
    qtables.embed.type = qtables.head.type = matrix_type;
  }
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  size_t off = 0;
  // Tensors in a group are adjacent (one matmul uses them together); groups start on 64 bytes.
  auto group = [&] { off = (off + 15) / 16 * 16; };
  auto add = [&](std::string name, std::vector<int64_t> shape, bool quantizable = false) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.numel = 1;
    for (int64_t d : p.shape) p.numel *= static_cast<size_t>(d);
    p.weight_decay = p.shape.size() > 1;
    if (quantizable && quant) {
      p.in_buffer = false;  // lives in qlayers / qtables
    } else {
      p.offset = off;
      off += p.numel;
    }
    params.push_back(std::move(p));
    return params.back().offset;
  };
  Activations& a = *acts;
  group();
  a.embed = add("model.embed_tokens.weight", {V, C}, true);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOffsets lo{};
    group();
    layer_begin.push_back(off);
    lo.ln1 = add(p + "input_layernorm.weight", {C});
    group();
    lo.qkv = add(p + "self_attn.q_proj.weight", {c.q_dim(), C}, true);
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), C}, true);
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), C}, true);
    if (c.attention_bias) {  // Qwen2: one [q|k|v] bias, like the fused matrix
      group();
      lo.qkv_bias = add(p + "self_attn.q_proj.bias", {c.q_dim()});
      add(p + "self_attn.k_proj.bias", {c.kv_dim()});
      add(p + "self_attn.v_proj.bias", {c.kv_dim()});
    }
    if (c.qk_norm()) {
      group();
      lo.q_norm = add(p + "self_attn.q_norm.weight", {D});
      lo.k_norm = add(p + "self_attn.k_norm.weight", {D});
    }
    group();
    lo.o = add(p + "self_attn.o_proj.weight", {C, c.q_dim()}, true);
    group();
    lo.ln2 = add(p + "post_attention_layernorm.weight", {C});
    group();
    lo.gate_up = add(p + "mlp.gate_proj.weight", {F, C}, true);
    add(p + "mlp.up_proj.weight", {F, C}, true);
    group();
    lo.down = add(p + "mlp.down_proj.weight", {C, F}, true);
    a.layers.push_back(lo);
  }
  group();
  layer_begin.push_back(off);
  a.norm = add("model.norm.weight", {C});
  group();
  a.head = c.tie_word_embeddings ? a.embed : add("lm_head.weight", {V, C}, true);
  group();
  num_floats = off;
  weights = FloatBuffer(num_floats);
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ParamInfo* Model::find(std::string_view name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& Model::param(std::string_view name) const {
  const ParamInfo* p = find(name);
  if (!p) fail("model has no tensor named '", name, "'");
  return *p;
}

// ---- init, grads, optimiser -------------------------------------------------------------------

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Standard normals that depend only on (key, j): Box-Muller on two hashed uniforms gives the pair
// of elements 2j and 2j+1.
void normal_pair(uint64_t key, uint64_t j, double* z0, double* z1) {
  uint64_t a = splitmix64(key ^ splitmix64(2 * j)), b = splitmix64(key ^ splitmix64(2 * j + 1));
  double u1 = static_cast<double>((a >> 11) + 1) * 0x1p-53;  // (0, 1]
  double u2 = static_cast<double>(b >> 11) * 0x1p-53;
  double r = std::sqrt(-2.0 * std::log(u1));
  *z0 = r * std::cos(2.0 * M_PI * u2);
  *z1 = r * std::sin(2.0 * M_PI * u2);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void init_weights(Model& m, uint64_t seed) {
  const double std_base = 0.02;
  const double std_out = std_base / std::sqrt(2.0 * m.config.num_hidden_layers);
  struct Task {
    size_t param, begin, end;
  };
  std::vector<Task> tasks;
  const size_t chunk = size_t{1} << 16;
  for (size_t p = 0; p < m.params.size(); p++)
    for (size_t b = 0; m.params[p].in_buffer && b < m.params[p].numel; b += chunk)
      tasks.push_back({p, b, std::min(m.params[p].numel, b + chunk)});
  parallel_for(tasks.size(), get_threads(), [&](size_t t) {
    const Task& task = tasks[t];
    const ParamInfo& p = m.params[task.param];
    float* w = m.weights.data + p.offset;
    if (p.shape.size() == 1) {  // norm weights 1, biases 0
      const float v = ends_with(p.name, ".bias") ? 0.0f : 1.0f;
      for (size_t i = task.begin; i < task.end; i++) w[i] = v;
      return;
    }
    const bool out_proj = ends_with(p.name, "o_proj.weight") || ends_with(p.name, "down_proj.weight");
    const double sd = out_proj ? std_out : std_base;
    const uint64_t key = splitmix64(seed * 0x632be59bd9b4e019ull + task.param);
    for (size_t i = task.begin; i < task.end; i += 2) {  // chunks start at even offsets
      double z0, z1;
      normal_pair(key, i / 2, &z0, &z1);
      w[i] = static_cast<float>(sd * z0);
      if (i + 1 < task.end) w[i + 1] = static_cast<float>(sd * z1);
    }
  });
}

void alloc_grads(Model& m) {
  if (m.frozen) return;  // a frozen base has no gradient buffer
  if (m.grads.size != m.num_floats) m.grads = FloatBuffer(m.num_floats);
}
void zero_grads(Model& m) {
  alloc_grads(m);
  m.grads.zero();
  if (m.lora) m.lora->grads.zero();
}
void alloc_optimizer_state(Model& m) {
  if (m.adam_m.size != m.num_floats) m.adam_m = FloatBuffer(m.num_floats);
  if (m.adam_v.size != m.num_floats) m.adam_v = FloatBuffer(m.num_floats);
}

namespace {
// Row r of src into row r0 + r of dst (a block type): copied when the types match, else widened
// and quantized one row at a time.
void copy_rows(const WMatrix& dst, int row0, const WMatrix& src, std::vector<float>& row) {
  row.resize(static_cast<size_t>(src.cols));
  for (int r = 0; r < src.rows; r++) {
    uint8_t* out = const_cast<uint8_t*>(dst.row(row0 + r));
    if (src.type == dst.type) {
      std::memcpy(out, src.row(r), dst.row_bytes);
    } else {
      dequantize_row(src.type, src.row(r), row.data(), src.cols);
      quantize_row(dst.type, row.data(), out, src.cols);
    }
  }
}
}  // namespace

void set_quant_tables(Model& m, const WMatrix& embed, const WMatrix* head) {
  if (m.qlayers.empty()) fail("set_quant_tables: the model's tables are f32 (construct it with a block type)");
  const ModelConfig& c = m.config;
  const WType t = m.qtables.embed.type;
  const int V = c.vocab_size, C = c.hidden_size;
  const bool tied = c.tie_word_embeddings;
  if (!tied && !head) fail("set_quant_tables: the config has an untied lm_head; give it");
  for (const WMatrix* w : {&embed, tied ? &embed : head})
    if (w->rows != V || w->cols != C)
      fail("embedding/lm_head: shape [", w->rows, ", ", w->cols, "], expected [", V, ", ", C, "]");
  const size_t rb = wtype_row_bytes(t, C);
  m.qtables.storage = Buffer<uint8_t>(size_t(V) * rb * (tied ? 1 : 2));
  m.qtables.embed = WMatrix{t, V, C, m.qtables.storage.data, rb};
  m.qtables.head = tied ? m.qtables.embed : WMatrix{t, V, C, m.qtables.storage.data + size_t(V) * rb, rb};
  std::vector<float> row;
  copy_rows(m.qtables.embed, 0, embed, row);
  if (!tied) copy_rows(m.qtables.head, 0, *head, row);
}

void set_quant_matrices(Model& m, int layer, const std::function<WMatrix(const char* name)>& get) {
  if (m.qlayers.empty()) fail("set_quant_matrices: the model's matrices are f32 (construct it with a block type)");
  if (layer < 0 || layer >= static_cast<int>(m.qlayers.size())) fail("set_quant_matrices: no layer ", layer);
  const ModelConfig& c = m.config;
  QuantLayer& q = m.qlayers[static_cast<size_t>(layer)];
  const WType t = q.qkv.type;
  const int C = c.hidden_size, F = c.intermediate_size;
  // (each HF matrix fills its rows of the fused one, one row at a time: no f32 copy of a matrix)
  struct Part {
    WMatrix* dst;
    int rows, cols;
  };
  const Part parts[4] = {{&q.qkv, c.qkv_dim(), C}, {&q.o, C, c.q_dim()}, {&q.gate_up, 2 * F, C}, {&q.down, C, F}};
  size_t total = 0;
  for (const Part& p : parts) total += size_t(p.rows) * wtype_row_bytes(t, p.cols);
  q.storage = Buffer<uint8_t>(total);
  size_t off = 0;
  for (const Part& p : parts) {
    *p.dst = WMatrix{t, p.rows, p.cols, q.storage.data + off, wtype_row_bytes(t, p.cols)};
    off += size_t(p.rows) * p.dst->row_bytes;
  }
  std::vector<float> row;
  auto fill = [&](WMatrix& dst, int row0, const char* name, int rows, int cols) {
    WMatrix src = get(name);
    if (src.rows != rows || src.cols != cols)
      fail("layer ", layer, " ", name, ": shape [", src.rows, ", ", src.cols, "], expected [", rows, ", ", cols, "]");
    copy_rows(dst, row0, src, row);
  };
  fill(q.qkv, 0, "q_proj", c.q_dim(), C);
  fill(q.qkv, c.q_dim(), "k_proj", c.kv_dim(), C);
  fill(q.qkv, c.q_dim() + c.kv_dim(), "v_proj", c.kv_dim(), C);
  fill(q.o, 0, "o_proj", C, c.q_dim());
  fill(q.gate_up, 0, "gate_proj", F, C);
  fill(q.gate_up, F, "up_proj", F, C);
  fill(q.down, 0, "down_proj", C, F);
}

void adamw_step(Model& m, const AdamW& opt, int step, float grad_scale) {
  alloc_grads(m);
  alloc_optimizer_state(m);
  for (const ParamInfo& p : m.params)
    if (p.in_buffer) adamw_update(m.weights.data + p.offset, m.grads.data + p.offset, m.adam_m.data + p.offset,
                 m.adam_v.data + p.offset, p.numel, opt, step, grad_scale,
                 p.weight_decay ? opt.weight_decay : 0.0f);
}

double grad_norm(const Model& m) {
  if (!m.grads.data) return 0.0;
  return std::sqrt(sum_squares(m.grads.data, m.num_floats));
}

// ---- forward ----------------------------------------------------------------------------------

namespace {

// The positions and attention segments of a batch: row by row, or document by document.
void set_positions(Activations& a, int B, int T, const Packing* packing) {
  const size_t N = static_cast<size_t>(B) * T;
  a.pos.resize(N);
  a.segments.clear();
  if (!packing) {
    for (size_t n = 0; n < N; n++) a.pos[n] = static_cast<int32_t>(n % T);
    return;
  }
  if (static_cast<int>(packing->docs.size()) != B)
    fail("packing: ", packing->docs.size(), " rows of document lengths for a batch of ", B);
  for (int b = 0; b < B; b++) {
    int at = 0;
    auto segment = [&](int len) {
      for (int i = 0; i < len; i++) a.pos[static_cast<size_t>(b) * T + at + i] = i;
      a.segments.push_back({b * T + at, len});
      at += len;
    };
    for (int len : packing->docs[static_cast<size_t>(b)]) {
      if (len <= 0 || at + len > T) fail("packing: row ", b, ": document lengths must be positive and sum to at most ", T);
      segment(len);
    }
    if (at < T) segment(T - at);  // the rest of the row (padding) attends only to itself
  }
}

void prepare(Model& m, int B, int T, int stored, const Packing* packing) {
  const ModelConfig& c = m.config;
  Activations& a = *m.acts;
  if (B <= 0 || T <= 0) fail("batch and sequence length must be positive, got B=", B, " T=", T);
  const size_t N = static_cast<size_t>(B) * T, C = c.hidden_size, L = c.num_hidden_layers;
  const size_t F = c.intermediate_size, QKV = c.qkv_dim(), HD = c.q_dim(), H = c.num_attention_heads;
  const size_t S = static_cast<size_t>(stored);
  a.resid.reserve((L + 1) * N * C);
  a.ln1.reserve(S * N * C);
  a.rstd1.reserve(S * N);
  a.qkv.reserve(S * N * QKV);
  if (c.qk_norm()) {
    a.qk_raw.reserve(S * N * QKV);
    a.qk_rstd.reserve(S * N * (H + c.num_key_value_heads));
  }
  a.att.reserve(S * N * HD);
  a.lse.reserve(S * N * H);
  a.xmid.reserve(S * N * C);
  a.ln2.reserve(S * N * C);
  a.rstd2.reserve(S * N);
  a.gu.reserve(S * N * 2 * F);
  a.h.reserve(S * N * F);
  a.lnf.reserve(N * C);
  a.rstdf.reserve(N);
  if (m.lora) a.lora_u.reserve(S * kLoraTargets * N * static_cast<size_t>(m.lora->config.rank));
  a.B = B, a.T = T, a.stored = stored;
  if (a.rope_T != T) {
    const int D = c.head_dim;
    a.cos.reserve(static_cast<size_t>(T) * D / 2);
    a.sin.reserve(static_cast<size_t>(T) * D / 2);
    // dynamic NTK scaling depends on the sequence length, so the table does too
    rope_table(a.cos.data, a.sin.data, T, D, c.rope_theta, c.rope_scaling, c.max_position_embeddings, T);
    a.rope_T = T;
  }
  set_positions(a, B, T, packing);
}

void prepare_backward(Model& m) {
  const ModelConfig& c = m.config;
  Activations& a = *m.acts;
  const size_t N = static_cast<size_t>(a.B) * a.T, C = c.hidden_size, F = c.intermediate_size;
  a.dres.reserve(N * C);
  a.dln.reserve(N * C);
  a.dqkv.reserve(N * c.qkv_dim());
  a.datt.reserve(N * c.q_dim());
  a.dgu.reserve(N * 2 * F);
  a.dh.reserve(N * F);
  alloc_grads(m);
  if (m.frozen) {
    a.discard.reserve(std::max<size_t>(C, c.head_dim));
    a.discard.zero();
  }
  if (m.lora) {
    a.lora_du.reserve(N * static_cast<size_t>(m.lora->config.rank));
    if (m.lora->grads.size != m.lora->num_floats) m.lora->grads = FloatBuffer(m.lora->num_floats);
  }
}

// Pointers to one stored slot of the per-layer activations.
struct LayerActs {
  float *x, *y, *ln1, *rstd1, *qkv, *qk_raw, *qk_rstd, *att, *lse, *xmid, *ln2, *rstd2, *gu, *h;
  float* lora_u;  // [kLoraTargets][N][rank], or null without an adapter
};

LayerActs layer_acts(Model& m, int l, int slot) {
  const ModelConfig& c = m.config;
  Activations& a = *m.acts;
  const size_t N = static_cast<size_t>(a.B) * a.T, C = c.hidden_size, F = c.intermediate_size;
  const size_t QKV = c.qkv_dim(), H = c.num_attention_heads, s = static_cast<size_t>(slot);
  LayerActs r;
  r.x = a.resid.data + static_cast<size_t>(l) * N * C;
  r.y = r.x + N * C;
  r.ln1 = a.ln1.data + s * N * C;
  r.rstd1 = a.rstd1.data + s * N;
  r.qkv = a.qkv.data + s * N * QKV;
  r.qk_raw = c.qk_norm() ? a.qk_raw.data + s * N * QKV : nullptr;
  r.qk_rstd = c.qk_norm() ? a.qk_rstd.data + s * N * (H + c.num_key_value_heads) : nullptr;
  r.att = a.att.data + s * N * c.q_dim();
  r.lse = a.lse.data + s * N * H;
  r.xmid = a.xmid.data + s * N * C;
  r.ln2 = a.ln2.data + s * N * C;
  r.rstd2 = a.rstd2.data + s * N;
  r.gu = a.gu.data + s * N * 2 * F;
  r.h = a.h.data + s * N * F;
  r.lora_u = m.lora ? a.lora_u.data + s * kLoraTargets * N * static_cast<size_t>(m.lora->config.rank) : nullptr;
  return r;
}

// The base's matrices of one layer: f32 views into the weight buffer, or QLoRA's block matrices.
enum Mat { kQKV, kO, kGateUp, kDown };

const WMatrix* quant_mat(const Model& m, int l, Mat which) {
  if (m.qlayers.empty()) return nullptr;
  const QuantLayer& q = m.qlayers[static_cast<size_t>(l)];
  return which == kQKV ? &q.qkv : which == kO ? &q.o : which == kGateUp ? &q.gate_up : &q.down;
}

// out[N, OC] (= or +=) in[N, C]·Wᵀ (+ bias)
void base_forward(const Model& m, int l, Mat which, size_t w_off, float* out, const float* in, const float* bias,
                  int N, int C, int OC, bool accumulate, bool bf) {
  if (const WMatrix* q = quant_mat(m, l, which)) {
    if (q->data == nullptr) fail("layer ", l, ": quantized matrices not set (set_quant_matrices)");
    matmul_dq_forward(out, in, N, *q, accumulate, bf);
    if (bias)
      for (int n = 0; n < N; n++) add_inplace(out + static_cast<size_t>(n) * OC, bias, static_cast<size_t>(OC));
  } else {
    matmul_forward(out, in, m.weights.data + w_off, bias, N, C, OC, accumulate, bf);
  }
}

// dinp[N, C] = dout·W; the weight (and bias) gradients too unless the base is frozen.
void base_backward(Model& m, int l, Mat which, size_t w_off, size_t bias_off, float* dinp, const float* dout,
                   const float* inp, int N, int C, int OC, bool bf) {
  if (const WMatrix* q = quant_mat(m, l, which)) {
    matmul_dq_backward(dinp, dout, N, *q, false, bf);
    return;
  }
  float* G = m.frozen ? nullptr : m.grads.data;
  matmul_backward(dinp, G ? G + w_off : nullptr, G && bias_off ? G + bias_off : nullptr, dout, inp,
                  m.weights.data + w_off, N, C, OC, false, bf);
}

// Where target t's output columns start in the matmul output it shares (q|k|v, gate|up).
int lora_col(const ModelConfig& c, int t) {
  switch (t) {
    case kLoraK: return c.q_dim();
    case kLoraV: return c.q_dim() + c.kv_dim();
    case kLoraUp: return c.intermediate_size;
    default: return 0;
  }
}

void lora_fwd(Model& m, int l, int t, float* out, int ldo, const float* x, const LayerActs& acts, bool bf) {
  const Lora* lo = m.lora;
  if (!lo || !lo->has(l, t)) return;
  const int N = m.acts->B * m.acts->T, r = lo->config.rank;
  float* u = acts.lora_u + static_cast<size_t>(t) * N * r;
  lora_forward(out + lora_col(m.config, t), ldo, x, N, lo->layers[l][t], r, lo->weights.data, lo->scale, u, bf);
}

void lora_bwd(Model& m, int l, int t, float* dx, const float* dout, int ldd, const float* x, const LayerActs& acts,
              bool bf) {
  Lora* lo = m.lora;
  if (!lo || !lo->has(l, t)) return;
  const int N = m.acts->B * m.acts->T, r = lo->config.rank;
  const float* u = acts.lora_u + static_cast<size_t>(t) * N * r;
  lora_backward(dx, lo->grads.data, dout + lora_col(m.config, t), ldd, x, u, N, lo->layers[l][t], r,
                lo->weights.data, lo->scale, m.acts->lora_du.data, bf);
}

// Causal attention over whole rows, or over each packed document on its own.
void attention_fwd(Activations& a, float* out, float* lse, const float* qkv, int H, int KVH, int D, int QKV) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  if (a.segments.empty()) return attention_forward(out, lse, qkv, a.B, a.T, H, KVH, D, scale);
  for (auto [n0, len] : a.segments)
    attention_forward(out + static_cast<size_t>(n0) * H * D, lse + static_cast<size_t>(n0) * H,
                      qkv + static_cast<size_t>(n0) * QKV, 1, len, H, KVH, D, scale);
}

void attention_bwd(Activations& a, float* dqkv, const float* dout, const float* qkv, const float* out,
                   const float* lse, int H, int KVH, int D, int QKV) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  if (a.segments.empty()) return attention_backward(dqkv, dout, qkv, out, lse, a.B, a.T, H, KVH, D, scale);
  for (auto [n0, len] : a.segments) {
    const size_t q0 = static_cast<size_t>(n0) * QKV, o0 = static_cast<size_t>(n0) * H * D;
    attention_backward(dqkv + q0, dout + o0, qkv + q0, out + o0, lse + static_cast<size_t>(n0) * H, 1, len, H, KVH,
                       D, scale);
  }
}

void layer_forward(Model& m, int l, int slot, bool bf) {
  const ModelConfig& c = m.config;
  Activations& a = *m.acts;
  const LayerOffsets& w = a.layers[l];
  const float* W = m.weights.data;
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, F = c.intermediate_size;
  const int H = c.num_attention_heads, KVH = c.num_key_value_heads, D = c.head_dim, QKV = c.qkv_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  LayerActs x = layer_acts(m, l, slot);

  rmsnorm_forward(x.ln1, x.rstd1, x.x, W + w.ln1, N, C, eps);
  base_forward(m, l, kQKV, w.qkv, x.qkv, x.ln1, c.attention_bias ? W + w.qkv_bias : nullptr, N, C, QKV, false, bf);
  for (int t : {kLoraQ, kLoraK, kLoraV}) lora_fwd(m, l, t, x.qkv, QKV, x.ln1, x, bf);
  if (c.qk_norm()) {
    std::memcpy(x.qk_raw, x.qkv, sizeof(float) * N * QKV);
    float* rq = x.qk_rstd;
    float* rk = x.qk_rstd + static_cast<size_t>(N) * H;
    head_rmsnorm_forward(x.qkv, rq, x.qk_raw, W + w.q_norm, N, H, D, QKV, eps);
    head_rmsnorm_forward(x.qkv + H * D, rk, x.qk_raw + H * D, W + w.k_norm, N, KVH, D, QKV, eps);
  }
  // q and k heads are adjacent in each row: one call rotates both
  rope_forward(x.qkv, a.cos.data, a.sin.data, a.pos.data(), N, H + KVH, D, QKV);
  attention_fwd(a, x.att, x.lse, x.qkv, H, KVH, D, QKV);
  std::memcpy(x.xmid, x.x, sizeof(float) * N * C);
  base_forward(m, l, kO, w.o, x.xmid, x.att, nullptr, N, c.q_dim(), C, /*accumulate=*/true, bf);
  lora_fwd(m, l, kLoraO, x.xmid, C, x.att, x, bf);
  rmsnorm_forward(x.ln2, x.rstd2, x.xmid, W + w.ln2, N, C, eps);
  base_forward(m, l, kGateUp, w.gate_up, x.gu, x.ln2, nullptr, N, C, 2 * F, false, bf);
  for (int t : {kLoraGate, kLoraUp}) lora_fwd(m, l, t, x.gu, 2 * F, x.ln2, x, bf);
  swiglu_forward(x.h, x.gu, N, F);
  std::memcpy(x.y, x.xmid, sizeof(float) * N * C);
  base_forward(m, l, kDown, w.down, x.y, x.h, nullptr, N, F, C, /*accumulate=*/true, bf);
  lora_fwd(m, l, kLoraDown, x.y, C, x.h, x, bf);
}

// Embedding, every layer, final norm. stored_all: keep every layer's activations (for backward).
void forward_body(Model& m, const int32_t* inputs, int B, int T, bool stored_all, bool bf,
                  const Packing* packing = nullptr) {
  const ModelConfig& c = m.config;
  const int L = c.num_hidden_layers;
  prepare(m, B, T, stored_all ? L : 1, packing);
  Activations& a = *m.acts;
  const int N = B * T, C = c.hidden_size;
  if (!m.qlayers.empty()) {
    if (!m.qtables.embed.data) fail("the quantized embedding is not set (set_quant_tables)");
    embed_rows(a.resid.data, m.qtables.embed, inputs, N);
  } else {
    embedding_forward(a.resid.data, inputs, m.weights.data + a.embed, N, C, c.vocab_size);
  }
  for (int l = 0; l < L; l++) layer_forward(m, l, stored_all ? l : 0, bf);
  rmsnorm_forward(a.lnf.data, a.rstdf.data, a.resid.data + static_cast<size_t>(L) * N * C,
                  m.weights.data + a.norm, N, C, static_cast<float>(c.rms_norm_eps));
}

// ---- backward ---------------------------------------------------------------------------------

// In: a.dres = ∂L/∂(layer output). Out: a.dres = ∂L/∂(layer input); parameter grads accumulated
// (the adapters' only, when the base is frozen).
void layer_backward(Model& m, int l, int slot, bool bf) {
  const ModelConfig& c = m.config;
  Activations& a = *m.acts;
  const LayerOffsets& w = a.layers[l];
  const float* W = m.weights.data;
  // A frozen base's norm-weight gradients are computed (the kernels fuse them) into a discard buffer.
  auto G = [&](size_t off) { return m.frozen ? a.discard.data : m.grads.data + off; };
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, F = c.intermediate_size;
  const int H = c.num_attention_heads, KVH = c.num_key_value_heads, D = c.head_dim, QKV = c.qkv_dim();
  LayerActs x = layer_acts(m, l, slot);
  float *dres = a.dres.data, *dln = a.dln.data;

  // y = x' + h·Wdownᵀ (+ LoRA)
  base_backward(m, l, kDown, w.down, 0, a.dh.data, dres, x.h, N, F, C, bf);
  lora_bwd(m, l, kLoraDown, a.dh.data, dres, C, x.h, x, bf);
  swiglu_backward(a.dgu.data, a.dh.data, x.gu, N, F);
  base_backward(m, l, kGateUp, w.gate_up, 0, dln, a.dgu.data, x.ln2, N, C, 2 * F, bf);
  for (int t : {kLoraGate, kLoraUp}) lora_bwd(m, l, t, dln, a.dgu.data, 2 * F, x.ln2, x, bf);
  rmsnorm_backward(dres, G(w.ln2), dln, x.xmid, W + w.ln2, x.rstd2, N, C);  // dres += : now ∂L/∂x'
  // x' = x + att·Woᵀ (+ LoRA)
  base_backward(m, l, kO, w.o, 0, a.datt.data, dres, x.att, N, c.q_dim(), C, bf);
  lora_bwd(m, l, kLoraO, a.datt.data, dres, C, x.att, x, bf);
  attention_bwd(a, a.dqkv.data, a.datt.data, x.qkv, x.att, x.lse, H, KVH, D, QKV);
  rope_backward(a.dqkv.data, a.cos.data, a.sin.data, a.pos.data(), N, H + KVH, D, QKV);
  if (c.qk_norm()) {
    const float* rq = x.qk_rstd;
    const float* rk = x.qk_rstd + static_cast<size_t>(N) * H;
    head_rmsnorm_backward(a.dqkv.data, G(w.q_norm), a.dqkv.data, x.qk_raw, W + w.q_norm, rq, N, H, D, QKV);
    head_rmsnorm_backward(a.dqkv.data + H * D, G(w.k_norm), a.dqkv.data + H * D, x.qk_raw + H * D,
                          W + w.k_norm, rk, N, KVH, D, QKV);
  }
  base_backward(m, l, kQKV, w.qkv, c.attention_bias ? w.qkv_bias : 0, dln, a.dqkv.data, x.ln1, N, C, QKV, bf);
  for (int t : {kLoraQ, kLoraK, kLoraV}) lora_bwd(m, l, t, dln, a.dqkv.data, QKV, x.ln1, x, bf);
  rmsnorm_backward(dres, G(w.ln1), dln, x.x, W + w.ln1, x.rstd1, N, C);  // dres += : now ∂L/∂x
}

// Σ loss over the rows (and dx, dweight as lm_head_cross_entropy) with the f32 or quantized head.
double head_loss(Model& m, float* losses, float* dx, bool head_grad, const int32_t* targets, int N, float dloss,
                 bool bf) {
  Activations& a = *m.acts;
  if (!m.qlayers.empty()) return lm_head_cross_entropy_dq(losses, dx, a.lnf.data, m.qtables.head, targets, N, dloss, bf);
  return lm_head_cross_entropy(losses, dx, head_grad ? m.grads.data + a.head : nullptr, a.lnf.data,
                               m.weights.data + a.head, targets, N, m.config.hidden_size, m.config.vocab_size, dloss,
                               0, bf);
}

int count_valid(const int32_t* targets, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n; i++) k += targets[i] >= 0;
  return k;
}

void split_tokens(Activations& a, const int32_t* tokens, int B, int T) {
  a.inputs.resize(static_cast<size_t>(B) * T);
  a.targets.resize(static_cast<size_t>(B) * T);
  for (int b = 0; b < B; b++) {
    std::memcpy(&a.inputs[static_cast<size_t>(b) * T], tokens + static_cast<size_t>(b) * (T + 1), sizeof(int32_t) * T);
    std::memcpy(&a.targets[static_cast<size_t>(b) * T], tokens + static_cast<size_t>(b) * (T + 1) + 1, sizeof(int32_t) * T);
  }
}

}  // namespace

float forward_backward(Model& m, const int32_t* inputs, const int32_t* targets, int B, int T,
                       float grad_scale, const TrainOptions& opt) {
  const ModelConfig& c = m.config;
  const int L = c.num_hidden_layers, N = B * T, C = c.hidden_size;
  if (!m.qlayers.empty() && !m.frozen) fail("a model with quantized matrices can only train adapters (frozen)");
  forward_body(m, inputs, B, T, !opt.recompute, opt.bf16, opt.packing);
  prepare_backward(m);
  Activations& a = *m.acts;
  const int valid = count_valid(targets, static_cast<size_t>(N));
  auto ready = [&](size_t begin, size_t end) {
    if (opt.on_grads_ready && end > begin && !m.frozen) opt.on_grads_ready(begin, end);
  };
  if (valid == 0) {  // nothing to learn from; gradients unchanged, but every stretch is final
    ready(a.norm, m.num_floats);
    for (int l = L - 1; l >= 0; l--) ready(m.layer_begin[static_cast<size_t>(l)], m.layer_begin[static_cast<size_t>(l) + 1]);
    ready(0, m.layer_begin[0]);
    return 0.0f;
  }
  // The LM head and the loss, chunked: ∂(grad_scale · mean loss)/∂lnf into dln.
  const double sum = head_loss(m, nullptr, a.dln.data, !m.frozen, targets, N, grad_scale / static_cast<float>(valid),
                               opt.bf16);
  a.dres.zero();
  rmsnorm_backward(a.dres.data, m.frozen ? a.discard.data : m.grads.data + a.norm, a.dln.data,
                   a.resid.data + static_cast<size_t>(L) * N * C, m.weights.data + a.norm, a.rstdf.data, N, C);
  // Parameter order in the buffer: embedding, layers 0..L-1, final norm, (untied) head.
  const bool tied = a.head == a.embed;
  ready(a.norm, tied ? a.norm + static_cast<size_t>(C) : m.num_floats);
  for (int l = L - 1; l >= 0; l--) {
    if (opt.recompute) layer_forward(m, l, 0, opt.bf16);
    layer_backward(m, l, opt.recompute ? 0 : l, opt.bf16);
    ready(m.layer_begin[static_cast<size_t>(l)], m.layer_begin[static_cast<size_t>(l) + 1]);
  }
  if (!m.frozen) embedding_backward(m.grads.data + a.embed, a.dres.data, inputs, N, C);
  ready(0, m.layer_begin[0]);
  return static_cast<float>(sum / valid);
}

float forward_backward(Model& m, const int32_t* tokens, int B, int T, float grad_scale,
                       const TrainOptions& opt) {
  Activations& a = *m.acts;
  split_tokens(a, tokens, B, T);
  // copies: forward_backward's own use of a.inputs must not alias the vectors it may resize
  std::vector<int32_t> in = a.inputs, tg = a.targets;
  return forward_backward(m, in.data(), tg.data(), B, T, grad_scale, opt);
}

float forward_loss(Model& m, const int32_t* tokens, int B, int T, float* losses, bool bf16) {
  Activations& a = *m.acts;
  split_tokens(a, tokens, B, T);
  std::vector<int32_t> in = a.inputs, tg = a.targets;
  return forward_loss(m, in.data(), tg.data(), B, T, losses, bf16, nullptr);
}

float forward_loss(Model& m, const int32_t* inputs, const int32_t* targets, int B, int T, float* losses,
                   bool bf16, const Packing* packing, int* valid_out) {
  forward_body(m, inputs, B, T, false, bf16, packing);
  const int N = B * T;
  const double sum = head_loss(m, losses, nullptr, false, targets, N, 1.0f, bf16);
  const int valid = count_valid(targets, static_cast<size_t>(N));
  if (valid_out) *valid_out = valid;
  return valid ? static_cast<float>(sum / valid) : 0.0f;
}

void forward_logits(Model& m, const int32_t* inputs, int B, int T, float* logits, bool last_only,
                    bool bf16) {
  const ModelConfig& c = m.config;
  forward_body(m, inputs, B, T, false, bf16);
  Activations& a = *m.acts;
  const int C = c.hidden_size, V = c.vocab_size;
  auto head = [&](const float* x, int rows) {
    if (!m.qlayers.empty()) matmul_dq_forward(logits, x, rows, m.qtables.head, false, bf16);
    else lm_head_logits(logits, x, m.weights.data + a.head, rows, C, V, bf16);
  };
  if (!last_only) return head(a.lnf.data, B * T);
  std::vector<float> last(static_cast<size_t>(B) * C);
  for (int b = 0; b < B; b++)
    std::memcpy(&last[static_cast<size_t>(b) * C], a.lnf.data + (static_cast<size_t>(b) * T + T - 1) * C,
                sizeof(float) * C);
  head(last.data(), B);
}

}  // namespace todae
