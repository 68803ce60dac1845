// Generation metrics as the references compute them: chrF/chrF++ and BLEU follow sacrebleu 2.x
// line by line in what reaches the score (statistics, smoothing, the multi-reference rules);
// exact match follows HF evaluate; regex extraction follows lm-eval's RegexFilter (Python's
// re.findall semantics). Text is handled as Unicode code points, as Python str is.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>

#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"

namespace todae::eval {

// ---- code points ------------------------------------------------------------------------------

std::u32string to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) {  // an invalid byte stands for itself (Python's surrogateescape)
      out.push_back(char32_t(0xDC00 + uint8_t(s[i])));
      i++;
    } else {
      out.push_back(char32_t(cp));
      i += size_t(n);
    }
  }
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c >= 0xDC80 && c <= 0xDCFF) {
      out.push_back(char(c - 0xDC00));
      continue;
    }
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(c), buf);
    out.append(reinterpret_cast<const char*>(buf), size_t(n));
  }
  return out;
}

// The characters Python's str.split() and str.strip() treat as whitespace.
bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::u32string> py_split(std::u32string_view s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_py_space(s[i])) i++;
    size_t j = i;
    while (j < s.size() && !is_py_space(s[j])) j++;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string py_strip(std::string_view s) {
  std::u32string u = to_u32(s);
  size_t b = 0, e = u.size();
  while (b < e && is_py_space(u[b])) b++;
  while (e > b && is_py_space(u[e - 1])) e--;
  return to_utf8(std::u32string_view(u).substr(b, e - b));
}

std::u32string py_lower(std::u32string s) {
  for (char32_t& c : s) c = char32_t(utf8proc_tolower(utf8proc_int32_t(c)));
  return s;
}

