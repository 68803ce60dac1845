// `todae serve`: an OpenAI-compatible HTTP server with continuous batching and a web chat page
// (see src/serve/serve.h).
//
//   todae serve --model PATH [--lora NAME=DIR[:scale]]... [--host 127.0.0.1] [--port 8080] [--api-key KEY]...
//               [--parallel N] [--ctx N]
#include "app/commands.h"
#include "base/base.h"
#include "serve/serve.h"

namespace todae::cli {

namespace {

struct ServeArgs {
  serve::ServeOptions o;
  std::string type, kv_type = "f16";
  double max_body_mb = 8;
};

void run(ServeArgs& a) {
  if (!a.type.empty()) {
    WType t;
    if (!parse_wtype(a.type.c_str(), &t)) fail("--type '", a.type, "' is not one of f32, f16, bf16, q8_0, q4_0");
    a.o.weight_type = t;
  }
  if (!parse_wtype(a.kv_type.c_str(), &a.o.kv_type)) fail("--kv-type '", a.kv_type, "' is not one of f32, f16, q8_0");
  if (!(a.max_body_mb > 0)) fail("--max-body-mb must be > 0");
  a.o.max_body_bytes = size_t(a.max_body_mb * 1024 * 1024);
  int rc = serve::run_serve(a.o);
  if (rc != 0) std::exit(rc);
}

void add_serve_commands(CLI::App& app) {
  static ServeArgs a;
  auto* p = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching and a web chat page");
  p->add_option("--model,-m", a.o.model_path, "Run/checkpoint folder, Hugging Face folder or .gguf file")->required();
  p->add_option("--host", a.o.host, "Address to listen on")->capture_default_str();
  p->add_option("--port", a.o.port, "Port (0: any free port, printed)")->capture_default_str();
  p->add_option("--api-key", a.o.api_keys, "Require 'Authorization: Bearer KEY' on /v1 (repeatable)");
  p->add_option("--parallel", a.o.parallel, "Sequences decoded together (KV cache slots)")->capture_default_str();
  p->add_option("--ctx", a.o.ctx, "Positions per slot (default: the model's, at most 4096)");
  p->add_option("--threads,-t", a.o.threads, "Kernel threads (default: all cores)");
  p->add_option("--queue", a.o.max_queue, "Requests waiting for a slot before answering 429")->capture_default_str();
  p->add_option("--batch", a.o.batch_tokens, "Tokens per forward pass at most")->capture_default_str();
  p->add_option("--prefill-chunk", a.o.prefill_chunk, "Prompt tokens per pass while other streams decode")
      ->capture_default_str();
  p->add_option("--alias", a.o.alias, "Model id for clients (default: the model's folder or file name)");
  p->add_option("--lora", a.o.loras,
                 "LoRA adapter served as model NAME: NAME=DIR[:scale] (a PEFT folder or a GGUF LoRA file; "
                 "repeatable). Requests for different adapters and the base share batches");
  p->add_option("--type", a.type, "Convert the weights at load time: f32|f16|bf16|q8_0|q4_0");
  p->add_option("--kv-type", a.kv_type, "KV cache type: f16|f32|q8_0")->capture_default_str();
  p->add_option("--max-body-mb", a.max_body_mb, "Largest request body, in MiB (larger: 413)")->capture_default_str();
  p->add_option("--shutdown-grace", a.o.shutdown_grace_s, "Seconds to finish running requests after SIGTERM")
      ->capture_default_str();
  p->add_option("--port-file", a.o.port_file, "Write the bound port to this file once listening");
  p->add_flag("--quiet,-q", a.o.quiet, "No log lines on stderr");
  p->callback([] { run(a); });
}

CommandRegistrar registrar(60, add_serve_commands);

}  // namespace

}  // namespace todae::cli
