// Any bytes through the data module's readers: a clean todae::Error or a result, never a crash.
// The first byte picks the reader: shard header, manifest.json, report.json, recipe, a JSONL line
// (checked against nlohmann::json), or the text rules (clean, filter, pii, MinHash) on raw bytes.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/base.h"
#include "data/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 6) {
      case 0: {
        todae::ShardHeader h = todae::parse_shard_header(in, "fuzz.tok");
        if (todae::parse_shard_header(todae::encode_shard_header(h), "again").token_count != h.token_count) __builtin_trap();
        break;
      }
      case 1: {
        todae::ShardManifest m = todae::parse_manifest(in, "manifest.json");
        todae::parse_manifest(todae::manifest_to_json(m), "again");  // what we write we read back
        break;
      }
      case 2: todae::parse_report(in, "report.json"); break;
      case 3: todae::check_recipe(in, "recipe.json"); break;
      case 4: {
        const std::string_view keys[] = {"text", "source"};
        std::string v[2], err;
        bool found[2];
        bool ok = todae::parse_json_line(in, keys, v, found, &err);
        // Whatever nlohmann accepts as an object with string fields, we accept with the same text
        // (nlohmann stops at a NUL byte; a JSONL line with one after the object is malformed to us).
        nlohmann::json j = nlohmann::json::parse(in.begin(), in.end(), nullptr, false);
        if (in.find('\0') == std::string_view::npos && !j.is_discarded() && j.is_object() && (!j.contains("text") || j["text"].is_string() || j["text"].is_null()) &&
            (!j.contains("source") || j["source"].is_string() || j["source"].is_null())) {
          if (!ok) __builtin_trap();
          if (j.contains("text") && j["text"].is_string() && v[0] != j["text"].get<std::string>()) __builtin_trap();
        }
        break;
      }
      case 5: {
        todae::CleanOptions co;
        co.collapse_spaces = data[size - 1] & 1;
        todae::clean_text(in, co, nullptr);
        todae::filter_reason(in, {});
        todae::PiiCounts pc;
        todae::scrub_pii(in, {}, &pc);
        todae::DedupOptions d;
        d.bands = 2;
        d.rows = 3;
        todae::minhash_signature(in, d);
        break;
      }
    }
  } catch (const todae::Error&) {
  }
  return 0;
}
