// Task definitions: the lm-eval YAML subset (includes, fields, metrics, filters) and its errors,
// the dataset readers and theirs (file:line: column), and the prompts of the built-in Korean
// benchmarks on small files written in the published formats.
#include <gtest/gtest.h>

#include "base/base.h"
#include "eval/eval.h"
#include "text/test_util.h"

using namespace todae;
using namespace todae::eval;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    return m;
  }
  return "(no error)";
}

#define EXPECT_ERROR(stmt, text) EXPECT_NE(error_of([&] { stmt; }).find(text), std::string::npos) << error_of([&] { stmt; })

}  // namespace

TEST(TaskYaml, ReadsTheFieldsRealTaskFilesUse) {
  test::TempDir d;
  d.file("_base_yaml", "dataset_path: ./data\noutput_type: generate_until\ntest_split: test\nfewshot_split: dev\n"
                       "doc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: a\ntarget_delimiter: \"\"\nnum_fewshot: 2\n");
  const std::string p = d.file("t.yaml", R"Y(include: _base_yaml
task: my_task
tag: [group_a]
fewshot_delimiter: "\n###\n"
generation_kwargs:
  until: ["\n", "Q:"]
  max_gen_toks: 32
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore: [",", "\\$"]
  - metric: chrf
filter_list:
  - name: get-answer
    filter:
      - function: regex
        regex_pattern: "(-?[0-9]+)"
        group_select: -1
      - function: take_first
metadata:
  version: 1.0
)Y");
  TaskConfig t = load_task_file(p);
  EXPECT_EQ(t.task, "my_task");
  EXPECT_EQ(t.dataset_path, "./data");
  EXPECT_EQ(t.output_type, OutputType::GenerateUntil);
  EXPECT_EQ(t.doc_to_text.kind, DocField::Text);
  EXPECT_EQ(t.doc_to_text.text, "Q: {{q}}\nA:");
  EXPECT_EQ(t.doc_to_target.text, "a");
  EXPECT_EQ(t.target_delimiter, "");
  EXPECT_EQ(t.fewshot_delimiter, "\n###\n");
  EXPECT_EQ(t.num_fewshot, 2);
  EXPECT_EQ(t.fewshot_split, "dev");
  EXPECT_EQ(t.until, (std::vector<std::string>{"\n", "Q:"}));
  EXPECT_EQ(t.max_gen_toks, 32);
  ASSERT_EQ(t.metrics.size(), 2u);
  EXPECT_EQ(t.metrics[0].metric, "exact_match");
  EXPECT_EQ(t.metrics[0].kwargs["ignore_case"], true);
  EXPECT_EQ(t.metrics[0].kwargs["regexes_to_ignore"][1], "\\$");
  ASSERT_EQ(t.filters.size(), 1u);
  EXPECT_EQ(t.filters[0].name, "get-answer");
  EXPECT_EQ(t.filters[0].steps[0].regex_pattern, "(-?[0-9]+)");
  EXPECT_EQ(t.filters[0].steps[0].group_select, -1);
  EXPECT_EQ(t.filters[0].steps[1].function, "take_first");
}

TEST(TaskYaml, TargetsAndChoicesOfEveryShape) {
  TaskConfig a = parse_task_yaml("task: x\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\n"
                                 "doc_to_choice: ['아니오', '예']\ndataset_kwargs:\n  data_files:\n    test: t.jsonl\n",
                                 "a.yaml");
  EXPECT_EQ(a.doc_to_target.kind, DocField::Int);
  EXPECT_EQ(a.doc_to_choice.kind, DocField::List);
  EXPECT_EQ(a.doc_to_choice.list, (std::vector<std::string>{"아니오", "예"}));
  EXPECT_EQ(a.data_files["test"], (std::vector<std::string>{"t.jsonl"}));
  TaskConfig b = parse_task_yaml("task: x\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: \"0\"\ndoc_to_choice: c\n", "b.yaml");
  EXPECT_EQ(b.doc_to_target.kind, DocField::Text);  // quoted: text, as PyYAML reads it
  EXPECT_EQ(b.doc_to_choice.kind, DocField::Text);
}

