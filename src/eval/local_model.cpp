// EvalModel over an InferModel: lm-eval's request semantics (trailing context spaces move into
// the continuation, continuation tokens = encode(context + continuation) after the context's
// tokens, the prefix token for an empty context, left truncation per choice, rolling windows) on
// todae's batched forward pass. The choices of one question share the context's KV cache: the
// context is read once into its first choice's slot, its keys/values are copied into the other
// choices' slots, and the choices' tokens go through the model together; questions prefetched by
// run_task (prefetch_loglikelihood) are read several at a time, their contexts in one forward
// pass and all their choices in another, so the matrix products have enough rows to be efficient.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "tensor/parallel.h"
#include "text/jinja.h"
#include "text/text.h"

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
  std::optional<JinjaTemplate> chat_tmpl;

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

  // Log-probability of `target` under one row of logits, and whether it is the argmax. The row's
  // max and log-sum-exp run on 4-float vectors (GCC vector extensions: SSE2 on every x86-64, no
  // ISA dispatch needed), four at a time; the 16 lanes are summed in double at the end.
  using f4 = float __attribute__((vector_size(16)));
  using i4 = int32_t __attribute__((vector_size(16)));

  // exp(x) for x <= 0 (a logit minus its row's max), about 2e-7 relative (Cephes' expf:
  // 2^n · p(r), r = x - n·ln 2), flushed to 2^-126 scale below -87.
  static f4 exp_neg(f4 x) {
    const f4 lo = {-87.0f, -87.0f, -87.0f, -87.0f};
    x = x < lo ? lo : x;
    const i4 n = __builtin_convertvector(x * 1.44269504f - 0.5f, i4);  // nearest, for x <= 0
    const f4 fn = __builtin_convertvector(n, f4);
    const f4 r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
    f4 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const i4 e = (n + 127) << 23;
    return p * std::bit_cast<f4>(e);
  }

  static std::pair<double, bool> score(const float* row, int V, int32_t target) {
    const int V16 = V / 16 * 16;
    float mx = V16 < V ? row[V16] : row[0];
    for (int i = V16; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    if (V16 > 0) {
      f4 m[4];
      std::memcpy(m, row, sizeof(m));
      for (int i = 16; i < V16; i += 16)
        for (int k = 0; k < 4; k++) {
          f4 v;
          std::memcpy(&v, row + i + 4 * k, sizeof(v));
          m[k] = v > m[k] ? v : m[k];
        }
      for (int k = 0; k < 4; k++)
        for (int l = 0; l < 4; l++) mx = m[k][l] > mx ? m[k][l] : mx;
    }
    const f4 mv = {mx, mx, mx, mx};
    f4 acc[4] = {};
    for (int i = 0; i < V16; i += 16)
      for (int k = 0; k < 4; k++) {
        f4 v;
        std::memcpy(&v, row + i + 4 * k, sizeof(v));
        acc[k] += exp_neg(v - mv);
      }
    double sum = 0;
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 4; l++) sum += acc[k][l];
    for (int i = V16; i < V; i++) sum += std::exp(double(row[i]) - mx);
    return {double(row[target]) - mx - std::log(sum), row[target] == mx};
  }

  // Scores rows of logits (in parallel over the kernels' pool): lp[r], greedy[r] for targets[r].
  void score_rows(const float* rows, const std::vector<int32_t>& targets, std::vector<double>& lp, std::vector<uint8_t>& greedy) {
    lp.assign(targets.size(), 0);
    greedy.assign(targets.size(), 0);
    parallel_for_each(int(targets.size()), [&](int r) {
      auto [l, g] = score(rows + size_t(r) * size_t(V), V, targets[size_t(r)]);
      lp[size_t(r)] = l;
      greedy[size_t(r)] = g;
    });
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

  // One question's requests as tokens (lm-eval's _encode_pair), and its answers.
  struct Question {
    std::vector<int32_t> ctx;
    std::vector<std::vector<int32_t>> conts;
    size_t max_cont = 0;
    bool cut = false;  // the context must be cut for some choice: read choice by choice
    std::vector<LogLik> out;
  };

  Question prepare(const std::string& context_in, const std::vector<std::string>& conts_in) {
    Question q;
    // Trailing whitespace of the context belongs to the continuation (lm-eval's _encode_pair).
    std::u32string cu = to_u32(context_in);
    size_t keep = cu.size();
    while (keep > 0 && is_py_space(cu[keep - 1])) keep--;
    const std::string context = to_utf8(std::u32string_view(cu).substr(0, keep));
    const std::string spaces = to_utf8(std::u32string_view(cu).substr(keep));
    if (context.empty()) {
      q.ctx = {prefix};
      for (const std::string& c : conts_in) q.conts.push_back(enc(spaces + c));
    } else {
      q.ctx = enc(context);
      for (const std::string& c : conts_in) {
        std::vector<int32_t> whole = enc(context + spaces + c);
        q.conts.emplace_back(whole.begin() + long(std::min(whole.size(), q.ctx.size())), whole.end());
      }
      if (o.add_bos) q.ctx.insert(q.ctx.begin(), prefix);
    }
    for (const auto& c : q.conts) q.max_cont = std::max(q.max_cont, c.size());
    if (q.max_cont > size_t(C)) fail("a continuation of ", q.max_cont, " tokens does not fit the context of ", C);
    for (size_t j = 0; j < q.conts.size(); j++) q.cut |= cut(q, j) > 0;
    q.out.assign(q.conts.size(), LogLik{});
    for (size_t j = 0; j < q.conts.size(); j++) q.out[j].greedy = true, q.out[j].tokens = int(q.conts[j].size());
    return q;
  }

  // Left truncation as lm-eval does it, each choice on its own: the model reads
  // (ctx + cont)[-(C + 1):][:-1]. A context cut by different amounts for different choices
  // cannot be shared, so such a question is read choice by choice (only long contexts are cut).
  size_t cut(const Question& q, size_t j) const {
    const size_t n = q.ctx.size() + q.conts[j].size();
    return n > size_t(C) + 1 ? n - size_t(C) - 1 : 0;  // < ctx.size(): a continuation fits in C
  }

  // Every choice read alone: context (cut as lm-eval cuts it) + choice.
  void run_separate(Question& q) {
    std::vector<double> lp;
    std::vector<uint8_t> g;
    for (size_t j = 0; j < q.conts.size(); j++) {
      const std::vector<int32_t>& c = q.conts[j];
      if (c.empty()) continue;
      std::vector<int32_t> in(q.ctx.begin() + long(cut(q, j)), q.ctx.end());
      in.insert(in.end(), c.begin(), c.end() - 1);
      logits.clear();
      prefill(0, in, c.size(), logits);
      score_rows(logits.data(), c, lp, g);
      for (size_t i = 0; i < c.size(); i++) q.out[j].logprob += lp[i], q.out[j].greedy &= g[i] != 0;
    }
  }

  // Questions whose choices share their context: each context is read once, into the slot of its
  // first choice, and copied into its other choices' slots; the last context row predicts every
  // choice's first token, and the choices' remaining tokens go through in as few forward passes
  // as the budgets allow, those of several questions together (bigger matrix products).
  void run_shared(std::vector<Question*> qs) {
    const size_t budget = size_t(std::max(1, o.batch_tokens));  // tokens per forward pass
    const size_t rows_max = std::max<size_t>(1, std::min<size_t>(budget, (size_t(32) << 20) / size_t(V)));
    std::vector<int> base(qs.size());
    int slots = 0, positions = 1;
    for (size_t k = 0; k < qs.size(); k++) {
      base[k] = slots;
      slots += std::max<int>(1, int(qs[k]->conts.size()));
      positions = std::max(positions, int(qs[k]->ctx.size() + qs[k]->max_cont));
    }
    ensure(slots, positions);
    // The contexts, split into passes of at most `budget` tokens (a context may span two: its
    // slot simply continues), keeping each context's last row.
    std::vector<float> first(qs.size() * size_t(V));
    Batch b;
    std::vector<size_t> want_of;  // question of each wanted row in the pass
    auto flush_ctx = [&] {
      if (b.size() == 0) return;
      logits.resize(want_of.size() * size_t(V));
      forward_batch(m, cache, fw, b, logits.data());
      for (size_t r = 0; r < want_of.size(); r++)
        std::memcpy(first.data() + want_of[r] * size_t(V), logits.data() + r * size_t(V), size_t(V) * sizeof(float));
      b.clear();
      want_of.clear();
    };
    for (size_t k = 0; k < qs.size(); k++) {
      const std::vector<int32_t>& ctx = qs[k]->ctx;
      cache.clear(base[k]);
      for (size_t i = 0; i < ctx.size(); i++) {
        const bool last = i + 1 == ctx.size();
        b.add(ctx[i], int(i), base[k], last, o.adapter);
        if (last) want_of.push_back(k);
        if (size_t(b.size()) >= budget) flush_ctx();
      }
    }
    flush_ctx();
    // First tokens from the context's last row.
    std::vector<const float*> rows;
    std::vector<int32_t> targets;
    std::vector<LogLik*> into;
    for (size_t k = 0; k < qs.size(); k++)
      for (size_t j = 0; j < qs[k]->conts.size(); j++) {
        if (j > 0) copy_slot(base[k], base[k] + int(j), int(qs[k]->ctx.size()));
        if (qs[k]->conts[j].empty()) continue;
        rows.push_back(first.data() + k * size_t(V));
        targets.push_back(qs[k]->conts[j][0]);
        into.push_back(&qs[k]->out[j]);
      }
    std::vector<double> lp;
    std::vector<uint8_t> g;
    lp.assign(targets.size(), 0);
    g.assign(targets.size(), 0);
    parallel_for_each(int(targets.size()), [&](int r) {
      auto [l, ok] = score(rows[size_t(r)], V, targets[size_t(r)]);
      lp[size_t(r)] = l;
      g[size_t(r)] = ok;
    });
    for (size_t r = 0; r < targets.size(); r++) into[r]->logprob += lp[r], into[r]->greedy &= g[r] != 0;
    // The choices' other tokens, every row's logits wanted, in passes of at most rows_max.
    targets.clear();
    into.clear();
    auto flush_conts = [&] {
      if (b.size() == 0) return;
      logits.resize(size_t(b.size()) * size_t(V));
      forward_batch(m, cache, fw, b, logits.data());
      score_rows(logits.data(), targets, lp, g);
      for (size_t r = 0; r < targets.size(); r++) into[r]->logprob += lp[r], into[r]->greedy &= g[r] != 0;
      b.clear();
      targets.clear();
      into.clear();
    };
    for (size_t k = 0; k < qs.size(); k++)
      for (size_t j = 0; j < qs[k]->conts.size(); j++) {
        const std::vector<int32_t>& c = qs[k]->conts[j];
        for (size_t i = 0; i + 1 < c.size(); i++) {
          b.add(c[i], int(qs[k]->ctx.size() + i), base[k] + int(j), true, o.adapter);
          targets.push_back(c[i + 1]);
          into.push_back(&qs[k]->out[j]);
          if (size_t(b.size()) >= rows_max) flush_conts();
        }
      }
    flush_conts();
  }

  // Groups of questions for run_shared within the budgets: context tokens per group, and the KV
  // cache's size (slots × positions of f32 keys and values, at most kv_budget bytes).
  void run_questions(std::vector<Question>& qs) {
    std::vector<Question*> group;
    size_t tokens = 0;
    int slots = 0;
    size_t positions = 0;
    const size_t per_position = size_t(cache.layers) * 2 * size_t(cache.kv_dim) * sizeof(float);
    const size_t kv_budget = size_t(256) << 20;
    auto round = [&](size_t p) { return std::min<size_t>(size_t(C), (p + 255) / 256 * 256); };
    for (Question& q : qs) {
      if (!o.share_prefix || q.cut) {
        run_separate(q);
        continue;
      }
      const int s = std::max<int>(1, int(q.conts.size()));
      const size_t p = std::max(positions, q.ctx.size() + q.max_cont);
      if (!group.empty() && (tokens + q.ctx.size() > size_t(std::max(1, o.batch_tokens)) ||
                             size_t(slots + s) * round(p) * per_position > kv_budget)) {
        run_shared(group);
        group.clear(), tokens = 0, slots = 0, positions = 0;
      }
      group.push_back(&q);
      tokens += q.ctx.size(), slots += s, positions = std::max(positions, q.ctx.size() + q.max_cont);
    }
    if (!group.empty()) run_shared(group);
  }

  // Answers computed ahead by prefetch_loglikelihood, taken (once) by loglikelihood().
  std::map<std::pair<std::string, std::vector<std::string>>, std::vector<LogLik>> ready;

  int batch_questions() const override { return o.share_prefix ? std::max(1, o.batch_questions) : 1; }

  void prefetch_loglikelihood(const std::vector<LoglikRequest>& reqs) override {
    ready.clear();
    std::vector<Question> qs;
    for (const LoglikRequest& r : reqs) qs.push_back(prepare(r.context, r.continuations));
    run_questions(qs);
    for (size_t k = 0; k < reqs.size(); k++) ready[{reqs[k].context, reqs[k].continuations}] = std::move(qs[k].out);
  }

  std::vector<LogLik> loglikelihood(const std::string& context, const std::vector<std::string>& conts) override {
    if (auto it = ready.find({context, conts}); it != ready.end()) {
      std::vector<LogLik> out = std::move(it->second);
      ready.erase(it);
      return out;
    }
    std::vector<Question> qs;
    qs.push_back(prepare(context, conts));
    run_questions(qs);
    return std::move(qs[0].out);
  }

  LogLik loglikelihood_rolling(const std::string& text) override {
    LogLik r;
    r.greedy = true;
    std::vector<double> lp;
    std::vector<uint8_t> g;
    for (const TokenWindow& w : rolling_windows(enc(text), prefix, C)) {
      logits.clear();
      prefill(0, w.input, w.targets.size(), logits);
      score_rows(logits.data(), w.targets, lp, g);
      for (size_t i = 0; i < w.targets.size(); i++) r.logprob += lp[i], r.greedy &= g[i] != 0;
      r.tokens += int(w.targets.size());
    }
    return r;
  }

  // Greedy decoding of at most max_tokens (at least 1, within the context) after ids, whose
  // oldest tokens are dropped when prompt + answer would not fit (lm-eval keeps the end).
  GenerateOptions greedy_options(std::vector<int32_t>& ids, const std::vector<std::string>& until, int& max_tokens) const {
    max_tokens = std::max(1, std::min(max_tokens, C - 1));
    if (ids.size() + size_t(max_tokens) > size_t(C)) ids.erase(ids.begin(), ids.begin() + long(ids.size() + size_t(max_tokens) - size_t(C)));
    GenerateOptions go;
    go.max_tokens = max_tokens;
    go.stop = until;
    go.sampling.temperature = 0;
    go.adapter = o.adapter;
    go.prompt_chunk = o.prompt_chunk;
    return go;
  }

  std::string generate_until(const std::string& context, const std::vector<std::string>& until, int max_tokens) override {
    std::vector<int32_t> ids = context.empty() ? std::vector<int32_t>{prefix} : enc(context);
    if (o.add_bos && !context.empty()) ids.insert(ids.begin(), prefix);
    GenerateOptions go = greedy_options(ids, until, max_tokens);
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

  // The chat rendered by the model's own template (todae's default when it has none), as todae
  // serve renders it; greedy, special tokens kept so the tool-call markers reach the parser.
  ChatReply chat(const ojson& messages, const ojson& tools, const std::vector<std::string>& until, int max_tokens) override {
    if (!chat_tmpl) chat_tmpl = JinjaTemplate::parse(m.chat_template.empty() ? default_chat_template() : m.chat_template);
    ChatReply r;
    const ojson extra = {{"bos_token", m.bos_token}, {"eos_token", m.eos_token}};
    r.prompt = apply_chat_template(*chat_tmpl, messages, tools.empty() ? ojson(nullptr) : tools, true, extra);
    std::vector<int32_t> ids = encode(m.tokenizer, r.prompt);  // special tokens of the template recognised
    if (ids.empty()) ids = {prefix};
    GenerateOptions go = greedy_options(ids, until, max_tokens);
    go.skip_special = false;
    ensure(1, int(ids.size()) + max_tokens + 1);
    cache.clear(0);
    generate(m, cache, 0, ids, go, [&](std::string_view piece) {
      r.text += piece;
      return true;
    });
    for (const std::string& s : until)
      if (!s.empty()) {
        auto p = r.text.find(s);
        if (p != std::string::npos) r.text.resize(p);
      }
    ToolCallParser parser;
    r.content = parser.push(r.text, r.calls);
    r.content += parser.finish(r.calls);
    return r;
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
