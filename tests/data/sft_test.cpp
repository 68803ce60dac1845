// Fine-tuning data: the TRL formats to ids + loss masks (exact), every error naming file:line:field,
// truncation and drops, and batches (padded and packed) that hold every loss token exactly once.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "data/sft.h"
#include "text/jinja.h"
#include "text/test_util.h"

namespace todae::test {
namespace {

// A byte-level tokenizer without merges: every byte is the token whose id is the byte's value,
// so expected ids can be written down; the ChatML tokens are special ids 256...
enum : int32_t { kStart = 256, kEnd = 257, kEot = 258 };

std::string byte_tokenizer_json() {
  // GPT-2's byte -> character table: printable bytes map to themselves, the rest to U+0100...
  std::vector<int> printable;
  for (int b = 0; b < 256; ++b)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) printable.push_back(b);
  std::vector<uint32_t> cp(256);
  std::vector<bool> is_printable(256, false);
  for (int b : printable) is_printable[size_t(b)] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[size_t(b)] = is_printable[size_t(b)] ? uint32_t(b) : next++;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    uint32_t c = cp[size_t(b)];
    if (c < 0x80) {
      s += char(c);
    } else {
      s += char(0xC0 | (c >> 6));
      s += char(0x80 | (c & 0x3F));
    }
    vocab[s] = b;
  }
  const char* special[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (int i = 0; i < 3; ++i) {
    vocab[special[i]] = 256 + i;
    added.push_back({{"id", 256 + i}, {"content", special[i]}, {"special", true}});
  }
  nlohmann::ordered_json j = {{"version", "1.0"},
                              {"added_tokens", added},
                              {"normalizer", nullptr},
                              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                              {"post_processor", nullptr},
                              {"decoder", {{"type", "ByteLevel"}}},
                              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}}};
  return j.dump();
}

const Tokenizer& tok() {
  static const Tokenizer t = load_tokenizer_json(byte_tokenizer_json(), "bytes.json");
  return t;
}

// Qwen2.5's chat template (ChatML with tools), as its tokenizer_config.json has it.
const char* kQwen25 = R"TMPL({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TMPL";

SftOptions chatml() {
  SftOptions o;
  o.chat_template = kQwen25;
  o.eos_token = "<|endoftext|>";
  o.max_length = 4096;
  return o;
}

// Expected ids and mask written as parts: text (one id per byte) or a special id, in or out of
// the loss.
struct Part {
  std::string text;
  int32_t id = -1;
  Part(const char* t) : text(t) {}
  Part(std::string t) : text(std::move(t)) {}
  Part(int32_t i) : id(i) {}
};
struct Expect {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;
  Expect& add(std::initializer_list<Part> parts, bool in_loss) {
    for (const Part& p : parts) {
      if (p.id >= 0) {
        ids.push_back(p.id);
        loss.push_back(in_loss);
      }
      for (unsigned char c : p.text) {
        ids.push_back(c);
        loss.push_back(in_loss);
      }
    }
    return *this;
  }
  Expect& no(std::initializer_list<Part> p) { return add(p, false); }
  Expect& yes(std::initializer_list<Part> p) { return add(p, true); }
};

std::vector<SftExample> load(const std::string& jsonl, const SftOptions& o = chatml(), SftReport* r = nullptr) {
  return load_sft_jsonl_text(jsonl, "x.jsonl", tok(), o, r);
}

