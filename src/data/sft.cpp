// Supervised fine-tuning data: TRL's JSONL formats -> token ids + loss mask, and batches of them.
//
// Chat lines are rendered by the model's own template, and the assistant turns are found by
// rendering the conversation prefix by prefix: messages[:i] with the generation prompt ends where
// assistant turn i starts, messages[:i+1] ends where it ends. That needs no {% generation %} tags
// and no knowledge of the template's markers, only that the template renders earlier turns the
// same way whatever follows them ("prefix-stable"), which is checked, so a template that is not
// gives an error instead of a wrong mask. Each piece is tokenized on its own, so a loss boundary is
// always a token boundary, and the prompt pieces are tokenized exactly as inference tokenizes a
// rendered prompt (special tokens in the text become their ids; no post-processor).
#include "data/sft.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/base.h"
#include "text/jinja.h"

namespace todae {

namespace {

using ojson = nlohmann::ordered_json;

// Real data never nests deeper; the bound keeps every recursive walk (ours, the template
// engine's, nlohmann's copies and dumps) far from the stack's end on hostile input.
constexpr int kMaxDepth = 64;

[[noreturn]] void bad(const std::string& where, const std::string& field, const std::string& what) {
  fail(where, ": ", field, ": ", what);
}

std::string kind(const ojson& j) {
  switch (j.type()) {
    case ojson::value_t::null: return "null";
    case ojson::value_t::boolean: return "a boolean";
    case ojson::value_t::string: return "a string";
    case ojson::value_t::array: return "a list";
    case ojson::value_t::object: return "an object";
    case ojson::value_t::binary: return "binary data";
    case ojson::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

[[noreturn]] void bad_type(const std::string& where, const std::string& field, const char* want, const ojson& got) {
  bad(where, field, cat("expected ", want, ", got ", kind(got)));
}

size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (!n) return i;
    i += n;
  }
  return std::string_view::npos;
}

// U+10FFFF (a noncharacter, valid UTF-8) stands in for invalid bytes so that the repaired line
// can be parsed to find which field held them.
constexpr std::string_view kMark = "\xF4\x8F\xBF\xBF";

bool find_mark(const ojson& j, const std::string& path, std::string* out) {
  if (j.is_string()) {
    if (j.get_ref<const std::string&>().find(kMark) == std::string::npos) return false;
    *out = path;
    return true;
  }
  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      if (find_mark(j[i], cat(path, "[", i, "]"), out)) return true;
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (it.key().find(kMark) != std::string::npos) {
        *out = cat(path.empty() ? "top level" : path, " (a key)");
        return true;
      }
      if (find_mark(it.value(), p, out)) return true;
    }
  }
  return false;
}

// JSON gives no way to carry invalid UTF-8; name the field that holds it when the rest parses.
[[noreturn]] void bad_utf8(const std::string& where, std::string_view line, size_t at) {
  std::string fixed;
  for (size_t i = 0; i < line.size();) {
    size_t n = utf8_sequence_length(line, i);
    if (n) {
      fixed.append(line.substr(i, n));
      i += n;
    } else {
      fixed.append(kMark);
      ++i;
    }
  }
  std::string what = cat("invalid UTF-8 (byte 0x", "0123456789abcdef"[static_cast<unsigned char>(line[at]) >> 4],
                         "0123456789abcdef"[line[at] & 15], " at column ", at + 1, "); JSONL text must be UTF-8");
  ojson j = ojson::parse(fixed, nullptr, false);
  std::string field;
  if (!j.is_discarded() && find_mark(j, "", &field)) bad(where, field, what);
  fail(where, ": ", what);
}

