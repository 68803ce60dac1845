// dedup: exact duplicates (hash of the normalised text) and near duplicates (MinHash over
// character n-grams + LSH banding, candidates verified on the full signature), one representative
// (the first in input order) kept per cluster.
//
// Map: per document an exact hash and a signature (parallel). Reduce: sort (band key, doc) per
// band and (hash, doc) for the exact pass, union-find. Signatures go to a temporary file that is
// memory-mapped for verification, so RSS grows with documents x bands x 12 bytes, not with text.
// As MPI ranks, each rank maps its share of the documents (signatures to a file of its own) and
// rank 0 runs the same reduce over everything gathered, then sends each rank its keep flags.
#include <algorithm>
#include <cmath>
#include <cerrno>
#include <fcntl.h>
#include <numeric>
#include <optional>
#include <unistd.h>

#include "data/data_impl.h"
#include "data/json_util.h"

namespace todae {

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TODAE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TODAE_CLONES
#endif

// mins[i] = min over shingles x of a[i] * x + b[i] (mod 2^32): k affine bijections of the 32-bit
// shingle hashes. Blocks of 16 lanes (k is padded to a multiple of 16) keep the minima in
// registers while the shingles stream past; the fixed inner loop vectorises (two AVX2 registers).
TODAE_CLONES void minhash_update(uint32_t* __restrict mins, const uint32_t* __restrict a, const uint32_t* __restrict b,
                                 const uint32_t* __restrict xs, size_t nx, size_t k) {
  for (size_t blk = 0; blk < k; blk += 16) {
    uint32_t m[16], av[16], bv[16];
    for (int j = 0; j < 16; ++j) m[j] = mins[blk + j], av[j] = a[blk + j], bv[j] = b[blk + j];
    for (size_t s = 0; s < nx; ++s) {
      uint32_t x = xs[s];
      for (int j = 0; j < 16; ++j) {
        uint32_t v = av[j] * x + bv[j];
        m[j] = v < m[j] ? v : m[j];
      }
    }
    for (int j = 0; j < 16; ++j) mins[blk + j] = m[j];
  }
}

struct Perms {
  std::vector<uint32_t> a, b;  // padded to a multiple of 16
  size_t k;
  explicit Perms(const DedupOptions& o) : k(size_t(o.bands) * size_t(o.rows)) {
    for (size_t i = 0; i < (k + 15) / 16 * 16; ++i) {
      a.push_back(uint32_t(data::mix64(o.seed * 2 + i * 0x9e37ull)) | 1u);
      b.push_back(uint32_t(data::mix64(o.seed * 3 + i * 0x7f4aull + 0x1234567ull)));
    }
  }
};

// Lowercased ASCII, whitespace runs as one space, trimmed: what "the same text" means here.
std::string normalise(std::string_view t) {
  std::string s;
  s.reserve(t.size());
  bool space = false;
  for (char c : t) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = true;
      continue;
    }
    if (space && !s.empty()) s.push_back(' ');
    space = false;
    s.push_back(c >= 'A' && c <= 'Z' ? char(c | 0x20) : c);
  }
  return s;
}

// Shingle hashes: a polynomial rolling hash of n consecutive code points, finalised by a mix.
void signature_into(std::string_view text, const DedupOptions& opt, const Perms& p, uint32_t* out,
                    std::vector<uint32_t>& xs, std::vector<uint32_t>& cps) {
  std::string s = normalise(text);
  cps.clear();
  for (size_t i = 0; i < s.size();) cps.push_back(data::decode_cp(s, i));
  size_t n = size_t(std::max(1, opt.ngram));
  xs.clear();
  constexpr uint64_t kBase = 0x100000001b3ull;
  if (cps.size() <= n) {
    uint64_t h = 0;
    for (uint32_t c : cps) h = h * kBase + c + 1;
    h = data::mix64(h);
    xs.push_back(uint32_t(h ^ (h >> 32)));
  } else {
    uint64_t pow = 1, h = 0;
    for (size_t i = 0; i < n; ++i) pow *= kBase;  // kBase^n, to drop the code point leaving the window
    for (size_t i = 0; i < cps.size(); ++i) {
      h = h * kBase + cps[i] + 1;
      if (i >= n) h -= pow * (cps[i - n] + 1);
      if (i + 1 >= n) {
        uint64_t m = data::mix64(h);
        xs.push_back(uint32_t(m ^ (m >> 32)));
      }
    }
  }
  std::vector<uint32_t> mins(p.a.size(), 0xFFFFFFFFu);
  minhash_update(mins.data(), p.a.data(), p.b.data(), xs.data(), xs.size(), p.a.size());
  std::copy(mins.begin(), mins.begin() + ptrdiff_t(p.k), out);
}

