// The Llama / Qwen3 decoder for inference: the same layer sequence as src/model's training forward
// (RMSNorm → q,k,v → [QK-norm] → RoPE → causal attention → o → residual; RMSNorm → gate|up →
// SwiGLU → down → residual), over a batch of tokens from several sequences, with keys and values
// appended to the KV cache and attention reading it back. LoRA adapters (model/lora.h) are applied
// unmerged, per batch entry: each base matmul is followed by the low-rank terms of the entries
// whose adapter has that target, so sequences of different adapters share one pass.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "infer/infer.h"

namespace todae {

// Prompt chunks of at least this many rows that start a sequence use the tiled attention kernel.
constexpr int kFlashRows = 16;

struct ForwardScratch {
  int cap = 0;  // rows the buffers hold
  FloatBuffer x, xn, q, k, v, att, gu, h, up, rstd;
  FloatBuffer qkv, lse;  // packed q|k|v rows and log-sum-exps for the tiled prompt attention
  int qkv_cap = 0;

  void reserve_qkv(const ModelConfig& c, int n) {
    if (n <= qkv_cap) return;
    qkv_cap = n;
    qkv = FloatBuffer(size_t(n) * c.qkv_dim());
    lse = FloatBuffer(size_t(n) * c.num_attention_heads);
  }

  void reserve(const ModelConfig& c, int n) {
    if (n <= cap) return;
    cap = n;
    const size_t N = size_t(n);
    x = FloatBuffer(N * c.hidden_size);
    xn = FloatBuffer(N * c.hidden_size);
    q = FloatBuffer(N * c.q_dim());
    k = FloatBuffer(N * c.kv_dim());
    v = FloatBuffer(N * c.kv_dim());
    att = FloatBuffer(N * c.q_dim());
    gu = FloatBuffer(N * 2 * size_t(c.intermediate_size));
    h = FloatBuffer(N * c.intermediate_size);
    up = FloatBuffer(N * c.intermediate_size);
    rstd = FloatBuffer(N * std::max(c.num_attention_heads, 1));
  }
};

namespace {

// A maximal stretch of consecutive batch entries with the same adapter (id >= 1).
struct AdapterRun {
  int begin, n;
  const Lora* lora;
};

// Adds each run's low-rank term for `target` of layer l: out rows (ldo apart) += scale·B·A·x, with
// x rows `in` floats wide (the input the base matrix was applied to). Called right after the base
// matmul, before bias, QK-norm, RoPE or SwiGLU: PEFT adds the term to the linear layer's output
// (the bias is part of that output, so the order of the two sums does not matter).
void add_lora(const std::vector<AdapterRun>& runs, int l, int target, float* out, int ldo, const float* x) {
  for (const AdapterRun& r : runs) {
    if (!r.lora->has(l, target)) continue;
    const LoraSlot& slot = r.lora->layers[l][target];
    lora_forward(out + size_t(r.begin) * ldo, ldo, x + size_t(r.begin) * slot.in, r.n, slot,
                 r.lora->config.rank, r.lora->weights.data, r.lora->scale);
  }
}

}  // namespace

Lora stack_loras(const std::vector<const Lora*>& loras, const ModelConfig& c) {
  if (loras.empty()) fail("stack_loras: no adapter given");
  LoraConfig cfg;
  cfg.rank = 0;
  cfg.targets = 0;
  for (const Lora* l : loras) {
    if (int(l->layers.size()) != c.num_hidden_layers)
      fail("adapter with ", l->layers.size(), " layers for a model of ", c.num_hidden_layers);
    cfg.rank += l->config.rank;
    for (const auto& layer : l->layers)
      for (int t = 0; t < kLoraTargets; t++)
        if (layer[t].on) cfg.targets |= 1u << t;
  }
  cfg.alpha = float(cfg.rank);  // config.scale() = 1: the scales live in B
  Lora out = make_lora(c, cfg);
  out.weights.zero();  // a slot one adapter lacks must stay zero
  out.scale = 1.0f;
  float* W = out.weights.data;
  for (int l = 0; l < c.num_hidden_layers; l++)
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraSlot& d = out.layers[l][t];
      if (!d.on) continue;
      const int R = cfg.rank;
      int row = 0;  // this adapter's first row of A (column of B) in the stack
      for (const Lora* src : loras) {
        const int r = src->config.rank;
        if (src->has(l, t)) {
          const LoraSlot& sl = src->layers[l][t];
          if (sl.in != d.in || sl.out != d.out)
            fail("adapters to stack disagree on the shape of layer ", l, " ", lora_target_name(t));
          std::memcpy(W + d.a + size_t(row) * d.in, src->A(l, t), sizeof(float) * size_t(r) * d.in);
          const float* B = src->B(l, t);
          for (int o = 0; o < d.out; o++)
            for (int j = 0; j < r; j++) W[d.b + size_t(o) * R + row + j] = src->scale * B[size_t(o) * r + j];
        }
        row += r;  // (a slot this adapter lacks stays zero)
      }
    }
  return out;
}

