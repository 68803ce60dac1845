// Built-in tasks. The Korean benchmarks are lm-eval's task files with their published column
// names and prompts (KoBEST, KMMLU, HAE-RAE Bench, CLIcK); where lm-eval calls Python helpers
// (kobest/utils.py, click/utils.py) the same strings are written as Jinja here. Data comes from
// local files (--data-dir); README "Evaluation" says where to get it. Plus tasks made from our
// own material: translation pairs, arithmetic, bits per byte of text files.
#include <map>
#include <random>

#include "base/base.h"
#include "eval/eval.h"

namespace todae::eval {

namespace {

// lm-eval/tasks/kobest/*.yaml; doc_to_text of copa/sentineg/wic and hellaswag's process_docs are
// kobest/utils.py, as templates.
const char* kKobestBoolq = R"Y(task: kobest_boolq
dataset_path: skt/kobest_v1
dataset_name: boolq
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "{{paragraph}} 질문: {{question}} 답변: "
doc_to_target: "{{label}}"
doc_to_choice: ["아니오", "예"]
required_columns: [paragraph, question, label]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
)Y";

const char* kKobestCopa = R"Y(task: kobest_copa
dataset_path: skt/kobest_v1
dataset_name: copa
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "{{premise}} {{' 왜냐하면' if question.strip() == '원인' else ' 그래서'}}"
doc_to_target: "{{alternative_1 if label == 0 else alternative_2}}"
doc_to_choice: "{{[alternative_1, alternative_2]}}"
required_columns: [premise, question, alternative_1, alternative_2, label]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
)Y";

const char* kKobestHellaswag = R"Y(task: kobest_hellaswag
dataset_path: skt/kobest_v1
dataset_name: hellaswag
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "문장: {{context}}"
doc_to_target: "{{label}}"
doc_to_choice: "{{[ending_1, ending_2, ending_3, ending_4]}}"
required_columns: [context, ending_1, ending_2, ending_3, ending_4, label]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
)Y";

const char* kKobestSentineg = R"Y(task: kobest_sentineg
dataset_path: skt/kobest_v1
dataset_name: sentineg
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "문장: {{sentence}} 긍부정:"
doc_to_target: "{{label}}"
doc_to_choice: ["부정", "긍정"]
required_columns: [sentence, label]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
)Y";

const char* kKobestWic = R"Y(task: kobest_wic
dataset_path: skt/kobest_v1
dataset_name: wic
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "문장1: {{context_1}} 문장2: {{context_2}} 두 문장에서 {{word}}가 같은 뜻으로 쓰였나?"
doc_to_target: "{{label}}"
doc_to_choice: ["아니오", "예"]
required_columns: [word, context_1, context_2, label]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
)Y";

// lm-eval/tasks/kmmlu/default/_default_kmmlu_yaml (the full-width colon is KMMLU's).
const char* kKmmluDefault = R"Y(dataset_path: HAERAE-HUB/KMMLU
output_type: multiple_choice
test_split: test
fewshot_split: dev
doc_to_text: "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\n정답："
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{answer-1}}"
required_columns: [question, answer, A, B, C, D]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
)Y";

const char* kKmmluSubjects[] = {
    "Accounting", "Agricultural-Sciences", "Aviation-Engineering-and-Maintenance", "Biology",
    "Chemical-Engineering", "Chemistry", "Civil-Engineering", "Computer-Science", "Construction", "Criminal-Law",
    "Ecology", "Economics", "Education", "Electrical-Engineering", "Electronics-Engineering", "Energy-Management",
    "Environmental-Science", "Fashion", "Food-Processing", "Gas-Technology-and-Engineering", "Geomatics", "Health",
    "Industrial-Engineer", "Information-Technology", "Interior-Architecture-and-Design", "Korean-History", "Law",
    "Machine-Design-and-Manufacturing", "Management", "Maritime-Engineering", "Marketing", "Materials-Engineering",
    "Math", "Mechanical-Engineering", "Nondestructive-Testing", "Patent", "Political-Science-and-Sociology",
    "Psychology", "Public-Safety", "Railway-and-Automotive-Engineering", "Real-Estate", "Refrigerating-Machinery",
    "Social-Welfare", "Taxation", "Telecommunications-and-Wireless-Technology"};

