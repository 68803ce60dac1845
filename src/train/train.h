// todae train: the parts of pretraining that do not depend on the model's internals. Public API.
//
//   optimizer   AdamW over flat f32 buffers, global-norm clipping, warmup + cosine schedule
//   checkpoint  atomic checkpoint folders (model.safetensors, optimizer.safetensors, state.json,
//               config.json), keep-last-N, load_latest that never picks up a half-written one
//   metrics     metrics.jsonl (one JSON object per step, resumable) and a loss-curve PNG (gnuplot)
//
// Everything is deterministic: the same inputs give the same bits on any thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "formats/formats.h"

namespace todae {

// ---- optimizer --------------------------------------------------------------------------------

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled (AdamW): p -= lr · wd · p, only on spans with decay
  float grad_clip = 1.0f;     // max global gradient norm; <= 0 disables clipping
};

// Learning rate at a 0-based step: linear warmup from max_lr/warmup_steps to max_lr over the first
// warmup_steps steps, then half a cosine from max_lr down to min_lr at total_steps, min_lr after.
// linear: a straight line down to min_lr instead of the cosine (Hugging Face Trainer's default
// "linear" scheduler, which fine-tuning uses).
struct LrSchedule {
  float max_lr = 3e-4f;
  float min_lr = 3e-5f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  bool linear = false;
  float at(int64_t step) const;
};

// A parameter tensor inside the flat buffer: the model's table of views, reduced to what the
// optimizer and checkpoints need. Names are the Hugging Face ones ("model.layers.0.mlp.up_proj.weight").
struct ParamView {
  std::string name;
  size_t offset = 0;  // in elements
  std::vector<int64_t> shape;
  int8_t decay = -1;  // 1 / 0: weight decay or not, as the model decides; -1: the name/shape rule
  size_t numel() const;
};
// From the model's table: for (auto& p : model.params) views.push_back({p.name, p.offset, p.shape,
// p.weight_decay});

// A run [begin, end) of the flat buffer, in elements, and whether it gets weight decay.
struct ParamSpan {
  size_t begin = 0, end = 0;
  bool decay = true;
};

// Weight decay on matrices (linear weights, embeddings) only: none on 1-D tensors (norm scales,
// biases) or anything named *norm* (so QK-norm and final norm weights are spared whatever shape).
bool default_weight_decay(std::string_view name, std::span<const int64_t> shape);
// Spans covering [0, total) from the views (a view's own `decay` flag, else the rule): gaps between
// views (alignment padding) get no decay, adjacent views with the same flag are merged. Error when views overlap or run
// past total.
std::vector<ParamSpan> decay_spans(std::span<const ParamView> views, size_t total,
                                   bool (*decay)(std::string_view, std::span<const int64_t>) = default_weight_decay);

// L2 norm of the whole buffer times `scale`, summed in double in fixed 64K-element chunks so the
// result is the same on any thread count.
double global_norm(std::span<const float> g, double scale = 1.0, int threads = 1);

struct AdamWStats {
  float lr = 0;
  double grad_norm = 0;  // of the averaged gradient, before clipping
  float clip_scale = 1;  // factor applied to the averaged gradient (1 when not clipped)
};

// One AdamW update, the same arithmetic as torch.optim.AdamW (PyTorch 1.13, non-foreach):
//   g = grads / accum_steps, clipped to cfg.grad_clip by global norm (as clip_grad_norm_),
//   p *= 1 - lr·wd (decay spans only); m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
//   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)   with t = step after increment.
// grads holds the SUM over accum_steps micro-batches of each micro-batch's mean-loss gradient (the
// model's backward accumulates with +=); it is read, not changed. spans empty = decay everywhere.
struct AdamWOptimizer {
  AdamWConfig cfg;
  std::vector<ParamSpan> spans;
  int64_t step = 0;  // updates applied so far (t in the bias correction is step+1 during an update)

  AdamWStats update(std::span<float> params, std::span<const float> grads, std::span<float> m, std::span<float> v,
                    float lr, int accum_steps = 1, int threads = 1);
};

// ---- checkpoints ------------------------------------------------------------------------------
//
// RUN/step-N/ holds model.safetensors (Hugging Face names: loadable by any safetensors reader),
// optimizer.safetensors (exp_avg.NAME, exp_avg_sq.NAME and a scalar I64 "step"), config.json
// (the model config as given) and state.json (step, rng, data_position, train_config, metrics as
// given, plus the sizes and checksums of the other files). It is written into RUN/step-N.tmp-XXXXXX,
// every file and the folder fsynced, renamed to RUN/step-N, and RUN/latest (one line "step-N") is
// then replaced atomically. Only folders named exactly step-N are ever loaded.