struct UnionFind {
  std::vector<uint32_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0u); }
  uint32_t find(uint32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
  // The smaller id (earlier document) becomes the root, so it is the one kept.
  void unite(uint32_t a, uint32_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (a < b) parent[b] = a;
    else parent[a] = b;
  }
};

std::string preview(std::string_view t, size_t max_bytes = 120) {
  if (t.size() <= max_bytes) return std::string(t);
  size_t e = max_bytes;
  while (e > 0 && (static_cast<unsigned char>(t[e]) & 0xC0) == 0x80) --e;
  return std::string(t.substr(0, e)) + "…";
}

}  // namespace

std::vector<uint32_t> minhash_signature(std::string_view text, const DedupOptions& opt) {
  Perms p(opt);
  std::vector<uint32_t> out(p.k), xs, starts;
  signature_into(text, opt, p, out.data(), xs, starts);
  return out;
}

double signature_similarity(std::span<const uint32_t> a, std::span<const uint32_t> b) {
  if (a.empty() || a.size() != b.size()) return 0;
  size_t eq = 0;
  for (size_t i = 0; i < a.size(); ++i) eq += a[i] == b[i];
  return double(eq) / double(a.size());
}

std::string data::options_json(const DedupOptions& o) {
  ojson j;
  j["exact"] = o.exact;
  j["near"] = o.near;
  j["ngram"] = o.ngram;
  j["bands"] = o.bands;
  j["rows"] = o.rows;
  j["threshold"] = o.threshold;
  j["seed"] = o.seed;
  j["max_examples"] = o.max_examples;
  return j.dump();
}

