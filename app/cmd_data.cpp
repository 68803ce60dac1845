// `todae data ...`: ingest, clean, filter, pii, dedup, mix, shard, run, report, verify.
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sstream>
#include <unistd.h>

#include "app/commands.h"
#include "base/base.h"
#include "data/data.h"

namespace todae::cli {

namespace {

// The command line as typed, recorded in reports and manifests.
std::string command_line() {
  std::string raw;
  int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) raw.append(buf, size_t(n));
    ::close(fd);
  }
  std::string out;
  size_t start = 0;
  for (size_t i = 0; i <= raw.size(); ++i) {
    if (i < raw.size() && raw[i] != '\0') continue;
    if (i == start && i == raw.size()) break;
    std::string arg = raw.substr(start, i - start);
    if (start == 0) {
      auto slash = arg.find_last_of('/');
      if (slash != std::string::npos) arg = arg.substr(slash + 1);
    }
    if (!out.empty()) out.push_back(' ');
    if (arg.find_first_of(" \t\"'$\\") != std::string::npos || arg.empty())
      out += "'" + arg + "'";
    else
      out += arg;
    start = i + 1;
  }
  return out;
}

struct Common {
  InputOptions in;
  CommonOptions co;
  bool quiet = false;
};

void add_common(CLI::App* c, Common& a, bool output = true) {
  c->add_option("--input", a.in.inputs, "Input files or folders (text, JSONL, .gz/.zst; a stage's output folder)")
      ->required();
  if (output) c->add_option("--output", a.co.output, "Output folder (new, or an earlier output of this stage)")->required();
  c->add_option("--format", a.in.format,
                "auto (JSONL by extension, else text), text (blank line between documents), lines (one per line), "
                "file (one per file), jsonl")
      ->capture_default_str();
  c->add_option("--jsonl-field", a.in.jsonl_field, "Field holding the text in JSONL records")->capture_default_str();
  c->add_option("--invalid-utf8", a.in.invalid_utf8, "repair (U+FFFD) or drop documents with invalid UTF-8")
      ->capture_default_str();
  c->add_flag("--strict", a.in.strict, "Fail on malformed JSONL lines and corrupt compressed input instead of skipping");
  c->add_option("--threads", a.co.threads, "Threads (default: all cores)");
  c->add_flag("--quiet", a.quiet, "No progress bars");
  c->add_flag("--compress", a.co.compress, "Write zstd-compressed parts (part-*.jsonl.zst)");
}

void prepare(Common& a) {
  // N copies of one stage would write the same folder: under mpirun the stages run as ranks of
  // `todae data run` only.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* n = std::getenv(v); n && std::atoi(n) > 1)
      fail("started by mpirun with ", n, " ranks: run the stages as ranks with `todae data run --recipe FILE` "
           "(single-stage commands run as one process)");
  if (a.quiet) set_progress_enabled(false);
  a.co.progress = !a.quiet;
  a.co.command = command_line();
}

std::string mb(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  return buf;
}

void summary(const StageReport& r) {
  std::fprintf(stderr, "%s: %llu -> %llu documents, %s -> %s in %.2f s (%.1f MB/s)\n", r.stage.c_str(),
               (unsigned long long)r.docs_in, (unsigned long long)r.docs_out, mb(r.bytes_in).c_str(),
               mb(r.bytes_out).c_str(), r.seconds, r.seconds > 0 ? r.bytes_in / 1e6 / r.seconds : 0.0);
  for (auto& [k, v] : r.counts)
    if (v) std::fprintf(stderr, "  %-28s %llu\n", k.c_str(), (unsigned long long)v);
}

struct ShardArgs : Common {
  ShardOptions opt;
  bool no_eos = false, no_nfc = false;
};