Forward::Forward() : s(std::make_unique<ForwardScratch>()) {}
Forward::~Forward() = default;
Forward::Forward(Forward&&) noexcept = default;
Forward& Forward::operator=(Forward&&) noexcept = default;

KVView KVCache::view(int layer, int slot) {
  KVView v;
  v.type = type;
  v.row_bytes = row_bytes;
  uint8_t* base = data.data + ((size_t(layer) * slots + slot) * 2) * size_t(ctx) * row_bytes;
  v.k = base;
  v.v = base + size_t(ctx) * row_bytes;
  return v;
}

KVCache make_kv_cache(const InferModel& m, int ctx, int slots, WType type) {
  if (type != WType::F32 && type != WType::F16 && type != WType::Q8_0)
    fail("KV cache type ", wtype_name(type), " is not supported (use f32, f16 or q8_0)");
  if (ctx <= 0 || slots <= 0) fail("KV cache needs a positive context and slot count");
  if (ctx > m.rope_positions)
    fail("context ", ctx, " is longer than the model's ", m.rope_positions, " positions");
  const int kv_dim = m.config.kv_dim();
  if (type == WType::Q8_0 && kv_dim % kQuantBlock != 0)
    fail("a q8_0 KV cache needs the key/value width (", kv_dim, ") to be a multiple of 32; use f16");
  KVCache c;
  c.type = type;
  c.slots = slots;
  c.ctx = ctx;
  c.layers = m.config.num_hidden_layers;
  c.kv_dim = kv_dim;
  c.row_bytes = wtype_row_bytes(type, kv_dim);
  const size_t bytes = size_t(c.layers) * slots * 2 * size_t(ctx) * c.row_bytes;
  c.data = Buffer<uint8_t>(bytes);
  c.length.assign(slots, 0);
  return c;
}

