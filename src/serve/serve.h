// todae serve: an OpenAI-compatible HTTP server for one model, with continuous batching and a web
// chat page. Public API of the module (app/cmd_serve.cpp is its only caller).
//
//   GET  /                     the chat page (embedded HTML/JS, no CDN)
//   GET  /health               {"status":"ok",...}
//   GET  /metrics              Prometheus text
//   GET  /props                bos_token, eos_token, n_ctx (llama-server's names; for eval clients)
//   GET  /v1/models                the base, then each --lora adapter ("parent": the base)
//   POST /v1/chat/completions  messages, n, logprobs, stream (+ include_usage), stop, seed,
//                              penalties, tools + tool_choice, response_format (grammar-enforced)
//   POST /v1/completions       prompt (text, ids, or a list of either), echo + logprobs scoring the
//                              prompt's tokens (max_tokens 0: lm-eval's log-likelihood request)
//   POST /v1/embeddings        mean-pooled final hidden state, L2-normalised
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tensor/quant.h"

namespace todae::serve {

struct ServeOptions {
  std::string model_path;
  std::string alias;  // model id clients use (default: the model's folder or file name)
  // LoRA adapters over the one base, "NAME=DIR[:scale]" each: a request whose "model" is NAME is
  // decoded with that adapter, in the same batches as the others and the base (as vLLM does).
  std::vector<std::string> loras;
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (printed)
  std::vector<std::string> api_keys;  // empty: no authentication
  int parallel = 4;                   // KV cache slots = sequences decoded together
  int ctx = 0;                        // positions per slot (0: the model's context, at most 4096)
  int threads = 0;                    // kernel threads (0: default)
  int max_queue = 64;                 // requests waiting for a slot before 429
  int batch_tokens = 512, prefill_chunk = 256;
  size_t max_body_bytes = size_t{8} << 20;
  std::optional<WType> weight_type;
  WType kv_type = WType::F16;
  double shutdown_grace_s = 10;
  bool quiet = false;
  std::string port_file;  // written with the bound port once listening (tests)
};

// Loads the model, listens, and serves until SIGTERM/SIGINT (then finishes running requests for
// up to shutdown_grace_s and stops). Returns the process exit code.
int run_serve(const ServeOptions& opt);

}  // namespace todae::serve