// Nesting depth of a JSON text (brackets outside strings), stopping once past the bound.
int json_depth(std::string_view s) {
  int depth = 0, max = 0;
  bool str = false;
  for (size_t i = 0; i < s.size() && max <= kMaxDepth; ++i) {
    char c = s[i];
    if (str) {
      if (c == '\\') ++i;
      else if (c == '"') str = false;
    } else if (c == '"') {
      str = true;
    } else if (c == '[' || c == '{') {
      max = std::max(max, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max;
}

ojson parse_line(const std::string& where, std::string_view line) {
  if (size_t at = first_invalid_utf8(line); at != std::string_view::npos) bad_utf8(where, line, at);
  if (json_depth(line) > kMaxDepth) fail(where, ": JSON nested more than ", kMaxDepth, " levels deep");
  try {
    return ojson::parse(line.begin(), line.end());
  } catch (const ojson::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> "column 5: ..."
    std::string m = e.what();
    if (auto p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);
    if (auto p = m.find("line 1, "); p != std::string::npos) m.erase(p, 8);
    // The line is valid UTF-8 and nlohmann writes control bytes as <U+0000>; only its length
    // needs a bound (the message quotes the token it stopped at).
    if (m.size() > 300) {
      size_t cut = 300;
      while (cut > 0 && (static_cast<unsigned char>(m[cut]) & 0xC0) == 0x80) --cut;
      m = m.substr(0, cut) + "...";
    }
    fail(where, ": malformed JSON: ", m);
  }
}

// ---- messages --------------------------------------------------------------------------------

// content: a string, a list of text parts (OpenAI's form, joined) or, for an assistant turn that
// only calls tools, null / absent (rendered as "", as the server does).
std::string read_content(const std::string& where, const std::string& p, const ojson* c, bool optional) {
  if (!c || c->is_null()) {
    if (optional) return "";
    bad(where, p, c ? "expected a string, got null" : "missing");
  }
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad_type(where, p, "a string or a list of text parts", *c);
  std::string out;
  for (size_t j = 0; j < c->size(); ++j) {
    const ojson& part = (*c)[j];
    std::string pp = cat(p, "[", j, "]");
    if (!part.is_object()) bad_type(where, pp, "an object", part);
    auto type = part.find("type");
    if (type == part.end()) bad(where, pp + ".type", "missing");
    if (!type->is_string()) bad_type(where, pp + ".type", "a string", *type);
    if (*type != "text" && *type != "input_text") bad(where, pp + ".type", cat("'", printable(type->get<std::string>()), "' is not supported (text only)"));
    auto text = part.find("text");
    if (text == part.end()) bad(where, pp + ".text", "missing");
    if (!text->is_string()) bad_type(where, pp + ".text", "a string", *text);
    out += text->get<std::string>();
  }
  return out;
}

ojson read_tool_calls(const std::string& where, const std::string& p, const ojson& calls) {
  if (!calls.is_array()) bad_type(where, p, "a list", calls);
  ojson out = ojson::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    const ojson& c = calls[k];
    std::string cp = cat(p, "[", k, "]");
    if (!c.is_object()) bad_type(where, cp, "an object", c);
    if (auto t = c.find("type"); t != c.end() && *t != "function")
      bad(where, cp + ".type", "only 'function' tool calls are supported");
    if (auto id = c.find("id"); id != c.end() && !id->is_string()) bad_type(where, cp + ".id", "a string", *id);
    auto fn = c.find("function");
    if (fn == c.end()) bad(where, cp + ".function", "missing");
    if (!fn->is_object()) bad_type(where, cp + ".function", "an object", *fn);
    auto name = fn->find("name");
    if (name == fn->end()) bad(where, cp + ".function.name", "missing");
    if (!name->is_string()) bad_type(where, cp + ".function.name", "a string", *name);
    if (name->get_ref<const std::string&>().empty()) bad(where, cp + ".function.name", "empty");
    ojson call = c;
    ojson& f = call["function"];
    // OpenAI sends arguments as JSON text, Hugging Face templates expect an object: text that
    // parses as an object becomes one (as the server does); other text stays text.
    if (auto a = fn->find("arguments"); a == fn->end() || a->is_null()) {
      f["arguments"] = ojson::object();
    } else if (a->is_string()) {
      ojson parsed = json_depth(a->get_ref<const std::string&>()) > kMaxDepth
                         ? ojson(ojson::value_t::discarded)
                         : ojson::parse(a->get_ref<const std::string&>(), nullptr, false);
      if (parsed.is_object()) f["arguments"] = std::move(parsed);
    } else if (!a->is_object()) {
      bad_type(where, cp + ".function.arguments", "an object or a JSON string", *a);
    }
    out.push_back(std::move(call));
  }
  return out;
}

// Checks one message list and returns it in the form templates expect; other keys
// (reasoning_content, name, ...) pass through for the templates that use them.
ojson read_messages(const std::string& where, const std::string& field, const ojson& m) {
  if (!m.is_array()) bad_type(where, field, "a list of messages", m);
  if (m.empty()) bad(where, field, "empty list");
  ojson out = ojson::array();
  for (size_t i = 0; i < m.size(); ++i) {
    const ojson& msg = m[i];
    std::string p = cat(field, "[", i, "]");
    if (!msg.is_object()) bad_type(where, p, "a message object", msg);
    auto role_it = msg.find("role");
    if (role_it == msg.end()) bad(where, p + ".role", "missing");
    if (!role_it->is_string()) bad_type(where, p + ".role", "a string", *role_it);
    std::string role = role_it->get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name; templates know "system"
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      bad(where, p + ".role", cat("'", printable(role), "' is not one of system, developer, user, assistant, tool"));
    auto content_it = msg.find("content");
    const bool has_calls = msg.contains("tool_calls") && !msg["tool_calls"].is_null();
    if (has_calls && role != "assistant") bad(where, p + ".tool_calls", "only assistant messages call tools");
    std::string content =
        read_content(where, p + ".content", content_it == msg.end() ? nullptr : &*content_it, role == "assistant");
    ojson o = ojson::object();
    for (auto it = msg.begin(); it != msg.end(); ++it) {
      const std::string& k = it.key();
      if (k == "role") {
        o["role"] = role;
      } else if (k == "content") {
        o["content"] = content;
      } else if (k == "tool_calls") {
        if (has_calls) o["tool_calls"] = read_tool_calls(where, p + ".tool_calls", it.value());
      } else if ((k == "tool_call_id" || k == "name") && !it.value().is_string()) {
        bad_type(where, p + "." + k, "a string", it.value());
      } else {
        o[k] = it.value();
      }
    }
    if (!o.contains("content")) o["content"] = content;
    out.push_back(std::move(o));
  }
  return out;
}

// tools: a list of tool definitions, or that list as JSON text (how many datasets store it).
ojson read_tools(const std::string& where, const ojson& line) {
  auto t = line.find("tools");
  if (t == line.end() || t->is_null()) return nullptr;
  ojson tools = *t;
  if (tools.is_string()) {
    tools = ojson::parse(t->get_ref<const std::string&>(), nullptr, false);
    if (tools.is_discarded() || json_depth(t->get_ref<const std::string&>()) > kMaxDepth)
      bad(where, "tools", "a string that is not a JSON list of tool definitions");
  }
  if (!tools.is_array()) bad_type(where, "tools", "a list of tool definitions", tools);
  for (size_t i = 0; i < tools.size(); ++i)
    if (!tools[i].is_object()) bad_type(where, cat("tools[", i, "]"), "an object", tools[i]);
  return tools.empty() ? ojson(nullptr) : tools;
}

// ---- tokenizing ------------------------------------------------------------------------------

struct Piece {
  size_t begin, end;  // bytes of the text
  bool loss;
};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

struct Loader {
  const Tokenizer& tok;
  const SftOptions& opt;
  SftReport& rep;
  std::optional<JinjaTemplate> tmpl;
  ojson extra;
  int32_t eos = -1;

  Loader(const Tokenizer& t, const SftOptions& o, SftReport& r) : tok(t), opt(o), rep(r) {
    if (opt.max_length < 2) fail("sft: max_length must be at least 2, got ", opt.max_length);
    extra = {{"bos_token", opt.bos_token}, {"eos_token", opt.eos_token}};
    eos = opt.eos_id >= 0 ? opt.eos_id : opt.eos_token.empty() ? -1 : tok.token_id(opt.eos_token);
    if (eos >= tok.vocab_size()) fail("sft: eos id ", eos, " is outside the vocabulary (", tok.vocab_size(), " tokens)");
  }

  const JinjaTemplate& chat_template(const std::string& where, const char* field) {
    if (!tmpl) {
      if (opt.chat_template.empty())
        bad(where, field, "chat messages need a chat template and the model has none (give one, or use 'text' lines)");
      try {
        tmpl = JinjaTemplate::parse(opt.chat_template, "chat_template");
      } catch (const Error& e) {
        bad(where, field, cat("the chat template does not parse: ", e.what()));
      }
    }
    return *tmpl;
  }

  std::string render(const std::string& where, const std::string& field, const ojson& messages, const ojson& tools,
                     bool gen) {
    const JinjaTemplate& t = chat_template(where, "messages");
    try {
      return apply_chat_template(t, messages, tools, gen, extra);
    } catch (const Error& e) {
      bad(where, field, cat("the chat template failed: ", e.what()));
    } catch (const ojson::exception& e) {
      bad(where, field, cat("the chat template failed: ", printable(e.what())));
    }
  }

  static ojson head(const ojson& messages, size_t n) {
    ojson h = ojson::array();
    for (size_t i = 0; i < n; ++i) h.push_back(messages[i]);
    return h;
  }

  [[noreturn]] static void not_prefix_stable(const std::string& where, const std::string& field) {
    bad(where, field,
        "the chat template is not prefix-stable: it renders the conversation up to this turn differently from "
        "the whole conversation, so this turn's tokens cannot be located (use --loss all, or a template that "
        "renders earlier turns the same whatever follows)");
  }

  // Pieces of a rendered conversation: loss on the assistant messages (or on everything from
  // message `from` on, for a conversational completion).
  std::vector<Piece> chat_pieces(const std::string& where, const std::string& field, const ojson& messages,
                                 const ojson& tools, size_t from, const std::string& full) {
    std::vector<Piece> pieces;
    size_t done = 0;
    auto mark = [&](size_t i, size_t end_msg) {
      std::string f = cat(field, "[", i, "]");
      std::string before = render(where, f, head(messages, i), tools, true);
      if (full.compare(0, before.size(), before) != 0 || before.size() < done) not_prefix_stable(where, f);
      size_t e = full.size();
      if (end_msg < messages.size()) {
        std::string after = render(where, f, head(messages, end_msg), tools, false);
        if (full.compare(0, after.size(), after) != 0 || after.size() < before.size()) not_prefix_stable(where, f);
        e = after.size();
      }
      if (before.size() > done) pieces.push_back({done, before.size(), false});
      if (e > before.size()) pieces.push_back({before.size(), e, true});
      done = std::max(done, e);
    };
    if (from < messages.size()) {
      mark(from, messages.size());
    } else {
      for (size_t i = 0; i < messages.size(); ++i)
        if (messages[i].at("role") == "assistant") mark(i, i + 1);
    }
    if (done < full.size()) pieces.push_back({done, full.size(), false});
    return pieces;
  }

  void tokenize(std::string_view text, const std::vector<Piece>& pieces, bool post_process, SftExample& ex) {
    for (size_t k = 0; k < pieces.size(); ++k) {
      EncodeOptions eo;
      eo.add_special_tokens = post_process && k == 0;
      std::vector<int32_t> ids = encode(tok, text.substr(pieces[k].begin, pieces[k].end - pieces[k].begin), eo);
      size_t n = ids.size();
      if (pieces[k].loss) {
        // Whitespace a template writes after a turn's end token ("<|im_end|>\n") is never
        // generated (decoding stops at the end token): it stays in the input, out of the loss.
        size_t last = n;
        while (last > 0 && decode_is_space(ids[last - 1])) --last;
        if (last < n && last > 0 && tok.is_special(ids[last - 1])) n = last;
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        ex.ids.push_back(ids[i]);
        ex.loss.push_back(pieces[k].loss && i < n);
      }
    }
  }

  bool decode_is_space(int32_t id) const {
    if (tok.is_special(id)) return false;
    std::string b = tok.token_bytes(id);
    return !b.empty() && std::all_of(b.begin(), b.end(), is_space);
  }

  void append_eos(const std::string& where, const char* field, SftExample& ex) {
    if (!opt.add_eos) return;
    if (eos < 0) bad(where, field, "add_eos is set but the tokenizer has no eos token (give eos_id)");
    if (!ex.ids.empty() && ex.ids.back() == eos) {
      ex.loss.back() = 1;  // the text already ended with it: learn it once
      return;
    }
    ex.ids.push_back(eos);
    ex.loss.push_back(1);
  }

  SftExample example(const std::string& where, const ojson& line) {
    if (!line.is_object()) bad_type(where, "top level", "a JSON object", line);
    SftExample ex;
    ex.source = where;
    auto field = [&](const char* k) -> const ojson* {
      auto it = line.find(k);
      return it == line.end() ? nullptr : &*it;
    };
    // TRL's precedence when a line has several: messages, then prompt/completion, then text.
    if (const ojson* m = field("messages")) {
      ojson messages = read_messages(where, "messages", *m);
      ojson tools = read_tools(where, line);
      std::string full = render(where, "messages", messages, tools, false);
      std::vector<Piece> pieces = opt.loss_all ? std::vector<Piece>{{0, full.size(), true}}
                                               : chat_pieces(where, "messages", messages, tools, SIZE_MAX, full);
      tokenize(full, pieces, false, ex);
    } else if (field("prompt") || field("completion")) {
      const ojson* p = field("prompt");
      const ojson* c = field("completion");
      if (!p) bad(where, "prompt", "missing (a 'completion' line needs a 'prompt')");
      if (!c) bad(where, "completion", "missing (a 'prompt' line needs a 'completion')");
      if (p->is_array()) {
        // Conversational: the completion is the assistant's part of one conversation.
        ojson messages = read_messages(where, "prompt", *p);
        if (!c->is_array()) bad_type(where, "completion", "a list of messages (the prompt is one)", *c);
        ojson more = read_messages(where, "completion", *c);
        size_t from = messages.size();
        for (auto& x : more) messages.push_back(std::move(x));
        ojson tools = read_tools(where, line);
        std::string full = render(where, "completion", messages, tools, false);
        std::vector<Piece> pieces = opt.loss_all ? std::vector<Piece>{{0, full.size(), true}}
                                                 : chat_pieces(where, "completion", messages, tools, from, full);
        tokenize(full, pieces, false, ex);
      } else {
        if (!p->is_string()) bad_type(where, "prompt", "a string or a list of messages", *p);
        if (!c->is_string()) bad_type(where, "completion", "a string (the prompt is one)", *c);
        std::string text = p->get<std::string>() + c->get<std::string>();
        size_t split = p->get_ref<const std::string&>().size();
        tokenize(text, {{0, split, opt.loss_all}, {split, text.size(), true}}, true, ex);
        append_eos(where, "completion", ex);
      }
    } else if (const ojson* t = field("text")) {
      if (!t->is_string()) bad_type(where, "text", "a string", *t);
      const std::string& text = t->get_ref<const std::string&>();
      tokenize(text, {{0, text.size(), true}}, true, ex);
      append_eos(where, "text", ex);
    } else {
      fail(where, ": top level: no 'messages', 'prompt' + 'completion' or 'text' field (the SFT formats)");
    }
    if (!ex.loss.empty()) ex.loss[0] = 0;  // nothing predicts the first token
    return ex;
  }

  void file(const std::string& name, std::string_view data, std::vector<SftExample>& out) {
    int64_t lines = 0;
    size_t pos = 0;
    for (int64_t lineno = 1; pos < data.size(); ++lineno) {
      size_t nl = data.find('\n', pos);
      std::string_view line = data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? data.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (std::all_of(line.begin(), line.end(), is_space)) continue;
      ++lines;
      std::string where = cat(name, ":", lineno);
      SftExample ex = example(where, parse_line(where, line));
      bool cut = int64_t(ex.ids.size()) > opt.max_length;
      bool had_loss = std::find(ex.loss.begin(), ex.loss.end(), uint8_t{1}) != ex.loss.end();
      if (cut) {
        ex.ids.resize(size_t(opt.max_length));
        ex.loss.resize(size_t(opt.max_length));
        ++rep.truncated;
      }
      int64_t loss = std::count(ex.loss.begin(), ex.loss.end(), uint8_t{1});
      if (loss == 0) {
        ++rep.dropped;
        rep.notes.push_back(cat(where, ": dropped: ",
                                had_loss ? cat("no loss token within the first ", opt.max_length, " tokens")
                                : ex.ids.size() < 2
                                    ? std::string("fewer than two tokens")
                                    : std::string("nothing to learn (no assistant turn, or an empty completion)")));
        continue;
      }
      ++rep.examples;
      rep.tokens += int64_t(ex.ids.size());
      rep.loss_tokens += loss;
      out.push_back(std::move(ex));
    }
    if (lines == 0) fail(name, ": empty file (no JSON lines)");
    rep.lines += lines;
  }
};

int round_up8(int n) { return (n + 7) / 8 * 8; }

}  // namespace

std::string SftReport::summary() const {
  return cat(examples, " examples from ", lines, " lines, ", tokens, " tokens (", loss_tokens, " in the loss), ",
             truncated, " truncated, ", dropped, " dropped");
}

std::vector<SftExample> load_sft_jsonl_text(std::string_view data, const std::string& name, const Tokenizer& tok,
                                            const SftOptions& opt, SftReport* report) {
  SftReport local;
  SftReport& rep = report ? *report : local;
  rep = SftReport{};
  std::vector<SftExample> out;
  Loader(tok, opt, rep).file(name, data, out);
  return out;
}

std::vector<SftExample> load_sft_jsonl(const std::vector<std::string>& files, const Tokenizer& tok,
                                       const SftOptions& opt, SftReport* report) {
  if (files.empty()) fail("sft: no data files given");
  SftReport local;
  SftReport& rep = report ? *report : local;
  rep = SftReport{};
  Loader loader(tok, opt, rep);
  std::vector<SftExample> out;
  for (const std::string& f : files) loader.file(f, read_file(f), out);
  return out;
}

std::vector<SftBatch> make_sft_batches(const std::vector<SftExample>& ex, const std::vector<size_t>& order,
                                       int batch_tokens, int max_length, bool packing) {
  if (batch_tokens < 1) fail("sft batches: batch_tokens must be positive, got ", batch_tokens);
  if (max_length < 1) fail("sft batches: max_length must be positive, got ", max_length);
  // A row of an example is its ids but the last (inputs) against its ids but the first (targets);
  // an example with no loss token contributes nothing and gets no row.
  std::vector<size_t> rows;
  int longest = 0;
  for (size_t i : order) {
    if (i >= ex.size()) fail("sft batches: example index ", i, " is out of range (", ex.size(), " examples)");
    const SftExample& e = ex[i];
    if (e.loss.size() != e.ids.size()) fail(e.source, ": ids and loss mask differ in length");
    if (e.ids.size() < 2 || std::find(e.loss.begin() + 1, e.loss.end(), uint8_t{1}) == e.loss.end()) continue;
    int len = int(e.ids.size()) - 1;
    if (len > max_length) fail(e.source, ": ", e.ids.size(), " tokens do not fit max_length ", max_length);
    longest = std::max(longest, len);
    rows.push_back(i);
  }
  std::vector<SftBatch> out;
  auto new_batch = [&](int B, int T) {
    SftBatch& b = out.emplace_back();
    b.B = B;
    b.T = T;
    b.inputs.assign(size_t(B) * size_t(T), 0);
    b.targets.assign(size_t(B) * size_t(T), -1);
    return &b;
  };
  auto place = [](SftBatch& b, int row, int offset, const SftExample& e) {
    size_t at = size_t(row) * size_t(b.T) + size_t(offset);
    for (size_t t = 0; t + 1 < e.ids.size(); ++t) {
      b.inputs[at + t] = e.ids[t];
      if (e.loss[t + 1]) {
        b.targets[at + t] = e.ids[t + 1];
        ++b.loss_tokens;
      }
    }
  };
  auto len = [&](size_t i) { return int(ex[i].ids.size()) - 1; };
  if (!packing) {
    // Greedy in order: a batch takes rows while B·T stays within batch_tokens (T grows with the
    // longest row); the first row always fits.
    for (size_t i = 0; i < rows.size();) {
      int cur = 0;
      size_t j = i;
      for (; j < rows.size(); ++j) {
        int m = std::max(cur, len(rows[j]));
        int64_t T = std::min(round_up8(m), max_length);
        if (j > i && int64_t(j - i + 1) * T > batch_tokens) break;
        cur = m;
      }
      SftBatch* b = new_batch(int(j - i), std::min(round_up8(cur), max_length));
      for (size_t k = i; k < j; ++k) place(*b, int(k - i), 0, ex[rows[k]]);
      i = j;
    }
    return out;
  }
  // Packed: every row is T long; each example goes into the first row of the current batch with
  // room for it, a new row while the batch has fewer than batch_tokens / T, else a new batch.
  const int T = std::min(round_up8(longest), max_length);
  const int B_max = std::max(1, batch_tokens / std::max(T, 1));
  std::vector<std::vector<size_t>> members;
  std::vector<int> used;
  auto flush = [&]() {
    if (used.empty()) return;
    SftBatch* b = new_batch(int(used.size()), T);
    b->docs.resize(used.size());
    for (size_t r = 0; r < used.size(); ++r) {
      int off = 0;
      for (size_t i : members[r]) {
        place(*b, int(r), off, ex[i]);
        b->docs[r].push_back(len(i));
        off += len(i);
      }
    }
    members.clear();
    used.clear();
  };
  for (size_t i : rows) {
    int n = len(i);
    size_t r = 0;
    while (r < used.size() && used[r] + n > T) ++r;
    if (r == used.size()) {
      if (int(used.size()) == B_max) {
        flush();
        r = 0;
      }
      used.push_back(0);
      members.emplace_back();
    }
    used[r] += n;
    members[r].push_back(i);
  }
  flush();
  return out;
}

}  // namespace todae
