#include "base/base.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unistd.h>

namespace todae {

static int g_progress = -1;  // -1: decide from isatty, 0 off, 1 on

void set_progress_enabled(bool enabled) { g_progress = enabled ? 1 : 0; }

static bool progress_enabled() {
  if (g_progress < 0) {
    const char* env = std::getenv("TODAE_PROGRESS");
    if (env) return std::atoi(env) != 0;
    return ::isatty(2);
  }
  return g_progress == 1;
}

struct Progress::State {
  std::atomic<uint64_t> done{0};
  std::mutex mu;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last{};
  bool finished = false;
  bool enabled = progress_enabled();
};

static std::string human(double v, const std::string& unit) {
  char buf[64];
  if (unit == "B") {
    const char* u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, ++i;
    std::snprintf(buf, sizeof buf, "%.1f %s", v, u[i]);
  } else {
    const char* u[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, ++i;
    std::snprintf(buf, sizeof buf, "%.1f%s %s", v, u[i], unit.c_str());
  }
  return buf;
}

static std::string duration(double s) {
  char buf[32];
  if (s < 0 || s > 1e7) return "--:--";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02d:%02d", t / 60, t % 60);
  return buf;
}

static void draw(Progress& p, bool final_line) {
  auto& s = *p.state;
  auto now = std::chrono::steady_clock::now();
  double el = std::chrono::duration<double>(now - s.start).count();
  uint64_t done = s.done.load();
  double rate = el > 0 ? done / el : 0;
  double frac = p.total ? std::min(1.0, double(done) / double(p.total)) : 0;
  double eta = rate > 0 && p.total ? (double(p.total) - double(done)) / rate : -1;
  int width = 24, fill = static_cast<int>(frac * width);
  std::string bar(fill, '#');
  bar.append(width - fill, '.');
  std::fprintf(stderr, "\r%s [%s] %3.0f%% %s/%s %s/s ETA %s elapsed %s%s", p.label.c_str(), bar.c_str(),
               frac * 100, human(done, p.unit).c_str(), human(p.total, p.unit).c_str(), human(rate, p.unit).c_str(),
               final_line ? "00:00" : duration(eta).c_str(), duration(el).c_str(), final_line ? "\n" : "\x1b[K");
  std::fflush(stderr);
}

Progress::Progress(std::string l, uint64_t t, std::string u)
    : label(std::move(l)), total(t), unit(std::move(u)), state(new State) {}

Progress::~Progress() {
  finish();
  delete state;
}

void Progress::add(uint64_t n) { set(state->done.fetch_add(n) + n); }

void Progress::set(uint64_t done) {
  if (!state->enabled) return;
  state->done.store(std::max<uint64_t>(done, state->done.load()));
  auto now = std::chrono::steady_clock::now();
  std::unique_lock lock(state->mu, std::try_to_lock);
  if (!lock.owns_lock() || state->finished) return;
  if (now - state->last < std::chrono::milliseconds(200)) return;
  state->last = now;
  draw(*this, false);
}

void Progress::finish() {
  std::lock_guard lock(state->mu);
  if (state->finished) return;
  state->finished = true;
  if (state->enabled) draw(*this, true);
}

}  // namespace todae
