// `todae eval report`, part one: reading what evaluations left behind — results.json files (ours,
// and lm-eval's results_*.json for side-by-side comparisons), the eval/ scores that periodic
// evaluation appends to a run's metrics.jsonl, and what a run folder knows about a checkpoint's
// training (step, tokens, joules) — into rows of a models × tasks table and points of curves.
// Rendering (HTML, Markdown, gnuplot) is in report_render.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "base/base.h"
#include "eval/eval.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

bool is_num(const ojson& j, const char* key) { return j.is_object() && j.contains(key) && j[key].is_number(); }

double num_or(const ojson& j, const char* key, double fallback) {
  return is_num(j, key) ? j[key].get<double>() : fallback;
}

std::string str_or(const ojson& j, const char* key, const std::string& fallback = "") {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

// "step-30", "step_000100", "step30" -> 30; anything else -1. Periodic evaluation names its
// folders after the checkpoints (RUN/eval/step-N/results.json).
int64_t step_of_name(const std::string& name) {
  if (name.rfind("step", 0) != 0) return -1;
  size_t i = 4;
  if (i < name.size() && (name[i] == '-' || name[i] == '_')) i++;
  if (i == name.size() || name.size() - i > 18) return -1;
  int64_t v = 0;
  for (; i < name.size(); i++) {
    if (name[i] < '0' || name[i] > '9') return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

std::string canonical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::path(p), ec);
  std::string s = ec ? p : c.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string base_name(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// A metrics.jsonl walked in file order, each row with the training position it was written at.
// tokens: pretraining logs the running total ("tokens"), fine-tuning each step's ("step_tokens"),
// summed here. joules: each process counts from its own start, so a resumed run's counter falls
// back to ~0 on a row whose step moved on; the earlier processes' totals are added back.
struct Position {
  int64_t step = -1;
  double tokens = NAN, joules = NAN;
  std::string energy;
};
template <typename Fn>
void walk_metrics(std::string_view text, Fn&& fn) {
  Position pos;
  double tok_sum = 0, joule_offset = 0, last_joules = NAN;
  int64_t tok_counted = -1;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    // Only complete lines: the last one may be the torn tail of a killed writer.
    ojson row = ojson::parse(text.substr(start, nl - start), nullptr, false);
    if (row.is_discarded() || !row.is_object() || !is_num(row, "step")) continue;
    const int64_t step = int64_t(row["step"].get<double>());
    const bool moved = step > pos.step;
    if (is_num(row, "tokens")) {
      pos.tokens = row["tokens"].get<double>();
    } else if (is_num(row, "step_tokens") && step > tok_counted) {
      tok_sum += row["step_tokens"].get<double>();
      tok_counted = step;
      pos.tokens = tok_sum;
    } else if (moved) {
      pos.tokens = NAN;
    }
    if (is_num(row, "joules")) {
      const double j = row["joules"].get<double>();
      if (moved && std::isfinite(last_joules) && j < last_joules) joule_offset += last_joules;
      last_joules = j;
      pos.joules = joule_offset + j;
    } else if (moved) {
      pos.joules = NAN;
    }
    if (row.contains("energy") && row["energy"].is_string()) pos.energy = row["energy"].get<std::string>();
    pos.step = step;
    fn(row, pos);
  }
}

}  // namespace

ojson training_info(const std::string& model_path) {
  std::string dir = model_path;
  if (!is_directory(dir)) {
    // A file of a model folder (model.safetensors, config.json) stands for the folder.
    const std::string n = base_name(dir);
    if (!(n.size() > 5 && (n.ends_with(".safetensors") || n.ends_with(".json")))) return ojson::object();
    dir = fs::path(dir).parent_path().string();
    if (dir.empty()) dir = ".";
  }
  dir = canonical(dir);
  std::string run, checkpoint;
  int64_t step = -1;
  ojson state = ojson::object();
  auto read_state = [&](const std::string& ck) {
    if (!file_exists(ck + "/state.json")) return false;
    ojson st = ojson::parse(read_file(ck + "/state.json"), nullptr, false);
    if (st.is_discarded() || str_or(st, "format") != "todae-checkpoint" || !is_num(st, "step")) return false;
    state = st;
    step = st["step"].get<int64_t>();
    checkpoint = ck;
    return true;
  };
  if (read_state(dir)) {  // a checkpoint folder, RUN/step-N
    run = fs::path(dir).parent_path().string();
  } else if (file_exists(dir + "/metrics.jsonl") || file_exists(dir + "/latest")) {
    run = dir;  // a run folder: its model.safetensors is the latest checkpoint's
    if (file_exists(dir + "/latest")) {
      std::string l = read_file(dir + "/latest");
      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
      if (step_of_name(l) >= 0 && !read_state(dir + "/" + l)) step = step_of_name(l);
    }
  }
  if (run.empty()) return ojson::object();
  // The keys `todae eval --watch` writes into results.json's "model" (watch.cpp), and the run.
  ojson out = {{"run", run}};
  if (!checkpoint.empty()) out["checkpoint"] = checkpoint;
  // The checkpoint's own record (todae pretrain and finetune write tokens and joules into
  // state.json's metrics), else its row of RUN/metrics.jsonl.
  const ojson m = state.contains("metrics") && state["metrics"].is_object() ? state["metrics"] : ojson::object();
  double tokens = num_or(m, "tokens", NAN), joules = num_or(m, "joules", NAN);
  Position at;
  if (file_exists(run + "/metrics.jsonl")) {
    walk_metrics(read_file(run + "/metrics.jsonl"), [&](const ojson&, const Position& p) {
      if (step < 0 || p.step == step) at = p;  // no checkpoint known: the last row
    });
  }
  if (step < 0) step = at.step;
  if (step < 0) return out;
  out["step"] = step;
  if (at.step == step) {
    if (!std::isfinite(tokens)) tokens = at.tokens;
    if (!std::isfinite(joules)) joules = at.joules;
    if (!at.energy.empty()) out["energy"] = at.energy;
  }
  if (std::isfinite(tokens)) out["tokens"] = tokens;
  if (std::isfinite(joules)) out["joules"] = joules;
  return out;
}

// ---- results.json ---------------------------------------------------------------------------------

namespace {

// lm-eval's results_*.json: {"results": {task: {"acc,none": v, "acc_stderr,none": s, "alias": ..}},
// "higher_is_better": {task: {metric: bool}}, "config": {"model": .., "model_args": ..}}. The
// metric keys become ours: "acc" for the "none" filter, "exact_match,flexible-extract" else.
void parse_lm_eval_task(const ojson& t, const ojson& hib, const std::string& task, ReportRow& r) {
  for (auto it = t.begin(); it != t.end(); ++it) {
    const std::string& k = it.key();
    const size_t comma = k.find(',');
    const std::string metric = k.substr(0, comma), filter = comma == std::string::npos ? "none" : k.substr(comma + 1);
    if (!it->is_number() || metric.ends_with("_stderr")) continue;
    ReportCell c;
    c.value = it->get<double>();
    const std::string se_key = metric + "_stderr" + (comma == std::string::npos ? "" : "," + filter);
    if (t.contains(se_key) && t[se_key].is_number()) c.stderr = t[se_key].get<double>();
    if (hib.contains(task) && hib[task].is_object() && hib[task].contains(metric) && hib[task][metric].is_boolean())
      c.higher_is_better = hib[task][metric].get<bool>();
    else
      c.higher_is_better = metric.find("perplexity") == std::string::npos && metric != "bits_per_byte";
    const std::string key = task + "/" + (filter == "none" ? metric : metric + "," + filter);
    if (!r.cells.count(key)) r.keys.push_back(key);
    r.cells[key] = c;
  }
}

}  // namespace

ReportRow parse_results_json(std::string_view text, const std::string& file) {
  ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded()) fail(file, ": not JSON (a results.json from todae eval was expected)");
  if (!j.is_object() || !j.contains("results") || !j["results"].is_object())
    fail(file, ": results: missing or not an object (not a results.json from todae eval)");
  ReportRow r;
  r.file = file;
  if (j.contains("model") && j["model"].is_object()) r.model = j["model"];
  const bool lm_eval = !j["results"].empty() && !j["results"].begin()->contains("metrics") &&
                       j.contains("higher_is_better");
  for (auto t = j["results"].begin(); t != j["results"].end(); ++t) {
    const std::string where = cat("results.", t.key());
    if (!t->is_object()) fail(file, ": ", where, ": not an object");
    if (lm_eval) {
      parse_lm_eval_task(*t, j["higher_is_better"], t.key(), r);
      ojson info = ojson::object();
      if (j.contains("n-samples") && j["n-samples"].contains(t.key()))
        info["n"] = j["n-samples"][t.key()].value("effective", 0);
      r.tasks[t.key()] = info;
      continue;
    }
    if (!t->contains("metrics") || !(*t)["metrics"].is_object()) fail(file, ": ", where, ".metrics: missing or not an object");
    for (auto m = (*t)["metrics"].begin(); m != (*t)["metrics"].end(); ++m) {
      const std::string mw = cat(where, ".metrics.", m.key());
      if (!m->is_object()) fail(file, ": ", mw, ": not an object");
      ReportCell c;
      // null: a value JSON cannot spell (NaN); shown as "—"
      if (m->contains("value") && (*m)["value"].is_null()) c.value = NAN;
      else if (!is_num(*m, "value")) fail(file, ": ", mw, ".value: missing or not a number");
      else c.value = (*m)["value"].get<double>();
      if (m->contains("stderr") && !(*m)["stderr"].is_null() && !(*m)["stderr"].is_number())
        fail(file, ": ", mw, ".stderr: not a number");
      c.stderr = num_or(*m, "stderr", 0);
      if (m->contains("higher_is_better") && !(*m)["higher_is_better"].is_boolean())
        fail(file, ": ", mw, ".higher_is_better: not true or false");
      c.higher_is_better = m->value("higher_is_better", true);
      const std::string key = t.key() + "/" + m.key();
      if (!r.cells.count(key)) r.keys.push_back(key);
      r.cells[key] = c;
    }
    ojson info = {{"n", num_or(*t, "n", 0)}, {"seconds", num_or(*t, "seconds", NAN)}, {"joules", num_or(*t, "joules", NAN)}};
    if (t->contains("config") && (*t)["config"].is_object()) info["config"] = (*t)["config"];
    r.tasks[t.key()] = info;
  }
  if (lm_eval && j.contains("config") && j["config"].is_object()) {
    const ojson& c = j["config"];
    r.model["path"] = str_or(c, "model_name", str_or(c, "model_args", str_or(c, "model", "lm-eval")));
    r.model["format"] = cat("lm-eval ", str_or(c, "model"));
  }

  // The checkpoint's training position: results.json's own record ("step", "tokens", "joules",
  // "checkpoint", "run" in "model", as todae eval and --watch write them), else what the model
  // folder says now (results made before that record existed), else the folder name
  // (RUN/eval/step-N/results.json).
  const std::string path = str_or(r.model, "path");
  ojson tr = r.model;
  if (!is_num(tr, "step") && !path.empty()) tr = training_info(path);
  r.step = num_or(tr, "step", NAN);
  r.tokens = num_or(tr, "tokens", NAN);
  r.joules = num_or(tr, "joules", NAN);
  r.run = str_or(tr, "run");
  const std::string ck = str_or(tr, "checkpoint");
  if (r.run.empty() && step_of_name(base_name(ck)) >= 0) r.run = fs::path(ck).parent_path().string();
  const fs::path parent = fs::path(file).parent_path();
  const bool in_run_eval = step_of_name(parent.filename().string()) >= 0 && parent.parent_path().filename() == "eval";
  if (!std::isfinite(r.step) && step_of_name(parent.filename().string()) >= 0)
    r.step = double(step_of_name(parent.filename().string()));
  if (r.run.empty() && in_run_eval) r.run = parent.parent_path().parent_path().string();
  if (!r.run.empty()) r.run = canonical(r.run);

  // The row's name: run/checkpoint for a run's checkpoint, else the model's folder or file name.
  std::string label;
  const std::string adapter = str_or(r.model, "adapter");
  if (!r.run.empty() && !ck.empty()) label = base_name(r.run) + "/" + base_name(ck);
  else if (!r.run.empty() && std::isfinite(r.step) && (in_run_eval || path.empty()))
    label = cat(base_name(r.run), "/step-", int64_t(r.step));
  else if (!path.empty()) {
    label = base_name(path);
    if (step_of_name(label) >= 0) label = base_name(fs::path(path).parent_path().string()) + "/" + label;
  } else {
    label = str_or(r.model, "name", str_or(r.model, "endpoint", base_name(parent.string())));
  }
  // A LoRA checkpoint under --watch is its base plus an adapter named after the checkpoint.
  if (!adapter.empty() && adapter != base_name(ck)) label += " + " + adapter;
  r.label = label.empty() ? file : label;
  return r;
}

