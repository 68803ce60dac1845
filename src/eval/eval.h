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
//              make_endpoint_model takes any OpenAI-compatible server instead (endpoint_model.cpp).
//   tools      tool-calling tasks (BFCL-style): chat messages + function schemas, the model's calls
//              parsed from its output and scored by BFCL's AST check (tool_check.cpp, tool_task.cpp).
//   running    run_task: documents -> requests -> per-sample metrics -> aggregated scores, with
//              per-sample JSONL that --resume continues from.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/toolcall.h"

namespace todae {
struct InferModel;
struct EvalHookArgs;  // train/train.h
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

// sklearn's f1_score of the samples idx (gold and predicted class ids), in 0..1, as lm-eval's f1
// aggregations call it: binary (the F1 of class 1) or macro (the mean F1 over every class that
// is a gold or a predicted label). A class with no true positive, false positive or negative: 0.
double f1_score(const std::vector<int>& gold, const std::vector<int>& pred, const std::vector<size_t>& idx, bool macro);

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
  // todae extension: a tool-calling task (`output_type: tool_call`, or generate_until with
  // `tool_call: true`). Documents hold chat messages (column doc_to_messages), function schemas
  // (doc_to_tools) and BFCL's possible answer (doc_to_target, default column ground_truth).
  bool tool_call = false;
  std::string messages_field = "messages", tools_field = "tools";
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
  // Greedy reply to chat messages with tools (OpenAI shapes), the calls parsed from it. The
  // default fails: a model that cannot take a chat with tools cannot run tool-calling tasks.
  struct ChatReply {
    std::string text;     // all that was generated (tool-call markers kept)
    std::string content;  // the text outside the calls
    std::vector<ToolCall> calls;
    std::string prompt;   // the rendered prompt, when the model renders it itself
  };
  virtual ChatReply chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                         const std::vector<std::string>& until, int max_tokens);
  // Documents run_task may evaluate at once, each on its own thread (> 1: the methods above are
  // thread-safe, as an endpoint's requests are independent). 1: in order, on the caller's thread
  // (the local model, whose choices of one question already share one prefill).
  virtual int concurrency() const { return 1; }
  // Several log-likelihood questions in one pass of the model: run_task hands the next
  // batch_questions() questions to prefetch_loglikelihood, then asks loglikelihood() for each as
  // usual and gets the answers computed ahead (the same values, up to float rounding).
  struct LoglikRequest {
    std::string context;
    std::vector<std::string> continuations;
  };
  virtual int batch_questions() const { return 1; }
  virtual void prefetch_loglikelihood(const std::vector<LoglikRequest>&) {}
};

struct LocalModelOptions {
  int ctx = 0;             // context (positions per cache slot); 0: the model's, at most 4096
  int adapter = 0;         // LoRA adapter id (InferModel::adapters), 0: the base
  bool share_prefix = true;  // false: every choice reads context + choice alone (for checks)
  bool add_bos = false;      // prepend the prefix token to every context (lm-eval's add_bos_token)
  int prompt_chunk = 512;
  int batch_questions = 8;   // questions prefetched together (share_prefix only)
  int batch_tokens = 1024;   // tokens per forward pass when several questions share one
};
std::unique_ptr<EvalModel> make_local_model(InferModel& m, const LocalModelOptions& o = {});

// ---- an OpenAI-compatible server as the model (endpoint_model.cpp) ---------------------------------

// lm-eval's local-completions over HTTP(S) (cpp-httplib): log-likelihoods from /v1/completions with
// echo + logprobs + max_tokens 0 on the text context + continuation (the continuation's tokens are
// those from text_offset len(context) on), rolling log-likelihood by echo over the text,
// generate_until by completions (prompt, stop, max_tokens, temperature 0) or, with `chat`, by
// /v1/chat/completions. A document's first token is conditioned on the server's prefix token
// (GET /props: bos_token, else eos_token), as the local model does. Connection errors, 429 and
// 5xx are retried with exponential backoff (Retry-After honoured), then an Error naming the URL.
struct EndpointOptions {
  std::string url;       // http(s)://host[:port][/v1][/completions]
  std::string api_key;   // sent as Authorization: Bearer
  std::string model;     // "" : the first id of GET /v1/models
  int concurrency = 8;   // requests in flight (documents evaluated at once)
  int max_retries = 5;   // after the first try
  double timeout_s = 300;  // per request (connect, read, write)
  double backoff_s = 1;    // the first retry's wait, doubled after each (at most 60 s)
  bool chat = false;       // generate_until through chat completions (the server applies its template)
  bool add_bos = false;    // prepend the prefix token to every context
  uint64_t seed = 1234;    // sent with every request
};
std::unique_ptr<EvalModel> make_endpoint_model(const EndpointOptions& o);

