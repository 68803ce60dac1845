// todae infer: constrained decoding for OpenAI's response_format ({"type":"json_object"} and
// {"type":"json_schema",...}). The sampler is masked so that what the model writes always parses as
// JSON and validates against the schema.
//
// A JSON Schema is compiled into a Grammar: a small graph of nodes (object, array, string, number,
// literal set, anyOf, any value) that a GrammarMatcher walks byte by byte as a pushdown automaton
// (one stack of frames per anyOf alternative still alive). Token masks walk a byte trie of the
// vocabulary with copies of the matcher state, pruning a whole subtree at the first rejected byte.
//
// What the grammar generates (a subset of what the schema accepts, chosen so that the model can
// neither stall nor loop):
//   - no whitespace except at most one space after ':' and after ',' (none after '{', '[', before
//     '}', ']', ':' or ',', none around the root value);
//   - object properties in the order of the schema's "properties" (nlohmann::json iterates keys
//     sorted; pass nlohmann::ordered_json or the text to keep the document's order); optional
//     properties may be skipped, required ones may not; when "properties" is non-empty, no other
//     keys are written (even if additionalProperties allows them); an object without
//     "properties" takes any keys, with additionalProperties (or any value) as their schema;
//   - keys written exactly as nlohmann's dump() encodes them; strings: valid UTF-8, control
//     characters escaped, \u escapes of surrogates not allowed (write the character itself);
//   - numbers: at most 15 integer digits, 15 fraction digits and a 2-digit exponent (no exponent
//     when minimum/maximum apply); "integer" allows no fraction and no exponent;
//   - values nest at most 32 deep; a value is only started when its smallest completion fits
//     under that limit, so the limit never leaves the model without a way to finish (schemas whose
//     smallest value nests deeper are refused);
//   - "format" is an annotation: not enforced (any string).
// The grammar never has a dead end: alternatives, optional properties and items that can never
// complete are dropped at compile time, and a schema with no finite value is refused.
// Supported keywords: type (a name or an array of names), properties, required,
// additionalProperties (false/true/schema), items (schema or draft-07 tuple array), prefixItems,
// additionalItems, minItems, maxItems, enum, const, anyOf, oneOf (as anyOf: alternatives are not
// checked for exclusivity), allOf with one schema, $ref to "#", "#/$defs/..." or
// "#/definitions/..." (recursion allowed), nullable (OpenAPI), minLength, maxLength, minimum,
// maximum, exclusiveMinimum, exclusiveMaximum, and the annotations (title, description, default,
// examples, format, $schema, $id, $comment, deprecated, readOnly, writeOnly). The ones JSON Schema
// defines but todae does not enforce (pattern, not, if/then/else, patternProperties, uniqueItems,
// multipleOf, minProperties, ...) are refused with an Error naming the JSON pointer, e.g.
//   response_format.json_schema.schema/properties/x: keyword 'not' is not supported
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/text.h"

namespace todae {

struct GrammarImpl;  // grammar.cpp: the nodes

struct Grammar {
  std::shared_ptr<const GrammarImpl> impl;
  // Any JSON object ({"type":"json_object"}).
  static std::shared_ptr<const Grammar> any_json_object();
};

// Compiles a JSON Schema. `where` names the schema in errors (e.g.
// "response_format.json_schema.schema"); Errors read "<where><json pointer>: <what>".
std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::ordered_json& schema, const std::string& where);
std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::json& schema, const std::string& where);
std::shared_ptr<const Grammar> compile_json_schema_text(std::string_view schema_json, const std::string& where);

// The grammar an OpenAI response_format asks for: null for {"type":"text"} (or a null value),
// any JSON object for {"type":"json_object"}, the schema's for {"type":"json_schema",
// "json_schema":{"name":...,"schema":{...},"strict":...}} ("strict" changes nothing: the output
// always validates). `where` names the field in errors (e.g. "response_format").
std::shared_ptr<const Grammar> compile_response_format(const nlohmann::ordered_json& response_format,
                                                       const std::string& where = "response_format");
std::shared_ptr<const Grammar> compile_response_format(const nlohmann::json& response_format,
                                                       const std::string& where = "response_format");

// One frame of the matcher's pushdown stack (plain data, compared bytewise).
struct GrammarFrame {
  int32_t node = 0;
  uint8_t st = 0;        // state inside the node
  uint8_t flags = 0;     // node-specific (string: UTF-8 bytes pending; number: negative)
  uint16_t u = 0;        // node-specific (string: allowed range of the next UTF-8 byte)
  int32_t a = 0, b = 0;  // counters: items, property / literal candidate, position, characters
  int64_t x = 0, y = 0;  // object: next property; bounded numbers: integer and fraction digits
};

