// Helpers shared by the infer tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "base/base.h"
#include "model/model.h"

namespace todae::test {

// A fresh, empty folder under the temp dir, named for the test and this process.
inline std::string fresh_temp_dir(const std::string& prefix, const std::string& name) {
  namespace fs = std::filesystem;
  std::string d = (fs::temp_directory_path() / cat(prefix, "_", name, "_", ::getpid())).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The small model the adapter tests use: Llama, Qwen2 (q/k/v biases) or Qwen3 (QK-norm), GQA,
// every width a multiple of 32 (so q8_0 / q4_0 apply).
inline ModelConfig lora_test_config(const std::string& arch) {
  ModelConfig c;
  c.architecture = arch == "qwen3" ? "Qwen3ForCausalLM" : arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.attention_bias = arch == "qwen2";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-5;
  c.validate();
  return c;
}

}  // namespace todae::test
