// OpenAI request validation and response shapes (see api.h).
#include "serve/api.h"

#include <cmath>
#include <cstring>
#include <random>

#include "base/base.h"
#include "text/text.h"

namespace todae::serve {

// ---- errors -------------------------------------------------------------------------------------

ApiError::ApiError(int status_, std::string message_, std::string type_, std::string param_, std::string code_)
    : status(status_),
      message(std::move(message_)),
      type(std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

ApiError invalid_request(std::string message, std::string param, std::string code) {
  return ApiError(400, std::move(message), "invalid_request_error", std::move(param), std::move(code));
}
ApiError invalid_api_key() {
  return ApiError(401, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.", "invalid_request_error",
                  "", "invalid_api_key");
}
ApiError model_not_found(const std::string& model) {
  return ApiError(404, cat("The model '", model, "' does not exist or you do not have access to it."),
                  "invalid_request_error", "model", "model_not_found");
}
ApiError route_not_found(const std::string& method, const std::string& path) {
  return ApiError(404, cat("Invalid URL (", method, " ", path, ")"), "invalid_request_error", "", "unknown_url");
}
ApiError body_too_large(size_t limit) {
  return ApiError(413, cat("Request body too large: the limit is ", limit, " bytes."), "invalid_request_error", "",
                  "request_too_large");
}
ApiError queue_full(int retry_after_s) {
  ApiError e(429, "The server is busy: every slot is in use and the queue is full. Retry later.", "requests", "",
             "rate_limit_exceeded");
  e.retry_after = retry_after_s;
  return e;
}
ApiError server_error(std::string message) {
  return ApiError(500, std::move(message), "server_error", "", "internal_error");
}
ApiError unavailable(std::string message) {
  return ApiError(503, std::move(message), "server_error", "", "service_unavailable");
}

json error_json(const ApiError& e) {
  json err = json::object();
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  return json{{"error", err}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---- field readers ------------------------------------------------------------------------------

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a decimal";
    default:
      return "an unknown type";
  }
}

[[noreturn]] void bad_type(const std::string& param, const char* expected, const json& got) {
  throw invalid_request(
      cat("Invalid type for '", param, "': expected ", expected, ", but got ", type_name(got), " instead."), param,
      "invalid_type");
}

[[noreturn]] void bad_value(const std::string& param, const std::string& why) {
  throw invalid_request(cat("Invalid '", param, "': ", why), param, "invalid_value");
}

// The field, or nullptr when absent or null (null means "default" in OpenAI's API).
const json* field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> get_number(const json& o, const char* key, double lo, double hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad_type(key, "a number", *v);
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_value(key, cat("expected a value between ", lo, " and ", hi, ", but got ", v->dump(), " instead."));
  return x;
}

std::optional<int64_t> get_int(const json& o, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() &&
      !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() && std::fabs(v->get<double>()) < 9e15))
    bad_type(key, "an integer", *v);
  int64_t x = v->is_number_unsigned()  ? int64_t(std::min<uint64_t>(v->get<uint64_t>(), uint64_t(INT64_MAX)))
              : v->is_number_integer() ? v->get<int64_t>()
                                       : int64_t(v->get<double>());
  if (x < lo || x > hi) {
    if (x < lo)
      bad_value(key, cat("integer below minimum value. Expected a value >= ", lo, ", but got ", x, " instead."));
    bad_value(key, cat("integer above maximum value. Expected a value <= ", hi, ", but got ", x, " instead."));
  }
  return x;
}

std::optional<bool> get_bool(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad_type(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad_type(key, "a string", *v);
  return v->get<std::string>();
}

std::string require_model(const json& body) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null())
    throw invalid_request("you must provide a model parameter", "model", "missing_required_parameter");
  if (!it->is_string()) bad_type("model", "a string", *it);
  return it->get<std::string>();
}

