#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "formats/formats.h"
#include "formats/formats_test_util.h"

using namespace todae;
using todae::test::error_of;
using todae::test::TmpDir;
namespace fs = std::filesystem;

namespace {

// Little-endian byte builder for hand-made (often broken) GGUF files.
struct Bytes {
  std::string s;
  Bytes& raw(std::string_view x) {
    s.append(x);
    return *this;
  }
  Bytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint64_t v) { return le(v, 1); }
  Bytes& u32(uint64_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& str(std::string_view x) { return u64(x.size()).raw(x); }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  // A tensor info with the given dims (innermost first), type and offset.
  Bytes& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(dims.size());
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t a = 32) {
    s.append((a - s.size() % a) % a, '\0');
    return *this;
  }
  Bytes& zeros(size_t n) {
    s.append(n, '\0');
    return *this;
  }
};

constexpr uint32_t kU32 = 4, kArr = 9, kStr = 8;

struct Sample {
  std::vector<float> w{1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};  // F32 [3, 2]
  std::vector<uint16_t> h{0x3c00, 0xc000, 0x7bff, 0x0001};       // F16 [4]
  std::vector<uint8_t> q8, q4;                                   // Q8_0 [64, 2], Q4_0 [32]
  Sample() {
    std::mt19937 rng(3);
    q8.resize(4 * 34);
    q4.resize(18);
    for (auto& b : q8) b = static_cast<uint8_t>(rng());
    for (auto& b : q4) b = static_cast<uint8_t>(rng());
  }
  std::vector<GgufTensorRef> refs() const {
    return {
        {"blk.0.attn_q.weight", GgmlType::F32, {3, 2}, w.data(), 24},
        {"blk.0.attn_norm.weight", GgmlType::F16, {4}, h.data(), 8},
        {"blk.0.ffn_up.weight", GgmlType::Q8_0, {64, 2}, q8.data(), q8.size()},
        {"token_embd.weight", GgmlType::Q4_0, {32}, q4.data(), q4.size()},
    };
  }
};

GgufValue scalar_u(GgufValueType t, uint64_t x) {
  GgufValue v;
  v.type = t;
  v.scalar = x;
  return v;
}
GgufValue scalar_i(GgufValueType t, int64_t x) {
  GgufValue v;
  v.type = t;
  v.scalar = x;
  return v;
}

// One of every value type, at the edges of its range, and arrays of each element type.
std::vector<std::pair<std::string, GgufValue>> all_values() {
  using T = GgufValueType;
  return {
      {"general.architecture", gguf_string("llama")},
      {"t.u8", scalar_u(T::UINT8, 255)},
      {"t.i8", scalar_i(T::INT8, -128)},
      {"t.u16", scalar_u(T::UINT16, 65535)},
      {"t.i16", scalar_i(T::INT16, -32768)},
      {"t.u32", gguf_u32(4294967295u)},
      {"t.i32", gguf_i32(INT32_MIN)},
      {"t.f32", gguf_f32(1e-5f)},
      {"t.bool_t", gguf_bool(true)},
      {"t.bool_f", gguf_bool(false)},
      {"t.str", gguf_string(std::string("안녕 \0 x", 10))},
      {"t.empty_str", gguf_string("")},
      {"t.u64", gguf_u64(UINT64_MAX)},
      {"t.i64", gguf_i64(INT64_MIN)},
      {"t.f64", gguf_f64(-0.1)},
      {"a.u8", gguf_ints(T::UINT8, {0, 7, 255})},
      {"a.i8", gguf_ints(T::INT8, {-128, 127})},
      {"a.u16", gguf_ints(T::UINT16, {65535})},
      {"a.i16", gguf_ints(T::INT16, {-32768, 1})},
      {"a.u32", gguf_ints(T::UINT32, {4294967295ll, 0})},
      {"a.i32", gguf_i32s({1, 2, -3})},
      {"a.f32", gguf_f32s({0.5, -1.25, static_cast<double>(3e38f)})},
      {"a.bool", gguf_ints(T::BOOL, {1, 0, 1})},
      {"a.str", gguf_strings({"a", "", "Ġthe", std::string("\0", 1)})},
      {"a.u64", gguf_ints(T::UINT64, {-1, 5})},  // bit pattern: UINT64_MAX, 5
      {"a.i64", gguf_ints(T::INT64, {INT64_MIN, INT64_MAX})},
      {"a.f64", gguf_floats(T::FLOAT64, {0.1, -2.0})},
      {"a.empty", gguf_strings({})},
      {"a.empty_i", gguf_i32s({})},
  };
}

std::string write_sample(const TmpDir& dir, const std::string& name, const GgufWriteOptions& opt = {}) {
  Sample s;
  std::string p = dir / name;
  write_gguf(p, all_values(), s.refs(), opt);
  return p;
}

bool has(const std::string& s, std::string_view frag) { return s.find(frag) != std::string::npos; }

}  // namespace

