// EvalModel over an InferModel: lm-eval's request semantics (trailing context spaces move into
// the continuation, continuation tokens = encode(context + continuation) after the context's
// tokens, the prefix token for an empty context, left truncation, rolling windows) on todae's
// batched forward pass. The choices of one question share the context's KV cache: the context
// is read once into slot 0, its keys/values are copied into one slot per choice, and every
// choice's tokens go through the model in ONE forward_batch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"
#include "formats/formats.h"
#include "infer/infer.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;

std::vector<TokenWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token, int max_len) {
  if (max_len < 1) fail("rolling windows need a positive length");
  std::vector<TokenWindow> out;
  const size_t n = tokens.size(), L = size_t(max_len);
  if (n == 0) return out;
  const size_t first = std::min(L, n);
  TokenWindow w;
  w.input.push_back(prefix_token);
  w.input.insert(w.input.end(), tokens.begin(), tokens.begin() + long(first) - 1);
  w.targets.assign(tokens.begin(), tokens.begin() + long(first));
  out.push_back(std::move(w));
  size_t predicted = first;
  while (predicted < n) {
    const size_t len = std::min(n - predicted, L), end = predicted + len;
    TokenWindow x;
    x.input.assign(tokens.begin() + long(end - L - 1), tokens.begin() + long(end - 1));
    x.targets.assign(tokens.begin() + long(end - len), tokens.begin() + long(end));
    out.push_back(std::move(x));
    predicted += len;
  }
  return out;
}

namespace {

// xxh64 of the files a model is made of (weights, config, tokenizer), by name and content.
std::string hash_model_files(const std::string& path) {
  std::vector<std::string> files;
  namespace fs = std::filesystem;
  if (is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path)) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      auto ends = [&](const char* s) { return name.size() >= std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0; };
      if (ends(".safetensors") || ends(".gguf") || name == "config.json" || name == "model.safetensors.index.json")
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::string all;
  for (const std::string& f : files) {
    MappedFile mf(f);
    all += fs::path(f).filename().string() + ":" + xxh64_hex(xxh64(mf.data, mf.size)) + "\n";
  }
  return xxh64_hex(xxh64(all.data(), all.size()));
}

struct LocalModel final : EvalModel {
  InferModel& m;
  LocalModelOptions o;
  KVCache cache;
  Forward fw;
  int C = 0, V = 0;
  int32_t prefix = 0;
  std::vector<float> logits;
  std::string model_hash;

  LocalModel(InferModel& model, const LocalModelOptions& opt) : m(model), o(opt) {
    if (!m.has_tokenizer) fail(m.path, ": has no tokenizer (tokenizer.json), so it cannot read a task's text");
    C = o.ctx > 0 ? std::min(o.ctx, m.rope_positions) : std::min(m.rope_positions, 4096);
    V = m.config.vocab_size;
    // lm-eval's prefix token: the BOS token, else end-of-text.
    int32_t bos = m.bos_token.empty() ? -1 : m.tokenizer.token_id(m.bos_token);
    if (bos < 0) bos = m.config.bos_token_id;
    int32_t eos = m.eos_token.empty() ? -1 : m.tokenizer.token_id(m.eos_token);
    if (eos < 0) eos = m.config.eos_token_id;
    prefix = bos >= 0 ? bos : eos >= 0 ? eos : 0;
    ensure(1, 256);
  }

  std::vector<int32_t> enc(const std::string& s) { return encode(m.tokenizer, s); }

  // The cache grows to what the requests need (slots × positions, rounded up), never beyond C:
  // short multiple-choice questions do not pay for the model's whole context in every slot. f32
  // keys/values, so scores do not depend on the cache's rounding.
  void ensure(int slots, int positions) {
    positions = std::min(C, (std::max(positions, 1) + 255) / 256 * 256);
    if (cache.slots >= slots && cache.ctx >= positions) return;
    cache = make_kv_cache(m, std::max(positions, cache.ctx), std::max(slots, cache.slots), WType::F32);
  }

