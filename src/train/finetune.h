// todae finetune: supervised fine-tuning of any model todae loads (run or checkpoint folder,
// Hugging Face folder, GGUF) on chat / prompt-completion / text JSONL (src/data/sft.h), as full
// SFT, LoRA or QLoRA (src/model/lora.h), with the guarantees of pretraining: atomic checkpoints
// with per-tensor checksums, bit-exact resume after SIGKILL, SIGINT/SIGTERM save and exit 0,
// metrics.jsonl, loss.png, a progress line with rate, ETA and energy.
//
// Defaults follow TRL's SFTTrainer and PEFT's LoraConfig, so a recipe moves over unchanged:
// lr 2e-4 (LoRA/QLoRA) or 2e-5 (full), r 16, alpha 32, all linear layers, one epoch, AdamW
// (0.9, 0.999, eps 1e-8, no weight decay), 3% linear warmup then linear decay to 0, clip 1.0,
// max_length 1024 (at most the model's context), seed 42.
//
// What OUT holds at the end: LoRA/QLoRA — adapter_config.json + adapter_model.safetensors (PEFT)
// and adapter.gguf (llama.cpp's --lora); full — a Hugging Face model folder (config.json,
// model.safetensors, tokenizer files). Both: metrics.jsonl, loss.png, finetune.json, step-N/.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/train.h"

namespace todae {

struct FinetuneConfig {
  std::string model;               // base: anything load_model reads
  std::vector<std::string> data;   // JSONL files (TRL formats)
  std::vector<std::string> val_data;
  std::string out;
  std::string method = "lora";     // full | lora | qlora
  std::string quant;               // qlora base type: q4_0 (default) | q8_0
  int rank = 16;
  float alpha = 32;
  bool rslora = false;
  std::string targets = "all-linear";  // or "q_proj,v_proj,..."
  int64_t steps = 0;               // optimizer steps; 0: from epochs
  double epochs = 0;               // passes over the data (fractions allowed); 0 and no steps: 1
  float lr = 0;                    // 0: 2e-4 for lora/qlora, 2e-5 for full
  float min_lr = 0;                // end of the decay
  std::string schedule = "linear";  // linear | cosine
  float warmup_ratio = 0.03f;      // warmup steps = ceil(ratio · total steps)
  float weight_decay = 0, grad_clip = 1.0f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int batch_tokens = 0;            // tokens per batch (B·T, padding included); 0: 8 · max_length
  int max_length = 0;              // tokens per example (longer ones are truncated); 0: min(1024, context)
  bool packing = false;            // several short examples per row, attention kept within each
  std::string loss = "assistant";  // assistant | all (chat examples: loss on the assistant turns or all)
  bool bf16 = false, recompute = false;
  int threads = 0;                 // 0: default_threads()
  uint64_t seed = 42;              // LoRA init and the epochs' shuffles
  bool resume = false;
  int64_t eval_interval = 0;       // steps between validations (with val_data); 0: total/10
  int64_t save_interval = 0;       // steps between checkpoints; 0: total/10 (at least 1)
  int keep_last = 2;               // checkpoints kept
  int log_interval = 10;           // progress lines when stderr is not a terminal
  bool plot = true;                // loss.png at the end (a warning without gnuplot)
  // Benchmark tasks at every evaluation, as in PretrainConfig (`--eval-tasks`, "eval_tasks"):
  // for LoRA/QLoRA the base with the current adapter, unmerged. app/ turns them into on_eval.
  std::string eval_tasks;
  int eval_limit = -1;
  std::string eval_data_dir;
  std::vector<std::string> eval_text;
  EvalHook on_eval;                // not in finetune.json
};

// Parses finetune.json: every field of FinetuneConfig by its name ("data" and "val_data" may be
// a string or a list). Unknown keys and wrong types are an Error naming the key and `source`.
void finetune_config_from_json(const nlohmann::json& j, FinetuneConfig& c, const std::string& source);
nlohmann::json finetune_config_to_json(const FinetuneConfig& c);

// Runs (or with c.resume continues) a fine-tuning run. Returns the exit code (0, also after
// SIGINT/SIGTERM, which save a checkpoint first). Errors are todae::Error with one line.
int run_finetune(FinetuneConfig c);

// `todae finetune merge`: base + adapter (PEFT folder or GGUF LoRA) merged into one model, written
// as GGUF (out ends in .gguf) or a Hugging Face folder with the matrices in `type` ("" : the
// base's float type, f32 for a quantized base).
void merge_adapter(const std::string& base, const std::string& lora, const std::string& out,
                   const std::string& type = "");

}  // namespace todae