bool valid_tool_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// Message content: a string, or an array of parts of which only text is supported.
std::string read_content(const json& c, const std::string& param) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad_type(param, "a string or an array of content parts", c);
  std::string out;
  for (size_t j = 0; j < c.size(); ++j) {
    const json& part = c[j];
    std::string pp = cat(param, "[", j, "]");
    if (!part.is_object()) bad_type(pp, "an object", part);
    auto type = get_string(part, "type");
    if (!type)
      throw invalid_request(cat("Missing required parameter: '", pp, ".type'."), pp + ".type",
                            "missing_required_parameter");
    if (*type == "text" || *type == "input_text") {
      const json* t = field(part, "text");
      if (!t)
        throw invalid_request(cat("Missing required parameter: '", pp, ".text'."), pp + ".text",
                              "missing_required_parameter");
      if (!t->is_string()) bad_type(pp + ".text", "a string", *t);
      out += t->get<std::string>();
    } else if (*type == "image_url" || *type == "input_audio" || *type == "file" || *type == "refusal") {
      if (*type == "refusal") continue;
      throw invalid_request(cat("This model accepts text only; content part type '", *type, "' is not supported."),
                            pp + ".type", "unsupported_content_type");
    } else {
      bad_value(pp + ".type", cat("unknown content part type '", *type, "'."));
    }
  }
  return out;
}