TEST(Gguf, TypeTableMatchesGgml) {
  struct Want {
    GgmlType t;
    int elems, bytes;
    const char* name;
  };
  const Want want[] = {
      {GgmlType::F32, 1, 4, "F32"},       {GgmlType::F16, 1, 2, "F16"},       {GgmlType::BF16, 1, 2, "BF16"},
      {GgmlType::Q4_0, 32, 18, "Q4_0"},   {GgmlType::Q4_1, 32, 20, "Q4_1"},   {GgmlType::Q5_0, 32, 22, "Q5_0"},
      {GgmlType::Q5_1, 32, 24, "Q5_1"},   {GgmlType::Q8_0, 32, 34, "Q8_0"},   {GgmlType::Q8_1, 32, 36, "Q8_1"},
      {GgmlType::Q2_K, 256, 84, "Q2_K"},  {GgmlType::Q3_K, 256, 110, "Q3_K"}, {GgmlType::Q4_K, 256, 144, "Q4_K"},
      {GgmlType::Q5_K, 256, 176, "Q5_K"}, {GgmlType::Q6_K, 256, 210, "Q6_K"}, {GgmlType::Q8_K, 256, 292, "Q8_K"},
      {GgmlType::I8, 1, 1, "I8"},         {GgmlType::I16, 1, 2, "I16"},       {GgmlType::I32, 1, 4, "I32"},
      {GgmlType::I64, 1, 8, "I64"},       {GgmlType::F64, 1, 8, "F64"},       {GgmlType::IQ4_NL, 32, 18, "IQ4_NL"},
      {GgmlType::IQ4_XS, 256, 136, "IQ4_XS"}, {GgmlType::IQ2_XXS, 256, 66, "IQ2_XXS"},
      {GgmlType::IQ1_M, 256, 56, "IQ1_M"},    {GgmlType::MXFP4, 32, 17, "MXFP4"},
  };
  for (const auto& w : want) {
    int e = 0, b = 0;
    ASSERT_TRUE(ggml_type_block(w.t, &e, &b)) << w.name;
    EXPECT_EQ(e, w.elems) << w.name;
    EXPECT_EQ(b, w.bytes) << w.name;
    EXPECT_STREQ(ggml_type_name(w.t), w.name);
  }
  EXPECT_FALSE(ggml_type_block(static_cast<GgmlType>(4), nullptr, nullptr));
  EXPECT_STREQ(ggml_type_name(static_cast<GgmlType>(99)), "type 99");
  const int64_t q[] = {4096, 11008};
  EXPECT_EQ(ggml_nbytes(GgmlType::Q4_K, q), 4096ull / 256 * 144 * 11008);
  const int64_t bad[] = {100};
  EXPECT_TRUE(has(error_of([&] { ggml_nbytes(GgmlType::Q8_0, bad); }), "not a multiple of the Q8_0 block size 32"));
  EXPECT_STREQ(gguf_value_type_name(GgufValueType::FLOAT64), "FLOAT64");
}

TEST(Gguf, ExactLayoutOfASmallFile) {
  TmpDir dir;
  float one = 1.0f;
  GgufTensorRef t{"t", GgmlType::F32, {1}, &one, 4};
  GgufWriteOptions opt;
  opt.checksums = false;
  write_gguf(dir / "a.gguf", {{"a", gguf_u32(7)}}, {&t, 1}, opt);
  Bytes want;
  want.header(1, 1).str("a").u32(kU32).u32(7).tensor("t", {1}, 0, 0).pad();
  ASSERT_EQ(want.s.size(), 96u);
  want.raw(std::string_view(reinterpret_cast<const char*>(&one), 4)).pad();
  EXPECT_EQ(read_file(dir / "a.gguf"), want.s);
  // And the hand-made bytes read back.
  auto f = parse_gguf(want.s, "hand.gguf");
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->get_int("a"), 7);
  EXPECT_EQ(f->data_size, 32u);
  EXPECT_EQ(f->data_start, reinterpret_cast<const uint8_t*>(want.s.data()) + 96);
}

