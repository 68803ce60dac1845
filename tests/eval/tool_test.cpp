// Tool-calling tasks: BFCL's AST check rule by rule (each case passes one way and fails the other),
// the task YAML keys, the bundled tool_calls_ko documents, and the runner with a scripted chat model.
#include <gtest/gtest.h>

#include <map>

#include "base/base.h"
#include "eval/eval.h"
#include "text/test_util.h"

using namespace todae;
using namespace todae::eval;
using ojson = nlohmann::ordered_json;

namespace {

ojson J(const char* s) { return ojson::parse(s); }

// A schema with one parameter of each kind BFCL knows.
const ojson& functions() {
  static const ojson f = J(R"([
    {"name": "book", "description": "d", "parameters": {"type": "object", "required": ["city", "nights"], "properties": {
      "city": {"type": "string"}, "nights": {"type": "integer"}, "price": {"type": "number"}, "breakfast": {"type": "boolean"},
      "guests": {"type": "array", "items": {"type": "string"}}, "rooms": {"type": "array", "items": {"type": "integer"}},
      "prefs": {"type": "object"}, "legs": {"type": "array", "items": {"type": "dict"}}, "note": {"type": "string"}}}},
    {"name": "math.hypot", "parameters": {"type": "dict", "required": ["x", "y"], "properties": {
      "x": {"type": "integer"}, "y": {"type": "integer"}, "z": {"type": "float"}}}},
    {"name": "ping", "parameters": {"type": "object", "properties": {}}}
  ])");
  return f;
}

// The possible answer of "book": city Seoul (any spelling), 2 nights, optional price 100.0, ...
const ojson& book_answer() {
  static const ojson a = J(R"([{"book": {
    "city": ["Seoul", "서울"], "nights": [2], "price": ["", 100.0], "breakfast": ["", true],
    "guests": ["", ["Kim Minsu", "Lee Jieun"]], "rooms": ["", [101, 102]],
    "prefs": ["", {"floor": ["high"], "view": ["sea", ""]}],
    "legs": ["", [{"from": ["ICN"], "to": ["GMP"]}, {"from": ["GMP"], "to": ["PUS"]}]]}}])");
  return a;
}

ToolCall call(const std::string& name, const std::string& args) { return {"", name, args}; }

ToolCallCheck check_book(const std::string& args) { return check_tool_calls(functions(), book_answer(), {call("book", args)}); }

void expect_fail(const ToolCallCheck& c, const std::string& type) {
  EXPECT_FALSE(c.valid) << type;
  EXPECT_EQ(c.error_type, type) << c.error;
  EXPECT_FALSE(c.error.empty());
}

}  // namespace

TEST(BfclAst, StandardizeString) {
  EXPECT_EQ(bfcl_standardize("April 1, 2024"), "april12024");
  EXPECT_EQ(bfcl_standardize("April 1,2024"), bfcl_standardize("april 1 2024"));
  EXPECT_EQ(bfcl_standardize("It's a_B-c.d/e*f^g"), "it\"sabcdefg");
  EXPECT_EQ(bfcl_standardize("2025/03/17"), bfcl_standardize("2025-03-17"));
  EXPECT_EQ(bfcl_standardize("주간 회의"), "주간회의");
  EXPECT_EQ(bfcl_standardize("ÉCOLE:1"), "école:1");  // Unicode lowercase; ':' and tabs are kept
  EXPECT_EQ(bfcl_standardize("a\tb"), "a\tb");
}

