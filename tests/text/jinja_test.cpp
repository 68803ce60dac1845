// Jinja engine (src/text/jinja.h): each feature chat templates use, the reference's output
// conventions (@huggingface/jinja), error positions and resource bounds.
#include <gtest/gtest.h>

#include <string>

#include "base/base.h"
#include "text/jinja.h"
#include "text/text.h"

using todae::render_jinja;
using ojson = nlohmann::ordered_json;

namespace {

std::string R(const std::string& tmpl, const std::string& ctx = "{}") {
  return render_jinja(tmpl, ojson::parse(ctx));
}

std::string Err(const std::string& tmpl, const std::string& ctx = "{}", const todae::JinjaOptions& opt = {}) {
  try {
    std::string out = render_jinja(tmpl, ojson::parse(ctx), "chat_template", opt);
    return "no error, rendered: " + out;
  } catch (const todae::Error& e) {
    return e.what();
  }
}

}  // namespace

TEST(Jinja, TextAndOutput) {
  EXPECT_EQ(R("hello"), "hello");
  EXPECT_EQ(R("hello\n"), "hello");  // the template's final newline is dropped, as in the reference
  EXPECT_EQ(R("hello\n\n"), "hello\n");
  EXPECT_EQ(R("{{ name }}!", R"({"name": "토대"})"), "토대!");
  EXPECT_EQ(R("{# comment #}a{#- x -#}  b"), "ab");
  EXPECT_EQ(R(""), "");
}

TEST(Jinja, Literals) {
  EXPECT_EQ(R("{{ 'a\\'b\\n\\t\\\\' }}"), "a'b\n\t\\");
  EXPECT_EQ(R(R"({{ "x\"y" 'z' }})"), "x\"yz");  // adjacent strings concatenate
  EXPECT_EQ(R("{{ '\\u00e9\\x41' }}"), "éA");
  EXPECT_EQ(R("{{ 42 }} {{ -7 }} {{ 1.5 }} {{ 2.0 }} {{ 0.1 }}"), "42 -7 1.5 2.0 0.1");
  EXPECT_EQ(R("{{ true }} {{ False }} [{{ none }}] [{{ None }}]"), "true false [] []");
  EXPECT_EQ(R("{{ [1, 'a', none, true] }}"), R"([1, "a", null, true])");
  EXPECT_EQ(R("{{ {'b': 1, 'a': [2.0, 3.5]} }}"), R"({"b": 1, "a": [2, 3.5]})");
  EXPECT_EQ(R("{{ (1, 2) }} {{ () }}"), "[1, 2] []");
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 10 / 4 }} {{ 100000.0 * 10000000000000000.0 }}"),
            "0.30000000000000004 0.3333333333333333 2.5 1e+21");
}

TEST(Jinja, Arithmetic) {
  EXPECT_EQ(R("{{ 7 + 3 }} {{ 7 - 3 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }}"),
            "10 4 21 3.5 3 1 1024");
  EXPECT_EQ(R("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ 2 ** -1 }}"), "-4 2 3.0 0.5");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none ~ undefined_var }}"), "a1None");
  EXPECT_EQ(R("{{ 'a' + 'b' }} {{ 'n=' + 3 }} {{ [1] + [2, 3] }}"), "ab n=3 [1, 2, 3]");
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 * 3 ** 2 }}"), "7 9 18");
  EXPECT_EQ(R("{{ -(3) }} {{ - 2 + 5 }} {{ x[-1] }}", R"({"x": [1, 2]})"), "-3 3 2");
  EXPECT_NE(Err("{{ 1 // 0 }}").find("division or modulo by zero"), std::string::npos);
  EXPECT_NE(Err("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(Err("{{ 2 ** 100 }}").find("integer overflow"), std::string::npos);
}

TEST(Jinja, ComparisonsAndLogic) {
  EXPECT_EQ(R("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ [1, 'x'] == [1, 'x'] }} {{ 1 != 2 }}"),
            "true false true true true true");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in nope }}"),
            "true true true true false");
  EXPECT_EQ(R("{{ 0 or 'y' }} {{ 'x' and 0 }} {{ not 0 }} {{ not [] and not '' }} {{ [] or {} }}"), "y 0 true true {}");
  EXPECT_EQ(R("{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'yes' if 0 }}]"), "yes no []");
  EXPECT_EQ(R("{{ not x.startswith('a') and x.endswith('c') }}", R"({"x": "abc"})"), "false");
}

