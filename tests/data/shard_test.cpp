// Token shards: header and manifest parsing (with their errors), the writer, and the loader.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "data_test_util.h"

namespace todae::test {
namespace {

std::string read_bin(const std::string& p) { return read_file(p); }

TEST(ShardHeader, RoundTrip) {
  ShardHeader h;
  h.vocab_size = 32000;
  h.token_width = 2;
  h.tokenizer_hash = 0x0123456789abcdefull;
  h.token_count = 1234567;
  h.doc_count = 89;
  h.bos_id = -1;
  h.eos_id = 31999;
  std::string b = encode_shard_header(h);
  ASSERT_EQ(b.size(), kShardHeaderBytes);
  EXPECT_EQ(b.substr(0, 8), "TODAETOK");
  ShardHeader g = parse_shard_header(b, "x.tok");
  EXPECT_EQ(g.vocab_size, h.vocab_size);
  EXPECT_EQ(g.token_width, 2u);
  EXPECT_EQ(g.tokenizer_hash, h.tokenizer_hash);
  EXPECT_EQ(g.token_count, h.token_count);
  EXPECT_EQ(g.doc_count, h.doc_count);
  EXPECT_EQ(g.bos_id, -1);
  EXPECT_EQ(g.eos_id, 31999);
}

void expect_error(const std::function<void()>& f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(ShardHeader, Errors) {
  ShardHeader h;
  h.vocab_size = 1000;
  h.eos_id = 5;
  std::string good = encode_shard_header(h);
  expect_error([&] { parse_shard_header(good.substr(0, 40), "a.tok"); }, "a.tok: truncated shard");
  std::string bad = good;
  bad[0] = 'X';
  expect_error([&] { parse_shard_header(bad, "a.tok"); }, "a.tok: not a todae token shard");
  bad = good;
  bad[8] = 7;  // version
  expect_error([&] { parse_shard_header(bad, "a.tok"); }, "format version 7 is not supported");
  bad = good;
  bad[33] ^= 1;  // token count, checksum no longer matches
  expect_error([&] { parse_shard_header(bad, "a.tok"); }, "checksum mismatch");
  h.token_width = 3;
  expect_error([&] { parse_shard_header(encode_shard_header(h), "a.tok"); }, "token_width is 3");
  h.token_width = 2;
  h.vocab_size = 70000;
  expect_error([&] { parse_shard_header(encode_shard_header(h), "a.tok"); }, "does not fit token_width 2");
  h.vocab_size = 1000;
  h.eos_id = 1000;
  expect_error([&] { parse_shard_header(encode_shard_header(h), "a.tok"); }, "eos_id 1000 is outside");
  h.eos_id = -2;
  expect_error([&] { parse_shard_header(encode_shard_header(h), "a.tok"); }, "eos_id -2");
}

ShardManifest sample_manifest() {
  ShardManifest m;
  m.vocab_size = 500;
  m.token_width = 2;
  m.tokenizer_hash = 42;
  m.tokenizer_path = "tok";
  m.eos_id = 3;
  m.val_fraction = 0.01;
  m.seed = 7;
  m.train.tokens = 10;
  m.train.documents = 2;
  m.train.files.push_back({"train-00000.tok", 10, 2, kShardHeaderBytes + 20, 99});
  m.sources["a"] = {2, 10, 30};
  m.inputs = {"in.txt"};
  m.command = "todae data shard";
  return m;
}

TEST(Manifest, RoundTrip) {
  ShardManifest m = sample_manifest();
  ShardManifest g = parse_manifest(manifest_to_json(m), "m.json");
  EXPECT_EQ(g.vocab_size, 500u);
  EXPECT_EQ(g.tokenizer_hash, 42u);
  EXPECT_EQ(g.eos_id, 3);
  EXPECT_EQ(g.bos_id, -1);
  ASSERT_EQ(g.train.files.size(), 1u);
  EXPECT_EQ(g.train.files[0].name, "train-00000.tok");
  EXPECT_EQ(g.train.files[0].xxh64, 99u);
  EXPECT_EQ(g.val.files.size(), 0u);
  EXPECT_EQ(g.sources["a"].tokens, 10u);
  EXPECT_EQ(g.command, "todae data shard");
}

TEST(Manifest, ErrorsNameTheField) {
  std::string good = manifest_to_json(sample_manifest());
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    s.replace(p, from.size(), to);
    return s;
  };
  expect_error([&] { parse_manifest("{\"format\": ", "d/manifest.json"); }, "d/manifest.json: malformed JSON");
  expect_error([&] { parse_manifest("[]", "m.json"); }, "m.json: top level: expected an object");
  expect_error([&] { parse_manifest(edit("\"vocab_size\": 500", "\"vocab_size\": 8e96388"), "m.json"); },
               "m.json: malformed JSON: number overflow");  // found by fuzz_shard
  expect_error([&] { parse_manifest(edit("\"format_version\": 1", "\"format_version\": 9"), "m.json"); },
               "format_version 9 is not supported");
  expect_error([&] { parse_manifest(edit("\"vocab_size\": 500", "\"vocab_size\": \"500\""), "m.json"); },
               "m.json: tokenizer.vocab_size: expected a non-negative integer");
  expect_error([&] { parse_manifest(edit("\"name\": \"train-00000.tok\"", "\"name\": \"../etc/passwd\""), "m.json"); },
               "splits.train.files[0].name: expected a file name");
  expect_error([&] { parse_manifest(edit("\"tokens\": 10,\n      \"documents\": 2", "\"tokens\": 11,\n      \"documents\": 2"), "m.json"); },
               "splits.train.tokens: is not the sum");
  expect_error([&] { parse_manifest(edit("\"bytes\": 84", "\"bytes\": 85"), "m.json"); },
               "splits.train.files[0].bytes: does not match");
  expect_error([&] { parse_manifest(edit("\"xxh64\": \"0000000000000063\"", "\"xxh64\": \"63\""), "m.json"); },
               "files[0].xxh64: expected 16 lowercase hex digits");
  expect_error([&] { parse_manifest(edit("\"eos_id\": 3", "\"eos_id\": 500"), "m.json"); },
               "tokenizer.eos_id: is outside the vocabulary");
  expect_error([&] { parse_manifest(edit("\"val\": {", "\"vax\": {"), "m.json"); }, "splits.val: missing");
}

struct ShardFixture : ::testing::Test {
  TempDir t;
  std::string tok;
  std::vector<std::string> docs = sample_docs(300);
  std::string input;
  void SetUp() override {
    tok = make_tokenizer(t);
    input = t.file("docs.txt", join_docs(docs));
  }
  StageReport shard(const std::string& out, int threads = 1, double val = 0.1, uint64_t shard_tokens = 100'000'000,
                    size_t chunk = 4 << 20) {
    InputOptions in;
    in.inputs = {input};
    in.chunk_bytes = chunk;
    ShardOptions so;
    so.tokenizer = tok;
    so.val_fraction = val;
    so.shard_tokens = shard_tokens;
    return run_shard(in, so, quiet_common(out, threads));
  }
  // Documents of a split, decoded back to text, split at eos.
  std::vector<std::string> decoded(const std::string& dir, const ShardSplit& s) {
    Tokenizer tk = load_tokenizer(tok);
    int32_t eos = tk.token_id("<|eos|>");
    std::vector<std::string> out;
    for (const ShardFile& f : s.files) {
      std::string b = read_bin(dir + "/" + f.name);
      std::vector<int32_t> ids;
      for (size_t i = kShardHeaderBytes; i + 1 < b.size(); i += 2) ids.push_back(uint8_t(b[i]) | (uint8_t(b[i + 1]) << 8));
      EXPECT_EQ(ids.size(), f.tokens);
      EXPECT_TRUE(!ids.empty() && ids.back() == eos) << "a shard ends at a document end";
      std::vector<int32_t> cur;
      for (int32_t id : ids) {
        if (id == eos) {
          out.push_back(decode(tk, cur));
          cur.clear();
        } else {
          cur.push_back(id);
        }
      }
    }
    return out;
  }
};

TEST_F(ShardFixture, DocumentsRoundTripThroughTheSplits) {
  std::string out = t.path + "/sh";
  StageReport r = shard(out);
  ShardManifest m = read_manifest(out);
  EXPECT_EQ(m.train.documents + m.val.documents, docs.size());
  EXPECT_EQ(r.docs_in, docs.size());
  EXPECT_GT(m.val.documents, 10u);   // 10% of 300, give or take
  EXPECT_LT(m.val.documents, 60u);
  EXPECT_EQ(m.eos_id, load_tokenizer(tok).token_id("<|eos|>"));
  EXPECT_EQ(m.tokenizer_hash, tokenizer_file_hash(tok));
  std::vector<std::string> train = decoded(out, m.train), val = decoded(out, m.val);
  ASSERT_EQ(train.size() + val.size(), docs.size());
  // Each split keeps the input order.
  size_t a = 0, b = 0;
  for (const std::string& d : docs) {
    if (a < train.size() && train[a] == d) ++a;
    else if (b < val.size() && val[b] == d) ++b;
    else FAIL() << "document not found in order: " << d;
  }
  verify_shards(out);
  EXPECT_TRUE(file_exists(out + "/report.json"));
}

TEST_F(ShardFixture, ByteIdenticalAcrossThreadsAndChunkSizes) {
  shard(t.path + "/a", 1);
  shard(t.path + "/b", 4, 0.1, 100'000'000, 100);  // tiny chunks: many cuts, many workers
  for (const char* f : {"train-00000.tok", "val-00000.tok"})
    EXPECT_EQ(read_bin(t.path + "/a/" + f), read_bin(t.path + "/b/" + f)) << f;
}

TEST_F(ShardFixture, ShardsCloseAtDocumentEnds) {
  std::string out = t.path + "/sh";
  shard(out, 2, 0.0, 500);
  ShardManifest m = read_manifest(out);
  EXPECT_GT(m.train.files.size(), 3u);
  EXPECT_EQ(m.val.files.size(), 0u);
  for (size_t i = 0; i + 1 < m.train.files.size(); ++i) {
    EXPECT_GE(m.train.files[i].tokens, 500u);
    EXPECT_LT(m.train.files[i].tokens, 500u + 300u);
  }
  EXPECT_EQ(decoded(out, m.train).size(), docs.size());
  // A re-run with bigger shards replaces the old ones and leaves no stale files.
  shard(out, 1, 0.0);
  m = read_manifest(out);
  EXPECT_EQ(m.train.files.size(), 1u);
  EXPECT_FALSE(file_exists(out + "/train-00001.tok"));
  verify_shards(out);
}

TEST_F(ShardFixture, SplitDependsOnTextOnly) {
  // The same documents in another order land in the same splits.
  std::vector<std::string> rev(docs.rbegin(), docs.rend());
  input = t.file("rev.txt", join_docs(rev));
  shard(t.path + "/r");
  input = t.path + "/docs.txt";
  shard(t.path + "/f");
  ShardManifest mr = read_manifest(t.path + "/r"), mf = read_manifest(t.path + "/f");
  std::vector<std::string> vr = decoded(t.path + "/r", mr.val), vf = decoded(t.path + "/f", mf.val);
  std::reverse(vr.begin(), vr.end());
  EXPECT_EQ(vr, vf);
}

TEST_F(ShardFixture, CorruptShardsAreNamed) {
  std::string out = t.path + "/sh";
  shard(out);
  std::string train = out + "/train-00000.tok";
  std::string bytes = read_bin(train);
  LoaderOptions lo;
  lo.dir = out;
  lo.seq_len = 8;
  lo.batch_size = 2;
  // Truncated.
  write_file_atomic(train, bytes.substr(0, bytes.size() - 2));
  expect_error([&] { TokenLoader l(lo); }, train + ": truncated shard");
  expect_error([&] { verify_shards(out); }, train);
  // Trailing bytes.
  write_file_atomic(train, bytes + "xx");
  expect_error([&] { verify_shards(out); }, "bytes after the last token");
  // Flipped token: only the payload checksum sees it.
  std::string flipped = bytes;
  flipped[kShardHeaderBytes + 10] ^= 1;
  write_file_atomic(train, flipped);
  EXPECT_NO_THROW(verify_shards(out, false));
  expect_error([&] { verify_shards(out, true); }, train + ": token data checksum mismatch");
  lo.verify_payload = true;
  expect_error([&] { TokenLoader l(lo); }, "checksum mismatch");
  lo.verify_payload = false;
  // Header damage.
  std::string hdr = bytes;
  hdr[20] = 4;
  write_file_atomic(train, hdr);
  expect_error([&] { TokenLoader l(lo); }, train + ": shard header checksum mismatch");
  write_file_atomic(train, bytes);
  EXPECT_NO_THROW(TokenLoader l(lo));
  // Missing file, missing manifest.
  std::filesystem::remove(out + "/val-00000.tok");
  lo.split = "val";
  expect_error([&] { TokenLoader l(lo); }, "val-00000.tok");
  std::filesystem::remove(out + "/manifest.json");
  expect_error([&] { TokenLoader l(lo); }, out + ": no manifest.json");
}

TEST_F(ShardFixture, LoaderChecksTokenizerAndSize) {
  std::string out = t.path + "/sh";
  shard(out);
  LoaderOptions lo;
  lo.dir = out;
  lo.seq_len = 16;
  lo.batch_size = 2;
  lo.tokenizer = tok;
  EXPECT_NO_THROW(TokenLoader l(lo));
  TempDir t2;
  std::string other = t2.file("tokenizer.json", read_file(tok + "/tokenizer.json") + " ");
  lo.tokenizer = other;
  expect_error([&] { TokenLoader l(lo); }, "made with another tokenizer");
  lo.tokenizer.clear();
  lo.seq_len = 1 << 20;
  TokenLoader small(lo);  // opens, so a trainer can skip a small validation split
  EXPECT_EQ(small.batches_per_epoch(), 0u);
  expect_error([&] { small.next_batch(); }, "a global batch needs 2");
  lo.seq_len = 16;
  lo.split = "test";
  expect_error([&] { TokenLoader l(lo); }, "no split 'test'");
  lo.split = "train";
  lo.rank = 2;
  lo.world_size = 2;
  expect_error([&] { TokenLoader l(lo); }, "rank 2 is not in");
}

TEST(Permute, IsABijection) {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 16ull, 17ull, 1000ull, 4097ull}) {
    for (uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      std::vector<bool> seen(n);
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t p = permute_index(i, n, key);
        ASSERT_LT(p, n);
        ASSERT_FALSE(seen[p]) << "n=" << n << " key=" << key;
        seen[p] = true;
      }
    }
  }
  // Different keys give different orders.
  int same = 0;
  for (uint64_t i = 0; i < 1000; ++i) same += permute_index(i, 1000, 1) == permute_index(i, 1000, 2);
  EXPECT_LT(same, 20);
}

