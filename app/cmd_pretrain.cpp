// `todae pretrain`: next-token pretraining from token shards (see src/train/trainer.h).
//
//   todae pretrain --config train.json [flags]           full control (flags override the file)
//   todae pretrain --preset tiny|S|M --data SHARDS --out RUN [--steps N] [--bf16] [--threads N] [--resume]
//                  [--eval-tasks NAME,...|FILE.yaml [--eval-limit N] [--eval-data-dir DIR] [--eval-text FILE]...]
#include <cstdlib>

#include "app/commands.h"
#include "base/base.h"
#include "eval/eval.h"
#include "train/trainer.h"

namespace todae::cli {

namespace {

struct PretrainArgs {
  std::string config;
  PretrainConfig c;
  // Flags are applied over the config file only when given, so keep them apart.
  std::string preset, data, out, tokenizer, model;
  int batch = 0, seq_len = 0, grad_accum = 0, threads = 0, eval_batches = 0, keep_last = 0;
  int64_t steps = 0, warmup = -1, eval_interval = 0, checkpoint_interval = 0;
  float lr = 0, min_lr = -1;
  long long seed = -1;
  bool bf16 = false, recompute = false, resume = false, no_plot = false;
  std::vector<std::string> prompts;
  std::string eval_tasks, eval_data_dir;
  int eval_limit = -2;  // -2: not given
  std::vector<std::string> eval_text;
};

void run(PretrainArgs& a) {
  PretrainConfig c;
  if (!a.config.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(a.config));
    } catch (const nlohmann::json::exception& e) {
      fail(a.config, ": not valid JSON: ", e.what());
    }
    pretrain_config_from_json(j, c, a.config);
  }
  if (!a.preset.empty()) c.preset = a.preset;
  if (!a.model.empty()) c.model_path = a.model;
  if (!a.data.empty()) c.data = a.data;
  if (!a.out.empty()) c.out = a.out;
  if (!a.tokenizer.empty()) c.tokenizer = a.tokenizer;
  if (a.batch) c.batch_size = a.batch;
  if (a.seq_len) c.seq_len = a.seq_len;
  if (a.grad_accum) c.grad_accum = a.grad_accum;
  if (a.threads) c.threads = a.threads;
  if (a.eval_batches) c.eval_batches = a.eval_batches;
  if (a.keep_last) c.keep_last = a.keep_last;
  if (a.steps) c.steps = a.steps;
  if (a.warmup >= 0) c.warmup_steps = a.warmup;
  if (a.eval_interval) c.eval_interval = a.eval_interval;
  if (a.checkpoint_interval) c.checkpoint_interval = a.checkpoint_interval;
  if (a.lr > 0) c.lr = a.lr;
  if (a.min_lr >= 0) c.min_lr = a.min_lr;
  if (a.seed >= 0) c.seed = static_cast<uint64_t>(a.seed);
  if (a.bf16) c.bf16 = true;
  if (a.recompute) c.recompute = true;
  if (a.resume) c.resume = true;
  if (a.no_plot) c.plot = false;
  if (!a.prompts.empty()) c.prompts = a.prompts;
  if (!a.eval_tasks.empty()) c.eval_tasks = a.eval_tasks;
  if (!a.eval_data_dir.empty()) c.eval_data_dir = a.eval_data_dir;
  if (a.eval_limit != -2) c.eval_limit = a.eval_limit;
  if (!a.eval_text.empty()) c.eval_text = a.eval_text;
  if (!c.eval_tasks.empty()) {
    // Benchmarks at every evaluation step: src/eval's hook on the training weights (src/train
    // only calls it), its tasks and data checked here, before any training.
    c.on_eval = eval::train_eval_hook_of(c);
  }
  if (c.preset.empty() && c.model_path.empty() && c.model_config.is_null())
    fail("pretrain: give --preset tiny|S|M, --model config.json, or --config train.json");
  int rc = run_pretrain(std::move(c));
  if (rc != 0) std::exit(rc);
}

void add_pretrain_commands(CLI::App& app) {
  static PretrainArgs a;
  auto* p = app.add_subcommand("pretrain", "Pretrain a decoder-only model on token shards (next-token prediction)");
  p->add_option("--config", a.config, "train.json: every setting by name (flags given here override it)");
  p->add_option("--preset", a.preset, "Model and training shape: tiny (CI), S, M (../shared/perf/SHAPES.md)");
  p->add_option("--model", a.model, "A Hugging Face config.json (file or folder) instead of a preset");
  p->add_option("--data", a.data, "Shard folder from `todae data shard` (manifest.json)");
  p->add_option("--out", a.out, "Run folder: checkpoints, metrics.jsonl, loss.png, and an HF model folder");
  p->add_option("--tokenizer", a.tokenizer, "Tokenizer (default: the one recorded in the shard manifest)");
  p->add_option("--steps", a.steps, "Optimizer steps");
  p->add_option("--batch", a.batch, "Global batch in sequences per micro-step (split over MPI ranks)");
  p->add_option("--seq-len", a.seq_len, "Context length of the training windows");
  p->add_option("--grad-accum", a.grad_accum, "Micro-steps per optimizer step");
  p->add_option("--lr", a.lr, "Peak learning rate");
  p->add_option("--min-lr", a.min_lr, "Final learning rate of the cosine decay (default lr/10)");
  p->add_option("--warmup", a.warmup, "Linear warmup steps (default min(100, steps/10))");
  p->add_option("--eval-interval", a.eval_interval, "Steps between validations and samples (default steps/10)");
  p->add_option("--eval-batches", a.eval_batches, "Validation batches per evaluation (default 4)");
  p->add_option("--checkpoint-interval", a.checkpoint_interval, "Steps between checkpoints (default eval interval)");
  p->add_option("--keep-last", a.keep_last, "Checkpoints kept (default 3)");
  p->add_option("--seed", a.seed, "Seed of the init and the data order (default 1234)");
  p->add_option("--threads", a.threads, "Kernel threads per process (default: cores / ranks on this node)");
  p->add_option("--prompt", a.prompts, "Prompt for the greedy samples at each evaluation (repeatable)");
  p->add_option("--eval-tasks", a.eval_tasks,
                "Benchmark tasks scored at every evaluation into metrics.jsonl (eval/TASK/METRIC), as `todae eval --tasks`");
  p->add_option("--eval-limit", a.eval_limit, "Documents per eval task (default: all)");
  p->add_option("--eval-data-dir", a.eval_data_dir, "Data folder of the eval tasks (as `todae eval --data-dir`)");
  p->add_option("--eval-text", a.eval_text, "Text file scored by the bpb eval task (repeatable)");
  p->add_flag("--bf16", a.bf16, "bf16 mixed precision for matmuls (f32 master weights)");
  p->add_flag("--recompute", a.recompute, "Recompute activations in the backward pass (less memory)");
  p->add_flag("--resume", a.resume, "Continue from the latest checkpoint in --out (bit-exact)");
  p->add_flag("--no-plot", a.no_plot, "Skip the loss-curve PNG");
  p->callback([] { run(a); });
}

CommandRegistrar registrar(30, add_pretrain_commands);

}  // namespace

}  // namespace todae::cli
