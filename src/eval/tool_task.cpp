// Tool-calling tasks (see eval.h, TaskConfig::tool_call): a document's chat messages, function
// schemas and possible answer (BFCL's format) -> a prompt for the runner; the model's chat reply
// -> its calls -> BFCL's AST check (tool_check.cpp) -> one sample with the per-document breakdown.
//
// Documents are read leniently in the shapes datasets store them: messages as a list of
// {role, content}, BFCL's "question" (a list of turns, each a list of messages; single-turn only)
// or a plain user text; tools as OpenAI's [{"type": "function", "function": {...}}] or BFCL's bare
// [{"name", "description", "parameters"}]; any of them may be JSON text in a string column.
#include "base/base.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"
#include "text/jinja.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;

EvalModel::ChatReply EvalModel::chat(const ojson&, const ojson&, const std::vector<std::string>&, int) {
  fail("this model cannot be given chat messages with tools, so it cannot run tool-calling tasks");
}

namespace {

// A column's value; JSON text in a string column is parsed (datasets often store lists that way).
ojson column(const Doc& d, const std::string& name, const char* what, bool json_text = true) {
  if (!d.fields.is_object() || !d.fields.contains(name)) fail(d.where, ": no column '", name, "' (", what, ")");
  ojson v = d.fields[name];
  if (json_text && v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const size_t k = s.find_first_not_of(" \t\r\n");
    if (k != std::string::npos && (s[k] == '[' || s[k] == '{')) {
      ojson p = ojson::parse(s, nullptr, false);
      if (p.is_discarded()) fail(d.where, ": column '", name, "' (", what, "): a string that is not valid JSON");
      v = std::move(p);
    }
  }
  return v;
}

ojson doc_messages(const TaskConfig& t, const Doc& d) {
  ojson v = column(d, t.messages_field, "doc_to_messages: the chat messages");
  if (v.is_string()) return ojson::array({{{"role", "user"}, {"content", v}}});
  if (v.is_array() && !v.empty() && v[0].is_array()) {  // BFCL's question: turns of messages
    if (v.size() != 1)
      fail(d.where, ": column '", t.messages_field, "': ", v.size(), " turns; only single-turn tool calling is supported");
    v = ojson(v[0]);
  }
  if (!v.is_array() || v.empty()) fail(d.where, ": column '", t.messages_field, "': expected a non-empty list of messages");
  for (size_t i = 0; i < v.size(); i++)
    if (!v[i].is_object() || !v[i].contains("role") || !v[i]["role"].is_string())
      fail(d.where, ": column '", t.messages_field, "'[", i, "]: expected {\"role\": ..., \"content\": ...}");
  return v;
}

ojson doc_functions(const TaskConfig& t, const Doc& d) {
  ojson v = column(d, t.tools_field, "doc_to_tools: the function schemas");
  if (v.is_object()) v = ojson::array({v});
  if (!v.is_array()) fail(d.where, ": column '", t.tools_field, "': expected a list of function schemas");
  ojson out = ojson::array();
  for (size_t i = 0; i < v.size(); i++) {
    ojson f = v[i];
    if (f.is_object() && f.contains("function") && f["function"].is_object()) {
      if (f.value("type", "function") != "function")
        fail(d.where, ": column '", t.tools_field, "'[", i, "]: only function tools are supported");
      f = ojson(f["function"]);
    }
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get_ref<const std::string&>().empty())
      fail(d.where, ": column '", t.tools_field, "'[", i, "]: expected {\"name\": ..., \"parameters\": {...}}");
    if (f.contains("parameters") && !f["parameters"].is_object())
      fail(d.where, ": column '", t.tools_field, "'[", i, "].parameters: expected a JSON Schema object");
    out.push_back(std::move(f));
  }
  return out;
}