TEST(Gguf, RoundTripOfEveryValueTypeAndTensorBytes) {
  TmpDir dir;
  Sample s;
  std::string p = write_sample(dir, "m.gguf");
  EXPECT_FALSE(fs::exists(p + ".tmp." + std::to_string(::getpid())));
  auto f = open_gguf(p);
  EXPECT_EQ(f->path, p);
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->alignment, 32u);
  EXPECT_EQ(f->find_value("general.alignment"), nullptr);  // only written when not 32

  auto want = all_values();
  EXPECT_EQ(f->metadata.size(), want.size() + 2);  // + the checksums and their tensor table
  for (const auto& [k, v] : want) {
    const GgufValue* got = f->find_value(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_TRUE(*got == v) << k;
  }
  // FLOAT32 values are read back as the float they were stored as.
  EXPECT_EQ(f->get_float("t.f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(f->get_floats("a.f32")[2], static_cast<double>(3e38f));
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_string("t.str"), std::string("안녕 \0 x", 10));
  EXPECT_EQ(f->get_int("t.u32"), 4294967295ll);
  EXPECT_EQ(f->get_int("t.i64"), INT64_MIN);
  EXPECT_EQ(f->get_int("t.u8"), 255);
  EXPECT_EQ(f->get_float("t.i8"), -128.0);
  EXPECT_TRUE(f->get_bool("t.bool_t"));
  EXPECT_FALSE(f->get_bool("t.bool_f"));
  EXPECT_EQ(f->get_strings("a.str")[2], "Ġthe");
  EXPECT_EQ(f->get_ints("a.u64")[0], -1);
  EXPECT_EQ(f->get_ints("a.bool"), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f->get_string("nope", "dflt"), "dflt");
  EXPECT_EQ(f->get_int("nope", 5), 5);
  EXPECT_EQ(f->get_float("nope", 0.5), 0.5);
  EXPECT_EQ(f->find_value("a.str")->size(), 4u);

  // Getter errors name the file and the key.
  std::string e = error_of([&] { f->get_int("nope"); });
  EXPECT_TRUE(has(e, p + ": no metadata key 'nope'")) << e;
  e = error_of([&] { f->get_string("t.u32"); });
  EXPECT_TRUE(has(e, "metadata key 't.u32' is UINT32, expected STRING")) << e;
  e = error_of([&] { f->get_int("t.u64"); });
  EXPECT_TRUE(has(e, "'t.u64' is 18446744073709551615, which is too large")) << e;
  e = error_of([&] { f->get_string("t.str", "x"); f->get_int("t.str", 1); });
  EXPECT_TRUE(has(e, "'t.str' is STRING, expected an integer")) << e;
  e = error_of([&] { f->get_strings("a.i32"); });
  EXPECT_TRUE(has(e, "'a.i32' is an array of INT32, expected an array of STRING")) << e;
  EXPECT_THROW(f->get_bool("t.u8"), Error);
  EXPECT_THROW(f->get_floats("a.i32"), Error);

  // Tensors: file order, shapes, exact bytes, aligned.
  ASSERT_EQ(f->tensors.size(), 4u);
  auto refs = s.refs();
  for (size_t i = 0; i < refs.size(); ++i) {
    const GgufTensorInfo& t = f->tensors[i];
    EXPECT_EQ(t.name, refs[i].name);
    EXPECT_EQ(t.type, refs[i].type);
    EXPECT_EQ(t.dims, refs[i].dims);
    EXPECT_EQ(t.nbytes, refs[i].nbytes);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data(t)) % 32, 0u) << t.name;
    EXPECT_EQ(std::memcmp(f->data(t), refs[i].data, refs[i].nbytes), 0) << t.name;
    EXPECT_EQ(f->bytes(t).size(), refs[i].nbytes);
  }
  EXPECT_EQ(f->get("blk.0.ffn_up.weight").numel(), 128u);
  EXPECT_EQ(f->find("nope"), nullptr);
  e = error_of([&] { f->get("nope"); });
  EXPECT_TRUE(has(e, p + ": no tensor 'nope'")) << e;
  // Checksums: one per tensor, in order.
  const auto& sums = f->get_strings(kGgufChecksumsKey);
  ASSERT_EQ(sums.size(), 4u);
  EXPECT_EQ(sums[2], xxh64_hex(xxh64(s.q8.data(), s.q8.size())));
  // The whole file is just as long as the layout says: the last tensor padded to the alignment.
  EXPECT_EQ(file_size(p), static_cast<uint64_t>(f->data_start - reinterpret_cast<const uint8_t*>(f->map->data)) +
                              f->tensors.back().offset + 32);

  // Writing the metadata back (checksums included, as a converter copying a file would) gives a
  // file with fresh checksums for the new tensors.
  std::vector<std::pair<std::string, GgufValue>> copy(f->metadata.begin(), f->metadata.end());
  float z[2] = {9, 8};
  GgufTensorRef other{"other", GgmlType::F32, {2}, z, 8};
  write_gguf(dir / "copy.gguf", copy, {&other, 1});
  auto g = open_gguf(dir / "copy.gguf");
  EXPECT_EQ(g->get_strings(kGgufChecksumsKey), std::vector<std::string>{xxh64_hex(xxh64(z, 8))});
  EXPECT_EQ(g->metadata.size(), f->metadata.size());
}

TEST(Gguf, AlignmentOtherThan32IsWrittenAndHonoured) {
  TmpDir dir;
  GgufWriteOptions opt;
  opt.alignment = 64;
  std::string p = write_sample(dir, "a64.gguf", opt);
  auto f = open_gguf(p);
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->get_int("general.alignment"), 64);
  EXPECT_EQ(f->find_value("general.alignment")->type, GgufValueType::UINT32);
  EXPECT_EQ((f->data_start - reinterpret_cast<const uint8_t*>(f->map->data)) % 64, 0);
  for (const auto& t : f->tensors) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(f->tensors[1].offset, 64u);  // the 24-byte first tensor is padded to 64

  // A general.alignment given by the caller must agree with the option.
  float x = 1;
  GgufTensorRef t{"x", GgmlType::F32, {1}, &x, 4};
  write_gguf(dir / "b.gguf", {{"general.alignment", gguf_u32(64)}}, {&t, 1}, opt);
  EXPECT_EQ(open_gguf(dir / "b.gguf")->alignment, 64u);
  std::string e = error_of([&] { write_gguf(dir / "c.gguf", {{"general.alignment", gguf_u32(16)}}, {&t, 1}, opt); });
  EXPECT_TRUE(has(e, "'general.alignment': must be UINT32 64")) << e;
  opt.alignment = 48;
  e = error_of([&] { write_gguf(dir / "c.gguf", {}, {&t, 1}, opt); });
  EXPECT_TRUE(has(e, "alignment 48 is not a power of two")) << e;
  EXPECT_FALSE(fs::exists(dir / "c.gguf"));
  // A file with alignment 1 (legal, if odd) reads too.
  opt.alignment = 1;
  write_gguf(dir / "one.gguf", {}, {&t, 1}, opt);
  EXPECT_EQ(open_gguf(dir / "one.gguf")->alignment, 1u);
}

