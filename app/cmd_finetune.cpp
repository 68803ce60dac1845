// `todae finetune`: supervised fine-tuning (full, LoRA, QLoRA) of any model todae loads, and
// `todae finetune merge`: an adapter merged into its base (see src/train/finetune.h).
//
//   todae finetune --model PATH --data FILE.jsonl... --out DIR [--method full|lora|qlora] [...]
//   todae finetune --config finetune.json [flags]      every setting by name; flags override it
//   todae finetune --out DIR --resume                  continues DIR with the settings it was started with
//   todae finetune merge --model BASE --lora DIR --out OUT[.gguf] [--type f32|f16|bf16|q8_0|q4_0]
#include <cstdlib>
#include <functional>
#include <vector>

#include "app/commands.h"
#include "base/base.h"
#include "eval/eval.h"
#include "train/finetune.h"

namespace todae::cli {

namespace {

struct FinetuneArgs {
  std::string config;
  FinetuneConfig v;  // the flags' values; applied over the config file only when given
  std::vector<std::pair<CLI::Option*, std::function<void(FinetuneConfig&)>>> flags;
  CLI::Option *steps = nullptr, *epochs = nullptr;
  bool no_plot = false;
  std::string merge_model, merge_lora, merge_out, merge_type;
  CLI::App* merge = nullptr;
};

nlohmann::json read_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

void run(FinetuneArgs& a) {
  if (a.merge->parsed()) return;  // `finetune merge` ran its own callback
  if (a.steps->count() && a.epochs->count()) fail("--steps and --epochs: give one of them, not both");
  FinetuneConfig c;
  if (!a.config.empty()) {
    finetune_config_from_json(read_json_file(a.config), c, a.config);
  } else if (a.v.resume && !a.v.out.empty() && file_exists(a.v.out + "/finetune.json")) {
    // `--out DIR --resume` alone: the settings the run was started with (flags still override).
    finetune_config_from_json(read_json_file(a.v.out + "/finetune.json"), c, a.v.out + "/finetune.json");
  }
  // A flag for one of steps / epochs replaces whichever of the two the file set.
  if (a.steps->count()) c.epochs = 0;
  if (a.epochs->count()) c.steps = 0;
  for (auto& [opt, apply] : a.flags)
    if (opt->count()) apply(c);
  if (a.v.resume) c.resume = true;
  if (a.no_plot) c.plot = false;
  if (c.model.empty() || c.data.empty() || c.out.empty())
    fail("finetune: give --model PATH --data FILE.jsonl --out DIR (or --config finetune.json)");
  if (!c.eval_tasks.empty()) {
    // Benchmarks at every evaluation step (LoRA: base + the current adapter, unmerged): src/eval's
    // hook, its tasks and data checked here, before the base is loaded.
    c.on_eval = eval::train_eval_hook_of(c);
  }
  int rc = run_finetune(std::move(c));
  if (rc != 0) std::exit(rc);
}

void add_finetune_commands(CLI::App& app) {
  static FinetuneArgs a;
  auto* p = app.add_subcommand("finetune", "Fine-tune a model on chat / prompt-completion / text JSONL (full, LoRA, QLoRA)");
  FinetuneConfig& v = a.v;
  // Registers a flag whose value is copied into the config only when it was given.
  auto opt = [&](const char* name, auto& field, auto member, const char* help) {
    CLI::Option* o = p->add_option(name, field, help);
    a.flags.push_back({o, [&field, member](FinetuneConfig& c) { c.*member = field; }});
    return o;
  };
  auto flag = [&](const char* name, bool& field, bool FinetuneConfig::*member, const char* help) {
    CLI::Option* o = p->add_flag(name, field, help);
    a.flags.push_back({o, [&field, member](FinetuneConfig& c) { c.*member = field; }});
  };
  p->add_option("--config", a.config, "finetune.json: every setting by name (flags given here override it)");
  opt("--model,-m", v.model, &FinetuneConfig::model, "Base model: run/checkpoint folder, Hugging Face folder or .gguf");
  opt("--data", v.data, &FinetuneConfig::data, "Training JSONL files: {\"messages\"}, {\"prompt\",\"completion\"} or {\"text\"} lines");
  opt("--val-data", v.val_data, &FinetuneConfig::val_data, "Validation JSONL files (val_loss in metrics.jsonl)");
  opt("--out", v.out, &FinetuneConfig::out, "Output folder: adapter (PEFT + GGUF) or model, checkpoints, metrics.jsonl, loss.png");
  opt("--method", v.method, &FinetuneConfig::method, "full | lora | qlora (default lora)");
  opt("--quant", v.quant, &FinetuneConfig::quant, "QLoRA base type: q4_0 (default) | q8_0");
  opt("--rank,-r", v.rank, &FinetuneConfig::rank, "LoRA rank (default 16)");
  opt("--alpha", v.alpha, &FinetuneConfig::alpha, "LoRA alpha: the update is scaled by alpha/rank (default 32)");
  flag("--rslora", v.rslora, &FinetuneConfig::rslora, "Scale by alpha/sqrt(rank) (rsLoRA)");
  opt("--targets", v.targets, &FinetuneConfig::targets, "all-linear (default) or a list: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  a.steps = opt("--steps", v.steps, &FinetuneConfig::steps, "Optimizer steps (instead of --epochs)");
  a.epochs = opt("--epochs", v.epochs, &FinetuneConfig::epochs, "Passes over the data, fractions allowed (default 1)");
  opt("--lr", v.lr, &FinetuneConfig::lr, "Peak learning rate (default 2e-4 for lora/qlora, 2e-5 for full)");
  opt("--min-lr", v.min_lr, &FinetuneConfig::min_lr, "Learning rate at the end of the decay (default 0)");
  opt("--schedule", v.schedule, &FinetuneConfig::schedule, "Decay after warmup: linear (default) | cosine");
  opt("--warmup-ratio", v.warmup_ratio, &FinetuneConfig::warmup_ratio, "Fraction of the steps spent warming up (default 0.03)");
  opt("--weight-decay", v.weight_decay, &FinetuneConfig::weight_decay, "AdamW weight decay (default 0)");
  opt("--batch-tokens", v.batch_tokens, &FinetuneConfig::batch_tokens, "Tokens per batch, padding included (default 8 × max-length)");
  opt("--max-length", v.max_length, &FinetuneConfig::max_length, "Tokens per example; longer ones are truncated (default min(1024, context))");
  flag("--packing", v.packing, &FinetuneConfig::packing, "Pack short examples into full rows (attention stays within each)");
  opt("--loss", v.loss, &FinetuneConfig::loss, "Chat examples: loss on the assistant turns (default) or all tokens");
  flag("--bf16", v.bf16, &FinetuneConfig::bf16, "bf16 mixed precision for matmuls (f32 master weights)");
  flag("--recompute", v.recompute, &FinetuneConfig::recompute, "Recompute activations in the backward pass (less memory)");
  opt("--threads,-t", v.threads, &FinetuneConfig::threads, "Threads (default: all cores)");
  opt("--seed", v.seed, &FinetuneConfig::seed, "Seed of the LoRA init and the data order (default 42)");
  opt("--eval-interval", v.eval_interval, &FinetuneConfig::eval_interval, "Steps between validations (default steps/10)");
  opt("--save-interval", v.save_interval, &FinetuneConfig::save_interval, "Steps between checkpoints (default steps/10)");
  opt("--keep-last", v.keep_last, &FinetuneConfig::keep_last, "Checkpoints kept (default 2)");
  opt("--eval-tasks", v.eval_tasks, &FinetuneConfig::eval_tasks,
      "Benchmark tasks scored at every evaluation into metrics.jsonl (eval/TASK/METRIC), as `todae eval --tasks`");
  opt("--eval-limit", v.eval_limit, &FinetuneConfig::eval_limit, "Documents per eval task (default: all)");
  opt("--eval-data-dir", v.eval_data_dir, &FinetuneConfig::eval_data_dir, "Data folder of the eval tasks (as `todae eval --data-dir`)");
  opt("--eval-text", v.eval_text, &FinetuneConfig::eval_text, "Text file scored by the bpb eval task (repeatable)");
  p->add_flag("--resume", v.resume, "Continue from the latest checkpoint in --out (bit-exact)");
  p->add_flag("--no-plot", a.no_plot, "Skip the loss-curve PNG");
  p->callback([] { run(a); });

  a.merge = p->add_subcommand("merge", "Merge a LoRA adapter into its base: a Hugging Face folder, or GGUF for OUT.gguf");
  a.merge->add_option("--model,-m", a.merge_model, "Base model (anything `todae generate` loads)")->required();
  a.merge->add_option("--lora", a.merge_lora, "Adapter: a PEFT folder or a GGUF LoRA file")->required();
  a.merge->add_option("--out", a.merge_out, "OUT.gguf: GGUF; anything else: a Hugging Face folder")->required();
  a.merge->add_option("--type", a.merge_type, "Matrix type of the output (default: the base's float type, else f32)");
  a.merge->callback([] { merge_adapter(a.merge_model, a.merge_lora, a.merge_out, a.merge_type); });
}

CommandRegistrar registrar(35, add_finetune_commands);

}  // namespace

}  // namespace todae::cli
