// Running a task: documents -> prompts (description, seeded few-shot examples, doc_to_text) ->
// requests to the model -> one sample record per document (written to samples_TASK.jsonl as it
// is made, so an interrupted run keeps what it did) -> aggregated metrics with standard errors.
// Aggregation reads only the sample records, so samples reused by --resume count exactly like
// new ones.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "base/base.h"
#include "base/energy.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"
#include "text/jinja.h"
#include "text/text.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

struct TaskData {
  TaskConfig t;
  std::vector<Doc> docs, pool;  // evaluated documents, few-shot pool
  bool pool_is_docs = false;    // few-shot examples come from the evaluated split: skip the doc itself
  int shots = 0;
  uint64_t seed = 1234;
  std::string split;
  std::shared_ptr<JinjaTemplate> text, target, choice, description;
};

namespace {

std::string value_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  return v.dump();
}

std::shared_ptr<JinjaTemplate> parse_field(const DocField& f, const TaskConfig& t, const char* name) {
  if (f.kind != DocField::Text) return nullptr;
  return std::make_shared<JinjaTemplate>(JinjaTemplate::parse(f.text, cat(t.source, ": ", t.task, ": ", name)));
}

std::string render(const JinjaTemplate& tp, const Doc& d) {
  try {
    return tp.render(d.fields);
  } catch (const Error& e) {
    fail(d.where, ": ", e.what());
  }
}