json read_messages(const json& body) {
  const json* m = field(body, "messages");
  if (!m) throw invalid_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (!m->is_array()) bad_type("messages", "an array", *m);
  if (m->empty())
    throw invalid_request("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages",
                          "empty_array");
  json out = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    std::string p = cat("messages[", i, "]");
    if (!msg.is_object()) bad_type(p, "an object", msg);
    const json* role_v = field(msg, "role");
    if (!role_v)
      throw invalid_request(cat("Missing required parameter: '", p, ".role'."), p + ".role",
                            "missing_required_parameter");
    if (!role_v->is_string()) bad_type(p + ".role", "a string", *role_v);
    std::string role = role_v->get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      bad_value(p + ".role", cat("'", role, "' is not one of ['system', 'developer', 'user', 'assistant', 'tool']."));
    json o = {{"role", role}};
    const json* content = field(msg, "content");
    if (content) {
      o["content"] = read_content(*content, p + ".content");
    } else if (role != "assistant") {
      throw invalid_request(cat("Missing required parameter: '", p, ".content'."), p + ".content",
                            "missing_required_parameter");
    } else {
      o["content"] = "";
    }
    if (auto name = get_string(msg, "name")) o["name"] = *name;
    if (role == "tool") {
      const json* id = field(msg, "tool_call_id");
      if (!id)
        throw invalid_request(cat("Missing required parameter: '", p, ".tool_call_id'."), p + ".tool_call_id",
                              "missing_required_parameter");
      if (!id->is_string()) bad_type(p + ".tool_call_id", "a string", *id);
      o["tool_call_id"] = *id;
    }
    if (role == "assistant") {
      if (const json* calls = field(msg, "tool_calls")) {
        if (!calls->is_array()) bad_type(p + ".tool_calls", "an array", *calls);
        json oc = json::array();
        for (size_t k = 0; k < calls->size(); ++k) {
          const json& c = (*calls)[k];
          std::string cp = cat(p, ".tool_calls[", k, "]");
          if (!c.is_object()) bad_type(cp, "an object", c);
          const json* fn = field(c, "function");
          if (!fn)
            throw invalid_request(cat("Missing required parameter: '", cp, ".function'."), cp + ".function",
                                  "missing_required_parameter");
          if (!fn->is_object()) bad_type(cp + ".function", "an object", *fn);
          auto name = get_string(*fn, "name");
          if (!name)
            throw invalid_request(cat("Missing required parameter: '", cp, ".function.name'."), cp + ".function.name",
                                  "missing_required_parameter");
          json args = json::object();
          if (const json* a = field(*fn, "arguments")) {
            if (!a->is_string()) bad_type(cp + ".function.arguments", "a string", *a);
            json parsed = json::parse(a->get<std::string>(), nullptr, false);
            args = parsed.is_discarded() ? *a : parsed;
          }
          json call = {{"type", "function"}, {"function", {{"name", *name}, {"arguments", args}}}};
          if (auto id = get_string(c, "id")) call["id"] = *id;
          oc.push_back(std::move(call));
        }
        if (!oc.empty()) o["tool_calls"] = std::move(oc);
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

void read_tools(const json& body, GenRequest& r) {
  if (const json* t = field(body, "tools")) {
    if (!t->is_array()) bad_type("tools", "an array", *t);
    for (size_t i = 0; i < t->size(); ++i) {
      const json& tool = (*t)[i];
      std::string p = cat("tools[", i, "]");
      if (!tool.is_object()) bad_type(p, "an object", tool);
      auto type = get_string(tool, "type");
      if (type && *type != "function")
        bad_value(p + ".type", cat("'", *type, "' is not supported; only 'function' tools are."));
      const json* fn = field(tool, "function");
      if (!fn)
        throw invalid_request(cat("Missing required parameter: '", p, ".function'."), p + ".function",
                              "missing_required_parameter");
      if (!fn->is_object()) bad_type(p + ".function", "an object", *fn);
      ToolSpec s;
      auto name = get_string(*fn, "name");
      if (!name)
        throw invalid_request(cat("Missing required parameter: '", p, ".function.name'."), p + ".function.name",
                              "missing_required_parameter");
      if (!valid_tool_name(*name))
        bad_value(p + ".function.name", "a function name must be 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'.");
      for (const auto& other : r.tools)
        if (other.name == *name) bad_value(p + ".function.name", cat("duplicate function name '", *name, "'."));
      s.name = *name;
      s.description = get_string(*fn, "description").value_or("");
      if (const json* params = field(*fn, "parameters")) {
        if (!params->is_object()) bad_type(p + ".function.parameters", "an object", *params);
        s.parameters = *params;
      }
      s.strict = get_bool(*fn, "strict").value_or(false);
      r.tools.push_back(std::move(s));
      r.tools_json.push_back(tool);
    }
  }
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      std::string s = tc->get<std::string>();
      if (s == "none")
        r.tool_choice.mode = ToolChoice::None;
      else if (s == "auto")
        r.tool_choice.mode = ToolChoice::Auto;
      else if (s == "required")
        r.tool_choice.mode = ToolChoice::Required;
      else
        bad_value("tool_choice", cat("'", s, "' is not one of ['none', 'auto', 'required'] or a named function."));
    } else if (tc->is_object()) {
      const json* fn = field(*tc, "function");
      if (!fn || !fn->is_object())
        throw invalid_request(
            "Invalid 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice",
            "invalid_value");
      auto name = get_string(*fn, "name");
      if (!name)
        throw invalid_request("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name",
                              "missing_required_parameter");
      r.tool_choice.mode = ToolChoice::Named;
      r.tool_choice.name = *name;
    } else {
      bad_type("tool_choice", "a string or an object", *tc);
    }
    if (r.tools.empty() && r.tool_choice.mode != ToolChoice::None && r.tool_choice.mode != ToolChoice::Auto)
      throw invalid_request(
          "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice",
          "invalid_value");
    if (r.tool_choice.mode == ToolChoice::Named) {
      bool found = false;
      for (const auto& t : r.tools) found |= t.name == r.tool_choice.name;
      if (!found) bad_value("tool_choice", cat("no function named '", r.tool_choice.name, "' in 'tools'."));
    }
  }
  if (auto p = get_bool(body, "parallel_tool_calls")) r.parallel_tool_calls = *p;
}

void read_response_format(const json& body, GenRequest& r) {
  const json* rf = field(body, "response_format");
  if (!rf) return;
  if (!rf->is_object()) bad_type("response_format", "an object", *rf);
  auto type = get_string(*rf, "type");
  if (!type)
    throw invalid_request("Missing required parameter: 'response_format.type'.", "response_format.type",
                          "missing_required_parameter");
  if (*type == "text") {
    r.response_format.type = ResponseFormat::Text;
  } else if (*type == "json_object") {
    r.response_format.type = ResponseFormat::JsonObject;
    r.response_format.schema = {{"type", "object"}};
  } else if (*type == "json_schema") {
    const json* js = field(*rf, "json_schema");
    if (!js)
      throw invalid_request("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema",
                            "missing_required_parameter");
    if (!js->is_object()) bad_type("response_format.json_schema", "an object", *js);
    auto name = get_string(*js, "name");
    if (!name)
      throw invalid_request("Missing required parameter: 'response_format.json_schema.name'.",
                            "response_format.json_schema.name", "missing_required_parameter");
    if (!valid_tool_name(*name))
      bad_value("response_format.json_schema.name", "a name must be 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'.");
    r.response_format.type = ResponseFormat::JsonSchema;
    r.response_format.name = *name;
    if (const json* s = field(*js, "schema")) {
      if (!s->is_object() && !s->is_boolean()) bad_type("response_format.json_schema.schema", "an object", *s);
      r.response_format.schema = *s;
    } else {
      r.response_format.schema = {{"type", "object"}};
    }
  } else {
    bad_value("response_format.type", cat("'", *type, "' is not one of ['text', 'json_object', 'json_schema']."));
  }
}

void read_stop(const json& body, GenRequest& r) {
  const json* s = field(body, "stop");
  if (!s) return;
  if (s->is_string()) {
    if (!s->get<std::string>().empty()) r.stop.push_back(s->get<std::string>());
    return;
  }
  if (!s->is_array()) bad_type("stop", "a string or an array of strings", *s);
  if (s->size() > 16) bad_value("stop", cat("at most 16 stop sequences, got ", s->size(), "."));
  for (size_t i = 0; i < s->size(); ++i) {
    if (!(*s)[i].is_string()) bad_type(cat("stop[", i, "]"), "a string", (*s)[i]);
    std::string x = (*s)[i].get<std::string>();
    if (!x.empty()) r.stop.push_back(std::move(x));
  }
}

// min_tokens: 1 for chat; 0 for completions, where max_tokens 0 with echo scores the prompt alone.
void read_sampling(const json& body, GenRequest& r, const Limits& lim, int min_tokens = 1) {
  if (auto v = get_number(body, "temperature", 0, 2)) r.temperature = *v;
  if (auto v = get_number(body, "top_p", 0, 1)) r.top_p = *v;
  if (auto v = get_number(body, "min_p", 0, 1)) r.min_p = *v;
  if (auto v = get_int(body, "top_k", 0, 1 << 30)) r.top_k = int(*v);
  if (auto v = get_number(body, "repetition_penalty", 0.01, 10)) r.repetition_penalty = *v;
  if (auto v = get_number(body, "presence_penalty", -2, 2)) r.presence_penalty = *v;
  if (auto v = get_number(body, "frequency_penalty", -2, 2)) r.frequency_penalty = *v;
  if (auto v = get_int(body, "seed", INT64_MIN, INT64_MAX)) r.seed = static_cast<uint64_t>(*v);
  if (auto v = get_int(body, "n", 1, lim.max_n)) r.n = int(*v);
  if (auto v = get_int(body, "max_tokens", min_tokens, 1 << 30)) r.max_tokens = int(*v);
  if (auto v = get_int(body, "max_completion_tokens", min_tokens, 1 << 30)) r.max_tokens = int(*v);
  if (auto v = get_bool(body, "ignore_eos")) r.ignore_eos = *v;
  read_stop(body, r);
  if (auto v = get_bool(body, "stream")) r.stream = *v;
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad_type("stream_options", "an object", *so);
    if (!r.stream)
      throw invalid_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                            "stream_options", "invalid_value");
    if (auto u = get_bool(*so, "include_usage")) r.include_usage = *u;
  }
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object()) bad_type("logit_bias", "an object", *lb);
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      std::string p = "logit_bias." + it.key();
      char* end = nullptr;
      long id = std::strtol(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end != 0 || id < 0 || (lim.vocab_size > 0 && id >= lim.vocab_size))
        bad_value("logit_bias", cat("'", it.key(), "' is not a token id of this model."));
      if (!it->is_number()) bad_type(p, "a number", *it);
      double b = it->get<double>();
      if (!(b >= -100 && b <= 100))
        bad_value("logit_bias", cat("bias ", it->dump(), " for token ", id, " is outside [-100, 100]."));
      r.logit_bias.emplace_back(int32_t(id), float(b));
    }
  }
}

