// todae eval: the exam every model takes — what EleutherAI's lm-evaluation-harness does, in C++.
// Public API of the module.
//
//   metrics    chrF / chrF++ and BLEU exactly as sacrebleu 2.x computes them (corpus statistics),
//              exact match (HF evaluate's options), regex extraction (lm-eval's filters), the mean
//              with its standard error (sample stdev / sqrt(n), as lm-eval reports it).
//   tasks      the lm-eval task YAML subset real task files use (yaml-cpp), local datasets (CSV,
//              TSV, JSON, JSONL), built-in Korean benchmarks and tasks made from our own data.
//   models     EvalModel: log-likelihoods of continuations, rolling log-likelihood of a text,
//              greedy generation with stop strings. make_local_model runs an InferModel; the choices
//              of one question share the context's KV cache (one prefill, one batch for them all).
//   running    run_task: documents -> requests -> per-sample metrics -> aggregated scores, with
//              per-sample JSONL that --resume continues from.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace todae {
struct InferModel;
}

// In a namespace of its own: todae already has a Doc (src/data) and a Regex (src/text).
namespace todae::eval {

// ---- metrics (metrics.cpp) -----------------------------------------------------------------------

// sacrebleu's CHRF(char_order, word_order, beta, lowercase, whitespace, eps_smoothing).
// word_order 2 is chrF++. Strings are compared by Unicode code point; whitespace (Python's
// str.split set) is dropped from the character n-grams unless `whitespace`.
struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;
  double beta = 2;
  bool lowercase = false;
  bool whitespace = false;
  bool eps_smoothing = false;
};
// [hyp, ref, match] per order (char orders first, then word orders): 3 × (char + word order)
// counts, of the reference that gives the best sentence score (sacrebleu's multi-reference rule).
std::vector<int64_t> chrf_stats(std::string_view hyp, const std::vector<std::string>& refs, const ChrfOptions& o = {});
double chrf_from_stats(const std::vector<int64_t>& stats, const ChrfOptions& o = {});  // 0..100
// refs[i]: the references of hypothesis i. Corpus level: statistics summed, then one F score.
double corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                   const ChrfOptions& o = {});
// sacrebleu's chrF++ word split: whitespace-separated words with one leading or trailing ASCII
// punctuation character cut off into a word of its own.
std::vector<std::string> chrf_words(std::string_view s);

// sacrebleu's tokenizer_13a (mteval-v13a): the same tokens, joined by single spaces.
std::string tokenize_13a(std::string_view line);

struct BleuOptions {
  int max_order = 4;
  std::string smooth = "exp";  // sacrebleu's default; also "none", "floor", "add-k"
  double smooth_value = -1;    // < 0: sacrebleu's default for the method (floor 0.1, add-k 1)
  bool effective_order = false;
  bool lowercase = false;
  std::string tokenize = "13a";  // or "none"
};
struct BleuStats {
  std::vector<double> correct, total;  // per order
  double sys_len = 0, ref_len = 0;
};
BleuStats bleu_stats(std::string_view hyp, const std::vector<std::string>& refs, const BleuOptions& o = {});
void add_stats(BleuStats& into, const BleuStats& s);
double bleu_from_stats(BleuStats s, const BleuOptions& o = {});  // 0..100
double corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                   const BleuOptions& o = {});

// HF evaluate's exact_match for one pair: 1 or 0 after the optional normalisations.
struct ExactMatchOptions {
  std::vector<std::string> regexes_to_ignore;  // removed (all matches) from both sides first
  bool ignore_case = false, ignore_punctuation = false, ignore_numbers = false;
};
double exact_match(std::string_view pred, std::string_view ref, const ExactMatchOptions& o = {});

// lm-eval's RegexFilter: all matches of `pattern` (Python re syntax: PCRE2 with UTF and Unicode
// properties); match number group_select (negative counts from the end); a match with groups
// gives its first non-empty group; stripped. No match: fallback.
std::string regex_extract(std::string_view text, const std::string& pattern, int group_select = 0,
                          const std::string& fallback = "[invalid]");