TEST(TaskYaml, ErrorsAreOneLineNamingFileAndField) {
  const std::string mc = "task: x\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\n";
  EXPECT_ERROR(parse_task_yaml(mc + "metric_list:\n  - metric: acc_nrom\n", "t.yaml"), "t.yaml:7: metric_list[0]: unknown metric 'acc_nrom'");
  EXPECT_ERROR(parse_task_yaml("task: x\ndoc_to_text: !function utils.doc_to_text\ndoc_to_target: a\n", "u.yaml"),
               "u.yaml:2: doc_to_text: '!function utils.doc_to_text' is Python code");
  EXPECT_ERROR(parse_task_yaml(mc + "process_docs: !function utils.process\n", "p.yaml"), "p.yaml:6: process_docs: is Python code");
  EXPECT_ERROR(parse_task_yaml("doc_to_text: q\ndoc_to_target: a\n", "n.yaml"), "n.yaml: task: missing");
  EXPECT_ERROR(parse_task_yaml("task: x\n  bad: [\n", "s.yaml"), "s.yaml:");
  EXPECT_ERROR(parse_task_yaml("task: x\ndoc_to_txt: q\ndoc_to_target: a\n", "k.yaml"), "k.yaml:2: doc_to_txt: unknown key");
  EXPECT_ERROR(parse_task_yaml("task: x\noutput_type: ranking\ndoc_to_text: q\ndoc_to_target: a\n", "o.yaml"),
               "o.yaml:2: output_type: 'ranking' is not");
  EXPECT_ERROR(parse_task_yaml("task: x\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\n", "c.yaml"),
               "c.yaml: doc_to_choice: missing");
  EXPECT_ERROR(parse_task_yaml(mc + "metric_list:\n  - metric: bleu\n", "g.yaml"), "metric 'bleu' does not apply to output_type multiple_choice");
  EXPECT_ERROR(parse_task_yaml(mc + "num_fewshot: five\n", "f.yaml"), "f.yaml:6: num_fewshot: 'five' is not an integer");
  EXPECT_ERROR(parse_task_yaml("- a\n- b\n", "l.yaml"), "l.yaml: a task file is a YAML mapping");
  EXPECT_ERROR(parse_task_yaml("task: x\ninclude: other.yaml\n", "i.yaml",
                               [](const std::string& n, const std::string& from) -> std::string { return "include: " + n; }),
               "nested more than 8 deep");
  EXPECT_ERROR(builtin_task("kobest_bolq"), "unknown task 'kobest_bolq'");
  test::TempDir d;
  const std::string tmpl = d.file("tm.yaml", "task: tm\noutput_type: generate_until\ntest_split: test\n"
                                              "dataset_kwargs:\n  data_files:\n    test: x.jsonl\n"
                                              "doc_to_text: \"{{ q | nosuchfilter }}\"\ndoc_to_target: a\n");
  d.file("x.jsonl", "{\"q\": \"hi\", \"a\": \"1\"}\n");
  RunOptions ro;
  EXPECT_ERROR(prepare_task(load_task_file(tmpl), ro).prompt(0), "nosuchfilter");
  const std::string tmpl2 = d.file("tm2.yaml", "task: tm2\noutput_type: generate_until\ntest_split: test\n"
                                               "dataset_kwargs:\n  data_files:\n    test: x.jsonl\n"
                                               "doc_to_text: \"{{ q \"\ndoc_to_target: a\n");
  EXPECT_ERROR(prepare_task(load_task_file(tmpl2), ro), "tm2.yaml: tm2: doc_to_text:1:");
}

TEST(Dataset, CsvQuotingTypingAndMissingColumns) {
  Dataset d = parse_dataset("question,answer,A,note\n\"He said \"\"hi\"\",\nthen left\",2,x,\n\nq2,1,\"y, z\",3.5\n", "k.csv", "csv");
  EXPECT_EQ(d.columns, (std::vector<std::string>{"question", "answer", "A", "note"}));
  ASSERT_EQ(d.docs.size(), 2u);
  EXPECT_EQ(d.docs[0].fields["question"], "He said \"hi\",\nthen left");
  EXPECT_EQ(d.docs[0].fields["answer"], 2);  // a column of integers holds integers (datasets' typing)
  EXPECT_TRUE(d.docs[0].fields["note"].is_null());
  EXPECT_EQ(d.docs[1].fields["A"], "y, z");
  EXPECT_DOUBLE_EQ(d.docs[1].fields["note"].get<double>(), 3.5);
  EXPECT_EQ(d.docs[0].where, "k.csv:2");
  EXPECT_EQ(d.docs[1].where, "k.csv:5");
  EXPECT_ERROR(parse_dataset("question,answer,A,B\nq,1,a,b\nq,2,a\n", "m.csv", "csv"), "m.csv:3: no column 'B'");
  EXPECT_ERROR(parse_dataset("a,b\n1,2,3\n", "x.csv", "csv"), "x.csv:2: 3 fields but the header has 2 columns");
  EXPECT_ERROR(parse_dataset("a,b\n\"1,2\n", "q.csv", "csv"), "q.csv:2: a quoted field never ends");
  Dataset t = parse_dataset("ko\ten\n안녕\thello\n", "p.tsv", "tsv");
  EXPECT_EQ(t.docs[0].fields["en"], "hello");
}