std::vector<ReportPoint> parse_metrics_jsonl(std::string_view text, const std::string& run) {
  std::vector<ReportPoint> out;
  walk_metrics(text, [&](const ojson& row, const Position& p) {
    for (auto it = row.begin(); it != row.end(); ++it) {
      const std::string& k = it.key();
      if (k.rfind("eval/", 0) != 0 || k.ends_with("_stderr") || !it->is_number()) continue;
      const size_t slash = k.find_last_of('/');
      if (slash <= 5 || slash + 1 == k.size()) continue;  // "eval/TASK/METRIC"
      ReportPoint pt;
      pt.run = run;
      pt.series = k.substr(5);
      pt.step = double(p.step);
      pt.tokens = p.tokens;
      pt.joules = p.joules;
      pt.value = it->get<double>();
      pt.stderr = num_or(row, (k + "_stderr").c_str(), 0);
      out.push_back(pt);
    }
  });
  return out;
}

// ---- inputs -----------------------------------------------------------------------------------------

namespace {

bool is_results_name(const std::string& n) {
  return n == "results.json" || (n.rfind("results_", 0) == 0 && n.ends_with(".json"));  // lm-eval's
}

}  // namespace

ReportData load_report(const std::vector<std::string>& paths) {
  if (paths.empty()) fail("eval report: give results.json files or folders holding them");
  ReportData d;
  std::vector<ReportPoint> from_logs;
  for (const std::string& p : paths) {
    std::vector<std::string> results, logs;
    if (is_directory(p)) {
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string n = it->path().filename().string();
        if (!it->is_regular_file(ec)) continue;
        if (is_results_name(n)) results.push_back(it->path().string());
        else if (n == "metrics.jsonl") logs.push_back(it->path().string());
      }
      if (ec) fail(p, ": cannot list: ", ec.message());
      if (results.empty() && logs.empty()) fail(p, ": no results.json or metrics.jsonl in this folder");
      std::sort(results.begin(), results.end());
      std::sort(logs.begin(), logs.end());
    } else if (!file_exists(p)) {
      fail(p, ": no such file or folder");
    } else if (p.ends_with(".jsonl")) {
      logs.push_back(p);
    } else {
      results.push_back(p);
    }
    std::vector<ReportRow> rows;
    for (const std::string& f : results) rows.push_back(parse_results_json(read_file(f), f));
    // A folder's checkpoints in training order (a file named on the command line stays in place).
    std::stable_sort(rows.begin(), rows.end(), [](const ReportRow& a, const ReportRow& b) {
      if (a.run != b.run) return a.run < b.run;
      const double sa = std::isfinite(a.step) ? a.step : 1e300, sb = std::isfinite(b.step) ? b.step : 1e300;
      return sa < sb;
    });
    for (ReportRow& r : rows) d.rows.push_back(std::move(r));
    for (const std::string& f : logs) {
      for (ReportPoint& pt : parse_metrics_jsonl(read_file(f), canonical(fs::path(f).parent_path().string())))
        from_logs.push_back(std::move(pt));
    }
    for (const std::string& f : results) d.inputs.push_back(f);
    for (const std::string& f : logs) d.inputs.push_back(f);
  }

  // Two rows of one name (the same checkpoint evaluated twice): told apart by their file.
  std::map<std::string, int> seen;
  for (const ReportRow& r : d.rows) seen[r.label]++;
  for (ReportRow& r : d.rows)
    if (seen[r.label] > 1) r.label += " (" + r.file + ")";

  // Columns in the order the files list them, kept together by task (the table's header groups
  // a task's metrics under one cell) in the order the tasks first appear.
  std::set<std::string> cols;
  std::map<std::string, size_t> task_rank;
  auto task_of = [](const std::string& key) { return key.substr(0, key.find_last_of('/')); };
  for (const ReportRow& r : d.rows)
    for (const std::string& key : r.keys) {
      task_rank.emplace(task_of(key), task_rank.size());
      if (cols.insert(key).second) d.columns.push_back(key);
    }
  std::stable_sort(d.columns.begin(), d.columns.end(), [&](const std::string& a, const std::string& b) {
    return task_rank[task_of(a)] < task_rank[task_of(b)];
  });

  // Curves: every row that knows its training position, then the metrics.jsonl scores that no
  // results.json of the same run and step already gave.
  std::set<std::tuple<std::string, std::string, int64_t>> have;
  for (const ReportRow& r : d.rows) {
    if (!std::isfinite(r.step) && !std::isfinite(r.tokens) && !std::isfinite(r.joules)) continue;
    for (const std::string& key : r.keys) {
      const ReportCell& c = r.cells.at(key);
      if (!std::isfinite(c.value)) continue;
      ReportPoint pt{r.run.empty() ? r.label : r.run, key, r.step, r.tokens, r.joules, c.value, c.stderr};
      if (std::isfinite(r.step)) have.insert({pt.run, key, int64_t(r.step)});
      d.points.push_back(pt);
    }
  }
  for (ReportPoint& pt : from_logs)
    if (!have.count({pt.run, pt.series, int64_t(pt.step)})) d.points.push_back(std::move(pt));
  if (d.rows.empty() && d.points.empty())
    fail("eval report: no scores in ", paths[0], paths.size() > 1 ? " and the others" : "",
         " (metrics.jsonl files hold none until a run is trained with --eval-tasks)");
  return d;
}

