// safetensors files we write load in PyTorch, and files written from PyTorch load in todae. The
// Python side (st_interop.py) reads and writes with struct + json + torch.frombuffer, following
// the reference library's rules, since Debian's python3-torch 1.13 has no safetensors package.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/formats.h"
#include "formats/formats_test_util.h"

using namespace todae;
using todae::test::TmpDir;
using json = nlohmann::json;

namespace {

std::string script() { return std::string(TODAE_SOURCE_DIR) + "/tests/formats/st_interop.py"; }

// Every element of a tensor as double, whatever its dtype.
std::vector<double> values_of(const SafetensorsFile& f, const TensorInfo& t) {
  std::vector<double> out;
  std::string_view b = f.bytes(t);
  size_t n = t.numel();
  auto each = [&](auto zero) {
    using T = decltype(zero);
    for (size_t i = 0; i < n; ++i) {
      T x;
      std::memcpy(&x, b.data() + i * sizeof(T), sizeof(T));
      out.push_back(static_cast<double>(x));
    }
  };
  switch (t.dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: {
      std::vector<float> v(n);
      f.read_f32(t.name, v);
      out.assign(v.begin(), v.end());
      break;
    }
    case DType::F64:
      each(double());
      break;
    case DType::I64:
      each(int64_t());
      break;
    case DType::I32:
      each(int32_t());
      break;
    case DType::U8:
    case DType::BOOL:
      each(uint8_t());
      break;
    default:
      ADD_FAILURE() << "unexpected dtype " << dtype_name(t.dtype);
  }
  return out;
}

}  // namespace

TEST(SafetensorsInterop, OurFileLoadsInPyTorch) {
  std::string py = todae::test::torch_python();
  if (py.empty()) GTEST_SKIP() << "python3 with torch not installed (apt-get install python3-torch)";
  TmpDir dir;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> w(17 * 33), norm(33);
  for (float& x : w) x = normal(rng);
  for (float& x : norm) x = 1.0f + 0.1f * normal(rng);
  std::vector<uint16_t> half(9), bf(6);
  for (auto& h : half) h = f16_from_float(normal(rng));
  for (auto& h : bf) h = bf16_from_float(normal(rng));
  std::vector<int64_t> ids = {0, -1, INT64_C(1) << 40};
  std::vector<uint8_t> u8 = {0, 128, 255};
  float scalar = -0.5f;
  std::vector<TensorRef> refs = {
      f32_tensor("model.layers.0.self_attn.q_proj.weight", {17, 33}, w.data()),
      f32_tensor("model.layers.0.input_layernorm.weight", {33}, norm.data()),
      {"half", DType::F16, {3, 3}, half.data(), 18},
      {"bf", DType::BF16, {6}, bf.data(), 12},
      {"ids", DType::I64, {3}, ids.data(), 24},
      {"u8", DType::U8, {3}, u8.data(), 3},
      {"scalar", DType::F32, {}, &scalar, 4},
      {"empty", DType::F32, {2, 0}, nullptr, 0},
  };
  std::string p = dir / "ours.safetensors";
  write_safetensors(p, refs, {{"todae.step", "7"}});

  std::string out;
  ASSERT_EQ(todae::test::run_command(py + " " + script() + " check " + p, &out), 0) << out;
  json j = json::parse(out);
  EXPECT_EQ(j["metadata"]["format"], "pt");
  EXPECT_EQ(j["metadata"]["todae.step"], "7");
  auto f = open_safetensors(p);
  ASSERT_EQ(j["tensors"].size(), f->tensors.size());
  for (const auto& t : f->tensors) {
    SCOPED_TRACE(t.name);
    const json& pt = j["tensors"][t.name];
    EXPECT_EQ(pt["dtype"], dtype_name(t.dtype));
    EXPECT_EQ(pt["shape"].get<std::vector<int64_t>>(), t.shape);
    EXPECT_EQ(pt["values"].get<std::vector<double>>(), values_of(*f, t));  // exact
  }
}

TEST(SafetensorsInterop, PyTorchFileLoadsInTodae) {
  std::string py = todae::test::torch_python();
  if (py.empty()) GTEST_SKIP() << "python3 with torch not installed (apt-get install python3-torch)";
  TmpDir dir;
  std::string p = dir / "py.safetensors", expect = dir / "py.json", out;
  ASSERT_EQ(todae::test::run_command(py + " " + script() + " write " + p + " " + expect, &out), 0) << out;
  json want = json::parse(read_file(expect));
  auto f = open_safetensors(p);  // no checksums in it: nothing to verify, everything else checked
  EXPECT_EQ(f->metadata.at("source"), "python");
  ASSERT_EQ(f->tensors.size(), want.size());
  for (const auto& t : f->tensors) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(want.contains(t.name));
    EXPECT_EQ(want[t.name]["dtype"], dtype_name(t.dtype));
    EXPECT_EQ(want[t.name]["shape"].get<std::vector<int64_t>>(), t.shape);
    EXPECT_EQ(want[t.name]["values"].get<std::vector<double>>(), values_of(*f, t));
  }
  // Rewritten by todae (with checksums), it still reads back the same in PyTorch.
  std::vector<TensorRef> refs;
  for (const auto& t : f->tensors) {
    std::string_view b = f->bytes(t);
    refs.push_back({t.name, t.dtype, t.shape, b.data(), b.size()});
  }
  std::string again = dir / "again.safetensors";
  write_safetensors(again, refs);
  ASSERT_EQ(todae::test::run_command(py + " " + script() + " check " + again, &out), 0) << out;
  json j = json::parse(out);
  for (auto it = want.begin(); it != want.end(); ++it)
    EXPECT_EQ(j["tensors"][it.key()]["values"], it.value()["values"]);
}
