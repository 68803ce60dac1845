// todae finetune: the supervised fine-tuning loop. See finetune.h.
//
// One step = one batch from make_sft_batches (B rows of T tokens, at most batch_tokens, padded or
// packed), forward_backward with the batch's loss mask (and document masking when packed), then
// AdamW on the trainable buffer: the adapters' A and B (LoRA, QLoRA: the base is frozen and has no
// gradient or optimizer state) or every weight (full). The loss is the mean over the batch's loss
// tokens, as TRL computes it for one batch.
//
// Epoch e visits the examples in a shuffle that is a function of (seed, e) only, so the batch at
// data position (epoch, index) is known without replaying the run; a checkpoint records that
// position with the trainable tensors, their AdamW moments and the step, and the resumed run
// repeats the uninterrupted one bit for bit (for the same thread count).
#include "train/finetune.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "base/base.h"
#include "base/energy.h"
#include "data/sft.h"
#include "infer/infer.h"
#include "model/lora.h"
#include "model/model.h"
#include "tensor/tensor.h"
#include "train/run_util.h"
#include "train/train.h"

namespace todae {

using json = nlohmann::json;

// ---- config -----------------------------------------------------------------------------------

namespace {

template <typename T>
void get(const json& j, const std::string& key, T& out, const std::string& source) {
  try {
    out = j.get<T>();
  } catch (const json::exception&) {
    fail(source, ": field '", key, "' has the wrong type (", j.type_name(), ")");
  }
}

// "data": "a.jsonl" or ["a.jsonl", "b.jsonl"].
void get_files(const json& j, const std::string& key, std::vector<std::string>& out, const std::string& source) {
  if (j.is_string()) out = {j.get<std::string>()};
  else get(j, key, out, source);
}

}  // namespace

void finetune_config_from_json(const json& j, FinetuneConfig& c, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object");
  for (auto& [k, v] : j.items()) {
    if (k == "model") get(v, k, c.model, source);
    else if (k == "data") get_files(v, k, c.data, source);
    else if (k == "val_data") get_files(v, k, c.val_data, source);
    else if (k == "out") get(v, k, c.out, source);
    else if (k == "method") get(v, k, c.method, source);
    else if (k == "quant") get(v, k, c.quant, source);
    else if (k == "rank") get(v, k, c.rank, source);
    else if (k == "alpha") get(v, k, c.alpha, source);
    else if (k == "rslora") get(v, k, c.rslora, source);
    else if (k == "targets") get(v, k, c.targets, source);
    else if (k == "steps") get(v, k, c.steps, source);
    else if (k == "epochs") get(v, k, c.epochs, source);
    else if (k == "lr") get(v, k, c.lr, source);
    else if (k == "min_lr") get(v, k, c.min_lr, source);
    else if (k == "schedule") get(v, k, c.schedule, source);
    else if (k == "warmup_ratio") get(v, k, c.warmup_ratio, source);
    else if (k == "weight_decay") get(v, k, c.weight_decay, source);
    else if (k == "grad_clip") get(v, k, c.grad_clip, source);
    else if (k == "beta1") get(v, k, c.beta1, source);
    else if (k == "beta2") get(v, k, c.beta2, source);
    else if (k == "eps") get(v, k, c.eps, source);
    else if (k == "batch_tokens") get(v, k, c.batch_tokens, source);
    else if (k == "max_length") get(v, k, c.max_length, source);
    else if (k == "packing") get(v, k, c.packing, source);
    else if (k == "loss") get(v, k, c.loss, source);
    else if (k == "bf16") get(v, k, c.bf16, source);
    else if (k == "recompute") get(v, k, c.recompute, source);
    else if (k == "threads") get(v, k, c.threads, source);
    else if (k == "seed") get(v, k, c.seed, source);
    else if (k == "resume") get(v, k, c.resume, source);
    else if (k == "eval_interval") get(v, k, c.eval_interval, source);
    else if (k == "save_interval") get(v, k, c.save_interval, source);
    else if (k == "keep_last") get(v, k, c.keep_last, source);
    else if (k == "log_interval") get(v, k, c.log_interval, source);
    else if (k == "plot") get(v, k, c.plot, source);
    else if (k == "eval_tasks") get(v, k, c.eval_tasks, source);
    else if (k == "eval_limit") get(v, k, c.eval_limit, source);
    else if (k == "eval_data_dir") get(v, k, c.eval_data_dir, source);
    else if (k == "eval_text") get_files(v, k, c.eval_text, source);
    else fail(source, ": unknown field '", k, "'");
  }
}

json finetune_config_to_json(const FinetuneConfig& c) {
  return json{{"model", c.model},
              {"data", c.data},
              {"val_data", c.val_data},
              {"out", c.out},
              {"method", c.method},
              {"quant", c.quant},
              {"rank", c.rank},
              {"alpha", c.alpha},
              {"rslora", c.rslora},
              {"targets", c.targets},
              {"steps", c.steps},
              {"epochs", c.epochs},
              {"lr", c.lr},
              {"min_lr", c.min_lr},
              {"schedule", c.schedule},
              {"warmup_ratio", c.warmup_ratio},
              {"weight_decay", c.weight_decay},
              {"grad_clip", c.grad_clip},
              {"beta1", c.beta1},
              {"beta2", c.beta2},
              {"eps", c.eps},
              {"batch_tokens", c.batch_tokens},
              {"max_length", c.max_length},
              {"packing", c.packing},
              {"loss", c.loss},
              {"bf16", c.bf16},
              {"recompute", c.recompute},
              {"threads", c.threads},
              {"seed", c.seed},
              {"eval_interval", c.eval_interval},
              {"save_interval", c.save_interval},
              {"keep_last", c.keep_last},
              {"log_interval", c.log_interval},
              {"plot", c.plot},
              {"eval_tasks", c.eval_tasks},
              {"eval_limit", c.eval_limit},
              {"eval_data_dir", c.eval_data_dir},
              {"eval_text", c.eval_text}};
}

// ---- pieces of the loop -------------------------------------------------------------------------

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fisher-Yates with our own generator (std::shuffle's algorithm is the library's choice), so an
// epoch's order is the same on every build.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; i++) order[i] = i;
  uint64_t s = seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(epoch) + 1;
  for (size_t i = n; i > 1; i--) {
    size_t j = static_cast<size_t>(splitmix64(s) % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

struct Data {
  const std::vector<SftExample>* ex = nullptr;
  uint64_t seed = 0;
  int batch_tokens = 0, max_length = 0;
  bool packing = false;
  std::vector<SftBatch> batches(int64_t epoch) const {
    return make_sft_batches(*ex, epoch_order(ex->size(), seed, epoch), batch_tokens, max_length, packing);
  }
};

bool parse_quant(const std::string& s, WType* t) { return parse_wtype(s.c_str(), t); }

// What the run trains: a view table over one flat buffer and its gradient and moments.
struct Trainable {
  std::vector<ParamView> views;
  float *w = nullptr, *g = nullptr, *m = nullptr, *v = nullptr;
  size_t n = 0;
};

std::string short_float(double x, int n) { return std::to_string(x).substr(0, n); }

}  // namespace

// ---- the run ------------------------------------------------------------------------------------

int run_finetune(FinetuneConfig c) {
  // Settings that need no model first, so a typo fails before minutes of loading.
  if (c.model.empty()) fail("--model: no base model given");
  if (c.data.empty()) fail("--data: no JSONL file given");
  if (c.out.empty()) fail("--out: no output folder given");
  if (c.method != "full" && c.method != "lora" && c.method != "qlora")
    fail("--method: unknown method '", c.method, "' (full, lora, qlora)");
  WType qtype = WType::F32;
  if (c.method == "qlora") {
    if (c.quant.empty()) c.quant = "q4_0";
    if (!parse_quant(c.quant, &qtype)) fail("--quant: unknown type '", c.quant, "' (q4_0, q8_0)");
    if (qtype != WType::Q4_0 && qtype != WType::Q8_0)
      fail("--quant ", c.quant, ": QLoRA keeps the base in q4_0 or q8_0; for a float base use --method lora");
  } else if (!c.quant.empty()) {
    fail("--quant is for --method qlora (this run is --method ", c.method, ")");
  }
  if (c.steps > 0 && c.epochs > 0) fail("--steps and --epochs: give one of them, not both");
  if (c.steps < 0 || c.epochs < 0) fail(c.steps < 0 ? "--steps" : "--epochs", ": must not be negative");
  if (c.loss != "assistant" && c.loss != "all") fail("--loss: '", c.loss, "' is not assistant or all");
  if (c.schedule != "linear" && c.schedule != "cosine") fail("schedule: '", c.schedule, "' is not linear or cosine");
  if (c.rank < 1) fail("--rank: must be at least 1");
  if (c.batch_tokens < 0 || c.max_length < 0) fail("--batch-tokens / --max-length: must not be negative");
  if (!(c.warmup_ratio >= 0 && c.warmup_ratio < 1)) fail("warmup_ratio: must be in [0, 1)");
  const bool lora_run = c.method != "full";
  const uint32_t target_mask = lora_run ? parse_lora_targets(c.targets) : 0;
  if (c.lr <= 0) c.lr = lora_run ? 2e-4f : 2e-5f;
  if (c.threads <= 0) c.threads = default_threads();
  set_threads(c.threads);

  make_directories(c.out);
  if (!c.resume && !list_checkpoints(c.out).empty())
    fail(c.out, ": already holds checkpoints; pass --resume to continue it or choose a new --out");
  std::optional<Checkpoint> ck;
  if (c.resume) ck = load_latest_checkpoint(c.out);
  if (ck) {
    const json& tc = ck->state["train_config"];
    if (tc.is_object() && tc.value("method", c.method) != c.method)
      fail(c.out, ": its checkpoints are from --method ", tc.value("method", std::string()), ", not ", c.method);
  }

  // The base, then the data (read with the base's tokenizer and chat template).
  InferModel im = load_model(c.model);
  if (!im.has_tokenizer) fail(c.model, ": has no tokenizer (tokenizer.json), so the data cannot be read");
  const ModelConfig cfg = im.config;
  if (c.method != "qlora" && wtype_is_block(im.weight_type))
    std::fprintf(stderr, "finetune: note: %s has %s matrices; --method %s trains on them widened to f32 "
                 "(--method qlora keeps them quantized)\n", c.model.c_str(), wtype_name(im.weight_type), c.method.c_str());
  if (c.max_length == 0) c.max_length = std::min(1024, cfg.max_position_embeddings);
  else if (c.max_length > cfg.max_position_embeddings)
    std::fprintf(stderr, "finetune: warning: --max-length %d is longer than the model's context (%d)\n", c.max_length,
                 cfg.max_position_embeddings);
  if (c.batch_tokens == 0) c.batch_tokens = 8 * c.max_length;  // TRL's default batch of 8
  if (c.batch_tokens < c.max_length)
    fail("--batch-tokens ", c.batch_tokens, " is smaller than --max-length ", c.max_length, ": a batch must hold one example");

  SftOptions so;
  so.max_length = c.max_length;
  so.loss_all = c.loss == "all";
  so.chat_template = im.chat_template;
  so.bos_token = im.bos_token, so.eos_token = im.eos_token;
  so.eos_id = cfg.eos_token_id >= 0 ? cfg.eos_token_id : (im.stop_ids.empty() ? -1 : im.stop_ids[0]);
  SftReport rep, vrep;
  std::vector<SftExample> train_ex = load_sft_jsonl(c.data, im.tokenizer, so, &rep);
  std::fprintf(stderr, "finetune: data: %s\n", rep.summary().c_str());
  for (size_t i = 0; i < rep.notes.size() && i < 5; i++) std::fprintf(stderr, "  %s\n", rep.notes[i].c_str());
  if (rep.notes.size() > 5) std::fprintf(stderr, "  ... and %zu more\n", rep.notes.size() - 5);
  if (train_ex.empty()) fail(c.data[0], ": no example with a loss token");
  std::vector<SftExample> val_ex;
  if (!c.val_data.empty()) {
    val_ex = load_sft_jsonl(c.val_data, im.tokenizer, so, &vrep);
    std::fprintf(stderr, "finetune: validation data: %s\n", vrep.summary().c_str());
    if (val_ex.empty()) fail(c.val_data[0], ": no validation example with a loss token");
  }

  // What a full run writes as its model folder.
  std::string tok_json = im.tokenizer_json, tok_cfg = im.tokenizer_config_json;
  if (tok_cfg.empty() && !im.chat_template.empty())
    tok_cfg = json{{"chat_template", im.chat_template}, {"bos_token", im.bos_token}, {"eos_token", im.eos_token}}.dump(2);

  Model m = to_train_model(im, lora_run && c.method == "qlora" ? qtype : WType::F32);
  im = InferModel{};  // the training model holds its own copy; drop the mapped file
  Lora lora;
  Trainable t;
  if (lora_run) {
    LoraConfig lc;
    lc.rank = c.rank, lc.alpha = c.alpha, lc.rslora = c.rslora, lc.targets = target_mask;
    lora = make_lora(cfg, lc);
    lora.base_model = c.model;
    init_lora(lora, c.seed);
    if (lora.grads.size != lora.num_floats) lora.grads = FloatBuffer(lora.num_floats);
    lora.adam_m = FloatBuffer(lora.num_floats);
    lora.adam_v = FloatBuffer(lora.num_floats);
    m.lora = &lora;
    m.frozen = true;
    for (auto& p : lora.params) t.views.push_back({p.name, p.offset, p.shape, int8_t(1)});
    t.w = lora.weights.data, t.g = lora.grads.data, t.m = lora.adam_m.data, t.v = lora.adam_v.data;
    t.n = lora.num_floats;
  } else {
    alloc_grads(m);
    alloc_optimizer_state(m);
    for (auto& p : m.params) t.views.push_back({p.name, p.offset, p.shape, static_cast<int8_t>(p.weight_decay ? 1 : 0)});
    t.w = m.weights.data, t.g = m.grads.data, t.m = m.adam_m.data, t.v = m.adam_v.data;
    t.n = m.num_floats;
  }
  AdamWOptimizer opt;
  opt.cfg = {c.beta1, c.beta2, c.eps, c.weight_decay, c.grad_clip};
  opt.spans = decay_spans(t.views, t.n);

  // The schedule's length: --steps, or the batches of `epochs` passes (a fraction of the last).
  Data data{&train_ex, c.seed, c.batch_tokens, c.max_length, c.packing};
  std::vector<SftBatch> cur = data.batches(0);
  if (cur.empty()) fail(c.data[0], ": no batch could be made");
  int64_t total = c.steps;
  if (total == 0) {
    const double E = c.epochs > 0 ? c.epochs : 1.0;
    const int64_t whole = static_cast<int64_t>(std::floor(E));
    for (int64_t e = 0; e < whole; e++) total += e == 0 ? int64_t(cur.size()) : int64_t(data.batches(e).size());
    if (E > double(whole))
      total += static_cast<int64_t>((E - double(whole)) * double(whole == 0 ? cur.size() : data.batches(whole).size()));
    total = std::max<int64_t>(total, 1);
  }
  const int64_t warmup = static_cast<int64_t>(std::ceil(double(c.warmup_ratio) * double(total)));
  LrSchedule sched{c.lr, c.min_lr, warmup, total, c.schedule == "linear"};
  if (c.save_interval <= 0) c.save_interval = std::max<int64_t>(1, total / 10);
  if (c.eval_interval <= 0) c.eval_interval = std::max<int64_t>(1, total / 10);
  const double batches_epoch0 = double(cur.size());

  // Where the data stands: the next batch is cur[index] of epoch `epoch`.
  int64_t step = 0, epoch = 0;
  size_t index = 0;
  // Training tokens (padding included) and joules so far: a resumed run goes on from its checkpoint's.
  double tokens_total = 0, train_joules = 0;
  if (ck) {
    if (const json& cm = ck->state["metrics"]; cm.is_object()) {
      if (cm.contains("tokens") && cm["tokens"].is_number()) tokens_total = cm["tokens"].get<double>();
      if (cm.contains("joules") && cm["joules"].is_number()) train_joules = cm["joules"].get<double>();
    }
    read_params(*ck->model, t.views, {t.w, t.n});
    read_adamw_state(*ck->optimizer, t.views, {t.m, t.n}, {t.v, t.n}, &opt.step);
    step = ck->step;
    const json& pos = ck->state["data_position"];
    epoch = pos.at("epoch").get<int64_t>();
    index = pos.at("index").get<size_t>();
    if (pos.value("examples", int64_t(train_ex.size())) != int64_t(train_ex.size()))
      fail(c.out, ": the checkpoint was made with ", pos.value("examples", 0), " training examples, the data now has ",
           train_ex.size(), "; resume with the same --data");
    if (epoch > 0) cur = data.batches(epoch);
    if (index >= cur.size()) fail(ck->dir, "/state.json: data position ", index, " is past the epoch's ", cur.size(), " batches");
    std::fprintf(stderr, "finetune: resumed %s at step %lld (epoch %lld, batch %zu)\n", ck->dir.c_str(), (long long)step,
                 (long long)epoch, index);
    ck.reset();
  }

  write_file_atomic(c.out + "/finetune.json", finetune_config_to_json(c).dump(2) + "\n");
  if (!lora_run) {
    write_file_atomic(c.out + "/config.json", cfg.to_json());
    write_file_atomic(c.out + "/tokenizer.json", tok_json);
    if (!tok_cfg.empty()) write_file_atomic(c.out + "/tokenizer_config.json", tok_cfg);
  }
  MetricsLog log(c.out + "/metrics.jsonl", c.resume ? step : -1);

  auto save = [&](int64_t s) {
    CheckpointWrite w;
    w.step = s;
    w.model = param_tensors(t.views, t.w);
    w.optimizer = adamw_state_tensors(t.views, t.m, t.v);
    w.model_config = json::parse(cfg.to_json());
    w.rng = json{{"seed", c.seed}, {"note", "no random state: the LoRA init and each epoch's order derive from seed"}};
    const bool wrapped = index == cur.size();
    w.data_position = json{{"epoch", wrapped ? epoch + 1 : epoch}, {"index", wrapped ? 0 : index},
                           {"examples", train_ex.size()}};
    w.train_config = finetune_config_to_json(c);
    w.metrics = json{{"tokens", tokens_total}, {"joules", train_joules}};
    if (!lora_run) {
      w.extra_files["tokenizer.json"] = tok_json;
      if (!tok_cfg.empty()) w.extra_files["tokenizer_config.json"] = tok_cfg;
    }
    std::string dir = save_checkpoint(c.out, w, c.keep_last);
    if (!lora_run) publish_file(dir + "/model.safetensors", c.out + "/model.safetensors");
  };

  // Validation: every validation example, in file order, each time.
  std::vector<SftBatch> val_batches;
  if (!val_ex.empty()) {
    std::vector<size_t> order(val_ex.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    val_batches = make_sft_batches(val_ex, order, c.batch_tokens, c.max_length, c.packing);
  }
  auto evaluate = [&]() {
    double sum = 0;
    int64_t n = 0;
    for (const SftBatch& b : val_batches) {
      Packing pk{b.docs};
      int valid = 0;
      float l = forward_loss(m, b.inputs.data(), b.targets.data(), b.B, b.T, nullptr, c.bf16,
                             b.docs.empty() ? nullptr : &pk, &valid);
      if (valid > 0) sum += double(l) * valid, n += valid;
    }
    return n > 0 ? sum / double(n) : 0.0;
  };

  size_t trainable = 0;
  for (auto& v : t.views) trainable += v.numel();
  const double base_params = double(cfg.num_parameters());
  std::fprintf(stderr,
               "finetune: %s of %s (%.2f M parameters%s): %.3f M trainable (%.2f%%)%s, %zu examples, %lld steps "
               "(%.2f epochs), lr %g %s, warmup %lld, batch_tokens %d, max_length %d%s%s%s, %d threads\n",
               c.method.c_str(), c.model.c_str(), base_params / 1e6,
               c.method == "qlora" ? cat(", base in ", c.quant).c_str() : "", trainable / 1e6,
               100.0 * double(trainable) / base_params,
               lora_run ? cat(", r ", c.rank, " alpha ", c.alpha, c.rslora ? " rslora" : "", " on ",
                              c.targets).c_str()
                        : "",
               train_ex.size(), (long long)total, double(total) / batches_epoch0, c.lr, c.schedule.c_str(),
               (long long)warmup, c.batch_tokens, c.max_length, c.packing ? ", packing" : "", c.bf16 ? ", bf16" : "",
               c.recompute ? ", recompute" : "", c.threads);
  if (step >= total) std::fprintf(stderr, "finetune: already at step %lld of %lld\n", (long long)step, (long long)total);

  TrainOptions to;
  to.bf16 = c.bf16, to.recompute = c.recompute;
  EnergyMeter energy;
  const bool tty = isatty(2);
  install_stop_signal_handlers();
  const int64_t start_step = step;
  const double t_start = now_s(), joules_base = train_joules;
  double t_last_print = 0, tokens_done = 0;
  // Evaluation (val_loss, the eval hook) is not training: its seconds and joules stay out of the
  // rate and the run's joules.
  double eval_s = 0, eval_joules = 0;
  bool interrupted = false;
  while (step < total) {
    if (index == cur.size()) {
      epoch++, index = 0;
      cur = data.batches(epoch);
    }
    const SftBatch& b = cur[index];
    const double t0 = now_s();
    zero_grads(m);
    Packing pk{b.docs};
    to.packing = b.docs.empty() ? nullptr : &pk;
    const float loss = forward_backward(m, b.inputs.data(), b.targets.data(), b.B, b.T, 1.0f, to);
    const float lr = sched.at(step);
    AdamWStats st = opt.update({t.w, t.n}, {t.g, t.n}, {t.m, t.n}, {t.v, t.n}, lr, 1, c.threads);
    step++, index++;  // index == cur.size(): the next epoch's batches are made when needed
    const double dt = now_s() - t0;
    const double tokens = double(b.B) * b.T;
    tokens_done += tokens;
    tokens_total += tokens;
    const double tps = tokens / dt, joules = joules_base + energy.joules() - eval_joules;
    train_joules = joules;
    const bool eval_step = step % c.eval_interval == 0 || step == total;
    const bool val_now = !val_batches.empty() && eval_step, hook_now = c.on_eval && eval_step;
    const bool eval_now = val_now || hook_now;
    double vloss = 0, eval_dt = 0, eval_dj = 0;
    json eval_fields = json::object();
    if (eval_now) {
      const double te0 = now_s(), je0 = energy.joules();
      if (val_now) vloss = evaluate();
      if (hook_now) eval_fields = run_eval_hook(c.on_eval, {m, step, tokens_total, joules, tok_json, tok_cfg});
      eval_dt = now_s() - te0, eval_dj = energy.joules() - je0;
      eval_s += eval_dt, eval_joules += eval_dj;
    }

    const double ep = double(epoch) + double(index) / double(std::max<size_t>(1, cur.size()));
    json row = {{"step", step},         {"epoch", ep},           {"loss", loss},
                {"lr", lr},             {"grad_norm", st.grad_norm}, {"tokens_per_s", tps},
                {"joules", joules},     {"energy", energy.label()}, {"step_tokens", tokens},
                {"loss_tokens", b.loss_tokens}, {"tokens", tokens_total}, {"step_s", dt}};
    if (val_now) row["val_loss"] = vloss;
    if (eval_now) {
      row["eval_s"] = eval_dt, row["eval_joules"] = eval_dj;
      for (auto& [k, v] : eval_fields.items()) row[k] = v;
    }
    log.write(row);
    const double elapsed = now_s() - t_start, train_s = std::max(1e-9, elapsed - eval_s);
    const double eta = elapsed / double(step - start_step) * double(total - step);
    std::string line = cat("step ", step, "/", total, " epoch ", short_float(ep, 4), " loss ", short_float(loss, 6),
                           " lr ", lr, " gnorm ", short_float(st.grad_norm, 5), " ",
                           static_cast<long>(tokens_done / train_s), " tok/s ETA ", fmt_duration(eta), " ",
                           static_cast<long>(joules), " J (", energy.label(), ")");
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    } else if (step % c.log_interval == 0 || step == total || eval_now || now_s() - t_last_print > 30) {
      std::fprintf(stderr, "%s\n", line.c_str());
      t_last_print = now_s();
    }
    if (eval_now && tty) std::fprintf(stderr, "\n");
    if (val_now) std::fprintf(stderr, "step %lld: val_loss %.4f\n", (long long)step, vloss);
    if (!eval_fields.empty()) std::fprintf(stderr, "step %lld: %s\n", (long long)step, eval_summary(eval_fields).c_str());
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    if (step % c.save_interval == 0 || step == total) save(step);
  }
  if (tty) std::fprintf(stderr, "\n");
  if (interrupted) {
    save(step);
    std::fprintf(stderr, "interrupted: saved checkpoint step-%lld in %s; continue with --resume\n", (long long)step,
                 c.out.c_str());
    return 0;
  }
  if (lora_run) {
    save_peft_adapter(lora, c.out);
    save_gguf_lora(lora, cfg, c.out + "/adapter.gguf");
  }
  if (c.plot && step > 0) {
    try {
      plot_loss(c.out + "/metrics.jsonl", c.out + "/loss.png");
      std::fprintf(stderr, "wrote %s/loss.png\n", c.out.c_str());
    } catch (const Error& e) {
      std::fprintf(stderr, "finetune: warning: no loss plot: %s\n", e.what());
    }
  }
  if (lora_run)
    std::fprintf(stderr, "done: %s (adapter_config.json + adapter_model.safetensors: PEFT; adapter.gguf: llama.cpp --lora)\n"
                 "use it: todae generate --model %s --lora %s ...; merge it: todae finetune merge --model %s --lora %s --out OUT\n",
                 c.out.c_str(), c.model.c_str(), c.out.c_str(), c.model.c_str(), c.out.c_str());
  else
    std::fprintf(stderr, "done: %s (a model folder: config.json, model.safetensors, tokenizer.json)\n", c.out.c_str());
  return 0;
}

// ---- merge --------------------------------------------------------------------------------------

void merge_adapter(const std::string& base, const std::string& lora_path, const std::string& out, const std::string& type) {
  if (base.empty()) fail("--model: no base model given");
  if (lora_path.empty()) fail("--lora: no adapter given");
  if (out.empty()) fail("--out: no output given");
  WType t = WType::F32;
  if (!type.empty() && !parse_wtype(type.c_str(), &t)) fail("--type '", type, "' is not one of f32, f16, bf16, q8_0, q4_0");
  InferModel m = load_model(base);
  Lora lora = load_lora(lora_path, m.config);
  if (type.empty()) t = wtype_is_block(m.weight_type) ? WType::F32 : m.weight_type;
  merge_lora(m, lora);
  save_model(m, out, t);
  std::fprintf(stderr, "merged %s into %s: wrote %s (%s)\n", lora_path.c_str(), base.c_str(), out.c_str(), wtype_name(t));
}

}  // namespace todae
