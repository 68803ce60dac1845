// Stage reports and the runner every map stage (ingest, clean, filter, pii) shares.
#include <algorithm>
#include <cmath>
#include <optional>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

using data::JsonIn;
using data::ojson;

void StageReport::merge(const StageReport& o) {
  docs_in += o.docs_in;
  docs_out += o.docs_out;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  for (auto& [k, v] : o.counts) counts[k] += v;
  for (auto& [k, v] : o.langs) langs[k] += v;
  for (auto& [k, v] : o.sources) {
    SourceStats& s = sources[k];
    s.docs_in += v.docs_in;
    s.docs_out += v.docs_out;
    s.bytes_in += v.bytes_in;
    s.bytes_out += v.bytes_out;
  }
}

std::string report_to_json(const StageReport& r) {
  ojson j;
  j["stage"] = r.stage;
  j["docs_in"] = r.docs_in;
  j["docs_out"] = r.docs_out;
  j["bytes_in"] = r.bytes_in;
  j["bytes_out"] = r.bytes_out;
  j["seconds"] = std::round(r.seconds * 1000) / 1000;
  j["mb_per_s"] = r.seconds > 0 ? std::round(r.bytes_in / 1e6 / r.seconds * 10) / 10 : 0.0;
  j["counts"] = ojson::object();
  for (auto& [k, v] : r.counts) j["counts"][k] = v;
  j["langs"] = ojson::object();
  for (auto& [k, v] : r.langs) j["langs"][k] = v;
  j["sources"] = ojson::object();
  for (auto& [k, v] : r.sources)
    j["sources"][k] = {{"docs_in", v.docs_in}, {"docs_out", v.docs_out}, {"bytes_in", v.bytes_in}, {"bytes_out", v.bytes_out}};
  j["inputs"] = r.inputs;
  j["outputs"] = r.outputs;
  j["options"] = r.options.empty() ? ojson::object() : ojson::parse(r.options);
  if (!r.extra.empty()) j["extra"] = ojson::parse(r.extra);
  j["command"] = r.command;
  j["input_signature"] = r.input_signature;
  j["created"] = data::now_iso8601();
  return j.dump(2) + "\n";
}

StageReport parse_report(std::string_view text, const std::string& name) {
  data::json j = data::parse_json_text(text, name);
  JsonIn in{j, name, ""};
  in.object();
  StageReport r;
  r.stage = in.at("stage").str();
  r.docs_in = in.at("docs_in").u64();
  r.docs_out = in.at("docs_out").u64();
  r.bytes_in = in.at("bytes_in").u64();
  r.bytes_out = in.at("bytes_out").u64();
  r.seconds = in.at("seconds").num();
  if (in.has("counts")) {
    JsonIn c = in.at("counts");
    c.object();
    for (auto& [k, v] : c.j.items()) r.counts[k] = JsonIn{v, name, c.sub(k)}.u64();
  }
  if (in.has("langs")) {
    JsonIn c = in.at("langs");
    c.object();
    for (auto& [k, v] : c.j.items()) r.langs[k] = JsonIn{v, name, c.sub(k)}.u64();
  }
  if (in.has("sources")) {
    JsonIn c = in.at("sources");
    c.object();
    for (auto& [k, v] : c.j.items()) {
      JsonIn s{v, name, c.sub(k)};
      SourceStats& ss = r.sources[k];
      ss.docs_in = s.at("docs_in").u64();
      ss.docs_out = s.at("docs_out").u64();
      ss.bytes_in = s.at("bytes_in").u64();
      ss.bytes_out = s.at("bytes_out").u64();
    }
  }
  r.inputs = in.at("inputs").strings();
  r.outputs = in.at("outputs").strings();
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    const std::string& o = r.outputs[i];
    if (o.empty() || o.find('/') != std::string::npos || o == "." || o == "..")
      fail(name, ": outputs[", i, "]: '", o, "' is not a file name in the folder");
  }
  if (in.has("options")) r.options = in.at("options").j.dump();
  if (in.has("extra")) r.extra = in.at("extra").j.dump();
  if (in.has("command")) r.command = in.at("command").str();
  if (in.has("input_signature")) r.input_signature = in.at("input_signature").str();
  return r;
}