std::string load_error(const std::string& jsonl, const SftOptions& o = chatml()) {
  try {
    load(jsonl, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The loss tokens as text, one "|"-separated piece per run.
std::string loss_text(const SftExample& e) {
  std::string out;
  for (size_t i = 0; i < e.ids.size();) {
    if (!e.loss[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < e.ids.size() && e.loss[j]) ++j;
    if (!out.empty()) out += "|";
    out += decode(tok(), std::span<const int32_t>(e.ids.data() + i, j - i));
    i = j;
  }
  return out;
}

const std::string kSys = "system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

TEST(SftData, MessagesLossOnAssistantTurnsOnly) {
  auto ex = load(R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},)"
                 R"( {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})");
  ASSERT_EQ(ex.size(), 1u);
  Expect want;
  want.no({kStart, kSys, kEnd, "\n", kStart, "user\nHi", kEnd, "\n", kStart, "assistant\n"})
      .yes({"Hello!", kEnd})
      .no({"\n", kStart, "user\n2+2?", kEnd, "\n", kStart, "assistant\n"})
      .yes({"4", kEnd})
      .no({"\n"});
  EXPECT_EQ(ex[0].ids, want.ids);
  EXPECT_EQ(ex[0].loss, want.loss);
  EXPECT_EQ(ex[0].source, "x.jsonl:1");
  EXPECT_EQ(loss_text(ex[0]), "Hello!<|im_end|>|4<|im_end|>");
  // The whole id sequence is the template's render, tokenized with special tokens as ids.
  nlohmann::ordered_json msgs = nlohmann::ordered_json::parse(
      R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])");
  EXPECT_EQ(decode(tok(), ex[0].ids), apply_chat_template(std::string_view(kQwen25), msgs, nullptr, false));

  SftOptions all = chatml();
  all.loss_all = true;
  auto every = load(R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})", all);
  ASSERT_EQ(every.size(), 1u);
  EXPECT_EQ(every[0].loss[0], 0);  // nothing predicts the first token
  size_t n = every[0].ids.size();
  EXPECT_EQ(std::count(every[0].loss.begin(), every[0].loss.end(), 1), std::ptrdiff_t(n - 2));  // all but first, last "\n"
  EXPECT_EQ(every[0].ids.back(), '\n');
  EXPECT_EQ(every[0].loss.back(), 0);
}

TEST(SftData, ToolCallsAndToolMessagesRender) {
  // arguments as JSON text (OpenAI) and as an object (Hugging Face) render alike; tools go to the
  // template; the tool result is context, not loss.
  std::string tools = R"([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}])";
  for (std::string args : {R"("{\"city\": \"Seoul\"}")", R"({"city": "Seoul"})"}) {
    std::string line = R"({"tools": )" + tools + R"(, "messages": [{"role": "user", "content": "Weather?"},)"
                       R"( {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": )" +
                       args + R"(}}]}, {"role": "tool", "tool_call_id": "c1", "content": "sunny"},)"
                              R"( {"role": "assistant", "content": "It is sunny."}]})";
    auto ex = load(line);
    ASSERT_EQ(ex.size(), 1u);
    EXPECT_EQ(loss_text(ex[0]),
              "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Seoul\"}}\n</tool_call><|im_end|>|"
              "It is sunny.<|im_end|>");
    std::string text = decode(tok(), ex[0].ids);
    EXPECT_NE(text.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"weather\""), std::string::npos);
    EXPECT_NE(text.find("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"), std::string::npos);
  }
  // tools as JSON text (how many datasets store the column) is the same list.
  auto a = load(R"({"tools": [{"type": "function", "function": {"name": "f"}}], "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})");
  auto b = load(R"({"tools": "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].ids, b[0].ids);
  EXPECT_NE(decode(tok(), a[0].ids).find("# Tools"), std::string::npos);
  // Text content parts are joined; "developer" is the system role.
  auto parts = load(R"({"messages": [{"role": "developer", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": "c"}]})");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(decode(tok(), parts[0].ids).rfind("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n", 0), 0u);
}

