// mix: re-weights groups of documents (by source or language) to target shares of the output
// bytes, by deterministic down-sampling (keep with probability f) and up-sampling (floor(f) copies
// plus one with probability frac(f)); the draw hashes the text, so it does not depend on threads.
#include <algorithm>
#include <cmath>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

namespace {

std::string group_of(const Doc& d, const MixOptions& o) {
  if (o.by == "lang") return d.lang.empty() ? "unknown" : d.lang;
  return d.source;
}

// Index of the weight whose pattern matches the group: an exact name first, else the longest
// prefix pattern ("ko_*"); -1 if none. Independent of the order the weights were given in.
int weight_index(const std::string& g, const MixOptions& o) {
  int best = -1;
  size_t best_len = 0;
  for (size_t i = 0; i < o.weights.size(); ++i) {
    const std::string& p = o.weights[i].first;
    if (p == g) return int(i);
    if (!p.empty() && p.back() == '*' && g.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0 &&
        (best < 0 || p.size() > best_len)) {
      best = int(i);
      best_len = p.size();
    }
  }
  return best;
}

}  // namespace

std::string data::options_json(const MixOptions& o) {
  ojson j;
  j["by"] = o.by;
  j["weights"] = ojson::object();
  for (auto& [k, v] : o.weights) j["weights"][k] = v;
  j["others"] = o.others;
  j["total_bytes"] = o.total_bytes;
  j["max_repeat"] = o.max_repeat;
  j["seed"] = o.seed;
  return j.dump();
}

