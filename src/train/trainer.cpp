// todae pretrain: the training loop. See trainer.h.
//
// One step = grad_accum micro-steps; a micro-step is one GLOBAL batch of batch_size windows, of
// which rank r computes the r-th batch_size/world. Each rank's forward_backward adds the gradient
// of its mean loss to the grad buffer; the buffer is summed over ranks (MPI_Allreduce) and the
// optimizer divides by grad_accum·world, so the update is the gradient of the mean loss over the
// global batch, the same as one process with the whole batch (up to float summation order).
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "base/base.h"
#include "base/energy.h"
#include "data/data.h"
#include "model/model.h"
#include "text/text.h"
#include "tensor/tensor.h"
#include "train/run_util.h"
#include "train/train.h"

#ifdef TODAE_HAVE_MPI
#include <mpi.h>
#endif

namespace todae {

using Tok = Tokenizer;

using json = nlohmann::json;

// ---- config -----------------------------------------------------------------------------------

json preset_model_config(const std::string& preset, int vocab_size) {
  int dim, layers, heads, ffn, ctx;
  if (preset == "tiny") dim = 64, layers = 2, heads = 4, ffn = 192, ctx = 64;
  else if (preset == "S") dim = 288, layers = 6, heads = 6, ffn = 768, ctx = 256;  // SHAPES.md
  else if (preset == "M") dim = 512, layers = 8, heads = 8, ffn = 1408, ctx = 512;
  else fail("--preset: unknown preset '", preset, "' (tiny, S, M)");
  return json{{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},  {"hidden_size", dim},
              {"intermediate_size", ffn},               {"num_hidden_layers", layers},
              {"num_attention_heads", heads},           {"num_key_value_heads", heads},
              {"head_dim", dim / heads},                {"vocab_size", vocab_size},
              {"max_position_embeddings", ctx},         {"rms_norm_eps", 1e-5},
              {"rope_theta", 1e4},                      {"tie_word_embeddings", false}};
}

// Training defaults of a preset: (batch, seq_len, steps, lr).
static void preset_defaults(const std::string& p, int* B, int* T, int64_t* steps, float* lr) {
  if (p == "tiny") *B = 16, *T = 64, *steps = 300, *lr = 3e-3f;
  else if (p == "S") *B = 8, *T = 256, *steps = 2000, *lr = 1e-3f;
  else if (p == "M") *B = 4, *T = 512, *steps = 2000, *lr = 6e-4f;
  else *B = 8, *T = 256, *steps = 1000, *lr = 6e-4f;
}

template <typename T>
static void get(const json& j, const char* key, T& out, const std::string& source) {
  try {
    out = j.get<T>();
  } catch (const json::exception&) {
    fail(source, ": field '", key, "' has the wrong type (", j.type_name(), ")");
  }
}

void pretrain_config_from_json(const json& j, PretrainConfig& c, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object");
  for (auto& [k, v] : j.items()) {
    const char* key = k.c_str();
    if (k == "preset") get(v, key, c.preset, source);
    else if (k == "model") {
      if (v.is_object()) c.model_config = v;
      else get(v, key, c.model_path, source);
    } else if (k == "data") get(v, key, c.data, source);
    else if (k == "out") get(v, key, c.out, source);
    else if (k == "tokenizer") get(v, key, c.tokenizer, source);
    else if (k == "batch_size") get(v, key, c.batch_size, source);
    else if (k == "seq_len") get(v, key, c.seq_len, source);
    else if (k == "grad_accum") get(v, key, c.grad_accum, source);
    else if (k == "steps") get(v, key, c.steps, source);
    else if (k == "lr") get(v, key, c.lr, source);
    else if (k == "min_lr") get(v, key, c.min_lr, source);
    else if (k == "warmup_steps") get(v, key, c.warmup_steps, source);
    else if (k == "weight_decay") get(v, key, c.weight_decay, source);
    else if (k == "grad_clip") get(v, key, c.grad_clip, source);
    else if (k == "beta1") get(v, key, c.beta1, source);
    else if (k == "beta2") get(v, key, c.beta2, source);
    else if (k == "eval_interval") get(v, key, c.eval_interval, source);
    else if (k == "eval_batches") get(v, key, c.eval_batches, source);
    else if (k == "checkpoint_interval") get(v, key, c.checkpoint_interval, source);
    else if (k == "keep_last") get(v, key, c.keep_last, source);
    else if (k == "seed") get(v, key, c.seed, source);
    else if (k == "threads") get(v, key, c.threads, source);
    else if (k == "bf16") get(v, key, c.bf16, source);
    else if (k == "recompute") get(v, key, c.recompute, source);
    else if (k == "prompts") get(v, key, c.prompts, source);
    else if (k == "sample_tokens") get(v, key, c.sample_tokens, source);
    else if (k == "log_interval") get(v, key, c.log_interval, source);
    else if (k == "plot") get(v, key, c.plot, source);
    else if (k == "resume") get(v, key, c.resume, source);
    else if (k == "eval_tasks") get(v, key, c.eval_tasks, source);
    else if (k == "eval_limit") get(v, key, c.eval_limit, source);
    else if (k == "eval_data_dir") get(v, key, c.eval_data_dir, source);
    else if (k == "eval_text") {
      if (v.is_string()) c.eval_text = {v.get<std::string>()};
      else get(v, key, c.eval_text, source);
    } else fail(source, ": unknown field '", k, "'");
  }
}

json pretrain_config_to_json(const PretrainConfig& c) {
  return json{{"preset", c.preset},
              {"model", c.model_path.empty() ? c.model_config : json(c.model_path)},
              {"data", c.data},
              {"out", c.out},
              {"tokenizer", c.tokenizer},
              {"batch_size", c.batch_size},
              {"seq_len", c.seq_len},
              {"grad_accum", c.grad_accum},
              {"steps", c.steps},
              {"lr", c.lr},
              {"min_lr", c.min_lr},
              {"warmup_steps", c.warmup_steps},
              {"weight_decay", c.weight_decay},
              {"grad_clip", c.grad_clip},
              {"beta1", c.beta1},
              {"beta2", c.beta2},
              {"eval_interval", c.eval_interval},
              {"eval_batches", c.eval_batches},
              {"checkpoint_interval", c.checkpoint_interval},
              {"keep_last", c.keep_last},
              {"seed", c.seed},
              {"threads", c.threads},
              {"bf16", c.bf16},
              {"recompute", c.recompute},
              {"prompts", c.prompts},
              {"sample_tokens", c.sample_tokens},
              {"eval_tasks", c.eval_tasks},
              {"eval_limit", c.eval_limit},
              {"eval_data_dir", c.eval_data_dir},
              {"eval_text", c.eval_text}};
}

// ---- distributed (MPI when built with it and started by mpirun) -------------------------------

namespace {

struct Dist {
  int rank = 0, world = 1, local_world = 1;
  bool mpi = false;
};

// Only under a launcher: MPI_Init in a plain `todae pretrain` would make OpenMPI start a singleton
// runtime (slow, noisy in containers) for nothing.
Dist dist_init() {
  Dist d;
#ifdef TODAE_HAVE_MPI
  const char* launched = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!launched) launched = std::getenv("PMI_SIZE");
  if (launched && std::atoi(launched) > 1) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &d.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d.world);
    d.mpi = true;
    const char* lw = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    d.local_world = lw ? std::max(1, std::atoi(lw)) : d.world;
  }
