// Fine-tuning step benchmark on the shapes of ../shared/perf/SHAPES.md (driven by lora_bench.sh,
// which runs bench/lora_torch.py, the PyTorch LoRA peer, alternately). Prints one JSON line.
//
//   lora_bench [--mode lora|qlora|full|pretrain] [--quant q4_0|q8_0] [--bf16] [--recompute]
//              [--shape S|M] [--rank 16] [--alpha 32] [--steps N] [--warmup N] [--threads N]
//              [--batch B] [--context T] [--packing]
//
//   lora      frozen f32 base + adapters on all seven linear layers, AdamW on the adapters only
//   qlora     the same with the layer matrices in Q4_0 / Q8_0 (never expanded to f32)
//   full      every parameter trained (inputs/targets form, as `todae finetune --method full`)
//   pretrain  the same model through the pretraining entry point (tokens[B, T+1]), for the
//             "full fine-tuning within 10% of pretraining" comparison
// --packing packs each row with documents of random lengths (document masking on).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/model.h"
#include "train/train.h"

using namespace todae;

namespace {

const char* kMatrices[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// QLoRA's base without ever holding it in f32: the norms set here, each layer's matrices drawn into
// one layer-sized scratch and quantized by set_quant_matrices, the embedding and head quantized as
// they are drawn; so the peak before training is the quantized model plus a little.
void init_quantized(Model& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (const ParamInfo& p : m.params) {
    if (!p.in_buffer) continue;
    float* w = m.weights.data + p.offset;
    const bool norm = p.shape.size() == 1;
    for (size_t i = 0; i < p.numel; i++) w[i] = norm ? 1.0f : nd(rng);
  }
  const ModelConfig& c = m.config;
  std::vector<float> scratch;
  for (int l = 0; l < c.num_hidden_layers; l++) {
    std::vector<WMatrix> mats;
    size_t total = 0;
    for (int t = 0; t < kLoraTargets; t++) {
      int in, out;
      lora_target_shape(c, t, &in, &out);
      total += static_cast<size_t>(in) * out;
    }
    scratch.resize(total);
    for (auto& x : scratch) x = nd(rng);
    size_t at = 0;
    for (int t = 0; t < kLoraTargets; t++) {
      int in, out;
      lora_target_shape(c, t, &in, &out);
      mats.push_back(WMatrix{WType::F32, out, in, scratch.data() + at, static_cast<size_t>(in) * sizeof(float)});
      at += static_cast<size_t>(in) * out;
    }
    set_quant_matrices(m, l, [&](const char* name) {
      for (int t = 0; t < kLoraTargets; t++)
        if (std::strcmp(name, kMatrices[t]) == 0) return mats[t];
      fail("lora_bench: no matrix ", name);
    });
  }
  // the tables drawn row by row straight into the block type (handed over as such: copied byte
  // for byte), so no f32 [V, C] table ever exists
  const WType t = m.qlayers[0].qkv.type;
  const int V = c.vocab_size, C = c.hidden_size;
  const size_t rb = wtype_row_bytes(t, C);
  std::vector<float> row(static_cast<size_t>(C));
  auto table = [&](std::vector<uint8_t>& q) {
    q.resize(static_cast<size_t>(V) * rb);
    for (int r = 0; r < V; r++) {
      for (auto& x : row) x = nd(rng);
      quantize_row(t, row.data(), q.data() + static_cast<size_t>(r) * rb, C);
    }
    return WMatrix{t, V, C, q.data(), rb};
  };
  std::vector<uint8_t> qe, qh;
  const WMatrix we = table(qe);
  if (c.tie_word_embeddings) {
    set_quant_tables(m, we, nullptr);
  } else {
    const WMatrix wh = table(qh);
    set_quant_tables(m, we, &wh);
  }
}

double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string shape = "M", mode = "lora", quant = "q4_0";
  int steps = 3, warmup = 1, threads = 2, B = 0, T = 0, rank = 16;
  float alpha = 32;
  bool recompute = false, bf16 = false, packing = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shape") shape = next();
    else if (a == "--mode") mode = next();
    else if (a == "--quant") quant = next();
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--batch") B = std::stoi(next());
    else if (a == "--context") T = std::stoi(next());
    else if (a == "--rank") rank = std::stoi(next());
    else if (a == "--alpha") alpha = std::stof(next());
    else if (a == "--recompute") recompute = true;
    else if (a == "--bf16") bf16 = true;
    else if (a == "--packing") packing = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (mode != "lora" && mode != "qlora" && mode != "full" && mode != "pretrain") fail("unknown --mode ", mode);
  ModelConfig c;
  c.vocab_size = 32000;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1e4;
  if (shape == "S") {
    c.hidden_size = 288, c.num_hidden_layers = 6, c.num_attention_heads = 6, c.intermediate_size = 768;
    c.max_position_embeddings = 256;
    B = B ? B : 8, T = T ? T : 256;
  } else if (shape == "M") {
    c.hidden_size = 512, c.num_hidden_layers = 8, c.num_attention_heads = 8, c.intermediate_size = 1408;
    c.max_position_embeddings = 512;
    B = B ? B : 4, T = T ? T : 512;
  } else {
    fail("unknown --shape ", shape);
  }
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.max_position_embeddings = std::max(c.max_position_embeddings, T);
  set_threads(threads);

  WType wt = WType::F32;
  if (mode == "qlora" && (!parse_wtype(quant.c_str(), &wt) || !wtype_is_block(wt))) fail("--quant must be q4_0 or q8_0");
  Model m(c, wt);
  if (mode == "qlora") init_quantized(m, 1234);
  else init_weights(m, 1234);
  const bool adapters = mode == "lora" || mode == "qlora";
  Lora lora;
  if (adapters) {
    LoraConfig lc;
    lc.rank = rank;
    lc.alpha = alpha;
    lora = make_lora(c, lc);
    init_lora(lora, 1);
    lora.adam_m = FloatBuffer(lora.num_floats);
    lora.adam_v = FloatBuffer(lora.num_floats);
    m.lora = &lora;
    m.frozen = true;
  } else {
    alloc_grads(m);
    alloc_optimizer_state(m);
  }
  // TRL's defaults for the adapters (no decay, clip at 1); pretraining's for full training
  AdamWOptimizer lopt;
  lopt.cfg.beta2 = 0.999f;
  lopt.cfg.weight_decay = 0.0f;
  const AdamW fopt{3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};

  std::mt19937 rng(1);
  std::vector<int32_t> tok(static_cast<size_t>(B) * (T + 1)), in(static_cast<size_t>(B) * T), tg(in.size());
  for (auto& t : tok) t = static_cast<int32_t>(rng() % c.vocab_size);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) in[b * T + t] = tok[b * (T + 1) + t], tg[b * T + t] = tok[b * (T + 1) + t + 1];
  Packing pk;
  if (packing)
    for (int b = 0; b < B; b++) {
      pk.docs.emplace_back();
      for (int left = T; left > 0;) {
        int n = std::min(left, 32 + static_cast<int>(rng() % (T / 2)));
        pk.docs.back().push_back(n);
        left -= n;
      }
    }
  TrainOptions to;
  to.recompute = recompute;
  to.bf16 = bf16;
  to.packing = packing ? &pk : nullptr;