struct CheckpointWrite {
  int64_t step = 0;
  std::vector<TensorRef> model;                            // -> model.safetensors
  std::vector<TensorRef> optimizer;                        // -> optimizer.safetensors (see adamw_state_tensors)
  nlohmann::json model_config = nlohmann::json::object();  // -> config.json
  // Opaque to us, restored as given: the caller's RNG state, data loader position, run config and
  // metrics so far.
  nlohmann::json rng, data_position, train_config, metrics;
  // More files to put in the folder (e.g. tokenizer.json), name -> contents.
  std::map<std::string, std::string> extra_files;
};

// Writes RUN/step-N and returns its path; then keeps only the newest keep_last checkpoints
// (keep_last <= 0 keeps all) and removes leftover .tmp folders of crashed saves. Errors (disk full,
// unwritable RUN) name the file and the OS reason and leave the previous checkpoints untouched.
std::string save_checkpoint(const std::string& run_dir, const CheckpointWrite& ck, int keep_last = 3);

struct Checkpoint {
  std::string dir;
  int64_t step = 0;
  std::unique_ptr<SafetensorsFile> model, optimizer;  // validated, checksums verified
  nlohmann::json model_config;                        // config.json
  nlohmann::json state;                               // state.json: rng, data_position, train_config, metrics
};

// Loads one checkpoint folder; any missing, truncated or corrupt file is an Error naming it.
Checkpoint load_checkpoint(const std::string& dir);
// The complete checkpoints in RUN, oldest first: (step, path).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);
// The checkpoint RUN/latest points to, or the highest step-N when `latest` is missing or stale;
// nullopt when RUN has none. Half-written saves (.tmp folders) are never considered; a complete
// one that fails verification is an Error, not silently skipped (so corruption is seen).
std::optional<Checkpoint> load_latest_checkpoint(const std::string& run_dir);

// Optimizer tensors for the views: "exp_avg.NAME" and "exp_avg_sq.NAME" pointing into m and v.
std::vector<TensorRef> adamw_state_tensors(std::span<const ParamView> views, const float* m, const float* v);
// Model tensors for the views, pointing into the flat parameter buffer.
std::vector<TensorRef> param_tensors(std::span<const ParamView> views, const float* params);
// Copies every view back from a checkpoint (bit for bit): params from model, m and v from optimizer.
// Errors name the missing tensor or the shape mismatch.
void read_params(const SafetensorsFile& model, std::span<const ParamView> views, std::span<float> params);
void read_adamw_state(const SafetensorsFile& optimizer, std::span<const ParamView> views, std::span<float> m,
                      std::span<float> v, int64_t* step);

// ---- metrics ----------------------------------------------------------------------------------

// RUN/metrics.jsonl: one JSON object per line, each written with a single write() so a crash
// leaves at most one torn last line.
struct MetricsLog {
  // resume_step < 0 starts a new file. Otherwise rows with "step" <= resume_step are kept and the
  // rest (logged after that checkpoint, or torn) dropped, so a resumed run continues cleanly.
  explicit MetricsLog(const std::string& path, int64_t resume_step = -1);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const nlohmann::json& row);
  std::string path;
  int fd = -1;
};

// Every complete row of a metrics file (a torn last line is ignored).
std::vector<nlohmann::json> read_metrics(const std::string& path);

// Writes a loss-curve PNG from a metrics file with gnuplot: "loss" per step, "val_loss" as points
// where present. Error when gnuplot is missing or fails, or when there is nothing to plot.
void plot_loss(const std::string& metrics_path, const std::string& png_path);

// ---- evaluation hook --------------------------------------------------------------------------
//
// Both training loops call an optional hook at every evaluation step (where val_loss is computed)
// with the weights as they are after that step's update; the fields it returns go into that step's
// metrics.jsonl row. It is how `todae pretrain/finetune --eval-tasks` run benchmark tasks while
// training without this module knowing about evaluation (src/eval sits above it; app/ wires the
// two). Its time and energy are left out of the run's tokens_per_s and joules.

struct Model;  // model/model.h

struct EvalHookArgs {
  const Model& model;  // the current weights; with model.lora: base + the current adapter, unmerged
  int64_t step = 0;
  double tokens = 0, joules = 0;  // training tokens and joules so far (as in the row)
  const std::string& tokenizer_json;         // the run's tokenizer files, as texts
  const std::string& tokenizer_config_json;  // may be empty
};
using EvalHook = std::function<nlohmann::json(const EvalHookArgs&)>;

// ---- throughput -------------------------------------------------------------------------------

// Training FLOPs per token of a decoder-only transformer (PaLM appendix B): 6·N for the matmuls
// with N the non-embedding parameters (plus the LM head), and 12·L·d·T for attention scores.
double train_flops_per_token(double n_matmul_params, int n_layers, int d_model, int seq_len);
// Model FLOPs utilisation: achieved FLOP/s over the machine's peak.
inline double mfu(double flops_per_token, double tokens_per_s, double peak_gflops) {
  return peak_gflops > 0 ? flops_per_token * tokens_per_s / (peak_gflops * 1e9) : 0.0;
}

}  // namespace todae