TEST(Jinja, IfElifElse) {
  const std::string t = "{% if n > 1 %}many{% elif n == 1 %}one{% else %}none{% endif %}";
  EXPECT_EQ(R(t, R"({"n": 5})"), "many");
  EXPECT_EQ(R(t, R"({"n": 1})"), "one");
  EXPECT_EQ(R(t, R"({"n": 0})"), "none");
  EXPECT_EQ(R("{% if missing %}a{% endif %}b"), "b");
  EXPECT_EQ(R("{% if missing.deep.er %}a{% else %}c{% endif %}"), "c");  // undefined chains stay undefined
}

TEST(Jinja, ForLoops) {
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
              "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
              R"({"xs": ["a", "b"]})"),
            "1021truefalse2;2110falsetrue2;");
  EXPECT_EQ(R("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.index }} {% endfor %}"), "21 42 ");
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", R"({"d": {"z": 1, "a": 2}})"), "z=1,a=2,");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", R"({"d": {"z": 1, "a": 2}})"), "za");
  EXPECT_EQ(R("{% for c in 'héy' %}[{{ c }}]{% endfor %}"), "[h][é][y]");
  EXPECT_EQ(R("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}"
              "{{ x }}{% endfor %}"),
            "02");
  EXPECT_EQ(R("{% for x in range(1, 10, 3) %}{{ x }}{% endfor %}{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}"),
            "147321");
  EXPECT_EQ(R("{% for a in [1, 2] %}{% for b in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"),
            "1112");
  EXPECT_EQ(R("{% for x in [1, 2] %}{{ loop.previtem }}/{{ loop.nextitem }} {% endfor %}"), "/2 1/ ");
  // set inside a loop does not leak out of it
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "0");
}

TEST(Jinja, SetNamespaceMacroCall) {
  EXPECT_EQ(R("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(R("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
              "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}"),
            "6 0123");
  EXPECT_EQ(R("{% set block %}  inner {{ 1 }} {% endset %}[{{ block }}]"), "[  inner 1 ]");
  EXPECT_EQ(R("{% macro greet(name, greeting='Hi') %}{{ greeting }}, {{ name }}!{% endmacro %}"
              "{{ greet('A') }} {{ greet('B', greeting='Yo') }} {{ greet(name='C') }}"),
            "Hi, A! Yo, B! Hi, C!");
  EXPECT_EQ(R("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
              "{% for x in [1] %}{% call wrap('b') %}x={{ x }}{% endcall %}{% endfor %}"),
            "<b>x=1</b>");
  EXPECT_EQ(R("{% filter upper %}abc {{ 'd' }}{% endfilter %}"), "ABC D");
  EXPECT_NE(Err("{% set ns = namespace() %}{% set ns.self = ns %}").find("cannot hold a namespace"),
            std::string::npos);
  EXPECT_NE(Err("{% set d = {} %}{% set d.x = 1 %}").find("only on namespace()"), std::string::npos);
}

TEST(Jinja, Tests) {
  const std::string ctx = R"({"s": "x", "n": 3, "f": 1.5, "l": [1], "d": {"a": 1}, "z": null, "t": true})";
  EXPECT_EQ(R("{{ s is string }}{{ n is number }}{{ n is integer }}{{ f is float }}{{ l is iterable }}"
              "{{ d is mapping }}{{ l is sequence }}{{ z is none }}{{ t is true }}{{ t is boolean }}",
              ctx),
            "truetruetruetruetruetruetruetruetruetrue");
  EXPECT_EQ(R("{{ nope is defined }}{{ nope is undefined }}{{ s is not none }}{{ n is odd }}{{ n is even }}"
              "{{ n is divisibleby 3 }}{{ n is divisibleby(2) }}{{ s is equalto 'x' }}{{ z is false }}",
              ctx),
            "falsetruetruetruefalsetruefalsetruefalse");
  EXPECT_EQ(R("{{ d is not mapping and s is string }}", ctx), "false");
}

