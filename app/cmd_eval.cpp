// `todae eval`: scores a model on tasks (lm-eval task YAML, or built-in ones) — see src/eval/eval.h.
//
//   todae eval --model PATH [--lora DIR[:scale]]... --tasks NAME,...|FILE.yaml [--limit N] [--shots K]
//              [--seed S] [--out DIR] [--resume] [--data-dir DIR] [--text FILE]... [--ctx N] [--threads N]
//   todae eval --list-tasks
#include <cstdio>

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

std::vector<TaskConfig> resolve_tasks(const std::string& spec) {
  std::vector<TaskConfig> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t e = spec.find(',', pos);
    if (e == std::string::npos) e = spec.size();
    std::string name = spec.substr(pos, e - pos);
    pos = e + 1;
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    if (name.empty()) continue;
    auto ends = [&](const char* s) { return name.size() > std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0; };
    if (ends(".yaml") || ends(".yml")) {
      out.push_back(load_task_file(name));
    } else if (auto g = expand_task_group(name); !g.empty()) {
      for (const std::string& t : g) out.push_back(builtin_task(t));
    } else {
      out.push_back(builtin_task(name));  // unknown names fail here, with one line
    }
  }
  if (out.empty()) fail("--tasks: no task given (a name, a group, or a task .yaml file; --list-tasks shows the names)");
  return out;
}

void run(EvalArgs& a) {
  if (a.list) {
    for (const char* g : {"kobest", "kmmlu", "haerae", "click_cul", "translation"}) {
      std::printf("%s (group):", g);
      for (const std::string& t : expand_task_group(g)) std::printf(" %s", t.c_str());
      std::printf("\n");
    }
    for (const std::string& t : builtin_task_names()) std::printf("%s\n", t.c_str());
    return;
  }
  if (a.model.empty()) fail("eval: --model PATH is required (a run folder, a Hugging Face folder or a .gguf file)");
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

  if (a.threads > 0) set_threads(a.threads);
  LoadOptions lo;
  if (a.ctx > 0) lo.max_context = a.ctx;
  InferModel m = load_model(a.model, lo);
  LocalModelOptions mo;
  mo.ctx = a.ctx;
  mo.adapter = add_adapters(m, a.loras);
  mo.add_bos = a.add_bos;
  auto model = make_local_model(m, mo);

  make_directories(a.out);
  std::vector<TaskResult> results;
  const ojson desc = model->describe();
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
  p->callback([] { run(a); });
}

CommandRegistrar registrar(70, add_eval_commands);

}  // namespace

}  // namespace todae::cli
