// pii: e-mail addresses, phone numbers (Korean and international), resident registration numbers
// (주민등록번호, checksum-validated), card numbers (Luhn) and IP addresses become typed placeholders.
//
// Hand-written matchers rather than regular expressions: each pattern needs validation a regex
// cannot do (dates, checksums, octet ranges), and one pass over the bytes is fast.
#include <algorithm>
#include <cstring>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

namespace {

inline bool digit(char c) { return c >= '0' && c <= '9'; }
inline bool alpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool alnum(char c) { return digit(c) || alpha(c); }
inline bool hexd(char c) { return digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

enum Type { kEmail, kPhone, kRrn, kCard, kIp };
const char* kPlaceholder[] = {"[EMAIL]", "[PHONE]", "[RRN]", "[CARD]", "[IP]"};

struct Match {
  size_t begin, end;
  Type type;
};

// ---- e-mail -------------------------------------------------------------------------------------

inline bool local_char(char c) { return alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }

bool match_email(std::string_view s, size_t at, Match* m) {
  size_t b = at;
  while (b > 0 && local_char(s[b - 1])) --b;
  while (b < at && (s[b] == '.' || s[b] == '-' || s[b] == '+')) ++b;  // a local part starts with a letter or digit
  if (b == at) return false;
  size_t e = at + 1, last_dot = 0, labels = 0;
  size_t label_start = e;
  while (e < s.size() && (alnum(s[e]) || s[e] == '-' || s[e] == '.')) {
    if (s[e] == '.') {
      if (e == label_start) break;  // empty label
      last_dot = e;
      ++labels;
      label_start = e + 1;
    }
    ++e;
  }
  while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-')) --e;  // a sentence's full stop
  if (last_dot == 0 || last_dot >= e) {
    // Recompute the last dot inside the trimmed domain.
    last_dot = 0;
    for (size_t k = at + 1; k < e; ++k)
      if (s[k] == '.') last_dot = k;
  }
  if (last_dot == 0 || labels == 0) return false;
  size_t tld = e - last_dot - 1;
  if (tld < 2 || tld > 24) return false;
  for (size_t k = last_dot + 1; k < e; ++k)
    if (!alpha(s[k])) return false;
  *m = {b, e, kEmail};
  return true;
}

// ---- numbers ------------------------------------------------------------------------------------

// A vector of at most N elements in place: the matchers below run at every number in the text,
// and heap-allocated vectors there cost more than the matching itself.
template <typename T, size_t N>
struct SmallVec {
  T v[N] = {};
  size_t n = 0;
  void push_back(const T& x) { v[n++] = x; }
  void resize(size_t m) { n = m; }  // only ever shrinks
  size_t size() const { return n; }
  bool empty() const { return n == 0; }
  const T& back() const { return v[n - 1]; }
  const T& operator[](size_t i) const { return v[i]; }
  const T* begin() const { return v; }
  const T* end() const { return v + n; }
};

// Digit groups from `at`: groups of digits joined by one separator each ('-', '.', ' '), all the
// same separator, optionally "(0XX) " first. Stops before anything else. At most 6 groups.
constexpr size_t kMaxGroups = 6;
struct Groups {
  SmallVec<std::string_view, kMaxGroups> g;
  SmallVec<size_t, kMaxGroups> ends;  // end of each group
  char sep = 0;
  size_t end = 0;
  bool paren = false;
  // The first m groups only (a number followed by another one after a space).
  Groups prefix(size_t m) const {
    Groups r = *this;
    r.g.resize(m);
    r.ends.resize(m);
    r.end = m ? ends[m - 1] : 0;
    if (m <= size_t(paren ? 2 : 1)) r.sep = 0;
    return r;
  }
};

Groups read_groups(std::string_view s, size_t at, size_t max_groups = kMaxGroups) {
  Groups r;
  size_t i = at;
  if (i < s.size() && s[i] == '(') {
    size_t j = i + 1;
    while (j < s.size() && digit(s[j])) ++j;
    if (j < s.size() && s[j] == ')' && j - i - 1 >= 2 && j - i - 1 <= 4) {
      r.g.push_back(s.substr(i + 1, j - i - 1));
      r.paren = true;
      i = j + 1;
      r.end = i;
      r.ends.push_back(i);
      if (i < s.size() && (s[i] == ' ' || s[i] == '-')) ++i;
    } else {
      return r;
    }
  }
  while (i < s.size() && digit(s[i]) && r.g.size() < max_groups) {
    size_t j = i;
    while (j < s.size() && digit(s[j])) ++j;
    r.g.push_back(s.substr(i, j - i));
    r.end = j;
    r.ends.push_back(j);
    if (j + 1 < s.size() && (s[j] == '-' || s[j] == '.' || s[j] == ' ') && digit(s[j + 1]) &&
        (r.sep == 0 || r.sep == s[j])) {
      r.sep = s[j];
      i = j + 1;
    } else {
      break;
    }
  }
  return r;
}

// The number must not run on into more digits or letters ("880101-1234567-89", "1.2.3.4.5").
bool right_boundary(std::string_view s, size_t e) {
  if (e >= s.size()) return true;
  if (alnum(s[e])) return false;
  if ((s[e] == '-' || s[e] == '.') && e + 1 < s.size() && alnum(s[e + 1])) return false;
  return true;
}

bool left_boundary(std::string_view s, size_t b) {
  if (b == 0) return true;
  char p = s[b - 1];
  if (alnum(p) || p == '_') return false;
  // Part of a longer code: "AB-880101-1234567", "v1.2.3.4".
  if ((p == '-' || p == '.' || p == '/') && b >= 2 && alnum(s[b - 2])) return false;
  return true;
}

int days_in_month(int m) {
  static const int d[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return d[m - 1];
}

}  // namespace

bool valid_rrn(std::string_view d) {
  if (d.size() != 13) return false;
  for (char c : d)
    if (!digit(c)) return false;
  int mm = (d[2] - '0') * 10 + (d[3] - '0'), dd = (d[4] - '0') * 10 + (d[5] - '0');
  if (mm < 1 || mm > 12 || dd < 1 || dd > days_in_month(mm)) return false;
  int g = d[6] - '0';
  if (g < 1 || g > 8) return false;
  static const int w[] = {2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5};
  int sum = 0;
  for (int i = 0; i < 12; ++i) sum += (d[size_t(i)] - '0') * w[i];
  int check = d[12] - '0';
  if ((11 - sum % 11) % 10 == check) return true;
  // Foreigners' registration numbers (gender digit 5-8) used (13 - sum % 11) % 10.
  return g >= 5 && (13 - sum % 11) % 10 == check;
}

bool luhn_valid(std::string_view d) {
  if (d.empty()) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t i = d.size(); i-- > 0;) {
    if (!digit(d[i])) return false;
    int v = d[i] - '0';
    if (dbl) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
    sum += v;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

namespace {

bool rrn_date_gender(std::string_view d) {
  int mm = (d[2] - '0') * 10 + (d[3] - '0'), dd = (d[4] - '0') * 10 + (d[5] - '0');
  int g = d[6] - '0';
  return mm >= 1 && mm <= 12 && dd >= 1 && dd <= days_in_month(mm) && g >= 1 && g <= 8;
}

bool match_rrn(std::string_view s, size_t at, const PiiOptions& opt, Match* m) {
  // YYMMDD-GNNNNNN (the hyphen is required: 13 bare digits are as often barcodes, e.g. EAN-13).
  if (at + 14 > s.size() || s[at + 6] != '-') return false;
  for (size_t k = 0; k < 14; ++k)
    if (k != 6 && !digit(s[at + k])) return false;
  if (!right_boundary(s, at + 14)) return false;
  char buf[13];  // the 13 digits without the hyphen
  std::memcpy(buf, s.data() + at, 6);
  std::memcpy(buf + 6, s.data() + at + 7, 7);
  std::string_view d(buf, 13);
  if (!(opt.rrn_require_checksum ? valid_rrn(d) : rrn_date_gender(d))) return false;
  *m = {at, at + 14, kRrn};
  return true;
}

bool card_groups(std::string_view s, size_t at, const Groups& gr, Match* m) {
  if (gr.paren || gr.g.empty() || gr.sep == '.') return false;
  size_t total = 0;
  for (auto g : gr.g) total += g.size();
  if (total < 13 || total > 19) return false;
  char buf[19];  // the digits without separators, on the stack
  size_t len = 0;
  for (auto g : gr.g) std::memcpy(buf + len, g.data(), g.size()), len += g.size();
  std::string_view d(buf, len);
  if (gr.g.size() > 1) {
    // Printed card numbers come in groups of 4 (Amex 4-6-5).
    bool fours = true;
    for (size_t i = 0; i + 1 < gr.g.size(); ++i) fours &= gr.g[i].size() == 4;
    bool amex = gr.g.size() == 3 && gr.g[0].size() == 4 && gr.g[1].size() == 6 && gr.g[2].size() == 5;
    if (!(fours && gr.g.back().size() >= 1 && gr.g.back().size() <= 4) && !amex) return false;
  }
  if (d[0] < '2' || d[0] > '6') return false;  // Mastercard 2/5, Amex/JCB/Diners 3, Visa 4, Discover/UnionPay 6
  if (!luhn_valid(d) || !right_boundary(s, gr.end)) return false;
  *m = {at, gr.end, kCard};
  return true;
}

bool match_card(std::string_view s, size_t at, Match* m) {
  Groups gr = read_groups(s, at, 5);
  for (size_t k = gr.g.size(); k >= 1; --k)
    if (card_groups(s, at, gr.prefix(k), m)) return true;
  return false;
}

bool all_digits_len(std::string_view g, size_t lo, size_t hi) { return g.size() >= lo && g.size() <= hi; }

bool korean_prefix(std::string_view p) {
  // 010/011/016-019 mobile, 02 Seoul, 0[3-6][1-5] regions, 070 VoIP, 050X personal, 080 toll-free.
  if (p == "02") return true;
  if (p.size() == 3 && p[0] == '0') {
    if (p[1] == '1') return p[2] == '0' || p[2] == '1' || (p[2] >= '6' && p[2] <= '9');
    if (p[1] >= '3' && p[1] <= '6') return p[2] >= '1' && p[2] <= '5';
    return p == "070" || p == "080";
  }
  return p.size() == 4 && p.substr(0, 3) == "050";
}

bool phone_groups(std::string_view s, size_t at, bool plus, const Groups& gr, Match* m) {
  if (gr.g.empty() || !right_boundary(s, gr.end)) return false;
  auto& g = gr.g;
  size_t total = 0;
  for (auto x : g) total += x.size();
  bool ok = false;
  if (plus) {
    // +82 10 1234 5678, +82-2-123-4567, +1 650 253 0000: a country code, then 7-12 digits in groups.
    if (g.size() >= 3 && g[0].size() <= 3 && total - g[0].size() >= 7 && total - g[0].size() <= 12) ok = true;
    if (g.size() == 1 && total >= 9 && total <= 15 && (g[0].substr(0, 2) == "82" || g[0][0] == '1')) ok = true;
  } else if (g.size() == 3 && (gr.sep != 0 || gr.paren)) {
    // 010-1234-5678, 02-123-4567, (031) 123-4567, 650-253-0000.
    if (korean_prefix(g[0]) && all_digits_len(g[1], 3, 4) && g[2].size() == 4) ok = true;
    if (g[0].size() == 3 && g[0][0] >= '2' && g[0][0] <= '9' && g[1].size() == 3 && g[2].size() == 4 && gr.sep != '.')
      ok = true;  // North American numbers
  } else if (g.size() == 2 && gr.sep == '-') {
    // 1588-1234: nationwide representative numbers.
    if (g[0].size() == 4 && g[1].size() == 4 && g[0][0] == '1' && (g[0][1] == '5' || g[0][1] == '6' || g[0][1] == '8'))
      ok = true;
  } else if (g.size() == 1) {
    // 01012345678: mobile numbers written without separators.
    if ((total == 10 || total == 11) && g[0].substr(0, 2) == "01" && korean_prefix(g[0].substr(0, 3))) ok = true;
  }
  if (!ok) return false;
  *m = {at, gr.end, kPhone};
  return true;
}

bool match_phone(std::string_view s, size_t at, Match* m) {
  bool plus = s[at] == '+';
  Groups gr = read_groups(s, plus ? at + 1 : at, 6);
  for (size_t k = gr.g.size(); k >= 1; --k)
    if (phone_groups(s, at, plus, gr.prefix(k), m)) return true;
  return false;
}

bool octet(std::string_view g) {
  if (g.empty() || g.size() > 3 || (g.size() > 1 && g[0] == '0')) return false;
  int v = 0;
  for (char c : g) v = v * 10 + (c - '0');
  return v <= 255;
}

bool match_ipv4(std::string_view s, size_t at, Match* m) {
  Groups gr = read_groups(s, at, 5);
  if (gr.sep != '.' || gr.g.size() != 4 || !right_boundary(s, gr.end)) return false;
  for (auto g : gr.g)
    if (!octet(g)) return false;
  *m = {at, gr.end, kIp};
  return true;
}

bool match_ipv6(std::string_view s, size_t at, Match* m) {
  size_t i = at, groups = 0, colons = 0, hexdigits = 0;
  bool dbl = false;
  size_t end = at;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && hexd(s[j]) && j - i < 5) ++j;
    if (j - i > 4) return false;
    if (j > i) {
      ++groups;
      hexdigits += j - i;
      end = j;
    }
    if (j < s.size() && s[j] == ':') {
      if (j + 1 < s.size() && s[j + 1] == ':') {
        if (dbl) return false;
        dbl = true;
        colons += 2;
        end = j + 2;
        i = j + 2;
      } else {
        if (j == i && !(j > at && s[j - 1] == ':')) return false;
        ++colons;
        i = j + 1;
      }
      continue;
    }
    break;
  }
  if (end < s.size() && (alnum(s[end]) || s[end] == ':' || (s[end] == '.' && end + 1 < s.size() && alnum(s[end + 1]))))
    return false;
  if (s[end - 1] == ':' && !(end >= 2 && s[end - 2] == ':')) --end;  // "at fe80::1:" a trailing colon is prose
  if (!(dbl ? groups >= 2 && groups <= 7 : groups == 8) || hexdigits < 4) return false;
  (void)colons;
  *m = {at, end, kIp};
  return true;
}

}  // namespace

namespace {

// Bytes that may start a match: digits, '+' and '(' (phone numbers), hex letters (IPv6); and the
// bytes after which nothing starts (left_boundary): letters, digits and '_'.
enum : uint8_t { kStartDigit = 1, kStartSign = 2, kStartHex = 4, kWordChar = 8 };
struct StartBytes {
  uint8_t k[256];
  constexpr StartBytes() : k() {
    for (int c = '0'; c <= '9'; ++c) k[c] = kStartDigit | kWordChar;
    k[int('+')] = k[int('(')] = kStartSign;
    for (int c = 'a'; c <= 'z'; ++c) k[c] = k[c - 'a' + 'A'] = (c <= 'f' ? kStartHex : 0) | kWordChar;
    k[int('_')] = kWordChar;
  }
};
constexpr StartBytes kStartBytes;

// Writes the scrubbed text to *out and returns true when anything was found; returns false and
// leaves *out alone otherwise, so the stage does not copy the (many) documents without PII.
bool scrub_into(std::string_view s, const PiiOptions& opt, PiiCounts* counts, std::string* out_text) {
  std::vector<Match> found;
  // E-mail first (they contain digits and dots that the number matchers must not see).
  if (opt.email) {
    size_t at = 0, last_end = 0;
    while ((at = s.find('@', at)) != std::string_view::npos) {
      Match m;
      if (match_email(s, at, &m) && m.begin >= last_end) {
        found.push_back(m);
        last_end = m.end;
        at = m.end;
      } else {
        ++at;
      }
    }
  }
  size_t e = 0;  // index into the e-mail matches
  std::vector<Match> numbers;
  const uint8_t may_start = kStartDigit | kStartSign | (opt.ip ? kStartHex : 0);
  for (size_t i = 0; i < s.size();) {
    // Most bytes cannot start a match: letters past 'f', spaces, Hangul, and anything right after
    // a letter, digit or '_' (left_boundary). One look-up each.
    bool after_word = i > 0 && (kStartBytes.k[static_cast<unsigned char>(s[i - 1])] & kWordChar);
    while (i < s.size()) {
      uint8_t k = kStartBytes.k[static_cast<unsigned char>(s[i])];
      if ((k & may_start) && !after_word) break;
      after_word = k & kWordChar;
      ++i;
    }
    if (i >= s.size()) break;
    char c = s[i];
    bool start = digit(c) || (c == '+' && i + 1 < s.size() && digit(s[i + 1])) || (c == '(' && i + 1 < s.size() && digit(s[i + 1])) ||
                 (opt.ip && hexd(c));
    if (!start || !left_boundary(s, i)) {
      // Nothing starts inside a run of letters and digits (left_boundary): skip the rest of it.
      bool word = alnum(c);
      ++i;
      while (word && i < s.size() && alnum(s[i])) ++i;
      continue;
    }
    while (e < found.size() && found[e].end <= i) ++e;
    if (e < found.size() && found[e].begin <= i) {
      i = found[e].end;
      continue;
    }
    Match m;
    bool hit = false;
    if (digit(c)) {
      hit = (opt.rrn && match_rrn(s, i, opt, &m)) || (opt.card && match_card(s, i, &m)) ||
            (opt.phone && match_phone(s, i, &m)) || (opt.ip && match_ipv4(s, i, &m));
    } else if (c == '+' || c == '(') {
      hit = opt.phone && match_phone(s, i, &m);
    }
    if (!hit && opt.ip && hexd(c)) hit = match_ipv6(s, i, &m);
    if (hit && e < found.size() && m.end > found[e].begin) hit = false;  // would run into an e-mail
    if (hit) {
      numbers.push_back(m);
      i = m.end;
      continue;
    }
    // Skip the rest of this token so that a match cannot start inside it ("x880101-...").
    ++i;
    while (i < s.size() && alnum(s[i])) ++i;
  }
  found.insert(found.end(), numbers.begin(), numbers.end());
  std::sort(found.begin(), found.end(), [](const Match& a, const Match& b) { return a.begin < b.begin; });
  if (found.empty()) return false;
  std::string& out = *out_text;
  out.clear();
  out.reserve(s.size());
  size_t pos = 0;
  for (const Match& m : found) {
    out.append(s.substr(pos, m.begin - pos));
    out += kPlaceholder[m.type];
    pos = m.end;
    if (counts) {
      uint64_t* c[] = {&counts->email, &counts->phone, &counts->rrn, &counts->card, &counts->ip};
      ++*c[m.type];
    }
  }
  out.append(s.substr(pos));
  return true;
}

}  // namespace

std::string scrub_pii(std::string_view s, const PiiOptions& opt, PiiCounts* counts) {
  std::string out;
  if (!scrub_into(s, opt, counts, &out)) return std::string(s);
  return out;
}

std::string data::options_json(const PiiOptions& o) {
  ojson j;
  j["email"] = o.email;
  j["phone"] = o.phone;
  j["rrn"] = o.rrn;
  j["card"] = o.card;
  j["ip"] = o.ip;
  j["rrn_require_checksum"] = o.rrn_require_checksum;
  return j.dump();
}

StageReport run_pii(const InputOptions& in, const PiiOptions& opt, const CommonOptions& co) {
  return data::run_map_stage("pii", in, co, data::with_input(in, data::options_json(opt)),
                             [&](std::vector<Doc>& docs, StageReport& rep) {
                               PiiCounts c;
                               uint64_t changed = 0;
                               std::string t;
                               for (Doc& d : docs) {
                                 if (scrub_into(d.text, opt, &c, &t)) {
                                   d.text.swap(t);
                                   ++changed;
                                 }
                               }
                               rep.counts["email"] += c.email;
                               rep.counts["phone"] += c.phone;
                               rep.counts["rrn"] += c.rrn;
                               rep.counts["card"] += c.card;
                               rep.counts["ip"] += c.ip;
                               rep.counts["docs_changed"] += changed;
                             });
}

}  // namespace todae