// Token ids given by the client: integers in the vocabulary.
std::vector<int32_t> read_ids(const json& a, const std::string& param, const Limits& lim) {
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number_integer()) bad_type(cat(param, "[", i, "]"), "an integer token id", a[i]);
    int64_t id = a[i].get<int64_t>();
    if (id < 0 || (lim.vocab_size > 0 && id >= lim.vocab_size))
      bad_value(cat(param, "[", i, "]"), cat("token id ", id, " is outside the vocabulary."));
    ids.push_back(int32_t(id));
  }
  return ids;
}

bool all_integers(const json& a) {
  for (const auto& x : a)
    if (!x.is_number_integer()) return false;
  return true;
}

}  // namespace

json parse_body(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) {
    // Say where: parse again with exceptions for the position. A number no double holds (1e999) is
    // an out_of_range there, not a parse_error (it escaped as a 500; found by fuzz_api_request).
    std::string where;
    try {
      json again = json::parse(body.begin(), body.end());
      (void)again;
    } catch (const json::parse_error& e) {
      where = cat(" (at byte ", e.byte, ")");
    } catch (const json::exception&) {
      where = " (a number too large for a double)";
    }
    throw invalid_request(cat("We could not parse the JSON body of your request", where,
                              ". The OpenAI API expects a JSON payload, but what was sent was not valid JSON "
                              "(or not valid UTF-8)."),
                          "", "invalid_json");
  }
  if (!j.is_object())
    throw invalid_request(cat("The request body must be a JSON object, not ", type_name(j), "."), "", "invalid_json");
  return j;
}

