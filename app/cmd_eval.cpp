// `todae eval`: scores a model on tasks (lm-eval task YAML, or built-in ones) — see src/eval/eval.h.
//
//   todae eval --model PATH [--lora DIR[:scale]]... --tasks NAME,...|FILE.yaml [--limit N] [--shots K]
//              [--seed S] [--out DIR] [--resume] [--data-dir DIR] [--text FILE]... [--ctx N] [--threads N]
//   todae eval --watch RUN_DIR --tasks ... [--poll SECONDS] [--once]   every checkpoint of a run, as it lands
//   todae eval --endpoint URL [--api-key KEY] [--endpoint-model NAME] [--concurrency N] --tasks ...
//              an OpenAI-compatible server as the model (src/eval/endpoint_model.cpp)
//   todae eval report RESULTS... [--out report.html] [--format html|md]   models × tasks, deltas, plots
//   todae eval --list-tasks
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "base/base.h"
#include "eval/eval.h"
#include "infer/infer.h"
#include "tensor/tensor.h"

namespace todae::cli {

using namespace todae::eval;

namespace {

using ojson = nlohmann::ordered_json;

struct EvalArgs {
  std::string model, tasks, out = "eval_out", data_dir;
  std::vector<std::string> loras, texts;
  int limit = -1, shots = -1, ctx = 0, threads = 0;
  long long seed = 1234;
  bool resume = false, list = false, add_bos = false, quiet = false;
};

std::vector<TaskConfig> resolve_tasks(const std::string& spec) { return tasks_from_spec(spec); }

// `--watch RUN_DIR`: every checkpoint of a training run into RUN_DIR/eval/step-N (src/eval/watch.cpp).
struct WatchArgs {
  std::string run;
  double poll = 30;
  bool once = false;
};
WatchArgs watch_args;

void run_watch(const EvalArgs& a, const WatchArgs& w) {
  if (!a.model.empty() || !a.loras.empty()) fail("--watch evaluates the checkpoints of RUN_DIR: leave out --model and --lora");
  if (a.tasks.empty()) fail("eval --watch: --tasks is required (names, groups or task .yaml files; --list-tasks)");
  if (a.limit < -1) fail("--limit must be >= 0");
  if (a.shots < -1) fail("--shots must be >= 0");
  WatchOptions o;
  o.run_dir = w.run;
  o.tasks = a.tasks;
  o.run.limit = a.limit;
  o.run.shots = a.shots;
  o.run.seed = uint64_t(a.seed);
  o.run.data_dir = a.data_dir;
  o.run.text_files = a.texts;
  o.run.quiet = a.quiet;
  o.model.ctx = a.ctx;
  o.model.add_bos = a.add_bos;
  o.poll_seconds = w.poll;
  o.once = w.once;
  if (a.threads > 0) set_threads(a.threads);
  const int rc = watch_run(o);
  if (rc != 0) std::exit(rc);
}

// `--endpoint URL`: an OpenAI-compatible server (todae serve, vLLM, llama-server) as the model.
struct EndpointArgs {
  EndpointOptions o;
};
EndpointArgs endpoint_args;

std::unique_ptr<EvalModel> endpoint_model(const EvalArgs& a) {
  if (!a.loras.empty()) fail("--lora applies to --model; a server's adapters are models of their own (--endpoint-model NAME)");
  EndpointOptions o = endpoint_args.o;
  if (o.api_key.empty())
    if (const char* k = std::getenv("OPENAI_API_KEY")) o.api_key = k;  // as lm-eval's API models read it
  o.seed = uint64_t(a.seed);
  o.add_bos = a.add_bos;
  return make_endpoint_model(o);
}

void run(EvalArgs& a) {
  if (!watch_args.run.empty()) {
    if (!endpoint_args.o.url.empty()) fail("--watch evaluates a run's checkpoints locally: leave out --endpoint");
    return run_watch(a, watch_args);
  }
  if (a.list) {
    for (const char* g : {"kobest", "kmmlu", "haerae", "click_cul", "translation"}) {
      std::printf("%s (group):", g);
      for (const std::string& t : expand_task_group(g)) std::printf(" %s", t.c_str());
      std::printf("\n");
    }
    for (const std::string& t : builtin_task_names()) std::printf("%s\n", t.c_str());
    return;
  }
  const bool endpoint = !endpoint_args.o.url.empty();
  if (endpoint && !a.model.empty()) fail("eval: --model and --endpoint exclude each other (a local model, or a server)");
  if (a.model.empty() && !endpoint)
    fail("eval: --model PATH (a run folder, a Hugging Face folder or a .gguf file) or --endpoint URL is required");
  if (a.tasks.empty()) fail("eval: --tasks is required (names, groups or task .yaml files; --list-tasks)");
  if (a.limit < -1) fail("--limit must be >= 0");
  if (a.shots < -1) fail("--shots must be >= 0");
  // Tasks first: a typo in a task name fails before a model is loaded.
  std::vector<TaskConfig> tasks = resolve_tasks(a.tasks);
  RunOptions ro;
  ro.limit = a.limit;
  ro.shots = a.shots;
  ro.seed = uint64_t(a.seed);
  ro.out_dir = a.out;
  ro.resume = a.resume;
  ro.data_dir = a.data_dir;
  ro.text_files = a.texts;
  ro.quiet = a.quiet;
  for (const TaskConfig& t : tasks) prepare_task(t, ro);  // data and templates checked up front

  std::unique_ptr<InferModel> m;  // (outlives the local model, which refers to it)
  std::unique_ptr<EvalModel> model;
  if (endpoint) {
    model = endpoint_model(a);
  } else {
    if (a.threads > 0) set_threads(a.threads);
    int checkpoint_adapter = 0;
    m = std::make_unique<InferModel>(load_eval_model(a.model, std::max(0, a.ctx), &checkpoint_adapter));
    if (checkpoint_adapter && !a.loras.empty())
      fail("--lora: ", a.model, " is a LoRA fine-tuning checkpoint, which brings its own adapter");
    LocalModelOptions mo;
    mo.ctx = a.ctx;
    mo.adapter = checkpoint_adapter ? checkpoint_adapter : add_adapters(*m, a.loras);
    mo.add_bos = a.add_bos;
    model = make_local_model(*m, mo);
  }

  make_directories(a.out);
  std::vector<TaskResult> results;
  ojson desc = model->describe();
  // Where the model stands in its training (a run or checkpoint folder: step, tokens, joules), for
  // the curves of `todae eval report`; for a LoRA, the adapter's fine-tuning run.
  if (!endpoint) {
    const ojson ti = training_info(a.loras.empty() ? a.model : parse_lora_arg(a.loras[0]).path);
    for (auto it = ti.begin(); it != ti.end(); ++it)
      if (!desc.contains(it.key())) desc[it.key()] = *it;
  }
  for (const TaskConfig& t : tasks) {
    results.push_back(run_task(*model, t, ro));
    // results.json after every task: a later failure keeps what is done
    write_file_atomic(a.out + "/results.json", results_json(results, desc).dump(2) + "\n");
  }
  std::printf("%-32s %-22s %10s %10s %6s\n", "task", "metric", "value", "stderr", "n");
  for (const TaskResult& r : results)
    for (auto it = r.metrics.begin(); it != r.metrics.end(); ++it)
      std::printf("%-32s %-22s %10.4f %10.4f %6d\n", r.task.c_str(), it.key().c_str(), (*it)["value"].get<double>(),
                  (*it)["stderr"].get<double>(), r.n);
  std::printf("wrote %s/results.json and samples_*.jsonl\n", a.out.c_str());
}

// `todae eval report RESULTS... --out report.html [--format html|md]` (src/eval/report*.cpp).
struct ReportArgs {
  std::vector<std::string> inputs;
  std::string out = "report.html", format;
  bool quiet = false;
};
CLI::App* report_cmd = nullptr;

void run_report(const ReportArgs& r) {
  std::string format = r.format;
  if (format.empty()) format = r.out.ends_with(".md") ? "md" : "html";  // by the file's extension
  if (format != "html" && format != "md") fail("--format: '", format, "' is not html or md");
  const ReportData d = load_report(r.inputs);
  const std::string wrote = write_report(d, r.out, format);
  if (!r.quiet) std::fprintf(stderr, "eval report: wrote %s from %zu files\n", wrote.c_str(), d.inputs.size());
}

void add_eval_commands(CLI::App& app) {
  static EvalArgs a;
  auto* p = app.add_subcommand("eval", "Evaluate a model on benchmark tasks (lm-eval task YAML, KoBEST, KMMLU, ...)");
  p->add_option("--model,-m", a.model, "Run/checkpoint folder, Hugging Face folder or .gguf file");
  p->add_option("--lora", a.loras, "LoRA adapter (PEFT folder or GGUF LoRA, DIR[:scale]); repeatable");
  p->add_option("--tasks", a.tasks, "Comma-separated task names, groups (kobest, kmmlu, haerae) or task .yaml files");
  p->add_option("--limit", a.limit, "Evaluate the first N documents of each task");
  p->add_option("--shots", a.shots, "Few-shot examples per prompt (default: the task's num_fewshot)");
  p->add_option("--seed", a.seed, "Seed of the few-shot sampler and the bootstrap (default 1234)");
  p->add_option("--out", a.out, "Output folder: results.json, samples_TASK.jsonl")->capture_default_str();
  p->add_flag("--resume", a.resume, "Keep the samples already in --out and evaluate only the rest");
  p->add_option("--data-dir", a.data_dir, "Folder with the task's data files (instead of the YAML's dataset_path)");
  p->add_option("--text", a.texts, "Text file scored by the bpb task (repeatable)");
  p->add_option("--ctx", a.ctx, "Context length (default: the model's, at most 4096)");
  p->add_option("--threads,-t", a.threads, "Threads (default: all cores)");
  p->add_flag("--add-bos", a.add_bos, "Prepend the BOS token to every context (lm-eval's add_bos_token)");
  p->add_flag("--list-tasks", a.list, "List the built-in tasks and groups");
  p->add_flag("--quiet,-q", a.quiet, "No progress line");
  p->add_option("--watch", watch_args.run,
                "Evaluate every checkpoint of this training run as it lands, into RUN_DIR/eval/step-N (never twice)");
  p->add_option("--poll", watch_args.poll, "--watch: seconds between looks for new checkpoints (default 30)");
  p->add_flag("--once", watch_args.once, "--watch: evaluate the checkpoints there now, then exit");
  EndpointOptions& eo = endpoint_args.o;
  p->add_option("--endpoint", eo.url,
                "OpenAI-compatible server as the model (instead of --model): http(s)://HOST:PORT[/v1]; "
                "log-likelihood through /v1/completions with echo + logprobs");
  p->add_option("--api-key", eo.api_key, "--endpoint: bearer token (default: $OPENAI_API_KEY)");
  p->add_option("--endpoint-model", eo.model, "--endpoint: the model name to request (default: the first of /v1/models)");
  p->add_option("--concurrency", eo.concurrency, "--endpoint: requests in flight (default 8)");
  p->add_option("--max-retries", eo.max_retries,
                "--endpoint: retries of a request after a connection error, 429 or 5xx, with exponential backoff (default 5)");
  p->add_option("--timeout", eo.timeout_s, "--endpoint: seconds a request may take (default 300)");
  p->add_option("--retry-wait", eo.backoff_s, "--endpoint: seconds before the first retry, doubled after each (default 1)");
  p->add_flag("--chat", eo.chat, "--endpoint: generation tasks through /v1/chat/completions (the server's chat template)");
  p->callback([] {
    if (!report_cmd->parsed()) run(a);
  });
  static ReportArgs ra;
  report_cmd = p->add_subcommand("report", "Report of results.json files: models × tasks with deltas, plots; one HTML file");
  report_cmd->add_option("results", ra.inputs, "results.json / metrics.jsonl files, or folders holding them (a run folder)")
      ->required();
  report_cmd->add_option("--out,-o", ra.out, "Report file (.html: self-contained; .md: Markdown, plots in NAME_files/)")
      ->capture_default_str();
  report_cmd->add_option("--format", ra.format, "html or md (default: by --out's extension, else html)");
  report_cmd->add_flag("--quiet,-q", ra.quiet, "No summary line");
  report_cmd->callback([] { run_report(ra); });
}

CommandRegistrar registrar(70, add_eval_commands);

}  // namespace

}  // namespace todae::cli