StageReport run_mix(const InputOptions& in, const MixOptions& opt, const CommonOptions& co) {
  using namespace data;
  auto t0 = std::chrono::steady_clock::now();
  if (opt.by != "source" && opt.by != "lang") fail("mix: --by must be source or lang, not '", opt.by, "'");
  if (opt.others != "drop" && opt.others != "keep") fail("mix: --others must be drop or keep, not '", opt.others, "'");
  if (opt.weights.empty()) fail("mix: no weights (give --weight GROUP=W, e.g. --weight 'ko_*=0.7' --weight 'en_*=0.3')");
  double wsum = 0;
  for (auto& [k, w] : opt.weights) {
    if (!(w >= 0) || !std::isfinite(w)) fail("mix: weight of '", k, "' must be a non-negative number");
    wsum += w;
  }
  if (wsum <= 0) fail("mix: the weights sum to 0");
  if (!(opt.max_repeat >= 1)) fail("mix: max_repeat must be at least 1");
  std::vector<InputFile> files = resolve_inputs(in);
  prepare_output_dir_ranked(co.output, files, in);

  // Pass 1: bytes per group.
  std::map<std::string, std::pair<uint64_t, uint64_t>> groups;  // group -> (documents, bytes)
  StageReport total;
  total.stage = "mix";
  for_each_chunk_ranked(
      files, in, co.threads, co.progress, "mix: counting",
      [&](ChunkDocs& cd) {
        for (const Doc& d : cd.docs) {
          cd.notes.push_back(group_of(d, opt));
          cd.aux.push_back(d.text.size());
        }
        cd.docs.clear();
      },
      [&](ChunkDocs& cd) {
        for (size_t i = 0; i < cd.notes.size(); ++i) {
          auto& g = groups[cd.notes[i]];
          g.first += 1;
          g.second += cd.aux[i];
        }
        total.merge(cd.rep);
      });
  if (distributed()) {  // the group sizes of all ranks, on every rank
    ojson mine = ojson::object();
    for (auto& [g, c] : groups) mine[g] = {c.first, c.second};
    std::vector<std::string> all = gather(mine.dump());
    std::string sum;
    if (lead()) {
      groups.clear();
      for (const std::string& a : all) {
        ojson j = ojson::parse(a);
        for (auto& [g, c] : j.items()) {
          auto& t = groups[g];
          t.first += c[0].get<uint64_t>();
          t.second += c[1].get<uint64_t>();
        }
      }
      ojson j = ojson::object();
      for (auto& [g, c] : groups) j[g] = {c.first, c.second};
      sum = j.dump();
    }
    broadcast(sum);
    groups.clear();
    ojson j = ojson::parse(sum);
    for (auto& [g, c] : j.items()) groups[g] = {c[0].get<uint64_t>(), c[1].get<uint64_t>()};
  }

  // Factors: each weighted pattern's share of the weighted total; groups under one pattern share
  // its factor in proportion to their size.
  std::vector<uint64_t> avail(opt.weights.size(), 0);
  for (auto& [g, c] : groups) {
    int w = weight_index(g, opt);
    if (w >= 0) avail[size_t(w)] += c.second;
  }
  uint64_t weighted_total = 0;
  for (uint64_t a : avail) weighted_total += a;
  if (weighted_total == 0 && opt.others == "drop") {
    std::string names;
    size_t shown = 0;
    for (auto& [g, c] : groups)
      if (shown++ < 12) names += cat(names.empty() ? "" : ", ", g);
    if (groups.size() > 12) names += ", ...";
    fail("mix: no documents match any weight (the ", opt.by, " groups are: ", names, ")");
  }
  double target_total = opt.total_bytes ? double(opt.total_bytes) : double(weighted_total);
  std::vector<double> factor(opt.weights.size(), 0);
  ojson extra;
  extra["groups"] = ojson::object();
  for (size_t i = 0; i < opt.weights.size(); ++i) {
    double want = opt.weights[i].second / wsum * target_total;
    if (avail[i] == 0) {
      if (opt.weights[i].second > 0 && lead())
        print_warning(cat("mix: no documents match '", opt.weights[i].first, "' (groups are ", opt.by, " names)"));
      continue;
    }
    factor[i] = want / double(avail[i]);
    if (factor[i] > opt.max_repeat) {
      if (lead()) print_warning(cat("mix: '", opt.weights[i].first, "' would need ", factor[i], " repeats; capped at ", opt.max_repeat,
                        " (its share will be lower)"));
      factor[i] = opt.max_repeat;
    }
    extra["groups"][opt.weights[i].first] = {{"weight", opt.weights[i].second}, {"bytes_in", avail[i]}, {"factor", factor[i]}};
  }
  auto factor_of = [&](const std::string& g) {
    int w = weight_index(g, opt);
    return w >= 0 ? factor[size_t(w)] : opt.others == "keep" ? 1.0 : 0.0;
  };

  // Pass 2: sample and write.
  OutputSink writer(co);
  std::map<std::string, uint64_t> out_bytes;
  uint64_t seed = mix64(opt.seed ^ 0x313a);
  for_each_chunk_ranked(
      files, in, co.threads, co.progress, "mix: writing",
      [&](ChunkDocs& cd) {
        for (const Doc& d : cd.docs) {
          std::string g = group_of(d, opt);
          double f = factor_of(g);
          double u = unit_interval(mix64(xxh64(d.text, seed)));
          uint64_t copies = uint64_t(std::floor(f)) + (u < f - std::floor(f) ? 1 : 0);
          for (uint64_t c = 0; c < copies; ++c) append_doc_jsonl(cd.out, d);
          cd.rep.docs_out += copies;
          cd.rep.bytes_out += copies * d.text.size();
          SourceStats& s = cd.rep.sources[d.source];
          s.docs_out += copies;
          s.bytes_out += copies * d.text.size();
          if (copies && !d.lang.empty()) cd.rep.langs[d.lang] += copies;
          if (copies > 1) cd.rep.counts["repeated_docs"] += 1;
          if (copies == 0) cd.rep.counts["dropped.sampled_out"] += 1;
          cd.notes.push_back(g);
          cd.aux.push_back(copies * d.text.size());
        }
      },
      [&](ChunkDocs& cd) {
        writer.write(cd.out);
        total.docs_out += cd.rep.docs_out;
        total.bytes_out += cd.rep.bytes_out;
        for (const char* k : {"repeated_docs", "dropped.sampled_out"}) total.counts[k] += cd.rep.counts[k];
        for (auto& [k, v] : cd.rep.langs) total.langs[k] += v;
        for (auto& [k, v] : cd.rep.sources) {
          total.sources[k].docs_out += v.docs_out;
          total.sources[k].bytes_out += v.bytes_out;
        }
        for (size_t i = 0; i < cd.notes.size(); ++i) out_bytes[cd.notes[i]] += cd.aux[i];
      });
  total.outputs = writer.finish();
  if (distributed()) {
    ojson mine = ojson::object();
    for (auto& [g, b] : out_bytes) mine[g] = b;
    std::vector<std::string> all = gather(mine.dump());
    for (size_t r = 1; r < all.size(); ++r) {
      ojson j = ojson::parse(all[r]);
      for (auto& [g, b] : j.items()) out_bytes[g] += b.get<uint64_t>();
    }
    reduce_report(total);
  }
  extra["bytes_out_per_group"] = ojson::object();
  for (auto& [g, b] : out_bytes) extra["bytes_out_per_group"][g] = b;
  total.extra = extra.dump();
  return commit_stage(total, files, with_input(in, options_json(opt)), co, t0);
}

}  // namespace todae