#else
  const char* launched = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (launched && std::atoi(launched) > 1)
    fail("started by mpirun with ", launched, " ranks, but this todae was built without MPI (install libopenmpi-dev and rebuild)");
#endif
  return d;
}

void dist_finalize(const Dist& d) {
#ifdef TODAE_HAVE_MPI
  if (d.mpi) MPI_Finalize();
#endif
}

// Sums the gradient buffer over ranks while the backward pass is still running: the model reports
// each stretch of gradients as soon as it is final (head, then layers from the last, embedding
// last) and a non-blocking all-reduce starts on it; finish() waits for all of them. OpenMPI has no
// progress thread by default, so each new start also tests the outstanding ones to move them on.
struct GradReducer {
#ifdef TODAE_HAVE_MPI
  std::vector<MPI_Request> reqs;
#endif
  void start(const Dist& d, float* g, size_t begin, size_t end) {
#ifdef TODAE_HAVE_MPI
    if (!d.mpi) return;
    const size_t bucket = size_t(4) << 20;
    for (size_t i = begin; i < end; i += bucket) {
      MPI_Request r;
      MPI_Iallreduce(MPI_IN_PLACE, g + i, static_cast<int>(std::min(bucket, end - i)), MPI_FLOAT, MPI_SUM,
                     MPI_COMM_WORLD, &r);
      reqs.push_back(r);
    }
    int done = 0;
    // 4M-float buckets (16 MB) keep MPI from staging a second full-size buffer.
    MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
#endif
  }
  void finish() {
#ifdef TODAE_HAVE_MPI
    if (!reqs.empty()) MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
    reqs.clear();
#endif
  }
};