TEST(Gguf, FlippedByteIsReportedWithTheTensorName) {
  TmpDir dir;
  std::string p = write_sample(dir, "m.gguf");
  std::string raw = read_file(p);
  uint64_t at;
  {
    auto f = open_gguf(p);
    const auto& t = f->get("blk.0.ffn_up.weight");
    at = static_cast<uint64_t>(f->data(t) - reinterpret_cast<const uint8_t*>(f->map->data)) + 40;
  }
  raw[at] ^= 0x01;
  write_file_atomic(p, raw);
  std::string e = error_of([&] { open_gguf(p); });
  EXPECT_TRUE(has(e, p + ": tensor 'blk.0.ffn_up.weight' is corrupt: xxh64 checksum")) << e;
  // Lazy open, then an explicit check.
  GgufOpenOptions lazy;
  lazy.verify_checksums = false;
  auto g = open_gguf(p, lazy);
  e = error_of([&] { g->verify_checksums(); });
  EXPECT_TRUE(has(e, "'blk.0.ffn_up.weight' is corrupt")) << e;
  // Without checksums nothing is recorded and nothing is checked.
  GgufWriteOptions no;
  no.checksums = false;
  std::string q = write_sample(dir, "n.gguf", no);
  auto h = open_gguf(q);
  EXPECT_EQ(h->find_value(kGgufChecksumsKey), nullptr);
  h->verify_checksums();
}

TEST(Gguf, EveryTruncationAndRandomCorruptionIsACleanError) {
  TmpDir dir;
  std::string raw = read_file(write_sample(dir, "m.gguf"));
  // Every prefix fails (tensors are checksummed and the last one's padding is the file's end only
  // after its data), with a message about truncation for every cut inside the header.
  auto f = parse_gguf(raw, "full");
  uint64_t header_end = static_cast<uint64_t>(f->data_start - reinterpret_cast<const uint8_t*>(raw.data()));
  uint64_t last_end = header_end + f->tensors.back().offset + f->tensors.back().nbytes;
  for (size_t len = 0; len < last_end; ++len) {
    std::string cut = raw.substr(0, len);
    std::string e = error_of([&] { parse_gguf(cut, "cut.gguf"); });
    ASSERT_FALSE(e.empty()) << len;
    EXPECT_TRUE(has(e, "cut.gguf: ")) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    if (len >= 4) {
      EXPECT_TRUE(has(e, "truncated")) << len << ": " << e;
    }
  }
  // The trailing padding of the last tensor is not needed.
  EXPECT_NO_THROW(parse_gguf(raw.substr(0, last_end), "cut.gguf"));

  // Random bytes changed anywhere: an Error or a valid file, never a crash (ASan runs this too).
  std::mt19937 rng(11);
  int errors = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string bad = raw;
    int flips = 1 + rng() % 3;
    for (int k = 0; k < flips; ++k) {
      // Mostly the header, where the structure is.
      size_t at = (rng() % 4 != 0) ? rng() % header_end : rng() % bad.size();
      bad[at] = static_cast<char>(rng());
    }
    try {
      auto g = parse_gguf(bad, "bad");
      uint64_t sum = 0;
      for (const auto& t : g->tensors)
        for (char c : g->bytes(t)) sum += static_cast<unsigned char>(c);
      (void)sum;
    } catch (const Error& e) {
      ++errors;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 2000);
}

