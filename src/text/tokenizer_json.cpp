// Reading and writing Hugging Face tokenizer.json / tokenizer_config.json, and tiktoken rank files.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/base.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace todae {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// Context for error messages: "tokenizer.json: model.merges[12]: ..."
struct Ctx {
  const std::string& file;
  [[noreturn]] void bad(const std::string& field, const std::string& what) const { fail(file, ": ", field, ": ", what); }
  const json& need(const json& j, const std::string& field, const char* key) const {
    if (!j.is_object() || !j.contains(key)) bad(field + "." + key, "missing");
    return j.at(key);
  }
  std::string str(const json& j, const std::string& field) const {
    if (!j.is_string()) bad(field, cat("expected a string, got ", j.type_name()));
    return j.get<std::string>();
  }
  bool boolean(const json& j, const char* key, const std::string& field, bool dflt) const {
    if (!j.contains(key) || j.at(key).is_null()) return dflt;
    if (!j.at(key).is_boolean()) bad(field + "." + key, "expected true or false");
    return j.at(key).get<bool>();
  }
  std::string type(const json& j, const std::string& field) const {
    if (!j.is_object()) bad(field, cat("expected an object, got ", j.type_name()));
    return str(need(j, field, "type"), field + ".type");
  }
};

json parse_json(std::string_view text, const std::string& name) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    fail(name, ": malformed JSON: ", msg);
  }
}

