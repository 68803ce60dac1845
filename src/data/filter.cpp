// filter: language by script ratios, and quality rules in the spirit of Gopher (Rae et al. 2021)
// and C4 (Raffel et al. 2020), with Korean-aware variants where word-based rules assume English.
#include <algorithm>
#include <span>
#include <utf8proc.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

// data::xxh64 inlined (xxHash's own code from its header, so the same values): these loops hash
// every word or line, and the call into the shared library cost more than the hashing.
static inline uint64_t hash64(std::string_view s, uint64_t seed = 0) { return XXH64(s.data(), s.size(), seed); }

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

inline bool is_letter(Kind k) {
  constexpr unsigned kLetters = 1u << kHangul | 1u << kLatin | 1u << kHan | 1u << kOtherLetter;
  return (kLetters >> k) & 1;
}

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
  size_t a = data::first_not(line, data::space_or_tab);
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
  size_t b = data::last_not(line, data::space_or_tab);
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
  // Every ending and word below is or ends in a Hangul syllable (three bytes, the first 0xEA-0xED):
  // that byte alone rules out the English and numeric words of a mixed text.
  if (w.size() < 3) return false;
  unsigned char lead = static_cast<unsigned char>(w[w.size() - 3]);
  if (lead < 0xEA || lead > 0xED) return false;
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

// `needle` is lowercase ASCII. Every document that passes the other rules is searched, so the
// first letter is looked for sixteen bytes at a time where SSE2 is there (every x86-64).
bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  const size_t last = hay.size() - needle.size();  // the last position a match can start at
  auto match_at = [&](size_t i) {
    size_t k = 0;
    while (k < needle.size() && char(hay[i + k] | 0x20) == needle[k]) ++k;
    return k == needle.size();
  };
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i lower = _mm_set1_epi8(0x20), first = _mm_set1_epi8(needle[0]);
  for (; i + 16 <= last + 1; i += 16) {
    __m128i v = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hay.data() + i)), lower);
    for (unsigned m = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, first))); m != 0; m &= m - 1)
      if (match_at(i + size_t(__builtin_ctz(m)))) return true;
  }
#endif
  for (; i <= last; ++i)
    if (match_at(i)) return true;
  return false;
}

uint64_t combine(uint64_t h, uint64_t w) { return data::mix64(h * 0x100000001b3ull ^ w); }

}  // namespace

std::vector<std::string> filter_rule_names() { return rule_names(); }

// The end of the run of ASCII letters from text[i]: sixteen bytes at a time where SSE2 is there.
static inline size_t ascii_letters_end(std::string_view text, size_t i) {
  const size_t n = text.size();
#if defined(__SSE2__)
  while (n - i >= 16) {
    // (b | 0x20) in 'a'..'z' exactly for ASCII letters; bytes >= 0x80 compare as negative.
    __m128i v = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i)), _mm_set1_epi8(0x20));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
    unsigned other = ~unsigned(_mm_movemask_epi8(letter)) & 0xFFFF;
    if (other) return i + size_t(__builtin_ctz(other));
    i += 16;
  }
#endif
  while (i < n && ((text[i] | 0x20) >= 'a' && (text[i] | 0x20) <= 'z')) ++i;
  return i;
}

// Characters per Kind go into an array in the loops below (a switch there costs a mispredicted
// jump per character); this moves them into the statistics.
static void add_kind_counts(TextStats& s, const uint64_t (&by_kind)[8]) {
  for (uint64_t n : by_kind) s.chars += n;
  s.spaces += by_kind[kSpace];
  s.hangul += by_kind[kHangul];
  s.latin += by_kind[kLatin];
  s.han += by_kind[kHan];
  s.other_letters += by_kind[kOtherLetter];
  s.digits += by_kind[kDigit];
  s.symbols += by_kind[kSymbol];
}

