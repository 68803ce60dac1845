// `todae eval report`, part two: the report people read. One self-contained HTML file (styles
// inline, plots as data: URIs, no script, nothing fetched: it can be mailed or archived as it is)
// or Markdown with the plots beside it; the plots are drawn by gnuplot (Debian gnuplot-nox).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>

#include "base/base.h"
#include "eval/eval.h"


namespace todae::eval {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

std::string task_of(const std::string& key) { return key.substr(0, key.find_last_of('/')); }
std::string metric_of(const std::string& key) { return key.substr(key.find_last_of('/') + 1); }

std::string base_name(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// 30720 -> "30.7k", 1.2e9 -> "1.20G": training tokens and joules at a glance.
std::string si(double v, const char* unit = "") {
  if (!std::isfinite(v)) return "—";
  const char* pre[] = {"", "k", "M", "G", "T", "P"};
  int k = 0;
  double a = v;
  while (std::fabs(a) >= 1000 && k < 5) a /= 1000, k++;
  char buf[64];
  if (k == 0) std::snprintf(buf, sizeof buf, "%.4g%s%s", a, *unit ? " " : "", unit);
  else std::snprintf(buf, sizeof buf, "%.3g %s%s", a, pre[k], unit);
  return buf;
}

std::string signed_score(double d, double like) {
  std::string s = format_score_like(d, like);
  return d > 0 ? "+" + s : s == "-0.0000" ? "0.0000" : s;
}

// ---- plots ------------------------------------------------------------------------------------------

// Metrics on one scale share a figure: accuracies (0..1), 0-100 scores, bits per byte, perplexities.
struct Kind {
  std::string id, title, ylabel;
  bool log = false, from_zero = false;  // y on a log scale; y from 0 (accuracies, 0-100 scores)
};
Kind kind_of(const std::string& series) {
  std::string m = metric_of(series);
  m = m.substr(0, m.find(','));
  static const std::set<std::string> acc = {"acc", "acc_norm", "exact_match", "f1", "mcc", "accuracy", "em", "tool_call_acc", "tool_name_acc"};
  if (acc.count(m)) return {"accuracy", "accuracy", "accuracy (0–1)", false, true};
  if (m == "chrf" || m == "chrf++" || m == "bleu" || m == "ter")
    return {"score100", "translation scores", "score (0–100)", false, true};
  if (m == "bits_per_byte" || m == "bpb") return {"bpb", "bits per byte", "bits per byte (lower is better)"};
  if (m.find("perplexity") != std::string::npos) return {"perplexity", "perplexity", "perplexity (log scale)", true};
  std::string id;
  for (char c : m) id += std::isalnum(uint8_t(c)) ? c : '_';
  return {id, m, m};
}

struct Axis {
  const char* id;
  const char* label;
  double ReportPoint::*x;
  bool si;
};
const Axis kAxes[] = {{"step", "step", &ReportPoint::step, false},
                      {"tokens", "training tokens", &ReportPoint::tokens, true},
                      {"joules", "training energy (J)", &ReportPoint::joules, true}};

// gnuplot's exit status; *err gets the first line of its stderr that is not one of its warnings
// (an empty x range of a single checkpoint is one).
int run_report_gnuplot(const std::string& script, std::string* err) {
  std::string e;
  const int rc = run_gnuplot(script, &e);
  if (rc < 0) {
    *err = e;
    return rc;
  }
  *err = "";
  size_t pos = 0;
  while (pos < e.size()) {
    size_t nl = e.find('\n', pos);
    std::string line = e.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? e.size() : nl + 1;
    if (line.find_first_not_of(" ^") == std::string::npos || line.find("arning") != std::string::npos) continue;
    *err = line;
    break;
  }
  return rc;
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "todae-report-XXXXXX").string();
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) fail("eval report: cannot make a temporary folder in ", fs::temp_directory_path().string(), ": ",
                                     std::strerror(errno));
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Tableau 10: distinct for the colour-blind and on paper; a series keeps its colour in every figure.
constexpr int kMaxLegend = 16;

const char* kColours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                          "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

}  // namespace