  std::vector<double> times;
  float loss = 0;
  for (int s = 0; s < warmup + steps; s++) {
    auto t0 = std::chrono::steady_clock::now();
    if (adapters) {
      lora.grads.zero();
      loss = forward_backward(m, in.data(), tg.data(), B, T, 1.0f, to);
      lopt.update({lora.weights.data, lora.num_floats}, {lora.grads.data, lora.num_floats},
                  {lora.adam_m.data, lora.num_floats}, {lora.adam_v.data, lora.num_floats}, 2e-4f, 1, threads);
    } else {
      zero_grads(m);
      loss = mode == "pretrain" ? forward_backward(m, tok.data(), B, T, 1.0f, to)
                                : forward_backward(m, in.data(), tg.data(), B, T, 1.0f, to);
      adamw_step(m, fopt, s + 1);
    }
    auto t1 = std::chrono::steady_clock::now();
    if (s >= warmup) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double tps = B * T / med;
  size_t trainable = c.num_parameters();
  if (adapters) {
    trainable = 0;
    for (const ParamInfo& p : lora.params) trainable += p.numel;
  }
  std::printf("{\"impl\": \"todae\", \"shape\": \"%s\", \"mode\": \"%s\", \"precision\": \"%s\", \"recompute\": %s, "
              "\"packing\": %s, \"isa\": \"%s\", \"threads\": %d, \"rank\": %d, \"trainable\": %zu, "
              "\"tokens_per_s\": %.1f, \"step_s\": %.4f, \"loss\": %.4f, \"peak_rss_mb\": %.0f}\n",
              shape.c_str(), mode == "qlora" ? ("qlora-" + quant).c_str() : mode.c_str(), bf16 ? "bf16" : "f32",
              recompute ? "true" : "false", packing ? "true" : "false", isa_name(active_isa()), threads,
              adapters ? rank : 0, trainable, tps, med, loss, peak_rss_mb());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "lora_bench: %s\n", e.what());
  return 1;
}
