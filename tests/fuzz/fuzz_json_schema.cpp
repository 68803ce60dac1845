// Any bytes as "schema NUL document": the schema compiles to a grammar or fails with a clean
// todae::Error; the matcher then walks the document byte by byte. Checked on the way:
//   - the token mask agrees with can_accept() for every token of a small vocabulary;
//   - a document the matcher calls complete parses as JSON (the grammar only generates JSON).
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "infer/grammar.h"

namespace {

const todae::TokenTrie& trie() {
  static const std::shared_ptr<const todae::TokenTrie> t = [] {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, char(b)));
    for (const char* s : {"{\"", "\":", "\": ", "\", \"", "\"}", "true", "false", "null", "}]", "[{", ", ",
                          "12", "-0.5", "e+1", "\\u00", "\\n", "\"a\"", "한국", "어\"", "\xed\x95", "  "})
      tokens.push_back(s);
    std::vector<uint8_t> excluded(tokens.size(), 0);
    tokens.push_back("<|eos|>");
    excluded.push_back(1);
    return todae::build_token_trie(std::move(tokens), std::move(excluded));
  }();
  return *t;
}

void check_mask(const todae::GrammarMatcher& m) {
  const todae::TokenTrie& t = trie();
  const std::vector<uint64_t>& bits = todae::grammar_token_bitset(m, t);
  for (int32_t id = 0; id < t.vocab_size; ++id) {
    const bool allowed = (bits[size_t(id) / 64] >> (id % 64)) & 1;
    const bool acceptable = !t.excluded[size_t(id)] && m.can_accept(t.token_bytes[size_t(id)]);
    if (allowed != acceptable) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  const void* nul = std::memchr(p, 0, size);
  const size_t schema_len = nul ? size_t(static_cast<const char*>(nul) - p) : size;
  std::vector<char> schema(p, p + schema_len);  // exactly sized, so ASan sees reads past the end
  std::string_view doc = nul ? std::string_view(p + schema_len + 1, size - schema_len - 1) : std::string_view();
  std::shared_ptr<const todae::Grammar> g;
  try {
    g = todae::compile_json_schema_text(std::string_view(schema.data(), schema.size()), "fuzz");
  } catch (const todae::Error&) {
    return 0;
  }
  todae::GrammarMatcher m(g);
  check_mask(m);
  for (size_t i = 0; i < doc.size(); ++i) {
    if (!m.accept_bytes(doc.substr(i, 1))) break;
    if ((i + 1) % 8 == 0) check_mask(m);  // masks cost a trie walk: check every eighth state
  }
  if (m.complete() && !nlohmann::json::accept(m.text())) __builtin_trap();
  return 0;
}