GenRequest parse_chat_request(const json& body, const Limits& lim) {
  GenRequest r;
  r.endpoint = Endpoint::Chat;
  r.model = require_model(body);
  r.messages = read_messages(body);
  read_sampling(body, r, lim);
  if (auto v = get_bool(body, "logprobs")) r.logprobs = *v;
  if (auto v = get_int(body, "top_logprobs", 0, 20)) {
    if (!r.logprobs && *v > 0)
      throw invalid_request(
          "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
          "top_logprobs", "invalid_value");
    r.top_logprobs = int(*v);
  }
  read_tools(body, r);
  read_response_format(body, r);
  if (r.response_format.type != ResponseFormat::Text &&
      (r.tool_choice.mode == ToolChoice::Required || r.tool_choice.mode == ToolChoice::Named))
    throw invalid_request("'response_format' cannot be combined with a required or named 'tool_choice'.",
                          "response_format", "invalid_value");
  return r;
}

GenRequest parse_completion_request(const json& body, const Limits& lim) {
  GenRequest r;
  r.endpoint = Endpoint::Completion;
  r.model = require_model(body);
  const json* p = field(body, "prompt");
  if (!p) throw invalid_request("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  // A text, token ids, or a list of either (one kind per request, as OpenAI takes them).
  if (p->is_string()) {
    r.prompts.push_back(p->get<std::string>());
  } else if (p->is_array()) {
    if (p->empty()) throw invalid_request("Invalid 'prompt': empty array.", "prompt", "empty_array");
    if (all_integers(*p)) {
      r.prompts_ids.push_back(read_ids(*p, "prompt", lim));
    } else {
      if (p->size() > 256) bad_value("prompt", cat("at most 256 prompts per request, got ", p->size(), "."));
      const bool texts = (*p)[0].is_string();
      for (size_t i = 0; i < p->size(); ++i) {
        const json& x = (*p)[i];
        const std::string pp = cat("prompt[", i, "]");
        if (texts && x.is_string()) {
          r.prompts.push_back(x.get<std::string>());
        } else if (!texts && x.is_array() && all_integers(x)) {
          if (x.empty()) throw invalid_request(cat("Invalid '", pp, "': empty array."), pp, "empty_array");
          r.prompts_ids.push_back(read_ids(x, pp, lim));
        } else {
          bad_type(pp, i == 0 ? "a string or an array of token ids"
                       : texts ? "a string (like the other prompts)"
                               : "an array of token ids (like the other prompts)",
                   x);
        }
      }
    }
  } else {
    bad_type("prompt", "a string, an array of strings or an array of token ids", *p);
  }
  r.prompt_is_ids = !r.prompts_ids.empty();
  if (r.prompt_is_ids)
    r.prompt_ids = r.prompts_ids[0];
  else
    r.prompt = r.prompts[0];
  read_sampling(body, r, lim, 0);
  if (auto v = get_int(body, "logprobs", 0, 5)) {
    r.logprobs = true;
    r.top_logprobs = int(*v);
  }
  if (auto v = get_bool(body, "echo")) r.echo = *v;
  if (r.max_tokens == 0 && !r.echo)
    bad_value("max_tokens", "0 is allowed only with 'echo': true (the prompt scored, nothing generated).");
  const size_t n_prompts = std::max(r.prompts.size(), r.prompts_ids.size());
  if (n_prompts > 1 && r.stream)
    throw invalid_request("Streaming takes one prompt per request; send the prompts in separate requests.", "prompt",
                          "invalid_value");
  if (auto v = get_int(body, "best_of", 1, lim.max_n))
    if (*v != r.n) throw invalid_request("'best_of' other than 'n' is not supported.", "best_of", "invalid_value");
  if (auto s = get_string(body, "suffix"))
    if (!s->empty()) throw invalid_request("'suffix' is not supported by this model.", "suffix", "invalid_value");
  return r;
}

EmbedRequest parse_embedding_request(const json& body, const Limits& lim) {
  EmbedRequest r;
  r.model = require_model(body);
  const json* in = field(body, "input");
  if (!in) throw invalid_request("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  auto empty_input = [] {
    return invalid_request("'$.input' is invalid: an input must not be empty.", "input", "invalid_value");
  };
  if (in->is_string()) {
    if (in->get<std::string>().empty()) throw empty_input();
    r.texts.push_back(in->get<std::string>());
  } else if (in->is_array()) {
    if (in->empty()) throw empty_input();
    if (in->size() > 2048) bad_value("input", "at most 2048 inputs per request.");
    if (all_integers(*in)) {
      r.token_ids.push_back(read_ids(*in, "input", lim));
    } else {
      for (size_t i = 0; i < in->size(); ++i) {
        const json& x = (*in)[i];
        std::string p = cat("input[", i, "]");
        if (x.is_string()) {
          if (!r.token_ids.empty()) bad_type(p, "an array of token ids (like the other inputs)", x);
          if (x.get<std::string>().empty()) throw empty_input();
          r.texts.push_back(x.get<std::string>());
        } else if (x.is_array() && all_integers(x)) {
          if (!r.texts.empty()) bad_type(p, "a string (like the other inputs)", x);
          if (x.empty()) throw empty_input();
          r.token_ids.push_back(read_ids(x, p, lim));
        } else {
          bad_type(p, "a string or an array of token ids", x);
        }
      }
    }
  } else {
    bad_type("input", "a string or an array", *in);
  }
  if (auto f = get_string(body, "encoding_format")) {
    if (*f == "base64")
      r.base64 = true;
    else if (*f != "float")
      bad_value("encoding_format", cat("'", *f, "' is not one of ['float', 'base64']."));
  }
  if (auto d = get_int(body, "dimensions", 1, 1 << 20)) r.dimensions = int(*d);
  return r;
}

json output_schema(const GenRequest& r) {
  if (r.tool_choice.mode == ToolChoice::Required || r.tool_choice.mode == ToolChoice::Named) {
    auto one = [](const ToolSpec& t) {
      json params = t.parameters.empty() ? json{{"type", "object"}} : t.parameters;
      return json{{"type", "object"},
                  {"properties", {{"name", {{"type", "string"}, {"enum", {t.name}}}}, {"arguments", params}}},
                  {"required", {"name", "arguments"}},
                  {"additionalProperties", false}};
    };
    if (r.tool_choice.mode == ToolChoice::Named) {
      for (const auto& t : r.tools)
        if (t.name == r.tool_choice.name) return one(t);
    }
    if (r.tools.size() == 1) return one(r.tools[0]);
    json any = json::array();
    for (const auto& t : r.tools) any.push_back(one(t));
    return json{{"anyOf", any}};
  }
  if (r.tool_choice.mode != ToolChoice::None && !r.tools.empty()) return nullptr;
  if (r.response_format.type != ResponseFormat::Text) return r.response_format.schema;
  return nullptr;
}

// ---- responses ----------------------------------------------------------------------------------

json usage_json(const Usage& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {
json bytes_array(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}
}  // namespace

json chat_logprobs_json(const std::vector<LogprobEntry>& lps) {
  json content = json::array();
  for (const auto& e : lps) {
    json top = json::array();
    for (const auto& [tok, lp] : e.top)
      top.push_back({{"token", replace_invalid_utf8(tok)}, {"logprob", lp}, {"bytes", bytes_array(tok)}});
    content.push_back({{"token", replace_invalid_utf8(e.token)},
                       {"logprob", e.logprob},
                       {"bytes", bytes_array(e.token)},
                       {"top_logprobs", top}});
  }
  return json{{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs_json(const std::vector<LogprobEntry>& lps, std::string_view text, size_t offset0) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  size_t pos = 0, cp = offset0;  // byte position in text, code points before it
  auto is_cont = [&](size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  for (const auto& e : lps) {
    std::string t = replace_invalid_utf8(e.token);
    tokens.push_back(t);
    // the index of the character holding the token's first byte
    offsets.push_back(cp - (pos < text.size() && pos > 0 && is_cont(pos) ? 1 : 0));
    if (!e.token.empty() && text.compare(pos, e.token.size(), e.token) == 0) {
      for (size_t i = pos; i < pos + e.token.size(); ++i) cp += is_cont(i) ? 0 : 1;
      pos += e.token.size();
    }
    if (e.null) {
      token_lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    token_lps.push_back(e.logprob);
    json top = json::object();
    for (const auto& [tok, lp] : e.top) top[replace_invalid_utf8(tok)] = lp;
    if (!top.contains(t)) top[t] = e.logprob;
    tops.push_back(top);
  }
  return json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json tool_call_delta(int index, const ToolCall& c) {
  return json{{"index", index},
              {"id", c.id},
              {"type", "function"},
              {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

json chat_response(const std::string& id, int64_t created, const std::string& model,
                   const std::vector<ChoiceResult>& choices, const Usage& usage, bool want_logprobs) {
  json cs = json::array();
  for (const auto& c : choices) {
    json msg = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
    if (!c.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& t : c.tool_calls)
        calls.push_back(
            {{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
      msg["tool_calls"] = calls;
      if (c.text.empty()) msg["content"] = nullptr;
    }
    cs.push_back({{"index", c.index},
                  {"message", msg},
                  {"logprobs", want_logprobs ? chat_logprobs_json(c.logprobs) : json(nullptr)},
                  {"finish_reason", c.finish_reason}});
  }
  return json{{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", "todae"},
              {"choices", cs},
              {"usage", usage_json(usage)}};
}

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::vector<ChoiceResult>& choices, const Usage& usage, bool want_logprobs) {
  json cs = json::array();
  for (const auto& c : choices)
    cs.push_back({{"index", c.index},
                  {"text", c.text},
                  {"logprobs", want_logprobs ? completion_logprobs_json(c.logprobs, c.text) : json(nullptr)},
                  {"finish_reason", c.finish_reason}});
  return json{{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", "todae"},
              {"choices", cs},
              {"usage", usage_json(usage)}};
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, int index, const json& delta,
                const json& logprobs, const json& finish_reason, bool include_usage) {
  json j = {
      {"id", id},
      {"object", "chat.completion.chunk"},
      {"created", created},
      {"model", model},
      {"system_fingerprint", "todae"},
      {"choices", json::array({json{
                      {"index", index}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish_reason}}})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, int index,
                      const std::string& text, const json& logprobs, const json& finish_reason, bool include_usage) {
  json j = {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"system_fingerprint", "todae"},
            {"choices",
             json::array(
                 {json{{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish_reason}}})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

json usage_chunk(const std::string& id, int64_t created, const std::string& model, const char* object,
                 const Usage& usage) {
  return json{{"id", id},
              {"object", object},
              {"created", created},
              {"model", model},
              {"system_fingerprint", "todae"},
              {"choices", json::array()},
              {"usage", usage_json(usage)}};
}

json embeddings_response(const std::string& model, const std::vector<std::vector<float>>& vectors, bool base64,
                         int prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    json e = {{"object", "embedding"}, {"index", i}};
    if (base64) {
      std::string raw(vectors[i].size() * sizeof(float), '\0');
      std::memcpy(raw.data(), vectors[i].data(), raw.size());  // little-endian f32, as OpenAI sends
      e["embedding"] = base64_encode(raw);
    } else {
      e["embedding"] = vectors[i];
    }
    data.push_back(std::move(e));
  }
  return json{{"object", "list"},
              {"data", data},
              {"model", model},
              {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

json models_response(const std::string& model, int64_t created, int ctx,
                     const std::vector<std::pair<std::string, std::string>>& adapters) {
  json data = json::array(
      {json{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "todae"}, {"context_length", ctx}}});
  for (const auto& [name, path] : adapters)
    data.push_back(json{{"id", name},
                        {"object", "model"},
                        {"created", created},
                        {"owned_by", "todae"},
                        {"context_length", ctx},
                        {"root", path},
                        {"parent", model}});
  return json{{"object", "list"}, {"data", std::move(data)}};
}

// ---- SSE ----------------------------------------------------------------------------------------

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }
std::string sse_done() { return "data: [DONE]\n\n"; }
std::string sse_error(const ApiError& e) { return sse_event(error_json(e)); }

// ---- helpers ------------------------------------------------------------------------------------

std::string random_id(const char* prefix) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32));
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += alphabet[rng() % 62];
  return s;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::string bearer_token(std::string_view h) {
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  if (h.size() < 7) return {};
  std::string scheme(h.substr(0, 6));
  for (auto& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer" || h[6] != ' ') return {};
  h.remove_prefix(7);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  return std::string(h);
}

}  // namespace todae::serve
