// todae — one CLI from raw text to a working model. This file only parses flags and reports errors;
// the work is in the library (src/).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <new>

#include "app/commands.h"
#include "base/base.h"

namespace todae::cli {

static std::vector<std::pair<int, AddCommands>>& registry() {
  static std::vector<std::pair<int, AddCommands>> r;
  return r;
}

CommandRegistrar::CommandRegistrar(int order, AddCommands add) { registry().push_back({order, add}); }

void add_registered_commands(CLI::App& app) {
  auto r = registry();
  std::stable_sort(r.begin(), r.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, add] : r) add(app);
}

}  // namespace todae::cli

int main(int argc, char** argv) {
  // OpenBLAS (the pthreads build Debian ships) starts its worker threads when the library loads and
  // lets them spin on sched_yield for a while; todae never asks it for threads (its kernels run on
  // todae's own pool and call OpenBLAS single-threaded), so that spinning only steals CPU from the
  // real work. The variable is read before main() runs, so set it once and re-execute ourselves.
  if (!std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("TODAE_NO_REEXEC")) {
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    ::setenv("TODAE_NO_REEXEC", "1", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
  }
  CLI::App app{"todae (토대) — a Korean-first foundation-model stack: data, tokenizer, training, inference"};
  app.set_version_flag("--version", "todae 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  todae::cli::add_registered_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const todae::Error& e) {
    std::fprintf(stderr, "todae: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "todae: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "todae: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
