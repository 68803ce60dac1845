// Shared pieces of the training loops. See run_util.h.
#include "train/run_util.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "base/base.h"

namespace todae {

namespace {
volatile sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600) return cat(t / 3600, "h", (t / 60) % 60 < 10 ? "0" : "", (t / 60) % 60, "m");
  if (t >= 60) return cat(t / 60, "m", t % 60 < 10 ? "0" : "", t % 60, "s");
  return cat(t, "s");
}

void publish_file(const std::string& src, const std::string& dst) {
  std::string tmp = cat(dst, ".tmp.", ::getpid());
  ::unlink(tmp.c_str());
  if (::link(src.c_str(), tmp.c_str()) == 0) {
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
      ::unlink(tmp.c_str());
      fail("cannot write ", dst, ": ", std::strerror(errno));
    }
    return;
  }
  write_file_atomic(dst, read_file(src));
}

nlohmann::json run_eval_hook(const EvalHook& hook, const EvalHookArgs& args) {
  try {
    nlohmann::json j = hook(args);
    if (j.is_object()) return j;
    if (!j.is_null()) std::fprintf(stderr, "warning: step %lld: the evaluation hook returned a %s, not an object\n",
                                   (long long)args.step, j.type_name());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: step %lld: evaluation failed: %s\n", (long long)args.step, e.what());
  }
  return nlohmann::json::object();
}

std::string eval_summary(const nlohmann::json& fields) {
  std::string out;
  auto num = [](const nlohmann::json& v) {
    if (!v.is_number()) return v.dump();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v.get<double>());
    return std::string(buf);
  };
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    const std::string& k = it.key();
    if (k.size() > 7 && k.compare(k.size() - 7, 7, "_stderr") == 0 && fields.contains(k.substr(0, k.size() - 7)))
      continue;  // shown with its value
    std::string name = k.rfind("eval/", 0) == 0 ? k.substr(5) : k;
    out += cat(out.empty() ? "" : "  ", name, " ", num(it.value()));
    if (auto e = fields.find(k + "_stderr"); e != fields.end()) out += "±" + num(*e);
  }
  return out;
}

}  // namespace todae
