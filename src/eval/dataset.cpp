// Local datasets in the formats benchmark files come in (CSV, TSV, JSON, JSONL), read into rows
// of typed values the way Hugging Face `datasets` presents them to lm-eval, so the same templates
// (`{{answer-1}}` on KMMLU's integer answers) work on the same files. Every row remembers its
// file:line for messages.
#include <cerrno>
#include <cstdlib>

#include "base/base.h"
#include "eval/eval.h"

namespace todae::eval {

using ojson = nlohmann::ordered_json;

namespace {

std::string lower_ext(const std::string& path) {
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot + 1);
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

struct Record {
  std::vector<std::string> fields;
  int line = 0;
};

// RFC 4180 records: quoted fields may hold the delimiter, newlines and "" for a quote. Blank
// lines are skipped (as pandas does).
std::vector<Record> split_records(std::string_view s, char delim, const std::string& name) {
  std::vector<Record> out;
  size_t i = 0;
  int line = 1;
  if (s.substr(0, 3) == "\xEF\xBB\xBF") i = 3;
  while (i < s.size()) {
    if (s[i] == '\n' || (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) {  // blank line
      i += s[i] == '\r' ? 2 : 1;
      line++;
      continue;
    }
    Record r;
    r.line = line;
    std::string field;
    bool quoted_field = false;
    while (true) {
      if (i >= s.size()) {
        r.fields.push_back(field);
        break;
      }
      char c = s[i];
      if (c == '"' && field.empty() && !quoted_field) {
        quoted_field = true;
        i++;
        const int start_line = line;
        while (true) {
          if (i >= s.size()) fail(name, ":", start_line, ": a quoted field never ends");
          if (s[i] == '"') {
            if (i + 1 < s.size() && s[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (s[i] == '\n') line++;
          field.push_back(s[i++]);
        }
        continue;
      }
      if (c == delim) {
        r.fields.push_back(field);
        field.clear();
        quoted_field = false;
        i++;
        continue;
      }
      if (c == '\n' || (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) {
        r.fields.push_back(field);
        i += c == '\r' ? 2 : 1;
        line++;
        break;
      }
      field.push_back(c);
      i++;
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool is_int(const std::string& s, long long* v) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' || s[0] == '+' ? 1 : 0;
  if (i == s.size() || s.size() - i > 18) return false;
  for (size_t k = i; k < s.size(); k++)
    if (s[k] < '0' || s[k] > '9') return false;
  *v = std::strtoll(s.c_str(), nullptr, 10);
  return true;
}

bool is_number(const std::string& s, double* v) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
      return false;
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno == 0;
}

Dataset parse_delimited(std::string_view text, const std::string& name, char delim) {
  Dataset d;
  d.file = name;
  std::vector<Record> recs = split_records(text, delim, name);
  if (recs.empty()) fail(name, ": empty (no header line)");
  d.columns = recs[0].fields;
  for (size_t c = 0; c < d.columns.size(); c++)
    for (size_t k = 0; k < c; k++)
      if (d.columns[k] == d.columns[c]) fail(name, ":", recs[0].line, ": column '", printable(d.columns[c]), "' twice in the header");
  const size_t C = d.columns.size();
  for (size_t r = 1; r < recs.size(); r++) {
    if (recs[r].fields.size() < C)
      fail(name, ":", recs[r].line, ": no column '", printable(d.columns[recs[r].fields.size()]), "' (",
           recs[r].fields.size(), " fields, the header has ", C, ")");
    if (recs[r].fields.size() > C)
      fail(name, ":", recs[r].line, ": ", recs[r].fields.size(), " fields but the header has ", C, " columns");
  }
  // Column types: integers, else numbers, else text (empty cells are null, as pandas reads them).
  std::vector<int> type(C, 0);  // 0 int, 1 number, 2 text
  for (size_t c = 0; c < C; c++)
    for (size_t r = 1; r < recs.size() && type[c] < 2; r++) {
      const std::string& f = recs[r].fields[c];
      if (f.empty()) continue;
      long long iv;
      double dv;
      if (type[c] == 0 && is_int(f, &iv)) continue;
      if (is_number(f, &dv)) type[c] = 1;
      else type[c] = 2;
    }
  for (size_t r = 1; r < recs.size(); r++) {
    Doc doc;
    doc.where = cat(name, ":", recs[r].line);
    doc.fields = ojson::object();
    for (size_t c = 0; c < C; c++) {
      const std::string& f = recs[r].fields[c];
      if (f.empty()) doc.fields[d.columns[c]] = nullptr;
      else if (type[c] == 0) doc.fields[d.columns[c]] = std::strtoll(f.c_str(), nullptr, 10);
      else if (type[c] == 1) doc.fields[d.columns[c]] = std::strtod(f.c_str(), nullptr);
      else doc.fields[d.columns[c]] = f;
    }
    d.docs.push_back(std::move(doc));
  }
  return d;
}

ojson parse_json_value(std::string_view text, const std::string& where) {
  try {
    return ojson::parse(text.begin(), text.end());
  } catch (const ojson::exception& e) {
    std::string m = e.what();
    auto p = m.find("] ");
    fail(where, ": not valid JSON: ", p == std::string::npos ? m : m.substr(p + 2));
  }
}

void add_object(Dataset& d, ojson v, const std::string& where) {
  if (!v.is_object()) fail(where, ": expected a JSON object (one row), got ", v.type_name());
  if (d.docs.empty()) {
    for (auto it = v.begin(); it != v.end(); ++it) d.columns.push_back(it.key());
  } else {
    for (const std::string& c : d.columns)
      if (!v.contains(c)) fail(where, ": no column '", printable(c), "'");
  }
  d.docs.push_back({std::move(v), where});
}

Dataset parse_json_lines(std::string_view text, const std::string& name) {
  Dataset d;
  d.file = name;
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string_view::npos) e = text.size();
    std::string_view l = text.substr(pos, e - pos);
    line++;
    pos = e + 1;
    if (line == 1 && l.substr(0, 3) == "\xEF\xBB\xBF") l.remove_prefix(3);
    size_t k = 0;
    while (k < l.size() && std::isspace(static_cast<unsigned char>(l[k]))) k++;
    if (k == l.size()) continue;
    const std::string where = cat(name, ":", line);
    add_object(d, parse_json_value(l, where), where);
  }
  return d;
}

// A JSON array of objects; each row's line is where its '{' is.
Dataset parse_json_array(std::string_view text, const std::string& name) {
  Dataset d;
  d.file = name;
  ojson all = parse_json_value(text, name);
  if (!all.is_array()) fail(name, ": expected an array of rows");
  std::vector<int> lines;  // where each element of the top-level array starts
  int line = 1, depth = 0;
  bool in_str = false, esc = false, want = false;
  for (char c : text) {
    if (c == '\n') line++;
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    if (depth == 1 && want && !std::isspace(static_cast<unsigned char>(c)) && c != ']') lines.push_back(line), want = false;
    if (c == '"') in_str = true;
    else if (c == '[' || c == '{') {
      if (++depth == 1) want = true;
    } else if (c == ']' || c == '}') {
      depth--;
    } else if (c == ',' && depth == 1) {
      want = true;
    }
  }
  for (size_t i = 0; i < all.size(); i++)
    add_object(d, std::move(all[i]), cat(name, ":", i < lines.size() ? lines[i] : 0));
  return d;
}

}  // namespace

Dataset parse_dataset(std::string_view text, const std::string& name, const std::string& format) {
  if (format == "csv") return parse_delimited(text, name, ',');
  if (format == "tsv") return parse_delimited(text, name, '\t');
  if (format == "jsonl") return parse_json_lines(text, name);
  if (format == "json") {
    size_t k = 0;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") k = 3;
    while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) k++;
    // `datasets`' to_json writes JSON lines even into .json files
    return k < text.size() && text[k] == '[' ? parse_json_array(text, name) : parse_json_lines(text, name);
  }
  fail(name, ": unknown data format '", format, "' (csv, tsv, json, jsonl)");
}

Dataset load_dataset_file(const std::string& path) {
  const std::string ext = lower_ext(path);
  if (ext != "csv" && ext != "tsv" && ext != "json" && ext != "jsonl")
    fail(path, ": not a dataset file (want .csv, .tsv, .json or .jsonl)");
  return parse_dataset(read_file(path), path, ext);
}

}  // namespace todae::eval