void allreduce_sum(const Dist& d, double* x, int n) {
#ifdef TODAE_HAVE_MPI
  if (d.mpi) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
}

void barrier(const Dist& d) {
#ifdef TODAE_HAVE_MPI
  if (d.mpi) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

std::vector<std::string> default_prompts() { return {"대한민국의 수도는", "데비안은", "리눅스 커널은"}; }

// Greedy continuation: the whole (growing) sequence through forward_logits each token; no KV
// cache, which is fine for a few dozen tokens of a small model at evaluation time.
std::string greedy_sample(Model& m, const Tok& tok, const std::string& prompt, int n_tokens, int ctx,
                          int eos, bool bf16) {
  std::vector<int32_t> ids = encode(tok, prompt);
  if (ids.empty()) return "";
  size_t prompt_len = ids.size();
  const int V = m.config.vocab_size;
  std::vector<float> logits(V);
  for (int i = 0; i < n_tokens; i++) {
    int n = static_cast<int>(std::min<size_t>(ids.size(), ctx));
    forward_logits(m, ids.data() + ids.size() - n, 1, n, logits.data(), true, bf16);
    int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == eos) break;
    ids.push_back(best);
  }
  std::string out = decode(tok, std::span<const int32_t>(ids.data() + prompt_len, ids.size() - prompt_len), true);
  // One sample per line on the terminal.
  for (size_t p = 0; (p = out.find('\n', p)) != std::string::npos;) out.replace(p, 1, " ⏎ ");
  return out;
}

}  // namespace

// ---- the loop ---------------------------------------------------------------------------------

