#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "formats/formats_test_util.h"
#include "train/train.h"

using namespace todae;
using json = nlohmann::json;
using todae::test::error_of;
using todae::test::TmpDir;
namespace fs = std::filesystem;

namespace {

// A tiny "model": flat params, grads, AdamW moments and a table of views, as src/model keeps them.
struct ToyRun {
  std::vector<ParamView> views = {{"model.embed_tokens.weight", 0, {50, 16}},
                                  {"model.layers.0.input_layernorm.weight", 800, {16}},
                                  {"model.layers.0.mlp.up_proj.weight", 816, {32, 16}},
                                  {"model.norm.weight", 1328, {16}}};
  size_t n = 1344;
  std::vector<float> p, m, v;
  AdamWOptimizer opt;
  std::mt19937_64 rng{42};
  int64_t data_pos = 0;
  LrSchedule sched{.max_lr = 1e-2f, .min_lr = 1e-3f, .warmup_steps = 2, .total_steps = 20};

  ToyRun() : p(n), m(n, 0.0f), v(n, 0.0f) {
    std::mt19937 init(1);
    std::normal_distribution<float> normal;
    for (float& x : p) x = 0.1f * normal(init);
    opt.spans = decay_spans(views, n);
  }
  // One step: "loss" gradients from the params, the data position and the RNG (like dropout noise).
  float step() {
    std::vector<float> g(n);
    std::normal_distribution<float> noise;
    for (size_t i = 0; i < n; ++i) g[i] = p[i] * 2.0f + 0.01f * float((data_pos + i) % 13) + 0.1f * noise(rng);
    data_pos += 7;
    opt.update(p, g, m, v, sched.at(opt.step), 1, 2);
    double loss = 0;
    for (float x : p) loss += double(x) * x;
    return float(loss);
  }
  CheckpointWrite checkpoint() const {
    CheckpointWrite ck;
    ck.step = opt.step;
    ck.model = param_tensors(views, p.data());
    ck.optimizer = adamw_state_tensors(views, m.data(), v.data());
    ck.model_config = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 16}, {"vocab_size", 50}};
    std::ostringstream rs;
    rs << rng;
    ck.rng = {{"mt19937_64", rs.str()}};
    ck.data_position = {{"offset", data_pos}, {"shard", "train-000.bin"}};
    ck.train_config = {{"lr", 1e-2}};
    ck.metrics = {{"tokens", data_pos * 100}};
    ck.extra_files = {{"tokenizer_config.json", "{}\n"}};
    return ck;
  }
  void restore(const Checkpoint& ck) {
    read_params(*ck.model, views, p);
    read_adamw_state(*ck.optimizer, views, m, v, &opt.step);
    std::istringstream rs(ck.state["rng"]["mt19937_64"].get<std::string>());
    rs >> rng;
    data_pos = ck.state["data_position"]["offset"];
  }
};