void run_shard_cmd(ShardArgs& a) {
  prepare(a);
  a.opt.add_eos = !a.no_eos;
  a.opt.nfc = !a.no_nfc;
  StageReport r = run_shard(a.in, a.opt, a.co);
  ShardManifest m = read_manifest(a.co.output);
  std::fprintf(stderr,
               "shard: %llu documents, %llu tokens (train %llu in %zu shards, val %llu in %zu), %s in %.2f s "
               "(%.1f MB/s)\nwrote %s/manifest.json\n",
               (unsigned long long)(m.train.documents + m.val.documents),
               (unsigned long long)(m.train.tokens + m.val.tokens), (unsigned long long)m.train.tokens,
               m.train.files.size(), (unsigned long long)m.val.tokens, m.val.files.size(), mb(r.bytes_in).c_str(),
               r.seconds, r.seconds > 0 ? r.bytes_in / 1e6 / r.seconds : 0.0, a.co.output.c_str());
  for (auto& [k, v] : r.counts)
    if (v && k.find('.') != std::string::npos && k.rfind("tokens.", 0) != 0 && k.rfind("docs.", 0) != 0)
      std::fprintf(stderr, "  %-28s %llu\n", k.c_str(), (unsigned long long)v);
}

template <typename T>
struct StageArgs : Common {
  T opt;
  std::vector<std::string> sets;
  bool no_a = false, no_b = false;
};

void add_set(CLI::App* c, std::vector<std::string>& sets, const std::string& stage) {
  c->add_option("--set", sets,
                "KEY=VALUE: any " + stage + " option by its recipe name (see report.json \"options\"), e.g. max_digit_ratio=0.2");
}

template <typename T>
void apply_sets(T& opt, const std::vector<std::string>& sets) {
  for (const std::string& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) fail("--set '", s, "': expected KEY=VALUE");
    set_option(opt, s.substr(0, eq), s.substr(eq + 1));
  }
}

std::string rules_list() {
  std::string s;
  for (const auto& r : filter_rule_names()) s += (s.empty() ? "" : ", ") + r;
  return s;
}

struct VerifyArgs {
  std::string dir;
  bool header_only = false;
};

}  // namespace

