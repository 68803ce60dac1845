#include "text/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "text/unicode.h"

namespace todae {

void PairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots.size()) return;
  std::vector<Entry> old = std::move(slots);
  slots.assign(cap, Entry{kEmpty, 0, 0});
  count = 0;
  for (const Entry& e : old)
    if (e.key != kEmpty) insert(int32_t(e.key >> 32), int32_t(uint32_t(e.key)), e.rank, e.id);
}

void PairMap::insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
  if ((count + 1) * 2 > slots.size()) reserve(std::max<size_t>(count + 1, slots.size()));
  uint64_t k = key(a, b);
  size_t mask = slots.size() - 1;
  for (size_t i = hash(k) & mask;; i = (i + 1) & mask) {
    Entry& e = slots[i];
    if (e.key == k) {
      if (rank < e.rank) e.rank = rank, e.id = id;
      return;
    }
    if (e.key == kEmpty) {
      e = Entry{k, rank, id};
      ++count;
      return;
    }
  }
}

BpeModel::BpeModel() {
  std::fill(std::begin(byte_to_id), std::end(byte_to_id), -1);
  std::fill(std::begin(byte_fallback_id), std::end(byte_fallback_id), -1);
}

void BpeModel::index_bytes() {
  std::fill(std::begin(byte_to_id), std::end(byte_to_id), -1);
  std::fill(std::begin(byte_fallback_id), std::end(byte_fallback_id), -1);
  for (int b = 0; b < 256; ++b) {
    if (byte_level) {
      byte_to_id[b] = find(std::string(1, char(b)));
    } else {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      byte_fallback_id[b] = find(name);
    }
  }
}

namespace {

// Initial symbols of a piece: bytes (byte-level) or characters with byte fallback / unk.
void initial_symbols(const BpeModel& m, std::string_view piece, std::vector<int32_t>* syms) {
  syms->clear();
  if (m.byte_level) {
    for (unsigned char c : piece)
      if (m.byte_to_id[c] >= 0) syms->push_back(m.byte_to_id[c]);  // bytes without a token drop, as in HF
    return;
  }
  bool last_unk = false;
  for (size_t i = 0; i < piece.size();) {
    uint32_t cp;
    int n = unicode::decode(piece, i, &cp);
    size_t len = n ? size_t(n) : 1;
    int32_t id = m.find(piece.substr(i, len));
    if (id >= 0) {
      syms->push_back(id);
      last_unk = false;
    } else if (m.byte_fallback && m.byte_fallback_id[uint8_t(piece[i])] >= 0) {
      for (size_t k = 0; k < len; ++k) {
        int32_t b = m.byte_fallback_id[uint8_t(piece[i + k])];
        if (b >= 0) syms->push_back(b);
      }
      last_unk = false;
    } else if (m.unk_id >= 0) {
      if (!(m.fuse_unk && last_unk)) syms->push_back(m.unk_id);
      last_unk = true;
    }
    i += len;
  }
}

// Short pieces: scan for the lowest-ranked pair, merge it, repeat (leftmost wins ties).
void merge_small(const BpeModel& m, std::vector<int32_t>& s) {
  while (s.size() > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const PairMap::Entry* e = m.merges.find(s[i], s[i + 1]);
      if (e && e->rank < best_rank) best_rank = e->rank, best_id = e->id, best = i;
    }
    if (best_id < 0) break;
    s[best] = best_id;
    s.erase(s.begin() + best + 1);
  }
}

// Long pieces (whole texts for SentencePiece-style models): a heap of candidate merges over a
// linked list of symbols, O(n log n).
void merge_large(const BpeModel& m, std::vector<int32_t>& s) {
  const size_t n = s.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (size_t i = 0; i < n; ++i) prev[i] = int32_t(i) - 1, next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const PairMap::Entry* e = m.merges.find(s[i], s[next[i]])) heap.push({e->rank, i, s[i], s[next[i]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t i = c.pos;
    if (!alive[i] || s[i] != c.left || next[i] < 0 || s[next[i]] != c.right) continue;
    const PairMap::Entry* e = m.merges.find(c.left, c.right);
    int32_t j = next[i];
    s[i] = e->id;
    alive[j] = 0;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) s[w++] = s[i];
  s.resize(w);
}

}  // namespace

void bpe_encode_piece(const BpeModel& m, std::string_view piece, std::vector<int32_t>* out) {
  if (piece.empty()) return;
  if (m.ignore_merges) {
    int32_t id = m.find(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  thread_local std::vector<int32_t> syms;
  initial_symbols(m, piece, &syms);
  if (syms.size() <= 64)
    merge_small(m, syms);
  else
    merge_large(m, syms);
  out->insert(out->end(), syms.begin(), syms.end());
}

}  // namespace todae