TEST(Jinja, StringMethods) {
  const std::string ctx = R"({"s": "\n  Hello World  \n"})";
  EXPECT_EQ(R("[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}]", ctx), "[Hello World][Hello World  \n][\n  Hello World]");
  EXPECT_EQ(R("[{{ s.strip('\\n') }}][{{ 'xxaxx'.lstrip('x') }}][{{ 'xxaxx'.rstrip('x') }}]", ctx),
            "[  Hello World  ][axx][xxa]");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
            R"(["a", "b", "", "c"] ["a", "b"] ["a", "b c"])");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc'.upper() }}{{ 'ABC'.lower() }}"),
            "truetrueABCabc");
  EXPECT_EQ(R("{{ 'hello world'.title() }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }}"),
            "Hello World bba -a-b-");
  EXPECT_EQ(R("{{ '{} + {} = {sum}'.format(1, 2, sum=3) }} {{ ', '.join(['a', 'b']) }}"), "1 + 2 = 3 a, b");
  EXPECT_EQ(R("{{ 'abcdef'[1:3] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ 'abc'[0] }} {{ '한국어'[1] }}"),
            "bc fedcba ef a 국");
  EXPECT_EQ(R("{{ [1, 2, 3, 4][::2] }} {{ [1, 2, 3][::-1] }} {{ [1, 2, 3][1:] }} {{ [1, 2, 3][:-1] }}"),
            "[1, 3] [3, 2, 1] [2, 3] [1, 2]");
}

TEST(Jinja, DictMethods) {
  const std::string ctx = R"({"d": {"b": 1, "a": {"x": [1, 2]}}})";
  EXPECT_EQ(R("{{ d.get('b') }} {{ d.get('zz', 'def') }} [{{ d.get('zz') }}] {{ d.keys() }} {{ d.values() }}", ctx),
            R"(1 def [] ["b", "a"] [1, {"x": [1, 2]}])");
  EXPECT_EQ(R("{{ d['a']['x'][1] }} {{ d.a.x.0 }} {{ d.items() | list | length }}", ctx), "2 1 2");
}

TEST(Jinja, Filters) {
  const std::string ctx =
      R"({"xs": [3, 1, 2], "ws": ["b", "A", "c"], "us": [{"n": "x", "a": 2}, {"n": "y"}, {"n": "z", "a": 1}],
          "s": "  hi  ", "d": {"b": 2, "a": 1}})";
  EXPECT_EQ(R("[{{ s | trim }}] {{ 'ab' | upper }} {{ 'AB' | lower }} {{ 'ab cd' | title }} {{ 'ab cd' | capitalize }}",
              ctx),
            "[hi] AB ab Ab Cd Ab cd");
  EXPECT_EQ(R("{{ xs | length }} {{ xs | count }} {{ 'héllo' | length }} {{ d | length }}", ctx), "3 3 5 2");
  EXPECT_EQ(R("{{ xs | first }} {{ xs | last }} {{ xs | sort }} {{ xs | sort(reverse=true) }} {{ xs | reverse }}", ctx),
            "3 2 [1, 2, 3] [3, 2, 1] [2, 1, 3]");
  EXPECT_EQ(R("{{ ws | sort }} {{ ws | sort(case_sensitive=true) }} {{ us | sort(attribute='n') | map(attribute='n') | join }}",
              ctx),
            R"(["A", "b", "c"] ["A", "b", "c"] xyz)");
  EXPECT_EQ(R("{{ xs | join(', ') }} {{ us | map(attribute='a') | list }} {{ us | map(attribute='a', default=0) | list }}",
              ctx),
            "3, 1, 2 [2, undefined, 1] [2, 0, 1]");
  EXPECT_EQ(R("{{ us | selectattr('a') | map(attribute='n') | join }} {{ us | rejectattr('a') | map(attribute='n') | join }}"
              " {{ us | selectattr('n', 'equalto', 'y') | list | length }} {{ xs | select('odd') | list }}"
              " {{ xs | reject('odd') | list }}",
              ctx),
            "xz y 1 [3, 1] [2]");
  EXPECT_EQ(R("{{ nope | default('dflt') }} {{ '' | d('e', true) }} {{ '' | default('e') }}|", ctx), "dflt e |");
  EXPECT_EQ(R("{{ '42' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 2 | float }} {{ -3 | abs }}"),
            "43 0 3 2.5 2.0 3");
  EXPECT_EQ(R("{{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 2.1 | round(0, 'ceil') }}"), "2.57 3.0 3.0");
  EXPECT_EQ(R("{{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(by='value', reverse=true) }}", ctx),
            R"([["b", 2], ["a", 1]] [["a", 1], ["b", 2]] [["b", 2], ["a", 1]])");
  EXPECT_EQ(R("{{ [1, 2, 1, 3, 2] | unique | list }} {{ 'ab' | list }} {{ 1 | string ~ 'x' }} {{ '<b>' | safe }}"),
            R"([1, 2, 3] ["a", "b"] 1x <b>)");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(1, blank=true) }}"),
            "a\n  b\n\n  c|  a\n  b|a\n \n b");
  EXPECT_EQ(R("{{ 'a-b' | replace('-', '+') }} {{ xs | min }} {{ xs | max }} {{ xs | sum }}", ctx), "a+b 1 3 6");
  EXPECT_EQ(R("{{ ['a', 'b'] | map('upper') | join }}"), "AB");
}

