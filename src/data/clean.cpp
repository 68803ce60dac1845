// clean: NFC, control characters, Unicode spaces, line ends, blank lines, boilerplate lines.
#include <algorithm>
#include <utf8proc.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "data/data_impl.h"
#include "data/json_util.h"
#include "text/text.h"

namespace todae {

// data::xxh64 inlined (xxHash's own code from its header, so the same values): these loops hash
// every word or line, and the call into the shared library cost more than the hashing.
static inline uint64_t hash64(std::string_view s, uint64_t seed = 0) { return XXH64(s.data(), s.size(), seed); }

struct BoilerplateSet {
  std::vector<uint64_t> lines;  // sorted: a handful of hashes, searched for every line of every document
  bool contains(uint64_t h) const { return std::binary_search(lines.begin(), lines.end(), h); }
};

namespace {

inline bool removable_control(uint32_t cp) {
  return (cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x200B ||
         cp == 0xFEFF || cp == 0xAD || cp == 0x2060;
}

inline bool unicode_space(uint32_t cp) {
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t count_cps(std::string_view s) { return size_t(data::count_code_points_fast(s)); }

inline bool blank_char(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  size_t a = data::first_not(s, blank_char);
  if (a == std::string_view::npos) return {};
  size_t b = data::last_not(s, blank_char);
  return s.substr(a, b - a + 1);
}

uint64_t line_hash(std::string_view line) { return hash64(trim(line), 0xb011e4b1a7eull); }

// Calls fn(begin, end, hash) for each line of the raw text long enough to count as boilerplate.
template <typename F>
void for_boiler_lines(std::string_view text, int min_chars, F&& fn) {
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = trim(text.substr(pos, eol - pos));
    // A line has at most as many code points as bytes: shorter lines need no counting.
    size_t min = size_t(min_chars);
    bool long_enough = line.size() >= min && count_cps(line) >= min;
    if (!line.empty() && long_enough) fn(pos, eol, line_hash(line));
    pos = eol + 1;
  }
}


}  // namespace

namespace data {

// True when every code point is NFC-inert: no canonical decomposition, combining class 0, not a
// mark, not a Hangul jamo. Such text is already NFC and stays NFC whatever precedes or follows
// it, so normalisation can be skipped. Every second element of a canonical composition is a
// combining mark or a jamo (tests check all of Unicode), so this never says yes wrongly.
bool nfc_inert_cp(uint32_t cp) {
  if (cp < 0x300 || (cp >= 0xAC00 && cp <= 0xD7A3)) return true;
  if (cp >= 0x1100 && cp <= 0x11FF) return false;
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
  if (p->combining_class != 0) return false;
  if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return false;  // canonical decomposition
  return p->category != UTF8PROC_CATEGORY_MN && p->category != UTF8PROC_CATEGORY_MC &&
         p->category != UTF8PROC_CATEGORY_ME;
}

bool nfc_quick_check(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0xCC) {  // below U+0300, or a continuation byte
      ++i;
      continue;
    }
    size_t at = i;
    uint32_t cp = decode_cp(s, i);
    if (cp == 0xFFFD && !(i - at == 3)) return false;  // invalid bytes: let the normaliser decide
    if (!nfc_inert_cp(cp)) return false;
  }
  return true;
}

// NFC of s, normalising only the stretches that need it. A text can be cut before any inert code
// point (nothing combines with what precedes it), so each run of non-inert code points is
// normalised together with the one code point before it, and the rest is copied.
std::string nfc_fast(std::string_view s, bool* changed) {
  std::string out;
  out.reserve(s.size());
  size_t copied = 0, prev = 0;  // prev: start of the previous code point
  *changed = false;
  for (size_t i = 0; i < s.size();) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0xCC) {  // below U+0300 (or a continuation byte): inert
      if ((b & 0xC0) != 0x80) prev = i;
      ++i;
      continue;
    }
    size_t at = i;
    uint32_t cp = decode_cp(s, i);
    if (nfc_inert_cp(cp) && !(cp == 0xFFFD && i - at != 3)) {
      prev = at;
      continue;
    }
    // A run of non-inert code points from `at`, with the code point before it.
    size_t begin = at > 0 ? prev : at, end = i;
    while (end < s.size()) {
      size_t j = end;
      uint32_t c = decode_cp(s, j);
      if (nfc_inert_cp(c) && !(c == 0xFFFD && j - end != 3)) break;
      end = j;
    }
    begin = std::max(begin, copied);
    out.append(s.substr(copied, begin - copied));
    std::string n = nfc_normalize(s.substr(begin, end - begin));
    if (n != s.substr(begin, end - begin)) *changed = true;
    out += n;
    copied = end;
    i = end;
    prev = end;
  }
  out.append(s.substr(copied));
  return out;
}

}  // namespace data