TEST(Gguf, CraftedFilesGiveSpecificOneLineErrors) {
  struct Case {
    std::string name, bytes, expect;
  };
  const uint64_t huge = 1ull << 63;
  const uint64_t max = UINT64_MAX;
  std::vector<Case> cases;
  auto add = [&](std::string name, const Bytes& b, std::string expect) {
    cases.push_back({std::move(name), b.s, std::move(expect)});
  };
  // A valid F32 [8] tensor 'w' at offset 0, preceded by the given metadata.
  auto one_tensor = [](const std::function<void(Bytes&)>& kv, uint64_t n_kv, std::vector<uint64_t> dims = {8},
                       uint32_t type = 0, uint64_t offset = 0, size_t data = 32) {
    Bytes b;
    b.header(1, n_kv);
    kv(b);
    b.tensor("w", dims, type, offset).pad().zeros(data);
    return b;
  };
  auto no_kv = [](Bytes&) {};

  add("empty", Bytes{}, "shorter than the 4-byte magic");
  add("short", Bytes{}.raw("GGU"), "shorter than the 4-byte magic");
  add("magic", Bytes{}.raw("GGUX").u32(3).u64(0).u64(0), "not a GGUF file: the magic is 'GGUX', expected 'GGUF'");
  add("binary magic", Bytes{}.raw(std::string("\x89PNG", 4)), "the magic is '\\x89PNG'");
  add("version 1", Bytes{}.header(0, 0, 1), "GGUF version 1 is not supported");
  add("version 4", Bytes{}.header(0, 0, 4), "unknown GGUF version 4");
  add("big endian", Bytes{}.raw("GGUF").u32(0x03000000u).u64(0).u64(0), "big-endian GGUF file");
  add("cut in version", Bytes{}.raw("GGUF").raw("\3"), "header: version (4 bytes at offset 4) runs past the end");
  add("cut in counts", Bytes{}.raw("GGUF").u32(3).u64(0), "header: metadata count (8 bytes at offset 16)");
  add("huge tensor count", Bytes{}.header(huge, 0), "tensor count 9223372036854775808 cannot fit in a file of 24");
  add("huge kv count", Bytes{}.header(0, max), "metadata count 18446744073709551615 cannot fit");
  add("huge key length", Bytes{}.header(0, 1).u64(max).zeros(8), "metadata entry #0: key length 18446744073709551615");
  add("cut key", Bytes{}.header(0, 1).u64(20).raw("abcdefgh"),
      "metadata entry #0: key length 20 (at offset 24) runs past the end of the file (8 bytes left of 40)");
  add("empty key", Bytes{}.header(0, 1).str("").u32(kU32).u32(1), "metadata entry #0: empty key");
  add("duplicate key", Bytes{}.header(0, 2).str("k").u32(kU32).u32(1).str("k").u32(kU32).u32(2),
      "metadata key 'k': the key appears twice");
  add("unknown value type", Bytes{}.header(0, 1).str("k").u32(13).u32(0).zeros(4),
      "metadata key 'k': unknown value type 13");
  add("cut value", Bytes{}.header(0, 1).str("k").u32(kU32).u8(1), "metadata key 'k': value (4 bytes at offset");
  add("huge string", Bytes{}.header(0, 1).str("k").u32(kStr).u64(max - 3).raw("abc"),
      "metadata key 'k': string value length 18446744073709551612");
  add("bool 2", Bytes{}.header(0, 1).str("k").u32(7).u8(2).zeros(4), "metadata key 'k': BOOL value at offset 37 is 2");
  add("bool 2 in array", Bytes{}.header(0, 1).str("k").u32(kArr).u32(7).u64(2).u8(1).u8(5).zeros(4),
      "BOOL array element at offset");
  add("nested array", Bytes{}.header(0, 1).str("k").u32(kArr).u32(kArr).u64(1).u32(kU32).u64(1).u32(1),
      "metadata key 'k': nested array");
  add("unknown element type", Bytes{}.header(0, 1).str("k").u32(kArr).u32(99).u64(0).zeros(4),
      "metadata key 'k': unknown array element type 99");
  add("huge array", Bytes{}.header(0, 1).str("k").u32(kArr).u32(kU32).u64(1ull << 60).u32(1),
      "metadata key 'k': array of 1152921504606846976 UINT32");
  add("huge string array", Bytes{}.header(0, 1).str("k").u32(kArr).u32(kStr).u64(max).u64(0),
      "array of 18446744073709551615 STRING (length at offset 41) needs more than 2^64 bytes but only 8 are left");
  add("huge string in array", Bytes{}.header(0, 1).str("k").u32(kArr).u32(kStr).u64(2).str("a").u64(huge),
      "metadata key 'k': string array element length 9223372036854775808");
  add("control chars in key", Bytes{}.header(0, 1).str("a\nb'").u32(99).zeros(4),
      "metadata key 'a\\x0ab\\x27': unknown value type 99");
  add("alignment type", Bytes{}.header(0, 1).str("general.alignment").u32(5).u32(64),
      "metadata key 'general.alignment' is INT32, expected UINT32");
  add("alignment 0", Bytes{}.header(0, 1).str("general.alignment").u32(kU32).u32(0),
      "metadata key 'general.alignment' is 0, expected a power of two");
  add("alignment 48", Bytes{}.header(0, 1).str("general.alignment").u32(kU32).u32(48),
      "'general.alignment' is 48, expected a power of two");

  add("n_dims 0", one_tensor(no_kv, 0, {}), "tensor 'w': n_dims is 0, expected 1 to 4");
  add("n_dims 5", one_tensor(no_kv, 0, {1, 1, 1, 1, 8}), "tensor 'w': n_dims is 5, expected 1 to 4");
  add("dim 0", one_tensor(no_kv, 0, {8, 0}), "tensor 'w': dimension 1 is 0, expected > 0");
  add("dim too large", one_tensor(no_kv, 0, {huge}), "tensor 'w': dimension 0 is 9223372036854775808");
  add("dims product overflow", one_tensor(no_kv, 0, {1ull << 32, 1ull << 32}),
      "tensor 'w': shape [4294967296, 4294967296] of F32 is too large");
  add("bytes overflow", one_tensor(no_kv, 0, {1ull << 62}), "tensor 'w': shape [4611686018427387904] of F32 is too large");
  add("block bytes overflow", one_tensor(no_kv, 0, {1ull << 60, 32}, 8),
      "shape [1152921504606846976, 32] of Q8_0 is too large");
  add("unknown ggml type", one_tensor(no_kv, 0, {8}, 99), "tensor 'w': unknown ggml type 99");
  add("removed ggml type", one_tensor(no_kv, 0, {8}, 4), "unknown ggml type 4 (not one todae knows, removed from ggml)");
  add("Q8_0 not a multiple of 32", one_tensor(no_kv, 0, {33, 2}, 8),
      "tensor 'w': innermost dimension 33 is not a multiple of the Q8_0 block size 32");
  add("Q4_K not a multiple of 256", one_tensor(no_kv, 0, {128}, 12),
      "innermost dimension 128 is not a multiple of the Q4_K block size 256");
  add("misaligned offset", one_tensor(no_kv, 0, {8}, 0, 4), "tensor 'w': offset 4 is not a multiple of the alignment 32");
  add("misaligned for custom alignment",
      one_tensor([](Bytes& b) { b.str("general.alignment").u32(kU32).u32(64); }, 1, {8}, 0, 32, 96),
      "tensor 'w': offset 32 is not a multiple of the alignment 64");
  add("data past the end", one_tensor(no_kv, 0, {16}), "tensor 'w': data [64, 128) runs past the end of the file (size 96); the file is truncated");
  add("offset past the end", one_tensor(no_kv, 0, {8}, 0, max - 31),
      "tensor 'w': offset 18446744073709551584 is past the end of the file (size 96");
  add("no data at all", Bytes{}.header(1, 0).tensor("w", {8}, 0, 0), "tensor 'w': data [64, 96) runs past the end of the file (size 57)");
  add("cut tensor info", Bytes{}.header(1, 0).str("wwwwwwwwww").u32(1).u64(8).u32(0).u32(0),
      "tensor 'wwwwwwwwww': offset (8 bytes at offset 58) runs past the end of the file (size 62); the file is truncated");
  add("huge tensor name", Bytes{}.header(1, 0).u64(huge).zeros(24),
      "tensor info #0: name length 9223372036854775808");
  add("empty tensor name", Bytes{}.header(1, 0).tensor("", {8}, 0, 0).pad().zeros(32), "tensor info #0: empty tensor name");
  {
    Bytes b;
    b.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad().zeros(64);
    add("duplicate tensor", b, "tensor 'a': the tensor name appears twice");
  }
  {
    Bytes b;
    b.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96);
    add("overlapping tensors", b, "tensors 'a' and 'b' overlap: data [0, 64) and [32, 64)");
  }
  {
    Bytes b;
    b.header(2, 0).tensor("b", {8}, 0, 32).tensor("a", {8}, 0, 32).pad().zeros(96);
    add("same offset", b, "tensors 'a' and 'b' overlap");
  }
  add("checksums not strings", one_tensor([](Bytes& b) { b.str(kGgufChecksumsKey).u32(kU32).u32(1); }, 1),
      "metadata key 'todae.checksums.xxh64' is UINT32, expected an array of STRING");
  add("checksums count",
      one_tensor([](Bytes& b) { b.str(kGgufChecksumsKey).u32(kArr).u32(kStr).u64(2).str("0123456789abcdef").str("0123456789abcdef"); }, 1),
      "'todae.checksums.xxh64' has 2 checksums for 1 tensors");
  add("checksum not hex",
      one_tensor([](Bytes& b) { b.str(kGgufChecksumsKey).u32(kArr).u32(kStr).u64(1).str("0123456789ABCDEF"); }, 1),
      "'todae.checksums.xxh64': entry 0 ('0123456789ABCDEF') is not 16 lowercase hex digits");
  add("checksum wrong",
      one_tensor([](Bytes& b) { b.str(kGgufChecksumsKey).u32(kArr).u32(kStr).u64(1).str("0123456789abcdef"); }, 1),
      "tensor 'w' is corrupt: xxh64 checksum of its data is ");

  for (const auto& c : cases) {
    std::string e = error_of([&] { parse_gguf(c.bytes, "crafted.gguf"); });
    if (std::getenv("TODAE_PRINT_ERRORS")) std::printf("%-28s %s\n", c.name.c_str(), e.c_str());
    EXPECT_TRUE(has(e, "crafted.gguf: ")) << c.name << " -> " << e;
    EXPECT_TRUE(has(e, c.expect)) << c.name << " -> " << e << "\n  expected: " << c.expect;
    EXPECT_EQ(e.find('\n'), std::string::npos) << c.name << " -> " << e;
  }

  // What the spec allows: version 2, tensors in any order with gaps, no tensors, no data padding
  // after the infos when there are no tensors, trailing bytes.
  {
    Bytes b;
    b.header(2, 1, 2).str("general.architecture").u32(kStr).str("llama");
    b.tensor("b", {8}, 0, 64).tensor("a", {32}, 8, 0).pad().zeros(200);
    auto f = parse_gguf(b.s, "ok.gguf");
    EXPECT_EQ(f->version, 2u);
    EXPECT_EQ(f->tensors[0].name, "b");
    EXPECT_EQ(f->tensors[1].nbytes, 34u);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
  }
  EXPECT_EQ(parse_gguf(Bytes{}.header(0, 0).s, "ok.gguf")->tensors.size(), 0u);
  EXPECT_TRUE(has(error_of([] { open_gguf("/nonexistent/x.gguf"); }), "/nonexistent/x.gguf"));
}