// Runs fn in a child process (so it may drop privileges or limit file sizes) and returns the
// todae::Error it threw, "OK" when it did not throw, or "CRASH".
std::string in_child(const std::function<void()>& fn) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg = "OK";
    try {
      fn();
    } catch (const Error& e) {
      msg = e.what();
    } catch (const std::exception& e) {
      msg = std::string("other exception: ") + e.what();
    }
    if (::write(fds[1], msg.data(), msg.size()) < 0) _exit(2);
    _exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t r;
  while ((r = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, r);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "CRASH";
  return out;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(Checkpoint, SaveAndLoadRoundTrip) {
  TmpDir run;
  ToyRun a;
  for (int i = 0; i < 3; ++i) a.step();
  std::string dir = save_checkpoint(run.path, a.checkpoint());
  EXPECT_EQ(dir, run / "step-3");
  EXPECT_EQ(read_file(run / "latest"), "step-3\n");
  for (const char* f :
       {"model.safetensors", "optimizer.safetensors", "state.json", "config.json", "tokenizer_config.json"})
    EXPECT_TRUE(file_exists(dir + "/" + f)) << f;

  auto ck = load_latest_checkpoint(run.path);
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->step, 3);
  EXPECT_EQ(ck->dir, dir);
  EXPECT_EQ(ck->model_config["hidden_size"], 16);
  EXPECT_EQ(ck->state["data_position"]["shard"], "train-000.bin");
  EXPECT_EQ(ck->state["metrics"]["tokens"], 2100);
  // Hugging Face names in the weights, nothing else.
  EXPECT_EQ(ck->model->tensors.size(), 4u);
  EXPECT_NE(ck->model->find("model.layers.0.mlp.up_proj.weight"), nullptr);
  ToyRun b;
  b.restore(*ck);
  EXPECT_EQ(b.p, a.p);
  EXPECT_EQ(b.m, a.m);
  EXPECT_EQ(b.v, a.v);
  EXPECT_EQ(b.opt.step, 3);
  EXPECT_EQ(b.rng, a.rng);

  // The weights load in PyTorch with a plain reader.
  std::string py = todae::test::torch_python(), out;
  if (!py.empty()) {
    std::string script = std::string(TODAE_SOURCE_DIR) + "/tests/formats/st_interop.py";
    ASSERT_EQ(todae::test::run_command(py + " " + script + " check " + dir + "/model.safetensors", &out), 0) << out;
    json j = json::parse(out);
    auto vals = j["tensors"]["model.norm.weight"]["values"].get<std::vector<double>>();
    ASSERT_EQ(vals.size(), 16u);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(vals[i], double(a.p[1328 + i]));
  }
  EXPECT_FALSE(load_latest_checkpoint(run / "nothing-here").has_value());
}

TEST(Checkpoint, ResumeIsBitExact) {
  ToyRun straight;
  std::vector<float> losses;
  for (int i = 0; i < 8; ++i) losses.push_back(straight.step());

  TmpDir run;
  {
    ToyRun first;
    for (int i = 0; i < 4; ++i) first.step();
    save_checkpoint(run.path, first.checkpoint());
    first.step();  // work after the checkpoint is lost with the "crash"
  }
  ToyRun resumed;
  resumed.restore(*load_latest_checkpoint(run.path));
  for (int i = 4; i < 8; ++i) EXPECT_EQ(resumed.step(), losses[i]) << i;  // the same bits
  EXPECT_EQ(resumed.p, straight.p);
  EXPECT_EQ(resumed.m, straight.m);
  EXPECT_EQ(resumed.v, straight.v);
}

TEST(Checkpoint, KeepLastNAndResave) {
  TmpDir run;
  ToyRun a;
  for (int i = 0; i < 5; ++i) {
    a.step();
    save_checkpoint(run.path, a.checkpoint(), 2);
  }
  auto all = list_checkpoints(run.path);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 4);
  EXPECT_EQ(all[1].first, 5);
  // Saving the same step again replaces it whole.
  a.p[0] = 123.0f;
  save_checkpoint(run.path, a.checkpoint(), 2);
  auto ck = load_latest_checkpoint(run.path);
  EXPECT_EQ(ck->step, 5);
  std::vector<float> p(a.n);
  read_params(*ck->model, a.views, p);
  EXPECT_EQ(p[0], 123.0f);
  // keep_last 0 keeps everything.
  a.step();
  save_checkpoint(run.path, a.checkpoint(), 0);
  EXPECT_EQ(list_checkpoints(run.path).size(), 3u);
  for (const auto& e : fs::directory_iterator(run.path))
    EXPECT_FALSE(contains(e.path().filename().string(), ".tmp")) << e.path();
}