StageReport run_dedup(const InputOptions& in, const DedupOptions& opt, const CommonOptions& co) {
  using namespace data;
  auto t0 = std::chrono::steady_clock::now();
  if (opt.bands < 1 || opt.rows < 1 || opt.bands * opt.rows > 4096)
    fail("dedup: bands x rows must be between 1 and 4096 (", opt.bands, " x ", opt.rows, ")");
  if (opt.ngram < 1 || opt.ngram > 64) fail("dedup: ngram must be between 1 and 64, not ", opt.ngram);
  if (!(opt.threshold >= 0 && opt.threshold <= 1)) fail("dedup: threshold must be in [0, 1], not ", opt.threshold);
  std::vector<InputFile> files = resolve_inputs(in);
  prepare_output_dir_ranked(co.output, files, in);
  const Perms perms(opt);
  const size_t K = perms.k, R = size_t(opt.rows), NB = size_t(opt.bands);

  // ---- map: hashes and signatures -------------------------------------------------------------
  std::string sig_path = temp_name(co.output + (distributed() ? cat("/.dedup-signatures-rank-", ranks().rank) : "/.dedup-signatures"));
  int sig_fd = -1;
  if (opt.near) {
    sig_fd = ::open(sig_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sig_fd < 0) fail("cannot write ", sig_path, ": ", std::strerror(errno));
  }
  struct SigFile {
    int fd;
    std::string path;
    ~SigFile() {
      if (fd >= 0) ::close(fd), ::unlink(path.c_str());
    }
  } sig_guard{sig_fd, sig_path};
  std::vector<uint64_t> exact;                               // per document
  std::vector<std::vector<std::pair<uint64_t, uint32_t>>> bands(opt.near ? NB : 0);  // (band key, doc)
  std::vector<uint32_t> chunk_docs;                          // documents per chunk, for the second pass
  StageReport total;
  total.stage = "dedup";
  for_each_chunk_ranked(
      files, in, co.threads, co.progress, "dedup: hashing",
      [&](ChunkDocs& cd) {
        std::vector<uint32_t> xs, starts;
        if (opt.near) cd.aux32.resize(cd.docs.size() * K);
        for (size_t i = 0; i < cd.docs.size(); ++i) {
          cd.aux.push_back(xxh64(normalise(cd.docs[i].text), 0xe4ac7));
          if (opt.near) signature_into(cd.docs[i].text, opt, perms, cd.aux32.data() + i * K, xs, starts);
        }
        cd.docs.clear();  // the text is read again in the second pass
      },
      [&](ChunkDocs& cd) {
        uint32_t first = uint32_t(exact.size());
        if (exact.size() + cd.aux.size() > 0xFFFFFFF0ull) fail("dedup: more than 4 billion documents in one run");
        exact.insert(exact.end(), cd.aux.begin(), cd.aux.end());
        chunk_docs.push_back(uint32_t(cd.aux.size()));
        if (opt.near) {
          write_all(sig_fd, std::string_view(reinterpret_cast<const char*>(cd.aux32.data()), cd.aux32.size() * 4), sig_path);
          for (size_t i = 0; i < cd.aux.size(); ++i)
            for (size_t b = 0; b < NB; ++b) {
              const uint32_t* v = cd.aux32.data() + i * K + b * R;
              bands[b].push_back({xxh64(std::string_view(reinterpret_cast<const char*>(v), R * 4), b), first + uint32_t(i)});
            }
        }
        total.merge(cd.rep);
      });

  // ---- ranks: rank 0 gathers every rank's hashes, band keys and signature file ----------------------
  // Documents are numbered in input order: rank r's run of chunks follows rank r-1's, so its ids
  // start at the sum of the lower ranks' counts (`base`), the same ids one process gives them.
  const size_t n_local = exact.size();
  uint64_t base = 0;
  std::vector<uint64_t> rank_first;  // first global id per rank (+ total), on every rank
  std::vector<std::unique_ptr<MappedFile>> rank_sigs;  // rank 0: every rank's signatures
  if (distributed()) {
    gather_u64(n_local, &rank_first);
    base = rank_first[size_t(ranks().rank)];
    if (rank_first.back() > 0xFFFFFFF0ull) fail("dedup: more than 4 billion documents in one run");
    std::string blob;
    auto put_bytes = [&](const void* p, size_t len) {
      uint64_t l = len;
      blob.append(reinterpret_cast<const char*>(&l), 8);
      blob.append(static_cast<const char*>(p), len);
    };
    put_bytes(sig_path.data(), sig_path.size());
    put_bytes(exact.data(), exact.size() * 8);
    for (auto& band : bands) {
      put_bytes(band.data(), band.size() * sizeof(band[0]));
      band.clear();
      band.shrink_to_fit();
    }
    if (opt.near && ::fsync(sig_fd) != 0) fail("cannot write ", sig_path, ": ", std::strerror(errno));
    std::vector<std::string> all = gather(std::move(blob));
    if (lead()) {
      exact.clear();
      for (size_t r = 0; r < all.size(); ++r) {
        std::string_view v = all[r];
        auto get = [&]() {
          uint64_t l;
          std::memcpy(&l, v.data(), 8);
          std::string_view out = v.substr(8, l);
          v.remove_prefix(8 + l);
          return out;
        };
        std::string path(get());
        std::string_view ex = get();
        size_t n_r = ex.size() / 8;
        if (n_r != rank_first[r + 1] - rank_first[r]) fail("dedup: rank ", r, " sent ", n_r, " hashes");
        exact.resize(exact.size() + n_r);
        std::memcpy(exact.data() + rank_first[r], ex.data(), ex.size());
        for (auto& band : bands) {
          std::string_view bv = get();
          size_t m = bv.size() / sizeof(band[0]), at = band.size();
          band.resize(at + m);
          std::memcpy(static_cast<void*>(band.data() + at), bv.data(), bv.size());
          for (size_t i = at; i < band.size(); ++i) band[i].second += uint32_t(rank_first[r]);
        }
        rank_sigs.push_back(opt.near && n_r > 0 ? std::make_unique<MappedFile>(path) : nullptr);
        all[r].clear();
        all[r].shrink_to_fit();
      }
    }
  }
  const size_t n = exact.size();  // rank 0: all documents; other ranks: their own

  // ---- reduce: clusters (rank 0) ------------------------------------------------------------------
  std::vector<uint8_t> keep;
  std::vector<uint32_t> cluster_size, root;
  uint64_t dropped_exact = 0, dropped_near = 0;
  std::vector<std::pair<uint32_t, uint32_t>> largest;       // (size, root)
  std::vector<uint32_t> shown_roots;
  uint64_t exact_pairs = 0, candidate_pairs = 0, verified_pairs = 0;
  if (lead()) {
    UnionFind uf(n);
    if (opt.exact) {
      std::vector<std::pair<uint64_t, uint32_t>> h(n);
      for (uint32_t i = 0; i < n; ++i) h[i] = {exact[i], i};
      std::sort(h.begin(), h.end());
      for (size_t i = 1; i < n; ++i)
        if (h[i].first == h[i - 1].first) {
          uf.unite(h[i - 1].second, h[i].second);
          ++exact_pairs;
        }
    }
    if (opt.near && n > 0) {
      std::optional<MappedFile> sigs;
      if (!distributed()) sigs.emplace(sig_path);
      auto sig = [&](uint32_t d) {
        if (sigs) return std::span<const uint32_t>(reinterpret_cast<const uint32_t*>(sigs->data) + size_t(d) * K, K);
        size_t r = size_t(std::upper_bound(rank_first.begin(), rank_first.end(), uint64_t(d)) - rank_first.begin()) - 1;
        return std::span<const uint32_t>(
            reinterpret_cast<const uint32_t*>(rank_sigs[r]->data) + size_t(d - rank_first[r]) * K, K);
      };
      for (auto& band : bands) {
        std::sort(band.begin(), band.end());
        for (size_t i = 0; i < band.size();) {
          size_t j = i + 1;
          while (j < band.size() && band[j].first == band[i].first) ++j;
          // Compare every member with the bucket's first document (the earliest).
          for (size_t k = i + 1; k < j; ++k) {
            uint32_t a = band[i].second, b = band[k].second;
            if (uf.find(a) == uf.find(b)) continue;
            ++candidate_pairs;
            if (signature_similarity(sig(a), sig(b)) >= opt.threshold) {
              uf.unite(a, b);
              ++verified_pairs;
            }
          }
          i = j;
        }
        band.clear();
        band.shrink_to_fit();
      }
    }
    keep.resize(n);
    cluster_size.assign(n, 0);
    root.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t r = root[i] = uf.find(i);
      keep[i] = r == i;
      ++cluster_size[r];
      if (r != i) (exact[i] == exact[r] ? dropped_exact : dropped_near) += 1;
    }

    for (uint32_t i = 0; i < n; ++i)
      if (cluster_size[i] > 1) largest.push_back({cluster_size[i], i});
    std::sort(largest.begin(), largest.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    if (largest.size() > size_t(std::max(0, opt.max_examples))) largest.resize(size_t(std::max(0, opt.max_examples)));
    for (auto& l : largest) shown_roots.push_back(l.second);
    std::sort(shown_roots.begin(), shown_roots.end());
  }  // lead
  rank_sigs.clear();

  // Ranks: each gets the keep flags and roots of its own documents, and the roots shown in the report.
  if (distributed()) {
    std::vector<std::string> parts;
    if (lead()) {
      for (size_t r = 0; r + 1 < rank_first.size(); ++r) {
        size_t a = rank_first[r], m = rank_first[r + 1] - a;
        std::string p(reinterpret_cast<const char*>(keep.data() + a), m);
        p.append(reinterpret_cast<const char*>(root.data() + a), m * 4);
        parts.push_back(std::move(p));
      }
    }
    std::string mine = scatter(std::move(parts));
    if (mine.size() != n_local * 5) fail("dedup: rank ", ranks().rank, " got ", mine.size(), " bytes of keep flags for ", n_local, " documents");
    keep.assign(mine.data(), mine.data() + n_local);
    root.resize(n_local);
    std::memcpy(root.data(), mine.data() + n_local, n_local * 4);
    std::string shown(reinterpret_cast<const char*>(shown_roots.data()), shown_roots.size() * 4);
    broadcast(shown);
    shown_roots.resize(shown.size() / 4);
    std::memcpy(shown_roots.data(), shown.data(), shown.size());
  }

  // ---- second pass: write the kept documents, in order ----------------------------------------------
  // keep[] and root[] are indexed by this rank's documents (d); ids in root[], shown_roots and the
  // previews are global (base + d).
  std::vector<uint64_t> chunk_first(chunk_docs.size() + 1, 0);
  for (size_t c = 0; c < chunk_docs.size(); ++c) chunk_first[c + 1] = chunk_first[c] + chunk_docs[c];
  OutputSink writer(co);
  std::map<uint32_t, std::string> previews;  // root -> text preview; one duplicate's preview too
  std::map<uint32_t, std::string> dup_previews;
  std::string preview_blob;  // ranks: this rank's previews, for rank 0
  StageReport pass2;
  for_each_chunk_ranked(
      files, in, co.threads, co.progress, "dedup: writing",
      [&](ChunkDocs& cd) {
        if (cd.seq >= chunk_docs.size() || cd.docs.size() != chunk_docs[cd.seq])
          fail("dedup: the inputs changed between the two passes");
        uint64_t first = chunk_first[cd.seq];
        for (size_t i = 0; i < cd.docs.size(); ++i) {
          uint32_t d = uint32_t(first + i);
          if (!keep[d]) continue;
          const Doc& doc = cd.docs[i];
          append_doc_jsonl(cd.out, doc);
          cd.rep.docs_out += 1;
          cd.rep.bytes_out += doc.text.size();
          SourceStats& s = cd.rep.sources[doc.source];
          s.docs_out += 1;
          s.bytes_out += doc.text.size();
          if (!doc.lang.empty()) cd.rep.langs[doc.lang] += 1;
        }
        // Previews of shown clusters, gathered per chunk (rare: a few strings).
        for (size_t i = 0; i < cd.docs.size(); ++i) {
          uint32_t d = uint32_t(first + i), r = root[d];
          if (!std::binary_search(shown_roots.begin(), shown_roots.end(), r)) continue;
          cd.aux.push_back(base + d);
          cd.notes.push_back(preview(cd.docs[i].text));
        }
      },
      [&](ChunkDocs& cd) {
        writer.write(cd.out);
        pass2.docs_out += cd.rep.docs_out;
        pass2.bytes_out += cd.rep.bytes_out;
        for (auto& [k, v] : cd.rep.sources) {
          total.sources[k].docs_out += v.docs_out;
          total.sources[k].bytes_out += v.bytes_out;
        }
        for (auto& [k, v] : cd.rep.langs) total.langs[k] += v;
        for (size_t i = 0; i < cd.aux.size(); ++i) {
          uint32_t d = uint32_t(cd.aux[i]), r = root[d - base];
          if (d == r) previews[r] = cd.notes[i];
          else if (!dup_previews.count(r)) dup_previews[r] = cd.notes[i];
          if (distributed()) {  // (global id, root, preview) for rank 0, in order
            uint64_t len = cd.notes[i].size();
            preview_blob.append(reinterpret_cast<const char*>(&d), 4);
            preview_blob.append(reinterpret_cast<const char*>(&r), 4);
            preview_blob.append(reinterpret_cast<const char*>(&len), 8);
            preview_blob += cd.notes[i];
          }
        }
      });
  total.docs_out = pass2.docs_out;
  total.bytes_out = pass2.bytes_out;
  total.outputs = writer.finish();
  if (distributed()) {
    std::vector<std::string> all = gather(std::move(preview_blob));
    for (size_t k = 1; k < all.size(); ++k) {  // rank 0's own are in already; then ranks 1.. in order
      std::string_view v = all[k];
      while (v.size() >= 16) {
        uint32_t d, r;
        uint64_t len;
        std::memcpy(&d, v.data(), 4);
        std::memcpy(&r, v.data() + 4, 4);
        std::memcpy(&len, v.data() + 8, 8);
        std::string text(v.substr(16, len));
        v.remove_prefix(16 + len);
        if (d == r) previews[r] = text;
        else if (!dup_previews.count(r)) dup_previews[r] = text;
      }
    }
    reduce_report(total);
  }
  total.counts["dropped.exact"] = dropped_exact;
  total.counts["dropped.near"] = dropped_near;
  total.counts["clusters"] = 0;
  for (uint32_t i = 0; i < cluster_size.size(); ++i) total.counts["clusters"] += cluster_size[i] > 1;
  total.counts["candidate_pairs"] = candidate_pairs;
  total.counts["verified_pairs"] = verified_pairs;
  total.counts["exact_pairs"] = exact_pairs;
  ojson extra;
  extra["largest_clusters"] = ojson::array();
  for (auto& [size, root] : largest)
    extra["largest_clusters"].push_back(
        {{"size", size}, {"kept", previews.count(root) ? previews[root] : ""}, {"duplicate", dup_previews.count(root) ? dup_previews[root] : ""}});
  extra["lsh_threshold"] = std::pow(1.0 / opt.bands, 1.0 / opt.rows);
  total.extra = extra.dump();
  return commit_stage(total, files, with_input(in, options_json(opt)), co, t0);
}

}  // namespace todae
