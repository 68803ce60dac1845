// safetensors reader and writer. See formats.h for the layout and guarantees.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/formats.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace todae {

// ---- dtypes -------------------------------------------------------------------------------------

namespace {
struct DTypeDesc {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeDesc kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4},         {DType::I16, "I16", 2},         {DType::I8, "I8", 1},
    {DType::U64, "U64", 8},   {DType::U32, "U32", 4},         {DType::U16, "U16", 2},         {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};
// Rust safetensors refuses headers above 100 MB; so do we, before allocating anything.
constexpr uint64_t kMaxHeader = 100'000'000;
}  // namespace

size_t dtype_size(DType t) { return kDTypes[static_cast<int>(t)].size; }
const char* dtype_name(DType t) { return kDTypes[static_cast<int>(t)].name; }
bool parse_dtype(std::string_view name, DType* out) {
  for (const auto& d : kDTypes)
    if (name == d.name) {
      *out = d.t;
      return true;
    }
  return false;
}

uint64_t xxh64(const void* data, size_t n, uint64_t seed) { return XXH64(data, n, seed); }
std::string xxh64_hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---- conversions --------------------------------------------------------------------------------

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float float_from_bf16(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }
uint16_t bf16_from_float(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

// Branch-light IEEE half conversions (the FP16 library's method): exact, round to nearest even.
float float_from_f16(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normalized = bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t r = sign | (two_w < (1u << 27) ? f32_bits(denormalized) : f32_bits(normalized));
  return bits_f32(r);
}
uint16_t f16_from_float(float f) {
  float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = f32_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_f32((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = f32_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// ---- reading ----------------------------------------------------------------------------------

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);  // validated not to overflow on parse
  return n;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

const TensorInfo& SafetensorsFile::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(path, ": no tensor '", name, "'");
  return *t;
}

std::string_view SafetensorsFile::bytes(const TensorInfo& t) const {
  return {data + t.begin, static_cast<size_t>(t.end - t.begin)};
}

static std::string shape_text(std::span<const int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
  return out + "]";
}

void SafetensorsFile::read_f32(std::string_view name, std::span<float> out, std::span<const int64_t> shape) const {
  const TensorInfo& t = get(name);
  if (!shape.empty() && !std::equal(shape.begin(), shape.end(), t.shape.begin(), t.shape.end()))
    fail(path, ": tensor '", name, "' has shape ", shape_text(t.shape), ", expected ", shape_text(shape));
  if (t.numel() != out.size()) fail(path, ": tensor '", name, "' has ", t.numel(), " elements, expected ", out.size());
  const char* p = data + t.begin;
  size_t n = out.size();
  switch (t.dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = float_from_bf16(h);
      }
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = float_from_f16(h);
      }
      break;
    default:
      fail(path, ": tensor '", name, "' has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  }
}

void SafetensorsFile::read_raw(std::string_view name, DType dtype, void* out, size_t nbytes) const {
  const TensorInfo& t = get(name);
  if (t.dtype != dtype)
    fail(path, ": tensor '", name, "' has dtype ", dtype_name(t.dtype), ", expected ", dtype_name(dtype));
  if (t.nbytes() != nbytes) fail(path, ": tensor '", name, "' has ", t.nbytes(), " bytes, expected ", nbytes);
  if (nbytes) std::memcpy(out, data + t.begin, nbytes);
}

void SafetensorsFile::verify_checksums() const {
  for (const auto& [key, value] : metadata) {
    if (!key.starts_with(kChecksumKeyPrefix)) continue;
    std::string name = key.substr(kChecksumKeyPrefix.size());
    const TensorInfo* t = find(name);
    if (!t) fail(path, ": __metadata__ has a checksum for tensor '", name, "', which the file does not contain");
    std::string_view b = bytes(*t);
    std::string got = xxh64_hex(xxh64(b.data(), b.size()));
    if (got != value) fail(path, ": tensor '", name, "' is corrupt: xxh64 checksum is ", got, ", expected ", value);
  }
}

namespace {

// Reads a JSON integer that must fit in [0, 2^63).
bool non_negative_int(const json& j, int64_t* out) {
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = v;
    return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<SafetensorsFile> parse_safetensors(std::string_view bytes, const std::string& name,
                                                   const SafetensorsOpenOptions& opt) {
  auto f = std::make_unique<SafetensorsFile>();
  f->path = name;
  if (bytes.size() < 8)
    fail(name, ": not a safetensors file: ", bytes.size(), " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > kMaxHeader) fail(name, ": header length ", n, " is over the 100 MB limit (corrupt or not safetensors)");
  if (n > bytes.size() - 8)
    fail(name, ": header length ", n, " runs past the end of the file (", bytes.size(), " bytes): truncated?");
  std::string_view header = bytes.substr(8, n);
  if (header.empty() || header[0] != '{') fail(name, ": header is not a JSON object");

  // Duplicate tensor names would silently shadow each other; the parser callback sees every key.
  std::set<std::string> seen;
  std::string duplicate;
  json h;
  try {
    h = json::parse(header.begin(), header.end(), [&](int depth, json::parse_event_t ev, json& j) {
      if (ev == json::parse_event_t::key && depth == 1 && j.is_string()) {
        if (!seen.insert(j.get<std::string>()).second && duplicate.empty()) duplicate = j.get<std::string>();
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail(name, ": header is not valid JSON: ", e.what());
  }
  if (!h.is_object()) fail(name, ": header is not a JSON object");
  if (!duplicate.empty()) fail(name, ": tensor '", duplicate, "' appears twice in the header");

  f->data = bytes.data() + 8 + n;
  f->data_size = bytes.size() - 8 - n;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) fail(name, ": __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(name, ": __metadata__ '", m.key(), "' is not a string");
        f->metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(name, ": tensor '", key, "' entry is not an object");
    TensorInfo t;
    t.name = key;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(name, ": tensor '", key, "' has no dtype string");
    if (!parse_dtype(dt->get<std::string>(), &t.dtype))
      fail(name, ": tensor '", key, "' has unknown dtype '", dt->get<std::string>(), "'");
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(name, ": tensor '", key, "' has no shape array");
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : *sh) {
      int64_t dim;
      if (!non_negative_int(d, &dim))
        fail(name, ": tensor '", key, "' has a shape entry that is not a non-negative integer");
      t.shape.push_back(dim);
      overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel);
    }
    uint64_t want = 0;
    overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(t.dtype)), &want);
    if (overflow) fail(name, ": tensor '", key, "' shape ", shape_text(t.shape), " is too large");
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      fail(name, ": tensor '", key, "' has no data_offsets [begin, end]");
    int64_t b, e;
    if (!non_negative_int((*off)[0], &b) || !non_negative_int((*off)[1], &e) || b > e)
      fail(name, ": tensor '", key, "' has invalid data_offsets");
    t.begin = static_cast<uint64_t>(b);
    t.end = static_cast<uint64_t>(e);
    if (t.end - t.begin != want)
      fail(name, ": tensor '", key, "' has ", t.end - t.begin, " bytes of data but shape ", shape_text(t.shape), " × ",
           dtype_name(t.dtype), " needs ", want);
    if (t.end > f->data_size)
      fail(name, ": tensor '", key, "' data [", t.begin, ", ", t.end,
           ") runs past the end of the file (data section is ", f->data_size, " bytes): truncated?");
    f->tensors.push_back(std::move(t));
  }

  // No two tensors may share bytes: a writer bug or a crafted file could otherwise alias them.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : f->tensors)
    if (t.end > t.begin) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      fail(name, ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");

  std::sort(f->tensors.begin(), f->tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  for (const auto& [key, value] : f->metadata) {
    if (!key.starts_with(kChecksumKeyPrefix)) continue;
    bool hex = value.size() == 16 && std::all_of(value.begin(), value.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
               });
    if (!hex) fail(name, ": __metadata__ '", key, "' is not 16 lowercase hex digits");
  }
  if (opt.verify_checksums) f->verify_checksums();
  return f;
}

std::unique_ptr<SafetensorsFile> open_safetensors(const std::string& path, const SafetensorsOpenOptions& opt) {
  auto map = std::make_unique<MappedFile>(path);
  auto f = parse_safetensors(map->view(), path, opt);
  f->map = std::move(map);
  return f;
}

const SafetensorsSet::Entry* SafetensorsSet::find(std::string_view name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

const SafetensorsSet::Entry& SafetensorsSet::get(std::string_view name) const {
  const Entry* e = find(name);
  if (!e) {
    std::string where = files.size() == 1 ? files[0]->path : cat(files.size(), " shards");
    fail(where, ": no tensor '", name, "'");
  }
  return *e;
}

void SafetensorsSet::read_f32(std::string_view name, std::span<float> out, std::span<const int64_t> shape) const {
  get(name).file->read_f32(name, out, shape);
}

SafetensorsSet open_safetensors_model(const std::string& path, const SafetensorsOpenOptions& opt) {
  SafetensorsSet set;
  std::string index_path;
  if (is_directory(path)) {
    std::string idx = path + "/model.safetensors.index.json";
    std::string single = path + "/model.safetensors";
    if (file_exists(idx)) {
      index_path = idx;
    } else if (file_exists(single)) {
      set.files.push_back(open_safetensors(single, opt));
    } else {
      fail(path, ": no model.safetensors or model.safetensors.index.json");
    }
  } else if (path.ends_with(".json")) {
    index_path = path;
  } else {
    set.files.push_back(open_safetensors(path, opt));
  }

  if (index_path.empty()) {
    for (const auto& t : set.files[0]->tensors) set.tensors[t.name] = {set.files[0].get(), &t};
    return set;
  }

  json idx;
  try {
    idx = json::parse(read_file(index_path));
  } catch (const json::exception& e) {
    fail(index_path, ": not valid JSON: ", e.what());
  }
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
    fail(index_path, ": no \"weight_map\" object");
  std::string dir = fs::path(index_path).parent_path().string();
  if (dir.empty()) dir = ".";
  std::map<std::string, size_t> shard_index;
  for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(index_path, ": weight_map '", it.key(), "' is not a file name");
    std::string shard = it.value().get<std::string>();
    // Only plain file names beside the index: a crafted index must not reach other files.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail(index_path, ": weight_map '", it.key(), "' names '", shard, "', which is not a file name in ", dir);
    auto [pos, inserted] = shard_index.emplace(shard, set.files.size());
    if (inserted) set.files.push_back(open_safetensors(dir + "/" + shard, opt));
    const SafetensorsFile* f = set.files[pos->second].get();
    const TensorInfo* t = f->find(it.key());
    if (!t) fail(index_path, ": tensor '", it.key(), "' is mapped to ", shard, ", which does not contain it");
    set.tensors[it.key()] = {f, t};
  }
  return set;
}

// ---- writing ----------------------------------------------------------------------------------

TensorRef f32_tensor(std::string name, std::vector<int64_t> shape, const float* data) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return {std::move(name), DType::F32, std::move(shape), data, static_cast<size_t>(n * 4)};
}


void write_safetensors(const std::string& path, std::span<const TensorRef> tensors,
                       const std::map<std::string, std::string>& metadata, const SafetensorsWriteOptions& opt) {
  std::vector<const TensorRef*> order;
  std::set<std::string_view> names;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") fail("cannot write ", path, ": invalid tensor name '", t.name, "'");
    if (!names.insert(t.name).second) fail("cannot write ", path, ": tensor '", t.name, "' given twice");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail("cannot write ", path, ": tensor '", t.name, "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      fail("cannot write ", path, ": tensor '", t.name, "' shape ", shape_text(t.shape), " × ", dtype_name(t.dtype),
           " needs ", numel * dtype_size(t.dtype), " bytes, given ", t.nbytes);
    if (t.nbytes && !t.data) fail("cannot write ", path, ": tensor '", t.name, "' has no data");
    order.push_back(&t);
  }
  // Largest element first keeps every tensor aligned to its element size with no gaps (which the
  // safetensors library rejects), exactly as it lays files out itself.
  std::sort(order.begin(), order.end(), [](const TensorRef* a, const TensorRef* b) {
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });

  json h = json::object();
  json meta = json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  uint64_t offset = 0;
  for (const TensorRef* t : order) {
    h[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
    if (opt.checksums) meta[cat(kChecksumKeyPrefix, t->name)] = xxh64_hex(xxh64(t->data, t->nbytes));
  }
  h["__metadata__"] = meta;
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));

  OutputFile out(path, opt.atomic);
  out.write(len, 8);
  out.write(header.data(), header.size());
  for (const TensorRef* t : order) out.write(t->data, t->nbytes);
  out.commit();
}

std::vector<std::string> write_safetensors_model(const std::string& dir, std::span<const TensorRef> tensors,
                                                 uint64_t max_shard_bytes,
                                                 const std::map<std::string, std::string>& metadata) {
  make_directories(dir);
  std::vector<const TensorRef*> sorted;
  uint64_t total = 0;
  for (const auto& t : tensors) {
    sorted.push_back(&t);
    total += t.nbytes;
  }
  std::sort(sorted.begin(), sorted.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  std::vector<std::vector<TensorRef>> shards(1);
  uint64_t in_shard = 0;
  for (const TensorRef* t : sorted) {
    if (!shards.back().empty() && in_shard + t->nbytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(*t);
    in_shard += t->nbytes;
  }
  std::vector<std::string> written;
  if (shards.size() == 1) {
    written.push_back(dir + "/model.safetensors");
    write_safetensors(written.back(), shards[0], metadata);
    return written;
  }
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    written.push_back(dir + "/" + name);
    write_safetensors(written.back(), shards[i], metadata);
    for (const auto& t : shards[i]) weight_map[t.name] = name;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  written.push_back(dir + "/model.safetensors.index.json");
  write_file_atomic(written.back(), index.dump(2) + "\n");
  return written;
}

}  // namespace todae
