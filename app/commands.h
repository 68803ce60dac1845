// The todae CLI: each app/cmd_*.cpp file registers its command group here with a static
// CommandRegistrar, so adding a command never touches main.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace todae::cli {

using AddCommands = void (*)(CLI::App& app);

// `order` fixes where the group appears in --help (data 10, tokenizer 20, pretrain 30, ...).
struct CommandRegistrar {
  CommandRegistrar(int order, AddCommands add);
};

void add_registered_commands(CLI::App& app);

}  // namespace todae::cli