TEST_F(ShardFixture, LoaderWindowsAreTheStream) {
  std::string out = t.path + "/sh";
  shard(out, 1, 0.0, 700);  // several shards: windows cross shard boundaries
  LoaderOptions lo;
  lo.dir = out;
  lo.seq_len = 16;
  lo.batch_size = 3;
  lo.seed = 5;
  TokenLoader l(lo);
  ShardManifest m = read_manifest(out);
  ASSERT_GT(m.train.files.size(), 2u);
  // The whole stream, from the files.
  std::vector<int32_t> stream;
  for (const ShardFile& f : m.train.files) {
    std::string b = read_bin(out + "/" + f.name);
    for (size_t i = kShardHeaderBytes; i + 1 < b.size(); i += 2) stream.push_back(uint8_t(b[i]) | (uint8_t(b[i + 1]) << 8));
  }
  EXPECT_EQ(l.tokens(), stream.size());
  EXPECT_EQ(l.windows_per_epoch(), (stream.size() - 1) / 16);
  std::set<uint64_t> windows;
  for (uint64_t step = 0; step < l.batches_per_epoch(); ++step) {
    DataPosition p = l.position();
    std::vector<int32_t> batch = l.next_batch();
    for (int b = 0; b < 3; ++b) {
      uint64_t w = l.window_at(p.epoch, p.index + b);
      windows.insert(w);
      std::vector<int32_t> want(stream.begin() + w * 16, stream.begin() + w * 16 + 17);
      ASSERT_EQ(std::vector<int32_t>(batch.begin() + b * 17, batch.begin() + (b + 1) * 17), want);
    }
  }
  EXPECT_EQ(windows.size(), l.batches_per_epoch() * 3) << "no window twice in an epoch";
  // Next epoch: a different order.
  DataPosition p = l.position();
  l.next_batch();
  EXPECT_EQ(l.position().epoch, 1u);
  EXPECT_EQ(l.position().index, 3u);
  (void)p;
}