struct TokenTrie;

// The state of one generation under a grammar. Copyable; a copy is an independent state.
struct GrammarMatcher {
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  // Consumes the bytes if all of them are acceptable (returns true); otherwise leaves the state as
  // it was and returns false.
  bool accept_bytes(std::string_view bytes);
  bool can_accept(std::string_view bytes) const;
  // The bytes so far are a whole value: end-of-generation may follow.
  bool complete() const;
  // Complete and no byte can follow (e.g. after the closing '}' of the root object).
  bool finished() const;
  // The bytes so far (for the caller's convenience; not used by the matching).
  const std::string& text() const { return text_; }

  std::shared_ptr<const Grammar> grammar;
  // One stack per live alternative: stack k is frames[ends[k-1] .. ends[k]) (bottom first). An
  // empty stack means the root value is finished.
  std::vector<GrammarFrame> frames;
  std::vector<uint32_t> ends;

  // Masks already computed for states seen in this generation (keyed by the state's bytes; about
  // 4 MB at most). Copies of a matcher share it: give a copy that runs on another thread its own
  // (cache.reset()).
  struct MaskCache {
    const TokenTrie* trie = nullptr;
    std::unordered_map<std::string, std::vector<uint64_t>> masks;
    uint64_t hits = 0, misses = 0;
  };
  mutable std::shared_ptr<MaskCache> cache;

 private:
  std::string text_;
};

// Byte strings with ids, as a trie whose nodes are numbered in preorder, so that a subtree is a
// contiguous range of nodes (and of ids): a rejected byte skips its whole subtree in one step.
struct ByteTrie {
  // Node 0 is the root (no byte). end[n]: one past the last node of n's subtree.
  std::vector<uint8_t> byte;
  std::vector<uint16_t> depth;
  std::vector<uint32_t> end;
  std::vector<uint32_t> first_id;  // ids ending at node n: ids[first_id[n] .. first_id[n+1])
  std::vector<int32_t> ids;
  size_t max_depth = 0;
};

// The vocabulary, built once per tokenizer and shared by every request.
struct TokenTrie {
  int32_t vocab_size = 0;
  std::vector<std::string> token_bytes;  // per id
  std::vector<uint8_t> excluded;         // per id: special or empty, never allowed by the grammar
  ByteTrie tokens;
  // Fast path for the common case, inside a string between characters: the tokens that stay
  // inside the string (bitset over ids), and the tokens that close it, keyed by what follows their
  // closing quote (that part alone depends on the grammar). string_chars[id]: characters the token
  // adds to the string (before its closing quote); inside_by_chars: (characters, id) of the
  // tokens that stay inside, most characters first (for maxLength).
  std::vector<uint64_t> inside_string;
  ByteTrie closing_string;
  std::vector<uint16_t> string_chars;
  std::vector<std::pair<uint16_t, int32_t>> inside_by_chars;
};

std::shared_ptr<const TokenTrie> build_token_trie(const Tokenizer& tok);
// From raw token bytes (index = id); excluded[id] != 0 marks special tokens.
std::shared_ptr<const TokenTrie> build_token_trie(std::vector<std::string> token_bytes, std::vector<uint8_t> excluded);

// Allowed tokens for the matcher's state as a bitset over ids (bit i of word i/64). End ids are
// not included (see apply_grammar_mask).
const std::vector<uint64_t>& grammar_token_bitset(const GrammarMatcher& m, const TokenTrie& trie);

// Sets logits[id] = -inf for every id in [0, V) the grammar does not allow next. Special tokens are
// never allowed, except end_ids, which are allowed exactly when the value is complete (once the
// root value is finished they are the only ones allowed, so pass at least one). Ids past the
// tokenizer's vocabulary (a padded LM head) are never allowed.
void apply_grammar_mask(const GrammarMatcher& m, const TokenTrie& trie, const std::vector<int32_t>& end_ids,
                        float* logits, int V);

// Advances the matcher by the token's bytes. A special token (e.g. an end id) consumes nothing and
// is accepted exactly when the value is complete. Returns false (state unchanged) on a token the
// grammar does not allow.
bool accept_token(GrammarMatcher& m, const TokenTrie& trie, int32_t id);

// Ready-made Sampler::constrain hook: masks with the shared matcher (the caller advances the
// matcher with accept_token after each sampled token).
std::function<void(float*, int)> grammar_constraint(std::shared_ptr<GrammarMatcher> matcher,
                                                    std::shared_ptr<const TokenTrie> trie,
                                                    std::vector<int32_t> end_ids);

}  // namespace todae