std::vector<ReportPlot> report_plots(const ReportData& d, std::string* warning) {
  std::vector<ReportPlot> out;
  if (d.points.empty()) return out;
  // Series (run, task/metric) in order of appearance; the run is named only when there are several.
  std::vector<std::pair<std::string, std::string>> series;
  std::set<std::string> runs;
  for (const ReportPoint& p : d.points) {
    runs.insert(p.run);
    if (std::find(series.begin(), series.end(), std::make_pair(p.run, p.series)) == series.end())
      series.push_back({p.run, p.series});
  }
  std::vector<std::string> kinds;
  for (const auto& s : series)
    if (std::find(kinds.begin(), kinds.end(), kind_of(s.second).id) == kinds.end()) kinds.push_back(kind_of(s.second).id);

  TempDir tmp;
  std::string term = "pngcairo";  // smoother lines and real fonts; plain png (libgd) where cairo is missing
  for (const std::string& kid : kinds) {
    for (const Axis& ax : kAxes) {
      Kind kind;
      std::string plots;
      bool all_positive = true;
      int files = 0;
      for (size_t si_ = 0; si_ < series.size(); si_++) {
        const auto& [run, name] = series[si_];
        if (kind_of(name).id != kid) continue;
        kind = kind_of(name);
        std::vector<std::array<double, 3>> xs;
        for (const ReportPoint& p : d.points)
          if (p.run == run && p.series == name && std::isfinite(p.*ax.x) && std::isfinite(p.value))
            xs.push_back({p.*ax.x, p.value, p.stderr});
        if (xs.empty()) continue;
        std::sort(xs.begin(), xs.end());
        std::string dat;
        for (const auto& x : xs) {
          dat += cat(x[0], " ", x[1], " ", x[2], "\n");
          all_positive = all_positive && x[1] > 0;
        }
        const std::string f = cat(tmp.path, "/", files++, ".dat");
        write_file_atomic(f, dat);
        const std::string title = runs.size() > 1 ? base_name(run) + ": " + name : name;
        plots += cat(plots.empty() ? "" : ", \\\n  ", gnuplot_quote(f), " using 1:2:3 with yerrorlines lt ", si_ % 10 + 1,
                     " dt ", si_ / 10 % 5 + 1, " title ", gnuplot_quote(title));
      }
      if (plots.empty()) continue;
      ReportPlot plot;
      plot.name = cat("score_vs_", ax.id, "_", kid);
      plot.title = cat(kind.title, " vs ", ax.label, files > kMaxLegend ? cat(" (", files, " lines, unlabelled)") : "");
      plot.kind = kind.title;
      plot.axis = ax.id;
      const std::string png = tmp.path + "/" + plot.name + ".png", script = tmp.path + "/" + plot.name + ".gp";
      for (int attempt = 0; attempt < 2; attempt++) {
        // Drawn at about 1.6 times the size the page shows it (two to a row), so it stays sharp on
        // high-density screens; no title inside: the caption under the figure is the title.
        std::string gp = cat(
            "set encoding utf8\n",
            term == "pngcairo" ? "set terminal pngcairo size 900,540 font 'Noto Sans CJK KR,17' linewidth 1.6 noenhanced\n"
                               : "set terminal png size 900,540 large noenhanced\n",
            "set output ", gnuplot_quote(png), "\n", "set xlabel ", gnuplot_quote(ax.label), "\n", "set ylabel ",
            gnuplot_quote(kind.ylabel), "\n",
            "set grid lc rgb '#e3e3e3' lw 1 dt 1\nset border 3 lc rgb '#666666'\nset tics nomirror\n",
            // A legend of dozens of lines (KMMLU's 45 subjects) would leave no room for the plot.
            files <= kMaxLegend ? "set key below left Left reverse samplen 2\n" : "set key off\n", "set offsets graph 0.03, graph 0.03, graph 0.06, graph 0.06\n",
            ax.si ? "set format x '%.1s%c'\n" : "", kind.log && all_positive ? "set logscale y\n" : "",
            kind.from_zero ? "set yrange [0:*]\n" : "");
        for (int c = 0; c < 10; c++)
          gp += cat("set linetype ", c + 1, " lc rgb '", kColours[c], "' lw 2 pt 7 ps 1.1\n");
        gp += "plot " + plots + "\n";
        write_file_atomic(script, gp);
        std::string err;
        const int rc = run_report_gnuplot(script, &err);
        if (rc == -1) {  // no gnuplot at all: no plots, the report says why
          *warning = err;
          return out;
        }
        if (rc == 0 && file_exists(png) && file_size(png) > 0) {
          plot.png = read_file(png);
          out.push_back(std::move(plot));
          break;
        }
        if (attempt == 0 && term == "pngcairo") {
          term = "png";
          continue;
        }
        *warning = cat("plot ", plot.name, ": gnuplot: ", err.empty() ? cat("exit status ", rc) : err);
        break;
      }
    }
  }
  return out;
}

