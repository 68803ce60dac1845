// Evaluation while training: the hook `todae pretrain/finetune --eval-tasks` runs at every
// evaluation step. The trainer hands it the model being trained (src/train knows nothing of
// src/eval); the tasks run on an inference view of those weights (infer_view: pointers into the
// training buffers, no copy, no checkpoint read back), so a step's scores are those `todae eval`
// gives on that step's checkpoint.
#include <cctype>
#include <cstring>

#include "base/base.h"
#include "eval/eval.h"
#include "infer/infer.h"
#include "train/train.h"

namespace todae::eval {

using json = nlohmann::json;

std::vector<TaskConfig> tasks_from_spec(const std::string& spec) {
  std::vector<TaskConfig> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t e = spec.find(',', pos);
    if (e == std::string::npos) e = spec.size();
    std::string name = spec.substr(pos, e - pos);
    pos = e + 1;
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.erase(name.begin());
    if (name.empty()) continue;
    auto ends = [&](const char* s) {
      return name.size() > std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0;
    };
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

json metrics_fields(const std::vector<TaskResult>& results) {
  json out = json::object();
  for (const TaskResult& r : results)
    for (auto it = r.metrics.begin(); it != r.metrics.end(); ++it) {
      const std::string key = cat("eval/", r.task, "/", it.key());
      const auto& m = it.value();
      // NaN has no JSON spelling (the metrics log writes null): a missing value stays visible.
      if (m.contains("value") && m["value"].is_number()) out[key] = m["value"].get<double>();
      if (m.contains("stderr") && m["stderr"].is_number()) out[key + "_stderr"] = m["stderr"].get<double>();
    }
  return out;
}

std::function<json(const EvalHookArgs&)> make_train_eval_hook(const TrainEvalOptions& o) {
  auto tasks = std::make_shared<const std::vector<TaskConfig>>(tasks_from_spec(o.tasks));
  RunOptions ro = o.run;
  ro.out_dir.clear();  // the scores go into metrics.jsonl; `todae eval --watch` keeps samples
  ro.resume = false;
  ro.quiet = true;
  for (const TaskConfig& t : *tasks) prepare_task(t, ro);  // a bad data file fails before training
  const LocalModelOptions mo = o.model;
  return [tasks, ro, mo](const EvalHookArgs& a) -> json {
    LoadOptions lo;
    lo.max_context = mo.ctx;
    InferModel view = infer_view(a.model, a.tokenizer_json, a.tokenizer_config_json, lo);
    if (!view.has_tokenizer) fail("--eval-tasks: the run has no tokenizer.json to read the tasks' text with");
    LocalModelOptions m = mo;
    m.adapter = view.adapters.empty() ? 0 : 1;
    auto model = make_local_model(view, m);
    std::vector<TaskResult> results;
    for (const TaskConfig& t : *tasks) results.push_back(run_task(*model, t, ro));
    return metrics_fields(results);
  };
}

}  // namespace todae::eval
