// Sampling: penalties, the grammar mask, then greedy or top-k → temperature → min-p → top-p and a
// draw from a seeded generator (same seed, same tokens), with the model's log-probabilities.
#include <algorithm>
#include <cmath>
#include <limits>

#include "infer/infer.h"

namespace todae {

Sampler::Sampler(const SamplingParams& params) : p(params), rng(params.seed) {
  if (p.top_logprobs < 0 || p.top_logprobs > 20) fail("top_logprobs must be between 0 and 20");
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) fail("temperature must be a number >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) fail("top_p must be in (0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) fail("min_p must be in [0, 1]");
  if (p.top_k < 0) fail("top_k must be >= 0");
  if (!(p.repetition_penalty > 0)) fail("repetition_penalty must be > 0");
}

void Sampler::add_prompt(const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    recent.push_back(id);
    if (int(recent.size()) > p.penalty_last_n) recent.erase(recent.begin());
  }
}

void Sampler::accept(int32_t id) {
  recent.push_back(id);
  if (int(recent.size()) > std::max(p.penalty_last_n, 0)) recent.erase(recent.begin());
  auto it = std::lower_bound(counts.begin(), counts.end(), std::make_pair(id, 0),
                             [](const auto& a, const auto& b) { return a.first < b.first; });
  if (it != counts.end() && it->first == id) it->second++;
  else counts.insert(it, {id, 1});
}

namespace {

// log-softmax of logits at `ids` plus the top-n alternatives.
void fill_logprobs(const float* logits, int V, int32_t id, int top_n, TokenLogprob* lp) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < V; i++) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < V; i++) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  lp->id = id;
  lp->logprob = float(logits[id] - lse);
  lp->top.clear();
  if (top_n > 0) {
    std::vector<int32_t> idx(V);
    for (int i = 0; i < V; i++) idx[i] = i;
    top_n = std::min(top_n, V);
    std::partial_sort(idx.begin(), idx.begin() + top_n, idx.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (int i = 0; i < top_n; i++) lp->top.push_back({idx[i], float(logits[idx[i]] - lse)});
  }
}

}  // namespace

int32_t Sampler::sample(float* logits, int V, TokenLogprob* lp) {
  // Log-probabilities are the model's own (before penalties and filters), as OpenAI reports them.
  std::vector<float> raw;
  if (lp) raw.assign(logits, logits + V);

  if (p.repetition_penalty != 1.0f)
    for (int32_t id : recent) {
      if (id < 0 || id >= V) continue;
      float& l = logits[id];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (const auto& [id, n] : counts)
      if (id >= 0 && id < V) logits[id] -= float(n) * p.frequency_penalty + p.presence_penalty;
  if (constrain) constrain(logits, V);

  int32_t chosen = -1;
  if (p.temperature <= 0) {
    chosen = int32_t(std::max_element(logits, logits + V) - logits);
  } else {
    // Candidates: the top_k (or all finite) logits at or above the min-p cut, sorted descending
    // (ties by id). min-p cuts relative to the best token.
    const float ninf = -std::numeric_limits<float>::infinity();
    float bests[8] = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};  // eight chains: no loop-carried wait
    int i = 0;
    for (; i + 8 <= V; i += 8)
      for (int j = 0; j < 8; j++) bests[j] = std::max(bests[j], logits[i + j]);
    for (; i < V; i++) bests[0] = std::max(bests[0], logits[i]);
    const float best = *std::max_element(bests, bests + 8);
    if (best == ninf) fail("sampling: every token is excluded (the grammar allows nothing here)");
    const float cut = p.min_p > 0 ? best + p.temperature * std::log(p.min_p) : ninf;
    auto desc = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    // The ids at or above the min-p cut, gathered without branches (whether a logit passes is a
    // coin flip for the branch predictor: that cost more than all the rest of the draw), then the
    // top_k best of them in (logit desc, id asc) order: a strict order, so the same set and order a
    // full sort would give.
    if (int(ids_.size()) < V) ids_.resize(size_t(V));
    int m = 0;
    for (int t = 0; t < V; t++) {
      ids_[size_t(m)] = t;
      m += int(logits[t] >= cut) & int(logits[t] != ninf);
    }
    std::vector<std::pair<float, int32_t>> cand(static_cast<size_t>(m));
    for (int t = 0; t < m; t++) cand[size_t(t)] = {logits[ids_[size_t(t)]], ids_[size_t(t)]};
    if (p.top_k > 0 && p.top_k < m) {
      std::nth_element(cand.begin(), cand.begin() + p.top_k, cand.end(), desc);
      cand.resize(size_t(p.top_k));
    }
    std::sort(cand.begin(), cand.end(), desc);
    const size_t k = cand.size();
    std::vector<double> prob(k);
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += prob[i] = std::exp(double(cand[i].first - cand[0].first) / p.temperature);
    size_t keep = k;
    if (p.top_p < 1.0f) {
      double acc = 0;
      for (size_t i = 0; i < k; i++) {
        acc += prob[i] / sum;
        if (acc >= p.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += prob[i];
    const double u = double(rng() >> 11) * 0x1.0p-53 * total;
    double acc = 0;
    chosen = cand[keep - 1].second;
    for (size_t i = 0; i < keep; i++) {
      acc += prob[i];
      if (u < acc) {
        chosen = cand[i].second;
        break;
      }
    }
  }
  if (lp) fill_logprobs(raw.data(), V, chosen, p.top_logprobs, lp);
  return chosen;
}

// ---- TextStream ---------------------------------------------------------------------------------

TextStream::TextStream(const Tokenizer& t, std::vector<std::string> stop_strings, bool skip_special_tokens)
    : tok(&t), stops(std::move(stop_strings)), skip_special(skip_special_tokens) {
  stops.erase(std::remove(stops.begin(), stops.end(), std::string()), stops.end());
}

namespace {

// Length of the longest prefix of s that does not end inside an incomplete UTF-8 sequence.
size_t complete_utf8_prefix(const std::string& s) {
  size_t n = s.size();
  // look back at most 3 bytes for the start of a multi-byte sequence
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    int need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return int(back) < need ? n - back : n;
  }
  return n;
}

}  // namespace

std::string TextStream::push(int32_t id) {
  if (stopped) return "";
  if (!(skip_special && tok->is_special(id))) pending += tok->token_bytes(id);
  // A complete stop string ends the text just before it.
  size_t cut = std::string::npos;
  for (const std::string& s : stops) {
    size_t at = pending.find(s);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    std::string out = pending.substr(0, cut);
    pending.clear();
    stopped = true;
    return out;
  }
  // Hold back a tail that could still grow into a stop string, and an incomplete character.
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t len = std::min(s.size() - 1, pending.size()); len > hold; len--)
      if (pending.compare(pending.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
  size_t emit = std::min(pending.size() - hold, complete_utf8_prefix(pending));
  std::string out = pending.substr(0, emit);
  pending.erase(0, emit);
  return out;
}

std::string TextStream::finish() {
  std::string out = stopped ? "" : pending;
  pending.clear();
  return out;
}

}  // namespace todae
