// Helpers shared by the infer tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "base/base.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/model.h"
#include "text/text.h"

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

// A random Llama (2 layers, GQA 4/2 heads, widths 64/96) with a 400-token BPE trained on the
// sample corpus, written as a Hugging Face folder md (what the eval and serve tests load).
inline void write_tiny_llama(const std::string& md, const std::string& corpus_file, int max_positions, uint64_t seed = 7) {
  TokenizerTrainOptions o;
  o.inputs = {corpus_file};
  o.vocab_size = 400;
  o.progress = false;
  Tokenizer tok = train_bpe(o);
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = tok.vocab_size();
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.validate();
  Model ref(c);
  init_weights(ref, seed);
  std::vector<TensorRef> ts;
  for (const ParamInfo& p : ref.params) ts.push_back(f32_tensor(p.name, p.shape, ref.weights.data + p.offset));
  make_directories(md);
  write_safetensors(md + "/model.safetensors", ts);
  write_file_atomic(md + "/config.json", c.to_json());
  save_tokenizer(tok, md);
}

}  // namespace todae::test
