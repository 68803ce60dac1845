// lm-eval task YAML: the subset real task files use (see eval.h, TaskConfig). yaml-cpp parses;
// this file turns the top-level keys into a TaskConfig, following `include:` first (the including
// file's keys win, as in lm-eval). Python hooks (`!function`, process_docs, process_results) are
// refused with the key named: todae runs no Python.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include "base/base.h"
#include "eval/eval.h"

namespace todae::eval {

const char* output_type_name(OutputType t) {
  switch (t) {
    case OutputType::Loglikelihood: return "loglikelihood";
    case OutputType::MultipleChoice: return "multiple_choice";
    case OutputType::GenerateUntil: return "generate_until";
    case OutputType::LoglikelihoodRolling: return "loglikelihood_rolling";
  }
  return "?";
}

namespace {

struct Key {
  YAML::Node node;
  std::string source;  // the file this key came from (an include's keys name the include)
};
using Keys = std::map<std::string, Key>;

std::string at(const Key& k) {
  const YAML::Mark m = k.node.Mark();
  return m.is_null() ? k.source : cat(k.source, ":", m.line + 1);
}

[[noreturn]] void bad(const Key& k, const std::string& name, const std::string& what) {
  fail(at(k), ": ", name, ": ", what);
}

void refuse_python(const YAML::Node& n, const Key& k, const std::string& name) {
  if (n.Tag() == "!function")
    bad(k, name, cat("'!function ", n.IsScalar() ? n.Scalar() : "", "' is Python code, which todae does not run; ",
                     "write it as a Jinja template"));
}

Keys read_keys(std::string_view yaml, const std::string& source, const IncludeResolver& includes, int depth) {
  if (depth > 8) fail(source, ": include: nested more than 8 deep (a cycle?)");
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) fail(source, ": not valid YAML: ", e.msg);
    fail(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg);
  }
  if (!root.IsMap()) fail(source, ": a task file is a YAML mapping of keys (task:, dataset_path:, ...)");
  Keys keys;
  Keys own;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar()) fail(source, ":", it->first.Mark().line + 1, ": a key that is not a plain name");
    own[it->first.Scalar()] = {it->second, source};
  }
  auto inc = own.find("include");
  if (inc != own.end()) {
    if (!inc->second.node.IsScalar()) bad(inc->second, "include", "expected a file name");
    const std::string name = inc->second.node.Scalar();
    if (!includes) bad(inc->second, "include", cat("cannot read '", name, "' here"));
    keys = read_keys(includes(name, source), name, includes, depth + 1);
    own.erase(inc);
  }
  for (auto& [k, v] : own) keys[k] = v;
  return keys;
}

std::string str(const Key& k, const std::string& name) {
  refuse_python(k.node, k, name);
  if (k.node.IsNull()) return "";
  if (!k.node.IsScalar()) bad(k, name, "expected a string");
  return k.node.Scalar();
}

long long integer(const Key& k, const std::string& name) {
  refuse_python(k.node, k, name);
  if (!k.node.IsScalar()) bad(k, name, "expected an integer");
  const std::string s = k.node.Scalar();
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != 0) bad(k, name, cat("'", printable(s), "' is not an integer"));
  return v;
}

bool boolean(const Key& k, const std::string& name) {
  if (!k.node.IsScalar()) bad(k, name, "expected true or false");
  const std::string s = k.node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes") return true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "no") return false;
  bad(k, name, cat("'", printable(s), "' is not true or false"));
}

std::vector<std::string> str_list(const Key& k, const std::string& name) {
  refuse_python(k.node, k, name);
  std::vector<std::string> out;
  if (k.node.IsScalar()) return {k.node.Scalar()};
  if (!k.node.IsSequence()) bad(k, name, "expected a string or a list of strings");
  for (size_t i = 0; i < k.node.size(); i++) {
    if (!k.node[i].IsScalar()) bad(k, cat(name, "[", i, "]"), "expected a string");
    out.push_back(k.node[i].Scalar());
  }
  return out;
}

DocField doc_field(const Key& k, const std::string& name) {
  refuse_python(k.node, k, name);
  DocField f;
  if (k.node.IsNull()) return f;
  if (k.node.IsSequence()) {
    f.kind = DocField::List;
    f.list = str_list(k, name);
    return f;
  }
  if (!k.node.IsScalar()) bad(k, name, "expected a template, a column name, an integer or a list");
  const std::string s = k.node.Scalar();
  // A plain (unquoted) integer is an index; a quoted one stays text, as PyYAML reads them.
  long long v;
  char* end = nullptr;
  v = std::strtoll(s.c_str(), &end, 10);
  if (k.node.Tag() == "?" && !s.empty() && *end == 0) {
    f.kind = DocField::Int;
    f.value = int(v);
    return f;
  }
  f.kind = DocField::Text;
  f.text = s;
  return f;
}