struct MeanStderr {
  double mean = 0, stderr = 0;
};
// Mean and sample standard deviation / sqrt(n) (lm-eval's mean_stderr); stderr 0 for n < 2.
MeanStderr mean_stderr(const std::vector<double>& x);
// Standard error of a corpus-level statistic by bootstrap over samples (lm-eval resamples 100
// times for bleu/chrf): the sample stdev of `iters` scores of resampled index sets.
double bootstrap_stderr(size_t n, const std::function<double(const std::vector<size_t>&)>& score, int iters,
                        uint64_t seed);

// ---- datasets (dataset.cpp) ----------------------------------------------------------------------

struct Doc {
  nlohmann::ordered_json fields;  // an object: column -> value
  std::string where;              // "file:line", for messages
};
struct Dataset {
  std::string file;
  std::vector<std::string> columns;  // the header (CSV/TSV) or the first row's keys (JSON)
  std::vector<Doc> docs;
};
// By extension: .csv, .tsv, .json (an array of objects, or JSON lines as `datasets` writes
// them), .jsonl. CSV/TSV cells are typed per column as the `datasets` library does: a column of
// integers holds integers, of numbers numbers, else strings. A row missing a column is an Error
// "file:line: no column 'X'".
Dataset load_dataset_file(const std::string& path);
Dataset parse_dataset(std::string_view text, const std::string& name, const std::string& format);

// ---- task definitions (task_yaml.cpp) ------------------------------------------------------------

enum class OutputType { Loglikelihood, MultipleChoice, GenerateUntil, LoglikelihoodRolling };
const char* output_type_name(OutputType t);

// doc_to_text / doc_to_target / doc_to_choice: a Jinja template, or a column name (decided per
// document, as lm-eval does: a string naming a column is that column), an int, or a list.
struct DocField {
  enum Kind { None, Text, Int, List } kind = None;
  std::string text;
  int value = 0;
  std::vector<std::string> list;
};

struct MetricSpec {
  std::string metric, aggregation;
  bool higher_is_better = true;
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // the entry's other keys
};
struct FilterStep {
  std::string function;  // "regex" or "take_first"
  std::string regex_pattern;
  int group_select = 0;
  std::string fallback = "[invalid]";
};
struct FilterSpec {
  std::string name;
  std::vector<FilterStep> steps;
};

struct TaskConfig {
  std::string task;
  std::string source;    // the YAML's file name, or "built-in"
  std::string base_dir;  // relative dataset paths start here
  std::string dataset_path, dataset_name;
  std::map<std::string, std::vector<std::string>> data_files;  // split -> files (dataset_kwargs)
  std::string test_split, validation_split, fewshot_split, training_split;
  OutputType output_type = OutputType::MultipleChoice;
  DocField doc_to_text, doc_to_target, doc_to_choice;
  std::string description;  // Jinja, rendered per document, before the few-shot examples
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  int num_fewshot = 0;
  std::vector<std::string> until;  // generation_kwargs.until (default: fewshot_delimiter)
  bool until_given = false;
  int max_gen_toks = 256;
  std::vector<MetricSpec> metrics;  // empty: the output type's defaults
  std::vector<FilterSpec> filters;  // empty: one "none" filter (take_first)
  // todae extensions: keep a document only when this Jinja renders "true" (CLIcK's subject
  // split without Python), and the columns every row must have (checked with file:line).
  std::string doc_filter;
  std::vector<std::string> required_columns;
  // Built-in tasks made in code (arithmetic, bpb): the documents themselves, per split.
  std::map<std::string, std::vector<Doc>> inline_docs;
  std::string kind;  // "" (a dataset) or "bpb": text files as documents
};

// Resolves `include: NAME` (another YAML's text; Error if unknown). The default resolver reads
// NAME beside the including file, else a built-in definition of that name.
using IncludeResolver = std::function<std::string(const std::string& name, const std::string& from)>;
// Parses one task YAML. Errors are one line naming the source and the field; `!function` (Python
// code) is refused with the field named.
TaskConfig parse_task_yaml(std::string_view yaml, const std::string& source, const IncludeResolver& includes = {});
TaskConfig load_task_file(const std::string& path);

// ---- built-in tasks (builtin.cpp) ----------------------------------------------------------------

std::vector<std::string> builtin_task_names();
bool has_builtin_task(const std::string& name);
// Group names (kobest, kmmlu, haerae, click) expand to their tasks.
std::vector<std::string> expand_task_group(const std::string& name);
TaskConfig builtin_task(const std::string& name);
std::string builtin_yaml(const std::string& name);  // "" when the task is made in code
// Deterministic arithmetic problems ("문제: 23 + 58 =", target "81").
std::vector<Doc> arithmetic_docs(int n, uint64_t seed);
// Documents of a text file: blocks separated by blank lines.
std::vector<Doc> text_file_docs(const std::string& path);