void forward_batch(InferModel& m, KVCache& cache, Forward& fw, const Batch& b, float* logits,
                   float* hidden) {
  const ModelConfig& c = m.config;
  const int N = b.size();
  if (N == 0) return;
  const int C = c.hidden_size, H = c.num_attention_heads, KVH = c.num_key_value_heads,
            D = c.head_dim, F = c.intermediate_size, V = c.vocab_size;
  const int qd = c.q_dim(), kvd = c.kv_dim();
  const float eps = float(c.rms_norm_eps);

  // Validate the batch against the cache before touching anything: positions must continue each
  // slot's cache and stay inside it, so a bad request is an error, not a corrupted cache.
  struct Run {
    int begin, n, slot, pos0;
  };
  std::vector<Run> runs;
  for (int i = 0; i < N; i++) {
    const int s = b.slot[i];
    if (s < 0 || s >= cache.slots) fail("batch entry ", i, ": slot ", s, " outside the cache's ", cache.slots);
    if (b.tokens[i] < 0 || b.tokens[i] >= V) fail("token id ", b.tokens[i], " is outside the vocabulary (", V, ")");
    if (runs.empty() || runs.back().slot != s) {
      for (const Run& r : runs)
        if (r.slot == s) fail("batch entries of slot ", s, " are not consecutive");
      if (b.pos[i] != cache.length[s])
        fail("batch entry ", i, ": position ", b.pos[i], " does not continue slot ", s, " (holds ",
             cache.length[s], ")");
      runs.push_back({i, 1, s, b.pos[i]});
    } else {
      if (b.pos[i] != b.pos[i - 1] + 1) fail("batch entry ", i, ": positions of slot ", s, " are not consecutive");
      runs.back().n++;
    }
    if (b.pos[i] >= cache.ctx) fail("position ", b.pos[i], " is past the context (", cache.ctx, ")");
  }
  // Adapter runs: empty when no entry has one, so the base-only path costs nothing more.
  std::vector<AdapterRun> lora_runs;
  if (!b.adapter.empty()) {
    if (int(b.adapter.size()) != N) fail("batch: ", b.adapter.size(), " adapter ids for ", N, " entries");
    for (int i = 0; i < N; i++) {
      const int id = b.adapter[i];
      if (id == 0) continue;
      if (id > int(m.adapters.size()))
        fail("batch entry ", i, ": adapter ", id, " is not loaded (the model has ", m.adapters.size(), ")");
      const Lora* lora = m.adapters[id - 1].get();
      if (!lora_runs.empty() && lora_runs.back().lora == lora && lora_runs.back().begin + lora_runs.back().n == i) {
        lora_runs.back().n++;
        continue;
      }
      // (load_lora checks shapes against the base; an adapter built in memory is checked here, as
      // a wrong width would read past the activation rows)
      if (int(lora->layers.size()) != c.num_hidden_layers)
        fail("adapter ", id, " has ", lora->layers.size(), " layers; the model has ", c.num_hidden_layers);
      for (int l = 0; l < c.num_hidden_layers; l++)
        for (int t = 0; t < kLoraTargets; t++) {
          const LoraSlot& sl = lora->layers[l][t];
          int in = 0, out = 0;
          lora_target_shape(c, t, &in, &out);
          if (sl.on && (sl.in != in || sl.out != out))
            fail("adapter ", id, ": layer ", l, " ", lora_target_name(t), " is [", sl.out, ", ", sl.in,
                 "]; the model's is [", out, ", ", in, "]");
        }
      lora_runs.push_back({i, 1, lora});
    }
  }

  ForwardScratch& s = *fw.s;
  s.reserve(c, N);
  float* x = s.x.data;
  embed_rows(x, m.embed, b.tokens.data(), N);

  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<AttentionRow> decode_rows;
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const InferLayer& L = m.layers[l];
    rmsnorm_forward(s.xn.data, s.rstd.data, x, L.attn_norm, N, C, eps);
    const MatmulOut qkv[3] = {{s.q.data, &L.q}, {s.k.data, &L.k}, {s.v.data, &L.v}};
    matmul_w_many(s.xn.data, N, qkv);
    if (!lora_runs.empty()) {
      add_lora(lora_runs, l, kLoraQ, s.q.data, qd, s.xn.data);
      add_lora(lora_runs, l, kLoraK, s.k.data, kvd, s.xn.data);
      add_lora(lora_runs, l, kLoraV, s.v.data, kvd, s.xn.data);
    }
    if (L.q_bias)
      for (int n = 0; n < N; n++) {
        add_inplace(s.q.data + size_t(n) * qd, L.q_bias, qd);
        add_inplace(s.k.data + size_t(n) * kvd, L.k_bias, kvd);
        add_inplace(s.v.data + size_t(n) * kvd, L.v_bias, kvd);
      }
    if (L.q_norm) {
      head_rmsnorm_forward(s.q.data, s.rstd.data, s.q.data, L.q_norm, N, H, D, qd, eps);
      head_rmsnorm_forward(s.k.data, s.rstd.data, s.k.data, L.k_norm, N, KVH, D, kvd, eps);
    }
    rope_forward(s.q.data, m.rope_cos.data(), m.rope_sin.data(), b.pos.data(), N, H, D, qd);
    rope_forward(s.k.data, m.rope_cos.data(), m.rope_sin.data(), b.pos.data(), N, KVH, D, kvd);
    decode_rows.clear();  // runs of one token (decoding sequences): one attention job for all
    for (const Run& r : runs) {
      KVView kv = cache.view(l, r.slot);
      const float* qr = s.q.data + size_t(r.begin) * qd;
      const float* kr = s.k.data + size_t(r.begin) * kvd;
      const float* vr = s.v.data + size_t(r.begin) * kvd;
      kv_store(kv, r.pos0, kr, vr, r.n, kvd);
      if (r.pos0 == 0 && r.n >= kFlashRows) {
        // A prompt read from the start: every key is in this batch, in f32, so the training
        // model's tiled attention applies (much faster than reading the cache row by row).
        s.reserve_qkv(c, r.n);
        const int w = qd + 2 * kvd;
        for (int i = 0; i < r.n; i++) {
          float* row = s.qkv.data + size_t(i) * w;
          std::memcpy(row, qr + size_t(i) * qd, sizeof(float) * qd);
          std::memcpy(row + qd, kr + size_t(i) * kvd, sizeof(float) * kvd);
          std::memcpy(row + qd + kvd, vr + size_t(i) * kvd, sizeof(float) * kvd);
        }
        attention_forward(s.att.data + size_t(r.begin) * qd, s.lse.data, s.qkv.data, 1, r.n, H, KVH, D, scale);
      } else if (r.n == 1) {
        decode_rows.push_back({s.att.data + size_t(r.begin) * qd, qr, kv, r.pos0});
      } else {
        attention_cached(s.att.data + size_t(r.begin) * qd, qr, kv, r.pos0, r.n, H, KVH, D, scale);
      }
    }
    if (!decode_rows.empty()) attention_cached_rows(decode_rows, H, KVH, D, scale);
    matmul_w(x, s.att.data, N, L.o, /*accumulate=*/true);
    if (!lora_runs.empty()) add_lora(lora_runs, l, kLoraO, x, C, s.att.data);  // into the residual, as o is

    rmsnorm_forward(s.xn.data, s.rstd.data, x, L.ffn_norm, N, C, eps);
    // gate and up are separate matrices (as in both file formats); swiglu wants [gate | up] rows
    const MatmulOut gate_up[2] = {{s.h.data, &L.gate}, {s.up.data, &L.up}};
    matmul_w_many(s.xn.data, N, gate_up);
    if (!lora_runs.empty()) {
      add_lora(lora_runs, l, kLoraGate, s.h.data, F, s.xn.data);
      add_lora(lora_runs, l, kLoraUp, s.up.data, F, s.xn.data);
    }
    for (int n = 0; n < N; n++) {
      std::memcpy(s.gu.data + size_t(n) * 2 * F, s.h.data + size_t(n) * F, sizeof(float) * F);
      std::memcpy(s.gu.data + size_t(n) * 2 * F + F, s.up.data + size_t(n) * F, sizeof(float) * F);
    }
    swiglu_forward(s.h.data, s.gu.data, N, F);
    matmul_w(x, s.h.data, N, L.down, /*accumulate=*/true);
    if (!lora_runs.empty()) add_lora(lora_runs, l, kLoraDown, x, C, s.h.data);
  }
  for (const Run& r : runs) cache.length[r.slot] = r.pos0 + r.n;

  // Final norm and LM head only for the rows asked for (and every row when hidden is wanted).
  if (hidden) {
    rmsnorm_forward(hidden, s.rstd.data, x, m.final_norm, N, C, eps);
  }
  if (logits) {
    int n_want = 0;
    for (int i = 0; i < N; i++)
      if (b.want_logits[i]) {
        if (hidden) std::memcpy(s.xn.data + size_t(n_want) * C, hidden + size_t(i) * C, sizeof(float) * C);
        else std::memcpy(s.xn.data + size_t(n_want) * C, x + size_t(i) * C, sizeof(float) * C);
        n_want++;
      }
    if (n_want) {
      if (!hidden) rmsnorm_forward(s.xn.data, s.rstd.data, s.xn.data, m.final_norm, n_want, C, eps);
      matmul_w(logits, s.xn.data, n_want, m.lm_head);
    }
    (void)V;
  }
}

}  // namespace todae