TEST(Dataset, JsonLinesAndArrays) {
  Dataset d = parse_dataset("{\"a\": 1, \"b\": [\"x\", \"y\"]}\n\n{\"a\": 2, \"b\": []}\n", "d.jsonl", "jsonl");
  ASSERT_EQ(d.docs.size(), 2u);
  EXPECT_EQ(d.docs[1].where, "d.jsonl:3");
  EXPECT_ERROR(parse_dataset("{\"a\": 1, \"b\": 2}\n{\"a\": 3}\n", "m.jsonl", "jsonl"), "m.jsonl:2: no column 'b'");
  EXPECT_ERROR(parse_dataset("{\"a\": 1}\n{\"a\": \n", "bad.jsonl", "jsonl"), "bad.jsonl:2: not valid JSON");
  EXPECT_ERROR(parse_dataset("[1, 2]\n", "arr.json", "json"), "arr.json:1: expected a JSON object");
  Dataset a = parse_dataset("[\n  {\"a\": \"{[\"},\n  {\"a\": \"b\"}\n]\n", "a.json", "json");
  ASSERT_EQ(a.docs.size(), 2u);
  EXPECT_EQ(a.docs[1].where, "a.json:3");  // the '{[' inside a string does not confuse the line count
  EXPECT_EQ(parse_dataset("{\"a\": 1}\n{\"a\": 2}\n", "lines.json", "json").docs.size(), 2u);  // datasets' to_json
}

TEST(BuiltinTasks, KobestPromptsAsLmEval) {
  test::TempDir d;
  make_directories(d.path + "/boolq");
  write_file_atomic(d.path + "/boolq/test.jsonl",
                    "{\"paragraph\": \"서울은 수도다.\", \"question\": \"서울은 수도인가?\", \"label\": 1}\n");
  make_directories(d.path + "/copa");
  write_file_atomic(d.path + "/copa/test.jsonl",
                    "{\"premise\": \"비가 왔다.\", \"question\": \"결과\", \"alternative_1\": \"땅이 젖었다.\", "
                    "\"alternative_2\": \"해가 떴다.\", \"label\": 0}\n"
                    "{\"premise\": \"넘어졌다.\", \"question\": \"원인\", \"alternative_1\": \"웃었다.\", "
                    "\"alternative_2\": \"미끄러웠다.\", \"label\": 1}\n");
  make_directories(d.path + "/hellaswag");
  write_file_atomic(d.path + "/hellaswag/test.jsonl",
                    "{\"context\": \"그는 밥을\", \"ending_1\": \"먹었다\", \"ending_2\": \"날았다\", \"ending_3\": \"잤다\", "
                    "\"ending_4\": \"울었다\", \"label\": 0}\n");
  make_directories(d.path + "/wic");
  write_file_atomic(d.path + "/wic/test.jsonl",
                    "{\"word\": \"배\", \"context_1\": \"배가 아프다.\", \"context_2\": \"배를 먹었다.\", \"label\": 0}\n");
  make_directories(d.path + "/sentineg");
  write_file_atomic(d.path + "/sentineg/test.jsonl", "{\"sentence\": \"정말 좋다\", \"label\": 1}\n");
  RunOptions ro;
  ro.data_dir = d.path;
  Prompt p = prepare_task(builtin_task("kobest_boolq"), ro).prompt(0);
  EXPECT_EQ(p.context, "서울은 수도다. 질문: 서울은 수도인가? 답변: ");
  EXPECT_EQ(p.choices, (std::vector<std::string>{"아니오", "예"}));
  EXPECT_EQ(p.gold, 1);
  PreparedTask copa = prepare_task(builtin_task("kobest_copa"), ro);
  EXPECT_EQ(copa.prompt(0).context, "비가 왔다.  그래서");  // f"{premise} {connector}", connector " 그래서"
  EXPECT_EQ(copa.prompt(1).context, "넘어졌다.  왜냐하면");
  EXPECT_EQ(copa.prompt(1).choices, (std::vector<std::string>{"웃었다.", "미끄러웠다."}));
  EXPECT_EQ(copa.prompt(1).gold, 1);
  Prompt h = prepare_task(builtin_task("kobest_hellaswag"), ro).prompt(0);
  EXPECT_EQ(h.context, "문장: 그는 밥을");
  EXPECT_EQ(h.choices.size(), 4u);
  EXPECT_EQ(h.choices[3], "울었다");
  EXPECT_EQ(prepare_task(builtin_task("kobest_wic"), ro).prompt(0).context,
            "문장1: 배가 아프다. 문장2: 배를 먹었다. 두 문장에서 배가 같은 뜻으로 쓰였나?");
  Prompt s = prepare_task(builtin_task("kobest_sentineg"), ro).prompt(0);
  EXPECT_EQ(s.context, "문장: 정말 좋다 긍부정:");
  EXPECT_EQ(s.target, "긍정");
  // A row missing a published column: file:line and the column.
  write_file_atomic(d.path + "/boolq/test.jsonl", "{\"paragraph\": \"p\", \"label\": 1}\n");
  EXPECT_ERROR(prepare_task(builtin_task("kobest_boolq"), ro), "boolq/test.jsonl:1: no column 'question'");
  RunOptions none;
  EXPECT_ERROR(prepare_task(builtin_task("kobest_boolq"), none), "skt/kobest_v1 (boolq) is not a local path");
  // Every KoBEST task reports lm-eval's macro F1 beside acc (its `!function utils.macro_f1_score`).
  for (const std::string& t : expand_task_group("kobest")) {
    const TaskConfig c = builtin_task(t);
    ASSERT_GE(c.metrics.size(), 2u) << t;
    EXPECT_EQ(c.metrics.back().metric, "f1") << t;
    EXPECT_EQ(c.metrics.back().aggregation, "macro_f1") << t;
  }
}

