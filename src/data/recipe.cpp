// Stage options by name (for recipes and --set), `todae data run --recipe`, `todae data report`.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace fs = std::filesystem;

namespace todae {

using data::json;
using data::JsonIn;

namespace {

template <typename T>
struct Field {
  const char* name;
  std::function<void(T&, const JsonIn&)> set;
};

#define F_BOOL(f) {#f, [](auto& o, const JsonIn& j) { o.f = j.boolean(); }}
#define F_U64(f) {#f, [](auto& o, const JsonIn& j) { o.f = j.u64(); }}
#define F_INT(f, lo, hi)                                              \
  {#f, [](auto& o, const JsonIn& j) {                                 \
     int64_t v = j.i64();                                             \
     if (v < (lo) || v > (hi)) j.bad("is out of range [" #lo ", " #hi "]"); \
     o.f = decltype(o.f)(v);                                          \
   }}
#define F_DBL(f) {#f, [](auto& o, const JsonIn& j) { o.f = j.num(); }}
#define F_STR(f) {#f, [](auto& o, const JsonIn& j) { o.f = j.str(); }}
#define F_STRS(f) {#f, [](auto& o, const JsonIn& j) { o.f = j.strings(); }}

const std::vector<Field<InputOptions>>& fields(InputOptions*) {
  static const std::vector<Field<InputOptions>> f = {F_STR(format), F_STR(jsonl_field), F_STR(invalid_utf8),
                                                     F_BOOL(strict), F_U64(chunk_bytes)};
  return f;
}
const std::vector<Field<CleanOptions>>& fields(CleanOptions*) {
  static const std::vector<Field<CleanOptions>> f = {
      F_BOOL(nfc),          F_BOOL(control_chars),        F_BOOL(unicode_spaces),
      F_BOOL(trailing_space), F_BOOL(collapse_spaces),    F_INT(max_blank_lines, 0, 1000),
      F_U64(boilerplate_min_docs), F_INT(boilerplate_min_chars, 0, 100000), F_U64(boilerplate_max_lines)};
  return f;
}
const std::vector<Field<FilterOptions>>& fields(FilterOptions*) {
  static const std::vector<Field<FilterOptions>> f = {
      F_STRS(languages),        F_DBL(ko_min_hangul),        F_DBL(en_min_latin),
      F_STRS(disable),          F_U64(min_chars),            F_U64(max_chars),
      F_U64(min_words),         F_U64(max_words),            F_DBL(min_mean_word_chars),
      F_DBL(max_mean_word_chars), F_DBL(en_min_mean_word_chars), F_DBL(en_max_mean_word_chars),
      F_DBL(max_symbol_ratio),  F_DBL(max_digit_ratio),      F_DBL(max_hash_ellipsis_per_word),
      F_DBL(max_bullet_lines),  F_DBL(max_ellipsis_lines),   F_DBL(min_alpha_words),
      F_DBL(max_dup_line_chars), F_DBL(max_top_2gram),       F_DBL(max_top_3gram),
      F_DBL(max_top_4gram),     F_DBL(max_dup_5gram),        F_DBL(max_dup_10gram),      F_U64(ngram_min_words),
      F_DBL(max_short_lines),   F_U64(short_line_chars),     F_U64(short_lines_min_lines),
      F_U64(min_stopwords)};
  return f;
}
const std::vector<Field<PiiOptions>>& fields(PiiOptions*) {
  static const std::vector<Field<PiiOptions>> f = {F_BOOL(email), F_BOOL(phone), F_BOOL(rrn),
                                                   F_BOOL(card),  F_BOOL(ip),    F_BOOL(rrn_require_checksum)};
  return f;
}
const std::vector<Field<DedupOptions>>& fields(DedupOptions*) {
  static const std::vector<Field<DedupOptions>> f = {F_BOOL(exact),         F_BOOL(near),       F_INT(ngram, 1, 64),
                                                     F_INT(bands, 1, 4096), F_INT(rows, 1, 4096), F_DBL(threshold),
                                                     F_U64(seed),           F_INT(max_examples, 0, 100000)};
  return f;
}
const std::vector<Field<MixOptions>>& fields(MixOptions*) {
  static const std::vector<Field<MixOptions>> f = {
      F_STR(by),
      {"weights",
       [](MixOptions& o, const JsonIn& j) {
         j.object();
         o.weights.clear();
         for (auto& [k, v] : j.j.items()) o.weights.push_back({k, JsonIn{v, j.file, j.sub(k)}.num()});
       }},
      F_STR(others),
      F_U64(total_bytes),
      F_DBL(max_repeat),
      F_U64(seed)};
  return f;
}
const std::vector<Field<ShardOptions>>& fields(ShardOptions*) {
  static const std::vector<Field<ShardOptions>> f = {
      F_STR(tokenizer), F_DBL(val_fraction), F_U64(seed),      F_U64(shard_tokens), F_BOOL(add_bos),
      F_BOOL(add_eos),  F_STR(bos_token),    F_STR(eos_token), F_BOOL(nfc),         F_BOOL(split_special)};
  return f;
}

template <typename T>
void set_field(T& o, const std::string& key, const JsonIn& value, const char* what) {
  for (const auto& f : fields(static_cast<T*>(nullptr)))
    if (key == f.name) return f.set(o, value);
  std::string all;
  for (const auto& f : fields(static_cast<T*>(nullptr))) all += cat(all.empty() ? "" : ", ", f.name);
  fail(value.file, ": ", value.path.empty() ? key : value.path, ": unknown ", what, " option (options: ", all, ")");
}

template <typename T>
void set_from_string(T& o, const std::string& key, const std::string& value, const char* what) {
  json v;
  try {
    v = json::parse(value);
  } catch (const json::exception&) {
    v = value;  // a bare word: a string
  }
  set_field(o, key, JsonIn{v, cat("--set ", key, "=", value), ""}, what);
}

template <typename T>
void set_object(T& o, const JsonIn& obj, const char* what) {
  obj.object();
  for (auto& [k, v] : obj.j.items()) {
    if (k == "stage") continue;
    set_field(o, k, JsonIn{v, obj.file, obj.sub(k)}, what);
  }
}

}  // namespace

void set_option(InputOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "input"); }
void set_option(CleanOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "clean"); }
void set_option(FilterOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "filter"); }
void set_option(PiiOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "pii"); }
void set_option(DedupOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "dedup"); }
void set_option(MixOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "mix"); }
void set_option(ShardOptions& o, const std::string& k, const std::string& v) { set_from_string(o, k, v, "shard"); }