TEST(SftData, PromptCompletionAndText) {
  auto ex = load("{\"prompt\": \"Q: 1+1\\nA:\", \"completion\": \" 2\"}\n\n{\"text\": \"abc\"}\n");
  ASSERT_EQ(ex.size(), 2u);
  Expect pc;
  pc.no({"Q: 1+1\nA:"}).yes({" 2", kEot});
  EXPECT_EQ(ex[0].ids, pc.ids);
  EXPECT_EQ(ex[0].loss, pc.loss);
  Expect text;
  text.yes({"abc", kEot});
  text.loss[0] = 0;
  EXPECT_EQ(ex[1].ids, text.ids);
  EXPECT_EQ(ex[1].loss, text.loss);
  EXPECT_EQ(ex[1].source, "x.jsonl:3");  // blank lines still count

  SftOptions o = chatml();
  o.add_eos = false;
  auto plain = load(R"({"text": "abc"})", o);
  EXPECT_EQ(plain[0].ids, (std::vector<int32_t>{'a', 'b', 'c'}));
  // Not twice when the text already ends with the eos token.
  auto twice = load(R"({"text": "abc<|endoftext|>"})");
  EXPECT_EQ(twice[0].ids, (std::vector<int32_t>{'a', 'b', 'c', kEot}));
  o.eos_id = 'z';  // an explicit id wins over eos_token
  o.add_eos = true;
  EXPECT_EQ(load(R"({"text": "ab"})", o)[0].ids, (std::vector<int32_t>{'a', 'b', 'z'}));

  // Conversational prompt-completion: the prompt with the generation prompt, the completion's
  // assistant turn as loss.
  auto conv = load(R"({"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hey"}]})");
  ASSERT_EQ(conv.size(), 1u);
  Expect c;
  c.no({kStart, kSys, kEnd, "\n", kStart, "user\nHi", kEnd, "\n", kStart, "assistant\n"}).yes({"Hey", kEnd}).no({"\n"});
  EXPECT_EQ(conv[0].ids, c.ids);
  EXPECT_EQ(conv[0].loss, c.loss);
  // The same conversation as messages gives the same example.
  auto same = load(R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]})");
  EXPECT_EQ(same[0].ids, conv[0].ids);
  EXPECT_EQ(same[0].loss, conv[0].loss);
}

TEST(SftData, RealQwen3TemplateSingleTurnAndItsMultiTurnLimit) {
  SftOptions o = chatml();
  o.chat_template = read_file(std::string(TODAE_SOURCE_DIR) + "/tests/fuzz/corpus/jinja/qwen3.jinja");
  auto ex = load(R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})", o);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(loss_text(ex[0]), "<think>\n\n</think>\n\nHello<|im_end|>");
  // Qwen3 drops the thinking block of earlier turns only when a later user turn follows, so the
  // conversation up to the first answer is not a prefix of the whole: a clear error, not a wrong mask.
  std::string multi = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})";
  EXPECT_NE(load_error(multi, o).find("x.jsonl:1: messages[1]: the chat template is not prefix-stable"), std::string::npos)
      << load_error(multi, o);
  o.loss_all = true;  // the way out the message names
  EXPECT_EQ(load(multi, o).size(), 1u);
}

