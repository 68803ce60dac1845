// lora_tool: LoRA adapters for the interop tests (run_lora_interop.sh), written by todae's own writers.
//
//   lora_tool random MODEL OUT [--rank R] [--alpha A] [--rslora] [--targets SPEC] [--std S] [--seed N]
//       an adapter for MODEL's shapes with A as PEFT initialises it and B ~ Normal(0, S) (B = 0, as
//       training starts, would not change the output and so test nothing): OUT/peft (PEFT folder)
//       and OUT/lora.gguf (GGUF LoRA)
//   lora_tool gguf MODEL ADAPTER OUT.gguf
//       any adapter todae reads (e.g. a PEFT folder written by PyTorch) as a GGUF LoRA file
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "base/base.h"
#include "infer/infer.h"
#include "model/lora.h"

using namespace todae;

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "gguf" && argc == 5) {
      const ModelConfig c = load_model(argv[2]).config;
      save_gguf_lora(load_lora(argv[3], c), c, argv[4]);
      return 0;
    }
    if (cmd != "random" || argc < 4) {
      std::fprintf(stderr,
                   "usage: lora_tool random MODEL OUT [--rank R] [--alpha A] [--rslora] [--targets SPEC] [--std S] [--seed N]\n"
                   "       lora_tool gguf MODEL ADAPTER OUT.gguf\n");
      return 2;
    }
    InferModel m = load_model(argv[2]);
    const std::string out = argv[3];
    LoraConfig cfg;
    cfg.rank = 8, cfg.alpha = 16;
    float stdev = 0.05f;
    uint64_t seed = 1;
    for (int i = 4; i < argc; i++) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) fail(a, ": needs a value");
        return argv[++i];
      };
      if (a == "--rank") cfg.rank = std::atoi(value().c_str());
      else if (a == "--alpha") cfg.alpha = std::strtof(value().c_str(), nullptr);
      else if (a == "--rslora") cfg.rslora = true;
      else if (a == "--targets") cfg.targets = parse_lora_targets(value());
      else if (a == "--std") stdev = std::strtof(value().c_str(), nullptr);
      else if (a == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
      else fail(a, ": unknown option");
    }
    Lora lora = make_lora(m.config, cfg);
    init_lora(lora, seed);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, stdev);
    for (const ParamInfo& p : lora.params)
      if (p.name.find("lora_B") != std::string::npos)
        for (size_t j = 0; j < p.numel; j++) lora.weights.data[p.offset + j] = nd(rng);
    lora.base_model = m.path;
    save_peft_adapter(lora, out + "/peft");
    save_gguf_lora(lora, m.config, out + "/lora.gguf");
  } catch (const Error& e) {
    std::fprintf(stderr, "lora_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