ojson doc_expected(const TaskConfig& t, const Doc& d, const ojson& functions) {
  ojson v;
  const DocField& f = t.doc_to_target;
  std::string what = "doc_to_target";
  if (f.kind == DocField::Text && d.fields.is_object() && d.fields.contains(f.text)) {
    v = column(d, f.text, "doc_to_target: the possible answer");
    what = "column '" + f.text + "'";
  } else if (f.kind == DocField::Text) {
    std::string s;
    try {
      s = JinjaTemplate::parse(f.text, cat(t.source, ": ", t.task, ": doc_to_target")).render(d.fields);
    } catch (const Error& e) {
      fail(d.where, ": ", e.what());
    }
    v = ojson::parse(s, nullptr, false);
    if (v.is_discarded()) fail(d.where, ": doc_to_target: rendered '", printable(s, 80), "', which is not JSON");
  } else {
    fail(d.where, ": doc_to_target: expected the column of the possible answer (a list of {\"func\": {\"param\": [values]}})");
  }
  if (v.is_null()) v = ojson::array();  // no call expected
  if (!v.is_array()) fail(d.where, ": ", what, ": expected a list of {\"func\": {\"param\": [values]}} ([] for no call)");
  for (size_t i = 0; i < v.size(); i++) {
    const ojson& e = v[i];
    if (!e.is_object() || e.size() != 1 || !e.begin()->is_object())
      fail(d.where, ": ", what, "[", i, "]: expected {\"function_name\": {\"param\": [acceptable values]}}");
    const std::string name = e.begin().key();
    bool known = false;
    for (const ojson& fn : functions) known |= fn["name"] == name;
    if (!known) fail(d.where, ": ", what, "[", i, "]: no function '", name, "' among the tools");
    for (auto a = e.begin()->begin(); a != e.begin()->end(); ++a)
      if (!a->is_array())
        fail(d.where, ": ", what, "[", i, "].", name, ".", a.key(), ": expected a list of acceptable values ([\"\", ...]: optional)");
  }
  return v;
}

// BFCL's own type names as JSON Schema's, all the way down, for the model's eyes.
ojson schema_for_model(const ojson& s) {
  if (s.is_array()) {
    ojson a = ojson::array();
    for (const ojson& x : s) a.push_back(schema_for_model(x));
    return a;
  }
  if (!s.is_object()) return s;
  ojson o = ojson::object();
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (it.key() == "type" && it->is_string()) {
      const std::string ty = it->get<std::string>();
      o["type"] = ty == "dict" ? "object" : ty == "float" ? "number" : ty == "tuple" ? "array" : ty == "any" ? "string" : ty;
    } else if (it.key() == "properties" && it->is_object()) {
      ojson p = ojson::object();
      for (auto q = it->begin(); q != it->end(); ++q) p[q.key()] = schema_for_model(*q);
      o["properties"] = p;
    } else if (it.key() == "items") {
      o["items"] = schema_for_model(*it);
    } else {
      o[it.key()] = *it;
    }
  }
  return o;
}

}  // namespace

ojson tools_for_template(const ojson& functions) {
  ojson out = ojson::array();
  for (const ojson& f : functions) {
    ojson fn = f;
    if (fn.contains("parameters")) fn["parameters"] = schema_for_model(fn["parameters"]);
    out.push_back({{"type", "function"}, {"function", fn}});
  }
  return out;
}

Prompt tool_prompt(const TaskConfig& t, const Doc& d) {
  Prompt p;
  p.messages = doc_messages(t, d);
  p.functions = doc_functions(t, d);
  p.expected = doc_expected(t, d, p.functions);
  p.context = ojson({{"messages", p.messages}, {"tools", p.functions}}).dump(-1, ' ', false, ojson::error_handler_t::replace);
  p.target = p.expected.dump(-1, ' ', false, ojson::error_handler_t::replace);
  return p;
}

ojson tool_sample(EvalModel& model, const TaskConfig& t, const Prompt& p) {
  const std::vector<std::string> until = t.until_given ? t.until : std::vector<std::string>{};  // default: end of turn
  EvalModel::ChatReply r = model.chat(p.messages, tools_for_template(p.functions), until, t.max_gen_toks);
  const ToolCallCheck c = check_tool_calls(p.functions, p.expected, r.calls);
  ojson calls = ojson::array();
  for (const ToolCall& k : r.calls) {
    ojson args = ojson::parse(k.arguments, nullptr, false);
    calls.push_back({{"name", k.name}, {"arguments", args.is_discarded() ? ojson(k.arguments) : args}});
  }
  ojson s = ojson::object();
  if (!r.prompt.empty()) s["chat_prompt"] = r.prompt;
  s["prediction"] = r.text;
  s["content"] = r.content;
  s["tool_calls"] = calls;
  s["name_ok"] = c.name_ok;
  s["args_ok"] = c.valid;
  if (!c.valid) s["error"] = c.error, s["error_type"] = c.error_type;
  s["metrics"] = {{"tool_call_acc", c.valid ? 1.0 : 0.0}, {"tool_name_acc", c.name_ok ? 1.0 : 0.0}};
  return s;
}

}  // namespace todae::eval
