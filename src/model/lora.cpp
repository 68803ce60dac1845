// LoRA adapters: layout, init and the two small matmuls of each adapter. See lora.h.
#include "model/lora.h"

#include <cstring>

namespace todae {

namespace {

constexpr const char* kTargetNames[kLoraTargets] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};
constexpr const char* kShortNames[kLoraTargets] = {"q", "k", "v", "o", "gate", "up", "down"};

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Per-thread scratch for the [N, r] intermediate when the caller keeps none.
float* scratch(size_t n) {
  thread_local FloatBuffer buf;
  buf.reserve(n);
  return buf.data;
}

void gemm(bool bf, bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc) {
  if (bf) gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
  else gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

const char* lora_target_name(int t) { return kTargetNames[t]; }
const char* lora_target_module(int t) { return t <= kLoraO ? "self_attn" : "mlp"; }

uint32_t parse_lora_targets(std::string_view spec) {
  if (spec == "all-linear" || spec == "all") return kLoraAllLinear;
  uint32_t mask = 0;
  size_t p = 0;
  while (p <= spec.size()) {
    size_t e = spec.find(',', p);
    if (e == std::string_view::npos) e = spec.size();
    std::string_view name = spec.substr(p, e - p);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) {
      int found = -1;
      for (int t = 0; t < kLoraTargets; t++)
        if (name == kTargetNames[t] || name == kShortNames[t]) found = t;
      if (found < 0)
        fail("--targets: unknown module '", printable(name),
             "' (all-linear, or a list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
      mask |= 1u << found;
    }
    p = e + 1;
  }
  if (mask == 0) fail("--targets: no module given");
  return mask;
}

std::vector<std::string> lora_target_names(uint32_t mask) {
  std::vector<std::string> out;
  for (int t = 0; t < kLoraTargets; t++)
    if (mask & (1u << t)) out.push_back(kTargetNames[t]);
  return out;
}

void lora_target_shape(const ModelConfig& c, int t, int* in, int* out) {
  const int C = c.hidden_size, F = c.intermediate_size;
  switch (t) {
    case kLoraQ: *in = C, *out = c.q_dim(); break;
    case kLoraK:
    case kLoraV: *in = C, *out = c.kv_dim(); break;
    case kLoraO: *in = c.q_dim(), *out = C; break;
    case kLoraGate:
    case kLoraUp: *in = C, *out = F; break;
    default: *in = F, *out = C; break;
  }
}

Lora make_lora(const ModelConfig& c, const LoraConfig& cfg) {
  if (cfg.rank < 1) fail("LoRA rank must be at least 1, got ", cfg.rank);
  if (!(cfg.alpha > 0)) fail("LoRA alpha must be positive, got ", cfg.alpha);
  if ((cfg.targets & kLoraAllLinear) == 0) fail("LoRA needs at least one target module");
  Lora l;
  l.config = cfg;
  l.scale = cfg.scale();
  l.layers.resize(c.num_hidden_layers);
  size_t off = 0;
  auto add = [&](std::string name, int64_t rows, int64_t cols) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = {rows, cols};
    p.numel = size_t(rows) * size_t(cols);
    p.offset = off;
    p.weight_decay = true;
    off += (p.numel + 15) / 16 * 16;  // each tensor on 64 bytes
    l.params.push_back(p);
    return p.offset;
  };
  for (int layer = 0; layer < c.num_hidden_layers; layer++)
    for (int t = 0; t < kLoraTargets; t++) {
      if (!(cfg.targets & (1u << t))) continue;
      LoraSlot& s = l.layers[layer][t];
      s.on = true;
      lora_target_shape(c, t, &s.in, &s.out);
      const std::string base = cat("model.layers.", layer, ".", lora_target_module(t), ".", kTargetNames[t], ".");
      s.a = add(base + "lora_A.weight", cfg.rank, s.in);
      s.b = add(base + "lora_B.weight", s.out, cfg.rank);
    }
  l.num_floats = off;
  l.weights = FloatBuffer(off);
  return l;
}

void init_lora(Lora& l, uint64_t seed) {
  l.weights.zero();
  for (size_t i = 0; i < l.params.size(); i++) {
    const ParamInfo& p = l.params[i];
    if (p.name.find("lora_A") == std::string::npos) continue;  // B stays 0
    const double bound = 1.0 / std::sqrt(double(p.shape[1]));
    const uint64_t key = splitmix64(seed * 0x9e3779b97f4a7c15ull + i);
    float* w = l.weights.data + p.offset;
    for (size_t j = 0; j < p.numel; j++) {
      const double u = double(splitmix64(key ^ splitmix64(j)) >> 11) * 0x1p-53;  // [0, 1)
      w[j] = float((2 * u - 1) * bound);
    }
  }
}

void lora_forward(float* out, int ldo, const float* x, int N, const LoraSlot& s, int r, const float* W,
                  float scale, float* u, bool bf) {
  if (N <= 0) return;
  if (!u) u = scratch(size_t(N) * r);
  // u = scale · x·Aᵀ, then out += u·Bᵀ
  gemm(bf, false, true, N, r, s.in, x, s.in, W + s.a, s.in, 0.0f, u, r);
  scale_inplace(u, scale, size_t(N) * r);
  gemm(bf, false, true, N, s.out, r, u, r, W + s.b, r, 1.0f, out, ldo);
}

void lora_backward(float* dx, float* G, const float* dout, int ldd, const float* x, const float* u, int N,
                   const LoraSlot& s, int r, const float* W, float scale, float* du, bool bf) {
  if (N <= 0) return;
  // dB[out, r] += doutᵀ·u
  gemm(bf, true, false, s.out, r, N, dout, ldd, u, r, 1.0f, G + s.b, r);
  // du = scale · dout·B   ([N, out]·[out, r])
  gemm(bf, false, false, N, r, s.out, dout, ldd, W + s.b, r, 0.0f, du, r);
  scale_inplace(du, scale, size_t(N) * r);
  // dA[r, in] += duᵀ·x
  gemm(bf, true, false, r, s.in, N, du, r, x, s.in, 1.0f, G + s.a, s.in);
  // dx[N, in] += du·A
  if (dx) gemm(bf, false, false, N, s.in, r, du, r, W + s.a, s.in, 1.0f, dx, s.in);
}

void lora_merge(float* Wt, const Lora& l, int layer, int t) {
  const LoraSlot& s = l.layers[layer][t];
  if (!s.on) return;
  const int r = l.config.rank;
  const float* A = l.weights.data + s.a;
  const float* B = l.weights.data + s.b;
  // W[out, in] += scale · B[out, r]·A[r, in], in double per element for an exact-as-possible merge
  for (int o = 0; o < s.out; o++) {
    float* row = Wt + size_t(o) * s.in;
    for (int i = 0; i < s.in; i++) {
      double acc = 0;
      for (int k = 0; k < r; k++) acc += double(B[size_t(o) * r + k]) * A[size_t(k) * s.in + i];
      row[i] = float(row[i] + l.scale * acc);
    }
  }
}

}  // namespace todae
