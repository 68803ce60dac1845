// TokenLoader: fixed-length windows from memory-mapped shards, in a seeded per-epoch order.
#include <algorithm>
#include <bit>
#include <sys/mman.h>
#include <xxhash.h>

#include "data/data_impl.h"

namespace todae {

namespace data {
ShardHeader check_shard_file(const std::string& path, std::string_view bytes, const ShardFile& f, const ShardManifest& m);
}

// A balanced Feistel network on the smallest even number of bits covering n, iterated until the
// value falls inside [0, n) ("cycle walking"); each step is a bijection, so the whole is one.
uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key) {
  if (i >= n) fail("permute_index: ", i, " is not below ", n);
  if (n <= 1) return 0;
  int bits = 64 - std::countl_zero(n - 1);
  if (bits < 2) bits = 2;
  if (bits & 1) ++bits;
  int half = bits / 2;
  uint64_t mask = half == 64 ? ~0ull : (uint64_t(1) << half) - 1;
  uint64_t keys[6];
  for (int r = 0; r < 6; ++r) keys[r] = data::mix64(key + 0x632be59bd9b4e019ull * uint64_t(r + 1));
  uint64_t x = i;
  do {
    uint64_t l = x >> half, r = x & mask;
    for (int round = 0; round < 6; ++round) {
      uint64_t f = data::mix64(r ^ keys[round]) & mask;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half) | r;
  } while (x >= n);
  return x;
}

struct TokenLoader::Impl {
  LoaderOptions opt;
  ShardManifest manifest;
  std::vector<std::unique_ptr<MappedFile>> maps;
  std::vector<uint64_t> starts;  // first token of each file in the split's stream; back() = total
  uint32_t width = 2;
  uint64_t windows = 0;
  DataPosition pos;
  uint64_t global_batch() const { return uint64_t(opt.batch_size) * uint64_t(opt.world_size); }
};

TokenLoader::TokenLoader(const LoaderOptions& opt) : impl(std::make_unique<Impl>()) {
  Impl& m = *impl;
  m.opt = opt;
  if (opt.seq_len < 1) fail("loader: seq_len must be at least 1, not ", opt.seq_len);
  if (opt.batch_size < 1) fail("loader: batch_size must be at least 1, not ", opt.batch_size);
  if (opt.world_size < 1 || opt.rank < 0 || opt.rank >= opt.world_size)
    fail("loader: rank ", opt.rank, " is not in [0, world_size ", opt.world_size, ")");
  m.manifest = read_manifest(opt.dir);
  if (!opt.tokenizer.empty()) {
    uint64_t h = tokenizer_file_hash(opt.tokenizer);
    if (h != m.manifest.tokenizer_hash)
      fail(opt.dir, ": the shards were made with another tokenizer (xxh64 ", hex64(m.manifest.tokenizer_hash), ", ",
           opt.tokenizer, " has ", hex64(h), ")");
  }
  const ShardSplit& split = m.manifest.split(opt.split, opt.dir);
  m.width = m.manifest.token_width;
  m.starts.push_back(0);
  for (const ShardFile& f : split.files) {
    std::string path = opt.dir + "/" + f.name;
    auto map = std::make_unique<MappedFile>(path);
    data::check_shard_file(path, map->view(), f, m.manifest);
    if (opt.verify_payload &&
        XXH64(map->data + kShardHeaderBytes, map->size - kShardHeaderBytes, 0) != f.xxh64)
      fail(path, ": token data checksum mismatch (corrupt shard)");
    if (opt.shuffle && map->data) ::madvise(const_cast<char*>(map->data), map->size, MADV_RANDOM);
    m.starts.push_back(m.starts.back() + f.tokens);
    m.maps.push_back(std::move(map));
  }
  uint64_t n = m.starts.back();
  uint64_t T = uint64_t(opt.seq_len);
  m.windows = n > T ? (n - 1) / T : 0;
  // A split too small for one global batch is not an error here (batches_per_epoch() says 0, so a
  // trainer can go without validation); next_batch() on it is.
}

TokenLoader::~TokenLoader() = default;

uint64_t TokenLoader::tokens() const { return impl->starts.back(); }
uint64_t TokenLoader::windows_per_epoch() const { return impl->windows; }
uint64_t TokenLoader::batches_per_epoch() const { return impl->windows / impl->global_batch(); }
const ShardManifest& TokenLoader::manifest() const { return impl->manifest; }
DataPosition TokenLoader::position() const { return impl->pos; }

void TokenLoader::seek(const DataPosition& p) {
  if (p.index > impl->windows)
    fail("loader: position index ", p.index, " is past the ", impl->windows, " windows of an epoch of ", impl->opt.dir);
  impl->pos = p;
}

uint64_t TokenLoader::window_at(uint64_t epoch, uint64_t i) const {
  const Impl& m = *impl;
  if (!m.opt.shuffle) return i;
  uint64_t key = data::mix64(data::mix64(m.opt.seed) ^ (epoch * 0x9e3779b97f4a7c15ull + 0x7f4a7c15ull));
  return permute_index(i, m.windows, key);
}

void TokenLoader::read_tokens(uint64_t start, std::span<int32_t> out) const {
  const Impl& m = *impl;
  if (start + out.size() > m.starts.back()) fail("loader: tokens ", start, "+", out.size(), " are past the end");
  size_t f = size_t(std::upper_bound(m.starts.begin(), m.starts.end(), start) - m.starts.begin()) - 1;
  size_t done = 0;
  while (done < out.size()) {
    uint64_t local = start + done - m.starts[f];
    uint64_t n = std::min<uint64_t>(out.size() - done, m.starts[f + 1] - m.starts[f] - local);
    const char* p = m.maps[f]->data + kShardHeaderBytes + local * m.width;
    if (m.width == 2) {
      for (uint64_t k = 0; k < n; ++k) {
        uint16_t v;
        std::memcpy(&v, p + 2 * k, 2);
        out[done + k] = int32_t(v);
      }
    } else {
      std::memcpy(out.data() + done, p, n * 4);
    }
    done += n;
    ++f;
  }
}

void TokenLoader::next_batch(std::span<int32_t> out) {
  Impl& m = *impl;
  size_t T = size_t(m.opt.seq_len), B = size_t(m.opt.batch_size);
  if (out.size() != B * (T + 1)) fail("loader: batch buffer holds ", out.size(), " tokens, expected ", B * (T + 1));
  if (m.windows < m.global_batch())
    fail(m.opt.dir, ": split '", m.opt.split, "' has ", m.starts.back(), " tokens, ", m.windows, " windows of ", T + 1,
         " tokens; a global batch needs ", m.global_batch(), " (batch ", m.opt.batch_size, " x ", m.opt.world_size,
         " ranks)");
  if (m.pos.index + m.global_batch() > m.windows) {
    ++m.pos.epoch;
    m.pos.index = 0;
  }
  uint64_t first = m.pos.index + uint64_t(m.opt.rank) * B;
  for (size_t b = 0; b < B; ++b) {
    uint64_t w = window_at(m.pos.epoch, first + b);
    read_tokens(w * T, out.subspan(b * (T + 1), T + 1));
  }
  m.pos.index += m.global_batch();
}

std::vector<int32_t> TokenLoader::next_batch() {
  std::vector<int32_t> out(size_t(impl->opt.batch_size) * size_t(impl->opt.seq_len + 1));
  next_batch(out);
  return out;
}

}  // namespace todae