namespace {

// Bytes below 0xC0 that the character pass may change: C0 controls other than \n and \t (\r
// included) and DEL. Continuation bytes (0x80-0xBF) never start a code point.
struct AsciiChange {
  bool k[0xC0];
  constexpr AsciiChange() : k() {
    for (int c = 0; c < 0x20; ++c) k[c] = c != '\n' && c != '\t';
    k[0x7F] = true;
  }
};
constexpr AsciiChange kAsciiChange;

// What clean_text's normaliser and character pass would find, in one scan over the bytes: most
// documents are NFC already and hold no controls or odd spaces, and the scan is several times
// cheaper than decoding and copying them. Both answers err only towards "maybe": `nfc` is exact
// after nfc_quick_check, and `chars` false means the character pass would copy the text as is.
//
// Every position holding a lead byte is decoded (not only those a left-to-right decode would
// reach), so stray invalid bytes cannot hide a code point that a pass aligned differently sees.
struct CleanScan {
  bool nfc = false;    // some code point may need normalisation
  bool chars = false;  // some code point is a control, \r or a Unicode space
};

CleanScan scan_clean(std::string_view text) {
  CleanScan r;
  const size_t n = text.size();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < n) {
#if defined(__SSE2__)
    // Sixteen bytes at a time while they are printable ASCII, '\n' or '\t' (nothing to see).
    if (n - i >= 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      __m128i odd = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),  // signed: bytes >= 0x80 too
                                 _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)));
      __m128i fine = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t')));
      unsigned mask = unsigned(_mm_movemask_epi8(_mm_andnot_si128(fine, odd)));
      if (mask == 0) {
        i += 16;
        continue;
      }
      i += size_t(__builtin_ctz(mask));
    }
#endif
    unsigned char b = p[i];
    if (b < 0xC0) {
      r.chars |= kAsciiChange.k[b];
      ++i;
      continue;
    }
    // A Hangul syllable (U+AC00-U+D7A3), most of Korean text: inert, neither control nor space,
    // and its two continuation bytes are nothing to the scan either.
    if (b >= 0xEA && b <= 0xED && n - i >= 3 && (p[i + 1] & 0xC0) == 0x80 && (p[i + 2] & 0xC0) == 0x80) {
      uint32_t cp = uint32_t(b & 0x0F) << 12 | uint32_t(p[i + 1] & 0x3F) << 6 | uint32_t(p[i + 2] & 0x3F);
      if (cp >= 0xAC00 && cp <= 0xD7A3) {
        i += 3;
        continue;
      }
    }
    // Another lead byte. Only these can start a control or space the character pass removes
    // (C0/C1 include overlong forms of ASCII controls, F0-FF anything decode_cp makes of them),
    // and only those from 0xCC (U+0300) on can start a code point that is not NFC-inert.
    bool nfc_lead = b >= 0xCC && !r.nfc;
    bool char_lead = !r.chars && (b <= 0xC2 || b == 0xE0 || b == 0xE1 || b == 0xE2 || b == 0xE3 || b == 0xEF || b >= 0xF0);
    if (nfc_lead || char_lead) {
      size_t j = i;
      uint32_t cp = data::decode_cp(text, j);
      if (nfc_lead && (!data::nfc_inert_cp(cp) || (cp == 0xFFFD && j - i != 3))) r.nfc = true;
      if (char_lead && (removable_control(cp) || unicode_space(cp))) r.chars = true;
      if (r.nfc && r.chars) break;
    }
    ++i;
  }
  return r;
}

}  // namespace