TEST(SftData, ErrorsNameFileLineAndField) {
  struct Case {
    std::string jsonl, want;
  };
  const std::string ok = R"({"text": "fine"})";
  const std::vector<Case> cases = {
      {ok + "\n{\"text\": \"a\"", "x.jsonl:2: malformed JSON: "},
      {"[1, 2]", "x.jsonl:1: top level: expected a JSON object, got a list"},
      {R"({"foo": 1})", "x.jsonl:1: top level: no 'messages', 'prompt' + 'completion' or 'text' field"},
      {R"({"text": 5})", "x.jsonl:1: text: expected a string, got a number"},
      {R"({"prompt": "a"})", "x.jsonl:1: completion: missing"},
      {R"({"completion": "a"})", "x.jsonl:1: prompt: missing"},
      {R"({"prompt": "a", "completion": [{"role": "assistant", "content": "b"}]})",
       "x.jsonl:1: completion: expected a string (the prompt is one), got a list"},
      {R"({"prompt": [{"role": "user", "content": "a"}], "completion": "b"})",
       "x.jsonl:1: completion: expected a list of messages (the prompt is one), got a string"},
      {R"({"prompt": 3, "completion": "b"})", "x.jsonl:1: prompt: expected a string or a list of messages, got a number"},
      {R"({"messages": "hi"})", "x.jsonl:1: messages: expected a list of messages, got a string"},
      {R"({"messages": []})", "x.jsonl:1: messages: empty list"},
      {R"({"messages": [3]})", "x.jsonl:1: messages[0]: expected a message object, got a number"},
      {R"({"messages": [{"content": "a"}]})", "x.jsonl:1: messages[0].role: missing"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]})",
       "x.jsonl:1: messages[1].role: 'bot' is not one of system, developer, user, assistant, tool"},
      {R"({"messages": [{"role": "user"}]})", "x.jsonl:1: messages[0].content: missing"},
      {R"({"messages": [{"role": "user", "content": null}]})", "x.jsonl:1: messages[0].content: expected a string, got null"},
      {R"({"messages": [{"role": "user", "content": 7}]})",
       "x.jsonl:1: messages[0].content: expected a string or a list of text parts, got a number"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "x.jsonl:1: messages[0].content[0].type: 'image_url' is not supported (text only)"},
      {R"({"messages": [{"role": "user", "content": "a", "tool_calls": []}]})",
       "x.jsonl:1: messages[0].tool_calls: only assistant messages call tools"},
      {R"({"messages": [{"role": "assistant", "tool_calls": {}}]})",
       "x.jsonl:1: messages[0].tool_calls: expected a list, got an object"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"type": "function"}]}]})",
       "x.jsonl:1: messages[0].tool_calls[0].function: missing"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]})",
       "x.jsonl:1: messages[0].tool_calls[0].function.name: missing"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 1}}]}]})",
       "x.jsonl:1: messages[0].tool_calls[0].function.arguments: expected an object or a JSON string, got a number"},
      {R"({"messages": [{"role": "tool", "content": "r", "tool_call_id": 5}]})",
       "x.jsonl:1: messages[0].tool_call_id: expected a string, got a number"},
      {R"({"tools": {}, "messages": [{"role": "user", "content": "a"}]})",
       "x.jsonl:1: tools: expected a list of tool definitions, got an object"},
      {R"({"tools": "[oops", "messages": [{"role": "user", "content": "a"}]})",
       "x.jsonl:1: tools: a string that is not a JSON list"},
      {R"({"tools": [1], "messages": [{"role": "user", "content": "a"}]})", "x.jsonl:1: tools[0]: expected an object, got a number"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"caf\xC3\"}]}",
       "x.jsonl:1: messages[0].content: invalid UTF-8 (byte 0xc3 at column 47)"},
      {"{\"te\xFFxt\": \"a\"}", "x.jsonl:1: top level (a key): invalid UTF-8 (byte 0xff"},
      {"{\"text\": \"a\"}\xFF", "x.jsonl:1: invalid UTF-8 (byte 0xff at column 14)"},
      {ok + "\n" + std::string(100, '[') + std::string(100, ']'), "x.jsonl:2: JSON nested more than 64 levels deep"},
      {"", "x.jsonl: empty file (no JSON lines)"},
      {"\n  \n\r\n", "x.jsonl: empty file (no JSON lines)"},
  };
  for (const Case& c : cases) {
    std::string got = load_error(c.jsonl);
    EXPECT_EQ(got.substr(0, c.want.size()), c.want) << "input: " << c.jsonl;
    EXPECT_EQ(got.find('\n'), std::string::npos) << got;  // one line
  }
  // A messages line needs a template; the template's own errors name the turn it failed on.
  SftOptions none = chatml();
  none.chat_template.clear();
  EXPECT_NE(load_error(R"({"messages": [{"role": "user", "content": "a"}]})", none)
                .find("x.jsonl:1: messages: chat messages need a chat template"),
            std::string::npos);
  EXPECT_EQ(load(R"({"text": "no template needed"})", none).size(), 1u);
  SftOptions strict = chatml();
  strict.chat_template =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
      "{{ m.content }}{% endfor %}";
  EXPECT_EQ(load_error(R"({"messages": [{"role": "system", "content": "a"}]})", strict),
            "x.jsonl:1: messages: the chat template failed: no system role");
  SftOptions broken = chatml();
  broken.chat_template = "{% for %}";
  EXPECT_NE(load_error(R"({"messages": [{"role": "user", "content": "a"}]})", broken)
                .find("x.jsonl:1: messages: the chat template does not parse: chat_template:1:"),
            std::string::npos);
  // add_eos without any eos token
  SftOptions noeos = chatml();
  noeos.eos_token.clear();
  EXPECT_EQ(load_error(R"({"text": "a"})", noeos), "x.jsonl:1: text: add_eos is set but the tokenizer has no eos token (give eos_id)");
  // Files: the name is the path; a missing file is an error naming it; sources name file and line.
  TempDir d;
  std::string f1 = d.file("a.jsonl", "{\"text\": \"one\"}\n"), f2 = d.file("b.jsonl", "\n{\"text\": \"two\"}\n");
  SftReport rep;
  auto ex = load_sft_jsonl({f1, f2}, tok(), chatml(), &rep);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[1].source, f2 + ":2");
  EXPECT_EQ(rep.lines, 2);
  try {
    load_sft_jsonl({f1, d.path + "/missing.jsonl"}, tok(), chatml());
    ADD_FAILURE() << "no error for a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jsonl"), std::string::npos) << e.what();
  }
  std::string empty = d.file("empty.jsonl", "");
  try {
    load_sft_jsonl({f1, empty}, tok(), chatml());
    ADD_FAILURE() << "no error for an empty file";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), empty + ": empty file (no JSON lines)");
  }
}

