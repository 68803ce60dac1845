// todae pretrain: the training loop that ties the model, the token loader, AdamW, checkpoints and
// metrics together (`todae pretrain`). Data parallel over MPI when built with it and started by
// mpirun; one process otherwise.
//
// Determinism: for a fixed thread count and world size every step's loss is a function of
// (config, seed, data) only, so a run resumed from a checkpoint repeats the uninterrupted run bit
// for bit (weights, AdamW moments and step, data position are all restored exactly; nothing else
// is random).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/train.h"

namespace todae {

struct PretrainConfig {
  std::string preset;            // "tiny", "S", "M" or "" (then model_config / model_path is needed)
  nlohmann::json model_config;   // a Hugging Face config.json object (overrides the preset's fields)
  std::string model_path;        // or a config.json file / folder
  std::string data;              // shard folder (manifest.json)
  std::string out;               // run folder
  std::string tokenizer;         // default: the tokenizer recorded in the shard manifest
  int batch_size = 0;            // GLOBAL windows per micro-step (split over ranks); 0: preset
  int seq_len = 0;               // 0: preset
  int grad_accum = 1;            // micro-steps per optimizer step
  int64_t steps = 0;             // 0: preset
  float lr = 0, min_lr = -1;     // 0 / -1: preset / lr/10
  int64_t warmup_steps = -1;     // -1: min(100, steps/10)
  float weight_decay = 0.1f, grad_clip = 1.0f, beta1 = 0.9f, beta2 = 0.95f;
  int64_t eval_interval = 0;     // 0: steps/10 (at least 1)
  int eval_batches = 4;          // global validation batches per evaluation
  int64_t checkpoint_interval = 0;  // 0: eval_interval
  int keep_last = 3;
  uint64_t seed = 1234;
  int threads = 0;               // kernel threads per rank; 0: default_threads() / ranks on this node
  bool bf16 = false, recompute = false;
  std::vector<std::string> prompts;  // greedy samples at each evaluation; empty: Korean defaults
  int sample_tokens = 24;
  bool resume = false;
  int log_interval = 10;         // progress lines when stderr is not a terminal
  bool plot = true;              // loss-curve PNG at the end (skipped with a warning without gnuplot)
  // Benchmark tasks at every evaluation (`--eval-tasks`, as `todae eval --tasks`: names, groups
  // or task .yaml files), scored into that step's metrics.jsonl row as "eval/TASK/METRIC". This
  // module only records them; app/ turns them into on_eval.
  std::string eval_tasks;
  int eval_limit = -1;                 // documents per task (< 0: all)
  std::string eval_data_dir;           // the tasks' data folder (`todae eval --data-dir`)
  std::vector<std::string> eval_text;  // text files of the bpb task
  EvalHook on_eval;                    // called on rank 0 at every evaluation (not in train.json)
};

// Parses train.json: every field of PretrainConfig by its name ("model" may be an object or a path).
// Unknown keys are an Error naming the key and `source`.
void pretrain_config_from_json(const nlohmann::json& j, PretrainConfig& c, const std::string& source);
nlohmann::json pretrain_config_to_json(const PretrainConfig& c);

// The model config.json of a preset for a vocabulary size ("tiny", "S", "M"); Error otherwise.
nlohmann::json preset_model_config(const std::string& preset, int vocab_size);

// Runs (or resumes) a pretraining run. Returns the process exit code (0, also after SIGINT, which
// saves a checkpoint first). Errors are todae::Error naming the file or field.
int run_pretrain(PretrainConfig c);

}  // namespace todae