namespace data {

void chunk_pipeline(const std::vector<InputFile>& files, const InputOptions& in, int threads,
                    const std::function<bool(Chunk&)>& next, const std::function<void(ChunkDocs&)>& work,
                    const std::function<void(ChunkDocs&)>& done, const std::function<void()>& after_done) {
  uint64_t seq = 0;
  threads = resolve_threads(threads);
  ordered_pipeline<ChunkDocs>(
      threads, size_t(threads) * 2 + 2,
      [&](ChunkDocs& cd) {
        cd.seq = seq++;
        return next(cd.chunk);
      },
      [&](ChunkDocs& cd) {
        split_docs(cd.chunk, files[cd.chunk.file], in, &cd.docs, &cd.rep, &cd.warnings);
        cd.chunk.data.clear();
        cd.chunk.data.shrink_to_fit();
        work(cd);
      },
      [&](ChunkDocs& cd) {
        for (const auto& w : cd.chunk.warnings) print_warning(w);
        for (const auto& w : cd.warnings) print_warning(w);
        done(cd);
        if (after_done) after_done();
      });
}

void for_each_chunk(const std::vector<InputFile>& files, const InputOptions& in, int threads, bool progress,
                    const std::string& label, const std::function<void(ChunkDocs&)>& work,
                    const std::function<void(ChunkDocs&)>& done) {
  uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  std::optional<Progress> bar;
  if (progress) bar.emplace(label, total);
  ChunkReader reader(files, in);
  uint64_t shown = 0;
  chunk_pipeline(
      files, in, threads, [&](Chunk& c) { return reader.next(c); }, work, done,
      [&] {
        if (!progress) return;
        uint64_t now = reader.bytes_read();
        bar->add(now - shown);
        shown = now;
      });
  if (progress) {
    bar->add(reader.bytes_read() - shown);
    bar->finish();
  }
}

static void count_out(ChunkDocs& cd) {
  for (const Doc& d : cd.docs) {
    cd.rep.docs_out += 1;
    cd.rep.bytes_out += d.text.size();
    SourceStats& s = cd.rep.sources[d.source];
    s.docs_out += 1;
    s.bytes_out += d.text.size();
    if (!d.lang.empty()) cd.rep.langs[d.lang] += 1;
  }
}

StageReport run_map_stage(const std::string& stage, const InputOptions& in, const CommonOptions& co,
                          const std::string& options, const DocMap& map) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<InputFile> files = resolve_inputs(in);
  prepare_output_dir_ranked(co.output, files, in);
  OutputSink writer(co);
  StageReport total;
  total.stage = stage;
  for_each_chunk_ranked(
      files, in, co.threads, co.progress, stage,
      [&](ChunkDocs& cd) {
        map(cd.docs, cd.rep);
        count_out(cd);
        for (const Doc& d : cd.docs) append_doc_jsonl(cd.out, d);
        cd.docs.clear();
      },
      [&](ChunkDocs& cd) {
        writer.write(cd.out);
        total.merge(cd.rep);
      });
  total.outputs = writer.finish();
  reduce_report(total);
  return commit_stage(total, files, options, co, t0);
}

StageReport& commit_stage(StageReport& total, const std::vector<InputFile>& files, std::string options,
                          const CommonOptions& co, std::chrono::steady_clock::time_point t0) {
  for (const auto& f : files) total.inputs.push_back(f.path);
  total.options = std::move(options);
  total.command = co.command;
  total.input_signature = input_signature(files);
  total.seconds = seconds_since(t0);
  if (!distributed()) {
    commit_outputs(co.output, total.outputs, "report.json", report_to_json(total));
    return total;
  }
  // Ranks: rank 0 holds the reduced report and the parts; it commits, and every rank returns the
  // committed report (the broadcast also keeps the others from going on before the commit).
  std::string json;
  if (lead()) {
    json = report_to_json(total);
    commit_outputs(co.output, total.outputs, "report.json", json);
  }
  broadcast(json);
  if (!lead()) {
    StageReport g = parse_report(json, co.output + "/report.json");
    g.options = total.options;
    total = std::move(g);
  }
  return total;
}

std::string options_json(const InputOptions& o) {
  ojson j;
  j["format"] = o.format;
  j["jsonl_field"] = o.jsonl_field;
  j["invalid_utf8"] = o.invalid_utf8;
  j["strict"] = o.strict;
  return j.dump();
}

std::string with_input(const InputOptions& in, const std::string& stage_opts) {
  ojson j = ojson::parse(stage_opts);
  j["input"] = ojson::parse(options_json(in));
  return j.dump();
}

}  // namespace data

void read_documents(const InputOptions& in, const std::function<void(Doc&)>& fn) {
  std::vector<data::InputFile> files = data::resolve_inputs(in);
  data::ChunkReader reader(files, in);
  data::Chunk c;
  while (reader.next(c)) {
    for (const auto& w : c.warnings) data::print_warning(w);
    std::vector<Doc> docs;
    StageReport rep;
    std::vector<std::string> warnings;
    data::split_docs(c, files[c.file], in, &docs, &rep, &warnings);
    for (const auto& w : warnings) data::print_warning(w);
    for (Doc& d : docs) fn(d);
    c = data::Chunk();
  }
}

StageReport run_ingest(const InputOptions& in, const CommonOptions& co) {
  return data::run_map_stage("ingest", in, co, data::with_input(in, "{}"), [](std::vector<Doc>&, StageReport&) {});
}

}  // namespace todae