// A field's value for a document: a column (when the text names one, as lm-eval decides), the
// rendered template, the int, or the list (each item rendered).
ojson field_value(const DocField& f, const std::shared_ptr<JinjaTemplate>& tp, const Doc& d, const std::string& source,
                  const char* name) {
  switch (f.kind) {
    case DocField::None: return nullptr;
    case DocField::Int: return f.value;
    case DocField::List: {
      ojson a = ojson::array();
      for (const std::string& s : f.list) {
        if (s.find("{{") == std::string::npos && s.find("{%") == std::string::npos) a.push_back(s);
        else a.push_back(render(JinjaTemplate::parse(s, cat(source, ": ", name)), d));
      }
      return a;
    }
    case DocField::Text:
      if (d.fields.is_object() && d.fields.contains(f.text)) return d.fields[f.text];
      return render(*tp, d);
  }
  return nullptr;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::vector<std::string> choices_of(const TaskData& td, const Doc& d) {
  ojson v = field_value(td.t.doc_to_choice, td.choice, d, td.t.source, "doc_to_choice");
  if (v.is_string()) {  // a rendered template: the list it printed (our Jinja prints lists as JSON)
    const std::string s = v.get<std::string>();
    try {
      v = ojson::parse(s);
    } catch (const ojson::exception&) {
      fail(d.where, ": doc_to_choice: rendered '", printable(s, 120), "', which is not a list");
    }
  }
  if (v.is_object() && v.contains("text")) v = v["text"];  // datasets' {"text": [...], "label": [...]}
  if (!v.is_array() || v.empty()) fail(d.where, ": doc_to_choice: expected a non-empty list of choices");
  std::vector<std::string> out;
  for (const ojson& c : v) out.push_back(value_text(c));
  return out;
}

// The target: an index into the choices (multiple choice) and its text.
void target_of(const TaskData& td, const Doc& d, const std::vector<std::string>& choices, int* gold, std::string* text) {
  ojson v = field_value(td.t.doc_to_target, td.target, d, td.t.source, "doc_to_target");
  if (v.is_array() && !v.empty()) v = v[0];  // several references: the first is the target text
  *gold = -1;
  if (td.t.output_type != OutputType::MultipleChoice) {
    *text = value_text(v);
    return;
  }
  if (v.is_number_integer()) {
    *gold = v.get<int>();
  } else {
    const std::string s = value_text(v);
    for (size_t i = 0; i < choices.size() && *gold < 0; i++)
      if (choices[i] == s) *gold = int(i);
    if (*gold < 0 && all_digits(s) && s.size() < 9) *gold = std::stoi(s);
    if (*gold < 0) fail(d.where, ": doc_to_target: '", printable(s, 80), "' is neither one of the choices nor an index");
  }
  if (*gold < 0 || *gold >= int(choices.size()))
    fail(d.where, ": doc_to_target: index ", *gold, " but there are ", choices.size(), " choices");
  *text = choices[size_t(*gold)];
}

std::string text_of(const TaskData& td, const Doc& d) {
  return value_text(field_value(td.t.doc_to_text, td.text, d, td.t.source, "doc_to_text"));
}

// How lm-eval counts words for word_perplexity: len(re.split(r"\s+", text)).
int count_words(std::string_view s) {
  std::u32string u = to_u32(s);
  int n = 1;
  for (size_t i = 0; i < u.size();) {
    if (is_py_space(u[i])) {
      n++;
      while (i < u.size() && is_py_space(u[i])) i++;
    } else {
      i++;
    }
  }
  return n;
}

void check_columns(const std::vector<Doc>& docs, const std::vector<std::string>& cols) {
  for (const Doc& d : docs)
    for (const std::string& c : cols)
      if (!d.fields.contains(c)) fail(d.where, ": no column '", c, "'");
}

std::vector<Doc> files_docs(const std::vector<std::string>& files, const std::string& split, const TaskConfig& t,
                            const std::string& data_dir) {
  std::vector<Doc> out;
  for (const std::string& f : files) {
    std::vector<std::string> tried;
    std::string path;
    if (!f.empty() && f[0] == '/') tried.push_back(f);
    else {
      if (!data_dir.empty()) tried.push_back(data_dir + "/" + f);
      if (!t.dataset_path.empty()) tried.push_back(t.base_dir + "/" + t.dataset_path + "/" + f);
      tried.push_back(t.base_dir + "/" + f);
    }
    for (const std::string& p : tried)
      if (file_exists(p)) {
        path = p;
        break;
      }
    if (path.empty()) fail(t.task, ": data file '", f, "' of split ", split, " not found (looked at ", tried[0],
                           data_dir.empty() ? "; pass --data-dir DIR" : "", ")");
    Dataset ds = load_dataset_file(path);
    for (Doc& d : ds.docs) out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

std::vector<Doc> load_split(const TaskConfig& t, const std::string& split, const std::string& data_dir) {
  std::vector<Doc> docs;
  if (auto it = t.inline_docs.find(split); it != t.inline_docs.end()) return it->second;
  if (auto it = t.data_files.find(split); it != t.data_files.end()) {
    docs = files_docs(it->second, split, t, data_dir);
  } else {
    std::string root = data_dir;
    if (root.empty() && !t.dataset_path.empty()) {
      root = t.dataset_path[0] == '/' ? t.dataset_path : t.base_dir + "/" + t.dataset_path;
      if (!file_exists(root) && !is_directory(root))
        fail(t.task, ": dataset ", t.dataset_path, t.dataset_name.empty() ? "" : " (" + t.dataset_name + ")",
             " is not a local path; download it (README: Evaluation) and pass --data-dir DIR");
    }
    if (root.empty()) fail(t.task, ": no dataset (dataset_path, dataset_kwargs.data_files or --data-dir)");
    if (!is_directory(root)) {
      docs = load_dataset_file(root).docs;
    } else {
      const std::string& n = t.dataset_name;
      std::vector<std::string> stems;
      if (!n.empty()) stems = {n + "/" + split, n + "-" + split, "data/" + n + "-" + split, n + "_" + split, n + "/data/" + split};
      stems.push_back(split);
      stems.push_back("data/" + split);
      std::string found;
      for (const std::string& s : stems) {
        for (const char* ext : {".jsonl", ".json", ".csv", ".tsv"})
          if (file_exists(root + "/" + s + ext) && !is_directory(root + "/" + s + ext)) {
            found = root + "/" + s + ext;
            break;
          }
        if (!found.empty()) break;
      }
      if (found.empty())
        fail(t.task, ": no file for split '", split, "' in ", root, " (looked for ", stems[0], ".jsonl/.json/.csv/.tsv and ",
             stems.size() - 1, " other names)");
      docs = load_dataset_file(found).docs;
    }
  }
  check_columns(docs, t.required_columns);
  return docs;
}

size_t PreparedTask::size() const { return data->docs.size(); }

PreparedTask prepare_task(const TaskConfig& t, const RunOptions& o) {
  auto td = std::make_shared<TaskData>();
  td->t = t;
  td->seed = o.seed;
  td->text = parse_field(t.doc_to_text, t, "doc_to_text");
  td->target = parse_field(t.doc_to_target, t, "doc_to_target");
  td->choice = parse_field(t.doc_to_choice, t, "doc_to_choice");
  if (!t.description.empty())
    td->description = std::make_shared<JinjaTemplate>(JinjaTemplate::parse(t.description, cat(t.source, ": description")));
  if (t.kind == "bpb") {
    if (o.text_files.empty()) fail(t.task, ": give the text files to score with --text FILE");
    for (const std::string& f : o.text_files)
      for (Doc& d : text_file_docs(f)) td->docs.push_back(std::move(d));
    td->split = "text";
  } else {
    td->split = !t.test_split.empty() ? t.test_split : t.validation_split;
    if (td->split.empty()) fail(t.task, ": neither test_split nor validation_split is set");
    td->docs = load_split(t, td->split, o.data_dir);
  }
  if (!t.doc_filter.empty()) {
    JinjaTemplate f = JinjaTemplate::parse(t.doc_filter, cat(t.source, ": doc_filter"));
    std::vector<Doc> keep;
    for (Doc& d : td->docs) {
      const std::string r = render(f, d);
      if (r == "true" || r == "True") keep.push_back(std::move(d));
    }
    td->docs = std::move(keep);
  }
  if (o.limit >= 0 && size_t(o.limit) < td->docs.size()) td->docs.resize(size_t(o.limit));
  td->shots = t.tool_call ? 0 : o.shots >= 0 ? o.shots : t.num_fewshot;  // tool calls: zero-shot, as BFCL
  if (t.tool_call)
    for (const Doc& d : td->docs) tool_prompt(t, d);  // every document's messages, tools and answer checked up front
  if (td->shots > 0) {
    const std::string fs_split = !t.fewshot_split.empty()     ? t.fewshot_split
                                 : !t.training_split.empty()  ? t.training_split
                                 : !t.validation_split.empty() ? t.validation_split
                                                               : "";
    if (fs_split.empty()) fail(t.task, ": ", td->shots, "-shot needs fewshot_split, training_split or validation_split");
    td->pool_is_docs = fs_split == td->split;
    td->pool = load_split(t, fs_split, o.data_dir);
    if (td->pool.size() < size_t(td->shots) + (td->pool_is_docs ? 1 : 0))
      fail(t.task, ": ", td->shots, "-shot but split '", fs_split, "' has only ", td->pool.size(), " documents");
  }
  PreparedTask p;
  p.config = t;
  p.data = td;
  return p;
}

Prompt PreparedTask::prompt(size_t i) const {
  const TaskData& td = *data;
  const Doc& d = td.docs[i];
  if (td.t.tool_call) return tool_prompt(td.t, d);
  Prompt p;
  const bool mc = td.t.output_type == OutputType::MultipleChoice;
  if (mc) p.choices = choices_of(td, d);
  target_of(td, d, p.choices, &p.gold, &p.target);
  if (td.t.output_type == OutputType::LoglikelihoodRolling) return p;  // the target is the text
  std::string ctx = td.description ? render(*td.description, d) : "";
  if (td.shots > 0) {
    // Seeded by (seed, document index): the same examples whatever --limit or --resume did.
    std::mt19937_64 rng(td.seed * 0x9E3779B97F4A7C15ull + i);
    std::vector<size_t> idx(td.pool.size());
    for (size_t k = 0; k < idx.size(); k++) idx[k] = k;
    std::vector<size_t> pick;
    for (size_t k = 0; k < idx.size() && pick.size() < size_t(td.shots); k++) {
      const size_t j = k + size_t(rng() % (idx.size() - k));
      std::swap(idx[k], idx[j]);
      if (td.pool_is_docs && idx[k] == i) continue;  // never the question itself
      pick.push_back(idx[k]);
    }
    for (size_t k : pick) {
      const Doc& ex = td.pool[k];
      std::vector<std::string> ch = mc ? choices_of(td, ex) : std::vector<std::string>{};
      int g;
      std::string tt;
      target_of(td, ex, ch, &g, &tt);
      ctx += text_of(td, ex) + td.t.target_delimiter + tt + td.t.fewshot_delimiter;
    }
  }
  p.context = ctx + text_of(td, d);
  return p;
}

// ---- running and aggregating ----------------------------------------------------------------------

namespace {

std::vector<MetricSpec> metrics_of(const TaskConfig& t) {
  if (!t.metrics.empty()) return t.metrics;
  std::vector<std::string> names;
  switch (t.output_type) {
    case OutputType::MultipleChoice: names = {"acc", "acc_norm"}; break;
    case OutputType::Loglikelihood: names = {"perplexity", "acc"}; break;
    case OutputType::GenerateUntil:
      names = t.tool_call ? std::vector<std::string>{"tool_call_acc", "tool_name_acc"} : std::vector<std::string>{"exact_match"};
      break;
    case OutputType::LoglikelihoodRolling: names = {"word_perplexity", "byte_perplexity", "bits_per_byte"}; break;
  }
  std::vector<MetricSpec> out;
  for (const std::string& n : names) {
    MetricSpec m;
    m.metric = n;
    m.higher_is_better = n.find("perplexity") == std::string::npos && n != "bits_per_byte";
    out.push_back(m);
  }
  return out;
}

std::vector<FilterSpec> filters_of(const TaskConfig& t) {
  if (!t.filters.empty()) return t.filters;
  FilterSpec f;
  f.name = "none";
  return {f};
}

std::string apply_filter(const FilterSpec& f, const std::string& text) {
  std::string s = text;
  for (const FilterStep& st : f.steps)
    if (st.function == "regex") s = regex_extract(s, st.regex_pattern, st.group_select, st.fallback);
  return s;
}

ExactMatchOptions em_options(const MetricSpec& m) {
  ExactMatchOptions o;
  auto flag = [&](const char* k) {
    if (!m.kwargs.contains(k)) return false;
    const ojson& v = m.kwargs[k];
    return v.is_boolean() ? v.get<bool>() : v.is_string() && (v == "true" || v == "True");
  };
  o.ignore_case = flag("ignore_case");
  o.ignore_punctuation = flag("ignore_punctuation");
  o.ignore_numbers = flag("ignore_numbers");
  if (m.kwargs.contains("regexes_to_ignore"))
    for (const ojson& r : m.kwargs["regexes_to_ignore"]) o.regexes_to_ignore.push_back(r.get<std::string>());
  return o;
}

size_t utf8_bytes(const std::string& s) { return s.size(); }

// The log-likelihood request of a multiple-choice or loglikelihood document.
EvalModel::LoglikRequest loglik_request(const TaskConfig& t, const Prompt& p) {
  EvalModel::LoglikRequest q{p.context, {}};
  if (t.output_type == OutputType::MultipleChoice)
    for (const std::string& c : p.choices) q.continuations.push_back(t.target_delimiter + c);
  else
    q.continuations = {t.target_delimiter + p.target};
  return q;
}

ojson make_sample(EvalModel& model, const TaskConfig& t, const Prompt& p, size_t i, const std::string& where) {
  ojson s = {{"doc_id", i}, {"where", where}, {"prompt", p.context}, {"target", p.target}};
  switch (t.output_type) {
    case OutputType::MultipleChoice: {
      const EvalModel::LoglikRequest q = loglik_request(t, p);
      std::vector<LogLik> ll = model.loglikelihood(q.context, q.continuations);
      ojson lls = ojson::array(), greedy = ojson::array();
      int best = 0, best_norm = 0;
      for (size_t k = 0; k < ll.size(); k++) {
        lls.push_back(ll[k].logprob);
        greedy.push_back(ll[k].greedy);
        // acc_norm: log-likelihood per UTF-8 byte of the choice
        const double nk = ll[k].logprob / double(std::max<size_t>(1, utf8_bytes(p.choices[k])));
        const double nb = ll[size_t(best_norm)].logprob / double(std::max<size_t>(1, utf8_bytes(p.choices[size_t(best_norm)])));
        if (ll[k].logprob > ll[size_t(best)].logprob) best = int(k);
        if (nk > nb) best_norm = int(k);
      }
      s["choices"] = p.choices;
      s["gold"] = p.gold;
      s["loglikelihoods"] = lls;
      s["greedy"] = greedy;
      s["prediction"] = best;
      s["prediction_norm"] = best_norm;
      s["metrics"] = {{"acc", best == p.gold ? 1.0 : 0.0}, {"acc_norm", best_norm == p.gold ? 1.0 : 0.0}};
      break;
    }
    case OutputType::Loglikelihood: {
      const EvalModel::LoglikRequest q = loglik_request(t, p);
      std::vector<LogLik> ll = model.loglikelihood(q.context, q.continuations);
      s["loglikelihood"] = ll[0].logprob;
      s["greedy"] = ll[0].greedy;
      s["metrics"] = {{"perplexity", ll[0].logprob}, {"acc", ll[0].greedy ? 1.0 : 0.0}};
      break;
    }
    case OutputType::GenerateUntil: {
      if (t.tool_call) {
        s.update(tool_sample(model, t, p));
        break;
      }
      const std::vector<std::string> until = t.until_given ? t.until : std::vector<std::string>{t.fewshot_delimiter};
      const std::string out = model.generate_until(p.context, until, t.max_gen_toks);
      s["prediction"] = out;
      ojson filtered = ojson::object(), metrics = ojson::object();
      for (const FilterSpec& f : filters_of(t)) {
        const std::string r = apply_filter(f, out);
        filtered[f.name] = r;
        for (const MetricSpec& m : metrics_of(t))
          if (m.metric == "exact_match") {
            const std::string key = f.name == "none" ? "exact_match" : "exact_match," + f.name;
            metrics[key] = exact_match(r, p.target, em_options(m));
          }
      }
      s["filtered"] = filtered;
      s["metrics"] = metrics;
      break;
    }
    case OutputType::LoglikelihoodRolling: {
      LogLik ll = model.loglikelihood_rolling(p.target);
      s["loglikelihood"] = ll.logprob;
      s["tokens"] = ll.tokens;
      s["words"] = count_words(p.target);
      s["bytes"] = p.target.size();
      break;
    }
  }
  return s;
}

ojson metric_entry(double value, double stderr, bool higher) {
  return {{"value", value}, {"stderr", stderr}, {"higher_is_better", higher}};
}

void aggregate(const TaskConfig& t, const std::vector<ojson>& samples, uint64_t seed, TaskResult& r) {
  const size_t n = samples.size();
  if (n == 0) return;
  const int boot = 100;  // lm-eval's resamples for corpus-level metrics
  std::vector<size_t> all(n);  // every sample: the corpus-level scores' index set
  std::iota(all.begin(), all.end(), size_t(0));
  for (const MetricSpec& m : metrics_of(t)) {
    const std::string& name = m.metric;
    if (name == "acc" || name == "acc_norm" || name == "exact_match" || name == "tool_call_acc" || name == "tool_name_acc") {
      // per-sample values: every key starting with the metric name ("exact_match,extract")
      std::map<std::string, std::vector<double>> by_key;
      for (const ojson& s : samples)
        for (auto it = s["metrics"].begin(); it != s["metrics"].end(); ++it)
          if (it.key() == name || it.key().rfind(name + ",", 0) == 0) by_key[it.key()].push_back(it->get<double>());
      for (auto& [key, v] : by_key) {
        MeanStderr ms = mean_stderr(v);
        r.metrics[key] = metric_entry(ms.mean, ms.stderr, m.higher_is_better);
      }
    } else if (name == "perplexity") {
      auto score = [&](const std::vector<size_t>& idx) {
        double sum = 0;
        for (size_t i : idx) sum += samples[i]["loglikelihood"].get<double>();
        return std::exp(-sum / double(idx.size()));
      };
      r.metrics[name] = metric_entry(score(all), bootstrap_stderr(n, score, boot, seed), false);
    } else if (name == "word_perplexity" || name == "byte_perplexity" || name == "bits_per_byte") {
      const char* unit = name == "word_perplexity" ? "words" : "bytes";
      auto score = [&](const std::vector<size_t>& idx) {
        double ll = 0, w = 0;
        for (size_t i : idx) ll += samples[i]["loglikelihood"].get<double>(), w += samples[i][unit].get<double>();
        if (w == 0) return 0.0;
        return name == "bits_per_byte" ? -ll / w / std::log(2.0) : std::exp(-ll / w);
      };
      r.metrics[name] = metric_entry(score(all), bootstrap_stderr(n, score, boot, seed), false);
    } else if (name == "f1") {
      // lm-eval's f1 of multiple choice: (gold, chosen) pairs into sklearn's f1_score — binary by
      // default, macro with KoBEST's macro_f1_score aggregation or `average: macro`.
      const bool macro = m.aggregation == "macro_f1" || (m.kwargs.contains("average") && m.kwargs["average"] == "macro");
      std::vector<int> gold(n), pred(n);
      for (size_t i = 0; i < n; i++) gold[i] = samples[i]["gold"].get<int>(), pred[i] = samples[i]["prediction"].get<int>();
      auto score = [&](const std::vector<size_t>& idx) { return f1_score(gold, pred, idx, macro); };
      r.metrics[name] = metric_entry(score(all), bootstrap_stderr(n, score, boot, seed), m.higher_is_better);
    } else if (name == "chrf" || name == "chrf++" || name == "bleu") {
      for (const FilterSpec& f : filters_of(t)) {
        std::vector<std::string> hyps;
        std::vector<std::vector<std::string>> refs;
        for (const ojson& s : samples) {
          hyps.push_back(s["filtered"][f.name].get<std::string>());
          refs.push_back({s["target"].get<std::string>()});
        }
        auto score = [&](const std::vector<size_t>& idx) {
          std::vector<std::string> h;
          std::vector<std::vector<std::string>> rr;
          for (size_t i : idx) h.push_back(hyps[i]), rr.push_back(refs[i]);
          if (name == "bleu") return corpus_bleu(h, rr);
          ChrfOptions o;
          o.word_order = name == "chrf++" ? 2 : 0;
          return corpus_chrf(h, rr, o);
        };
        const std::string key = f.name == "none" ? name : name + "," + f.name;
        r.metrics[key] = metric_entry(score(all), bootstrap_stderr(n, score, boot, seed), m.higher_is_better);
      }
    }
  }
}

std::map<size_t, ojson> read_samples(const std::string& path) {
  std::map<size_t, ojson> out;
  if (!file_exists(path)) return out;
  const std::string text = read_file(path);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) break;  // a torn last line (killed mid-write): redone
    try {
      ojson j = ojson::parse(text.begin() + long(pos), text.begin() + long(e));
      if (j.is_object() && j.contains("doc_id") && j["doc_id"].is_number_unsigned()) out[j["doc_id"].get<size_t>()] = j;
    } catch (const ojson::exception&) {
    }
    pos = e + 1;
  }
  return out;
}

ojson config_json(const TaskConfig& t, const PreparedTask& p, const RunOptions& o) {
  ojson c = {{"task", t.task},
             {"source", t.source},
             {"output_type", output_type_name(t.output_type)},
             {"dataset_path", t.dataset_path},
             {"dataset_name", t.dataset_name},
             {"split", p.data->split},
             {"num_fewshot", p.data->shots},
             {"seed", o.seed},
             {"limit", o.limit},
             {"target_delimiter", t.target_delimiter},
             {"fewshot_delimiter", t.fewshot_delimiter}};
  if (t.tool_call) c["tool_call"] = true;
  if (t.output_type == OutputType::GenerateUntil) {
    c["until"] = t.until_given ? t.until
                 : t.tool_call   ? std::vector<std::string>{}  // tool calls end with the turn
                                 : std::vector<std::string>{t.fewshot_delimiter};
    c["max_gen_toks"] = t.max_gen_toks;
  }
  ojson ms = ojson::array();
  for (const MetricSpec& m : metrics_of(t)) ms.push_back(m.metric);
  c["metrics"] = ms;
  return c;
}

}  // namespace

TaskResult run_task(EvalModel& model, const TaskConfig& t, const RunOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  EnergyMeter energy;
  PreparedTask p = prepare_task(t, o);
  TaskResult r;
  r.task = t.task;
  r.config = config_json(t, p, o);
  std::map<size_t, ojson> old;
  std::string path;
  FILE* out = nullptr;
  if (!o.out_dir.empty()) {
    make_directories(o.out_dir);
    path = o.out_dir + "/samples_" + t.task + ".jsonl";
    if (o.resume) old = read_samples(path);
  }
  std::vector<ojson> samples;
  std::vector<Prompt> prompts(p.size());
  std::vector<bool> todo(p.size(), true);
  for (size_t i = 0; i < p.size(); i++) {
    prompts[i] = p.prompt(i);
    auto it = old.find(i);
    if (it != old.end() && it->second.value("prompt", "") == prompts[i].context &&
        it->second.value("target", "") == prompts[i].target) {
      todo[i] = false;
      r.reused++;
    }
  }
  if (!path.empty()) {
    // Rewrite what is kept (drops a torn last line), then append as samples are made.
    std::string kept;
    for (size_t i = 0; i < p.size(); i++)
      if (!todo[i]) kept += old[i].dump() + "\n";
    write_file_atomic(path, kept);
    out = std::fopen(path.c_str(), "a");
    if (!out) fail(path, ": cannot write");
  }
  Progress prog(t.task, p.size(), "docs");
  // Every sample is appended the moment it is made, so a failure part way (an endpoint that went
  // down) keeps all finished ones for --resume. A model with concurrency() > 1 gets that many
  // documents at once, each on its own thread; their lines land in the order they finish.
  samples.resize(p.size());
  std::vector<size_t> work;
  for (size_t i = 0; i < p.size(); i++) {
    if (todo[i]) {
      work.push_back(i);
    } else {
      samples[i] = old[i];
      prog.add(1);
    }
  }
  std::mutex mu;
  auto finished = [&](size_t i, ojson s) {  // under mu
    if (out) {
      const std::string line = s.dump() + "\n";
      if (std::fwrite(line.data(), 1, line.size(), out) != line.size() || std::fflush(out) != 0)
        fail(path, ": write failed (disk full?)");
    }
    samples[i] = std::move(s);
    prog.add(1);
  };
  const size_t threads = std::min(work.size(), size_t(std::max(1, model.concurrency())));
  try {
    if (threads <= 1) {
      // Log-likelihood documents: a model that reads several questions in one pass gets the next
      // ones ahead (prefetch), then every sample is made as usual.
      const bool ll = t.output_type == OutputType::MultipleChoice || t.output_type == OutputType::Loglikelihood;
      const size_t group = ll ? size_t(std::max(1, model.batch_questions())) : 1;
      for (size_t w = 0; w < work.size(); w++) {
        if (group > 1 && w % group == 0) {
          std::vector<EvalModel::LoglikRequest> ahead;
          for (size_t k = w; k < std::min(work.size(), w + group); k++) ahead.push_back(loglik_request(t, prompts[work[k]]));
          model.prefetch_loglikelihood(ahead);
        }
        const size_t i = work[w];
        finished(i, make_sample(model, t, prompts[i], i, p.data->docs[i].where));
      }
    } else {
      std::atomic<size_t> next{0};
      std::atomic<bool> stop{false};
      std::exception_ptr error;
      std::vector<std::thread> pool;
      for (size_t k = 0; k < threads; k++)
        pool.emplace_back([&] {
          while (!stop) {
            const size_t w = next++;
            if (w >= work.size()) return;
            const size_t i = work[w];
            try {
              ojson s = make_sample(model, t, prompts[i], i, p.data->docs[i].where);
              std::lock_guard lock(mu);
              finished(i, std::move(s));
            } catch (...) {  // the first failure stops new documents; those in flight finish
              std::lock_guard lock(mu);
              if (!error) error = std::current_exception();
              stop = true;
            }
          }
        });
      for (std::thread& th : pool) th.join();
      if (error) std::rethrow_exception(error);
    }
  } catch (...) {
    if (out) std::fclose(out);
    throw;
  }
  prog.finish();
  if (out) std::fclose(out);
  r.n = int(samples.size());
  aggregate(t, samples, o.seed, r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.joules = energy.joules();
  r.config["energy"] = energy.label();
  return r;
}

ojson results_json(const std::vector<TaskResult>& results, const ojson& model) {
  ojson res = ojson::object();
  for (const TaskResult& r : results)
    res[r.task] = {{"metrics", r.metrics}, {"n", r.n},           {"reused", r.reused},
                   {"seconds", r.seconds}, {"joules", r.joules}, {"config", r.config}};
  return {{"results", res}, {"model", model}, {"created_unix", long(std::time(nullptr))}, {"todae_version", "0.1.0"}};
}

}  // namespace todae::eval
