// Multiple-choice evaluation throughput (issue #13 §7): items/s of todae eval's local model with
// the choices sharing the context's prefill (LocalModelOptions.share_prefix) against one request
// per choice, on shape S of ../shared/perf/SHAPES.md (random init, std 0.02) and KoBEST-hellaswag-
// like items (a Korean context of ~150 tokens, 4 choices of ~20 tokens), cut from a Korean text.
// Driven by bench/eval_mc_bench.sh; prints one JSON line per round and mode, then a summary line.
//
//   eval_mc_bench --tokenizer DIR --text FILE [--items 16] [--rounds 5] [--threads 2]
//                 [--context 150] [--choice 20] [--choices 4] [--batch-questions 8] [--batch-tokens 1024] [--profile]
//                 [--only batched|shared|separate]   (one mode alone, for a profiler)
//
// Three modes: shared prefixes with several questions per forward pass (as run_task drives the
// local model: prefetch_loglikelihood, then loglikelihood), shared prefixes one question at a
// time, and one request per choice (share_prefix false). Rounds alternate the order of the modes
// (the machine drifts); the summary has the medians and the median of the per-round ratios. --profile adds the time of each part of one shared item
// (prefill of the context, the choices' batch, scoring), measured on the engine directly, and
// for reference the forward passes of one item read as an HF forward reads it (lm-eval's HFLM:
// logits at every position of each context + choice; not scored).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/base.h"
#include "eval/eval.h"
#include "formats/formats.h"
#include "infer/infer.h"
#include "model/model.h"
#include "tensor/tensor.h"
#include "text/text.h"

using namespace todae;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Item {
  std::string context;
  std::vector<std::string> choices;
};

// Whole words of the text, taken in order until the piece has about `tokens` tokens.
std::string take_words(const Tokenizer& tok, const std::vector<std::string>& words, size_t& at, int tokens) {
  std::string s;
  while (at < words.size()) {
    std::string next = s.empty() ? words[at] : s + " " + words[at];
    at++;
    s = next;
    if (int(encode(tok, s).size()) >= tokens) break;
  }
  return s;
}