TEST(Gguf, WriterRejectsBadInputAndUnwritablePaths) {
  TmpDir dir;
  std::string p = dir / "w.gguf";
  float x[64] = {};
  auto one = [&](GgufTensorRef t) { return std::vector<GgufTensorRef>{std::move(t)}; };
  struct Case {
    std::string name;
    std::vector<std::pair<std::string, GgufValue>> kv;
    std::vector<GgufTensorRef> tensors;
    std::string expect;
  };
  GgufValue nested;
  nested.type = GgufValueType::ARRAY;
  nested.elem_type = GgufValueType::ARRAY;
  GgufValue wrong_alt = gguf_string("x");
  wrong_alt.type = GgufValueType::UINT32;
  GgufValue wrong_vec = gguf_strings({"a"});
  wrong_vec.elem_type = GgufValueType::INT32;
  GgufValue bad_type;
  bad_type.type = static_cast<GgufValueType>(77);
  std::vector<Case> cases = {
      {"dup tensor", {}, {{"a", GgmlType::F32, {1}, x, 4}, {"a", GgmlType::F32, {1}, x, 4}}, "tensor 'a' given twice"},
      {"nbytes", {}, one({"a", GgmlType::F32, {3}, x, 8}), "tensor 'a': shape [3] of F32 needs 12 bytes, given 8"},
      {"block", {}, one({"a", GgmlType::Q8_0, {16}, x, 17}), "tensor 'a': innermost dimension 16 is not a multiple"},
      {"dims", {}, one({"a", GgmlType::F32, {}, x, 4}), "tensor 'a': has 0 dimensions, expected 1 to 4"},
      {"neg dim", {}, one({"a", GgmlType::F32, {-1}, x, 4}), "tensor 'a': dimension 0 is -1"},
      {"type", {}, one({"a", static_cast<GgmlType>(4), {1}, x, 4}), "unknown ggml type 4"},
      {"no data", {}, one({"a", GgmlType::F32, {1}, nullptr, 4}), "tensor 'a' has no data"},
      {"long name", {}, one({std::string(64, 'n'), GgmlType::F32, {1}, x, 4}), "is longer than 63 bytes"},
      {"empty name", {}, one({"", GgmlType::F32, {1}, x, 4}), "empty tensor name"},
      {"dup key", {{"k", gguf_u32(1)}, {"k", gguf_u32(2)}}, {}, "metadata key 'k' given twice"},
      {"empty key", {{"", gguf_u32(1)}}, {}, "empty metadata key"},
      {"u8 range", {{"k", scalar_u(GgufValueType::UINT8, 300)}}, {}, "metadata key 'k': value does not fit in UINT8"},
      {"i16 range", {{"k", scalar_i(GgufValueType::INT16, -40000)}}, {}, "value does not fit in INT16"},
      {"u64 negative", {{"k", scalar_i(GgufValueType::UINT64, -1)}}, {}, "value does not fit in UINT64"},
      {"f32 range", {{"k", gguf_f64(1e300)}}, {}, ""},  // FLOAT64 holds it: no error
      {"f32 overflow", {{"k", gguf_f32s({1e300})}}, {}, "value 1e+300 does not fit in FLOAT32"},
      {"array range", {{"k", gguf_ints(GgufValueType::INT8, {1, 200})}}, {}, "array element 1 (200) does not fit in INT8"},
      {"bool array", {{"k", gguf_ints(GgufValueType::BOOL, {2})}}, {}, "does not fit in BOOL"},
      {"nested", {{"k", nested}}, {}, "metadata key 'k': arrays of arrays are not supported"},
      {"alternative", {{"k", wrong_alt}}, {}, "a UINT32 value does not hold an integer"},
      {"vector", {{"k", wrong_vec}}, {}, "an array of INT32 holds elements in the wrong vector"},
      {"value type", {{"k", bad_type}}, {}, "unknown value type 77"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { write_gguf(p, c.kv, c.tensors); });
    if (c.expect.empty()) {
      EXPECT_EQ(e, "") << c.name;
      fs::remove(p);
      continue;
    }
    EXPECT_TRUE(has(e, "cannot write " + p + ": ")) << c.name << " -> " << e;
    EXPECT_TRUE(has(e, c.expect)) << c.name << " -> " << e;
    EXPECT_FALSE(fs::exists(p)) << c.name;
  }
  EXPECT_THROW(gguf_ints(GgufValueType::STRING, {}), Error);
  EXPECT_THROW(gguf_floats(GgufValueType::INT32, {}), Error);
  EXPECT_THROW(gguf_scalar(GgufValueType::FLOAT32, 1), Error);
  EXPECT_EQ(gguf_scalar(GgufValueType::UINT16, 7), scalar_u(GgufValueType::UINT16, 7));

  // The caller's integer alternative need not match the signedness when the value fits.
  write_gguf(p, {{"k", scalar_i(GgufValueType::UINT32, 5)}}, {});
  EXPECT_EQ(open_gguf(p)->get_int("k"), 5);

  // I/O failures name the file and the OS reason and leave nothing behind.
  std::vector<GgufTensorRef> ok = one({"a", GgmlType::F32, {1}, x, 4});
  std::string e = error_of([&] { write_gguf(dir / "missing/w.gguf", {}, ok); });
  EXPECT_TRUE(has(e, "cannot write " + dir / "missing/w.gguf" + ": No such file or directory")) << e;
  // An existing file is replaced whole.
  write_gguf(p, {{"v", gguf_u32(1)}}, ok);
  write_gguf(p, {{"v", gguf_u32(2)}}, ok);
  EXPECT_EQ(open_gguf(p)->get_int("v"), 2);
  for (const auto& entry : fs::directory_iterator(dir.path))
    EXPECT_FALSE(has(entry.path().filename().string(), ".tmp.")) << entry.path();
}