TEST(BfclAst, FunctionNameRequiredUnknownAndOptional) {
  const ToolCallCheck ok = check_book(R"({"city": "seoul", "nights": 2})");
  EXPECT_TRUE(ok.valid) << ok.error;
  EXPECT_TRUE(ok.name_ok);
  // Wrong function: neither names nor arguments right.
  ToolCallCheck c = check_tool_calls(functions(), book_answer(), {call("ping", "{}")});
  expect_fail(c, "simple_function_checker:wrong_func_name");
  EXPECT_FALSE(c.name_ok);
  // A required parameter left out.
  c = check_book(R"({"city": "Seoul"})");
  expect_fail(c, "simple_function_checker:missing_required");
  EXPECT_TRUE(c.name_ok);  // the name was right; only the arguments are wrong
  // A parameter the schema does not have, and one the schema has but the answer does not list.
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "pets": 1})"), "simple_function_checker:unexpected_param");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "note": "x"})"), "simple_function_checker:unexpected_param");
  // An answer parameter without "" must be given even when the schema calls it optional.
  const ojson need_price = J(R"([{"book": {"city": ["Seoul"], "nights": [2], "price": [100.0]}}])");
  expect_fail(check_tool_calls(functions(), need_price, {call("book", R"({"city": "Seoul", "nights": 2})")}),
              "simple_function_checker:missing_optional");
  EXPECT_TRUE(check_tool_calls(functions(), need_price, {call("book", R"({"city": "Seoul", "nights": 2, "price": 100})")}).valid);
  // Arguments that are not a JSON object.
  expect_fail(check_book("[1, 2]"), "simple_function_checker:invalid_arguments");
  expect_fail(check_book("{\"city\": "), "simple_function_checker:invalid_arguments");
  // A dotted name comes back with '_' (function-calling APIs do not allow '.').
  const ojson hyp = J(R"([{"math.hypot": {"x": [3], "y": [4], "z": ["", 0.0]}}])");
  EXPECT_TRUE(check_tool_calls(functions(), hyp, {call("math_hypot", R"({"x": 3, "y": 4})")}).valid);
  EXPECT_TRUE(check_tool_calls(functions(), hyp, {call("math.hypot", R"({"x": 3, "y": 4})")}).valid);
  expect_fail(check_tool_calls(functions(), hyp, {call("math-hypot", R"({"x": 3, "y": 4})")}),
              "simple_function_checker:wrong_func_name");
}

TEST(BfclAst, StringsCompareStandardized) {
  EXPECT_TRUE(check_book(R"({"city": " SEOUL.", "nights": 2})").valid);
  EXPECT_TRUE(check_book(R"({"city": "서울", "nights": 2})").valid);
  expect_fail(check_book(R"({"city": "Busan", "nights": 2})"), "value_error:string");
  expect_fail(check_book(R"({"city": "Seoul City", "nights": 2})"), "value_error:string");
}

TEST(BfclAst, NumbersBooleansAndTypes) {
  // integer: an int only (not 2.0, not "2", not true)
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2.0})"), "type_error:simple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": "2"})"), "type_error:simple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": true})"), "type_error:simple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 3})"), "value_error:others");
  // number (float): an int is taken as a float (Python's auto conversion), the value must match
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "price": 100})").valid);
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "price": 100.0})").valid);
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "price": 1e2})").valid);
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "price": 100.5})"), "value_error:others");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "price": "100"})"), "type_error:simple");
  // boolean
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "breakfast": true})").valid);
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "breakfast": false})"), "value_error:others");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "breakfast": "true"})"), "type_error:simple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "breakfast": 1})"), "type_error:simple");
  // string: a number is not a string
  expect_fail(check_book(R"({"city": 7, "nights": 2})"), "type_error:simple");
  // A "variable": the answer holds a value of another type than the schema's; it is compared as it is.
  const ojson var = J(R"([{"math.hypot": {"x": ["a"], "y": [4]}}])");
  EXPECT_TRUE(check_tool_calls(functions(), var, {call("math_hypot", R"({"x": "a", "y": 4})")}).valid);
  expect_fail(check_tool_calls(functions(), var, {call("math_hypot", R"({"x": "A", "y": 4})")}), "value_error:others");
}