std::string pattern_of(const Ctx& c, const json& j, const std::string& field, bool* is_regex) {
  const json& p = c.need(j, field, "pattern");
  if (p.is_object() && p.contains("String")) {
    *is_regex = false;
    return c.str(p.at("String"), field + ".pattern.String");
  }
  if (p.is_object() && p.contains("Regex")) {
    *is_regex = true;
    return c.str(p.at("Regex"), field + ".pattern.Regex");
  }
  c.bad(field + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
}

void load_normalizer(const Ctx& c, const json& j, const std::string& field, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.type(j, field);
  NormalizerStep s{};
  if (type == "Sequence") {
    const json& list = c.need(j, field, "normalizers");
    if (!list.is_array()) c.bad(field + ".normalizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) load_normalizer(c, list[i], cat(field, ".normalizers[", i, "]"), t);
    return;
  } else if (type == "NFC") {
    s.type = NormalizerStep::kNFC;
  } else if (type == "NFKC") {
    s.type = NormalizerStep::kNFKC;
  } else if (type == "Lowercase") {
    s.type = NormalizerStep::kLowercase;
  } else if (type == "Replace") {
    bool is_regex;
    s.type = NormalizerStep::kReplace;
    s.pattern = pattern_of(c, j, field, &is_regex);
    if (is_regex) c.bad(field + ".pattern", "Replace with a Regex pattern is not supported");
    s.content = c.str(c.need(j, field, "content"), field + ".content");
  } else if (type == "Prepend") {
    s.type = NormalizerStep::kPrepend;
    s.content = c.str(c.need(j, field, "prepend"), field + ".prepend");
  } else if (type == "Strip") {
    s.type = NormalizerStep::kStrip;
    s.left = c.boolean(j, "strip_left", field, true);
    s.right = c.boolean(j, "strip_right", field, true);
  } else {
    c.bad(field + ".type", cat("normalizer '", type, "' is not supported (supported: NFC, NFKC, Lowercase, Replace, Prepend, Strip, Sequence)"));
  }
  t.normalizers.push_back(s);
}

SplitBehavior behavior_of(const Ctx& c, const json& j, const std::string& field) {
  std::string b = c.str(c.need(j, field, "behavior"), field + ".behavior");
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  c.bad(field + ".behavior", cat("unknown split behaviour '", b, "'"));
}

void load_pretokenizer(const Ctx& c, const json& j, const std::string& field, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.type(j, field);
  PretokenizerStep s;
  if (type == "Sequence") {
    const json& list = c.need(j, field, "pretokenizers");
    if (!list.is_array()) c.bad(field + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) load_pretokenizer(c, list[i], cat(field, ".pretokenizers[", i, "]"), t);
    return;
  } else if (type == "Split") {
    s.type = PretokenizerStep::kSplit;
    s.pattern = pattern_of(c, j, field, &s.is_regex);
    s.behavior = behavior_of(c, j, field);
    s.invert = c.boolean(j, "invert", field, false);
    if (s.is_regex && s.behavior == SplitBehavior::kIsolated && !s.invert) {
      // Our own pre-tokenizer: run the hand-written equivalent (tested equal to the regex).
      for (int w = 1; w <= 64; ++w) {
        if (s.pattern == (w == 1 ? korean_pretokenizer_regex() : superword_pretokenizer_regex(w))) {
          s.type = PretokenizerStep::kKorean;
          s.max_words = w;
          break;
        }
      }
    }
    if (s.type == PretokenizerStep::kSplit && s.is_regex) s.regex = compile_regex(s.pattern, c.file + ": " + field + ".pattern.Regex");
  } else if (type == "ByteLevel") {
    s.type = PretokenizerStep::kByteLevel;
    s.add_prefix_space = c.boolean(j, "add_prefix_space", field, true);
    s.use_regex = c.boolean(j, "use_regex", field, true);
  } else if (type == "Metaspace") {
    s.type = PretokenizerStep::kMetaspace;
    if (j.contains("replacement")) s.replacement = c.str(j.at("replacement"), field + ".replacement");
    if (j.contains("prepend_scheme")) s.prepend_scheme = c.str(j.at("prepend_scheme"), field + ".prepend_scheme");
    else if (j.contains("add_prefix_space")) s.prepend_scheme = c.boolean(j, "add_prefix_space", field, true) ? "always" : "never";
    s.split = c.boolean(j, "split", field, true);
  } else {
    c.bad(field + ".type", cat("pre-tokenizer '", type, "' is not supported (supported: Split, ByteLevel, Metaspace, Sequence)"));
  }
  t.pretokenizers.push_back(std::move(s));
}

void load_decoder(const Ctx& c, const json& j, const std::string& field, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.type(j, field);
  DecoderStep d{};
  if (type == "Sequence") {
    const json& list = c.need(j, field, "decoders");
    if (!list.is_array()) c.bad(field + ".decoders", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) load_decoder(c, list[i], cat(field, ".decoders[", i, "]"), t);
    return;
  } else if (type == "ByteLevel") {
    d.type = DecoderStep::kByteLevel;
  } else if (type == "Replace") {
    bool is_regex;
    d.type = DecoderStep::kReplace;
    d.pattern = pattern_of(c, j, field, &is_regex);
    d.content = c.str(c.need(j, field, "content"), field + ".content");
  } else if (type == "ByteFallback") {
    d.type = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    d.type = DecoderStep::kFuse;
  } else if (type == "Strip") {
    d.type = DecoderStep::kStrip;
    d.content = c.str(c.need(j, field, "content"), field + ".content");
    d.start = j.value("start", 0);
    d.stop = j.value("stop", 0);
  } else if (type == "Metaspace") {
    d.type = DecoderStep::kMetaspace;
    d.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    d.prepend = j.value("prepend_scheme", std::string("always")) != "never" && j.value("add_prefix_space", true);
  } else {
    c.bad(field + ".type", cat("decoder '", type, "' is not supported"));
  }
  t.decoders.push_back(d);
}

int32_t id_of(const Ctx& c, const TokenizerImpl& t, const std::string& tok, const std::string& field) {
  for (const auto& a : t.added)
    if (a.content == tok) return a.id;
  int32_t id = -1;
  if (t.model.byte_level) {
    std::string bytes;
    if (unicode::bytelevel_to_bytes(tok, &bytes)) id = t.model.find(bytes);
  }
  if (id < 0) id = t.model.find(tok);
  if (id < 0) c.bad(field, cat("token '", tok, "' is not in the vocabulary"));
  return id;
}

void load_post_processor(const Ctx& c, const json& j, const std::string& field, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.type(j, field);
  t.json_post_processor = j.dump();
  t.post_processor_null = false;
  if (type == "Sequence") {
    const json& list = c.need(j, field, "processors");
    if (!list.is_array()) c.bad(field + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string sub = cat(field, ".processors[", i, "]");
      if (c.type(list[i], sub) != "ByteLevel") load_post_processor(c, list[i], sub, t);
    }
    t.json_post_processor = j.dump();
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing")
    c.bad(field + ".type", cat("post-processor '", type, "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)"));
  const json& single = c.need(j, field, "single");
  if (!single.is_array()) c.bad(field + ".single", "expected an array");
  const json specials = j.value("special_tokens", json::object());
  for (size_t i = 0; i < single.size(); ++i) {
    std::string f = cat(field, ".single[", i, "]");
    const json& item = single[i];
    TemplateItem ti{false, {}};
    if (item.is_object() && item.contains("Sequence")) {
      ti.is_sequence = true;
    } else if (item.is_object() && item.contains("SpecialToken")) {
      std::string name = c.str(c.need(item.at("SpecialToken"), f + ".SpecialToken", "id"), f + ".SpecialToken.id");
      if (specials.contains(name) && specials[name].contains("ids") && specials[name]["ids"].is_array()) {
        for (const auto& v : specials[name]["ids"]) {
          if (!v.is_number_integer()) c.bad(cat(field, ".special_tokens.", name, ".ids"), "expected integers");
          ti.ids.push_back(v.get<int32_t>());
        }
      } else {
        ti.ids.push_back(id_of(c, t, name, f + ".SpecialToken.id"));
      }
    } else {
      c.bad(f, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    t.post_single.push_back(std::move(ti));
  }
}

bool mentions_bytelevel(const json& j) {
  if (j.is_object()) {
    auto t = j.find("type");
    if (t != j.end() && t->is_string() && t->get_ref<const std::string&>() == "ByteLevel") return true;
    for (auto& [k, v] : j.items())
      if (mentions_bytelevel(v)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (mentions_bytelevel(v)) return true;
  }
  return false;
}

void load_model(const Ctx& c, const json& m, TokenizerImpl& t, bool byte_level) {
  std::string type = m.is_object() && m.contains("type") ? c.str(m.at("type"), "model.type") : "BPE";
  if (type != "BPE") c.bad("model.type", cat("model type '", type, "' is not supported (supported: BPE)"));
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && m.at(k).is_string() && !m.at(k).get<std::string>().empty())
      c.bad(cat("model.", k), "is not supported");
  BpeModel& bm = t.model;
  bm.byte_level = byte_level;
  const json& vocab = c.need(m, "model", "vocab");
  if (!vocab.is_object()) c.bad("model.vocab", cat("expected an object of token -> id, got ", vocab.type_name()));
  int64_t max_id = -1;
  for (auto& [tok, v] : vocab.items()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= (int64_t(1) << 31))
      c.bad("model.vocab", cat("token '", tok, "' has an invalid id ", v.dump()));
    max_id = std::max(max_id, v.get<int64_t>());
  }
  // Ids may leave holes (for added tokens) but not absurd ones: they size the tables.
  if (max_id >= int64_t(vocab.size()) + 1'000'000)
    c.bad("model.vocab", cat("id ", max_id, " is far beyond the ", vocab.size(), " tokens of the vocabulary"));
  bm.tokens.assign(size_t(max_id + 1), std::string());
  std::vector<uint8_t> seen(size_t(max_id + 1), 0);
  bm.token_to_id.reserve(vocab.size() * 2);
  for (auto& [tok, v] : vocab.items()) {
    int32_t id = v.get<int32_t>();
    if (seen[size_t(id)]) c.bad("model.vocab", cat("id ", id, " is used by two tokens (second: '", tok, "')"));
    seen[size_t(id)] = 1;
    std::string bytes;
    if (!byte_level || !unicode::bytelevel_to_bytes(tok, &bytes)) bytes = tok;
    bm.tokens[size_t(id)] = bytes;
    bm.token_to_id.emplace(bytes, id);
  }
  const json& merges = c.need(m, "model", "merges");
  if (!merges.is_array()) c.bad("model.merges", "expected an array");
  bm.merges.reserve(merges.size());
  bm.merge_list.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& mg = merges[i];
    std::string a, b;
    std::string f = cat("model.merges[", i, "]");
    if (mg.is_string()) {
      const std::string& s = mg.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        c.bad(f, cat("expected two tokens separated by one space, got '", s, "'"));
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
    } else {
      c.bad(f, "expected \"a b\" or [\"a\", \"b\"]");
    }
    auto lookup = [&](const std::string& s) {
      auto it = vocab.find(s);
      if (it == vocab.end()) c.bad(f, cat("token '", s, "' is not in model.vocab"));
      return it->get<int32_t>();
    };
    int32_t ia = lookup(a), ib = lookup(b), im = lookup(a + b);
    bm.merges.insert(ia, ib, int32_t(i), im);
    bm.merge_list.push_back({ia, ib});
  }
  bm.ignore_merges = c.boolean(m, "ignore_merges", "model", false);
  bm.byte_fallback = c.boolean(m, "byte_fallback", "model", false);
  bm.fuse_unk = c.boolean(m, "fuse_unk", "model", false);
  if (m.contains("unk_token") && !m.at("unk_token").is_null()) {
    std::string unk = c.str(m.at("unk_token"), "model.unk_token");
    auto it = vocab.find(unk);
    if (it == vocab.end()) c.bad("model.unk_token", cat("token '", unk, "' is not in model.vocab"));
    bm.unk_id = it->get<int32_t>();
  }
}

void load_added(const Ctx& c, const json& j, TokenizerImpl& t) {
  if (j.is_null()) return;
  if (!j.is_array()) c.bad("added_tokens", "expected an array");
  for (size_t i = 0; i < j.size(); ++i) {
    std::string f = cat("added_tokens[", i, "]");
    const json& a = j[i];
    AddedToken tok;
    const json& id = c.need(a, f, "id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= int64_t(t.model.tokens.size() + j.size()) + 1'000'000)
      c.bad(f + ".id", cat("invalid id ", id.dump()));
    tok.id = id.get<int32_t>();
    tok.content = c.str(c.need(a, f, "content"), f + ".content");
    if (tok.content.empty()) c.bad(f + ".content", "empty");
    tok.special = c.boolean(a, "special", f, false);
    tok.normalized = c.boolean(a, "normalized", f, !tok.special);
    tok.lstrip = c.boolean(a, "lstrip", f, false);
    tok.rstrip = c.boolean(a, "rstrip", f, false);
    tok.single_word = c.boolean(a, "single_word", f, false);
    t.added.push_back(std::move(tok));
  }
}

}  // namespace

static Tokenizer load_tokenizer_json_unchecked(std::string_view text, const std::string& name);

Tokenizer load_tokenizer_json(std::string_view text, const std::string& name) {
  // Fields are checked one by one with messages naming them; this is the net for any type
  // mismatch the checks did not foresee, so a wrong file never ends the program.
  try {
    return load_tokenizer_json_unchecked(text, name);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    fail(name, ": unexpected JSON structure: ", msg);
  }
}

static Tokenizer load_tokenizer_json_unchecked(std::string_view text, const std::string& name) {
  json j = parse_json(text, name);
  Ctx c{name};
  if (!j.is_object()) fail(name, ": expected a JSON object at the top level");
  auto t = std::make_shared<TokenizerImpl>();
  t->name = name;
  const json& model = c.need(j, "tokenizer", "model");
  bool byte_level = mentions_bytelevel(j.value("pre_tokenizer", json())) || mentions_bytelevel(j.value("decoder", json()));
  load_model(c, model, *t, byte_level);
  load_added(c, j.value("added_tokens", json()), *t);
  load_normalizer(c, j.value("normalizer", json()), "normalizer", *t);
  load_pretokenizer(c, j.value("pre_tokenizer", json()), "pre_tokenizer", *t);
  load_decoder(c, j.value("decoder", json()), "decoder", *t);
  load_post_processor(c, j.value("post_processor", json()), "post_processor", *t);
  t->finish();
  return Tokenizer{t};
}

// ---- tiktoken ---------------------------------------------------------------------------------

static int b64(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

static bool base64_decode(std::string_view s, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : s) {
    if (ch == '=') break;
    int v = b64(ch);
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(char((acc >> bits) & 0xFF));
    }
  }
  return true;
}

static const char* kCl100kRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char* kO200kRegex =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

Tokenizer load_tiktoken(const std::string& path) {
  std::string text = read_file(path);
  std::string base = path.substr(path.find_last_of('/') + 1);
  auto t = std::make_shared<TokenizerImpl>();
  t->name = path;
  BpeModel& m = t->model;
  m.byte_level = true;
  m.ignore_merges = true;  // tiktoken emits a piece that is itself a token without merging
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) fail(path, ":", line_no, ": expected 'BASE64 RANK'");
    if (!base64_decode(line.substr(0, sp), &bytes) || bytes.empty())
      fail(path, ":", line_no, ": invalid base64 token '", line.substr(0, sp), "'");
    std::string_view rs = line.substr(sp + 1);
    if (rs.empty() || rs.size() > 9 || rs.find_first_not_of("0123456789") != std::string_view::npos)
      fail(path, ":", line_no, ": invalid rank '", rs, "'");
    size_t rank = std::stoul(std::string(rs));
    if (rank > 10'000'000 || rank > text.size()) fail(path, ":", line_no, ": rank ", rank, " is implausibly large");
    if (rank >= m.tokens.size()) m.tokens.resize(rank + 1);
    if (!m.tokens[rank].empty()) fail(path, ":", line_no, ": rank ", rank, " appears twice");
    if (!m.token_to_id.emplace(bytes, int32_t(rank)).second) fail(path, ":", line_no, ": token appears twice");
    m.tokens[rank] = bytes;
  }
  if (m.tokens.empty()) fail(path, ": no tokens (empty file?)");
  // tiktoken merges any adjacent pair whose concatenation is a token, lowest rank first: the same
  // as a merge table holding every split of every token.
  m.merges.reserve(m.tokens.size() * 4);
  for (size_t id = 0; id < m.tokens.size(); ++id) {
    const std::string& tok = m.tokens[id];
    for (size_t k = 1; k < tok.size(); ++k) {
      int32_t a = m.find(std::string_view(tok).substr(0, k)), b = m.find(std::string_view(tok).substr(k));
      if (a >= 0 && b >= 0) m.merges.insert(a, b, int32_t(id), int32_t(id));
    }
  }
  for (int b = 0; b < 256; ++b)
    if (m.find(std::string(1, char(b))) < 0) fail(path, ": byte ", b, " has no token (not a byte-level BPE file)");
  const char* regex = kCl100kRegex;
  std::vector<std::pair<std::string, int32_t>> specials;
  int32_t n = int32_t(m.tokens.size());
  if (base.find("o200k") != std::string::npos) {
    regex = kO200kRegex;
    specials = {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
  } else if (base.find("cl100k") != std::string::npos) {
    specials = {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259},
                {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276}};
  } else if (base.find("p50k") != std::string::npos || base.find("r50k") != std::string::npos) {
    regex = kGpt2Regex;
    specials = {{"<|endoftext|>", 50256}};
  } else {
    specials = {{"<|endoftext|>", n}};
  }
  for (auto& [s, id] : specials) {
    if (id < n && !m.tokens[size_t(id)].empty()) continue;  // a regular token there already
    t->added.push_back(AddedToken{s, id, true, false, false, false, false});
  }
  PretokenizerStep split;
  split.type = PretokenizerStep::kSplit;
  split.pattern = regex;
  split.regex = compile_regex(regex, path);
  t->pretokenizers.push_back(split);
  PretokenizerStep bl;
  bl.type = PretokenizerStep::kByteLevel;
  bl.add_prefix_space = false;
  bl.use_regex = false;
  t->pretokenizers.push_back(bl);
  t->decoders.push_back(DecoderStep{DecoderStep::kByteLevel, "", "", 0, 0, "", false});
  t->finish();
  return Tokenizer{t};
}