// The fuzzer's seeds (tests/fuzz/corpus/gguf) are valid files from this writer. Regenerate with
//   todae_formats_tests --gtest_filter=Gguf.DISABLED_WriteFuzzSeeds --gtest_also_run_disabled_tests
namespace {
void write_seeds(const std::string& dir) {
  Sample s;
  float one = 1.0f;
  GgufTensorRef t{"w", GgmlType::F32, {1}, &one, 4};
  write_gguf(dir + "/tiny.gguf", {{"general.architecture", gguf_string("llama")}}, {&t, 1});
  GgufWriteOptions a64;
  a64.alignment = 64;
  auto kv = all_values();
  write_gguf(dir + "/all-types.gguf", kv, s.refs(), a64);
  GgufWriteOptions plain;
  plain.checksums = false;
  auto refs = s.refs();
  write_gguf(dir + "/quant-no-checksums.gguf",
             {{"general.architecture", gguf_string("qwen3")},
              {"tokenizer.ggml.tokens", gguf_strings({"<s>", "a", "ab", "한"})},
              {"tokenizer.ggml.scores", gguf_f32s({0, -1, -2, -3})},
              {"tokenizer.ggml.token_type", gguf_i32s({3, 1, 1, 1})}},
             {refs.begin() + 2, refs.end()}, plain);
  write_gguf(dir + "/no-tensors.gguf", {{"general.name", gguf_string("empty")}}, {});
}
}  // namespace