std::vector<Item> make_items(const Tokenizer& tok, const std::string& text, int n, int ctx_tokens, int choice_tokens,
                             int n_choices) {
  std::vector<std::string> words;
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) i++;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) j++;
    if (j > i) words.push_back(text.substr(i, j - i));
    i = j;
  }
  if (words.size() < 1000) fail("--text: need a longer text (", words.size(), " words)");
  std::vector<Item> items;
  std::mt19937_64 rng(7);
  for (int k = 0; k < n; k++) {
    size_t at = size_t(rng() % (words.size() / 2));
    Item it;
    it.context = "문장: " + take_words(tok, words, at, ctx_tokens);
    for (int c = 0; c < n_choices; c++) it.choices.push_back(" " + take_words(tok, words, at, choice_tokens));
    items.push_back(std::move(it));
  }
  return items;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tok_dir, text_file;
  int items_n = 16, rounds = 5, threads = 2, ctx_tokens = 150, choice_tokens = 20, n_choices = 4;
  int batch_questions = 8, batch_tokens = 1024;
  std::string only;
  bool profile = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail(a, ": needs a value");
      return argv[++i];
    };
    if (a == "--tokenizer") tok_dir = next();
    else if (a == "--text") text_file = next();
    else if (a == "--items") items_n = std::atoi(next().c_str());
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--context") ctx_tokens = std::atoi(next().c_str());
    else if (a == "--choice") choice_tokens = std::atoi(next().c_str());
    else if (a == "--choices") n_choices = std::atoi(next().c_str());
    else if (a == "--batch-questions") batch_questions = std::atoi(next().c_str());
    else if (a == "--batch-tokens") batch_tokens = std::atoi(next().c_str());
    else if (a == "--profile") profile = true;
    else if (a == "--only") only = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    if (tok_dir.empty() || text_file.empty()) fail("usage: eval_mc_bench --tokenizer DIR --text FILE [...]");
    set_threads(threads);
    // Shape S, random init, written as a Hugging Face folder and loaded as `todae eval` would.
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.hidden_size = 288;
    c.intermediate_size = 768;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 6;
    c.head_dim = 48;
    c.vocab_size = 32000;
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000;
    c.validate();
    Tokenizer tok = load_tokenizer(tok_dir);
    if (tok.vocab_size() > c.vocab_size) fail(tok_dir, ": a tokenizer of at most 32000 ids, please");
    const std::string dir = cat("/tmp/eval_mc_bench_", ::getpid());
    {
      Model ref(c);
      init_weights(ref, 1234);
      std::vector<TensorRef> ts;
      for (const ParamInfo& p : ref.params) ts.push_back(f32_tensor(p.name, p.shape, ref.weights.data + p.offset));
      make_directories(dir);
      write_safetensors(dir + "/model.safetensors", ts);
      write_file_atomic(dir + "/config.json", c.to_json());
      save_tokenizer(tok, dir);
    }
    InferModel m = load_model(dir);
    std::system(cat("rm -rf '", dir, "'").c_str());
    const std::vector<Item> items = make_items(tok, read_file(text_file), items_n, ctx_tokens, choice_tokens, n_choices);
    double ctx_len = 0, ch_len = 0;
    for (const Item& it : items) {
      ctx_len += double(encode(tok, it.context).size());
      for (const std::string& ch : it.choices) ch_len += double(encode(tok, ch).size());
    }
    ctx_len /= double(items.size());
    ch_len /= double(items.size() * size_t(n_choices));

    eval::LocalModelOptions shared_o, sep_o;
    sep_o.share_prefix = false;
    shared_o.batch_questions = batch_questions;
    shared_o.batch_tokens = batch_tokens;
    auto shared = eval::make_local_model(m, shared_o), sep = eval::make_local_model(m, sep_o);
    // As run_task drives the model: with batch > 1, each group of questions is prefetched (read
    // together), then asked for one by one.
    auto run = [&](eval::EvalModel& em, int batch, double* checksum) {
      const auto t0 = Clock::now();
      double sum = 0;
      for (size_t k = 0; k < items.size(); k++) {
        if (batch > 1 && k % size_t(batch) == 0) {
          std::vector<eval::EvalModel::LoglikRequest> ahead;
          for (size_t j = k; j < std::min(items.size(), k + size_t(batch)); j++) ahead.push_back({items[j].context, items[j].choices});
          em.prefetch_loglikelihood(ahead);
        }
        for (const eval::LogLik& l : em.loglikelihood(items[k].context, items[k].choices)) sum += l.logprob;
      }
      *checksum = sum;
      return double(items.size()) / secs(t0, Clock::now());
    };
    const int batch = shared->batch_questions();
    if (!only.empty()) {  // one mode alone, for a profiler
      double cs;
      std::vector<double> v;
      for (int r = 0; r < rounds; r++)
        v.push_back(only == "separate" ? run(*sep, 1, &cs) : run(*shared, only == "batched" ? batch : 1, &cs));
      std::printf("{\"mode\": \"%s\", \"items_per_s\": %.3f}\n", only.c_str(), median(v));
      return 0;
    }
    double cs_a, cs_b, cs_c;
    run(*shared, batch, &cs_a), run(*shared, 1, &cs_c), run(*sep, 1, &cs_b);  // warm-up (allocations, caches)
    if (std::fabs(cs_a - cs_b) > 1e-4 * std::fabs(cs_b) || std::fabs(cs_c - cs_b) > 1e-4 * std::fabs(cs_b))
      fail("the modes disagree: ", cs_a, ", ", cs_c, " vs ", cs_b);
    std::vector<double> bt, sh, se, ratio, ratio1;
    for (int r = 0; r < rounds; r++) {
      double a, b, c1;
      if (r % 2 == 0) a = run(*shared, batch, &cs_a), c1 = run(*shared, 1, &cs_c), b = run(*sep, 1, &cs_b);
      else b = run(*sep, 1, &cs_b), c1 = run(*shared, 1, &cs_c), a = run(*shared, batch, &cs_a);
      bt.push_back(a), sh.push_back(c1), se.push_back(b), ratio.push_back(a / b), ratio1.push_back(c1 / b);
      std::printf("{\"round\": %d, \"shared_batched_items_per_s\": %.3f, \"shared_items_per_s\": %.3f, "
                  "\"separate_items_per_s\": %.3f, \"ratio\": %.3f, \"ratio_one_question\": %.3f}\n",
                  r, a, c1, b, a / b, c1 / b);
      std::fflush(stdout);
    }
    std::string prof;
    if (profile) {
      // One shared item by parts, on the engine directly: context prefill (its last row's logits),
      // the choices' continuation batch (all rows' logits), and the scoring's log-softmax rows.
      const int V = c.vocab_size;
      KVCache cache = make_kv_cache(m, 256, n_choices + 1, WType::F32);
      Forward fw;
      std::vector<float> logits(size_t(V) * size_t(n_choices * choice_tokens + 8));
      std::vector<double> tp, tc, ts, tl;
      for (const Item& it : items) {
        std::vector<int32_t> ctx = encode(tok, it.context);
        Batch b;
        auto t0 = Clock::now();
        cache.clear(0);
        for (size_t i = 0; i < ctx.size(); i++) b.add(ctx[i], int(i), 0, i + 1 == ctx.size());
        forward_batch(m, cache, fw, b, logits.data());
        auto t1 = Clock::now();
        b.clear();
        for (int j = 0; j < n_choices; j++) {
          cache.clear(j + 1);
          for (int l = 0; l < cache.layers; l++) {
            KVView x = cache.view(l, 0), y = cache.view(l, j + 1);
            std::memcpy(y.k, x.k, ctx.size() * cache.row_bytes);
            std::memcpy(y.v, x.v, ctx.size() * cache.row_bytes);
          }
          cache.length[size_t(j + 1)] = int(ctx.size());
          std::vector<int32_t> whole = encode(tok, it.context + it.choices[size_t(j)]);
          for (size_t i = ctx.size(); i + 1 < whole.size(); i++) b.add(whole[i], int(i), j + 1, true);
        }
        if (size_t(b.size()) * size_t(V) > logits.size()) logits.resize(size_t(b.size()) * size_t(V));
        forward_batch(m, cache, fw, b, logits.data());
        auto t2 = Clock::now();
        double z = 0;
        for (int r = 0; r < b.size() + 1; r++) {
          const float* row = logits.data() + size_t(r % std::max(1, b.size())) * size_t(V);
          float mx = row[0];
          for (int i = 1; i < V; i++) mx = std::max(mx, row[i]);
          double sum = 0;
          for (int i = 0; i < V; i++) sum += std::exp(double(row[i]) - mx);
          z += std::log(sum);
        }
        auto t3 = Clock::now();
        if (z == 12345) std::printf("!");
        // For reference, one request per choice as an HF forward reads it (lm-eval's HFLM): logits
        // at every position of context + choice, of which the choice's rows are scored.
        for (int j = 0; j < n_choices; j++) {
          std::vector<int32_t> whole = encode(tok, it.context + it.choices[size_t(j)]);
          whole.pop_back();
          b.clear();
          cache.clear(0);
          for (size_t i = 0; i < whole.size(); i++) b.add(whole[i], int(i), 0, true);
          if (whole.size() * size_t(V) > logits.size()) logits.resize(whole.size() * size_t(V));
          forward_batch(m, cache, fw, b, logits.data());
        }
        auto t4 = Clock::now();
        tp.push_back(secs(t0, t1)), tc.push_back(secs(t1, t2)), ts.push_back(secs(t2, t3)), tl.push_back(secs(t3, t4));
      }
      prof = cat(", \"profile_ms\": {\"prefill\": ", median(tp) * 1e3, ", \"choices_batch\": ", median(tc) * 1e3,
                 ", \"scoring\": ", median(ts) * 1e3, ", \"all_position_logits_per_item\": ", median(tl) * 1e3, "}");
    }
    std::printf(
        "{\"summary\": true, \"shape\": \"S\", \"threads\": %d, \"items\": %zu, \"context_tokens\": %.1f, "
        "\"choice_tokens\": %.1f, \"choices\": %d, \"batch_questions\": %d, \"shared_batched_items_per_s\": %.3f, "
        "\"shared_items_per_s\": %.3f, \"separate_items_per_s\": %.3f, \"ratio\": %.3f, \"ratio_one_question\": %.3f%s}\n",
        threads, items.size(), ctx_len, ch_len, n_choices, batch, median(bt), median(sh), median(se), median(ratio),
        median(ratio1), prof.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "eval_mc_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