TEST(TaskYaml, MacroF1IsTheOnlyPythonHookBuiltIn) {
  const std::string head = "task: t\ndataset_path: x.jsonl\noutput_type: multiple_choice\ndoc_to_text: q\n"
                           "doc_to_choice: [a, b]\ndoc_to_target: 0\nmetric_list:\n  - metric: f1\n    aggregation: ";
  EXPECT_EQ(parse_task_yaml(head + "!function utils.macro_f1_score\n", "k.yaml").metrics[0].aggregation, "macro_f1");
  EXPECT_ERROR(parse_task_yaml(head + "!function utils.weighted_f1_score\n", "k.yaml"), "k.yaml:9: metric_list[0].aggregation: '!function utils.weighted_f1_score' is Python code");
  EXPECT_ERROR(parse_task_yaml("task: t\ndataset_path: x.jsonl\noutput_type: generate_until\ndoc_to_text: q\n"
                               "doc_to_target: a\nmetric_list:\n  - metric: f1\n", "g.yaml"),
               "g.yaml:7: metric_list[0]: metric f1 (of the chosen answers) needs output_type: multiple_choice");
}

TEST(BuiltinTasks, KmmluHaeraeClickFormats) {
  test::TempDir d;
  make_directories(d.path + "/data");
  write_file_atomic(d.path + "/data/Accounting-test.csv",
                    "question,answer,A,B,C,D,Category,Human Accuracy\n  회계란? ,3,가,나,다,라,Accounting,0.5\n");
  write_file_atomic(d.path + "/data/Accounting-dev.csv",
                    "question,answer,A,B,C,D,Category,Human Accuracy\n예1,1,a,b,c,d,Accounting,0.1\n예2,2,e,f,g,h,Accounting,0.2\n");
  RunOptions ro;
  ro.data_dir = d.path;
  Prompt k = prepare_task(builtin_task("kmmlu_accounting"), ro).prompt(0);
  EXPECT_EQ(k.context, "회계란?\nA. 가\nB. 나\nC. 다\nD. 라\n정답：");
  EXPECT_EQ(k.gold, 2);  // {{answer-1}}
  ro.shots = 2;
  Prompt k2 = prepare_task(builtin_task("kmmlu_accounting"), ro).prompt(0);
  // two examples from dev, each "text target" then "\n\n", in a seeded order
  EXPECT_NE(k2.context.find("예1\nA. a\nB. b\nC. c\nD. d\n정답： A\n\n"), std::string::npos) << k2.context;
  EXPECT_NE(k2.context.find("예2\nA. e\nB. f\nC. g\nD. h\n정답： B\n\n"), std::string::npos) << k2.context;
  EXPECT_EQ(k2.context.substr(k2.context.size() - k.context.size()), k.context);
  EXPECT_EQ(prepare_task(builtin_task("kmmlu_accounting"), ro).prompt(0).context, k2.context);  // seeded
  ro.shots = 3;
  EXPECT_ERROR(prepare_task(builtin_task("kmmlu_accounting"), ro), "3-shot but split 'dev' has only 2 documents");
  ro.shots = -1;

  make_directories(d.path + "/history");
  write_file_atomic(d.path + "/history/test.jsonl",
                    "{\"query\": \"다음 중 조선의 왕은?\\n(A) 세종\\n(B) 이순신\", \"answer\": \"(A)\", \"options\": [\"세종\", \"이순신\"]}\n");
  Prompt h = prepare_task(builtin_task("haerae_history"), ro).prompt(0);
  EXPECT_EQ(h.context, "다음 중 조선의 왕은?\n(A) 세종\n(B) 이순신");
  EXPECT_EQ(h.choices.size(), 5u);
  EXPECT_EQ(h.gold, 0);

  write_file_atomic(d.path + "/train.jsonl",
                    "{\"id\": \"KIIP_economy_1\", \"paragraph\": \"\", \"question\": \"화폐 단위는?\", "
                    "\"choices\": [\"엔\", \"원\", \"달러\", \"위안\"], \"answer\": \"원\"}\n"
                    "{\"id\": \"CSAT_korean_22_3\", \"paragraph\": \"맥락 글\", \"question\": \"알맞은 것은?\", "
                    "\"choices\": [\"1\", \"2\", \"3\", \"4\", \"5\"], \"answer\": \"5\"}\n");
  PreparedTask c = prepare_task(builtin_task("click"), ro);
  ASSERT_EQ(c.size(), 2u);
  Prompt c0 = c.prompt(0);
  EXPECT_EQ(c0.context, "주어진 질문을 천천히 읽고, 적절한 정답을 A, B, C, D 중에 골라 알파벳 하나로 답하시오.\n\n"
                        "질문: 화폐 단위는?\n보기:\nA:엔, B: 원, C: 달러, D: 위안\n정답:");
  EXPECT_EQ(c0.choices, (std::vector<std::string>{"A", "B", "C", "D"}));
  EXPECT_EQ(c0.gold, 1);
  Prompt c1 = c.prompt(1);
  EXPECT_EQ(c1.context.rfind("주어진 맥락을 천천히 읽고", 0), 0u);
  EXPECT_EQ(c1.choices.size(), 5u);  // CSAT items have E
  EXPECT_EQ(c1.gold, 4);
  EXPECT_EQ(prepare_task(builtin_task("click_cul_economy"), ro).size(), 1u);
  EXPECT_EQ(expand_task_group("kmmlu").size(), 45u);
  EXPECT_EQ(expand_task_group("kobest").size(), 5u);
}