// ---- HTML --------------------------------------------------------------------------------------------

namespace {

std::string esc(std::string_view s) {
  std::string o;
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  return o;
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", &tm);
  return buf;
}

std::vector<std::string> tasks_in_order(const ReportData& d) {
  std::vector<std::string> tasks;
  for (const std::string& c : d.columns)
    if (std::find(tasks.begin(), tasks.end(), task_of(c)) == tasks.end()) tasks.push_back(task_of(c));
  return tasks;
}

bool any_of_rows(const ReportData& d, double ReportRow::*f) {
  for (const ReportRow& r : d.rows)
    if (std::isfinite(r.*f)) return true;
  return false;
}

const char* kStyle = R"(
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--head:#f6f8fa;--good:#1a7f37;--bad:#cf222e;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:var(--fg);line-height:1.5;
 font-family:"Noto Sans CJK KR","Noto Sans KR","Apple SD Gothic Neo","Malgun Gothic",system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1220px;margin:0 auto;padding:28px 28px 56px}
header{margin-bottom:8px}
h1{font-size:26px;margin:0;letter-spacing:-.01em}
h1 .ko{color:var(--muted);font-weight:400;font-size:20px;margin-left:.5em}
.meta{color:var(--muted);font-size:13px;margin-top:4px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0;
 box-shadow:0 1px 2px rgba(31,35,40,.04)}