// ---- models (local_model.cpp) --------------------------------------------------------------------

struct LogLik {
  double logprob = 0;   // sum over the continuation's tokens
  bool greedy = false;  // every continuation token was the argmax
  int tokens = 0;
};

struct EvalModel {
  virtual ~EvalModel() = default;
  // log P(continuation | context) for each continuation (lm-eval's loglikelihood requests of one
  // document). Trailing spaces of the context move to the continuations, as lm-eval does.
  virtual std::vector<LogLik> loglikelihood(const std::string& context, const std::vector<std::string>& conts) = 0;
  // Total log-likelihood of a text over rolling windows of the model's context (lm-eval's
  // loglikelihood_rolling: the first token conditioned on the prefix token).
  virtual LogLik loglikelihood_rolling(const std::string& text) = 0;
  // Greedy continuation of context, cut before the first stop string, at most max_tokens.
  virtual std::string generate_until(const std::string& context, const std::vector<std::string>& until,
                                     int max_tokens) = 0;
  // What results.json says about the model: path, hashes, types.
  virtual nlohmann::ordered_json describe() = 0;
};

struct LocalModelOptions {
  int ctx = 0;             // context (positions per cache slot); 0: the model's, at most 4096
  int adapter = 0;         // LoRA adapter id (InferModel::adapters), 0: the base
  bool share_prefix = true;  // false: every choice reads context + choice alone (for checks)
  bool add_bos = false;      // prepend the prefix token to every context (lm-eval's add_bos_token)
  int prompt_chunk = 512;
};
std::unique_ptr<EvalModel> make_local_model(InferModel& m, const LocalModelOptions& o = {});

// lm-eval's rolling windows: (input, targets) pairs; the first input starts with prefix_token;
// every token is predicted exactly once, each with up to max_len tokens of context.
struct TokenWindow {
  std::vector<int32_t> input, targets;  // the targets are the last targets.size() positions' next tokens
};
std::vector<TokenWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token, int max_len);

// ---- running (runner.cpp) ------------------------------------------------------------------------

struct RunOptions {
  int limit = -1;      // documents per task (< 0: all)
  int shots = -1;      // overrides num_fewshot when >= 0
  uint64_t seed = 1234;
  std::string out_dir;  // samples_TASK.jsonl go here (empty: none written)
  bool resume = false;  // reuse samples already in samples_TASK.jsonl (same prompt and target)
  std::string data_dir;  // overrides the dataset folder of tasks
  std::vector<std::string> text_files;  // documents of the `bpb` task
  bool quiet = false;
};

struct TaskResult {
  std::string task;
  // metric name (with ",filter" when not "none") -> {value, stderr, higher_is_better}
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
  int n = 0, reused = 0;
  double seconds = 0, joules = 0;
  nlohmann::ordered_json config;
};

// The documents of a split (test, else validation, else train when split is empty), with
// the data folder rule: data_files, else dataset_path (a file, or a folder holding
// [dataset_name/]SPLIT.ext or dataset_name-SPLIT.ext).
std::vector<Doc> load_split(const TaskConfig& t, const std::string& split, const std::string& data_dir);
// The prompt of document i: description + few-shot examples + doc_to_text.
struct Prompt {
  std::string context;
  std::vector<std::string> choices;  // multiple_choice
  int gold = -1;                     // multiple_choice: index of the target
  std::string target;                // the target as text
};
struct TaskData;  // runner.cpp: parsed templates, documents, few-shot pool
struct PreparedTask {
  TaskConfig config;
  std::shared_ptr<TaskData> data;
  size_t size() const;
  Prompt prompt(size_t i) const;
};
PreparedTask prepare_task(const TaskConfig& t, const RunOptions& o);
TaskResult run_task(EvalModel& model, const TaskConfig& t, const RunOptions& o);

// results.json: {"results": {task: ...}, "model": ..., "created": ...}.
nlohmann::ordered_json results_json(const std::vector<TaskResult>& results, const nlohmann::ordered_json& model);

}  // namespace todae::eval
