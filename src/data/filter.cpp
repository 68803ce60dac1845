// filter: language by script ratios, and quality rules in the spirit of Gopher (Rae et al. 2021)
// and C4 (Raffel et al. 2020), with Korean-aware variants where word-based rules assume English.
#include <algorithm>
#include <utf8proc.h>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

namespace {

enum Kind : uint8_t { kSpace, kHangul, kLatin, kHan, kOtherLetter, kDigit, kMark, kSymbol };

inline Kind classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kLatin;
    if (cp >= '0' && cp <= '9') return kDigit;
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v') return kSpace;
    return kSymbol;
  }
  if ((cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F) ||
      (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xD7B0 && cp <= 0xD7FF))
    return kHangul;
  if ((cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x1E00 && cp <= 0x1EFF)) return kLatin;
  if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF)) return kHan;
  switch (utf8proc_category(utf8proc_int32_t(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return kOtherLetter;
    case UTF8PROC_CATEGORY_ND: return kDigit;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: return kMark;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return kSpace;
    default: return kSymbol;
  }
}

struct AsciiKinds {
  Kind k[128];
  constexpr AsciiKinds() : k() {
    for (int c = 0; c < 128; ++c) {
      k[c] = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? kLatin
             : (c >= '0' && c <= '9')                  ? kDigit
             : (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') ? kSpace
                                                                                       : kSymbol;
    }
  }
};
constexpr AsciiKinds kAscii;

// The code point at text[i] and its class; advances i.
inline Kind next_kind(std::string_view text, size_t& i, uint32_t* cp) {
  unsigned char b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    ++i;
    *cp = b;
    return kAscii.k[b];
  }
  *cp = data::decode_cp(text, i);
  return classify(*cp);
}

inline bool is_letter(Kind k) { return k == kHangul || k == kLatin || k == kHan || k == kOtherLetter; }

const std::vector<std::string>& rule_names() {
  static const std::vector<std::string> names = {
      "language",    "min_chars",   "max_chars",      "min_words",    "max_words", "mean_word_chars",
      "symbol_ratio", "digit_ratio", "hash_ellipsis",  "bullet_lines", "ellipsis_lines", "alpha_words",
      "stopwords",   "dup_lines",   "short_lines",    "lorem_ipsum",  "top_ngram", "dup_ngram"};
  return names;
}

struct Word {
  uint32_t begin, end, chars;
  bool alpha;
};

bool starts_with_bullet(std::string_view line) {
  size_t a = line.find_first_not_of(" \t");
  if (a == std::string_view::npos) return false;
  line = line.substr(a);
  char c = line[0];
  if (c != '-' && c != '*' && c != '+' && c != '\xE2' && c != '\xC2') return false;
  for (std::string_view b : {"-", "*", "+", "\xE2\x80\xA2" /* • */, "\xC2\xB7" /* · */, "\xE2\x80\xA3" /* ‣ */,
                             "\xE2\x97\xA6" /* ◦ */, "\xE2\x96\xAA" /* ▪ */, "\xE2\x97\x8F" /* ● */,
                             "\xE2\x97\x8B" /* ○ */, "\xE2\x96\xA0" /* ■ */, "\xE2\x96\xA1" /* □ */,
                             "\xE2\x80\xBB" /* ※ */, "\xE2\x96\xB6" /* ▶ */})
    if (line.substr(0, b.size()) == b && (line.size() == b.size() || line[b.size()] == ' ')) return true;
  return false;
}

bool ends_with_ellipsis(std::string_view line) {
  size_t b = line.find_last_not_of(" \t");
  if (b == std::string_view::npos) return false;
  line = line.substr(0, b + 1);
  if (line.back() != '.' && line.back() != '\xA6') return false;
  auto ends = [&](std::string_view s) { return line.size() >= s.size() && line.substr(line.size() - s.size()) == s; };
  return ends("...") || ends("\xE2\x80\xA6");
}

// Korean eojeol that end in a particle or a sentence ending: what running Korean text is made of,
// and lists of UI labels or keywords are not.
bool korean_function_word(std::string_view w) {
  while (!w.empty() && (w.back() == '.' || w.back() == ',' || w.back() == '!' || w.back() == '?' || w.back() == ')' ||
                        w.back() == '"' || w.back() == '\'' || w.back() == ':'))
    w.remove_suffix(1);
  static const std::string_view endings[] = {"은", "는", "이", "가", "을", "를", "에", "의", "로", "와", "과", "도", "다",
                                             "요", "서", "고", "며", "면", "지", "게", "한", "된", "인", "할", "될"};
  static const std::string_view words[] = {"및", "등", "수", "것", "또는", "그리고", "그", "이", "저", "더", "또한", "위해"};
  for (std::string_view e : words)
    if (w == e) return true;
  for (std::string_view e : endings)
    if (w.size() > e.size() && w.substr(w.size() - e.size()) == e) return true;
  return false;
}

bool english_stopword(std::string_view w) {
  char buf[8];
  if (w.size() > 4) return false;
  for (size_t i = 0; i < w.size(); ++i) buf[i] = char(w[i] | 0x20);
  std::string_view l(buf, w.size());
  return l == "the" || l == "be" || l == "to" || l == "of" || l == "and" || l == "that" || l == "have" || l == "with";
}

bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && char(hay[i + k] | 0x20) == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

uint64_t combine(uint64_t h, uint64_t w) { return data::mix64(h * 0x100000001b3ull ^ w); }

}  // namespace