h2{font-size:18px;margin:0 0 12px}
h3{font-size:15px;margin:18px 0 8px;color:#333}
.scroll{overflow-x:auto}
table{border-collapse:separate;border-spacing:0;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:7px 12px;text-align:right;white-space:nowrap;vertical-align:top}
thead th{background:var(--head);font-weight:600;color:#333}
th.task{text-align:center;border-left:1px solid var(--line);border-bottom:1px solid var(--line)}
th.metric{font-weight:500;color:var(--muted);border-left:1px solid var(--line)}
td.c{border-left:1px solid var(--line)}
.l{text-align:left;position:sticky;left:0;background:#fff;z-index:1}
thead .l{background:var(--head)}
tbody tr:hover td{background:#f8fafc}
.v{font-variant-numeric:tabular-nums;font-weight:600}
.se{color:var(--muted);margin-left:5px;font-size:12px;font-variant-numeric:tabular-nums}
.d{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.d.sig.better{color:var(--good);font-weight:600}
.d.sig.worse{color:var(--bad);font-weight:600}
.badge{display:inline-block;font-size:11px;color:var(--accent);border:1px solid #b6d4fe;border-radius:9px;
 padding:0 7px;margin-left:6px;vertical-align:1px}
.dir{color:var(--muted);font-weight:400;margin-left:3px}
.legend{font-size:12px;color:var(--muted);margin-top:10px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.kind{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fff}
.kind h3{display:inline-block;margin:2px 14px 8px 2px}
.kind input{position:absolute;opacity:0;pointer-events:none}
.kind label{display:inline-block;font-size:12px;padding:2px 10px;margin-right:4px;border:1px solid var(--line);
 border-radius:12px;cursor:pointer;color:var(--muted)}
.kind input:checked+label{background:var(--accent);border-color:var(--accent);color:#fff}
.kind figure{display:none}
.kind input.step:checked~figure.p-step,.kind input.tokens:checked~figure.p-tokens,
.kind input.joules:checked~figure.p-joules{display:block}
@media print{.kind figure{display:block}.kind label{display:none}}
figure{margin:0}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:var(--muted);text-align:center;margin-top:4px}
details{border-top:1px solid var(--line);padding:10px 0}
details:first-of-type{border-top:0}
summary{cursor:pointer;font-weight:600}
summary .info{font-weight:400;color:var(--muted);font-size:13px;margin-left:8px}
.cfg{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:12px;color:var(--muted);margin:8px 0}
.cfg b{color:#444;font-weight:500}
code,.mono{font-family:"Noto Sans Mono CJK KR",ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
td.path{white-space:normal;word-break:break-all;text-align:left;min-width:220px}
.note{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
)";

std::string cell_html(const ReportData& d, size_t row, const std::string& col) {
  const ReportRow& r = d.rows[row];
  auto it = r.cells.find(col);
  if (it == r.cells.end()) return "<td class=\"c\"><span class=\"d\">—</span></td>";
  const ReportCell& c = it->second;
  std::string h = cat("<td class=\"c\"><span class=\"v\">", esc(format_score(c.value)), "</span>");
  if (c.stderr > 0) h += cat("<span class=\"se\">± ", esc(format_score_like(c.stderr, c.value)), "</span>");
  if (row > 0) {
    auto b = d.rows[0].cells.find(col);
    if (b != d.rows[0].cells.end() && std::isfinite(b->second.value) && std::isfinite(c.value)) {
      const ReportDelta dl = report_delta(b->second, c);
      const std::string cls = cat("d", dl.significant ? " sig" : "", dl.better ? " better" : " worse");
      const char* arrow = !dl.significant ? "" : dl.delta > 0 ? "▲ " : "▼ ";
      h += cat("<div class=\"", cls, "\" title=\"Δ ", esc(signed_score(dl.delta, c.value)), " (2 combined standard errors: ",
               esc(format_score_like(2 * dl.se, c.value)), ")\">", arrow, esc(signed_score(dl.delta, c.value)), "</div>");
    }
  }
  return h + "</td>";
}

}  // namespace

std::string report_html(const ReportData& d, const std::vector<ReportPlot>& plots) {
  const std::vector<std::string> tasks = tasks_in_order(d);
  const bool has_step = any_of_rows(d, &ReportRow::step), has_tok = any_of_rows(d, &ReportRow::tokens),
             has_j = any_of_rows(d, &ReportRow::joules);
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"ko\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>todae eval report</title>\n<style>";
  h += kStyle;
  h += "</style>\n</head>\n<body>\n<main>\n<header><h1>todae eval report<span class=\"ko\">평가 보고서</span></h1>\n";
  h += cat("<div class=\"meta\">", d.rows.size(), d.rows.size() == 1 ? " model" : " models", " · ", tasks.size(),
           tasks.size() == 1 ? " task" : " tasks", " · ", d.columns.size(), " metrics · ", esc(now_text()), "</div></header>\n");

  // The table: models × task metrics.
  h += "<section id=\"scores\"><h2>Scores</h2>\n";
  if (d.rows.empty()) {
    h += "<p class=\"note\">No results.json given: only the curves of metrics.jsonl below.</p>\n";
  } else {
    h += "<div class=\"scroll\"><table>\n<thead><tr><th class=\"l\" rowspan=\"2\">model</th>";
    if (has_step) h += "<th rowspan=\"2\">step</th>";
    if (has_tok) h += "<th rowspan=\"2\">tokens</th>";
    if (has_j) h += "<th rowspan=\"2\">train energy</th>";
    for (const std::string& t : tasks) {
      int n = 0;
      for (const std::string& c : d.columns) n += task_of(c) == t;
      h += cat("<th class=\"task\" colspan=\"", n, "\">", esc(t), "</th>");
    }
    h += "</tr>\n<tr>";
    for (const std::string& c : d.columns) {
      bool hib = true;
      for (const ReportRow& r : d.rows)
        if (auto it = r.cells.find(c); it != r.cells.end()) {
          hib = it->second.higher_is_better;
          break;
        }
      h += cat("<th class=\"metric\">", esc(metric_of(c)), "<span class=\"dir\" title=\"", hib ? "higher" : "lower",
               " is better\">", hib ? "↑" : "↓", "</span></th>");
    }
    h += "</tr></thead>\n<tbody>\n";
    for (size_t i = 0; i < d.rows.size(); i++) {
      const ReportRow& r = d.rows[i];
      h += cat("<tr><td class=\"l\" title=\"", esc(r.file), "\">", esc(r.label), i == 0 ? "<span class=\"badge\">baseline</span>" : "",
               "</td>");
      if (has_step) h += cat("<td>", std::isfinite(r.step) ? cat(int64_t(r.step)) : "—", "</td>");
      if (has_tok) h += cat("<td>", esc(si(r.tokens)), "</td>");
      if (has_j) h += cat("<td>", esc(si(r.joules, "J")), "</td>");
      for (const std::string& c : d.columns) h += cell_html(d, i, c);
      h += "</tr>\n";
    }
    h += "</tbody></table></div>\n";
    h += "<p class=\"legend\">Each cell: score ± standard error; below it the difference from the first row (baseline). "
         "▲/▼ and colour mark a difference larger than 2 combined standard errors √(se₀² + se²): "
         "<span style=\"color:var(--good)\">green</span> when better in the metric's direction (↑ higher is better, "
         "↓ lower), <span style=\"color:var(--bad)\">red</span> when worse.</p>\n";
  }
  h += "</section>\n";

  // Curves.
  h += "<section id=\"plots\"><h2>Scores during training</h2>\n";
  if (plots.empty()) {
    h += d.points.empty()
             ? "<p class=\"note\">No training positions known: curves need checkpoints of a run (<code>todae eval --watch "
               "RUN</code> writes RUN/eval/step-N/results.json) or a metrics.jsonl of a run trained with "
               "<code>--eval-tasks</code>.</p>\n"
             : "<p class=\"note\">No plots: gnuplot did not draw them (see the command's warning).</p>\n";
  } else {
    // One panel per kind of metric; its x axis (step, tokens, energy) chosen by tabs made of radio
    // buttons and CSS alone (no script), step first. Printing shows them all.
    h += "<div class=\"plots\">\n";
    std::vector<std::string> kinds;
    for (const ReportPlot& p : plots)
      if (std::find(kinds.begin(), kinds.end(), p.kind) == kinds.end()) kinds.push_back(p.kind);
    for (size_t k = 0; k < kinds.size(); k++) {
      h += cat("<div class=\"kind\"><h3>", esc(kinds[k]), "</h3>");
      bool first = true;
      for (const ReportPlot& p : plots)
        if (p.kind == kinds[k]) {
          const std::string id = cat("k", k, "-", p.axis);
          h += cat("<input type=\"radio\" class=\"", p.axis, "\" name=\"k", k, "\" id=\"", id, "\"", first ? " checked" : "",
                   "><label for=\"", id, "\">vs ", p.axis == "joules" ? "energy" : p.axis, "</label>");
          first = false;
        }
      for (const ReportPlot& p : plots)
        if (p.kind == kinds[k])
          h += cat("\n<figure class=\"p-", p.axis, "\"><img alt=\"", esc(p.title), "\" src=\"data:image/png;base64,",
                   base64_encode(p.png), "\"><figcaption>", esc(p.title), "</figcaption></figure>");
      h += "</div>\n";
    }
    h += "</div>\n<p class=\"legend\">One line per task metric; error bars are ± one standard error. Tokens and energy "
         "are the training's totals at the checkpoint (energy as todae measured or estimated it).</p>\n";
  }
  h += "</section>\n";

  // Per-task details.
  if (!tasks.empty()) {
    h += "<section id=\"tasks\"><h2>Tasks</h2>\n";
    for (const std::string& t : tasks) {
      std::vector<std::string> cols;
      for (const std::string& c : d.columns)
        if (task_of(c) == t) cols.push_back(c);
      ojson cfg = nullptr;
      for (const ReportRow& r : d.rows)
        if (r.tasks.contains(t) && r.tasks[t].contains("config")) {
          cfg = r.tasks[t]["config"];
          break;
        }
      std::string info;
      if (cfg.is_object()) {
        info = cfg.value("output_type", "");
        if (cfg.contains("num_fewshot")) info += cat(" · ", cfg["num_fewshot"].dump(), "-shot");
        if (cfg.contains("split")) info += " · split " + cfg.value("split", "");
      }
      h += cat("<details", tasks.size() <= 8 ? " open" : "", "><summary>", esc(t), "<span class=\"info\">", esc(info),
               "</span></summary>\n");
      if (cfg.is_object()) {
        h += "<div class=\"cfg\">";
        for (const char* k : {"source", "dataset_path", "dataset_name", "limit", "seed", "until", "max_gen_toks", "energy"})
          if (cfg.contains(k) && !(cfg[k].is_string() && cfg[k].get<std::string>().empty()))
            h += cat("<span><b>", k, "</b> ", esc(cfg[k].is_string() ? cfg[k].get<std::string>() : cfg[k].dump()), "</span>");
        h += "</div>\n";
      }
      h += "<div class=\"scroll\"><table><thead><tr><th class=\"l\">model</th><th>n</th>";
      for (const std::string& c : cols) h += cat("<th class=\"metric\">", esc(metric_of(c)), "</th>");
      h += "<th>seconds</th><th>eval energy</th></tr></thead><tbody>\n";
      for (size_t i = 0; i < d.rows.size(); i++) {
        const ReportRow& r = d.rows[i];
        if (!r.tasks.contains(t)) continue;
        const ojson& ti = r.tasks[t];
        auto num = [&](const char* k) { return ti.contains(k) && ti[k].is_number() ? ti[k].get<double>() : NAN; };
        h += cat("<tr><td class=\"l\">", esc(r.label), "</td><td>", std::isfinite(num("n")) ? cat(int64_t(num("n"))) : "—", "</td>");
        for (const std::string& c : cols) h += cell_html(d, i, c);
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.2f", num("seconds"));
        h += cat("<td>", std::isfinite(num("seconds")) ? secs : "—", "</td><td>", esc(si(num("joules"), "J")), "</td></tr>\n");
      }
      h += "</tbody></table></div>\n</details>\n";
    }
    h += "</section>\n";
  }

  // Models: what was evaluated, exactly.
  if (!d.rows.empty()) {
    h += "<section id=\"models\"><h2>Models</h2>\n<div class=\"scroll\"><table><thead><tr><th class=\"l\">model</th>"
         "<th>step</th><th>tokens</th><th>train energy</th><th>format</th><th>weights</th><th>model xxh64</th>"
         "<th>tokenizer xxh64</th><th class=\"l\" style=\"position:static\">path · results</th></tr></thead><tbody>\n";
    for (const ReportRow& r : d.rows) {
      auto s = [&](const char* k) { return r.model.contains(k) && r.model[k].is_string() ? r.model[k].get<std::string>() : ""; };
      std::string fmt = s("format");
      if (!s("architecture").empty()) fmt += " · " + s("architecture");
      h += cat("<tr><td class=\"l\">", esc(r.label), "</td><td>", std::isfinite(r.step) ? cat(int64_t(r.step)) : "—", "</td><td>",
               esc(si(r.tokens)), "</td><td>", esc(si(r.joules, "J")), "</td><td>", esc(fmt), "</td><td>", esc(s("weight_type")),
               "</td><td class=\"mono\">", esc(s("model_xxh64")), "</td><td class=\"mono\">", esc(s("tokenizer_xxh64")),
               "</td><td class=\"path mono\">", esc(s("path")), "<br><span class=\"note\">", esc(r.file), "</span></td></tr>\n");
    }
    h += "</tbody></table></div>\n</section>\n";
  }
  h += cat("<footer>todae eval report · ", d.inputs.size(), d.inputs.size() == 1 ? " file" : " files", " read</footer>\n");
  h += "</main>\n</body>\n</html>\n";
  return h;
}

// ---- Markdown ------------------------------------------------------------------------------------------

namespace {

std::string md_esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '|' || c == '*' || c == '_' || c == '`' || c == '[' || c == ']' || c == '<' || c == '>') o += '\\';
    o += c;
  }
  return o;
}

std::string md_cell(const ReportData& d, size_t row, const std::string& col) {
  const ReportRow& r = d.rows[row];
  auto it = r.cells.find(col);
  if (it == r.cells.end()) return "—";
  const ReportCell& c = it->second;
  std::string s = format_score(c.value);
  if (c.stderr > 0) s += " ± " + format_score_like(c.stderr, c.value);
  if (row > 0)
    if (auto b = d.rows[0].cells.find(col); b != d.rows[0].cells.end() && std::isfinite(b->second.value) && std::isfinite(c.value)) {
      const ReportDelta dl = report_delta(b->second, c);
      const std::string v = signed_score(dl.delta, c.value);
      s += dl.significant ? cat(" (**", v, dl.delta > 0 ? " ▲" : " ▼", dl.better ? "** better)" : "** worse)") : cat(" (", v, ")");
    }
  return s;
}

}  // namespace

std::string report_markdown(const ReportData& d, const std::vector<ReportPlot>& plots, const std::string& files_dir) {
  const std::vector<std::string> tasks = tasks_in_order(d);
  const bool has_step = any_of_rows(d, &ReportRow::step), has_tok = any_of_rows(d, &ReportRow::tokens),
             has_j = any_of_rows(d, &ReportRow::joules);
  std::string m = cat("# todae eval report — 평가 보고서\n\n", d.rows.size(), " models · ", tasks.size(), " tasks · ", now_text(),
                      "\n\n## Scores\n\n");
  if (!d.rows.empty()) {
    m += "| model |";
    if (has_step) m += " step |";
    if (has_tok) m += " tokens |";
    if (has_j) m += " train energy |";
    for (const std::string& c : d.columns) m += " " + md_esc(c) + " |";
    m += "\n|---|";
    for (int k = 0; k < int(has_step) + int(has_tok) + int(has_j); k++) m += "---:|";
    for (size_t k = 0; k < d.columns.size(); k++) m += "---:|";
    m += "\n";
    for (size_t i = 0; i < d.rows.size(); i++) {
      const ReportRow& r = d.rows[i];
      m += "| " + md_esc(r.label) + (i == 0 ? " (baseline)" : "") + " |";
      if (has_step) m += " " + (std::isfinite(r.step) ? cat(int64_t(r.step)) : "—") + " |";
      if (has_tok) m += " " + si(r.tokens) + " |";
      if (has_j) m += " " + si(r.joules, "J") + " |";
      for (const std::string& c : d.columns) m += " " + md_cell(d, i, c) + " |";
      m += "\n";
    }
    m += "\nScore ± standard error; in brackets the difference from the baseline, in bold with ▲/▼ when it is larger than "
         "2 combined standard errors, better or worse in the metric's direction.\n";
  }
  if (!plots.empty()) {
    m += "\n## Scores during training\n\n";
    for (const ReportPlot& p : plots) m += cat("![", p.title, "](", files_dir, "/", p.name, ".png)\n");
  }
  if (!tasks.empty()) {
    m += "\n## Tasks\n";
    for (const std::string& t : tasks) {
      m += "\n### " + md_esc(t) + "\n\n| model | n |";
      std::vector<std::string> cols;
      for (const std::string& c : d.columns)
        if (task_of(c) == t) cols.push_back(c), m += " " + md_esc(metric_of(c)) + " |";
      m += " seconds | eval energy |\n|---|---:|";
      for (size_t k = 0; k < cols.size() + 2; k++) m += "---:|";
      m += "\n";
      for (size_t i = 0; i < d.rows.size(); i++) {
        const ReportRow& r = d.rows[i];
        if (!r.tasks.contains(t)) continue;
        const ojson& ti = r.tasks[t];
        auto num = [&](const char* k) { return ti.contains(k) && ti[k].is_number() ? ti[k].get<double>() : NAN; };
        m += "| " + md_esc(r.label) + " | " + (std::isfinite(num("n")) ? cat(int64_t(num("n"))) : "—") + " |";
        for (const std::string& c : cols) m += " " + md_cell(d, i, c) + " |";
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.2f", num("seconds"));
        m += cat(" ", std::isfinite(num("seconds")) ? secs : "—", " | ", si(num("joules"), "J"), " |\n");
      }
    }
  }
  return m;
}

std::string write_report(const ReportData& d, const std::string& out, const std::string& format) {
  if (format != "html" && format != "md") fail("--format: '", format, "' is not html or md");
  std::string warning;
  std::vector<ReportPlot> plots = report_plots(d, &warning);
  if (!warning.empty()) std::fprintf(stderr, "eval report: warning: %s\n", warning.c_str());
  const fs::path o(out);
  if (o.has_parent_path()) make_directories(o.parent_path().string());
  if (format == "html") {
    write_file_atomic(out, report_html(d, plots));
    return cat(out, " (", d.rows.size(), " models, ", d.columns.size(), " metrics, ", plots.size(), " plots embedded)");
  }
  // report.md -> report_files/*.png beside it, linked relatively so the pair can be moved together.
  const std::string files = o.stem().string() + "_files";
  const std::string dir = (o.has_parent_path() ? o.parent_path() / files : fs::path(files)).string();
  if (!plots.empty()) make_directories(dir);
  for (const ReportPlot& p : plots) write_file_atomic(dir + "/" + p.name + ".png", p.png);
  write_file_atomic(out, report_markdown(d, plots, files));
  return cat(out, " (", d.rows.size(), " models, ", d.columns.size(), " metrics", plots.empty() ? "" : cat(", ", plots.size(), " plots in ", dir),
             ")");
}

}  // namespace todae::eval