static void add_data_commands(CLI::App& app) {
  auto* grp = app.add_subcommand("data", "Data pipeline: ingest, clean, filter, pii, dedup, mix, shard (token shards for pretraining)");
  grp->require_subcommand(1);

  static ShardArgs shard;
  auto* s = grp->add_subcommand("shard", "Tokenize documents into binary token shards with a train/val split and manifest.json");
  add_common(s, shard);
  s->add_option("--tokenizer", shard.opt.tokenizer, "Folder with tokenizer.json, a tokenizer.json or a .tiktoken file")
      ->required();
  s->add_option("--val-fraction", shard.opt.val_fraction, "Fraction of documents for validation (by document hash)")
      ->capture_default_str();
  s->add_option("--seed", shard.opt.seed, "Seed of the train/val split")->capture_default_str();
  s->add_option("--shard-tokens", shard.opt.shard_tokens, "Close a shard at the first document end past this many tokens")
      ->capture_default_str();
  s->add_flag("--add-bos", shard.opt.add_bos, "Put the bos token before every document");
  s->add_flag("--no-eos", shard.no_eos, "No eos token after documents (needs --add-bos)");
  s->add_option("--bos-token", shard.opt.bos_token, "bos token text (default: tokenizer_config.json, else <|bos|>, <s>, ...)");
  s->add_option("--eos-token", shard.opt.eos_token,
                "eos token text (default: tokenizer_config.json, else <|eos|>, <|endoftext|>, </s>, ...)");
  s->add_flag("--no-nfc", shard.no_nfc, "Do not NFC-normalise documents before encoding");
  s->add_flag("--split-special", shard.opt.split_special,
              "Turn special-token text inside documents into special tokens (default: plain text)");
  s->callback([] { run_shard_cmd(shard); });

  static VerifyArgs verify;
  auto* v = grp->add_subcommand("verify", "Check a shard folder: manifest, headers, sizes and token checksums");
  v->add_option("DIR", verify.dir, "Shard folder")->required();
  v->add_flag("--header-only", verify.header_only, "Skip the token checksums");
  v->callback([] {
    verify_shards(verify.dir, !verify.header_only);
    ShardManifest m = read_manifest(verify.dir);
    std::printf("%s: ok (%zu train + %zu val shards, %llu + %llu tokens, tokenizer xxh64 %s)\n", verify.dir.c_str(),
                m.train.files.size(), m.val.files.size(), (unsigned long long)m.train.tokens,
                (unsigned long long)m.val.tokens, hex64(m.tokenizer_hash).c_str());
  });

  static Common ingest;
  auto* in = grp->add_subcommand("ingest", "Read text / JSONL / .gz / .zst into JSONL documents, validating UTF-8");
  add_common(in, ingest);
  in->callback([] {
    prepare(ingest);
    summary(run_ingest(ingest.in, ingest.co));
  });

  static StageArgs<CleanOptions> clean;
  auto* c = grp->add_subcommand("clean", "NFC, control characters, Unicode spaces, line ends, blank lines, boilerplate lines");
  add_common(c, clean);
  c->add_option("--boilerplate-min-docs", clean.opt.boilerplate_min_docs,
                "Remove lines found in at least this many documents (0: off)")
      ->capture_default_str();
  c->add_option("--boilerplate-min-chars", clean.opt.boilerplate_min_chars, "Only lines at least this long count as boilerplate")
      ->capture_default_str();
  c->add_flag("--collapse-spaces", clean.opt.collapse_spaces, "Runs of spaces and tabs inside lines become one space");
  c->add_flag("--no-nfc", clean.no_a, "Skip NFC normalisation");
  add_set(c, clean.sets, "clean");
  c->callback([] {
    if (clean.no_a) clean.opt.nfc = false;
    apply_sets(clean.opt, clean.sets);
    prepare(clean);
    summary(run_clean(clean.in, clean.opt, clean.co));
  });

  static StageArgs<FilterOptions> filter;
  auto* f = grp->add_subcommand("filter", "Language (Korean / English / other) and Gopher/C4-style quality rules");
  add_common(f, filter);
  f->add_option("--languages", filter.opt.languages, "Languages to keep: ko, en, other")->delimiter(',')->capture_default_str();
  f->add_option("--disable", filter.opt.disable, "Rules to switch off (comma-separated): " + rules_list())->delimiter(',');
  f->add_option("--min-chars", filter.opt.min_chars, "Drop documents shorter than this (characters)")->capture_default_str();
  add_set(f, filter.sets, "filter");
  f->callback([] {
    apply_sets(filter.opt, filter.sets);
    prepare(filter);
    summary(run_filter(filter.in, filter.opt, filter.co));
  });

  static StageArgs<PiiOptions> pii;
  auto* p = grp->add_subcommand("pii", "Replace e-mails, phone numbers, 주민등록번호, card numbers and IPs with [EMAIL], [PHONE], ...");
  add_common(p, pii);
  p->add_flag("--no-rrn-checksum", pii.no_a, "Accept resident registration numbers without a valid checksum (issued since 2020)");
  add_set(p, pii.sets, "pii");
  p->callback([] {
    if (pii.no_a) pii.opt.rrn_require_checksum = false;
    apply_sets(pii.opt, pii.sets);
    prepare(pii);
    summary(run_pii(pii.in, pii.opt, pii.co));
  });

  static StageArgs<DedupOptions> dedup;
  auto* d = grp->add_subcommand("dedup", "Remove exact and near duplicates (MinHash LSH over character n-grams)");
  add_common(d, dedup);
  d->add_option("--bands", dedup.opt.bands, "LSH bands")->capture_default_str();
  d->add_option("--rows", dedup.opt.rows, "MinHash values per band")->capture_default_str();
  d->add_option("--threshold", dedup.opt.threshold, "Estimated Jaccard similarity that makes a duplicate")->capture_default_str();
  d->add_option("--ngram", dedup.opt.ngram, "Characters per n-gram")->capture_default_str();
  d->add_flag("--no-exact", dedup.no_a, "Skip exact deduplication");
  d->add_flag("--no-near", dedup.no_b, "Skip near-duplicate detection");
  add_set(d, dedup.sets, "dedup");
  d->callback([] {
    if (dedup.no_a) dedup.opt.exact = false;
    if (dedup.no_b) dedup.opt.near = false;
    apply_sets(dedup.opt, dedup.sets);
    prepare(dedup);
    StageReport r = run_dedup(dedup.in, dedup.opt, dedup.co);
    summary(r);
  });

  static StageArgs<MixOptions> mix;
  static std::vector<std::string> weights;
  auto* m = grp->add_subcommand("mix", "Re-weight groups of documents to target shares (up/down-sampling)");
  add_common(m, mix);
  m->add_option("--weight", weights, "GROUP=WEIGHT, e.g. 'ko/*=0.7' 'en/*=0.3' (repeatable; '*' ends a prefix)")->required();
  m->add_option("--by", mix.opt.by, "Group by source or lang")->capture_default_str();
  m->add_option("--others", mix.opt.others, "Groups without a weight: drop or keep")->capture_default_str();
  m->add_option("--total-bytes", mix.opt.total_bytes, "Target output size (default: the weighted inputs' size)");
  m->add_option("--max-repeat", mix.opt.max_repeat, "Most copies of any group")->capture_default_str();
  m->add_option("--seed", mix.opt.seed, "Seed of the sampling")->capture_default_str();
  add_set(m, mix.sets, "mix");
  m->callback([] {
    for (const std::string& w : weights) {
      auto eq = w.rfind('=');
      if (eq == std::string::npos || eq == 0) fail("--weight '", w, "': expected GROUP=WEIGHT");
      char* end = nullptr;
      double v = std::strtod(w.c_str() + eq + 1, &end);
      if (end == w.c_str() + eq + 1 || *end) fail("--weight '", w, "': the weight is not a number");
      mix.opt.weights.push_back({w.substr(0, eq), v});
    }
    apply_sets(mix.opt, mix.sets);
    prepare(mix);
    summary(run_mix(mix.in, mix.opt, mix.co));
  });

  static std::string recipe;
  static int run_threads = 0;
  static bool run_quiet = false, run_check = false;
  auto* r = grp->add_subcommand("run", "Run the stages of a JSON recipe, each in OUTPUT/NN-stage (re-runs skip finished stages)");
  r->add_option("--recipe", recipe, "Recipe file (see docs/data.md)")->required();
  r->add_option("--threads", run_threads, "Threads (default: the recipe's, else all cores)");
  r->add_flag("--quiet", run_quiet, "No progress bars");
  r->add_flag("--check", run_check, "Only check the recipe");
  r->callback([] {
    if (run_check) {
      std::vector<std::string> stages = check_recipe(read_file(recipe), recipe);
      std::string s;
      for (auto& x : stages) s += (s.empty() ? "" : " -> ") + x;
      std::printf("%s: ok (%s)\n", recipe.c_str(), s.c_str());
      return;
    }
    // Under mpirun every rank runs the recipe on its share of the inputs; rank 0 writes the outputs.
    DataRanks d = data_mpi_init();
    if (run_quiet || d.rank > 0) set_progress_enabled(false);
    if (d.world > 1 && d.rank == 0) std::fprintf(stderr, "todae data run: %d ranks\n", d.world);
    try {
      run_recipe(recipe, run_threads, !run_quiet && d.rank == 0, command_line());
    } catch (const std::exception& e) {
      if (d.world > 1) data_mpi_abort(e.what());
      throw;
    }
    data_mpi_finalize();
  });

  static std::vector<std::string> report_dirs;
  auto* rep = grp->add_subcommand("report", "Summarise the reports of a stage or recipe folder");
  rep->add_option("DIR", report_dirs, "Stage or recipe output folders")->required();
  rep->callback([] {
    std::string s = format_report(report_dirs);
    std::fwrite(s.data(), 1, s.size(), stdout);
  });
}

static CommandRegistrar registrar(10, add_data_commands);

}  // namespace todae::cli