namespace {

// string.punctuation
bool is_ascii_punct(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

using Counts = std::unordered_map<std::u32string, int64_t>;

std::vector<std::u32string> chrf_words_u32(std::u32string_view s) {
  std::vector<std::u32string> out;
  for (std::u32string& w : py_split(s)) {
    if (w.size() == 1) {
      out.push_back(w);
    } else if (is_ascii_punct(w.back())) {  // '(hi)' becomes '(hi' and ')' (sacrebleu issue #124)
      out.push_back(w.substr(0, w.size() - 1));
      out.push_back(w.substr(w.size() - 1));
    } else if (is_ascii_punct(w[0])) {
      out.push_back(w.substr(0, 1));
      out.push_back(w.substr(1));
    } else {
      out.push_back(w);
    }
  }
  return out;
}

// Character n-grams of orders 1..char_order, then word n-grams of orders 1..word_order.
std::vector<Counts> chrf_ngrams(std::u32string_view text, const ChrfOptions& o) {
  std::vector<Counts> out;
  std::u32string line;
  line.reserve(text.size());
  for (char32_t c : text)
    if (o.whitespace || !is_py_space(c)) line.push_back(c);
  for (int n = 1; n <= o.char_order; n++) {
    Counts c;
    for (size_t i = 0; i + size_t(n) <= line.size(); i++) c[line.substr(i, size_t(n))]++;
    out.push_back(std::move(c));
  }
  if (o.word_order > 0) {
    std::vector<std::u32string> words = chrf_words_u32(text);
    for (int n = 1; n <= o.word_order; n++) {
      Counts c;
      for (size_t i = 0; i + size_t(n) <= words.size(); i++) {
        std::u32string key = words[i];
        for (size_t k = 1; k < size_t(n); k++) key += U' ' + words[i + k];
        c[key]++;
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> chrf_words(std::string_view s) {
  std::vector<std::string> out;
  for (const std::u32string& w : chrf_words_u32(to_u32(s))) out.push_back(to_utf8(w));
  return out;
}

double chrf_from_stats(const std::vector<int64_t>& st, const ChrfOptions& o) {
  const int order = o.char_order + o.word_order;
  if (st.size() != size_t(3 * order)) fail("chrF statistics: ", st.size(), " numbers for ", order, " orders");
  const double eps = 1e-16, factor = o.beta * o.beta;
  double score = 0, avg_prec = 0, avg_rec = 0;
  int effective = 0;
  for (int i = 0; i < order; i++) {
    const double n_hyp = double(st[3 * i]), n_ref = double(st[3 * i + 1]), n_match = double(st[3 * i + 2]);
    // chrF++.py's epsilon smoothing (also Moses and NLTK)
    const double prec = n_hyp > 0 ? n_match / n_hyp : eps;
    const double rec = n_ref > 0 ? n_match / n_ref : eps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    // sacreBLEU's default: average precision and recall over the orders both sides have
    if (n_hyp > 0 && n_ref > 0) avg_prec += prec, avg_rec += rec, effective++;
  }
  if (o.eps_smoothing) return 100 * score / order;
  if (effective == 0) return 0.0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

std::vector<int64_t> chrf_stats(std::string_view hyp_text, const std::vector<std::string>& refs, const ChrfOptions& o) {
  if (refs.empty()) fail("chrF: a hypothesis without a reference");
  std::u32string hyp = to_u32(hyp_text);
  if (o.lowercase) hyp = py_lower(hyp);
  const std::vector<Counts> h = chrf_ngrams(hyp, o);
  std::vector<int64_t> best;
  double best_f = -1;
  for (const std::string& ref_text : refs) {
    std::u32string ref = to_u32(ref_text);
    if (o.lowercase) ref = py_lower(ref);
    const std::vector<Counts> r = chrf_ngrams(ref, o);
    std::vector<int64_t> st;
    for (size_t k = 0; k < h.size(); k++) {
      int64_t hyp_count = 0, match = 0, ref_count = 0;
      for (const auto& [g, c] : h[k]) {
        hyp_count += c;
        auto it = r[k].find(g);
        if (it != r[k].end()) match += std::min(c, it->second);
      }
      for (const auto& [g, c] : r[k]) ref_count += c;
      st.push_back(r[k].empty() ? 0 : hyp_count);  // no hits counted where the reference has none
      st.push_back(ref_count);
      st.push_back(match);
    }
    const double f = chrf_from_stats(st, o);
    if (f > best_f) best_f = f, best = std::move(st);
  }
  return best;
}

double corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                   const ChrfOptions& o) {
  if (hyps.size() != refs.size()) fail("chrF: ", hyps.size(), " hypotheses but ", refs.size(), " references");
  std::vector<int64_t> total(size_t(3 * (o.char_order + o.word_order)), 0);
  for (size_t i = 0; i < hyps.size(); i++) {
    std::vector<int64_t> s = chrf_stats(hyps[i], refs[i], o);
    for (size_t k = 0; k < s.size(); k++) total[k] += s[k];
  }
  return chrf_from_stats(total, o);
}

// ---- regular expressions (PCRE2, Python re syntax as far as lm-eval's patterns go) ---------------

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, const std::string& what) : pattern(pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
  if (!c) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(what, ": regular expression '", printable(pattern), "' at offset ", off, ": ", reinterpret_cast<char*>(msg));
  }
  impl = std::make_shared<Impl>();
  impl->code = c;
  groups = 0;
  uint32_t n = 0;
  pcre2_pattern_info(c, PCRE2_INFO_CAPTURECOUNT, &n);
  groups = int(n);
}

// Every non-overlapping match, left to right, empty matches included (as re.finditer): the
// spans of group 0..groups.
std::vector<std::vector<std::pair<size_t, size_t>>> Regex::find_all(std::string_view s) const {
  std::vector<std::vector<std::pair<size_t, size_t>>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl->code, nullptr);
  size_t start = 0;
  bool last_empty = false;
  while (start <= s.size()) {
    uint32_t opts = last_empty ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
    int rc = pcre2_match(impl->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, opts, md, nullptr);
    if (rc < 0) {
      if (!last_empty) break;
      // no non-empty match here after an empty one: step one character and go on
      last_empty = false;
      start++;
      while (start < s.size() && (uint8_t(s[start]) & 0xC0) == 0x80) start++;
      continue;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    std::vector<std::pair<size_t, size_t>> m;
    for (int g = 0; g <= groups; g++) {
      if (g < rc && ov[2 * g] != PCRE2_UNSET) m.push_back({ov[2 * g], ov[2 * g + 1]});
      else m.push_back({std::string::npos, std::string::npos});
    }
    out.push_back(m);
    last_empty = ov[0] == ov[1];
    start = ov[1];
  }
  pcre2_match_data_free(md);
  return out;
}

std::string Regex::remove_all(std::string_view s) const {
  std::string out;
  size_t pos = 0;
  for (const auto& m : find_all(s)) {
    out.append(s.substr(pos, m[0].first - pos));
    pos = m[0].second;
  }
  out.append(s.substr(pos));
  return out;
}

std::string Regex::substitute(std::string_view s, const std::string& replacement) const {
  // Replacement: "\1" style group references (what our own patterns use) and literal text.
  std::string out;
  size_t pos = 0;
  for (const auto& m : find_all(s)) {
    out.append(s.substr(pos, m[0].first - pos));
    for (size_t i = 0; i < replacement.size(); i++) {
      if (replacement[i] == '\\' && i + 1 < replacement.size() && replacement[i + 1] >= '0' && replacement[i + 1] <= '9') {
        const int g = replacement[++i] - '0';
        if (g <= groups && m[size_t(g)].first != std::string::npos)
          out.append(s.substr(m[size_t(g)].first, m[size_t(g)].second - m[size_t(g)].first));
      } else {
        out.push_back(replacement[i]);
      }
    }
    pos = m[0].second;
  }
  out.append(s.substr(pos));
  return out;
}

const Regex& cached_regex(const std::string& pattern, const std::string& what) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::unique_ptr<Regex>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(pattern);
  if (it != cache.end()) return *it->second;
  auto r = std::make_unique<Regex>(pattern, what);
  return *cache.emplace(pattern, std::move(r)).first->second;
}

std::string regex_extract(std::string_view text, const std::string& pattern, int group_select,
                          const std::string& fallback) {
  const Regex& re = cached_regex(pattern, "filter regex_pattern");
  const auto all = re.find_all(text);
  if (all.empty()) return fallback;
  long idx = group_select < 0 ? long(all.size()) + group_select : group_select;
  if (idx < 0 || idx >= long(all.size())) return fallback;  // Python would raise IndexError
  const auto& m = all[size_t(idx)];
  auto span = [&](size_t g) {
    return m[g].first == std::string::npos ? std::string() : std::string(text.substr(m[g].first, m[g].second - m[g].first));
  };
  std::string got;
  if (re.groups == 0) {
    got = span(0);
  } else if (re.groups == 1) {
    got = span(1);
  } else {  // findall gives a tuple: its first non-empty group
    bool found = false;
    for (int g = 1; g <= re.groups && !found; g++)
      if (!span(size_t(g)).empty()) got = span(size_t(g)), found = true;
    if (!found) return fallback;
  }
  return py_strip(got);
}

// ---- BLEU ---------------------------------------------------------------------------------------

std::string tokenize_13a(std::string_view in) {
  std::string line(in);
  auto replace_all = [&](std::string_view from, std::string_view to) {
    std::string out;
    size_t pos = 0, hit;
    while ((hit = line.find(from, pos)) != std::string::npos) {
      out.append(line, pos, hit - pos);
      out.append(to);
      pos = hit + from.size();
    }
    out.append(line, pos, std::string::npos);
    line = std::move(out);
  };
  replace_all("<skipped>", "");
  replace_all("-\n", "");
  replace_all("\n", " ");
  replace_all("&quot;", "\"");
  replace_all("&amp;", "&");
  replace_all("&lt;", "<");
  replace_all("&gt;", ">");
  line = " " + line + " ";
  // mteval-v13a's language-dependent part (sacrebleu's TokenizerRegexp), in order.
  static const Regex r1(R"(([\{-\~\[-\` -\&\(-\+\:-\@\/]))", "13a"), r2(R"(([^0-9])([\.,]))", "13a"),
      r3(R"(([\.,])([^0-9]))", "13a"), r4(R"(([0-9])(-))", "13a");
  line = r1.substitute(line, " \\1 ");
  line = r2.substitute(line, "\\1 \\2 ");
  line = r3.substitute(line, " \\1 \\2");
  line = r4.substitute(line, "\\1 \\2 ");
  std::string out;
  for (const std::u32string& w : py_split(to_u32(line))) {
    if (!out.empty()) out.push_back(' ');
    out += to_utf8(w);
  }
  return out;
}

namespace {

std::vector<std::u32string> bleu_tokens(std::string_view s, const BleuOptions& o) {
  std::string t = o.tokenize == "13a" ? tokenize_13a(s) : std::string(s);
  if (o.tokenize != "13a" && o.tokenize != "none") fail("bleu: tokenize '", o.tokenize, "' is not 13a or none");
  std::u32string u = to_u32(t);
  if (o.lowercase) u = py_lower(u);
  return py_split(u);
}

Counts word_ngrams(const std::vector<std::u32string>& w, int max_order) {
  Counts c;
  for (int n = 1; n <= max_order; n++)
    for (size_t i = 0; i + size_t(n) <= w.size(); i++) {
      std::u32string key = w[i];
      for (size_t k = 1; k < size_t(n); k++) key += U' ' + w[i + k];
      c[key]++;
    }
  return c;
}

}  // namespace

BleuStats bleu_stats(std::string_view hyp, const std::vector<std::string>& refs, const BleuOptions& o) {
  if (refs.empty()) fail("bleu: a hypothesis without a reference");
  BleuStats s;
  s.correct.assign(size_t(o.max_order), 0);
  s.total.assign(size_t(o.max_order), 0);
  const auto h = bleu_tokens(hyp, o);
  const double hyp_len = double(h.size());
  double closest_diff = -1, closest_len = -1;
  Counts ref_max;
  for (const std::string& r : refs) {
    const auto rt = bleu_tokens(r, o);
    const double len = double(rt.size()), diff = std::fabs(hyp_len - len);
    if (closest_diff == -1 || diff < closest_diff) closest_diff = diff, closest_len = len;
    else if (diff == closest_diff && len < closest_len) closest_len = len;
    for (const auto& [g, c] : word_ngrams(rt, o.max_order)) ref_max[g] = std::max(ref_max[g], c);
  }
  s.sys_len = hyp_len;
  s.ref_len = closest_len;
  for (const auto& [g, c] : word_ngrams(h, o.max_order)) {
    size_t n = 1;
    for (char32_t ch : g) n += ch == U' ';
    auto it = ref_max.find(g);
    s.correct[n - 1] += double(std::min(c, it == ref_max.end() ? 0 : it->second));
    s.total[n - 1] += double(c);
  }
  return s;
}

void add_stats(BleuStats& into, const BleuStats& s) {
  if (into.correct.empty()) into.correct.assign(s.correct.size(), 0), into.total.assign(s.total.size(), 0);
  for (size_t i = 0; i < s.correct.size(); i++) into.correct[i] += s.correct[i], into.total[i] += s.total[i];
  into.sys_len += s.sys_len;
  into.ref_len += s.ref_len;
}

double bleu_from_stats(BleuStats s, const BleuOptions& o) {
  const int N = o.max_order;
  if (int(s.correct.size()) != N) s.correct.resize(size_t(N), 0), s.total.resize(size_t(N), 0);
  double value = o.smooth_value;
  if (value < 0) value = o.smooth == "floor" ? 0.1 : o.smooth == "add-k" ? 1 : 0;
  if (o.smooth != "exp" && o.smooth != "none" && o.smooth != "floor" && o.smooth != "add-k")
    fail("bleu: smooth_method '", o.smooth, "' is not exp, none, floor or add-k");
  const double bp = s.sys_len < s.ref_len ? (s.sys_len > 0 ? std::exp(1 - s.ref_len / s.sys_len) : 0.0) : 1.0;
  bool any = false;
  for (double c : s.correct) any |= c != 0;
  if (!any) return 0.0;  // no match at all: 0 whatever the smoothing (sacrebleu #141)
  std::vector<double> prec(size_t(N), 0.0);
  double smooth_mteval = 1;
  int eff = N;
  for (int n = 1; n <= N; n++) {
    if (o.smooth == "add-k" && n > 1) s.correct[size_t(n - 1)] += value, s.total[size_t(n - 1)] += value;
    if (s.total[size_t(n - 1)] == 0) break;
    if (o.effective_order) eff = n;
    if (s.correct[size_t(n - 1)] == 0) {
      if (o.smooth == "exp") {
        smooth_mteval *= 2;
        prec[size_t(n - 1)] = 100. / (smooth_mteval * s.total[size_t(n - 1)]);
      } else if (o.smooth == "floor") {
        prec[size_t(n - 1)] = 100. * value / s.total[size_t(n - 1)];
      }
    } else {
      prec[size_t(n - 1)] = 100. * s.correct[size_t(n - 1)] / s.total[size_t(n - 1)];
    }
  }
  double sum = 0;
  for (int i = 0; i < eff; i++) sum += prec[size_t(i)] == 0 ? -9999999999.0 : std::log(prec[size_t(i)]);
  return bp * std::exp(sum / eff);
}

double corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                   const BleuOptions& o) {
  if (hyps.size() != refs.size()) fail("bleu: ", hyps.size(), " hypotheses but ", refs.size(), " references");
  BleuStats total;
  total.correct.assign(size_t(o.max_order), 0);
  total.total.assign(size_t(o.max_order), 0);
  for (size_t i = 0; i < hyps.size(); i++) add_stats(total, bleu_stats(hyps[i], refs[i], o));
  return bleu_from_stats(total, o);
}

// ---- exact match, mean and standard error -------------------------------------------------------

double exact_match(std::string_view pred, std::string_view ref, const ExactMatchOptions& o) {
  std::string p(pred), r(ref);
  for (const std::string& pat : o.regexes_to_ignore) {
    const Regex& re = cached_regex(pat, "exact_match regexes_to_ignore");
    p = re.remove_all(p);
    r = re.remove_all(r);
  }
  auto norm = [&](std::string& s) {
    std::u32string u = to_u32(s);
    if (o.ignore_case) u = py_lower(u);
    std::u32string out;
    for (char32_t c : u) {
      if (o.ignore_punctuation && is_ascii_punct(c)) continue;
      if (o.ignore_numbers && c >= U'0' && c <= U'9') continue;
      out.push_back(c);
    }
    s = to_utf8(out);
  };
  norm(p);
  norm(r);
  return p == r ? 1.0 : 0.0;
}

MeanStderr mean_stderr(const std::vector<double>& x) {
  MeanStderr r;
  if (x.empty()) return r;
  double sum = 0;
  for (double v : x) sum += v;
  r.mean = sum / double(x.size());
  if (x.size() < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.stderr = std::sqrt(ss / double(x.size() - 1)) / std::sqrt(double(x.size()));
  return r;
}

double bootstrap_stderr(size_t n, const std::function<double(const std::vector<size_t>&)>& score, int iters,
                        uint64_t seed) {
  if (n < 2 || iters < 2) return 0;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> scores;
  std::vector<size_t> idx(n);
  for (int it = 0; it < iters; it++) {
    for (size_t& i : idx) i = pick(rng);
    scores.push_back(score(idx));
  }
  double mean = 0;
  for (double s : scores) mean += s;
  mean /= double(scores.size());
  double ss = 0;
  for (double s : scores) ss += (s - mean) * (s - mean);
  return std::sqrt(ss / double(scores.size() - 1));
}

double f1_score(const std::vector<int>& gold, const std::vector<int>& pred, const std::vector<size_t>& idx, bool macro) {
  std::map<int, std::array<int64_t, 3>> c;  // class -> true positives, false positives, false negatives
  if (!macro) c[1] = {0, 0, 0};
  for (size_t i : idx) {
    const int g = gold[i], p = pred[i];
    if (macro) c[g], c[p];
    if (g == p) {
      if (c.count(g)) c[g][0]++;
    } else {
      if (c.count(p)) c[p][1]++;
      if (c.count(g)) c[g][2]++;
    }
  }
  double sum = 0;
  for (const auto& [label, v] : c) {
    const int64_t d = 2 * v[0] + v[1] + v[2];
    sum += d == 0 ? 0.0 : 2.0 * double(v[0]) / double(d);
  }
  return c.empty() ? 0.0 : sum / double(c.size());
}

}  // namespace todae::eval
