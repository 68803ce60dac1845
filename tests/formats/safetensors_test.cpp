#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/formats.h"
#include "formats/formats_test_util.h"

using namespace todae;
using todae::test::error_of;
using todae::test::TmpDir;
using json = nlohmann::json;

namespace {

// A safetensors file from a literal header and data.
std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

struct Sample {
  std::vector<float> w{1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  std::vector<uint16_t> h{0x3c00, 0xc000, 0x7bff, 0x0001};  // F16: 1, -2, 65504, smallest subnormal
  std::vector<uint16_t> bf{0x3f80, 0xc040};                 // BF16: 1, -3
  std::vector<int64_t> ids{1, -2, 3};
  std::vector<uint8_t> bytes{1, 2, 3, 4, 5};
  float scalar = 42.0f;
  std::vector<TensorRef> refs() const {
    return {
        f32_tensor("model.layers.0.mlp.up_proj.weight", {2, 3}, w.data()),
        {"h", DType::F16, {4}, h.data(), 8},
        {"bf", DType::BF16, {1, 2}, bf.data(), 4},
        {"ids", DType::I64, {3}, ids.data(), 24},
        {"u8", DType::U8, {5}, bytes.data(), 5},
        {"scalar", DType::F32, {}, &scalar, 4},
        {"empty", DType::F32, {0, 4}, nullptr, 0},
    };
  }
};

}  // namespace

TEST(Safetensors, RoundTripKeepsBytesShapesAndAlignment) {
  TmpDir dir;
  Sample s;
  std::string p = dir / "a.safetensors";
  write_safetensors(p, s.refs(), {{"note", "안녕"}});
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp." + std::to_string(::getpid())));

  std::string raw = read_file(p);
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // data section 8-byte aligned
  auto f = open_safetensors(p);
  EXPECT_EQ(f->metadata.at("format"), "pt");
  EXPECT_EQ(f->metadata.at("note"), "안녕");
  EXPECT_EQ(f->tensors.size(), 7u);
  for (const auto& t : f->tensors) {
    EXPECT_EQ(t.begin % dtype_size(t.dtype), 0u) << t.name;
    EXPECT_TRUE(f->metadata.count(std::string(kChecksumKeyPrefix) + t.name)) << t.name;
  }
  // No holes between tensors (the safetensors library refuses them).
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : f->tensors) ranges.push_back({t.begin, t.end});
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_EQ(ranges[i].first, ranges[i - 1].second);
  EXPECT_EQ(ranges.back().second, f->data_size);