// ---- recipes ------------------------------------------------------------------------------------

namespace {

struct Stage {
  std::string name;
  CleanOptions clean;
  FilterOptions filter;
  PiiOptions pii;
  DedupOptions dedup;
  MixOptions mix;
  ShardOptions shard;
};

struct Recipe {
  std::string output;
  std::vector<std::string> inputs;
  InputOptions input;
  int threads = 0;
  bool compress = false;
  uint64_t part_bytes = 256ull << 20;
  std::vector<Stage> stages;
};

const char* kStages[] = {"ingest", "clean", "filter", "pii", "dedup", "mix", "shard"};

Recipe parse_recipe(std::string_view text, const std::string& name) {
  json j = data::parse_json_text(text, name);
  JsonIn r{j, name, ""};
  r.object();
  Recipe rc;
  for (auto& [k, v] : j.items())
    if (k != "output" && k != "input" && k != "input_options" && k != "threads" && k != "compress" &&
        k != "part_bytes" && k != "stages" && k != "description")
      fail(name, ": ", k, ": unknown recipe field (fields: description, output, input, input_options, threads, "
           "compress, part_bytes, stages)");
  rc.output = r.at("output").str();
  if (rc.output.empty()) r.at("output").bad("is empty");
  JsonIn in = r.at("input");
  rc.inputs = in.j.is_string() ? std::vector<std::string>{in.str()} : in.strings();
  if (rc.inputs.empty()) in.bad("lists no inputs");
  if (r.has("input_options")) set_object(rc.input, r.at("input_options"), "input");
  rc.input.inputs = rc.inputs;
  if (r.has("threads")) rc.threads = int(r.at("threads").u64());
  if (r.has("compress")) rc.compress = r.at("compress").boolean();
  if (r.has("part_bytes")) rc.part_bytes = r.at("part_bytes").u64();
  JsonIn st = r.at("stages");
  size_t n = st.size_array();
  if (n == 0) st.bad("lists no stages");
  for (size_t i = 0; i < n; ++i) {
    JsonIn s = st[i];
    Stage stage;
    stage.name = s.at("stage").str();
    if (std::find(std::begin(kStages), std::end(kStages), stage.name) == std::end(kStages))
      s.at("stage").bad("is not one of ingest, clean, filter, pii, dedup, mix, shard");
    if (stage.name == "ingest") {
      for (auto& [k, v] : s.j.items())
        if (k != "stage") fail(name, ": ", s.sub(k), ": ingest takes no options (use input_options)");
    } else if (stage.name == "clean") {
      set_object(stage.clean, s, "clean");
    } else if (stage.name == "filter") {
      set_object(stage.filter, s, "filter");
    } else if (stage.name == "pii") {
      set_object(stage.pii, s, "pii");
    } else if (stage.name == "dedup") {
      set_object(stage.dedup, s, "dedup");
    } else if (stage.name == "mix") {
      set_object(stage.mix, s, "mix");
    } else {
      set_object(stage.shard, s, "shard");
      if (stage.shard.tokenizer.empty()) fail(name, ": ", s.sub("tokenizer"), ": missing (shard needs a tokenizer)");
      if (i + 1 != n) fail(name, ": ", st.path, "[", i, "]: shard must be the last stage");
    }
    rc.stages.push_back(std::move(stage));
  }
  return rc;
}

bool same_json(const std::string& a, const std::string& b) {
  try {
    return json::parse(a) == json::parse(b);
  } catch (const json::exception&) {
    return false;
  }
}

std::string two_digits(size_t i) { return i < 10 ? cat("0", i) : cat(i); }

}  // namespace