TEST(BuiltinTasks, OwnTasks) {
  std::vector<Doc> a = arithmetic_docs(20, 3), b = arithmetic_docs(20, 3);
  for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].fields, b[i].fields);
  // the answers are right: evaluate "문제: X op Y =" ourselves
  for (const Doc& d : a) {
    long long x, y;
    char op[8];
    const std::string q = d.fields["question"];
    ASSERT_EQ(std::sscanf(q.c_str() + std::string("문제: ").size(), "%lld %7s %lld", &x, op, &y), 3) << q;
    const std::string o = op;
    const long long r = o == "+" ? x + y : o == "-" ? x - y : x * y;
    EXPECT_EQ(d.fields["answer"], std::to_string(r)) << q;
  }
  test::TempDir d;
  const std::string f = d.file("t.txt", "첫 문서\n둘째 줄\n\n\n둘째 문서\n");
  std::vector<Doc> docs = text_file_docs(f);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].fields["text"], "첫 문서\n둘째 줄");
  EXPECT_EQ(docs[1].fields["text"], "둘째 문서");
  EXPECT_EQ(docs[1].where, f + ":5");
  d.file("ko_en.tsv", "ko\ten\n안녕하세요\tHello\n");
  RunOptions ro;
  ro.data_dir = d.path;
  Prompt p = prepare_task(builtin_task("translation_ko_en"), ro).prompt(0);
  EXPECT_EQ(p.context, "한국어: 안녕하세요\nEnglish:");
  EXPECT_EQ(p.target, "Hello");
  EXPECT_ERROR(prepare_task(builtin_task("bpb"), RunOptions{}), "--text FILE");
}