// lm-eval's rolling windows: (input, targets) pairs; the first input starts with prefix_token;
// every token is predicted exactly once, each with up to max_len tokens of context.
struct TokenWindow {
  std::vector<int32_t> input, targets;  // the targets are the last targets.size() positions' next tokens
};
std::vector<TokenWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token, int max_len);

// ---- tool calling (tool_check.cpp, tool_task.cpp) --------------------------------------------------

// BFCL's AST check (berkeley-function-call-leaderboard, eval_checker/ast_eval/ast_checker.py,
// Python rules) of the calls a model made against the possible answer: a list of
// {"func_name": {"param": [acceptable values...]}} ("" among the values: the param may be left
// out), an empty list when the right answer is to call nothing. Calls are matched to the expected
// ones order-independently (BFCL's parallel_function_checker_no_order: each expected call takes
// the first unmatched call that passes). `functions`: the schemas, {name, parameters: {properties,
// required}} with JSON Schema or BFCL types (string, integer, number/float, boolean, array/tuple,
// object/dict, any).
struct ToolCallCheck {
  bool valid = false;    // the whole AST check passed (args_ok)
  bool name_ok = false;  // the called functions are the expected ones, as a multiset
  std::string error, error_type;  // the first failure, as BFCL words it ("simple_function_checker:missing_required")
};
ToolCallCheck check_tool_calls(const nlohmann::ordered_json& functions, const nlohmann::ordered_json& expected,
                               const std::vector<ToolCall>& calls);
// BFCL's standardize_string: drops ' ' and ",./-_*^", lowercases, turns ' into ".
std::string bfcl_standardize(std::string_view s);
// Function schemas as chat templates take them: [{"type": "function", "function": {...}}] with
// BFCL's types written as JSON Schema's (dict -> object, float -> number, tuple -> array, any -> string).
nlohmann::ordered_json tools_for_template(const nlohmann::ordered_json& functions);

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
  // tool_call: the chat, the function schemas ({name, description, parameters}) and the possible
  // answer; context and target are their JSON text (what --resume compares).
  nlohmann::ordered_json messages, functions, expected;
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

// ---- evaluation while training and of checkpoints (train_eval.cpp, watch.cpp) ----------------------

// A --tasks list: comma-separated built-in names, groups (kobest, kmmlu, ...) and task .yaml
// files, in order. An unknown name is an Error, with one line.
std::vector<TaskConfig> tasks_from_spec(const std::string& spec);
// Scores as metrics.jsonl fields: "eval/TASK/METRIC" and "eval/TASK/METRIC_stderr" (METRIC as in
// results.json, with ",filter" when the filter is not "none").
nlohmann::json metrics_fields(const std::vector<TaskResult>& results);

struct TrainEvalOptions {
  std::string tasks;        // as --tasks
  RunOptions run;           // limit, seed, data_dir, text_files (no samples are written)
  LocalModelOptions model;  // ctx, add_bos (the adapter is the training one, if any)
};
// The hook of `todae pretrain/finetune --eval-tasks` (train.h's EvalHook): the tasks are resolved
// and their data and templates checked now, before any training; at each evaluation they run on
// the training weights in place (infer_view: no copy, no disk) and return metrics_fields.
std::function<nlohmann::json(const todae::EvalHookArgs&)> make_train_eval_hook(const TrainEvalOptions& o);
// The same from a pretrain/finetune config's eval_tasks, eval_limit, eval_data_dir, eval_text.
template <class TrainConfig>
std::function<nlohmann::json(const todae::EvalHookArgs&)> train_eval_hook_of(const TrainConfig& c) {
  TrainEvalOptions eo;
  eo.tasks = c.eval_tasks;
  eo.run.limit = c.eval_limit;
  eo.run.data_dir = c.eval_data_dir;
  eo.run.text_files = c.eval_text;
  return make_train_eval_hook(eo);
}

// `todae eval --watch RUN`: evaluates every checkpoint RUN/step-N (complete ones only: a
// checkpoint appears under that name once written and synced), oldest first, into
// RUN/eval/step-N/ (results.json after each task, samples_TASK.jsonl), skipping those whose
// results.json already holds these tasks with this limit; then waits for new ones. A LoRA/QLoRA
// fine-tuning checkpoint is its base (train_config.model) with the checkpoint's adapter.
// results.json's "model" gets training_info(checkpoint): "run", "checkpoint", "step", "tokens",
// "joules". SIGINT/SIGTERM stop it after the task at hand (a second one at once); the next watch
// reuses the samples made so far.
struct WatchOptions {
  std::string run_dir;
  std::string tasks;         // as --tasks
  RunOptions run;            // out_dir and resume are set per checkpoint
  LocalModelOptions model;   // adapter is set per checkpoint
  double poll_seconds = 30;  // between looks at RUN
  bool once = false;         // evaluate what is there, then return
};
// Returns the exit code: 0, or 1 when a checkpoint could not be evaluated (with --once).
int watch_run(const WatchOptions& o);
// What `todae eval --model PATH` evaluates: anything load_model reads, or a fine-tuning checkpoint
// (RUN/step-N with state.json): a LoRA/QLoRA one is its base (train_config.model, QLoRA in its
// block type) with the checkpoint's adapter, whose id goes to *adapter (0: none). watch.cpp.
InferModel load_eval_model(const std::string& path, int max_context, int* adapter);