static int run_pretrain_impl(PretrainConfig c, const Dist& d) {
  const bool lead = d.rank == 0;
  if (c.data.empty()) fail("--data: no shard folder given");
  if (c.out.empty()) fail("--out: no run folder given");
  ShardManifest man = read_manifest(c.data);
  std::string tok_path = c.tokenizer.empty() ? man.tokenizer_path : c.tokenizer;
  if (tok_path.empty()) fail(c.data, "/manifest.json: records no tokenizer; pass --tokenizer");
  if (!file_exists(tok_path)) fail("tokenizer ", tok_path, " (from ", c.data, "/manifest.json) not found; pass --tokenizer");
  std::string tok_dir = is_directory(tok_path) ? tok_path : tok_path.substr(0, tok_path.find_last_of('/') + 1);
  const Tok tok = load_tokenizer(tok_path);

  // Defaults from the preset, then what the config file / flags set.
  int pB, pT;
  int64_t psteps;
  float plr;
  preset_defaults(c.preset, &pB, &pT, &psteps, &plr);
  if (c.batch_size <= 0) c.batch_size = pB;
  if (c.seq_len <= 0) c.seq_len = pT;
  if (c.steps <= 0) c.steps = psteps;
  if (c.lr <= 0) c.lr = plr;
  if (c.min_lr < 0) c.min_lr = c.lr / 10;
  if (c.warmup_steps < 0) c.warmup_steps = std::min<int64_t>(100, c.steps / 10);
  if (c.eval_interval <= 0) c.eval_interval = std::max<int64_t>(1, c.steps / 10);
  if (c.checkpoint_interval <= 0) c.checkpoint_interval = c.eval_interval;
  if (c.grad_accum < 1) fail("grad_accum: must be at least 1");
  if (c.batch_size % d.world != 0)
    fail("batch_size ", c.batch_size, " is the global batch and must be divisible by the ", d.world, " ranks");
  if (c.prompts.empty()) c.prompts = default_prompts();
  if (c.threads <= 0) c.threads = std::max(1, default_threads() / d.local_world);
  set_threads(c.threads);

  // The model config: checkpoint's on resume, else the preset's / file's, with explicit fields on top.
  std::optional<Checkpoint> ck;
  if (lead) make_directories(c.out);
  barrier(d);
  if (c.resume) ck = load_latest_checkpoint(c.out);
  else if (!list_checkpoints(c.out).empty())
    fail(c.out, ": already holds checkpoints; pass --resume to continue it or choose a new --out");
  json mc;
  if (ck) {
    mc = ck->model_config;
  } else {
    if (!c.preset.empty()) mc = preset_model_config(c.preset, static_cast<int>(man.vocab_size));
    else if (!c.model_path.empty()) mc = json::parse(ModelConfig::load(c.model_path).to_json());
    else if (c.model_config.is_null()) fail("no model: give --preset or \"model\" in the config");
    if (c.model_config.is_object())
      for (auto& [k, v] : c.model_config.items()) mc[k] = v;
    if (!mc.contains("max_position_embeddings") || mc["max_position_embeddings"].get<int>() < c.seq_len)
      mc["max_position_embeddings"] = c.seq_len;
    if (man.eos_id >= 0) mc["eos_token_id"] = man.eos_id;
    if (man.bos_id >= 0) mc["bos_token_id"] = man.bos_id;
  }
  ModelConfig cfg = ModelConfig::from_json(mc.dump(), c.out + "/config.json");
  if (static_cast<uint32_t>(cfg.vocab_size) < man.vocab_size)
    fail("model vocab_size ", cfg.vocab_size, " is smaller than the shards' ", man.vocab_size, " (", c.data, ")");

  Model m(cfg);
  alloc_grads(m);
  alloc_optimizer_state(m);
  std::vector<ParamView> views;
  for (auto& p : m.params) views.push_back({p.name, p.offset, p.shape, static_cast<int8_t>(p.weight_decay ? 1 : 0)});
  AdamWOptimizer opt;
  opt.cfg = {c.beta1, c.beta2, 1e-8f, c.weight_decay, c.grad_clip};
  opt.spans = decay_spans(views, m.num_floats);
  LrSchedule sched{c.lr, c.min_lr, c.warmup_steps, c.steps};

  const int Bl = c.batch_size / d.world, T = c.seq_len;
  LoaderOptions lo;
  lo.dir = c.data, lo.split = "train", lo.seq_len = T, lo.batch_size = Bl, lo.seed = c.seed;
  lo.rank = d.rank, lo.world_size = d.world;
  TokenLoader train(lo);
  if (train.batches_per_epoch() == 0) fail(c.data, ": the train split holds fewer than one batch of ", c.batch_size, "×", T + 1, " tokens");
  LoaderOptions vo = lo;
  vo.split = "val", vo.shuffle = false;
  std::unique_ptr<TokenLoader> val;
  if (man.val.tokens > 0) {
    val = std::make_unique<TokenLoader>(vo);
    if (val->batches_per_epoch() == 0) val.reset();
  }
  int eval_batches = val ? static_cast<int>(std::min<uint64_t>(c.eval_batches, val->batches_per_epoch())) : 0;
  if (lead && !val) std::fprintf(stderr, "pretrain: warning: %s has no validation batch; no val_loss\n", c.data.c_str());

  int64_t step = 0;
  // Training joules so far: a resumed run goes on counting from what its checkpoint recorded.
  double joules_base = 0;
  if (ck) {
    if (const json& cm = ck->state["metrics"]; cm.is_object() && cm.contains("joules") && cm["joules"].is_number())
      joules_base = cm["joules"].get<double>();
    read_params(*ck->model, views, {m.weights.data, m.num_floats});
    read_adamw_state(*ck->optimizer, views, {m.adam_m.data, m.num_floats}, {m.adam_v.data, m.num_floats}, &opt.step);
    step = ck->step;
    const json& pos = ck->state["data_position"];
    train.seek({pos.at("epoch").get<uint64_t>(), pos.at("index").get<uint64_t>()});
    if (lead) std::fprintf(stderr, "pretrain: resumed %s at step %lld\n", ck->dir.c_str(), (long long)step);
    ck.reset();
  } else {
    init_weights(m, c.seed);
  }
  if (step >= c.steps && lead) std::fprintf(stderr, "pretrain: already at step %lld of %lld\n", (long long)step, (long long)c.steps);

  // Rank 0 alone writes. The metrics file drops rows past the checkpoint we resumed from.
  std::unique_ptr<MetricsLog> log;
  std::string tok_json, tok_cfg;
  if (lead) {
    log = std::make_unique<MetricsLog>(c.out + "/metrics.jsonl", c.resume ? step : -1);
    tok_json = read_file(tok_dir + "/tokenizer.json");
    if (file_exists(tok_dir + "/tokenizer_config.json")) tok_cfg = read_file(tok_dir + "/tokenizer_config.json");
    write_file_atomic(c.out + "/tokenizer.json", tok_json);
    if (!tok_cfg.empty()) write_file_atomic(c.out + "/tokenizer_config.json", tok_cfg);
    write_file_atomic(c.out + "/config.json", cfg.to_json());
    write_file_atomic(c.out + "/train.json", pretrain_config_to_json(c).dump(2) + "\n");
  }

  TrainOptions to;
  to.bf16 = c.bf16, to.recompute = c.recompute;
  const double flops_tok = cfg.flops_per_token(T);
  double peak = 0;
  if (lead) {
    // Peak of all the cores this job uses on the node, times the nodes. A register-only FMA loop
    // scales with cores, so a probe that found less than n × the 1-thread figure ran while
    // something else used the cores (MFU above 100% otherwise); n × 1-thread is then the bound.
    int n = c.threads * d.local_world;
    FmaPeak fp = fma_peak(n);
    peak = std::max(fp.at(n), 0.94 * n * fp.at(1)) * d.world / d.local_world;
  }
  EnergyMeter energy;
  const bool tty = isatty(2);
  // Evaluation (validation, samples, the eval hook) is not training: its seconds and joules are
  // kept apart, out of tokens_per_s, MFU and the run's joules.
  double eval_joules = 0, train_joules = joules_base;
  const double tokens_per_step = double(c.batch_size) * T * c.grad_accum;

  auto save = [&](int64_t s) {
    if (!lead) return;
    CheckpointWrite w;
    w.step = s;
    w.model = param_tensors(views, m.weights.data);
    w.optimizer = adamw_state_tensors(views, m.adam_m.data, m.adam_v.data);
    w.model_config = json::parse(cfg.to_json());
    w.rng = json{{"seed", c.seed}, {"note", "no random state after init: init and data order derive from seed"}};
    DataPosition p = train.position();
    w.data_position = json{{"epoch", p.epoch}, {"index", p.index}};
    w.train_config = pretrain_config_to_json(c);
    w.metrics = json{{"tokens", tokens_per_step * double(s)}, {"joules", train_joules}};
    w.extra_files["tokenizer.json"] = tok_json;
    if (!tok_cfg.empty()) w.extra_files["tokenizer_config.json"] = tok_cfg;
    std::string dir = save_checkpoint(c.out, w, c.keep_last);
    publish_file(dir + "/model.safetensors", c.out + "/model.safetensors");
  };

  // Validation: the first eval_batches global batches of the val split, in order, every time.
  double val_bytes = -1;
  auto evaluate = [&](double* bpb) -> double {
    val->seek({0, 0});
    std::vector<int32_t> buf(static_cast<size_t>(Bl) * (T + 1));
    double acc[3] = {0, 0, 0};  // sum of losses, tokens, bytes
    for (int i = 0; i < eval_batches; i++) {
      val->next_batch(buf);
      float l = forward_loss(m, buf.data(), Bl, T, nullptr, c.bf16);
      acc[0] += double(l) * Bl * T;
      acc[1] += double(Bl) * T;
      if (val_bytes < 0)
        for (int b = 0; b < Bl; b++)
          acc[2] += decode(tok, std::span<const int32_t>(buf.data() + b * (T + 1) + 1, T), true).size();
    }
    allreduce_sum(d, acc, 3);
    if (val_bytes < 0) val_bytes = acc[2];
    double loss = acc[0] / acc[1];
    *bpb = val_bytes > 0 ? acc[0] / (std::log(2.0) * val_bytes) : 0;
    return loss;
  };

  install_stop_signal_handlers();
  std::vector<int32_t> batch(static_cast<size_t>(Bl) * (T + 1));
  const int64_t start_step = step;
  const double t_start = now_s();
  double t_last_print = 0;
  if (lead)
    std::fprintf(stderr,
                 "pretrain: %s, %.2f M parameters, vocab %d, %d ranks × %d threads, batch %d×%d×%d accum, %lld steps, "
                 "lr %g→%g warmup %lld%s%s\n",
                 c.preset.empty() ? "custom" : c.preset.c_str(), cfg.num_parameters() / 1e6, cfg.vocab_size, d.world,
                 c.threads, c.batch_size, T, c.grad_accum, (long long)c.steps, c.lr, c.min_lr,
                 (long long)c.warmup_steps, c.bf16 ? ", bf16" : "", c.recompute ? ", recompute" : "");

  bool interrupted = false;
  while (step < c.steps) {
    double t0 = now_s();
    zero_grads(m);
    double loss_sum = 0;
    GradReducer reducer;
    for (int a = 0; a < c.grad_accum; a++) {
      train.next_batch(batch);
      TrainOptions step_to = to;
      // On the last micro-batch, each layer's gradient sum over ranks starts as soon as it is final.
      if (a + 1 == c.grad_accum && d.mpi)
        step_to.on_grads_ready = [&](size_t b, size_t e) { reducer.start(d, m.grads.data, b, e); };
      loss_sum += forward_backward(m, batch.data(), Bl, T, 1.0f, step_to);
    }
    reducer.finish();
    // The losses and the stop flag ride in a second, tiny message.
    double red[2] = {loss_sum, stop_requested() ? 1.0 : 0.0};
    allreduce_sum(d, red, 2);
    float lr = sched.at(step);
    AdamWStats st = opt.update({m.weights.data, m.num_floats}, {m.grads.data, m.num_floats},
                               {m.adam_m.data, m.num_floats}, {m.adam_v.data, m.num_floats}, lr,
                               c.grad_accum * d.world, c.threads);
    step++;
    const double loss = red[0] / (c.grad_accum * d.world);
    double dt = now_s() - t0;
    double tps = tokens_per_step / dt;
    double joules[1] = {energy.joules() - eval_joules};
    if (!energy.measured()) allreduce_sum(d, joules, 1);  // estimates are per process: sum them
    joules[0] += joules_base;
    train_joules = joules[0];

    const bool eval_step = step % c.eval_interval == 0 || step == c.steps;
    const bool val_now = val && eval_step, hook_now = lead && c.on_eval && eval_step;
    const bool eval_now = val_now || (c.on_eval && eval_step);
    double vloss = 0, vbpb = 0, eval_dt = 0, eval_dj = 0;
    json eval_fields = json::object();
    std::vector<std::string> samples;
    if (eval_now) {
      const double te0 = now_s(), je0 = energy.joules();
      if (val_now) vloss = evaluate(&vbpb);
      if (lead)
        for (const auto& p : c.prompts) samples.push_back(greedy_sample(m, tok, p, c.sample_tokens, T, cfg.eos_token_id, c.bf16));
      if (hook_now) eval_fields = run_eval_hook(c.on_eval, {m, step, tokens_per_step * step, joules[0], tok_json, tok_cfg});
      eval_dt = now_s() - te0, eval_dj = energy.joules() - je0;
      eval_joules += eval_dj;
    }

    if (lead) {
      double u = mfu(flops_tok, tps, peak);
      json row = {{"step", step},      {"loss", static_cast<float>(loss)},
                  {"lr", lr},          {"grad_norm", st.grad_norm},
                  {"tokens_per_s", tps}, {"mfu", u},
                  {"joules", joules[0]}, {"energy", energy.label()},
                  {"tokens", tokens_per_step * step}, {"step_s", dt}};
      if (val_now) row["val_loss"] = vloss, row["val_bpb"] = vbpb;
      if (eval_now) {
        row["eval_s"] = eval_dt, row["eval_joules"] = eval_dj;
        for (auto& [k, v] : eval_fields.items()) row[k] = v;
      }
      log->write(row);
      double elapsed = now_s() - t_start;
      double eta = elapsed / double(step - start_step) * double(c.steps - step);
      std::string line = cat("step ", step, "/", c.steps, " loss ", std::to_string(loss).substr(0, 6), " lr ",
                             lr, " gnorm ", std::to_string(st.grad_norm).substr(0, 5), " ",
                             static_cast<long>(tps), " tok/s MFU ", std::to_string(u * 100).substr(0, 4), "% ETA ",
                             fmt_duration(eta), " ", static_cast<long>(joules[0]), " J (", energy.label(), ")");
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
      } else if (step % c.log_interval == 0 || step == c.steps || eval_now || now_s() - t_last_print > 30) {
        std::fprintf(stderr, "%s\n", line.c_str());
        t_last_print = now_s();
      }
      if (eval_now) {
        if (tty) std::fprintf(stderr, "\n");
        if (val_now) std::fprintf(stderr, "step %lld: val_loss %.4f val_bpb %.4f\n", (long long)step, vloss, vbpb);
        if (!eval_fields.empty()) std::fprintf(stderr, "step %lld: %s\n", (long long)step, eval_summary(eval_fields).c_str());
        for (size_t i = 0; i < samples.size(); i++)
          std::fprintf(stderr, "  %s → %s\n", c.prompts[i].c_str(), samples[i].c_str());
      }
    }
    if (red[1] > 0) {
      interrupted = true;
      break;
    }
    if (step % c.checkpoint_interval == 0 || step == c.steps) save(step);
  }
  if (interrupted) {
    save(step);
    if (lead) std::fprintf(stderr, "%sinterrupted: saved checkpoint step-%lld in %s; continue with --resume\n",
                           tty ? "\n" : "", (long long)step, c.out.c_str());
    return 0;
  }
  if (lead) {
    if (tty) std::fprintf(stderr, "\n");
    if (c.plot && step > 0) {
      try {
        plot_loss(c.out + "/metrics.jsonl", c.out + "/loss.png");
        std::fprintf(stderr, "wrote %s/loss.png\n", c.out.c_str());
      } catch (const Error& e) {
        std::fprintf(stderr, "pretrain: warning: no loss plot: %s\n", e.what());
      }
    }
    std::fprintf(stderr, "done: %s (config.json, model.safetensors, tokenizer.json, metrics.jsonl)\n", c.out.c_str());
  }
  return 0;
}

int run_pretrain(PretrainConfig c) {
  Dist d = dist_init();
  int rc = 0;
  try {
    rc = run_pretrain_impl(std::move(c), d);
  } catch (const std::exception& e) {
#ifdef TODAE_HAVE_MPI
    if (d.mpi) {
      // The other ranks would wait forever in their next all-reduce: take the job down.
      std::fprintf(stderr, "todae: error (rank %d): %s\n", d.rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
#endif
    throw;
  }
  dist_finalize(d);
  return rc;
}

}  // namespace todae
