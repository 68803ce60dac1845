// dump_logits [--lora DIR[:scale]] MODEL OUT.f32 ID... : todae's logits for every position of the ids
// (one forward pass, f32 KV cache), written as raw little-endian f32 [T, V] — the layout
// ref_llama.py --out writes, so run_llama_interop.sh can compare todae with the PyTorch reference
// (and run_lora_interop.sh todae's LoRA, applied unmerged, with peft_apply.py's).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/base.h"
#include "infer/infer.h"

int main(int argc, char** argv) {
  std::string lora;
  if (argc > 2 && std::string(argv[1]) == "--lora") lora = argv[2], argc -= 2, argv += 2;
  if (argc < 4) {
    std::fprintf(stderr, "usage: dump_logits [--lora DIR[:scale]] MODEL OUT.f32 ID...\n");
    return 2;
  }
  try {
    todae::InferModel m = todae::load_model(argv[1]);
    const int adapter = lora.empty() ? 0 : todae::add_adapter(m, todae::parse_lora_arg(lora));
    std::vector<int32_t> ids;
    for (int i = 3; i < argc; i++) ids.push_back(int32_t(std::atoi(argv[i])));
    const int T = int(ids.size()), V = m.config.vocab_size;
    todae::KVCache cache = todae::make_kv_cache(m, T, 1, todae::WType::F32);
    todae::Forward fw;
    todae::Batch b;
    for (int t = 0; t < T; t++) b.add(ids[t], t, 0, true, adapter);
    std::vector<float> logits(size_t(T) * V);
    todae::forward_batch(m, cache, fw, b, logits.data());
    std::FILE* f = std::fopen(argv[2], "wb");
    if (!f || std::fwrite(logits.data(), sizeof(float), logits.size(), f) != logits.size()) {
      std::fprintf(stderr, "dump_logits: cannot write %s\n", argv[2]);
      return 1;
    }
    std::fclose(f);
  } catch (const todae::Error& e) {
    std::fprintf(stderr, "dump_logits: %s\n", e.what());
    return 1;
  }
  return 0;
}