// lm-eval/tasks/haerae/_default_haerae_yaml
const char* kHaeraeDefault = R"Y(dataset_path: HAERAE-HUB/HAE_RAE_BENCH
test_split: test
fewshot_split: test
output_type: multiple_choice
doc_to_text: "{{query}}"
doc_to_choice: ["(A)", "(B)", "(C)", "(D)", "(E)"]
doc_to_target: "{{answer}}"
required_columns: [query, answer]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
)Y";
const std::pair<const char*, const char*> kHaeraeTasks[] = {{"haerae_general_knowledge", "general_knowledge"},
                                                            {"haerae_history", "history"},
                                                            {"haerae_loan_word", "loan_words"},
                                                            {"haerae_rare_word", "rare_words"},
                                                            {"haerae_standard_nomenclature", "standard_nomenclature"}};

// lm-eval/tasks/click/click_cul/_default_click_yaml with utils.get_context / get_target.
const char* kClickDefault = R"Y(dataset_path: EunsuKim/CLIcK
test_split: train
fewshot_split: train
output_type: multiple_choice
doc_to_text: "{% if paragraph %}주어진 맥락을 천천히 읽고, 질문에 대한 적절한 정답을 A, B, C, D 중에 골라 알파벳 하나로 답하시오.\n\n맥락: {{paragraph}}\n질문: {{question}}\n보기:\nA:{{choices[0]}}, B: {{choices[1]}}, C: {{choices[2]}}, D: {{choices[3]}}\n정답:{% else %}주어진 질문을 천천히 읽고, 적절한 정답을 A, B, C, D 중에 골라 알파벳 하나로 답하시오.\n\n질문: {{question}}\n보기:\nA:{{choices[0]}}, B: {{choices[1]}}, C: {{choices[2]}}, D: {{choices[3]}}\n정답:{% endif %}"
doc_to_choice: "{{['A', 'B', 'C', 'D', 'E'] if 'CSAT' in id else ['A', 'B', 'C', 'D']}}"
doc_to_target: "{% for c in choices %}{% if c == answer %}{{['A', 'B', 'C', 'D', 'E'][loop.index0]}}{% endif %}{% endfor %}"
required_columns: [id, paragraph, question, choices, answer]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
)Y";
// click_cul/utils.py's extract_* filters on the id.
const std::pair<const char*, const char*> kClickCul[] = {
    {"click_cul_economy", "'economy' in id.lower()"},
    {"click_cul_geography", "'geography' in id.lower()"},
    {"click_cul_history", "'KHB' in id or 'histroy' in id.lower()"},
    {"click_cul_law", "'law' in id.lower() or 'PSAT' in id"},
    {"click_cul_politics", "'politics' in id.lower()"},
    {"click_cul_kpop", "'popular' in id.lower()"},
    {"click_cul_society", "'society' in id.lower()"},
    {"click_cul_tradition", "'tradition' in id.lower()"}};

// Our own: translation on parallel pairs (a TSV with columns ko and en in --data-dir).
const char* kTranslationKoEn = R"Y(task: translation_ko_en
dataset_kwargs:
  data_files:
    test: ko_en.tsv
output_type: generate_until
test_split: test
doc_to_text: "한국어: {{ko}}\nEnglish:"
doc_to_target: "{{en}}"
required_columns: [ko, en]
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 256
metric_list:
  - metric: chrf
  - metric: chrf++
  - metric: bleu
)Y";
const char* kTranslationEnKo = R"Y(task: translation_en_ko
dataset_kwargs:
  data_files:
    test: ko_en.tsv
output_type: generate_until
test_split: test
doc_to_text: "English: {{en}}\n한국어:"
doc_to_target: "{{ko}}"
required_columns: [ko, en]
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 256
metric_list:
  - metric: chrf
  - metric: chrf++
  - metric: bleu
)Y";

const char* kArithmetic = R"Y(task: arithmetic
output_type: generate_until
test_split: test
fewshot_split: train
num_fewshot: 3
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 8
filter_list:
  - name: extract
    filter:
      - function: regex
        regex_pattern: "-?[0-9]+"
      - function: take_first
metric_list:
  - metric: exact_match
)Y";

const char* kBpb = R"Y(task: bpb
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
)Y";

std::string task_name_of(const char* subject) {
  std::string s = "kmmlu_";
  for (const char* p = subject; *p; p++) s += *p == '-' ? '_' : char(std::tolower(static_cast<unsigned char>(*p)));
  return s;
}