std::vector<std::string> check_recipe(std::string_view text, const std::string& name) {
  Recipe r = parse_recipe(text, name);
  std::vector<std::string> out;
  for (const auto& s : r.stages) out.push_back(s.name);
  return out;
}

void run_recipe(const std::string& path, int threads, bool progress, const std::string& command) {
  using namespace data;
  std::string text = read_file(path);
  Recipe r = parse_recipe(text, path);
  // Ranks (mpirun): rank 0 alone checks and writes the recipe folder and reports; every stage
  // ends with all ranks seeing its committed output.
  const bool lead = data::lead();
  if (lead) {
    // The recipe folder holds only stage folders (NN-stage) and a copy of the recipe.
    if (is_directory(r.output)) {
      std::error_code ec;
      for (auto& e : fs::directory_iterator(r.output, ec)) {
        std::string n = e.path().filename().string();
        bool ok = n == "recipe.json" || (n.size() > 3 && isdigit((unsigned char)n[0]) && isdigit((unsigned char)n[1]) && n[2] == '-');
        if (!ok) fail("recipe output ", r.output, " holds files todae did not write (", n, "); choose an empty or new folder");
      }
    }
    prepare_output_dir_paths(r.output + "/01-" + r.stages[0].name, r.inputs);
    write_file_atomic(r.output + "/recipe.json", text);
  }  // lead
  barrier();
  if (threads <= 0 && r.threads <= 0 && distributed())  // the node's cores shared by its ranks
    threads = std::max(1, default_threads() / std::max(1, ranks().local_world));
  InputOptions in = r.input;
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const Stage& s = r.stages[i];
    CommonOptions co;
    co.output = cat(r.output, "/", two_digits(i + 1), "-", s.name);
    co.threads = threads > 0 ? threads : r.threads;
    co.progress = progress && lead;
    co.compress = r.compress;
    co.part_bytes = r.part_bytes;
    co.command = command;
    std::string opts = s.name == "ingest"   ? with_input(in, "{}")
                       : s.name == "clean"  ? with_input(in, options_json(s.clean))
                       : s.name == "filter" ? with_input(in, options_json(s.filter))
                       : s.name == "pii"    ? with_input(in, options_json(s.pii))
                       : s.name == "dedup"  ? with_input(in, options_json(s.dedup))
                       : s.name == "mix"    ? with_input(in, options_json(s.mix))
                                            : with_input(in, options_json(s.shard));
    // Resume: a stage whose report records the same options and inputs already ran.
    std::string report = co.output + "/report.json";
    bool done = lead && file_exists(report) && (s.name != "shard" || file_exists(co.output + "/manifest.json"));
    if (done) {
      try {
        StageReport old = parse_report(read_file(report), report);
        done = old.stage == s.name && same_json(old.options, opts) &&
               old.input_signature == input_signature(resolve_inputs(in));
      } catch (const Error&) {
        done = false;
      }
    }
    if (distributed()) {  // rank 0 decides, so that all ranks run the same stages
      std::string d = done ? "1" : "0";
      broadcast(d);
      done = d == "1";
    }
    if (done) {
      if (lead) std::fprintf(stderr, "%s: up to date, skipped\n", co.output.c_str());
    } else {
      StageReport rep = s.name == "ingest"   ? run_ingest(in, co)
                        : s.name == "clean"  ? run_clean(in, s.clean, co)
                        : s.name == "filter" ? run_filter(in, s.filter, co)
                        : s.name == "pii"    ? run_pii(in, s.pii, co)
                        : s.name == "dedup"  ? run_dedup(in, s.dedup, co)
                        : s.name == "mix"    ? run_mix(in, s.mix, co)
                                             : run_shard(in, s.shard, co);
      if (lead)
        std::fprintf(stderr, "%s: %llu -> %llu documents, %.1f -> %.1f MB in %.2f s\n", co.output.c_str(),
                     (unsigned long long)rep.docs_in, (unsigned long long)rep.docs_out, rep.bytes_in / 1e6,
                     rep.bytes_out / 1e6, rep.seconds);
    }
    barrier();  // every rank is done with this stage (clean rewrites its report after the commit)
    InputOptions next;
    next.inputs = {co.output};
    next.strict = in.strict;
    next.chunk_bytes = in.chunk_bytes;
    in = next;
  }
}