const std::set<std::string>& known_metrics() {
  static const std::set<std::string> m = {"acc", "acc_norm", "exact_match", "chrf", "chrf++", "bleu", "perplexity",
                                          "word_perplexity", "byte_perplexity", "bits_per_byte", "tool_call_acc",
                                          "tool_name_acc", "f1"};
  return m;
}

}  // namespace

namespace {
TaskConfig parse_keys(std::string_view yaml, const std::string& source, const IncludeResolver& includes);
}

TaskConfig parse_task_yaml(std::string_view yaml, const std::string& source, const IncludeResolver& includes) {
  try {
    return parse_keys(yaml, source, includes);
  } catch (const YAML::Exception& e) {  // a node of an unexpected shape deep inside
    if (e.mark.is_null()) fail(source, ": ", e.msg);
    fail(source, ":", e.mark.line + 1, ": ", e.msg);
  }
}

namespace {
TaskConfig parse_keys(std::string_view yaml, const std::string& source, const IncludeResolver& includes) {
  Keys keys = read_keys(yaml, source, includes, 0);
  TaskConfig t;
  t.source = source;
  // Keys lm-eval task files carry that do not change what todae computes.
  static const std::set<std::string> ignored = {"tag", "group", "group_alias", "task_alias", "metadata", "dataset_kwargs",
                                                "should_decontaminate", "doc_to_decontamination_query", "fewshot_config",
                                                "output_type", "generation_kwargs", "metric_list", "filter_list", "repeats"};
  for (auto& [name, k] : keys) {
    const YAML::Node& n = k.node;
    if (name == "task") t.task = str(k, name);
    else if (name == "dataset_path") t.dataset_path = str(k, name);
    else if (name == "dataset_name") t.dataset_name = str(k, name);
    else if (name == "test_split") t.test_split = str(k, name);
    else if (name == "validation_split") t.validation_split = str(k, name);
    else if (name == "fewshot_split") t.fewshot_split = str(k, name);
    else if (name == "training_split") t.training_split = str(k, name);
    else if (name == "doc_to_text") t.doc_to_text = doc_field(k, name);
    else if (name == "doc_to_target") t.doc_to_target = doc_field(k, name);
    else if (name == "doc_to_choice") t.doc_to_choice = doc_field(k, name);
    else if (name == "description") t.description = str(k, name);
    else if (name == "target_delimiter") t.target_delimiter = str(k, name);
    else if (name == "fewshot_delimiter") t.fewshot_delimiter = str(k, name);
    else if (name == "num_fewshot") {
      long long v = integer(k, name);
      if (v < 0 || v > 1000) bad(k, name, "expected 0..1000");
      t.num_fewshot = int(v);
    } else if (name == "doc_filter") t.doc_filter = str(k, name);
    else if (name == "required_columns") t.required_columns = str_list(k, name);
    else if (name == "tool_call") t.tool_call = boolean(k, name);
    else if (name == "doc_to_messages") t.messages_field = str(k, name);
    else if (name == "doc_to_tools") t.tools_field = str(k, name);
    else if (name == "process_docs" || name == "process_results" || name == "custom_dataset" || name == "doc_to_image")
      bad(k, name, "is Python code, which todae does not run; express it with doc_to_text/doc_to_choice templates");
    else if (name == "repeats") {
      if (integer(k, name) != 1) bad(k, name, "only 1 is supported");
    } else if (!ignored.count(name)) {
      bad(k, name, "unknown key");
    }
    (void)n;
  }
  if (t.task.empty()) fail(source, ": task: missing (every task needs a name)");

  if (auto it = keys.find("output_type"); it != keys.end()) {
    const std::string s = str(it->second, "output_type");
    if (s == "multiple_choice") t.output_type = OutputType::MultipleChoice;
    else if (s == "generate_until") t.output_type = OutputType::GenerateUntil;
    else if (s == "loglikelihood") t.output_type = OutputType::Loglikelihood;
    else if (s == "loglikelihood_rolling") t.output_type = OutputType::LoglikelihoodRolling;
    else if (s == "tool_call") t.output_type = OutputType::GenerateUntil, t.tool_call = true;  // todae's
    else bad(it->second, "output_type", cat("'", printable(s), "' is not multiple_choice, generate_until, loglikelihood, loglikelihood_rolling or tool_call"));
  } else {
    t.output_type = OutputType::GenerateUntil;  // lm-eval's default
  }

  if (auto it = keys.find("dataset_kwargs"); it != keys.end() && it->second.node.IsMap()) {
    const YAML::Node df = it->second.node["data_files"];
    Key k{df, it->second.source};
    if (df && (df.IsScalar() || df.IsSequence())) {
      t.data_files["train"] = str_list(k, "dataset_kwargs.data_files");  // a bare list is the train split (datasets' rule)
    } else if (df && df.IsMap()) {
      for (auto s = df.begin(); s != df.end(); ++s)
        t.data_files[s->first.Scalar()] = str_list({s->second, k.source}, "dataset_kwargs.data_files." + s->first.Scalar());
    } else if (df) {
      bad(k, "dataset_kwargs.data_files", "expected a file, a list of files or a mapping split: files");
    }
  }

  if (auto it = keys.find("generation_kwargs"); it != keys.end()) {
    const Key& g = it->second;
    if (!g.node.IsMap()) bad(g, "generation_kwargs", "expected a mapping");
    for (auto e = g.node.begin(); e != g.node.end(); ++e) {
      const std::string name = e->first.Scalar();
      Key k{e->second, g.source};
      if (name == "until") t.until = str_list(k, "generation_kwargs.until"), t.until_given = true;
      else if (name == "max_gen_toks" || name == "max_new_tokens") {
        long long v = integer(k, "generation_kwargs." + name);
        if (v < 1 || v > 1 << 20) bad(k, "generation_kwargs." + name, "expected 1..1048576");
        t.max_gen_toks = int(v);
      } else if (name == "do_sample") {
        if (boolean(k, "generation_kwargs.do_sample")) bad(k, "generation_kwargs.do_sample", "only greedy decoding (false) is supported");
      }
      // temperature, top_p, ...: greedy decoding ignores them, as lm-eval does with do_sample false
    }
  }

  if (auto it = keys.find("metric_list"); it != keys.end()) {
    const Key& ml = it->second;
    if (!ml.node.IsSequence()) bad(ml, "metric_list", "expected a list of {metric: NAME, ...}");
    for (size_t i = 0; i < ml.node.size(); i++) {
      const YAML::Node e = ml.node[i];
      const std::string where = cat("metric_list[", i, "]");
      Key k{e, ml.source};
      if (!e.IsMap() || !e["metric"]) bad(k, where, "expected {metric: NAME, ...}");
      MetricSpec m;
      for (auto f = e.begin(); f != e.end(); ++f) {
        const std::string name = f->first.Scalar();
        Key fk{f->second, ml.source};
        if (name == "metric") m.metric = str(fk, where + ".metric");
        else if (name == "aggregation") {
          // lm-eval's KoBEST files aggregate f1 with `!function utils.macro_f1_score` (sklearn's
          // macro F1): that one hook is built in; any other Python is refused.
          const YAML::Node a = f->second;
          if (a.Tag() == "!function" && a.IsScalar() && a.Scalar().ends_with("macro_f1_score")) m.aggregation = "macro_f1";
          else m.aggregation = str(fk, where + ".aggregation");
        }
        else if (name == "higher_is_better") m.higher_is_better = boolean(fk, where + ".higher_is_better");
        else if (f->second.IsScalar()) {
          const std::string v = f->second.Scalar();
          if (v == "true" || v == "True") m.kwargs[name] = true;
          else if (v == "false" || v == "False") m.kwargs[name] = false;
          else m.kwargs[name] = v;
        } else if (f->second.IsSequence()) {
          m.kwargs[name] = str_list(fk, where + "." + name);
        }
      }
      if (!known_metrics().count(m.metric)) {
        std::string known;
        for (const std::string& s : known_metrics()) known += (known.empty() ? "" : ", ") + s;
        bad(k, where, cat("unknown metric '", printable(m.metric), "' (todae knows ", known, ")"));
      }
      if (!m.aggregation.empty() && m.aggregation != "mean" && m.aggregation != "bleu" && m.aggregation != "chrf" &&
          m.aggregation != "perplexity" && m.aggregation != "weighted_perplexity" && m.aggregation != "bits_per_byte" &&
          m.aggregation != "f1" && m.aggregation != "macro_f1")
        bad(k, where + ".aggregation", cat("'", printable(m.aggregation), "' is not supported"));
      if (m.metric == "f1" && t.output_type != OutputType::MultipleChoice)
        bad(k, where, "metric f1 (of the chosen answers) needs output_type: multiple_choice");
      t.metrics.push_back(std::move(m));
    }
  }

  if (auto it = keys.find("filter_list"); it != keys.end()) {
    const Key& fl = it->second;
    if (!fl.node.IsSequence()) bad(fl, "filter_list", "expected a list of {name: ..., filter: [...]}");
    for (size_t i = 0; i < fl.node.size(); i++) {
      const YAML::Node e = fl.node[i];
      const std::string where = cat("filter_list[", i, "]");
      Key k{e, fl.source};
      if (!e.IsMap() || !e["name"] || !e["filter"] || !e["filter"].IsSequence())
        bad(k, where, "expected {name: NAME, filter: [{function: regex, ...}, {function: take_first}]}");
      FilterSpec f;
      f.name = str({e["name"], fl.source}, where + ".name");
      for (size_t j = 0; j < e["filter"].size(); j++) {
        const YAML::Node s = e["filter"][j];
        const std::string sw = cat(where, ".filter[", j, "]");
        Key sk{s, fl.source};
        if (!s.IsMap() || !s["function"]) bad(sk, sw, "expected {function: NAME, ...}");
        FilterStep st;
        st.function = str({s["function"], fl.source}, sw + ".function");
        if (st.function == "regex") {
          if (s["regex_pattern"]) st.regex_pattern = str({s["regex_pattern"], fl.source}, sw + ".regex_pattern");
          else st.regex_pattern = R"(#### (\-?[0-9\.\,]+))";  // lm-eval's default
          if (s["group_select"]) st.group_select = int(integer({s["group_select"], fl.source}, sw + ".group_select"));
          if (s["fallback"]) st.fallback = str({s["fallback"], fl.source}, sw + ".fallback");
        } else if (st.function != "take_first") {
          bad(sk, sw + ".function", cat("'", printable(st.function), "' is not regex or take_first"));
        }
        f.steps.push_back(st);
      }
      t.filters.push_back(std::move(f));
    }
  }

  // What each output type needs.
  if (t.tool_call && t.output_type != OutputType::GenerateUntil)
    fail(source, ": tool_call: needs output_type generate_until (or output_type: tool_call)");
  if (t.tool_call && t.doc_to_target.kind == DocField::None) t.doc_to_target = {DocField::Text, "ground_truth", 0, {}};
  if (t.doc_to_text.kind == DocField::None && t.output_type != OutputType::LoglikelihoodRolling && !t.tool_call)
    fail(source, ": doc_to_text: missing");
  if (t.output_type == OutputType::MultipleChoice && t.doc_to_choice.kind == DocField::None)
    fail(source, ": doc_to_choice: missing (multiple_choice needs the choices)");
  // loglikelihood_rolling scores doc_to_target (lm-eval's wikitext: doc_to_text "", doc_to_target "{{page}}")
  if (t.doc_to_target.kind == DocField::None) fail(source, ": doc_to_target: missing");
  for (const MetricSpec& m : t.metrics) {
    const bool mc = m.metric == "acc" || m.metric == "acc_norm";
    const bool gen = m.metric == "exact_match" || m.metric == "chrf" || m.metric == "chrf++" || m.metric == "bleu";
    const bool roll = m.metric == "word_perplexity" || m.metric == "byte_perplexity" || m.metric == "bits_per_byte";
    const bool tool = m.metric == "tool_call_acc" || m.metric == "tool_name_acc";
    if (tool != t.tool_call)
      fail(source, ": metric_list: metric '", m.metric, "' ", tool ? "needs a tool-calling task (output_type: tool_call)"
                                                                 : "does not apply to a tool-calling task");
    const char* ot = output_type_name(t.output_type);
    if ((mc && t.output_type != OutputType::MultipleChoice && t.output_type != OutputType::Loglikelihood) ||
        (gen && t.output_type != OutputType::GenerateUntil) || (roll && t.output_type != OutputType::LoglikelihoodRolling) ||
        (m.metric == "perplexity" && t.output_type != OutputType::Loglikelihood))
      fail(source, ": metric_list: metric '", m.metric, "' does not apply to output_type ", ot);
  }
  return t;
}
}  // namespace

TaskConfig load_task_file(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  IncludeResolver inc = [dir](const std::string& name, const std::string& from) -> std::string {
    const std::string beside = (std::filesystem::path(dir.empty() ? "." : dir) / name).string();
    if (file_exists(beside)) return read_file(beside);
    const std::string b = builtin_yaml(name);
    if (!b.empty()) return b;
    fail(from, ": include: no file '", name, "' beside it and no built-in task of that name");
  };
  TaskConfig t = parse_task_yaml(read_file(path), path, inc);
  t.base_dir = dir.empty() ? "." : dir;
  return t;
}

}  // namespace todae::eval