static std::string token_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

Tokenizer load_tokenizer(const std::string& path) {
  std::string file = path, config;
  if (is_directory(path)) {
    file = path + "/tokenizer.json";
    config = path + "/tokenizer_config.json";
    if (!file_exists(file)) fail(path, ": no tokenizer.json in this folder");
  } else if (path.size() >= 9 && path.compare(path.size() - 9, 9, ".tiktoken") == 0) {
    return load_tiktoken(path);
  } else {
    auto slash = path.find_last_of('/');
    config = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/tokenizer_config.json";
  }
  Tokenizer tok = load_tokenizer_json(read_file(file), file);
  if (!config.empty() && file_exists(config)) try {
    json cj = parse_json(read_file(config), config);
    auto t = std::const_pointer_cast<TokenizerImpl>(tok.impl);
    if (cj.is_object()) {
      if (cj.contains("chat_template")) {
        const json& ct = cj["chat_template"];
        if (ct.is_string()) {
          t->chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {
          for (const auto& e : ct)
            if (e.is_object() && e.contains("name") && e["name"] == "default" && e.contains("template") &&
                e["template"].is_string())
              t->chat_template = e["template"].get<std::string>();
        }
      }
      if (cj.contains("bos_token")) t->bos_token = token_string(cj["bos_token"]);
      if (cj.contains("eos_token")) t->eos_token = token_string(cj["eos_token"]);
      if (cj.contains("pad_token")) t->pad_token = token_string(cj["pad_token"]);
    }
  } catch (const json::exception& e) {
    fail(config, ": unexpected JSON structure: ", e.what());
  }
  return tok;
}

// ---- writing ----------------------------------------------------------------------------------

static ojson pattern_json(bool is_regex, const std::string& p) {
  ojson o;
  o[is_regex ? "Regex" : "String"] = p;
  return o;
}

static const char* behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::kIsolated: return "Isolated";
    case SplitBehavior::kRemoved: return "Removed";
    case SplitBehavior::kMergedWithPrevious: return "MergedWithPrevious";
    case SplitBehavior::kMergedWithNext: return "MergedWithNext";
    case SplitBehavior::kContiguous: return "Contiguous";
  }
  return "Isolated";
}

