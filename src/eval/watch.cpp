// `todae eval --watch RUN`: the exam of every checkpoint of a training run, as it lands. See
// eval.h (watch_run).
//
// Only complete checkpoints are read: src/train writes RUN/step-N.tmp-XXXXXX, syncs it and renames
// it to RUN/step-N, and list_checkpoints never returns anything but step-N. A checkpoint that
// keep-last removes while we read it is skipped with a note. Each checkpoint's results go to
// RUN/eval/step-N/results.json, rewritten after every task: one that holds all the tasks (with the
// same limit, shots and seed) is done and never evaluated again; one that holds some is finished,
// reusing its samples (--resume).
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "base/base.h"
#include "eval/eval.h"
#include "infer/infer.h"
#include "model/lora.h"
#include "train/train.h"

namespace todae::eval {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

volatile sig_atomic_t g_stop = 0;

// The first SIGINT/SIGTERM asks for a stop after the task at hand; a second one is the default
// action (the user means it): samples written so far stay for the next watch.
extern "C" void on_watch_stop_signal(int sig) {
  if (g_stop) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
  g_stop = 1;
}

struct StopSignals {
  struct sigaction old_int {}, old_term {};
  StopSignals() {
    g_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = on_watch_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

bool stopping() { return g_stop != 0; }

// Waits `seconds`, waking at once on a stop request.
void nap(double seconds) {
  for (double left = seconds; left > 0 && !stopping(); left -= 0.1) {
    timespec ts{0, 100 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

// results.json holds exactly these tasks, evaluated with these options.
bool is_done(const std::string& path, const std::vector<TaskConfig>& tasks, const RunOptions& ro) {
  if (!file_exists(path)) return false;
  ojson j;
  try {
    j = ojson::parse(read_file(path));
  } catch (const std::exception&) {
    return false;  // unreadable: evaluate again (write_file_atomic never leaves a torn one)
  }
  if (!j.is_object() || !j.contains("results") || !j["results"].is_object()) return false;
  const ojson& res = j["results"];
  if (res.size() != tasks.size()) return false;
  for (const TaskConfig& t : tasks) {
    if (!res.contains(t.task) || !res[t.task].is_object()) return false;
    const ojson& c = res[t.task].value("config", ojson::object());
    if (!c.is_object() || c.value("limit", -2) != ro.limit || c.value("seed", uint64_t(0)) != ro.seed) return false;
    if (ro.shots >= 0 && c.value("num_fewshot", -1) != ro.shots) return false;
  }
  return true;
}

// The model a checkpoint holds: the folder itself (pretraining, full fine-tuning: config.json,
// model.safetensors, tokenizer.json), or for LoRA/QLoRA its base with the checkpoint's adapter.
InferModel load_checkpoint_model(const std::string& dir, const json& state, int max_context, int* adapter) {
  const json tc = state.value("train_config", json::object());
  const std::string method = tc.is_object() ? tc.value("method", std::string()) : std::string();
  LoadOptions lo;
  lo.max_context = max_context;
  *adapter = 0;
  if (method != "lora" && method != "qlora") return load_model(dir, lo);

  const std::string base = tc.value("model", std::string());
  if (base.empty()) fail(dir, "/state.json: train_config.model (the base of this adapter) is missing");
  if (method == "qlora") {  // the base as the adapter was trained on it
    WType q;
    const std::string qs = tc.value("quant", std::string("q4_0"));
    if (!parse_wtype(qs.c_str(), &q)) fail(dir, "/state.json: train_config.quant '", qs, "' is not a weight type");
    lo.weight_type = q;
  }
  InferModel m = load_model(base, lo);
  LoraConfig lc;
  lc.rank = tc.value("rank", 16);
  lc.alpha = tc.value("alpha", 32.0f);
  lc.rslora = tc.value("rslora", false);
  lc.targets = parse_lora_targets(tc.value("targets", std::string("all-linear")));
  Lora lora = make_lora(m.config, lc);
  lora.base_model = base;
  Checkpoint ck = load_checkpoint(dir);  // sizes and checksums verified
  std::vector<ParamView> views;
  for (const ParamInfo& p : lora.params) views.push_back({p.name, p.offset, p.shape, int8_t(1)});
  read_params(*ck.model, views, {lora.weights.data, lora.num_floats});
  m.adapters.push_back(std::make_shared<const Lora>(std::move(lora)));
  m.adapter_names.push_back(fs::path(dir).filename().string());
  *adapter = int(m.adapters.size());
  return m;
}

std::string scores_line(const std::vector<TaskResult>& results) {
  std::string out;
  for (const TaskResult& r : results)
    for (auto it = r.metrics.begin(); it != r.metrics.end(); ++it) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.4f±%.4f", (*it).value("value", 0.0), (*it).value("stderr", 0.0));
      out += cat(out.empty() ? "" : "  ", r.task, "/", it.key(), buf);
    }
  return out;
}

// Evaluates one checkpoint into out_dir; false when a stop request cut it short.
bool evaluate_checkpoint(const WatchOptions& o, const std::vector<TaskConfig>& tasks, int64_t step,
                         const std::string& dir, const std::string& out_dir) {
  const std::string state_path = dir + "/state.json";
  json state;
  try {
    state = json::parse(read_file(state_path));
  } catch (const json::exception& e) {
    fail(state_path, ": not valid JSON: ", e.what());
  }
  int adapter = 0;
  InferModel m = load_checkpoint_model(dir, state, o.model.ctx, &adapter);
  LocalModelOptions mo = o.model;
  mo.adapter = adapter;
  auto model = make_local_model(m, mo);
  ojson desc = model->describe();
  // Where the checkpoint stands in its training (run, checkpoint, step, tokens, joules: its
  // state.json's metrics, else its row of RUN/metrics.jsonl), as `todae eval --model RUN/step-N`
  // records it, for the curves of `todae eval report`.
  const ojson info = training_info(dir);
  for (auto it = info.begin(); it != info.end(); ++it) desc[it.key()] = it.value();
  if (!desc.contains("step")) desc["step"] = step;

  RunOptions ro = o.run;
  ro.out_dir = out_dir;
  ro.resume = true;  // a checkpoint never changes: samples of an interrupted watch are still right
  make_directories(out_dir);
  std::vector<TaskResult> results;
  for (const TaskConfig& t : tasks) {
    if (stopping()) return false;
    results.push_back(run_task(*model, t, ro));
    write_file_atomic(out_dir + "/results.json", results_json(results, desc).dump(2) + "\n");
  }
  std::printf("watch: %s: %s\n", fs::path(dir).filename().string().c_str(), scores_line(results).c_str());
  std::fflush(stdout);
  return true;
}

}  // namespace

InferModel load_eval_model(const std::string& path, int max_context, int* adapter) {
  const std::string state_path = path + "/state.json";
  if (is_directory(path) && file_exists(state_path)) {
    json state;
    try {
      state = json::parse(read_file(state_path));
    } catch (const json::exception& e) {
      fail(state_path, ": not valid JSON: ", e.what());
    }
    return load_checkpoint_model(path, state, max_context, adapter);
  }
  LoadOptions lo;
  lo.max_context = max_context;
  *adapter = 0;
  return load_model(path, lo);
}

int watch_run(const WatchOptions& o) {
  if (o.run_dir.empty()) fail("--watch: no run folder given");
  if (!(o.poll_seconds > 0)) fail("--poll: must be a positive number of seconds");
  std::vector<TaskConfig> tasks = tasks_from_spec(o.tasks);
  for (const TaskConfig& t : tasks) prepare_task(t, o.run);  // data and templates checked up front
  if (o.once && !is_directory(o.run_dir)) fail(o.run_dir, ": not a folder (a todae pretrain or finetune run)");

  StopSignals signals;
  std::set<std::string> failed;  // not retried by this watch (the error was printed once)
  int evaluated = 0, failures = 0;
  bool said_waiting = false;
  while (!stopping()) {
    size_t total = 0, done = 0;
    if (is_directory(o.run_dir)) {
      const auto cks = list_checkpoints(o.run_dir);
      total = cks.size();
      for (const auto& [step, dir] : cks) {
        if (stopping()) break;
        const std::string name = fs::path(dir).filename().string();
        const std::string out_dir = o.run_dir + "/eval/" + name;
        if (is_done(out_dir + "/results.json", tasks, o.run)) {
          done++;
          continue;
        }
        if (failed.count(dir)) continue;
        try {
          if (evaluate_checkpoint(o, tasks, step, dir, out_dir)) evaluated++, done++;
          said_waiting = false;
        } catch (const std::exception& e) {
          if (!is_directory(dir)) {  // keep-last took it while we read it
            std::fprintf(stderr, "watch: %s was removed before it could be evaluated\n", name.c_str());
            total--;
            continue;
          }
          std::fprintf(stderr, "watch: %s: %s\n", name.c_str(), e.what());
          failed.insert(dir);
          failures++;
        }
      }
    }
    if (stopping()) break;
    if (o.once) {
      if (evaluated == 0 && failures == 0)
        std::printf("watch: nothing to do: all %zu checkpoints of %s are evaluated (%s/eval/step-N/results.json)\n",
                    total, o.run_dir.c_str(), o.run_dir.c_str());
      else
        std::printf("watch: evaluated %d checkpoint%s; %zu of %zu done in %s/eval\n", evaluated,
                    evaluated == 1 ? "" : "s", done, total, o.run_dir.c_str());
      return failures > 0 ? 1 : 0;
    }
    if (!said_waiting) {
      std::fprintf(stderr, "watch: %zu of %zu checkpoints done; waiting for new ones in %s (every %gs; Ctrl-C stops)\n",
                   done, total, o.run_dir.c_str(), o.poll_seconds);
      said_waiting = true;
    }
    nap(o.poll_seconds);
  }
  std::fprintf(stderr, "watch: stopped; evaluated %d checkpoint%s (an unfinished one continues next time)\n", evaluated,
               evaluated == 1 ? "" : "s");
  return 0;
}

}  // namespace todae::eval