  const auto& w = f->get("model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(w.dtype, DType::F32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> got(6);
  const int64_t shape[] = {2, 3};
  f->read_f32(w.name, got, shape);
  EXPECT_EQ(got, s.w);
  std::vector<float> h(4);
  f->read_f32("h", h);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  std::vector<float> bf(2);
  f->read_f32("bf", bf);
  EXPECT_EQ(bf, (std::vector<float>{1.0f, -3.0f}));
  std::vector<int64_t> ids(3);
  f->read_raw("ids", DType::I64, ids.data(), 24);
  EXPECT_EQ(ids, s.ids);
  EXPECT_EQ(f->bytes(f->get("u8")), std::string_view("\1\2\3\4\5", 5));
  EXPECT_TRUE(f->get("scalar").shape.empty());
  EXPECT_EQ(f->get("scalar").numel(), 1u);
  EXPECT_EQ(f->get("empty").nbytes(), 0u);
  EXPECT_EQ(f->find("nope"), nullptr);

  // Errors name the file and the tensor.
  std::string e = error_of([&] { f->get("nope"); });
  EXPECT_NE(e.find(p), std::string::npos);
  EXPECT_NE(e.find("'nope'"), std::string::npos);
  const int64_t wrong[] = {3, 2};
  e = error_of([&] { f->read_f32(w.name, got, wrong); });
  EXPECT_NE(e.find("has shape [2, 3], expected [3, 2]"), std::string::npos) << e;
  std::vector<float> three(3);
  e = error_of([&] { f->read_f32("ids", three); });
  EXPECT_NE(e.find("dtype I64"), std::string::npos) << e;
  e = error_of([&] { f->read_raw("ids", DType::I32, ids.data(), 12); });
  EXPECT_NE(e.find("expected I32"), std::string::npos) << e;
}

TEST(Safetensors, FlippedBitIsReportedWithTheTensorName) {
  TmpDir dir;
  Sample s;
  std::string p = dir / "a.safetensors";
  write_safetensors(p, s.refs());
  auto f = open_safetensors(p);
  const TensorInfo& t = f->get("model.layers.0.mlp.up_proj.weight");
  std::string raw = read_file(p);
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  raw[8 + n + t.begin + 5] ^= 0x10;
  write_file_atomic(p, raw);
  std::string e = error_of([&] { open_safetensors(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("'model.layers.0.mlp.up_proj.weight' is corrupt"), std::string::npos) << e;
  // Without verification it opens (lazy loading of huge files), and verify_checksums() catches it.
  SafetensorsOpenOptions lazy;
  lazy.verify_checksums = false;
  auto g = open_safetensors(p, lazy);
  EXPECT_THROW(g->verify_checksums(), Error);
}

TEST(Safetensors, EveryTruncationAndRandomCorruptionIsACleanError) {
  Sample s;
  TmpDir dir;
  std::string p = dir / "a.safetensors";
  write_safetensors(p, s.refs());
  std::string raw = read_file(p);
  // Every prefix: the shorter file must fail with an Error (all tensors are checksummed and the
  // last one ends at the end of the file), never crash.
  for (size_t len = 0; len < raw.size(); ++len) {
    std::string cut = raw.substr(0, len);
    EXPECT_THROW(parse_safetensors(cut, "cut"), Error) << len;
  }
  // Random bytes changed anywhere: an Error or a valid file, never a crash (ASan runs this too).
  std::mt19937 rng(7);
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = raw;
    int flips = 1 + rng() % 3;
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    try {
      auto f = parse_safetensors(bad, "bad");
      for (const auto& t : f->tensors) (void)f->bytes(t);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 2000);
}

TEST(Safetensors, CraftedHeadersGiveOneLineErrors) {
  struct Case {
    std::string header, data, expect;
  };
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string data8(8, '\0');
  std::vector<Case> cases = {
      {"[1,2]", "", "not a JSON object"},
      {"{\"w\": ", "", "not valid JSON"},
      {"{" + ok_entry + ", " + ok_entry + "}", data8, "'w' appears twice"},
      {R"({"w": 5})", "", "'w' entry is not an object"},
      {R"({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", data8, "unknown dtype 'F33'"},
      {R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", data8, "'w' has no dtype"},
      {R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data8, "'w' has a shape entry"},
      {R"({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", data8, "'w' has a shape entry"},
      {R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", data8, "'w' has no shape"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", data8, "'w' has no data_offsets"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", data8, "'w' has invalid data_offsets"},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8, "needs 12"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data8, "runs past the end"},
      {R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", data8, "too large"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}})", data8,
       "invalid data_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       std::string(12, '\0'), "'a' and 'b' overlap"},
      {R"({"__metadata__": {"x": 1}})", "", "'x' is not a string"},
      {R"({"__metadata__": [1]})", "", "__metadata__ is not an object"},
      {R"({"__metadata__": {"todae.xxh64.w": "zz"}})", "", "not 16 lowercase hex"},
      {R"({"__metadata__": {"todae.xxh64.w": "0123456789abcdef"}})", "", "checksum for tensor 'w'"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { parse_safetensors(st_bytes(c.header, c.data), "crafted.safetensors"); });
    EXPECT_NE(e.find("crafted.safetensors: "), std::string::npos) << c.header << " -> " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.header << " -> " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // Header length fields that lie.
  std::string huge(8, '\xff');
  EXPECT_NE(error_of([&] { parse_safetensors(huge + "{}", "x"); }).find("over the 100 MB limit"), std::string::npos);
  std::string past = st_bytes("{}", "");
  past[0] = 100;
  EXPECT_NE(error_of([&] { parse_safetensors(past, "x"); }).find("runs past the end of the file"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_safetensors("abc", "x"); }).find("shorter than"), std::string::npos);
  // Zero-size tensors may share an offset; holes and trailing padding are tolerated.
  auto f = parse_safetensors(st_bytes(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
      "b": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
      "c": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}   )",
                                      std::string(10, 'x')),
                             "ok");
  EXPECT_EQ(f->tensors.size(), 3u);
  EXPECT_TRUE(error_of([&] { open_safetensors("/nonexistent/x.safetensors"); }).find("/nonexistent/x.safetensors") !=
              std::string::npos);
}

TEST(Safetensors, WriterRejectsBadInputAndUnwritablePaths) {
  TmpDir dir;
  float x[2] = {1, 2};
  std::vector<TensorRef> dup = {f32_tensor("a", {2}, x), f32_tensor("a", {2}, x)};
  EXPECT_NE(error_of([&] { write_safetensors(dir / "d.safetensors", dup); }).find("'a' given twice"),
            std::string::npos);
  std::vector<TensorRef> wrong = {{"a", DType::F32, {3}, x, 8}};
  EXPECT_NE(error_of([&] { write_safetensors(dir / "d.safetensors", wrong); }).find("needs 12 bytes, given 8"),
            std::string::npos);
  std::vector<TensorRef> meta = {f32_tensor("__metadata__", {2}, x)};
  EXPECT_THROW(write_safetensors(dir / "d.safetensors", meta), Error);
  std::vector<TensorRef> ok = {f32_tensor("a", {2}, x)};
  std::string e = error_of([&] { write_safetensors(dir / "missing/d.safetensors", ok); });
  EXPECT_NE(e.find("cannot write " + dir / "missing/d.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(dir / "d.safetensors"));
}

TEST(Safetensors, ShardedModelFolderWithIndex) {
  TmpDir dir;
  std::vector<std::vector<float>> data;
  std::vector<TensorRef> refs;
  for (int i = 0; i < 5; ++i) data.emplace_back(10, float(i));
  for (int i = 0; i < 5; ++i)
    refs.push_back(f32_tensor("model.layers." + std::to_string(i) + ".w", {10}, data[i].data()));
  auto files = write_safetensors_model(dir.path, refs, /*max_shard_bytes=*/100);
  ASSERT_EQ(files.size(), 4u);  // 3 shards (2+2+1 tensors of 40 bytes) + the index
  EXPECT_TRUE(files.back().ends_with("model.safetensors.index.json"));
  EXPECT_TRUE(files[0].ends_with("model-00001-of-00003.safetensors"));
  json idx = json::parse(read_file(files.back()));
  EXPECT_EQ(idx["metadata"]["total_size"], 200);
  for (const std::string& p : {dir.path, files.back()}) {
    SafetensorsSet set = open_safetensors_model(p);
    EXPECT_EQ(set.files.size(), 3u);
    EXPECT_EQ(set.tensors.size(), 5u);
    std::vector<float> got(10);
    set.read_f32("model.layers.3.w", got);
    EXPECT_EQ(got, data[3]);
    EXPECT_NE(error_of([&] { set.get("nope"); }).find("'nope'"), std::string::npos);
  }
  // Single-file folder.
  TmpDir one;
  write_safetensors_model(one.path, refs);
  EXPECT_TRUE(std::filesystem::exists(one / "model.safetensors"));
  EXPECT_EQ(open_safetensors_model(one.path).tensors.size(), 5u);
  EXPECT_EQ(open_safetensors_model(one / "model.safetensors").tensors.size(), 5u);

  // A broken index names the index file and the tensor.
  idx["weight_map"]["model.layers.9.w"] = "model-00001-of-00003.safetensors";
  write_file_atomic(files.back(), idx.dump());
  std::string e = error_of([&] { open_safetensors_model(dir.path); });
  EXPECT_NE(e.find("model.safetensors.index.json: tensor 'model.layers.9.w' is mapped to"), std::string::npos) << e;
  idx["weight_map"].erase("model.layers.9.w");
  idx["weight_map"]["model.layers.0.w"] = "../model-00001-of-00003.safetensors";
  write_file_atomic(files.back(), idx.dump());
  e = error_of([&] { open_safetensors_model(dir.path); });
  EXPECT_NE(e.find("not a file name"), std::string::npos) << e;
  write_file_atomic(files.back(), "{\"weight_map\": 3}");
  EXPECT_NE(error_of([&] { open_safetensors_model(dir.path); }).find("no \"weight_map\""), std::string::npos);
  write_file_atomic(files.back(), "{");
  EXPECT_NE(error_of([&] { open_safetensors_model(dir.path); }).find("not valid JSON"), std::string::npos);
  TmpDir empty;
  EXPECT_NE(error_of([&] { open_safetensors_model(empty.path); }).find("no model.safetensors"), std::string::npos);
}

TEST(Safetensors, HalfAndBfloatConversions) {
  // Every finite half round-trips exactly through f32.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
      EXPECT_TRUE(std::isnan(float_from_f16(static_cast<uint16_t>(h))));
      continue;
    }
    ASSERT_EQ(f16_from_float(float_from_f16(static_cast<uint16_t>(h))), h) << h;
  }
  EXPECT_EQ(f16_from_float(1e6f), 0x7c00);             // overflow to inf
  EXPECT_EQ(f16_from_float(1.0f + 0x1p-11f), 0x3c00);  // tie to even
  EXPECT_EQ(f16_from_float(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  EXPECT_EQ(bf16_from_float(1.0f), 0x3f80);
  EXPECT_EQ(bf16_from_float(1.0f + 0x1p-8f), 0x3f80);  // tie to even
  EXPECT_EQ(bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_TRUE(std::isnan(float_from_bf16(bf16_from_float(std::nanf("")))));
  EXPECT_EQ(float_from_bf16(0xc040), -3.0f);
}