TEST_F(ShardFixture, LoaderResumesExactly) {
  std::string out = t.path + "/sh";
  shard(out);
  LoaderOptions lo;
  lo.dir = out;
  lo.seq_len = 8;
  lo.batch_size = 4;
  lo.seed = 11;
  TokenLoader a(lo);
  uint64_t per_epoch = a.batches_per_epoch();
  std::vector<std::vector<int32_t>> seq;
  DataPosition saved;
  for (uint64_t i = 0; i < per_epoch + 5; ++i) {
    if (i == per_epoch - 2) saved = a.position();
    seq.push_back(a.next_batch());
  }
  TokenLoader b(lo);
  b.seek(saved);
  for (uint64_t i = per_epoch - 2; i < per_epoch + 5; ++i) ASSERT_EQ(b.next_batch(), seq[i]) << "batch " << i;
  // Another seed, another order; shuffle off, the stream in order.
  lo.seed = 12;
  TokenLoader c(lo);
  EXPECT_NE(c.next_batch(), seq[0]);
  lo.shuffle = false;
  TokenLoader d(lo);
  std::vector<int32_t> first = d.next_batch();
  std::vector<int32_t> want(9);
  d.read_tokens(0, want);
  EXPECT_EQ(std::vector<int32_t>(first.begin(), first.begin() + 9), want);
  expect_error([&] { d.seek({0, d.windows_per_epoch() + 1}); }, "past the");
}