TEST(Checkpoint, HalfWrittenSavesAreNeverPickedUp) {
  TmpDir run;
  ToyRun a;
  a.step();
  save_checkpoint(run.path, a.checkpoint());
  // A crash in the middle of saving step 9: a .tmp folder with a truncated model, and a crash
  // while deleting an old checkpoint.
  std::string crashed = run / "step-9.tmp-AbC123";
  fs::create_directories(crashed);
  std::string model = read_file(run / "step-1/model.safetensors");
  write_file_atomic(crashed + "/model.safetensors", model.substr(0, model.size() / 2));
  fs::create_directories(run / "step-0.tmp-del-xyz");
  fs::create_directories(run / "step-x");
  fs::create_directories(run / "step-07a");
  EXPECT_EQ(list_checkpoints(run.path).size(), 1u);
  auto ck = load_latest_checkpoint(run.path);
  EXPECT_EQ(ck->step, 1);

  // A crash between the rename (commit) and the `latest` update: the newer folder wins.
  a.step();
  save_checkpoint(run.path, a.checkpoint());
  write_file_atomic(run / "latest", "step-1\n");
  EXPECT_EQ(load_latest_checkpoint(run.path)->step, 2);
  // A stale pointer to a folder that is gone.
  write_file_atomic(run / "latest", "step-77\n");
  EXPECT_EQ(load_latest_checkpoint(run.path)->step, 2);
  // The next save cleans the leftovers.
  EXPECT_FALSE(fs::exists(crashed));
  EXPECT_FALSE(fs::exists(run / "step-0.tmp-del-xyz"));
}

TEST(Checkpoint, CorruptionIsAnErrorNamingTheFile) {
  TmpDir run;
  ToyRun a;
  a.step();
  std::string dir = save_checkpoint(run.path, a.checkpoint());
  auto backup = [&](const std::string& f) { return read_file(dir + "/" + f); };
  std::string model = backup("model.safetensors"), opt = backup("optimizer.safetensors"), state = backup("state.json"),
              config = backup("config.json");

  write_file_atomic(dir + "/model.safetensors", model.substr(0, model.size() - 100));
  std::string e = error_of([&] { load_latest_checkpoint(run.path); });
  EXPECT_TRUE(contains(e, dir + "/model.safetensors: ") && contains(e, "truncated")) << e;
  write_file_atomic(dir + "/model.safetensors", model);

  std::string flipped = opt;
  flipped[flipped.size() - 40] ^= 0x01;  // inside the data of some exp_avg_sq tensor
  write_file_atomic(dir + "/optimizer.safetensors", flipped);
  e = error_of([&] { load_latest_checkpoint(run.path); });
  EXPECT_TRUE(contains(e, dir + "/optimizer.safetensors: tensor '") && contains(e, "is corrupt")) << e;
  write_file_atomic(dir + "/optimizer.safetensors", opt);

  write_file_atomic(dir + "/config.json", config.substr(0, config.size() - 3) + "7}\n");
  e = error_of([&] { load_latest_checkpoint(run.path); });
  EXPECT_TRUE(contains(e, dir + "/config.json: ")) << e;
  write_file_atomic(dir + "/config.json", config);

  write_file_atomic(dir + "/state.json", state.substr(0, state.size() / 2));
  e = error_of([&] { load_latest_checkpoint(run.path); });
  EXPECT_TRUE(contains(e, dir + "/state.json: not valid JSON")) << e;
  ::unlink((dir + "/state.json").c_str());
  e = error_of([&] { load_latest_checkpoint(run.path); });
  EXPECT_TRUE(contains(e, dir + "/state.json: missing")) << e;
  write_file_atomic(dir + "/state.json", state);
  EXPECT_EQ(load_latest_checkpoint(run.path)->step, 1);

  // Loading into a model whose views differ names the tensor.
  ToyRun b;
  b.views[2].shape = {16, 32};
  auto ck = load_checkpoint(dir);
  e = error_of([&] { read_params(*ck.model, b.views, b.p); });
  EXPECT_TRUE(contains(e, "'model.layers.0.mlp.up_proj.weight' has shape [32, 16], expected [16, 32]")) << e;
  b.views[2].name = "model.layers.0.mlp.gate_proj.weight";
  e = error_of([&] { read_adamw_state(*ck.optimizer, b.views, b.m, b.v, nullptr); });
  EXPECT_TRUE(contains(e, "no tensor 'exp_avg.model.layers.0.mlp.gate_proj.weight'")) << e;
}