// ---- reports (report.cpp: inputs and deltas; report_render.cpp: HTML, Markdown, plots) ----------

// What a model folder says about its training, for the report's step / tokens / joules axes:
// {"run", "checkpoint" (its folder), "step", "tokens", "joules", "energy"} — the keys --watch
// puts in results.json's "model" — from a checkpoint's state.json (RUN/step-N) or a run folder's
// latest checkpoint, else RUN/metrics.jsonl at that step (tokens: pretraining's "tokens", else
// the sum of fine-tuning's "step_tokens"; joules summed over resumed processes that counted from
// 0). An empty object for anything else (a Hugging Face folder, a GGUF file).
nlohmann::ordered_json training_info(const std::string& model_path);

struct ReportCell {
  double value = 0, stderr = 0;
  bool higher_is_better = true;
};
struct ReportRow {  // one results.json: one model or checkpoint
  std::string label, file, run;                     // run: its training run folder ("" unknown)
  double step = NAN, tokens = NAN, joules = NAN;   // of the checkpoint, when known
  nlohmann::ordered_json model = nlohmann::ordered_json::object();  // results.json's "model"
  std::map<std::string, ReportCell> cells;          // "task/metric" -> score
  std::vector<std::string> keys;                    // the cells' keys in the file's order
  nlohmann::ordered_json tasks = nlohmann::ordered_json::object();  // task -> {n, seconds, joules, config}
};
struct ReportPoint {  // a score of a run at a training position, for the plots
  std::string run, series;  // series: "task/metric"
  double step = NAN, tokens = NAN, joules = NAN, value = 0, stderr = 0;
};
struct ReportData {
  std::vector<ReportRow> rows;       // the table; rows[0] is the baseline
  std::vector<std::string> columns;  // "task/metric", in order of first appearance
  std::vector<ReportPoint> points;
  std::vector<std::string> inputs;   // the files read
};
// A todae results.json (or lm-eval's results_*.json); a wrong shape is an Error naming the file
// and the field ("r.json: results.boolq.metrics.acc.value: not a number").
ReportRow parse_results_json(std::string_view text, const std::string& file);
// The "eval/TASK/METRIC" (and "..._stderr") values of a metrics.jsonl, at each row's position.
std::vector<ReportPoint> parse_metrics_jsonl(std::string_view text, const std::string& run);
// RESULTS...: results.json / metrics.jsonl files, or folders searched recursively for them.
ReportData load_report(const std::vector<std::string>& paths);

struct ReportDelta {
  double delta = 0, se = 0;   // x - baseline, sqrt(se_baseline² + se_x²)
  bool significant = false;   // |delta| > 2 se (never with se 0: no uncertainty is known)
  bool better = false;        // in the metric's direction
};
ReportDelta report_delta(const ReportCell& baseline, const ReportCell& x);
// "0.5234", "45.21", "3.36e+09": the digits a table shows; the stderr with the value's decimals.
std::string format_score(double value);
std::string format_score_like(double x, double like);

struct ReportPlot {
  std::string name, title;  // name: file name stem ("score_vs_step_accuracy")
  std::string png;          // the PNG's bytes
  std::string kind, axis;   // "accuracy" (the kind's title), "step" | "tokens" | "joules"
};
// Score vs step, vs training tokens and vs joules, one figure per kind of metric (accuracy,
// 0-100 scores, bits per byte, perplexity, ...), one line per task metric, drawn by gnuplot.
// Problems (no gnuplot) go to *warning; the report is still made, without those plots.
std::vector<ReportPlot> report_plots(const ReportData& d, std::string* warning);
// One self-contained HTML file: styles inline, plots as data: URIs.
std::string report_html(const ReportData& d, const std::vector<ReportPlot>& plots);
// Markdown; plots are linked as files_dir/NAME.png.
std::string report_markdown(const ReportData& d, const std::vector<ReportPlot>& plots, const std::string& files_dir);
// Writes the report: format "html" (one file) or "md" (OUT, and its plots in OUT's stem + "_files/").
// Returns what it wrote, for the one line the command prints.
std::string write_report(const ReportData& d, const std::string& out, const std::string& format);

}  // namespace todae::eval