std::vector<std::string> filter_rule_names() { return rule_names(); }

// Counts one character into the statistics both text_stats and filter_reason gather.
static inline void tally(TextStats& s, Kind k, uint32_t cp) {
  ++s.chars;
  switch (k) {
    case kSpace: ++s.spaces; break;
    case kHangul: ++s.hangul; break;
    case kLatin: ++s.latin; break;
    case kHan: ++s.han; break;
    case kOtherLetter: ++s.other_letters; break;
    case kDigit: ++s.digits; break;
    case kMark: break;
    case kSymbol: ++s.symbols; break;
  }
  if (cp == '\n') ++s.lines;
}

TextStats text_stats(std::string_view text) {
  TextStats s;
  bool in_word = false;
  s.lines = text.empty() ? 0 : 1;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    Kind k = next_kind(text, i, &cp);
    tally(s, k, cp);
    if (k == kSpace) {
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++s.words;
    }
  }
  return s;
}

std::string detect_language(const TextStats& s, const FilterOptions& opt) {
  uint64_t letters = s.hangul + s.latin + s.han + s.other_letters;
  if (letters == 0) return "other";
  if (double(s.hangul) >= opt.ko_min_hangul * double(letters)) return "ko";
  if (double(s.latin) >= opt.en_min_latin * double(letters)) return "en";
  return "other";
}