TEST(SftData, TruncationAndDropsAreCountedAndListed) {
  SftOptions o = chatml();
  o.max_length = 8;
  SftReport rep;
  auto ex = load("{\"text\": \"0123456789abcdef\"}\n"                                                              // cut, kept
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"long question\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n"  // cut, no loss left
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}]}\n"                             // no assistant turn
                 "{\"prompt\": \"p\", \"completion\": \"c\"}\n",
                 o, &rep);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].ids.size(), 8u);
  EXPECT_EQ(ex[0].ids, (std::vector<int32_t>{'0', '1', '2', '3', '4', '5', '6', '7'}));
  EXPECT_EQ(ex[1].source, "x.jsonl:4");
  EXPECT_EQ(rep.lines, 4);
  EXPECT_EQ(rep.examples, 2);
  EXPECT_EQ(rep.truncated, 3);  // line 3 too: cut, though it had nothing to learn anyway
  EXPECT_EQ(rep.dropped, 2);
  EXPECT_EQ(rep.tokens, 8 + 3);
  EXPECT_EQ(rep.loss_tokens, 7 + 2);
  ASSERT_EQ(rep.notes.size(), 2u);
  EXPECT_EQ(rep.notes[0], "x.jsonl:2: dropped: no loss token within the first 8 tokens");
  EXPECT_EQ(rep.notes[1], "x.jsonl:3: dropped: nothing to learn (no assistant turn, or an empty completion)");
  EXPECT_EQ(rep.summary(), "2 examples from 4 lines, 11 tokens (9 in the loss), 3 truncated, 2 dropped");
}

// Examples whose ids name (example, position) so every batch cell can be traced back.
std::vector<SftExample> traced(const std::vector<int>& lengths) {
  std::vector<SftExample> out;
  for (size_t e = 0; e < lengths.size(); ++e) {
    SftExample x;
    for (int t = 0; t < lengths[e]; ++t) {
      x.ids.push_back(int32_t(1000 * (e + 1) + t));
      x.loss.push_back(t > 0 && (t + int(e)) % 3 != 0);  // an irregular mask
    }
    x.source = cat("e", e);
    out.push_back(x);
  }
  return out;
}

