// Atomic checkpoint folders. See train.h for the layout and the protocol.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "train/train.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace todae {

namespace {

constexpr const char* kFormat = "todae-checkpoint";
constexpr int kVersion = 1;

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open folder ", dir, ": ", std::strerror(errno));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  // EINVAL: the filesystem cannot sync folders (some FUSE and network ones); nothing more to do.
  if (rc != 0 && e != EINVAL) fail("cannot sync folder ", dir, ": ", std::strerror(e));
}

// "step-123" -> 123; anything else (step-1.tmp-x, step--1, step-01a) -> -1.
int64_t parse_step_name(std::string_view name) {
  if (!name.starts_with("step-")) return -1;
  std::string_view digits = name.substr(5);
  if (digits.empty() || digits.size() > 18) return -1;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size() || digits[0] == '+' || digits[0] == '-') return -1;
  return v;
}

bool is_tmp_name(std::string_view name) {
  return (name.starts_with("step-") && name.find(".tmp-") != std::string_view::npos) || name.starts_with("latest.tmp.");
}

// Renames a folder to a .tmp name first, so a crash halfway through deleting it leaves something
// load_latest ignores and the next save cleans up, never a partial step-N.
void remove_checkpoint_dir(const std::string& path) {
  std::string tmpl = cat(path, ".tmp-del-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemp(buf.data());  // reserve a unique name, then replace it by the folder
  std::string aside(buf.data());
  if (fd >= 0) {
    ::close(fd);
    ::unlink(aside.c_str());
    if (::rename(path.c_str(), aside.c_str()) != 0) aside = path;
  } else {
    aside = path;
  }
  std::error_code ec;
  fs::remove_all(aside, ec);
}

std::string json_text(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

}  // namespace

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return out;
  for (auto it = fs::directory_iterator(run_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    int64_t step = parse_step_name(it->path().filename().string());
    if (step >= 0 && it->is_directory(ec)) out.emplace_back(step, it->path().string());
  }
  if (ec) fail("cannot list ", run_dir, ": ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string save_checkpoint(const std::string& run_dir, const CheckpointWrite& ck, int keep_last) {
  if (ck.step < 0) fail("cannot save checkpoint: negative step ", ck.step);
  make_directories(run_dir);
  std::string final_dir = cat(run_dir, "/step-", ck.step);

  // Leftovers of saves that crashed: never loaded, removed here (rank 0 is the only writer).
  {
    std::error_code ec;
    for (auto it = fs::directory_iterator(run_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (is_tmp_name(it->path().filename().string())) {
        std::error_code ec2;
        fs::remove_all(it->path(), ec2);
      }
  }

  std::string tmpl = cat(final_dir, ".tmp-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    fail("cannot save checkpoint ", final_dir, ": cannot create a folder in ", run_dir, ": ", std::strerror(errno));
  std::string tmp(buf.data());

  try {
    SafetensorsWriteOptions wopt;
    wopt.atomic = false;  // the whole folder is renamed into place instead
    std::map<std::string, std::string> meta = {{"todae.step", std::to_string(ck.step)}};
    write_safetensors(tmp + "/model.safetensors", ck.model, meta, wopt);
    std::vector<TensorRef> opt_tensors = ck.optimizer;
    int64_t step_value = ck.step;
    opt_tensors.push_back({"step", DType::I64, {}, &step_value, sizeof step_value});
    write_safetensors(tmp + "/optimizer.safetensors", opt_tensors, meta, wopt);

    json files = json::object();
    auto put = [&](const std::string& name, const std::string& text) {
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        fail("invalid checkpoint file name '", name, "'");
      write_file_atomic(tmp + "/" + name, text);
      files[name] = {{"bytes", text.size()}, {"xxh64", xxh64_hex(xxh64(text.data(), text.size()))}};
    };
    put("config.json", json_text(ck.model_config));
    for (const auto& [name, text] : ck.extra_files) {
      if (name == "state.json" || name == "model.safetensors" || name == "optimizer.safetensors" ||
          name == "config.json")
        fail("extra checkpoint file '", name, "' would replace a checkpoint file");
      put(name, text);
    }
    for (const char* name : {"model.safetensors", "optimizer.safetensors"})
      files[name] = {{"bytes", file_size(tmp + "/" + name)}};

    json state = {{"format", kFormat},
                  {"version", kVersion},
                  {"step", ck.step},
                  {"rng", ck.rng},
                  {"data_position", ck.data_position},
                  {"train_config", ck.train_config},
                  {"metrics", ck.metrics},
                  {"files", files}};
    write_file_atomic(tmp + "/state.json", json_text(state));
    fsync_dir(tmp);

    // Commit point: the folder appears under its final name only once complete and synced.
    std::error_code ec;
    if (fs::exists(final_dir, ec)) remove_checkpoint_dir(final_dir);
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) fail("cannot rename ", tmp, ": ", std::strerror(errno));
    fsync_dir(run_dir);
  } catch (const Error& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fail("cannot save checkpoint ", final_dir, ": ", e.what());
  }

  write_file_atomic(run_dir + "/latest", cat("step-", ck.step, "\n"));

  if (keep_last > 0) {
    auto all = list_checkpoints(run_dir);
    size_t excess = all.size() > static_cast<size_t>(keep_last) ? all.size() - keep_last : 0;
    for (size_t i = 0; i < all.size() && excess > 0; ++i) {
      if (all[i].second == final_dir) continue;  // never the one just written
      remove_checkpoint_dir(all[i].second);
      --excess;
    }
  }
  return final_dir;
}

Checkpoint load_checkpoint(const std::string& dir) {
  Checkpoint ck;
  ck.dir = dir;
  if (!is_directory(dir)) fail("cannot load checkpoint ", dir, ": not a folder");
  std::string state_path = dir + "/state.json";
  if (!file_exists(state_path)) fail(state_path, ": missing: not a complete checkpoint");
  try {
    ck.state = json::parse(read_file(state_path));
  } catch (const json::exception& e) {
    fail(state_path, ": not valid JSON (truncated or corrupt): ", e.what());
  }
  if (!ck.state.is_object() || !ck.state.contains("format") || ck.state["format"] != kFormat)
    fail(state_path, ": not a todae checkpoint state (\"format\" is not \"", kFormat, "\")");
  if (!ck.state.contains("step") || !ck.state["step"].is_number_integer())
    fail(state_path, ": \"step\" is missing or not an integer");
  ck.step = ck.state["step"].get<int64_t>();
  if (!ck.state.contains("files") || !ck.state["files"].is_object())
    fail(state_path, ": \"files\" is missing or not an object");

  // Every file the state lists must be there at its recorded size (and hash, for small files):
  // catches truncation and a half-copied folder before anything is parsed.
  for (auto it = ck.state["files"].begin(); it != ck.state["files"].end(); ++it) {
    const std::string& name = it.key();
    if (name.find('/') != std::string::npos || name == "." || name == "..")
      fail(state_path, ": file name '", name, "' is not a plain file name");
    std::string p = dir + "/" + name;
    if (!file_exists(p)) fail(p, ": missing (listed in state.json)");
    const json& f = it.value();
    if (!f.is_object() || !f.contains("bytes") || !f["bytes"].is_number_unsigned())
      fail(state_path, ": files.", name, ".bytes is missing or not a size");
    uint64_t want = f["bytes"].get<uint64_t>(), got = file_size(p);
    if (want != got) fail(p, ": ", got, " bytes, state.json says ", want, ": truncated or replaced");
    if (f.contains("xxh64")) {
      std::string text = read_file(p);
      if (!f["xxh64"].is_string() || xxh64_hex(xxh64(text.data(), text.size())) != f["xxh64"].get<std::string>())
        fail(p, ": xxh64 checksum differs from state.json: corrupt");
    }
  }
  for (const char* name : {"model.safetensors", "optimizer.safetensors", "config.json"})
    if (!ck.state["files"].contains(name)) fail(state_path, ": files has no entry for ", name);

  ck.model = open_safetensors(dir + "/model.safetensors");
  ck.optimizer = open_safetensors(dir + "/optimizer.safetensors");
  int64_t opt_step = -1;
  ck.optimizer->read_raw("step", DType::I64, &opt_step, sizeof opt_step);
  if (opt_step != ck.step) fail(dir, "/optimizer.safetensors: step is ", opt_step, " but state.json says ", ck.step);
  std::string cfg_path = dir + "/config.json";
  try {
    ck.model_config = json::parse(read_file(cfg_path));
  } catch (const json::exception& e) {
    fail(cfg_path, ": not valid JSON: ", e.what());
  }
  return ck;
}

std::optional<Checkpoint> load_latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  // The highest complete step-N wins, even over a stale `latest`: a crash between the folder's
  // rename (the commit) and the pointer update leaves the pointer one checkpoint behind.
  return load_checkpoint(all.back().second);
}

std::vector<TensorRef> adamw_state_tensors(std::span<const ParamView> views, const float* m, const float* v) {
  std::vector<TensorRef> out;
  for (const auto& view : views) {
    out.push_back(f32_tensor("exp_avg." + view.name, view.shape, m + view.offset));
    out.push_back(f32_tensor("exp_avg_sq." + view.name, view.shape, v + view.offset));
  }
  return out;
}

std::vector<TensorRef> param_tensors(std::span<const ParamView> views, const float* params) {
  std::vector<TensorRef> out;
  for (const auto& view : views) out.push_back(f32_tensor(view.name, view.shape, params + view.offset));
  return out;
}

static std::span<float> view_span(std::span<float> buf, const ParamView& v, const char* what) {
  if (v.offset + v.numel() > buf.size())
    fail("parameter view '", v.name, "' runs past the end of the ", what, " buffer");
  return buf.subspan(v.offset, v.numel());
}

void read_params(const SafetensorsFile& model, std::span<const ParamView> views, std::span<float> params) {
  for (const auto& v : views) {
    const TensorInfo& t = model.get(v.name);
    if (t.dtype != DType::F32) fail(model.path, ": tensor '", v.name, "' is ", dtype_name(t.dtype), ", expected F32");
    model.read_f32(v.name, view_span(params, v, "parameter"), v.shape);
  }
}

void read_adamw_state(const SafetensorsFile& optimizer, std::span<const ParamView> views, std::span<float> m,
                      std::span<float> v, int64_t* step) {
  for (const auto& view : views) {
    std::string mn = "exp_avg." + view.name, vn = "exp_avg_sq." + view.name;
    for (const std::string* n : {&mn, &vn}) {
      const TensorInfo& t = optimizer.get(*n);
      if (t.dtype != DType::F32) fail(optimizer.path, ": tensor '", *n, "' is ", dtype_name(t.dtype), ", expected F32");
    }
    optimizer.read_f32(mn, view_span(m, view, "exp_avg"), view.shape);
    optimizer.read_f32(vn, view_span(v, view, "exp_avg_sq"), view.shape);
  }
  if (step) optimizer.read_raw("step", DType::I64, step, sizeof *step);
}

}  // namespace todae