std::string clean_text(std::string_view text, const CleanOptions& opt, CleanCounts* counts, const BoilerplateSet* boiler) {
  // Boilerplate lines go first, matched on the raw line (trimmed) as the counting pass saw it.
  std::string unboiled;
  bool boil = false;
  if (boiler && !boiler->lines.empty()) {
    size_t copied = 0;
    for_boiler_lines(text, opt.boilerplate_min_chars, [&](size_t b, size_t e, uint64_t h) {
      if (!boiler->contains(h)) return;
      unboiled.append(text.substr(copied, b - copied));
      copied = std::min(text.size(), e + 1);
      boil = true;
    });
    if (boil) {
      unboiled.append(text.substr(copied));
      text = unboiled;
    }
  }
  CleanScan scan = scan_clean(text);
  std::string buf;
  if (opt.nfc && scan.nfc && !data::nfc_quick_check(text)) {
    bool changed;
    buf = data::nfc_fast(text, &changed);
    if (counts && changed) counts->nfc += 1;
    text = buf;
    scan.chars = true;  // the scan saw the text before normalisation
  }
  // Character pass: controls, spaces, line ends. Skipped when the scan found nothing it changes.
  std::string s;
  bool ctl = false, sp = false, cr = false;
  if (scan.chars) s.reserve(text.size());
  for (size_t i = 0; scan.chars && i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {  // printable ASCII: the common case
      size_t j = i + 1;
      while (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x20 && static_cast<unsigned char>(text[j]) < 0x7F) ++j;
      s.append(text.data() + i, j - i);
      i = j;
      continue;
    }
    size_t start = i;
    uint32_t cp = data::decode_cp(text, i);
    if (cp == '\r') {
      if (opt.trailing_space) {
        if (!(i < text.size() && text[i] == '\n')) s.push_back('\n');
        cr = true;
        continue;
      }
    } else if (opt.control_chars && removable_control(cp)) {
      ctl = true;
      continue;
    } else if (opt.unicode_spaces && unicode_space(cp)) {
      s.push_back(' ');
      sp = true;
      continue;
    }
    s.append(text.data() + start, i - start);
  }
  // Line pass: trailing spaces, runs of spaces, blank lines, boilerplate.
  std::string_view sv = scan.chars ? std::string_view(s) : text;
  std::string out;
  out.reserve(sv.size());
  bool trail = cr, blanks = false;
  int blank_run = 0;
  for (size_t pos = 0; pos <= sv.size();) {
    size_t eol = sv.find('\n', pos);
    if (eol == std::string_view::npos) eol = sv.size();
    std::string_view line = sv.substr(pos, eol - pos);
    pos = eol + 1;
    if (opt.trailing_space) {
      size_t end = data::last_not(line, data::space_or_tab);
      size_t keep = end == std::string_view::npos ? 0 : end + 1;
      if (keep != line.size()) trail = true, line = line.substr(0, keep);
    }
    if (trim(line).empty()) {
      if (out.empty()) continue;  // leading blank lines
      ++blank_run;
      continue;
    }
    if (blank_run > 0) {
      int keep = std::min(blank_run, std::max(0, opt.max_blank_lines));
      if (keep < blank_run) blanks = true;
      out.append(size_t(keep) + 1, '\n');
      blank_run = 0;
    } else if (!out.empty()) {
      out.push_back('\n');
    }
    if (opt.collapse_spaces) {
      size_t before = out.size();
      bool in_space = false;
      for (char c : line) {
        if (c == ' ' || c == '\t') {
          if (!in_space) out.push_back(' ');
          in_space = true;
        } else {
          out.push_back(c);
          in_space = false;
        }
      }
      if (out.size() - before != line.size()) sp = true;
    } else {
      out.append(line);
    }
    if (pos > sv.size()) break;
  }
  if (counts) {
    counts->control += ctl;
    counts->spaces += sp;
    counts->trailing += trail;
    counts->blank_lines += blanks;
    counts->boilerplate += boil;
  }
  return out;
}

std::string data::options_json(const CleanOptions& o) {
  ojson j;
  j["nfc"] = o.nfc;
  j["control_chars"] = o.control_chars;
  j["unicode_spaces"] = o.unicode_spaces;
  j["trailing_space"] = o.trailing_space;
  j["collapse_spaces"] = o.collapse_spaces;
  j["max_blank_lines"] = o.max_blank_lines;
  j["boilerplate_min_docs"] = o.boilerplate_min_docs;
  j["boilerplate_min_chars"] = o.boilerplate_min_chars;
  j["boilerplate_max_lines"] = o.boilerplate_max_lines;
  return j.dump();
}