const std::map<std::string, std::string>& yaml_table() {
  static const std::map<std::string, std::string> t = [] {
    std::map<std::string, std::string> m;
    m["kobest_boolq"] = kKobestBoolq;
    m["kobest_copa"] = kKobestCopa;
    m["kobest_hellaswag"] = kKobestHellaswag;
    m["kobest_sentineg"] = kKobestSentineg;
    m["kobest_wic"] = kKobestWic;
    m["_default_kmmlu_yaml"] = kKmmluDefault;
    for (const char* s : kKmmluSubjects)
      m[task_name_of(s)] = cat("task: ", task_name_of(s), "\ndataset_name: ", s, "\ninclude: _default_kmmlu_yaml\n");
    m["_default_haerae_yaml"] = kHaeraeDefault;
    for (const auto& [task, name] : kHaeraeTasks)
      m[task] = cat("task: ", task, "\ndataset_name: ", name, "\ninclude: _default_haerae_yaml\n");
    m["_default_click_yaml"] = kClickDefault;
    m["click"] = "task: click\ninclude: _default_click_yaml\n";
    for (const auto& [task, cond] : kClickCul)
      m[task] = cat("task: ", task, "\ninclude: _default_click_yaml\ndoc_filter: \"{{", cond, "}}\"\n");
    m["translation_ko_en"] = kTranslationKoEn;
    m["translation_en_ko"] = kTranslationEnKo;
    m["arithmetic"] = kArithmetic;
    m["bpb"] = kBpb;
    return m;
  }();
  return t;
}

TaskConfig parse_builtin(const std::string& name) {
  IncludeResolver inc = [](const std::string& n, const std::string& from) -> std::string {
    const std::string y = builtin_yaml(n);
    if (y.empty()) fail(from, ": include: no built-in '", n, "'");
    return y;
  };
  TaskConfig t = parse_task_yaml(builtin_yaml(name), "built-in " + name, inc);
  t.source = "built-in";
  t.base_dir = ".";
  return t;
}

}  // namespace

std::string builtin_yaml(const std::string& name) {
  auto it = yaml_table().find(name);
  return it == yaml_table().end() ? "" : it->second;
}

std::vector<std::string> builtin_task_names() {
  std::vector<std::string> out;
  for (const auto& [k, v] : yaml_table())
    if (k[0] != '_') out.push_back(k);
  return out;
}

bool has_builtin_task(const std::string& name) { return name[0] != '_' && yaml_table().count(name); }

std::vector<std::string> expand_task_group(const std::string& name) {
  std::vector<std::string> out;
  if (name == "kobest") {
    out = {"kobest_boolq", "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic"};
  } else if (name == "kmmlu") {
    for (const char* s : kKmmluSubjects) out.push_back(task_name_of(s));
  } else if (name == "haerae") {
    for (const auto& [task, n] : kHaeraeTasks) out.push_back(task);
  } else if (name == "click_cul") {
    for (const auto& [task, c] : kClickCul) out.push_back(task);
  } else if (name == "translation") {
    out = {"translation_ko_en", "translation_en_ko"};
  }
  return out;
}

std::vector<Doc> arithmetic_docs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Doc> out;
  for (int i = 0; i < n; i++) {
    const int kind = int(rng() % 3);
    long long a = 1 + static_cast<long long>(rng() % 99), b = 1 + static_cast<long long>(rng() % 99), r = 0;
    const char* op = "+";
    if (kind == 0) r = a + b;
    else if (kind == 1) op = "-", r = a - b;
    else op = "×", a = 1 + static_cast<long long>(rng() % 12), b = 1 + static_cast<long long>(rng() % 12), r = a * b;
    Doc d;
    d.where = cat("arithmetic:", i + 1);
    d.fields = {{"question", cat("문제: ", a, " ", op, " ", b, " =")}, {"answer", std::to_string(r)}};
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<Doc> text_file_docs(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<Doc> out;
  size_t pos = 0;
  int line = 1;
  while (pos < text.size()) {
    // a block: lines up to the next blank line
    size_t end = pos;
    int start_line = line;
    while (end < text.size()) {
      size_t nl = text.find('\n', end);
      if (nl == std::string::npos) {
        end = text.size();
        break;
      }
      if (nl == end) break;  // blank line
      end = nl + 1;
      line++;
    }
    std::string block = text.substr(pos, end - pos);
    while (!block.empty() && (block.back() == '\n' || block.back() == '\r')) block.pop_back();
    if (!block.empty()) {
      Doc d;
      d.where = cat(path, ":", start_line);
      d.fields = {{"text", block}};
      out.push_back(std::move(d));
    }
    pos = end;
    while (pos < text.size() && text[pos] == '\n') pos++, line++;
  }
  return out;
}

TaskConfig builtin_task(const std::string& name) {
  if (!has_builtin_task(name)) fail("unknown task '", name, "' (todae eval --list-tasks shows the built-in ones)");
  TaskConfig t = parse_builtin(name);
  if (name == "arithmetic") {
    t.inline_docs["test"] = arithmetic_docs(200, 20260);
    t.inline_docs["train"] = arithmetic_docs(50, 7);
  } else if (name == "bpb") {
    t.kind = "bpb";
  }
  return t;
}

}  // namespace todae::eval
