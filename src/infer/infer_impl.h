// Internal to todae_infer: pieces shared by the loader, the converter and the tests.
#pragma once

#include <string>

#include "formats/gguf.h"
#include "infer/infer.h"

namespace todae {

// Rope tables, stop ids and the model's headline weight type, after the weights are in place.
void finish_model(InferModel& m, const LoadOptions& opt);
// tokenizer.json (+ tokenizer_config.json, chat template) from a Hugging Face style folder.
void load_tokenizer_files(InferModel& m, const std::string& dir);

GgmlType ggml_from_wtype(WType t);
// llama.cpp's q/k row order for architecture "llama" (interleaved RoPE pairs) and back.
void rows_from_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes);
void rows_to_gguf_llama(const uint8_t* in, uint8_t* out, int heads, int D, size_t row_bytes);

// A Hugging Face tokenizer.json rebuilt from a GGUF's tokenizer.ggml.* keys (byte-level BPE,
// "gpt2" model; the pre-tokenizer chosen by tokenizer.ggml.pre).
std::string tokenizer_json_from_gguf(const GgufFile& f);
// The reverse: tokenizer.ggml.* metadata for our tokenizer (model, pre, tokens, token_type, merges,
// special ids), appended to `kv`.
void tokenizer_to_gguf(const InferModel& m, std::vector<std::pair<std::string, GgufValue>>& kv);

// Peak resident memory of this process (VmHWM), in MiB.
double peak_rss_mb();

}  // namespace todae