TEST(BfclAst, ListsDictsAndListsOfDicts) {
  // list of strings: standardized items, order kept
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "guests": ["kim minsu", "LEE JIEUN"]})").valid);
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "guests": ["Lee Jieun", "Kim Minsu"]})"), "value_error:list/tuple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "guests": ["Kim Minsu"]})"), "value_error:list/tuple");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "guests": "Kim Minsu"})"), "type_error:simple");
  // list of integers: the items' type is checked
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "rooms": [101, 102]})").valid);
  EXPECT_FALSE(check_book(R"({"city": "Seoul", "nights": 2, "rooms": ["101", "102"]})").valid);
  EXPECT_FALSE(check_book(R"({"city": "Seoul", "nights": 2, "rooms": [101, 103]})").valid);
  // dict: keys the answer knows, values among the acceptable ones (strings standardized), a key
  // without "" must be there
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "prefs": {"floor": "HIGH", "view": "sea"}})").valid);
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "prefs": {"floor": "high"}})").valid);
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "prefs": {"view": "sea"}})"), "value_error:dict_key");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "prefs": {"floor": "high", "bed": "twin"}})"), "value_error:dict_key");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "prefs": {"floor": "low"}})"), "value_error:dict_value");
  // list of dicts: same length, each dict in order
  EXPECT_TRUE(check_book(R"({"city": "Seoul", "nights": 2, "legs": [{"from": "icn", "to": "gmp"}, {"from": "GMP", "to": "PUS"}]})").valid);
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "legs": [{"from": "ICN", "to": "GMP"}]})"), "value_error:list_dict_count");
  expect_fail(check_book(R"({"city": "Seoul", "nights": 2, "legs": [{"from": "GMP", "to": "PUS"}, {"from": "ICN", "to": "GMP"}]})"),
              "value_error:dict_value");
}

TEST(BfclAst, ParallelCallsMatchInAnyOrder) {
  const ojson two = J(R"([{"math.hypot": {"x": [3], "y": [4], "z": [""]}}, {"math.hypot": {"x": [5], "y": [12], "z": [""]}}])");
  const auto a = call("math_hypot", R"({"x": 3, "y": 4})"), b = call("math_hypot", R"({"x": 5, "y": 12})");
  EXPECT_TRUE(check_tool_calls(functions(), two, {a, b}).valid);
  EXPECT_TRUE(check_tool_calls(functions(), two, {b, a}).valid);
  ToolCallCheck c = check_tool_calls(functions(), two, {a, a});
  expect_fail(c, "parallel_function_checker_no_order:cannot_find_match");
  EXPECT_TRUE(c.name_ok);
  c = check_tool_calls(functions(), two, {a});
  expect_fail(c, "parallel_function_checker_no_order:wrong_count");
  EXPECT_FALSE(c.name_ok);
  expect_fail(check_tool_calls(functions(), two, {a, b, b}), "parallel_function_checker_no_order:wrong_count");
  // Different functions in any order; the names alone right.
  const ojson mixed = J(R"([{"ping": {}}, {"book": {"city": ["Seoul"], "nights": [2]}}])");
  EXPECT_TRUE(check_tool_calls(functions(), mixed, {call("book", R"({"city": "Seoul", "nights": 2})"), call("ping", "{}")}).valid);
  c = check_tool_calls(functions(), mixed, {call("book", R"({"city": "Seoul", "nights": 1})"), call("ping", "{}")});
  EXPECT_FALSE(c.valid);
  EXPECT_TRUE(c.name_ok);
  // One expected call, one made of the wrong count: "multiple" and "simple" categories.
  expect_fail(check_tool_calls(functions(), J(R"([{"ping": {}}])"), {}), "parallel_function_checker_no_order:wrong_count");
}

TEST(BfclAst, NoCallExpected) {
  const ojson none = ojson::array();
  ToolCallCheck c = check_tool_calls(functions(), none, {});
  EXPECT_TRUE(c.valid);
  EXPECT_TRUE(c.name_ok);
  c = check_tool_calls(functions(), none, {call("ping", "{}")});
  expect_fail(c, "irrelevance:called");
  EXPECT_FALSE(c.name_ok);
}

TEST(BfclAst, ToolsForTemplateUseJsonSchemaTypes) {
  const ojson t = tools_for_template(functions());
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0]["type"], "function");
  EXPECT_EQ(t[0]["function"]["name"], "book");
  EXPECT_EQ(t[0]["function"]["parameters"]["properties"]["legs"]["items"]["type"], "object");
  EXPECT_EQ(t[1]["function"]["parameters"]["type"], "object");
  EXPECT_EQ(t[1]["function"]["parameters"]["properties"]["z"]["type"], "number");
}

namespace {

// Replies from a table keyed by the last user message; records what it was given.
struct ChatModel : EvalModel {
  std::map<std::string, std::string> replies;
  ojson last_tools;
  int chats = 0;
  std::vector<LogLik> loglikelihood(const std::string&, const std::vector<std::string>&) override { return {}; }
  LogLik loglikelihood_rolling(const std::string&) override { return {}; }
  std::string generate_until(const std::string&, const std::vector<std::string>&, int) override { return ""; }
  ojson describe() override { return {{"path", "chat"}}; }
  ChatReply chat(const ojson& messages, const ojson& tools, const std::vector<std::string>&, int) override {
    chats++;
    last_tools = tools;
    ChatReply r;
    r.text = replies[messages.back()["content"].get<std::string>()];
    ToolCallParser p;
    r.content = p.push(r.text, r.calls);
    r.content += p.finish(r.calls);
    return r;
  }
};

const char* kTools = R"([{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}])";

}  // namespace