TEST_F(ShardFixture, RanksSplitTheGlobalBatch) {
  std::string out = t.path + "/sh";
  shard(out);
  LoaderOptions lo;
  lo.dir = out;
  lo.seq_len = 8;
  lo.batch_size = 6;
  lo.seed = 3;
  TokenLoader one(lo);  // one process, batch 6
  lo.batch_size = 2;
  lo.world_size = 3;
  std::vector<std::unique_ptr<TokenLoader>> ranks;
  for (int r = 0; r < 3; ++r) {
    lo.rank = r;
    ranks.push_back(std::make_unique<TokenLoader>(lo));
  }
  EXPECT_EQ(one.batches_per_epoch(), ranks[0]->batches_per_epoch());
  for (uint64_t step = 0; step < one.batches_per_epoch() + 3; ++step) {
    std::vector<int32_t> global = one.next_batch(), joined;
    for (auto& r : ranks) {
      std::vector<int32_t> part = r->next_batch();
      joined.insert(joined.end(), part.begin(), part.end());
    }
    ASSERT_EQ(joined, global) << "step " << step;
    for (auto& r : ranks) ASSERT_EQ(r->position(), one.position());
  }
}

TEST_F(ShardFixture, OutputNeverTouchesInputs) {
  InputOptions in;
  in.inputs = {t.path};
  ShardOptions so;
  so.tokenizer = tok;
  expect_error([&] { run_shard(in, so, quiet_common(t.path + "/out")); }, "is inside the input folder");
  in.inputs = {input};
  expect_error([&] { run_shard(in, so, quiet_common(t.path)); }, "inside the output folder");
  std::string foreign = t.path + "/foreign";
  make_directories(foreign);
  t.file("foreign/notes.txt", "mine");
  expect_error([&] { run_shard(in, so, quiet_common(foreign)); }, "holds files todae did not write (notes.txt)");
  so.add_eos = false;
  expect_error([&] { run_shard(in, so, quiet_common(t.path + "/o2")); }, "--no-eos needs --add-bos");
  so.add_eos = true;
  so.eos_token = "<|nope|>";
  expect_error([&] { run_shard(in, so, quiet_common(t.path + "/o2")); }, "no token '<|nope|>'");
}

