// The tokenizer pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor,
// and the decoder chain back to text.
#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "base/base.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace todae {

// ---- Trie of added tokens (leftmost-longest matching, as HF's AddedVocabulary) ----------------

void Trie::insert(std::string_view s, int32_t token) {
  int32_t node = 0;
  for (unsigned char c : s) {
    auto& nx = nodes[node].next;
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(uint8_t(c), INT32_MIN));
    if (it != nx.end() && it->first == c) {
      node = it->second;
    } else {
      int32_t fresh = int32_t(nodes.size());
      nx.insert(it, {uint8_t(c), fresh});
      nodes.emplace_back();
      node = fresh;
    }
  }
  if (nodes[node].token < 0) nodes[node].token = token;
}

int32_t Trie::longest(std::string_view text, size_t pos, size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& nx = nodes[node].next;
    uint8_t c = uint8_t(text[i]);
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, INT32_MIN));
    if (it == nx.end() || it->first != c) break;
    node = it->second;
    if (nodes[node].token >= 0) best = nodes[node].token, *len = i + 1 - pos;
  }
  return best;
}

void TokenizerImpl::finish() {
  raw_trie = Trie();
  normalized_trie = Trie();
  int32_t max_id = int32_t(model.tokens.size()) - 1;
  for (const auto& a : added) max_id = std::max(max_id, a.id);
  vocab_size = max_id + 1;
  added_index_of_id.assign(size_t(vocab_size), -1);
  for (size_t i = 0; i < added.size(); ++i) {
    added_index_of_id[size_t(added[i].id)] = int32_t(i);
    if (added[i].content.empty()) continue;
    (added[i].normalized ? normalized_trie : raw_trie).insert(added[i].content, int32_t(i));
  }
  model.index_bytes();
}

// ---- Tokenizer accessors ----------------------------------------------------------------------

int32_t Tokenizer::vocab_size() const { return impl->vocab_size; }

int32_t Tokenizer::token_id(std::string_view token) const {
  for (const auto& a : impl->added)
    if (a.content == token) return a.id;
  if (impl->model.byte_level) {
    std::string bytes;
    if (unicode::bytelevel_to_bytes(token, &bytes)) return impl->model.find(bytes);
    return -1;
  }
  return impl->model.find(token);
}

static bool in_range(const TokenizerImpl& t, int32_t id) { return id >= 0 && id < t.vocab_size; }

std::string Tokenizer::token_text(int32_t id) const {
  if (!in_range(*impl, id)) fail("token id ", id, " is outside the vocabulary (size ", impl->vocab_size, ")");
  int32_t a = impl->added_index_of_id[size_t(id)];
  if (a >= 0) return impl->added[size_t(a)].content;
  if (size_t(id) >= impl->model.tokens.size()) return "";
  const std::string& t = impl->model.tokens[size_t(id)];
  return impl->model.byte_level ? unicode::bytes_to_bytelevel(t) : t;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  std::vector<int32_t> one{id};
  return decode(*this, one, false);
}

bool Tokenizer::is_special(int32_t id) const {
  if (!in_range(*impl, id)) return false;
  int32_t a = impl->added_index_of_id[size_t(id)];
  return a >= 0 && impl->added[size_t(a)].special;
}

// ---- normalisation ----------------------------------------------------------------------------

static void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

static bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static std::string normalize(const TokenizerImpl& t, std::string_view text) {
  std::string s(text);
  for (const auto& n : t.normalizers) {
    switch (n.type) {
      case NormalizerStep::kNFC: s = unicode::nfc(s); break;
      case NormalizerStep::kNFKC: s = unicode::nfkc(s); break;
      case NormalizerStep::kLowercase: s = unicode::lowercase(s); break;
      case NormalizerStep::kReplace: replace_all(s, n.pattern, n.content); break;
      case NormalizerStep::kPrepend:
        if (!s.empty()) s = n.content + s;
        break;
      case NormalizerStep::kStrip: {
        size_t b = 0, e = s.size();
        if (n.left)
          while (b < e && is_ascii_space(s[b])) ++b;
        if (n.right)
          while (e > b && is_ascii_space(s[e - 1])) --e;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

// ---- pre-tokenisation -------------------------------------------------------------------------

// Pieces are owned strings: steps such as Metaspace and ByteLevel's prefix space rewrite them.
using Pieces = std::vector<std::string>;

static void split_parts(const PretokenizerStep& st, const std::string& piece, const std::vector<Span>& matches,
                        Pieces* out) {
  struct Part {
    uint32_t b, e;
    bool delim;
  };
  std::vector<Part> parts;
  uint32_t pos = 0;
  for (const Span& m : matches) {
    if (m.begin > pos) parts.push_back({pos, m.begin, st.invert});
    parts.push_back({m.begin, m.end, !st.invert});
    pos = m.end;
  }
  if (pos < piece.size()) parts.push_back({pos, uint32_t(piece.size()), st.invert});

  std::vector<std::pair<uint32_t, uint32_t>> acc;
  switch (st.behavior) {
    case SplitBehavior::kIsolated:
      for (auto& p : parts) acc.push_back({p.b, p.e});
      break;
    case SplitBehavior::kRemoved:
      for (auto& p : parts)
        if (!p.delim) acc.push_back({p.b, p.e});
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev = false;
      for (auto& p : parts) {
        if (p.delim && !prev && !acc.empty())
          acc.back().second = p.e;
        else
          acc.push_back({p.b, p.e});
        prev = p.delim;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev = false;
      for (size_t k = parts.size(); k-- > 0;) {
        auto& p = parts[k];
        if (p.delim && !prev && !acc.empty())
          acc.back().first = p.b;
        else
          acc.push_back({p.b, p.e});
        prev = p.delim;
      }
      std::reverse(acc.begin(), acc.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev = false;
      for (auto& p : parts) {
        if (p.delim && prev)
          acc.back().second = p.e;
        else
          acc.push_back({p.b, p.e});
        prev = p.delim;
      }
      break;
    }
  }
  for (auto& [b, e] : acc)
    if (e > b) out->push_back(piece.substr(b, e - b));
}

static void find_literal(std::string_view s, const std::string& pat, std::vector<Span>* out) {
  out->clear();
  if (pat.empty()) return;
  for (size_t pos = 0, hit; (hit = s.find(pat, pos)) != std::string_view::npos; pos = hit + pat.size())
    out->push_back({uint32_t(hit), uint32_t(hit + pat.size())});
}

static const Regex& gpt2_regex() {
  static const Regex re = compile_regex(
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "ByteLevel pre-tokenizer");
  return re;
}

// Regex splits need valid UTF-8: invalid byte runs are cut out first and kept as pieces of their own.
static void split_step(const PretokenizerStep& st, const Regex* re, const std::string& piece, Pieces* out) {
  std::vector<Span> matches;
  auto run = [&](const std::string& valid) {
    if (re)
      regex_find_all(*re, valid, &matches);
    else
      find_literal(valid, st.pattern, &matches);
    split_parts(st, valid, matches, out);
  };
  if (unicode::is_valid_utf8(piece)) return run(piece);
  size_t i = 0;
  while (i < piece.size()) {
    size_t start = i;
    uint32_t cp;
    while (i < piece.size()) {
      int n = static_cast<uint8_t>(piece[i]) < 0x80 ? 1 : unicode::decode(piece, i, &cp);
      if (!n) break;
      i += n;
    }
    if (i > start) run(piece.substr(start, i - start));
    start = i;
    while (i < piece.size() && static_cast<uint8_t>(piece[i]) >= 0x80 && !unicode::decode(piece, i, &cp)) ++i;
    if (i > start) out->push_back(piece.substr(start, i - start));
  }
}

static Pieces pretokenize_text(const TokenizerImpl& t, std::string text, bool first_segment) {
  Pieces pieces;
  pieces.push_back(std::move(text));
  Pieces next;
  std::vector<Span> spans;
  for (const auto& st : t.pretokenizers) {
    next.clear();
    for (size_t pi = 0; pi < pieces.size(); ++pi) {
      std::string& piece = pieces[pi];
      switch (st.type) {
        case PretokenizerStep::kKorean:
          pretokenize_korean(piece, st.max_words, &spans);
          for (const Span& s : spans) next.push_back(piece.substr(s.begin, s.end - s.begin));
          break;
        case PretokenizerStep::kSplit:
          split_step(st, st.is_regex ? &st.regex : nullptr, piece, &next);
          break;
        case PretokenizerStep::kByteLevel:
          if (st.add_prefix_space && (piece.empty() || piece[0] != ' ')) piece.insert(0, " ");
          if (st.use_regex) {
            PretokenizerStep iso;
            iso.type = PretokenizerStep::kSplit;
            split_step(iso, &gpt2_regex(), piece, &next);
          } else {
            next.push_back(std::move(piece));
          }
          break;
        case PretokenizerStep::kMetaspace: {
          replace_all(piece, " ", st.replacement);
          bool prepend = st.prepend_scheme == "always" || (st.prepend_scheme == "first" && first_segment && pi == 0);
          if (prepend && piece.compare(0, st.replacement.size(), st.replacement) != 0) piece.insert(0, st.replacement);
          if (st.split) {
            PretokenizerStep mw;
            mw.type = PretokenizerStep::kSplit;
            mw.is_regex = false;
            mw.pattern = st.replacement;
            mw.behavior = SplitBehavior::kMergedWithNext;
            split_step(mw, nullptr, piece, &next);
          } else {
            next.push_back(std::move(piece));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  return pieces;
}

// ---- encode -----------------------------------------------------------------------------------

namespace {

struct Segment {
  std::string_view text;  // when added < 0
  int32_t added = -1;     // index into TokenizerImpl::added
};

// Cuts text at added tokens (leftmost-longest), honouring lstrip/rstrip.
void split_added(const TokenizerImpl& t, const Trie& trie, std::string_view text, std::vector<Segment>* out) {
  out->clear();
  if (trie.nodes[0].next.empty()) {
    out->push_back({text, -1});
    return;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    size_t len = 0;
    int32_t a = trie.nodes[0].next.empty() ? -1 : trie.longest(text, i, &len);
    if (a < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = t.added[size_t(a)];
    size_t seg_end = i;
    if (tok.lstrip)
      while (seg_end > start && is_ascii_space(text[seg_end - 1])) --seg_end;
    if (seg_end > start) out->push_back({text.substr(start, seg_end - start), -1});
    out->push_back({{}, a});
    i += len;
    if (tok.rstrip)
      while (i < text.size() && is_ascii_space(text[i])) ++i;
    start = i;
  }
  if (start < text.size()) out->push_back({text.substr(start), -1});
}

struct PieceCache {
  const TokenizerImpl* owner = nullptr;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

void encode_piece_cached(const TokenizerImpl& t, std::string_view piece, std::vector<int32_t>* out) {
  thread_local PieceCache cache;
  if (cache.owner != &t) {
    cache.map.clear();
    cache.owner = &t;
  }
  if (piece.size() > 48) return bpe_encode_piece(t.model, piece, out);
  auto it = cache.map.find(piece);
  if (it != cache.map.end()) {
    out->insert(out->end(), it->second.begin(), it->second.end());
    return;
  }
  size_t before = out->size();
  bpe_encode_piece(t.model, piece, out);
  if (cache.map.size() > 200000) cache.map.clear();
  cache.map.emplace(std::string(piece), std::vector<int32_t>(out->begin() + long(before), out->end()));
}

// The common shape — one splitting pre-tokenizer, then ByteLevel without its own regex — runs on
// spans of the text without copying pieces.
bool simple_split(const TokenizerImpl& t) {
  if (!t.model.byte_level || t.pretokenizers.empty() || t.pretokenizers.size() > 2) return false;
  const auto& first = t.pretokenizers[0];
  bool splitter = first.type == PretokenizerStep::kKorean ||
                  (first.type == PretokenizerStep::kSplit &&
                   (first.behavior == SplitBehavior::kIsolated || first.behavior == SplitBehavior::kRemoved));
  if (!splitter) return false;
  if (t.pretokenizers.size() == 2) {
    const auto& bl = t.pretokenizers[1];
    if (bl.type != PretokenizerStep::kByteLevel || bl.add_prefix_space || bl.use_regex) return false;
  }
  return true;
}

// A line start after '\n' that begins with a non-space ASCII character (not a quote) is a piece
// boundary for our pre-tokenizer and every GPT-4-style regex: no piece runs from a newline into text.
size_t next_cut(std::string_view text, size_t from) {
  for (size_t pos = from; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos || nl + 1 >= text.size()) return text.size();
    unsigned char c = static_cast<unsigned char>(text[nl + 1]);
    if (c < 0x80 && c > ' ' && c != '\'') return nl + 1;
    pos = nl + 1;
  }
  return text.size();
}

void encode_pieces(const TokenizerImpl& t, std::string_view text, bool first, std::vector<int32_t>* ids) {
  if (!simple_split(t)) {
    for (const std::string& piece : pretokenize_text(t, std::string(text), first)) encode_piece_cached(t, piece, ids);
    return;
  }
  const auto& st = t.pretokenizers[0];
  thread_local std::vector<Span> spans;
  // Blocks of ~64 KB keep the working set in cache and memory bounded on huge inputs.
  for (size_t b = 0; b < text.size();) {
    size_t e = text.size() - b > (96 << 10) ? next_cut(text, b + (64 << 10)) : text.size();
    std::string_view block = text.substr(b, e - b);
    if (st.type == PretokenizerStep::kKorean) {
      pretokenize_korean(block, st.max_words, &spans);
      for (const Span& s : spans) encode_piece_cached(t, block.substr(s.begin, s.end - s.begin), ids);
    } else {
      Pieces pieces;
      split_step(st, &st.regex, std::string(block), &pieces);
      for (const std::string& piece : pieces) encode_piece_cached(t, piece, ids);
    }
    b = e;
  }
}

void encode_text(const TokenizerImpl& t, std::string_view text, bool first, std::vector<int32_t>* ids) {
  std::string norm = t.normalizers.empty() ? std::string() : normalize(t, text);
  std::string_view view = t.normalizers.empty() ? text : std::string_view(norm);
  std::vector<Segment> segs;
  split_added(t, t.normalized_trie, view, &segs);
  for (const Segment& s : segs) {
    if (s.added >= 0) {
      ids->push_back(t.added[size_t(s.added)].id);
      continue;
    }
    encode_pieces(t, s.text, first, ids);
    first = false;
  }
}

}  // namespace

// TemplateProcessing "single": the special tokens around the sequence (e.g. <bos> first).
static void apply_post_processor(const TokenizerImpl& t, std::vector<int32_t>* ids) {
  if (t.post_single.empty()) return;
  std::vector<int32_t> out;
  for (const auto& item : t.post_single) {
    if (item.is_sequence)
      out.insert(out.end(), ids->begin(), ids->end());
    else
      out.insert(out.end(), item.ids.begin(), item.ids.end());
  }
  ids->swap(out);
}

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text, const EncodeOptions& opt) {
  const TokenizerImpl& t = *tok.impl;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<Segment> segs;
  if (opt.split_special)
    split_added(t, t.raw_trie, text, &segs);
  else
    segs.push_back({text, -1});
  bool first = true;
  for (const Segment& s : segs) {
    if (s.added >= 0) {
      ids.push_back(t.added[size_t(s.added)].id);
    } else {
      encode_text(t, s.text, first, &ids);
    }
    first = false;
  }
  if (opt.add_special_tokens) apply_post_processor(t, &ids);
  return ids;
}

std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tok, const std::vector<std::string>& texts,
                                               const EncodeOptions& opt, int threads) {
  std::vector<std::vector<int32_t>> out(texts.size());
  parallel_for(texts.size(), threads > 0 ? threads : default_threads(),
               [&](size_t i) { out[i] = encode(tok, texts[i], opt); });
  return out;
}

std::vector<std::string> pretokenize(const Tokenizer& tok, std::string_view text) {
  const TokenizerImpl& t = *tok.impl;
  return pretokenize_text(t, normalize(t, text), true);
}

// ---- decode -----------------------------------------------------------------------------------

static bool parse_byte_token(const std::string& s, uint8_t* b) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return false;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  int hi = hex(s[3]), lo = hex(s[4]);
  if (hi < 0 || lo < 0) return false;
  *b = uint8_t(hi * 16 + lo);
  return true;
}

std::string decode(const Tokenizer& tok, std::span<const int32_t> ids, bool skip_special) {
  const TokenizerImpl& t = *tok.impl;
  for (int32_t id : ids)
    if (!in_range(t, id)) fail("token id ", id, " is outside the vocabulary (size ", t.vocab_size, ")");
  bool plain_bytelevel = t.model.byte_level && t.decoders.size() == 1 && t.decoders[0].type == DecoderStep::kByteLevel;
  if (plain_bytelevel || (t.model.byte_level && t.decoders.empty())) {
    std::string out;
    for (int32_t id : ids) {
      int32_t a = t.added_index_of_id[size_t(id)];
      if (a >= 0) {
        if (!(skip_special && t.added[size_t(a)].special)) out += t.added[size_t(a)].content;
      } else if (size_t(id) < t.model.tokens.size()) {
        out += t.model.tokens[size_t(id)];
      }
    }
    return out;
  }
  std::vector<std::string> toks;
  for (int32_t id : ids) {
    if (skip_special && tok.is_special(id)) continue;
    toks.push_back(tok.token_text(id));
  }
  for (const auto& d : t.decoders) {
    switch (d.type) {
      case DecoderStep::kByteLevel:
        for (auto& s : toks) {
          std::string bytes;
          if (unicode::bytelevel_to_bytes(s, &bytes)) s = bytes;
        }
        break;
      case DecoderStep::kReplace:
        for (auto& s : toks) replace_all(s, d.pattern, d.content);
        break;
      case DecoderStep::kByteFallback: {
        std::vector<std::string> out;
        bool in_bytes = false;
        for (auto& s : toks) {
          uint8_t b;
          if (parse_byte_token(s, &b)) {
            if (!in_bytes) out.emplace_back();
            out.back().push_back(char(b));
            in_bytes = true;
          } else {
            out.push_back(s);
            in_bytes = false;
          }
        }
        toks.swap(out);
        break;
      }
      case DecoderStep::kFuse: {
        std::string all;
        for (auto& s : toks) all += s;
        toks.assign(1, all);
        break;
      }
      case DecoderStep::kStrip:
        for (auto& s : toks) {
          size_t b = 0, e = s.size();
          for (int k = 0; k < d.start && b < e && s.compare(b, d.content.size(), d.content) == 0; ++k)
            b += d.content.size();
          for (int k = 0; k < d.stop && e >= b + d.content.size() &&
                          s.compare(e - d.content.size(), d.content.size(), d.content) == 0;
               ++k)
            e -= d.content.size();
          s = s.substr(b, e - b);
        }
        break;
      case DecoderStep::kMetaspace:
        for (size_t k = 0; k < toks.size(); ++k) {
          replace_all(toks[k], d.replacement, " ");
          if (k == 0 && d.prepend && !toks[k].empty() && toks[k][0] == ' ') toks[k].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (auto& s : toks) out += s;
  return out;
}

}  // namespace todae

namespace todae {

std::string replace_invalid_utf8(std::string_view text) { return unicode::replace_invalid(text); }
int utf8_sequence_length(std::string_view text, size_t i) {
  uint32_t cp;
  return unicode::decode(text, i, &cp);
}
std::string nfc_normalize(std::string_view text) { return unicode::nfc(text); }

size_t count_chars(std::string_view text) {
  size_t n = 0;
  uint32_t cp;
  for (size_t i = 0; i < text.size(); ++n) {
    int len = static_cast<uint8_t>(text[i]) < 0x80 ? 1 : unicode::decode(text, i, &cp);
    i += len ? size_t(len) : 1;
  }
  return n;
}

std::vector<int32_t> encode_parallel(const Tokenizer& tok, std::string_view text, const EncodeOptions& opt,
                                     int threads) {
  const TokenizerImpl& t = *tok.impl;
  if (threads <= 0) threads = default_threads();
  bool splittable = simple_split(t);
  if (threads == 1 || !splittable || text.size() < (1 << 20)) return encode(tok, text, opt);
  std::vector<size_t> cuts{0};
  const size_t target = std::max<size_t>(1 << 18, text.size() / size_t(threads * 8));
  for (size_t c; (c = next_cut(text, cuts.back() + target)) < text.size();) cuts.push_back(c);
  cuts.push_back(text.size());
  std::vector<std::vector<int32_t>> parts(cuts.size() - 1);
  EncodeOptions inner = opt;
  inner.add_special_tokens = false;
  parallel_for(parts.size(), threads, [&](size_t i) { parts[i] = encode(tok, text.substr(cuts[i], cuts[i + 1] - cuts[i]), inner); });
  std::vector<int32_t> ids;
  for (auto& p : parts) ids.insert(ids.end(), p.begin(), p.end());
  if (opt.add_special_tokens) apply_post_processor(t, &ids);
  return ids;
}

}  // namespace todae
