// clean: NFC, control characters, Unicode spaces, line ends, blank lines, boilerplate lines.
#include <unordered_map>
#include <unordered_set>
#include <utf8proc.h>

#include "data/data_impl.h"
#include "data/json_util.h"
#include "text/text.h"

namespace todae {

struct BoilerplateSet {
  std::unordered_set<uint64_t> lines;
};

namespace {

inline bool removable_control(uint32_t cp) {
  return (cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x200B ||
         cp == 0xFEFF || cp == 0xAD || cp == 0x2060;
}

inline bool unicode_space(uint32_t cp) {
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t count_cps(std::string_view s) { return data::count_code_points(s); }

std::string_view trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

uint64_t line_hash(std::string_view line) { return data::xxh64(trim(line), 0xb011e4b1a7eull); }

// Calls fn(begin, end, hash) for each line of the raw text long enough to count as boilerplate.
template <typename F>
void for_boiler_lines(std::string_view text, int min_chars, F&& fn) {
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = trim(text.substr(pos, eol - pos));
    if (!line.empty() && count_cps(line) >= size_t(min_chars)) fn(pos, eol, line_hash(line));
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

std::string clean_text(std::string_view text, const CleanOptions& opt, CleanCounts* counts, const BoilerplateSet* boiler) {
  // Boilerplate lines go first, matched on the raw line (trimmed) as the counting pass saw it.
  std::string unboiled;
  bool boil = false;
  if (boiler && !boiler->lines.empty()) {
    size_t copied = 0;
    for_boiler_lines(text, opt.boilerplate_min_chars, [&](size_t b, size_t e, uint64_t h) {
      if (!boiler->lines.count(h)) return;
      unboiled.append(text.substr(copied, b - copied));
      copied = std::min(text.size(), e + 1);
      boil = true;
    });
    if (boil) {
      unboiled.append(text.substr(copied));
      text = unboiled;
    }
  }
  std::string buf;
  if (opt.nfc && !data::nfc_quick_check(text)) {
    bool changed;
    buf = data::nfc_fast(text, &changed);
    if (counts && changed) counts->nfc += 1;
    text = buf;
  }
  // Character pass: controls, spaces, line ends.
  std::string s;
  s.reserve(text.size());
  bool ctl = false, sp = false, cr = false;
  for (size_t i = 0; i < text.size();) {
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
  std::string out;
  out.reserve(s.size());
  bool trail = cr, blanks = false;
  int blank_run = 0;
  std::string_view sv = s;
  for (size_t pos = 0; pos <= sv.size();) {
    size_t eol = sv.find('\n', pos);
    if (eol == std::string_view::npos) eol = sv.size();
    std::string_view line = sv.substr(pos, eol - pos);
    pos = eol + 1;
    if (opt.trailing_space) {
      size_t end = line.find_last_not_of(" \t");
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

// Counts in how many documents each (cleaned) line occurs. The table is merged in input order and
// pruned of lines seen once when it outgrows its bound, so the result does not depend on threads.
static BoilerplateSet find_boilerplate(const std::vector<data::InputFile>& files, const InputOptions& in,
                                       const CleanOptions& opt, const CommonOptions& co, uint64_t* distinct) {
  using namespace data;
  std::unordered_map<uint64_t, uint32_t> counts;
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
        for (uint64_t h : cd.aux) ++counts[h];
        if (counts.size() > opt.boilerplate_max_lines) std::erase_if(counts, [](const auto& kv) { return kv.second < 2; });
      });
  BoilerplateSet set;
  for (auto& [h, n] : counts)
    if (n >= opt.boilerplate_min_docs) set.lines.insert(h);
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
    write_file_atomic(co.output + "/report.json", report_to_json(r));
  }
  return r;
}

}  // namespace todae