// Checks rows against the examples: each document is one example's ids in order, targets follow
// the mask, padding is (0, -1), no document crosses a row; returns how often each (example,
// position) was a target.
std::map<std::pair<int, int>, int> check_batches(const std::vector<SftExample>& ex, const std::vector<SftBatch>& bs,
                                                 int batch_tokens, int max_length, bool packed) {
  std::map<std::pair<int, int>, int> seen;
  for (const SftBatch& b : bs) {
    EXPECT_GE(b.B, 1);
    EXPECT_LE(b.T, max_length);
    EXPECT_TRUE(b.T % 8 == 0 || b.T == max_length) << b.T;
    if (b.B > 1) {
      EXPECT_LE(int64_t(b.B) * b.T, batch_tokens);
    }
    EXPECT_EQ(b.inputs.size(), size_t(b.B) * size_t(b.T));
    EXPECT_EQ(b.targets.size(), b.inputs.size());
    EXPECT_EQ(b.docs.size(), packed ? size_t(b.B) : 0u);
    int64_t loss = 0;
    for (int r = 0; r < b.B; ++r) {
      const int32_t* in = &b.inputs[size_t(r) * size_t(b.T)];
      const int32_t* tg = &b.targets[size_t(r) * size_t(b.T)];
      std::vector<int> docs;
      if (packed) {
        docs = b.docs[size_t(r)];
      } else {
        int n = 0;
        while (n < b.T && in[n] != 0) ++n;
        docs = {n};
      }
      int off = 0;
      for (int len : docs) {
        EXPECT_GT(len, 0);
        int e = in[off] / 1000 - 1;
        EXPECT_EQ(len, int(ex[size_t(e)].ids.size()) - 1) << "document " << e << " is not a whole example";
        for (int t = 0; t < len; ++t) {
          EXPECT_EQ(in[off + t], ex[size_t(e)].ids[size_t(t)]);
          int32_t want = ex[size_t(e)].loss[size_t(t + 1)] ? ex[size_t(e)].ids[size_t(t + 1)] : -1;
          EXPECT_EQ(tg[off + t], want);
          if (tg[off + t] >= 0) {
            ++seen[{e, t + 1}];
            ++loss;
          }
        }
        off += len;
      }
      EXPECT_LE(off, b.T);
      for (int t = off; t < b.T; ++t) {
        EXPECT_EQ(in[t], 0);
        EXPECT_EQ(tg[t], -1);
      }
    }
    EXPECT_EQ(loss, b.loss_tokens);
  }
  return seen;
}

void expect_each_loss_token_once(const std::vector<SftExample>& ex, const std::map<std::pair<int, int>, int>& seen) {
  size_t want = 0;
  for (size_t e = 0; e < ex.size(); ++e)
    for (size_t t = 1; t < ex[e].ids.size(); ++t)
      if (ex[e].loss[t]) {
        ++want;
        auto it = seen.find({int(e), int(t)});
        EXPECT_TRUE(it != seen.end() && it->second == 1) << "example " << e << " position " << t;
      }
  EXPECT_EQ(seen.size(), want);
}

TEST(SftBatches, PaddedRowsOneExampleEach) {
  auto ex = traced({5, 12, 3, 30, 9, 9, 17, 2});
  std::vector<size_t> order = {3, 0, 1, 2, 4, 5, 6, 7};
  auto bs = make_sft_batches(ex, order, 64, 32, false);
  ASSERT_FALSE(bs.empty());
  expect_each_loss_token_once(ex, check_batches(ex, bs, 64, 32, false));
  // Greedy in the given order: example 3 (29-long row) alone at T = 32; then 0, 1, 2 at T = 16...
  EXPECT_EQ(bs[0].B, 2);  // 3 and 0 fit 2 x 32 = 64
  EXPECT_EQ(bs[0].T, 32);
  EXPECT_EQ(bs[0].inputs[0], 4000);
  EXPECT_EQ(bs[0].inputs[32], 1000);
  EXPECT_EQ(bs[1].T, 16);
  EXPECT_EQ(bs[1].B, 4);  // 1, 2, 4, 5: longest row 11 -> T 16, 4 x 16 = 64
  EXPECT_EQ(make_sft_batches(ex, order, 64, 32, false)[1].inputs, bs[1].inputs);  // deterministic
  // One example longer than batch_tokens still gets a batch of its own.
  auto big = make_sft_batches(ex, {3}, 10, 32, false);
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].B, 1);
  EXPECT_EQ(big[0].T, 32);
  // T is capped at max_length when rounding up would pass it.
  auto capped = make_sft_batches(traced({30}), {0}, 100, 30, false);
  EXPECT_EQ(capped[0].T, 30);
}