std::string filter_reason(std::string_view text, const FilterOptions& opt, std::string* lang_out) {
  auto on = [&](const char* rule) { return std::find(opt.disable.begin(), opt.disable.end(), rule) == opt.disable.end(); };
  // One pass: character classes, words, lines.
  TextStats s;
  thread_local std::vector<Word> words;  // reused: most documents are short, allocation would dominate
  words.clear();
  s.lines = text.empty() ? 0 : 1;
  uint64_t hash_ellipsis = 0;
  Word cur{};
  bool in_word = false;
  for (size_t i = 0; i < text.size();) {
    size_t at = i;
    uint32_t cp;
    Kind k = next_kind(text, i, &cp);
    tally(s, k, cp);
    if (cp == '#' || cp == 0x2026) ++hash_ellipsis;
    if (cp == '.' && i + 1 < text.size() && text[i] == '.' && text[i + 1] == '.' && (at == 0 || text[at - 1] != '.'))
      ++hash_ellipsis;
    if (k == kSpace) {
      if (in_word) {
        cur.end = uint32_t(at);
        words.push_back(cur);
        in_word = false;
      }
    } else {
      if (!in_word) {
        cur = Word{uint32_t(at), 0, 0, false};
        in_word = true;
      }
      ++cur.chars;
      cur.alpha |= is_letter(k);
    }
  }
  if (in_word) {
    cur.end = uint32_t(text.size());
    words.push_back(cur);
  }
  s.words = words.size();
  std::string lang = detect_language(s, opt);
  if (lang_out) *lang_out = lang;

  if (on("language") && std::find(opt.languages.begin(), opt.languages.end(), lang) == opt.languages.end())
    return "language";
  if (on("min_chars") && s.chars < opt.min_chars) return "min_chars";
  if (on("max_chars") && s.chars > opt.max_chars) return "max_chars";
  if (on("min_words") && s.words < opt.min_words) return "min_words";
  if (on("max_words") && s.words > opt.max_words) return "max_words";
  uint64_t word_chars = 0, alpha_words = 0;
  for (const Word& w : words) {
    word_chars += w.chars;
    alpha_words += w.alpha;
  }
  double n_words = std::max<double>(1, double(words.size()));
  if (on("mean_word_chars") && !words.empty()) {
    double mean = double(word_chars) / n_words;
    double lo = lang == "en" ? opt.en_min_mean_word_chars : opt.min_mean_word_chars;
    double hi = lang == "en" ? opt.en_max_mean_word_chars : opt.max_mean_word_chars;
    if (mean < lo || mean > hi) return "mean_word_chars";
  }
  double non_space = std::max<double>(1, double(s.chars - s.spaces));
  if (on("symbol_ratio") && double(s.symbols) > opt.max_symbol_ratio * non_space) return "symbol_ratio";
  if (on("digit_ratio") && double(s.digits) > opt.max_digit_ratio * non_space) return "digit_ratio";
  if (on("hash_ellipsis") && double(hash_ellipsis) > opt.max_hash_ellipsis_per_word * n_words) return "hash_ellipsis";

  // Lines.
  uint64_t lines = 0, bullets = 0, ellipses = 0, short_lines = 0, dup_chars = 0, line_chars = 0;
  thread_local std::vector<std::pair<uint64_t, uint32_t>> line_hashes;  // (hash, chars)
  line_hashes.clear();
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    size_t a = line.find_first_not_of(" \t"), b = line.find_last_not_of(" \t");
    if (a == std::string_view::npos) continue;
    line = line.substr(a, b - a + 1);
    ++lines;
    bullets += starts_with_bullet(line);
    ellipses += ends_with_ellipsis(line);
    uint32_t chars = uint32_t(data::count_code_points(line));
    short_lines += chars < opt.short_line_chars;
    line_chars += chars;
    line_hashes.push_back({data::xxh64(line), chars});
  }
  if (lines > 0) {
    if (on("bullet_lines") && double(bullets) > opt.max_bullet_lines * double(lines)) return "bullet_lines";
    if (on("ellipsis_lines") && double(ellipses) > opt.max_ellipsis_lines * double(lines)) return "ellipsis_lines";
  }
  if (on("alpha_words") && !words.empty() && double(alpha_words) < opt.min_alpha_words * n_words) return "alpha_words";
  if (on("stopwords") && (lang == "en" || lang == "ko")) {
    // Either language's function words count: Korean technical text mixes in English freely.
    uint64_t en = 0, ko = 0;
    for (const Word& w : words) {
      std::string_view ws = text.substr(w.begin, w.end - w.begin);
      en += english_stopword(ws);
      ko += korean_function_word(ws);
      if (en >= opt.min_stopwords || ko >= opt.min_stopwords) break;
    }
    if (en < opt.min_stopwords && ko < opt.min_stopwords) return "stopwords";
  }
  if (on("dup_lines") && line_hashes.size() > 1) {
    thread_local std::vector<std::pair<uint64_t, uint32_t>> sorted;
    sorted.clear();
    for (uint32_t i = 0; i < line_hashes.size(); ++i) sorted.push_back({line_hashes[i].first, i});
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i].first == sorted[i - 1].first) dup_chars += line_hashes[sorted[i].second].second;
    if (double(dup_chars) > opt.max_dup_line_chars * double(std::max<uint64_t>(1, line_chars))) return "dup_lines";
  }
  if (on("short_lines") && lines >= opt.short_lines_min_lines && double(short_lines) > opt.max_short_lines * double(lines))
    return "short_lines";
  if (on("lorem_ipsum") && contains_ci(text, "lorem ipsum")) return "lorem_ipsum";
  // Word n-grams: the most frequent 2/3/4-gram, and repeats of 5..10-grams (Gopher's repetition
  // rules). n-gram hashes are extended one word at a time; counting uses an open-addressing table
  // reused across documents, so each n costs O(words).
  bool top = on("top_ngram"), dup = on("dup_ngram");
  if ((top || dup) && words.size() >= std::max<uint64_t>(2, opt.ngram_min_words)) {
    thread_local std::vector<uint64_t> gram, keys;
    thread_local std::vector<int64_t> cover_delta;
    thread_local std::vector<uint32_t> counts;
    thread_local std::vector<uint64_t> prefix;  // word chars before word i
    size_t W = words.size();
    gram.resize(W);
    prefix.resize(W + 1);
    prefix[0] = 0;
    for (size_t i = 0; i < W; ++i) {
      gram[i] = data::xxh64(text.substr(words[i].begin, words[i].end - words[i].begin));
      prefix[i + 1] = prefix[i] + words[i].chars;
    }
    size_t cap = 16;
    while (cap < 2 * W) cap <<= 1;
    keys.assign(cap, 0);
    counts.assign(cap, 0);
    double total = std::max<double>(1, double(word_chars));
    for (size_t n = 2; n <= 10 && W >= n; ++n) {
      // gram[i] now covers words i..i+n-2; extend by word i+n-1.
      for (size_t i = 0; i + n <= W; ++i) gram[i] = combine(gram[i], gram[i + 1] ^ (uint64_t(n) << 56)) | 1;
      if (n <= 4 && !top) continue;
      if (n >= 5 && !dup) break;
      std::fill(keys.begin(), keys.end(), 0);
      std::fill(counts.begin(), counts.end(), 0);
      uint64_t best = 0;
      if (n >= 5) cover_delta.assign(W + 1, 0);
      for (size_t i = 0; i + n <= W; ++i) {
        uint64_t h = gram[i];
        size_t slot = size_t(h) & (cap - 1);
        while (keys[slot] != 0 && keys[slot] != h) slot = (slot + 1) & (cap - 1);
        keys[slot] = h;
        uint32_t c = ++counts[slot];
        if (c < 2) continue;
        if (n <= 4) best = std::max<uint64_t>(best, uint64_t(c) * (prefix[i + n] - prefix[i]));
        else ++cover_delta[i], --cover_delta[i + n];  // a repeat: words i..i+n-1 are covered
      }
      if (n <= 4) {
        double limit = n == 2 ? opt.max_top_2gram : n == 3 ? opt.max_top_3gram : opt.max_top_4gram;
        if (double(best) > limit * total) return "top_ngram";
      } else {
        uint64_t chars = 0;
        int64_t depth = 0;
        for (size_t i = 0; i < W; ++i) {
          depth += cover_delta[i];
          if (depth > 0) chars += words[i].chars;
        }
        double limit = opt.max_dup_5gram + (opt.max_dup_10gram - opt.max_dup_5gram) * double(n - 5) / 5.0;
        if (double(chars) > limit * total) return "dup_ngram";
      }
    }
  }
  return "";
}