// ---- report -------------------------------------------------------------------------------------

namespace {

std::string num(uint64_t v) {
  std::string d = std::to_string(v), s;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(d[i]);
  }
  return s;
}

std::string pct(uint64_t a, uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", b ? 100.0 * double(a) / double(b) : 0.0);
  return buf;
}

std::string mbs(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  return buf;
}

void summarise(const std::string& dir, std::string& out) {
  std::string rp = dir + "/report.json";
  StageReport r = parse_report(read_file(rp), rp);
  char head[256];
  std::snprintf(head, sizeof head, "== %s  [%s]  %.2f s, %.1f MB/s\n", dir.c_str(), r.stage.c_str(), r.seconds,
                r.seconds > 0 ? r.bytes_in / 1e6 / r.seconds : 0.0);
  out += head;
  out += cat("   documents ", num(r.docs_in), " -> ", num(r.docs_out), " (", pct(r.docs_out, r.docs_in), " kept)   bytes ",
             mbs(r.bytes_in), " -> ", mbs(r.bytes_out), "\n");
  std::vector<std::pair<std::string, uint64_t>> dropped, other;
  for (auto& [k, v] : r.counts) (k.rfind("dropped.", 0) == 0 ? dropped : other).push_back({k, v});
  std::stable_sort(dropped.begin(), dropped.end(), [](auto& a, auto& b) { return a.second > b.second; });
  for (auto& [k, v] : dropped)
    if (v) out += cat("   ", k, std::string(k.size() < 30 ? 30 - k.size() : 1, ' '), num(v), " (", pct(v, r.docs_in), ")\n");
  for (auto& [k, v] : other)
    if (v && k.rfind("lang.", 0) != 0) out += cat("   ", k, std::string(k.size() < 30 ? 30 - k.size() : 1, ' '), num(v), "\n");
  if (!r.langs.empty()) {
    out += "   languages out:";
    for (auto& [k, v] : r.langs) out += cat(" ", k, " ", num(v), " (", pct(v, r.docs_out), ")");
    out += "\n";
  }
  // Sources: all of them where documents come in (ingest), else those the stage changed.
  bool all = r.stage == "ingest";
  size_t same = 0;
  std::string rows;
  for (auto& [k, v] : r.sources) {
    if (!all && v.docs_in == v.docs_out && v.bytes_in == v.bytes_out) {
      ++same;
      continue;
    }
    rows += cat("     ", k, std::string(k.size() < 36 ? 36 - k.size() : 1, ' '), num(v.docs_in), " -> ", num(v.docs_out),
                "  ", mbs(v.bytes_in), " -> ", mbs(v.bytes_out), "\n");
  }
  if (!rows.empty())
    out += cat("   per source (documents, bytes)", same ? cat(", ", same, " unchanged not shown") : "", ":\n", rows);
  if (!r.extra.empty()) {
    json e = json::parse(r.extra);
    if (e.contains("largest_clusters") && !e["largest_clusters"].empty()) {
      out += "   largest duplicate clusters:\n";
      int shown = 0;
      for (auto& c : e["largest_clusters"]) {
        if (shown++ >= 5) break;
        std::string kept = c.value("kept", "");
        for (char& ch : kept)
          if (ch == '\n') ch = ' ';
        if (kept.size() > 90) {
          size_t cut = 90;
          while (cut > 0 && (static_cast<unsigned char>(kept[cut]) & 0xC0) == 0x80) --cut;
          kept = kept.substr(0, cut) + "…";
        }
        out += cat("     ", c.value("size", 0), " x  ", kept, "\n");
      }
    }
    if (e.contains("groups")) {
      out += "   groups (weight, bytes in, factor):\n";
      for (auto& [k, v] : e["groups"].items())
        out += cat("     ", k, "  ", v.value("weight", 0.0), "  ", mbs(v.value("bytes_in", uint64_t(0))), "  x",
                   v.value("factor", 0.0), "\n");
    }
  }
  if (file_exists(dir + "/manifest.json")) {
    ShardManifest m = read_manifest(dir);
    out += cat("   tokens: train ", num(m.train.tokens), " in ", m.train.files.size(), " shards, val ", num(m.val.tokens),
               " in ", m.val.files.size(), "; vocabulary ", m.vocab_size, ", tokenizer xxh64 ", hex64(m.tokenizer_hash),
               "\n   tokens per source:\n");
    uint64_t all = m.train.tokens + m.val.tokens;
    for (auto& [k, v] : m.sources)
      out += cat("     ", k, std::string(k.size() < 36 ? 36 - k.size() : 1, ' '), num(v.tokens), " (", pct(v.tokens, all),
                 "), ", v.bytes && v.tokens ? cat(double(int(double(v.bytes) / double(v.tokens) * 100)) / 100) : "-",
                 " bytes/token\n");
  }
}

}  // namespace

std::string format_report(const std::vector<std::string>& dirs) {
  std::string out;
  for (const std::string& d : dirs) {
    if (file_exists(d + "/report.json")) {
      summarise(d, out);
      continue;
    }
    if (!is_directory(d)) fail(d, ": no such folder");
    std::vector<std::string> subs;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(d, ec))
      if (e.is_directory() && file_exists(e.path().string() + "/report.json")) subs.push_back(e.path().string());
    if (subs.empty()) fail(d, ": no report.json here or in its subfolders (not a todae data output)");
    std::sort(subs.begin(), subs.end());
    for (const auto& s : subs) summarise(s, out);
  }
  return out;
}

}  // namespace todae