TEST(Checkpoint, UnwritablePathsGiveClearErrors) {
  TmpDir tmp;
  ToyRun a;
  a.step();
  // The run folder's parent is a file.
  write_file_atomic(tmp / "file", "x");
  std::string e = error_of([&] { save_checkpoint(tmp / "file/run", a.checkpoint()); });
  EXPECT_TRUE(contains(e, "cannot create directory " + tmp / "file/run")) << e;

  // A read-only run folder (root ignores permissions, so the child drops to nobody first).
  std::string ro = tmp / "ro";
  fs::create_directories(ro);
  ::chmod(tmp.path.c_str(), 0755);
  ::chmod(ro.c_str(), 0555);
  CheckpointWrite ck = a.checkpoint();
  e = in_child([&] {
    if (::geteuid() == 0 && ::setuid(65534) != 0) fail("setuid failed");
    save_checkpoint(ro, ck);
  });
  EXPECT_TRUE(contains(e, "cannot save checkpoint " + ro + "/step-1") && contains(e, "Permission denied")) << e;
  EXPECT_TRUE(list_checkpoints(ro).empty());
}

TEST(Checkpoint, DiskFullLeavesPreviousCheckpointsIntact) {
  ToyRun a;
  a.step();
  // File-size limit: writes past it fail with EFBIG, the way a full disk fails with ENOSPC.
  {
    TmpDir run;
    save_checkpoint(run.path, a.checkpoint());
    a.step();
    CheckpointWrite ck = a.checkpoint();
    std::string e = in_child([&] {
      std::signal(SIGXFSZ, SIG_IGN);
      rlimit lim{8 << 10, 8 << 10};
      ::setrlimit(RLIMIT_FSIZE, &lim);
      save_checkpoint(run.path, ck);
    });
    EXPECT_TRUE(contains(e, "cannot save checkpoint " + run.path + "/step-2: cannot write ") &&
                contains(e, "File too large"))
        << e;
    EXPECT_EQ(load_latest_checkpoint(run.path)->step, 1);
    EXPECT_EQ(list_checkpoints(run.path).size(), 1u);
    for (const auto& f : fs::directory_iterator(run.path)) EXPECT_FALSE(contains(f.path().string(), ".tmp-"));
  }
  // A real full disk: a 64 KiB tmpfs, where we may mount one (root in a container that allows it).
  TmpDir tmp;
  std::string mnt = tmp / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "); the file-size limit case ran";
  std::string e;
  {
    ToyRun small;
    small.views.resize(2);  // ~3 KB of weights: fits
    save_checkpoint(mnt, small.checkpoint());
    ToyRun big;
    big.views = {{"model.embed_tokens.weight", 0, {1344}}};
    for (int i = 0; i < 20; ++i) big.views.push_back({"w." + std::to_string(i), 0, {1344}});  // ~100 KB
    big.opt.step = 3;
    e = error_of([&] { save_checkpoint(mnt, big.checkpoint()); });
    std::string e2 = error_of([&] {
      auto ck = load_latest_checkpoint(mnt);
      if (!ck || ck->step != 0) fail("the step-0 checkpoint is gone");
    });
    EXPECT_EQ(e2, "");
    EXPECT_EQ(list_checkpoints(mnt).size(), 1u);
  }
  ::umount2(mnt.c_str(), MNT_DETACH);
  EXPECT_TRUE(contains(e, "cannot save checkpoint " + mnt + "/step-3: cannot write ") &&
              contains(e, "No space left on device"))
      << e;
}