TEST_F(ShardFixture, BosAndEos) {
  InputOptions in;
  in.inputs = {input};
  ShardOptions so;
  so.tokenizer = tok;
  so.add_bos = true;
  so.val_fraction = 0;
  run_shard(in, so, quiet_common(t.path + "/be"));
  ShardManifest m = read_manifest(t.path + "/be");
  Tokenizer tk = load_tokenizer(tok);
  EXPECT_EQ(m.bos_id, tk.token_id("<|bos|>"));
  std::string b = read_bin(t.path + "/be/train-00000.tok");
  int32_t first = uint8_t(b[kShardHeaderBytes]) | (uint8_t(b[kShardHeaderBytes + 1]) << 8);
  EXPECT_EQ(first, m.bos_id);
}

// 4-byte tokens (vocabularies over 65,536), from hand-written shards.
TEST(Loader, WideTokensFromHandWrittenShards) {
  TempDir t;
  ShardManifest m;
  m.vocab_size = 200000;
  m.token_width = 4;
  m.tokenizer_hash = 7;
  m.eos_id = 199999;
  uint32_t next = 70000;
  for (int f = 0; f < 3; ++f) {
    ShardHeader h;
    h.vocab_size = m.vocab_size;
    h.token_width = 4;
    h.tokenizer_hash = 7;
    h.eos_id = m.eos_id;
    h.token_count = 50 + uint64_t(f) * 7;
    h.doc_count = 1;
    std::string payload;
    for (uint64_t i = 0; i < h.token_count; ++i, ++next) payload.append(reinterpret_cast<const char*>(&next), 4);
    std::string name = cat("train-0000", f, ".tok");
    t.file(name, encode_shard_header(h) + payload);
    ShardFile sf{name, h.token_count, 1, kShardHeaderBytes + payload.size(), 0};
    sf.xxh64 = std::stoull(hex64(0), nullptr, 16);
    m.train.files.push_back(sf);
    m.train.tokens += h.token_count;
    m.train.documents += 1;
  }
  t.file("manifest.json", manifest_to_json(m));
  LoaderOptions lo;
  lo.dir = t.path;
  lo.seq_len = 10;
  lo.batch_size = 2;
  lo.shuffle = false;
  TokenLoader l(lo);
  EXPECT_EQ(l.tokens(), 50u + 57u + 64u);
  std::vector<int32_t> b = l.next_batch();
  for (int i = 0; i < 11; ++i) EXPECT_EQ(b[size_t(i)], 70000 + i);
  for (int i = 0; i < 11; ++i) EXPECT_EQ(b[size_t(11 + i)], 70010 + i);
  std::vector<int32_t> span(20);
  l.read_tokens(45, span);  // across the first shard boundary
  for (int i = 0; i < 20; ++i) EXPECT_EQ(span[size_t(i)], 70045 + i);
  lo.verify_payload = true;  // the hand-written manifest has no real checksums
  EXPECT_THROW(TokenLoader bad(lo), Error);
}

TEST_F(ShardFixture, CliShardAndVerify) {
  int rc;
  std::string out = t.path + "/cli";
  std::string o = run_cmd(cat(TODAE_BIN, " data shard --tokenizer ", tok, " --input ", input, " --output ", out,
                              " --val-fraction 0.05 --quiet"),
                          &rc);
  EXPECT_EQ(rc, 0) << o;
  EXPECT_NE(o.find("wrote"), std::string::npos) << o;
  ShardManifest m = read_manifest(out);
  EXPECT_NE(m.command.find("data shard --tokenizer"), std::string::npos) << m.command;
  o = run_cmd(cat(TODAE_BIN, " data verify ", out), &rc);
  EXPECT_EQ(rc, 0) << o;
  EXPECT_NE(o.find(": ok"), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data shard --tokenizer ", t.path, "/nope --input ", input, " --output ", out, " --quiet"), &rc);
  EXPECT_EQ(rc, 1) << o;
  EXPECT_NE(o.find("todae: error:"), std::string::npos) << o;
  o = run_cmd(cat(TODAE_BIN, " data verify ", t.path), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(o.find("no manifest.json"), std::string::npos) << o;
}

}  // namespace
}  // namespace todae::test