static ojson sequence_or_single(const char* key, std::vector<ojson> items) {
  if (items.empty()) return nullptr;
  if (items.size() == 1) return items[0];
  ojson o;
  o["type"] = "Sequence";
  o[key] = items;
  return o;
}

std::string tokenizer_to_json(const Tokenizer& tok) {
  const TokenizerImpl& t = *tok.impl;
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  ojson added = ojson::array();
  for (const auto& a : t.added) {
    ojson o;
    o["id"] = a.id;
    o["content"] = a.content;
    o["single_word"] = a.single_word;
    o["lstrip"] = a.lstrip;
    o["rstrip"] = a.rstrip;
    o["normalized"] = a.normalized;
    o["special"] = a.special;
    added.push_back(o);
  }
  j["added_tokens"] = added;

  std::vector<ojson> norms;
  for (const auto& n : t.normalizers) {
    ojson o;
    switch (n.type) {
      case NormalizerStep::kNFC: o["type"] = "NFC"; break;
      case NormalizerStep::kNFKC: o["type"] = "NFKC"; break;
      case NormalizerStep::kLowercase: o["type"] = "Lowercase"; break;
      case NormalizerStep::kReplace:
        o["type"] = "Replace", o["pattern"] = pattern_json(false, n.pattern), o["content"] = n.content;
        break;
      case NormalizerStep::kPrepend: o["type"] = "Prepend", o["prepend"] = n.content; break;
      case NormalizerStep::kStrip: o["type"] = "Strip", o["strip_left"] = n.left, o["strip_right"] = n.right; break;
    }
    norms.push_back(o);
  }
  j["normalizer"] = sequence_or_single("normalizers", norms);

  std::vector<ojson> pres;
  for (const auto& p : t.pretokenizers) {
    ojson o;
    switch (p.type) {
      case PretokenizerStep::kKorean:
        o["type"] = "Split";
        o["pattern"] = pattern_json(true, p.max_words == 1 ? korean_pretokenizer_regex() : superword_pretokenizer_regex(p.max_words));
        o["behavior"] = "Isolated";
        o["invert"] = false;
        break;
      case PretokenizerStep::kSplit:
        o["type"] = "Split";
        o["pattern"] = pattern_json(p.is_regex, p.pattern);
        o["behavior"] = behavior_name(p.behavior);
        o["invert"] = p.invert;
        break;
      case PretokenizerStep::kByteLevel:
        o["type"] = "ByteLevel";
        o["add_prefix_space"] = p.add_prefix_space;
        o["trim_offsets"] = true;
        o["use_regex"] = p.use_regex;
        break;
      case PretokenizerStep::kMetaspace:
        o["type"] = "Metaspace";
        o["replacement"] = p.replacement;
        o["prepend_scheme"] = p.prepend_scheme;
        o["split"] = p.split;
        break;
    }
    pres.push_back(o);
  }
  j["pre_tokenizer"] = sequence_or_single("pretokenizers", pres);
  j["post_processor"] = t.json_post_processor.empty() ? ojson(nullptr) : ojson::parse(t.json_post_processor);

  std::vector<ojson> decs;
  for (const auto& d : t.decoders) {
    ojson o;
    switch (d.type) {
      case DecoderStep::kByteLevel:
        o["type"] = "ByteLevel", o["add_prefix_space"] = false, o["trim_offsets"] = true, o["use_regex"] = true;
        break;
      case DecoderStep::kReplace: o["type"] = "Replace", o["pattern"] = pattern_json(false, d.pattern), o["content"] = d.content; break;
      case DecoderStep::kByteFallback: o["type"] = "ByteFallback"; break;
      case DecoderStep::kFuse: o["type"] = "Fuse"; break;
      case DecoderStep::kStrip: o["type"] = "Strip", o["content"] = d.content, o["start"] = d.start, o["stop"] = d.stop; break;
      case DecoderStep::kMetaspace:
        o["type"] = "Metaspace", o["replacement"] = d.replacement, o["prepend_scheme"] = d.prepend ? "always" : "never";
        o["split"] = true;
        break;
    }
    decs.push_back(o);
  }
  j["decoder"] = sequence_or_single("decoders", decs);

  const BpeModel& m = t.model;
  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = m.unk_id >= 0 ? ojson(tok.token_text(m.unk_id)) : ojson(nullptr);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = m.fuse_unk;
  model["byte_fallback"] = m.byte_fallback;
  model["ignore_merges"] = m.ignore_merges;
  // The vocabulary and merges are written by hand: ordered_json's linear-time key lookup would make
  // a 64k vocabulary quadratic, and one merge per line keeps the file readable.
  auto display = [&](size_t id) {
    if (t.added_index_of_id[id] >= 0) return t.added[size_t(t.added_index_of_id[id])].content;
    return m.byte_level ? unicode::bytes_to_bytelevel(m.tokens[id]) : m.tokens[id];
  };
  auto quote = [](const std::string& x) { return ojson(x).dump(-1, ' ', false, ojson::error_handler_t::replace); };
  std::string vocab = "{";
  bool first = true;
  for (size_t id = 0; id < m.tokens.size(); ++id) {
    if (m.tokens[id].empty() && t.added_index_of_id[id] < 0) continue;
    vocab += cat(first ? "\n" : ",\n", "      ", quote(display(id)), ": ", id);
    first = false;
  }
  vocab += "\n    }";
  std::string merges = "[";
  for (size_t r = 0; r < m.merge_list.size(); ++r)
    merges += cat(r ? ",\n" : "\n", "      [", quote(display(size_t(m.merge_list[r].first))), ", ",
                  quote(display(size_t(m.merge_list[r].second))), "]");
  merges += "\n    ]";
  model["vocab"] = "@@VOCAB@@";
  model["merges"] = "@@MERGES@@";
  j["model"] = model;
  std::string out = j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
  out.replace(out.rfind("\"@@VOCAB@@\""), 11, vocab);
  out.replace(out.rfind("\"@@MERGES@@\""), 12, merges);
  return out;
}

void save_tokenizer(const Tokenizer& tok, const std::string& dir) {
  make_directories(dir);
  write_file_atomic(dir + "/tokenizer.json", tokenizer_to_json(tok));
  const TokenizerImpl& t = *tok.impl;
  ojson cfg;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg["bos_token"] = t.bos_token.empty() ? ojson(nullptr) : ojson(t.bos_token);
  cfg["eos_token"] = t.eos_token.empty() ? ojson(nullptr) : ojson(t.eos_token);
  cfg["pad_token"] = t.pad_token.empty() ? ojson(nullptr) : ojson(t.pad_token);
  cfg["unk_token"] = nullptr;
  cfg["add_bos_token"] = false;
  cfg["add_eos_token"] = false;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["model_max_length"] = 1000000000;
  cfg["chat_template"] = t.chat_template.empty() ? default_chat_template() : t.chat_template;
  write_file_atomic(dir + "/tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace todae