TEST(SftBatches, PackedRowsKeepDocumentsWhole) {
  auto ex = traced({5, 12, 3, 30, 9, 9, 17, 2, 25, 6, 1});
  std::vector<size_t> order(ex.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (i * 7) % ex.size();
  auto bs = make_sft_batches(ex, order, 96, 32, true);
  ASSERT_FALSE(bs.empty());
  for (const SftBatch& b : bs) {
    EXPECT_EQ(b.T, 32);
    EXPECT_LE(b.B, 3);
    for (const auto& d : b.docs) {
      int sum = 0;
      for (int n : d) sum += n;
      EXPECT_LE(sum, b.T);
    }
  }
  expect_each_loss_token_once(ex, check_batches(ex, bs, 96, 32, true));
  // Short examples share rows: fewer rows than examples.
  int rows = 0;
  for (const SftBatch& b : bs) rows += b.B;
  EXPECT_LT(rows, 10);
  // All short: rows are the longest rounded up to 8, not max_length.
  auto shortb = make_sft_batches(traced({5, 4, 6}), {0, 1, 2}, 1000, 512, true);
  ASSERT_EQ(shortb.size(), 1u);
  EXPECT_EQ(shortb[0].T, 8);
  EXPECT_EQ(shortb[0].B, 2);  // 4 + 3 in the first row, 5 in the second
  EXPECT_EQ(shortb[0].docs, (std::vector<std::vector<int>>{{4, 3}, {5}}));
  // batch_tokens below T: one row per batch.
  auto one = make_sft_batches(ex, order, 4, 32, true);
  for (const SftBatch& b : one) EXPECT_EQ(b.B, 1);
  expect_each_loss_token_once(ex, check_batches(ex, one, 4, 32, true));
}

TEST(SftBatches, RealExamplesAndBadInput) {
  // Examples from the loader batch the same way; their loss tokens all appear once.
  std::string jsonl;
  for (int i = 0; i < 12; ++i)
    jsonl += cat(R"({"messages": [{"role": "user", "content": "q)", i, R"("}, {"role": "assistant", "content": ")",
                 std::string(size_t(i * 3 % 17), 'a'), "\"}]}\n");
  SftOptions o = chatml();
  o.max_length = 128;
  SftReport rep;
  auto ex = load(jsonl, o, &rep);
  ASSERT_EQ(ex.size(), 12u);
  std::vector<size_t> order(ex.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;
  for (bool packed : {false, true}) {
    auto bs = make_sft_batches(ex, order, 512, 128, packed);
    int64_t loss = 0;
    for (const SftBatch& b : bs) loss += b.loss_tokens;
    // every loss position but none of position 0, each once
    EXPECT_EQ(loss, rep.loss_tokens);
  }
  EXPECT_THROW(make_sft_batches(ex, {99}, 512, 128, false), Error);
  EXPECT_THROW(make_sft_batches(ex, {0}, 512, 8, false), Error);  // longer than max_length
  EXPECT_THROW(make_sft_batches(ex, {0}, 0, 128, false), Error);
  // No loss token: no row.
  auto noloss = traced({4});
  std::fill(noloss[0].loss.begin(), noloss[0].loss.end(), uint8_t{0});
  EXPECT_TRUE(make_sft_batches(noloss, {0}, 64, 32, true).empty());
}

}  // namespace
}  // namespace todae::test