ReportDelta report_delta(const ReportCell& b, const ReportCell& x) {
  ReportDelta r;
  r.delta = x.value - b.value;
  r.se = std::sqrt(b.stderr * b.stderr + x.stderr * x.stderr);
  r.significant = std::isfinite(r.delta) && r.se > 0 && std::fabs(r.delta) > 2 * r.se;
  r.better = x.higher_is_better ? r.delta > 0 : r.delta < 0;
  return r;
}

namespace {

// Decimals a table shows for a value of this size: 4 for scores near 0..1, fewer for larger ones;
// -1: scientific notation (perplexities in the millions).
int decimals_for(double v) {
  const double a = std::fabs(v);
  if (a >= 1e6) return -1;
  if (a >= 1000) return 0;
  if (a >= 100) return 1;
  if (a >= 10) return 2;
  return 4;
}

std::string format_with(double x, int dec) {
  if (!std::isfinite(x)) return "—";
  char buf[64];
  if (dec < 0) std::snprintf(buf, sizeof buf, "%.3g", x);
  else std::snprintf(buf, sizeof buf, "%.*f", dec, x);
  return buf;
}

}  // namespace

std::string format_score(double value) { return format_with(value, decimals_for(value)); }
std::string format_score_like(double x, double like) { return format_with(x, decimals_for(like)); }

}  // namespace todae::eval
