// todae — one CLI from raw text to a working model. This file only parses flags and reports errors;
// the work is in the library (src/).
#include <cstdio>
#include <new>

#include "app/commands.h"
#include "base/base.h"

int main(int argc, char** argv) {
  CLI::App app{"todae (토대) — a Korean-first foundation-model stack: data, tokenizer, training, inference"};
  app.set_version_flag("--version", "todae 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  todae::cli::add_tokenizer_commands(app);
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
