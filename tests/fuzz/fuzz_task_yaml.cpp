// Any bytes as an lm-eval task YAML (with the built-in definitions to include): a TaskConfig or a
// clean todae::Error, never a crash or another exception (yaml-cpp's own are turned into Errors).
// A config that parses has the fields its output type needs.
#include <cstdint>
#include <string>

#include "base/base.h"
#include "eval/eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  todae::eval::IncludeResolver inc = [](const std::string& name, const std::string& from) -> std::string {
    const std::string y = todae::eval::builtin_yaml(name);
    if (y.empty()) todae::fail(from, ": include: no built-in '", name, "'");
    return y;
  };
  try {
    todae::eval::TaskConfig t = todae::eval::parse_task_yaml(text, "fuzz.yaml", inc);
    if (t.task.empty()) __builtin_trap();
    if (t.output_type == todae::eval::OutputType::MultipleChoice && t.doc_to_choice.kind == todae::eval::DocField::None)
      __builtin_trap();
    if (t.doc_to_target.kind == todae::eval::DocField::None) __builtin_trap();
  } catch (const todae::Error&) {
  }
  return 0;
}