TEST(ToolTask, RunnerScoresCallsWithBreakdown) {
  test::TempDir d;
  auto line = [](const std::string& q, const std::string& gt) {
    return cat("{\"messages\": [{\"role\": \"user\", \"content\": \"", q, "\"}], \"tools\": ", kTools, ", \"ground_truth\": ", gt, "}\n");
  };
  d.file("test.jsonl", line("1+2", R"([{"add": {"a": [1], "b": [2]}}])") + line("3+4", R"([{"add": {"a": [3], "b": [4]}}])") +
                           line("hi", "[]") + line("5+6", R"([{"add": {"a": [5], "b": [6]}}])"));
  const std::string y = d.file("t.yaml", "task: tools\noutput_type: generate_until\ntool_call: true\ntest_split: test\ndataset_path: .\n");
  ChatModel cm;
  cm.replies = {{"1+2", "<|tool_call|>{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}<|/tool_call|>"},
                {"3+4", "<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 4, \"b\": 3}}</tool_call>"},  // args wrong
                {"hi", "안녕하세요!"},
                {"5+6", "5 더하기 6은 11입니다."}};  // no call where one was expected
  RunOptions ro;
  ro.out_dir = d.path + "/out";
  TaskConfig t = load_task_file(y);
  EXPECT_TRUE(t.tool_call);
  TaskResult r = run_task(cm, t, ro);
  EXPECT_EQ(r.n, 4);
  EXPECT_NEAR(r.metrics["tool_call_acc"]["value"].get<double>(), 2.0 / 4, 1e-12);
  EXPECT_NEAR(r.metrics["tool_name_acc"]["value"].get<double>(), 3.0 / 4, 1e-12);
  EXPECT_NEAR(r.metrics["tool_call_acc"]["stderr"].get<double>(), std::sqrt(1.0 / 3) / 2, 1e-12);
  EXPECT_EQ(cm.last_tools[0]["function"]["name"], "add");
  EXPECT_EQ(r.config["tool_call"], true);
  const std::string samples = read_file(ro.out_dir + "/samples_tools.jsonl");
  std::vector<ojson> s;
  for (size_t p = 0, e; (e = samples.find('\n', p)) != std::string::npos; p = e + 1) s.push_back(ojson::parse(samples.substr(p, e - p)));
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0]["name_ok"], true);
  EXPECT_EQ(s[0]["args_ok"], true);
  EXPECT_EQ(s[0]["tool_calls"][0]["arguments"]["b"], 2);
  EXPECT_EQ(s[1]["name_ok"], true);
  EXPECT_EQ(s[1]["args_ok"], false);
  EXPECT_EQ(s[1]["error_type"], "value_error:others");
  EXPECT_EQ(s[2]["args_ok"], true);
  EXPECT_EQ(s[2]["content"], "안녕하세요!");
  EXPECT_EQ(s[3]["name_ok"], false);
  EXPECT_EQ(s[3]["target"], R"([{"add":{"a":[5],"b":[6]}}])");
  // --resume reuses every sample.
  ro.resume = true;
  TaskResult again = run_task(cm, t, ro);
  EXPECT_EQ(again.reused, 4);
  EXPECT_EQ(cm.chats, 4);
  EXPECT_EQ(again.metrics, r.metrics);
}