TextStats text_stats(std::string_view text) {
  TextStats s;
  bool in_word = false;
  s.lines = text.empty() ? 0 : 1;
  uint64_t by_kind[8] = {};
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    Kind k = next_kind(text, i, &cp);
    ++by_kind[k];
    if (k == kSpace) {
      s.lines += cp == '\n';
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++s.words;
    }
  }
  add_kind_counts(s, by_kind);
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
  // Reused across documents and only ever grown (vector::push_back per word, not inlined, showed
  // in profiles).
  thread_local std::vector<Word> word_buf;
  Word* wp = word_buf.data();
  size_t word_count = 0;
  auto add_word = [&](const Word& w) {
    if (word_count == word_buf.size()) {
      word_buf.resize(std::max<size_t>(256, 2 * word_buf.size()));
      wp = word_buf.data();
    }
    wp[word_count++] = w;
  };
  s.lines = text.empty() ? 0 : 1;
  uint64_t hash_ellipsis = 0, by_kind[8] = {};
  Word cur{};
  bool in_word = false;
  const size_t n = text.size();
  auto ascii_letter = [&](size_t j) {
    unsigned char b = static_cast<unsigned char>(text[j]);
    return b < 0x80 && kAscii.k[b] == kLatin;
  };
  auto hangul_syllable = [&](size_t j) {  // U+AC00-U+D7A3, decoded as decode_cp does
    unsigned char b = static_cast<unsigned char>(text[j]);
    if (b < 0xEA || b > 0xED || j + 2 >= n) return false;
    uint32_t c = uint32_t(b & 0x0F) << 12 | uint32_t(text[j + 1] & 0x3F) << 6 | uint32_t(text[j + 2] & 0x3F);
    return c >= 0xAC00 && c <= 0xD7A3;
  };
  for (size_t i = 0; i < n;) {
    size_t at = i;
    // Runs of ASCII letters or of Hangul syllables, most of any text, are counted a run at a time:
    // one update per run rather than per character (a counter bumped per character makes every
    // character wait for the previous one's increment).
    uint32_t run = 0;
    if (ascii_letter(i)) {
      i = ascii_letters_end(text, i + 1);
      run = uint32_t(i - at);
      by_kind[kLatin] += run;
    } else if (hangul_syllable(i)) {
      do i += 3, ++run;
      while (i < n && hangul_syllable(i));
      by_kind[kHangul] += run;
    }
    if (run > 0) {
      if (!in_word) {
        cur = Word{uint32_t(at), 0, 0, false};
        in_word = true;
      }
      cur.chars += run;
      cur.alpha = true;
      continue;
    }
    uint32_t cp;
    Kind k = next_kind(text, i, &cp);
    ++by_kind[k];
    if (k == kSpace) {
      s.lines += cp == '\n';
      if (in_word) {
        cur.end = uint32_t(at);
        add_word(cur);
        in_word = false;
      }
      continue;
    }
    if (k == kSymbol) {  // '#', '.' and U+2026 are symbols
      if (cp == '#' || cp == 0x2026) ++hash_ellipsis;
      if (cp == '.' && i + 1 < text.size() && text[i] == '.' && text[i + 1] == '.' && (at == 0 || text[at - 1] != '.'))
        ++hash_ellipsis;
    }
    if (!in_word) {
      cur = Word{uint32_t(at), 0, 0, false};
      in_word = true;
    }
    ++cur.chars;
    cur.alpha |= is_letter(k);
  }
  if (in_word) {
    cur.end = uint32_t(text.size());
    add_word(cur);
  }
  add_kind_counts(s, by_kind);
  const std::span<const Word> words(wp, word_count);
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
    size_t a = data::first_not(line, data::space_or_tab), b = data::last_not(line, data::space_or_tab);
    if (a == std::string_view::npos) continue;
    line = line.substr(a, b - a + 1);
    ++lines;
    bullets += starts_with_bullet(line);
    ellipses += ends_with_ellipsis(line);
    uint32_t chars = uint32_t(data::count_code_points_fast(line));
    short_lines += chars < opt.short_line_chars;
    line_chars += chars;
    line_hashes.push_back({hash64(line), chars});
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
  // rules). The n-gram hash at word i combines the (n-1)-gram hashes at i and i+1; counting uses
  // an open-addressing table reused across documents.
  //
  // An n-gram can occur twice only where both (n-1)-grams inside it occur twice, so round n looks
  // only at the positions i whose (n-1)-grams at i and i+1 were repeated. The others hold n-grams
  // seen once, which change neither the most frequent n-gram nor the repeated characters, so the
  // result is the same as counting every position; in running text few positions survive the
  // first rounds, which makes the ten rounds cost little more than one.
  bool top = on("top_ngram"), dup = on("dup_ngram");
  if ((top || dup) && words.size() >= std::max<uint64_t>(2, opt.ngram_min_words)) {
    thread_local std::vector<uint64_t> gram, keys, prefix;
    thread_local std::vector<uint32_t> counts, slot, cand, repeated;
    thread_local std::vector<uint8_t> level;  // level[i] == n: the n-gram at i is repeated
    size_t W = words.size();
    gram.resize(W);
    slot.resize(W);
    level.assign(W, 0);
    prefix.resize(W + 1);
    prefix[0] = 0;
    for (size_t i = 0; i < W; ++i) {
      gram[i] = hash64(text.substr(words[i].begin, words[i].end - words[i].begin));
      prefix[i + 1] = prefix[i] + words[i].chars;
    }
    // The table is left empty after every round (clear() below), so it is zeroed only when it
    // grows; a document uses the first `cap` slots, enough to keep it at most half full.
    size_t cap = 16;
    while (cap < 2 * W) cap <<= 1;
    if (keys.size() < cap) keys.resize(cap, 0), counts.resize(cap, 0);
    // Counts one occurrence of h (non-zero); returns its count so far and notes its slot.
    auto add = [&](uint64_t h, size_t i) {
      size_t k = size_t(h) & (cap - 1);
      while (keys[k] != 0 && keys[k] != h) k = (k + 1) & (cap - 1);
      keys[k] = h;
      slot[i] = uint32_t(k);
      return ++counts[k];
    };
    // Empties the slots used by the positions in `used`, for the next round.
    auto clear = [&](const std::vector<uint32_t>& used) {
      for (uint32_t i : used) keys[slot[i]] = 0, counts[slot[i]] = 0;
    };
    // Round 1: repeated words. (Words whose hashes differ only in the lowest bit count as equal
    // here; an extra candidate costs a probe and changes nothing.)
    cand.resize(W);
    for (uint32_t i = 0; i < W; ++i) {
      cand[i] = i;
      add(gram[i] | 1, i);
    }
    repeated.clear();
    for (uint32_t i : cand)
      if (counts[slot[i]] >= 2) repeated.push_back(i), level[i] = 1;
    clear(cand);
    double total = std::max<double>(1, double(word_chars));
    for (size_t n = 2; n <= 10 && W >= n; ++n) {
      if (n >= 5 && !dup) break;
      cand.clear();
      for (uint32_t i : repeated)
        if (i + n <= W && level[i + 1] == n - 1) cand.push_back(i);
      // Ascending, so gram[i + 1] still holds the (n-1)-gram when gram[i] is extended.
      uint64_t best = 0, chars = 0;
      size_t run_begin = 0, run_end = 0;  // words covered by repeats, merged as they come in order
      for (uint32_t i : cand) {
        uint64_t h = gram[i] = combine(gram[i], gram[i + 1] ^ (uint64_t(n) << 56)) | 1;
        uint32_t c = add(h, i);
        if (c < 2) continue;
        if (n <= 4) {
          best = std::max<uint64_t>(best, uint64_t(c) * (prefix[i + n] - prefix[i]));
        } else if (i < run_end) {  // a repeat: words i..i+n-1 are covered
          run_end = i + n;
        } else {
          chars += prefix[run_end] - prefix[run_begin];
          run_begin = i, run_end = i + n;
        }
      }
      chars += prefix[run_end] - prefix[run_begin];
      repeated.clear();
      for (uint32_t i : cand)
        if (counts[slot[i]] >= 2) repeated.push_back(i), level[i] = uint8_t(n);
      clear(cand);
      if (n <= 4) {
        if (!top) continue;
        double limit = n == 2 ? opt.max_top_2gram : n == 3 ? opt.max_top_3gram : opt.max_top_4gram;
        if (double(best) > limit * total) return "top_ngram";
      } else {
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