TEST(Gguf, DISABLED_WriteFuzzSeeds) {
  std::string dir = std::string(TODAE_SOURCE_DIR) + "/tests/fuzz/corpus/gguf";
  make_directories(dir);
  write_seeds(dir);
}

TEST(Gguf, FuzzSeedsAreCurrentAndValid) {
  std::string dir = std::string(TODAE_SOURCE_DIR) + "/tests/fuzz/corpus/gguf";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " is missing";
  TmpDir fresh;
  write_seeds(fresh.path);
  int n = 0;
  for (const auto& e : fs::directory_iterator(fresh.path)) {
    std::string name = e.path().filename().string();
    std::string seed = dir + "/" + name;
    ASSERT_TRUE(fs::exists(seed)) << seed;
    EXPECT_EQ(read_file(seed), read_file(e.path().string())) << name << " is stale: regenerate the seeds";
    EXPECT_LT(file_size(seed), 4096u) << name << ": the fuzzer runs with -max_len=4096";
    open_gguf(seed);
    ++n;
  }
  EXPECT_EQ(n, 4);
}

// tests/fuzz/corpus/gguf/hf-gguf-0.4.6.gguf: all-types.gguf with its header rewritten by the npm
// package @huggingface/gguf 0.4.6 (gguf(path, {allowLocalFile, typedMetadata}), then a.u8 deleted
// (that version cannot serialize UINT8 arrays), general.name added, general.architecture changed,
// buildGgufHeader + the original data section).
TEST(Gguf, ReadsAHeaderWrittenByHuggingfaceGguf) {
  std::string p = std::string(TODAE_SOURCE_DIR) + "/tests/fuzz/corpus/gguf/hf-gguf-0.4.6.gguf";
  if (!fs::exists(p)) GTEST_SKIP() << p << " is missing";
  auto f = open_gguf(p);  // checksums verified: the data section is ours, untouched
  EXPECT_EQ(f->get_string("general.name"), "written by @huggingface/gguf");
  EXPECT_EQ(f->get_string("general.architecture"), "qwen3");
  EXPECT_EQ(f->find_value("a.u8"), nullptr);
  EXPECT_EQ(f->alignment, 64u);
  auto want = all_values();
  for (const auto& [k, v] : want) {
    if (k == "a.u8" || k == "general.architecture") continue;
    const GgufValue* got = f->find_value(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_TRUE(*got == v) << k;
  }
  Sample s;
  auto refs = s.refs();
  ASSERT_EQ(f->tensors.size(), refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    EXPECT_EQ(f->tensors[i].name, refs[i].name);
    EXPECT_EQ(f->tensors[i].dims, refs[i].dims);
    EXPECT_EQ(std::memcmp(f->data(f->tensors[i]), refs[i].data, refs[i].nbytes), 0);
  }
}

// A GGUF from another tool (llama.cpp's convert script, quantize, the gguf Python package, ...):
// TODAE_GGUF_SAMPLE names one, else the first *.gguf under /work/shared or ~/.cache/{huggingface,
// llama.cpp,todae}. Skipped when there is none.
TEST(Gguf, ParsesAFileFromARealTool) {
  std::vector<std::string> found;
  if (const char* env = std::getenv("TODAE_GGUF_SAMPLE")) found.push_back(env);
  std::vector<std::string> roots = {"/work/shared"};
  if (const char* home = std::getenv("HOME")) {
    roots.push_back(std::string(home) + "/.cache/huggingface");
    roots.push_back(std::string(home) + "/.cache/llama.cpp");
    roots.push_back(std::string(home) + "/.cache/todae");  // scripts/build-llama-cpp.sh's scratch files
  }
  for (const auto& root : roots) {
    if (found.size() >= 64) break;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->path().extension() == ".gguf" && it->is_regular_file(ec)) {
        found.push_back(it->path().string());
        if (found.size() >= 64) break;
      }
    }
  }
  if (found.empty()) GTEST_SKIP() << "no GGUF file from another tool on this machine";
  GgufOpenOptions lazy;
  lazy.verify_checksums = false;  // may be gigabytes
  for (const auto& p : found) {
    std::unique_ptr<GgufFile> f;
    std::string e = error_of([&] { f = open_gguf(p, lazy); });
    ASSERT_EQ(e, "") << p;
    EXPECT_GE(f->version, 2u) << p;
    EXPECT_FALSE(f->get_string("general.architecture", "").empty()) << p;
    for (const auto& t : f->tensors) EXPECT_EQ(t.offset % f->alignment, 0u) << p << " " << t.name;
  }
  std::printf("parsed %zu GGUF files from other tools (first: %s)\n", found.size(), found[0].c_str());
}