TEST(ToolTask, YamlKeysAndErrors) {
  TaskConfig t = parse_task_yaml("task: a\noutput_type: tool_call\ndoc_to_messages: q\ndoc_to_tools: f\n", "a.yaml");
  EXPECT_TRUE(t.tool_call);
  EXPECT_EQ(t.output_type, OutputType::GenerateUntil);
  EXPECT_EQ(t.messages_field, "q");
  EXPECT_EQ(t.tools_field, "f");
  EXPECT_EQ(t.doc_to_target.text, "ground_truth");
  auto err = [](const std::string& yaml) {
    try {
      parse_task_yaml(yaml, "b.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err("task: a\noutput_type: tool_call\nmetric_list:\n  - metric: exact_match\n").find("does not apply to a tool-calling task"),
            std::string::npos);
  EXPECT_NE(err("task: a\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a]\nmetric_list:\n"
                "  - metric: tool_call_acc\n").find("needs a tool-calling task"),
            std::string::npos);
  EXPECT_NE(err("task: a\noutput_type: multiple_choice\ntool_call: true\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a]\n")
                .find("tool_call: needs output_type generate_until"),
            std::string::npos);
  EXPECT_NE(err("task: a\noutput_type: tool_call\ntool_call: maybe\n").find("b.yaml:3: tool_call: 'maybe' is not true or false"),
            std::string::npos);
}

TEST(ToolTask, DocumentErrorsNameFileLineAndColumn) {
  test::TempDir d;
  const std::string y = d.file("t.yaml", "task: tools\noutput_type: tool_call\ntest_split: test\ndataset_path: .\n");
  auto err = [&](const std::string& jsonl) {
    d.file("test.jsonl", jsonl);
    try {
      prepare_task(load_task_file(y), RunOptions{});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string tools = kTools;
  const std::string ok = cat("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": ", tools, ", \"ground_truth\": []}\n");
  EXPECT_EQ(err(ok), "no error");
  EXPECT_NE(err(ok + cat("{\"messages\": \"x\", \"tools\": ", tools, ", \"ground_truth\": [{\"sub\": {\"a\": [1]}}]}\n"))
                .find("test.jsonl:2: column 'ground_truth'[0]: no function 'sub' among the tools"),
            std::string::npos);
  EXPECT_NE(err(cat("{\"messages\": \"x\", \"tools\": ", tools, ", \"ground_truth\": [{\"add\": {\"a\": 1}}]}\n"))
                .find("test.jsonl:1: column 'ground_truth'[0].add.a: expected a list of acceptable values"),
            std::string::npos);
  EXPECT_NE(err(cat("{\"messages\": [], \"tools\": ", tools, ", \"ground_truth\": []}\n")).find("test.jsonl:1: column 'messages'"),
            std::string::npos);
  EXPECT_NE(err("{\"messages\": \"x\", \"tools\": [{\"description\": \"no name\"}], \"ground_truth\": []}\n")
                .find("test.jsonl:1: column 'tools'[0]: expected {\"name\""),
            std::string::npos);
  // BFCL's own shapes: question as turns, bare functions, JSON text in a column.
  EXPECT_EQ(err(cat("{\"messages\": [[{\"role\": \"user\", \"content\": \"x\"}]], \"tools\": ", ojson(ojson::parse(tools)[0]["function"]).dump(),
                    ", \"ground_truth\": \"[{\\\"add\\\": {\\\"a\\\": [1], \\\"b\\\": [2]}}]\"}\n")),
            "no error");
}

TEST(ToolTask, BundledKoreanTaskIsWellFormed) {
  TaskConfig t = builtin_task("tool_calls_ko");
  EXPECT_TRUE(t.tool_call);
  PreparedTask p = prepare_task(t, RunOptions{});  // every document checked
  ASSERT_EQ(p.size(), 31u);
  int none = 0, parallel = 0;
  for (size_t i = 0; i < p.size(); i++) {
    Prompt q = p.prompt(i);
    none += q.expected.empty();
    parallel += q.expected.size() == 2;
    ASSERT_GE(q.functions.size(), 2u);
    // The ground truth passes its own check when the model writes the first acceptable values.
    std::vector<ToolCall> calls;
    for (const ojson& e : q.expected) {
      ojson args = ojson::object();
      for (auto a = e.begin()->begin(); a != e.begin()->end(); ++a)
        for (const ojson& v : *a)
          if (!(v.is_string() && v.get<std::string>().empty())) {
            args[a.key()] = v;
            break;
          }
      calls.push_back({"", e.begin().key(), args.dump()});
    }
    ToolCallCheck c = check_tool_calls(q.functions, q.expected, calls);
    EXPECT_TRUE(c.valid) << i << ": " << c.error;
  }
  EXPECT_EQ(none, 6);
  EXPECT_EQ(parallel, 3);
}