TEST(Jinja, ToJson) {
  const std::string ctx =
      R"({"v": {"name": "날씨", "args": {"b": [1, 2.5, null, true], "a": "q\"\\\n\t\u0001"}, "e": {}, "l": [], "f": 1.0}})";
  EXPECT_EQ(R("{{ v | tojson }}", ctx),
            R"({"name": "날씨", "args": {"b": [1, 2.5, null, true], "a": "q\"\\\n\t\u0001"}, "e": {}, "l": [], "f": 1})");
  EXPECT_EQ(R("{{ v.args | tojson(indent=2) }}", ctx),
            "{\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"a\": \"q\\\"\\\\\\n\\t\\u0001\"\n}");
  EXPECT_EQ(R("{{ {'b': 1, 'a': '한'} | tojson(sort_keys=true, ensure_ascii=true) }}"), R"({"a": "\ud55c", "b": 1})");
  EXPECT_EQ(R("{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }} {{ '😀' | tojson(ensure_ascii=true) }}"),
            R"({"a":[1,2]} "\ud83d\ude00")");
  EXPECT_EQ(R("{{ nope | tojson }} {{ [nope] | tojson }} {{ [nope] }}"), "null [null] [undefined]");
  // integer-like keys come first, as JavaScript objects (the reference) order them
  EXPECT_EQ(R("{{ d | tojson }}", R"({"d": {"b": 1, "10": 2, "2": 3}})"), R"({"2": 3, "10": 2, "b": 1})");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks + lstrip_blocks, as the reference and transformers use them
  EXPECT_EQ(R("{% if true %}\n  x\n{% endif %}\ny"), "  x\ny");
  EXPECT_EQ(R("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc");
  EXPECT_EQ(R("a  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(R("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(R("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // no trim after }}
  EXPECT_EQ(R("a\u3000 {{- 'b' }}"), "ab");       // JavaScript whitespace (U+3000) is stripped too
  EXPECT_EQ(R("{% generation %}text{% endgeneration %}"), "text");
}

TEST(Jinja, Globals) {
  EXPECT_EQ(R("{{ range(3) | list }} {{ range(2, 4) | list }}"), "[0, 1, 2] [2, 3]");
  todae::JinjaOptions opt;
  opt.now_unix = 1700000000;  // 2023-11-14 22:13:20 UTC
  opt.utc = true;
  EXPECT_EQ(render_jinja("{{ strftime_now('%Y-%m-%d %H:%M %b %B %%') }}", ojson::object(), "t", opt),
            "2023-11-14 22:13 Nov November %");
  EXPECT_EQ(Err("{{ raise_exception('Roles must alternate') }}"), "Roles must alternate");
  EXPECT_EQ(R("{{ dict(a=1, b='x') | tojson }}"), R"({"a": 1, "b": "x"})");
}

TEST(Jinja, ErrorsNameLineAndColumn) {
  EXPECT_EQ(Err("line one\n{{ x | foo }}"), "chat_template:2:8: unknown filter 'foo'");
  EXPECT_EQ(Err("{% if x is frob %}{% endif %}"), "chat_template:1:12: unknown test 'frob'");
  EXPECT_EQ(Err("ab\n\n  {% if x %}\n"), "chat_template:3:3: missing {% endif %}");
  EXPECT_EQ(Err("{% for x in y %}{% endif %}"), "chat_template:1:20: unexpected 'endif' (expected {% endfor %})");
  EXPECT_EQ(Err("{{ 'abc }}"), "chat_template:1:4: unterminated string literal");
  EXPECT_EQ(Err("{{ 1 + }}"), "chat_template:1:8: unexpected '}}' in expression");
  EXPECT_EQ(Err("{% frobnicate %}"), "chat_template:1:4: unknown statement 'frobnicate'");
  EXPECT_EQ(Err("{{ a $ b }}"), "chat_template:1:6: unexpected character '$'");
  EXPECT_EQ(Err("{# never closed"), "chat_template:1:1: unterminated comment (missing '#}')");
  EXPECT_EQ(Err("x\n{{ 1 + 'a' - 2 }}"), "chat_template:2:12: unsupported operand types for -: string and integer");
  EXPECT_EQ(Err("{{ none.x + 1 }}"), "chat_template:1:11: cannot apply '+' to an undefined value");
  EXPECT_EQ(Err("{% for x in 5 %}{% endfor %}"), "chat_template:1:1: for loop: integer is not iterable");
  EXPECT_EQ(Err("{{ foo() }}"), "chat_template:1:7: 'foo' is undefined, not callable");
  // columns count characters, not bytes
  EXPECT_EQ(Err("한국어 {{ x | foo }}"), "chat_template:1:12: unknown filter 'foo'");
}

TEST(Jinja, Bounds) {
  todae::JinjaOptions opt;
  opt.max_output_bytes = 1000;
  EXPECT_NE(Err("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", "{}", opt).find("output exceeds 1000 bytes"),
            std::string::npos);
  EXPECT_NE(Err("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "{}",
                opt)
                .find("exceeds 1000 bytes"),
            std::string::npos);
  EXPECT_NE(Err("{% for i in range(10**9) %}{% endfor %}").find("too long"), std::string::npos);
  opt = {};
  opt.max_steps = 10000;
  EXPECT_NE(Err("{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}", "{}", opt)
                .find("exceeded 10000 steps"),
            std::string::npos);
  EXPECT_NE(Err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("deep"), std::string::npos);
  EXPECT_NE(Err("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nested too deep"),
            std::string::npos);
  EXPECT_NE(Err("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}").find("nested too deep"),
            std::string::npos);
}

TEST(Jinja, CompiledTemplateRendersManyTimes) {
  auto t = todae::JinjaTemplate::parse("{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                                       "{% if add_generation_prompt %}<assistant>{% endif %}{{ tools is none }}",
                                       "mine");
  EXPECT_EQ(t.source(), "mine");
  ojson msgs = ojson::parse(R"([{"role": "user", "content": "안녕"}])");
  EXPECT_EQ(todae::apply_chat_template(t, msgs, nullptr, true, {{"bos_token", "<s>"}}), "<s><user>안녕<assistant>true");
  EXPECT_EQ(todae::apply_chat_template(t, msgs, ojson::array(), false, {{"bos_token", "<s>"}}), "<s><user>안녕false");
}

TEST(Jinja, DefaultChatTemplate) {
  ojson msgs = ojson::parse(R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "질문"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
      {"role": "tool", "content": "42"}])");
  ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  // one tool per line after the instructions
  std::string out = todae::apply_chat_template(todae::default_chat_template(), msgs, tools, true,
                                               {{"bos_token", "<|bos|>"}});
  EXPECT_EQ(out,
            "<|bos|><|system|>You can call these tools. To call one, answer with <|tool_call|>{\"name\": ..., "
            "\"arguments\": {...}}<|/tool_call|>.\n{\"type\": \"function\", \"function\": {\"name\": \"f\"}}<|end|>"
            "<|system|>sys<|end|><|user|>질문<|end|><|assistant|><|tool_call|>{\"name\": \"f\", \"arguments\": "
            "{\"x\": 1}}<|/tool_call|><|end|><|tool|>42<|end|><|assistant|>");
  EXPECT_EQ(Err(todae::default_chat_template(), R"({"messages": [{"role": "x", "content": ""}]})"),
            "unknown role: x");
}