std::string data::options_json(const FilterOptions& o) {
  ojson j;
  j["languages"] = o.languages;
  j["ko_min_hangul"] = o.ko_min_hangul;
  j["en_min_latin"] = o.en_min_latin;
  j["disable"] = o.disable;
  j["min_chars"] = o.min_chars;
  j["max_chars"] = o.max_chars;
  j["min_words"] = o.min_words;
  j["max_words"] = o.max_words;
  j["min_mean_word_chars"] = o.min_mean_word_chars;
  j["max_mean_word_chars"] = o.max_mean_word_chars;
  j["en_min_mean_word_chars"] = o.en_min_mean_word_chars;
  j["en_max_mean_word_chars"] = o.en_max_mean_word_chars;
  j["max_symbol_ratio"] = o.max_symbol_ratio;
  j["max_digit_ratio"] = o.max_digit_ratio;
  j["max_hash_ellipsis_per_word"] = o.max_hash_ellipsis_per_word;
  j["max_bullet_lines"] = o.max_bullet_lines;
  j["max_ellipsis_lines"] = o.max_ellipsis_lines;
  j["min_alpha_words"] = o.min_alpha_words;
  j["max_dup_line_chars"] = o.max_dup_line_chars;
  j["max_top_2gram"] = o.max_top_2gram;
  j["max_top_3gram"] = o.max_top_3gram;
  j["max_top_4gram"] = o.max_top_4gram;
  j["max_dup_5gram"] = o.max_dup_5gram;
  j["max_dup_10gram"] = o.max_dup_10gram;
  j["ngram_min_words"] = o.ngram_min_words;
  j["max_short_lines"] = o.max_short_lines;
  j["short_line_chars"] = o.short_line_chars;
  j["short_lines_min_lines"] = o.short_lines_min_lines;
  j["min_stopwords"] = o.min_stopwords;
  return j.dump();
}

StageReport run_filter(const InputOptions& in, const FilterOptions& opt, const CommonOptions& co) {
  for (const std::string& d : opt.disable)
    if (std::find(rule_names().begin(), rule_names().end(), d) == rule_names().end()) {
      std::string all;
      for (const auto& n : rule_names()) all += (all.empty() ? "" : ", ") + n;
      fail("filter: no rule '", d, "' to disable (rules: ", all, ")");
    }
  for (const std::string& l : opt.languages)
    if (l != "ko" && l != "en" && l != "other") fail("filter: language '", l, "' is not ko, en or other");
  return data::run_map_stage("filter", in, co, data::with_input(in, data::options_json(opt)),
                             [&](std::vector<Doc>& docs, StageReport& rep) {
                               const auto& names = rule_names();
                               std::vector<uint64_t> dropped(names.size(), 0);
                               uint64_t langs[3] = {0, 0, 0};  // ko, en, other
                               size_t kept = 0;
                               std::string lang;
                               for (size_t i = 0; i < docs.size(); ++i) {
                                 std::string why = filter_reason(docs[i].text, opt, &lang);
                                 ++langs[lang == "ko" ? 0 : lang == "en" ? 1 : 2];
                                 if (!why.empty()) {
                                   ++dropped[size_t(std::find(names.begin(), names.end(), why) - names.begin())];
                                   continue;
                                 }
                                 docs[i].lang = lang;
                                 if (kept != i) docs[kept] = std::move(docs[i]);
                                 ++kept;
                               }
                               for (size_t r = 0; r < names.size(); ++r) rep.counts["dropped." + names[r]] += dropped[r];
                               rep.counts["lang.ko"] += langs[0];
                               rep.counts["lang.en"] += langs[1];
                               rep.counts["lang.other"] += langs[2];
                               docs.resize(kept);
                             });
}

}  // namespace todae
