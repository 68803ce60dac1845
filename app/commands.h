// The todae CLI: each command group registers its subcommands on the app.
#pragma once

#include <CLI/CLI.hpp>

namespace todae::cli {
void add_tokenizer_commands(CLI::App& app);
}