  void copy_slot(int from, int to, int n) {
    for (int l = 0; l < cache.layers; l++) {
      KVView a = cache.view(l, from), b = cache.view(l, to);
      std::memcpy(b.k, a.k, size_t(n) * cache.row_bytes);
      std::memcpy(b.v, a.v, size_t(n) * cache.row_bytes);
    }
    cache.length[size_t(to)] = n;
  }

  // Log-probability of `target` under one row of logits, and whether it is the argmax.
  static std::pair<double, bool> score(const float* row, int V, int32_t target) {
    float mx = row[0];
    int best = 0;
    for (int i = 1; i < V; i++)
      if (row[i] > mx) mx = row[i], best = i;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp(double(row[i]) - mx);
    return {double(row[target]) - mx - std::log(sum), row[best] == row[target]};
  }

  // Reads tokens into `slot` from position 0, keeping the logits of the last `want` tokens
  // (rows appended to `out`).
  void prefill(int slot, const std::vector<int32_t>& toks, size_t want, std::vector<float>& out) {
    ensure(slot + 1, int(toks.size()));
    cache.clear(slot);
    const size_t n = toks.size();
    Batch b;
    const size_t chunk = size_t(std::max(1, o.prompt_chunk));
    for (size_t i = 0; i < n; i += chunk) {
      b.clear();
      size_t rows = 0;
      for (size_t j = i; j < std::min(n, i + chunk); j++) {
        const bool w = j + want >= n;
        b.add(toks[j], int(j), slot, w, o.adapter);
        rows += w;
      }
      const size_t at = out.size();
      out.resize(at + rows * size_t(V));
      forward_batch(m, cache, fw, b, out.data() + at);
    }
  }

  std::vector<LogLik> loglikelihood(const std::string& context_in, const std::vector<std::string>& conts_in) override {
    // Trailing whitespace of the context belongs to the continuation (lm-eval's _encode_pair).
    std::u32string cu = to_u32(context_in);
    size_t keep = cu.size();
    while (keep > 0 && is_py_space(cu[keep - 1])) keep--;
    const std::string context = to_utf8(std::u32string_view(cu).substr(0, keep));
    const std::string spaces = to_utf8(std::u32string_view(cu).substr(keep));
    std::vector<int32_t> ctx;
    std::vector<std::vector<int32_t>> conts;
    if (context.empty()) {
      ctx = {prefix};
      for (const std::string& c : conts_in) conts.push_back(enc(spaces + c));
    } else {
      ctx = enc(context);
      for (const std::string& c : conts_in) {
        std::vector<int32_t> whole = enc(context + spaces + c);
        conts.emplace_back(whole.begin() + long(std::min(whole.size(), ctx.size())), whole.end());
      }
      if (o.add_bos) ctx.insert(ctx.begin(), prefix);
    }
    size_t max_cont = 0;
    for (const auto& c : conts) max_cont = std::max(max_cont, c.size());
    if (max_cont > size_t(C)) fail("a continuation of ", max_cont, " tokens does not fit the context of ", C);
    // Left truncation: the model reads (ctx + cont)[:-1], at most C tokens.
    if (ctx.size() + max_cont - 1 > size_t(C) && max_cont > 0)
      ctx.erase(ctx.begin(), ctx.begin() + long(ctx.size() + max_cont - 1 - size_t(C)));
    if (ctx.empty()) ctx = {prefix};

    std::vector<LogLik> out(conts.size());
    for (LogLik& r : out) r.greedy = true;  // an empty continuation: nothing to get wrong
    if (!o.share_prefix) {
      for (size_t j = 0; j < conts.size(); j++) {
        if (conts[j].empty()) continue;
        std::vector<int32_t> in = ctx;
        in.insert(in.end(), conts[j].begin(), conts[j].end() - 1);
        logits.clear();
        prefill(0, in, conts[j].size(), logits);
        LogLik& r = out[j];
        r.greedy = true;
        r.tokens = int(conts[j].size());
        for (size_t i = 0; i < conts[j].size(); i++) {
          auto [lp, g] = score(logits.data() + i * size_t(V), V, conts[j][i]);
          r.logprob += lp;
          r.greedy &= g;
        }
      }
      return out;
    }
    // One prefill of the context; its last row predicts every choice's first token.
    ensure(int(conts.size()) + 1, int(ctx.size() + max_cont));
    logits.clear();
    prefill(0, ctx, 1, logits);
    std::vector<float> first(logits.begin(), logits.begin() + V);
    Batch b;
    for (size_t j = 0; j < conts.size(); j++) {
      copy_slot(0, int(j) + 1, int(ctx.size()));
      for (size_t i = 0; i + 1 < conts[j].size(); i++) b.add(conts[j][i], int(ctx.size() + i), int(j) + 1, true, o.adapter);
    }
    logits.assign(size_t(b.size()) * size_t(V), 0.f);
    if (b.size() > 0) forward_batch(m, cache, fw, b, logits.data());
    size_t row = 0;
    for (size_t j = 0; j < conts.size(); j++) {
      LogLik& r = out[j];
      r.greedy = true;
      r.tokens = int(conts[j].size());
      for (size_t i = 0; i < conts[j].size(); i++) {
        const float* lr = i == 0 ? first.data() : logits.data() + (row++) * size_t(V);
        auto [lp, g] = score(lr, V, conts[j][i]);
        r.logprob += lp;
        r.greedy &= g;
      }
    }
    return out;
  }

