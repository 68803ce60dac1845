// Text generation for one sequence: the prompt in chunks, then one token at a time.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "infer/infer.h"
#include "infer/infer_impl.h"

namespace todae {

double peak_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kb = std::atof(line + 6);
  std::fclose(f);
  return kb / 1024.0;
}

GenerateStats generate(InferModel& m, KVCache& cache, int slot, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<bool(std::string_view)>& on_text,
                       const std::function<void(const TokenLogprob&)>& on_token) {
  using clock = std::chrono::steady_clock;
  if (!m.has_tokenizer) fail(m.path, ": the model has no tokenizer, so text cannot be generated");
  if (prompt.empty()) fail("the prompt is empty (a model needs at least one token to continue)");
  if (slot < 0 || slot >= cache.slots) fail("slot ", slot, " outside the cache");
  if (opt.adapter < 0 || opt.adapter > int(m.adapters.size()))
    fail("adapter ", opt.adapter, " is not loaded (the model has ", m.adapters.size(), ")");
  const int start = cache.length[slot];
  if (start + int(prompt.size()) >= cache.ctx)
    fail("the prompt (", prompt.size(), " tokens) does not fit the context (", cache.ctx - start,
         " positions left); use a larger --ctx or a shorter prompt");
  const int V = m.config.vocab_size;
  GenerateStats st;
  st.prompt_tokens = int(prompt.size());
  std::vector<float> logits(V);
  Forward fw;
  Batch b;

  const auto t0 = clock::now();
  const int chunk = std::max(1, opt.prompt_chunk);
  for (size_t i = 0; i < prompt.size(); i += chunk) {
    b.clear();
    const size_t end = std::min(prompt.size(), i + chunk);
    for (size_t j = i; j < end; j++) b.add(prompt[j], cache.length[slot] + int(j - i), slot, j + 1 == prompt.size(), opt.adapter);
    forward_batch(m, cache, fw, b, logits.data());
  }
  const auto t1 = clock::now();
  st.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

  Sampler sampler(opt.sampling);
  sampler.add_prompt(prompt);
  TextStream stream(m.tokenizer, opt.stop, opt.skip_special);
  TokenLogprob lp;
  st.finish_reason = "length";
  auto t_decode = t1;
  for (int n = 0; n < opt.max_tokens; n++) {
    const int32_t id = sampler.sample(logits.data(), V, opt.logprobs ? &lp : nullptr);
    lp.id = id;
    if (n == 0) {
      st.ttft_seconds = std::chrono::duration<double>(clock::now() - t0).count();
      t_decode = clock::now();
    }
    const bool is_stop = std::find(m.stop_ids.begin(), m.stop_ids.end(), id) != m.stop_ids.end();
    if (is_stop && !opt.ignore_eos) {
      st.finish_reason = "stop";
      break;
    }
    sampler.accept(id);
    st.decode_tokens++;
    if (on_token) on_token(lp);
    std::string text = stream.push(id);
    if (!text.empty() && on_text && !on_text(text)) {
      st.finish_reason = "stop";
      break;
    }
    if (stream.stopped) {
      st.finish_reason = "stop";
      break;
    }
    if (n + 1 == opt.max_tokens) break;
    if (cache.length[slot] >= cache.ctx) break;  // context full: "length"
    b.clear();
    b.add(id, cache.length[slot], slot, true, opt.adapter);
    forward_batch(m, cache, fw, b, logits.data());
  }
  std::string rest = stream.finish();
  if (!rest.empty() && on_text) on_text(rest);
  st.decode_seconds = std::chrono::duration<double>(clock::now() - t_decode).count();
  return st;
}

}  // namespace todae
