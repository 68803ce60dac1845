// Internal: the BPE model — vocabulary, merge table and the per-piece merge loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace todae {

// Open-addressing map from a token pair (a, b) to the merge that joins it.
struct PairMap {
  struct Entry {
    uint64_t key;  // (a << 32) | b, or kEmpty
    int32_t rank;  // lower merges first
    int32_t id;    // the merged token
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  std::vector<Entry> slots;
  size_t count = 0;
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void reserve(size_t n);
  // Keeps the lower rank when the pair is already present.
  void insert(int32_t a, int32_t b, int32_t rank, int32_t id);
  const Entry* find(int32_t a, int32_t b) const {
    if (slots.empty()) return nullptr;
    uint64_t k = key(a, b);
    size_t mask = slots.size() - 1;
    for (size_t i = hash(k) & mask;; i = (i + 1) & mask) {
      const Entry& e = slots[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeModel {
  // What each token stands for: raw bytes for byte-level models; the vocabulary string (UTF-8,
  // with "▁" and "<0xNN>" as written) for character-level ones.
  std::vector<std::string> tokens;
  TokenIndex token_to_id;
  PairMap merges;
  std::vector<std::pair<int32_t, int32_t>> merge_list;  // in rank order, for saving
  bool byte_level = true;
  int32_t byte_to_id[256];  // byte-level: the single-byte tokens; -1 when absent
  // Character-level options (SentencePiece-style files such as Gemma's).
  bool byte_fallback = false;
  int32_t byte_fallback_id[256];  // "<0xNN>" tokens
  int32_t unk_id = -1;
  bool fuse_unk = false;
  // A piece that is itself a token is emitted whole (Llama-3, tiktoken).
  bool ignore_merges = false;

  BpeModel();
  int32_t find(std::string_view s) const {
    auto it = token_to_id.find(s);
    return it == token_to_id.end() ? -1 : it->second;
  }
  // Rebuilds byte_to_id / byte_fallback_id from the vocabulary.
  void index_bytes();
};

// Encodes one pre-tokenized piece, appending ids to out.
void bpe_encode_piece(const BpeModel& m, std::string_view piece, std::vector<int32_t>* out);

}  // namespace todae