// Line hash -> number of documents holding the line. Open addressing: the node-based
// std::unordered_map spent more time allocating nodes than counting. Slot key 0 means empty, so
// a line hashing to 0 is counted aside.
class LineCounts {
 public:
  void add(uint64_t h) {
    if (h == 0) {
      ++zero_;
      return;
    }
    if (2 * (used_ + 1) > keys_.size()) grow();
    size_t i = slot(h);
    if (keys_[i] == 0) keys_[i] = h, ++used_;
    ++counts_[i];
  }
  size_t size() const { return used_ + (zero_ > 0); }
  template <typename F>
  void for_each(F&& fn) const {
    if (zero_ > 0) fn(uint64_t(0), zero_);
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != 0) fn(keys_[i], counts_[i]);
  }
  // Forgets the lines seen only once (when the table outgrows its bound).
  void prune() {
    LineCounts kept;
    kept.zero_ = zero_ >= 2 ? zero_ : 0;
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != 0 && counts_[i] >= 2) kept.insert(keys_[i], counts_[i]);
    *this = std::move(kept);
  }

 private:
  size_t slot(uint64_t h) const {  // h is a hash already: its low bits are as good as any
    size_t mask = keys_.size() - 1, i = size_t(h) & mask;
    while (keys_[i] != 0 && keys_[i] != h) i = (i + 1) & mask;
    return i;
  }
  void insert(uint64_t h, uint32_t n) {
    if (2 * (used_ + 1) > keys_.size()) grow();
    size_t i = slot(h);
    keys_[i] = h, counts_[i] = n, ++used_;
  }
  void grow() {
    std::vector<uint64_t> keys = std::move(keys_);
    std::vector<uint32_t> counts = std::move(counts_);
    keys_.assign(std::max<size_t>(1024, 2 * keys.size()), 0);
    counts_.assign(keys_.size(), 0);
    used_ = 0;
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] != 0) insert(keys[i], counts[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> counts_;
  size_t used_ = 0;
  uint32_t zero_ = 0;
};

// Counts in how many documents each (cleaned) line occurs. The table is merged in input order and
// pruned of lines seen once when it outgrows its bound, so the result does not depend on threads.
static BoilerplateSet find_boilerplate(const std::vector<data::InputFile>& files, const InputOptions& in,
                                       const CleanOptions& opt, const CommonOptions& co, uint64_t* distinct) {
  using namespace data;
  LineCounts counts;
  for_each_chunk(
      files, in, co.threads, co.progress, "clean: counting lines",
      [&](ChunkDocs& cd) {
        std::vector<uint64_t> doc_lines;
        for (const Doc& d : cd.docs) {
          doc_lines.clear();
          for_boiler_lines(d.text, opt.boilerplate_min_chars, [&](size_t, size_t, uint64_t h) { doc_lines.push_back(h); });
          std::sort(doc_lines.begin(), doc_lines.end());
          doc_lines.erase(std::unique(doc_lines.begin(), doc_lines.end()), doc_lines.end());
          cd.aux.insert(cd.aux.end(), doc_lines.begin(), doc_lines.end());
        }
        cd.docs.clear();
      },
      [&](ChunkDocs& cd) {
        for (uint64_t h : cd.aux) counts.add(h);
        if (counts.size() > opt.boilerplate_max_lines) counts.prune();
      });
  BoilerplateSet set;
  counts.for_each([&](uint64_t h, uint32_t n) {
    if (n >= opt.boilerplate_min_docs) set.lines.push_back(h);
  });
  std::sort(set.lines.begin(), set.lines.end());
  *distinct = counts.size();
  return set;
}

StageReport run_clean(const InputOptions& in, const CleanOptions& opt, const CommonOptions& co) {
  using namespace data;
  auto t0 = std::chrono::steady_clock::now();
  BoilerplateSet boiler;
  uint64_t distinct = 0;
  if (opt.boilerplate_min_docs > 0) {
    std::vector<InputFile> files = resolve_inputs(in);
    prepare_output_dir(co.output, files, in);
    boiler = find_boilerplate(files, in, opt, co, &distinct);
  }
  StageReport r = run_map_stage("clean", in, co, with_input(in, options_json(opt)), [&](std::vector<Doc>& docs, StageReport& rep) {
    CleanCounts c;
    size_t kept = 0;
    for (Doc& d : docs) {
      d.text = clean_text(d.text, opt, &c, &boiler);
      if (d.text.empty()) {
        rep.counts["dropped.empty"] += 1;
        continue;
      }
      if (&docs[kept] != &d) docs[kept] = std::move(d);
      ++kept;
    }
    docs.resize(kept);
    rep.counts["changed.nfc"] += c.nfc;
    rep.counts["changed.control_chars"] += c.control;
    rep.counts["changed.spaces"] += c.spaces;
    rep.counts["changed.trailing_space"] += c.trailing;
    rep.counts["changed.blank_lines"] += c.blank_lines;
    rep.counts["changed.boilerplate"] += c.boilerplate;
  });
  if (opt.boilerplate_min_docs > 0) {
    // Rewrite the report with the first pass's figures and total time.
    r.extra = ojson{{"boilerplate_lines", boiler.lines.size()}, {"distinct_lines_counted", distinct}}.dump();
    r.seconds = seconds_since(t0);
    if (data::lead()) write_file_atomic(co.output + "/report.json", report_to_json(r));  // one writer under MPI
  }
  return r;
}

}  // namespace todae
