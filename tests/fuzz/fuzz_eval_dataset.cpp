// Any bytes as a benchmark data file in each format todae eval reads (CSV, TSV, JSON, JSONL): rows
// or a clean todae::Error naming file:line. Every row it returns has every column of the header.
#include <cstdint>
#include <string>

#include "base/base.h"
#include "eval/eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* fmt : {"csv", "tsv", "json", "jsonl"}) {
    try {
      todae::eval::Dataset d = todae::eval::parse_dataset(text, "fuzz", fmt);
      for (const todae::eval::Doc& doc : d.docs) {
        if (!doc.fields.is_object() || doc.where.rfind("fuzz:", 0) != 0) __builtin_trap();
        for (const std::string& c : d.columns)
          if (!doc.fields.contains(c)) __builtin_trap();
      }
    } catch (const todae::Error&) {
    }
  }
  return 0;
}
