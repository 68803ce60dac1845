// todae agent: tools — the one contract every secretary tool (calendar, mail, data analysis), every
// remote MCP tool and the runtime share. A tool declares what the model sees (name, description,
// JSON Schema of its arguments) and what the runtime must know to keep the user safe: whether
// calling it has a side effect (sending, writing, deleting, inviting) and which of its arguments
// direct that effect somewhere (recipients, attendees, file paths) — the "sinks" the safety policy
// guards against values that came from untrusted content (policy.h).
//
// Tools never ask the user anything themselves: the runtime confirms side effects before it calls
// run(), showing describe(args). A tool reports failure by throwing todae::Error (one line, names the
// field); the runtime turns that into an error result the model reads.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace todae::agent {

using json = nlohmann::ordered_json;

// Where content came from. Mail, events, files and remote MCP servers are data, never instructions.
enum class Trust { User, Untrusted };

struct ToolSpec {
  std::string name, description;
  json input_schema = json{{"type", "object"}};  // JSON Schema of the arguments
  json output_schema;                            // JSON Schema of `structured`; null when none
  bool side_effect = false;  // true: runs only after the user confirms (the runtime's gate)
  // JSON Pointers (RFC 6901) into the arguments whose values direct a side effect: "/to" (a string or
  // an array of them), "/attendees/*/email" ("*": every element of an array).
  std::vector<std::string> sinks;
  bool read_only = false;  // MCP annotations.readOnlyHint (true for pure reads)
};

struct ToolResult {
  std::string text;  // what the model reads as the tool message
  json structured;   // MCP structuredContent, matching output_schema (null when none)
  bool is_error = false;
  Trust trust = Trust::Untrusted;  // content from outside the user is untrusted by default
  std::vector<std::string> files;  // files the tool wrote (charts), absolute paths
};

// What a running tool may use: progress reports and a cancellation flag (MCP notifications).
struct ToolContext {
  std::function<void(double progress, double total, const std::string& message)> progress;
  std::function<bool()> cancelled;
  void report(double done, double total, const std::string& message) const {
    if (progress) progress(done, total, message);
  }
  bool is_cancelled() const { return cancelled && cancelled(); }
};

struct Tool {
  ToolSpec spec;
  std::function<ToolResult(const json& args, ToolContext& ctx)> run;
  // A one-paragraph human summary of what a side-effecting call will do, shown for confirmation
  // (exact recipients, subject and text; event, time and attendees). Empty: the runtime shows the
  // arguments as JSON.
  std::function<std::string(const json& args)> describe;
};

struct ToolRegistry {
  std::vector<Tool> tools;
  void add(Tool t);  // fails on a duplicate or invalid name (MCP: [A-Za-z0-9_.-]{1,128})
  const Tool* find(std::string_view name) const;
  // The OpenAI `tools` array: [{"type":"function","function":{name, description, parameters}}].
  json openai_tools() const;
};

// Checks `value` against the JSON Schema subset tools use (type, properties, required,
// additionalProperties, items, enum, const, minimum/maximum, exclusiveMinimum/Maximum,
// minLength/maxLength, minItems/maxItems, anyOf/oneOf/allOf, format date/date-time/email).
// Returns "" when it conforms, else the first problem as "PATH: what is wrong" (PATH a JSON Pointer,
// "(root)" for the whole value).
std::string validate_json(const json& schema, const json& value);

// Values at a JSON Pointer with "*" wildcards (see ToolSpec::sinks); strings only, in order.
std::vector<std::string> values_at(const json& doc, std::string_view pointer);

}  // namespace todae::agent