  LogLik loglikelihood_rolling(const std::string& text) override {
    LogLik r;
    r.greedy = true;
    for (const TokenWindow& w : rolling_windows(enc(text), prefix, C)) {
      logits.clear();
      prefill(0, w.input, w.targets.size(), logits);
      for (size_t i = 0; i < w.targets.size(); i++) {
        auto [lp, g] = score(logits.data() + i * size_t(V), V, w.targets[i]);
        r.logprob += lp;
        r.greedy &= g;
      }
      r.tokens += int(w.targets.size());
    }
    return r;
  }

  std::string generate_until(const std::string& context, const std::vector<std::string>& until, int max_tokens) override {
    std::vector<int32_t> ids = context.empty() ? std::vector<int32_t>{prefix} : enc(context);
    if (o.add_bos && !context.empty()) ids.insert(ids.begin(), prefix);
    max_tokens = std::max(1, std::min(max_tokens, C - 1));
    if (ids.size() + size_t(max_tokens) > size_t(C)) ids.erase(ids.begin(), ids.begin() + long(ids.size() + size_t(max_tokens) - size_t(C)));
    GenerateOptions go;
    go.max_tokens = max_tokens;
    go.stop = until;
    go.sampling.temperature = 0;
    go.adapter = o.adapter;
    go.prompt_chunk = o.prompt_chunk;
    ensure(1, int(ids.size()) + max_tokens + 1);
    cache.clear(0);
    std::string text;
    generate(m, cache, 0, ids, go, [&](std::string_view piece) {
      text += piece;
      return true;
    });
    for (const std::string& s : until)  // lm-eval also cuts at the first stop string afterwards
      if (!s.empty()) {
        auto p = text.find(s);
        if (p != std::string::npos) text.resize(p);
      }
    return text;
  }

  ojson describe() override {
    if (model_hash.empty()) model_hash = hash_model_files(m.path);
    ojson d = {{"path", m.path},
               {"format", m.format},
               {"architecture", m.config.architecture},
               {"weight_type", wtype_name(m.weight_type)},
               {"model_xxh64", model_hash},
               {"tokenizer_xxh64", xxh64_hex(xxh64(m.tokenizer_json.data(), m.tokenizer_json.size()))},
               {"context", C},
               {"add_bos", o.add_bos}};
    if (o.adapter > 0 && size_t(o.adapter) <= m.adapter_names.size()) d["adapter"] = m.adapter_names[size_t(o.adapter - 1)];
    return d;
  }
};

}  // namespace

std::unique_ptr<EvalModel> make_local_model(InferModel& m, const LocalModelOptions& o) {
  return std::make_unique<LocalModel>(m, o);
}

}  // namespace todae::eval
