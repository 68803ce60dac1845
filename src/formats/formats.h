// todae formats: model files other tools read and write. Public API of the module.
//
// safetensors (https://github.com/huggingface/safetensors, the format Hugging Face uses):
//   [u64 little-endian N][N bytes of JSON header, space-padded][data]
//   header = {"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// with offsets relative to the start of the data section.
//
// The reader maps the file and validates every size and offset before anything touches the data,
// so a corrupt or truncated file is a todae::Error naming the file and the tensor, never a crash.
// Files we write carry one xxhash64 per tensor in __metadata__ ("todae.xxh64.<name>": 16 hex
// digits), checked on open when present: bit rot or a bad copy is reported, not trained on.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"

namespace todae {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", as safetensors spells it
// Returns false for names safetensors does not define.
bool parse_dtype(std::string_view name, DType* out);

// Prefix of the per-tensor checksum keys in __metadata__.
inline constexpr std::string_view kChecksumKeyPrefix = "todae.xxh64.";
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
std::string xxh64_hex(uint64_t h);  // 16 lowercase hex digits

// ---- reading ----------------------------------------------------------------------------------

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section, validated
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsFile {
  std::string path;
  std::vector<TensorInfo> tensors;              // sorted by name
  std::map<std::string, std::string> metadata;  // __metadata__, may be empty

  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const TensorInfo& get(std::string_view name) const;   // Error naming file and tensor when absent
  // The tensor's bytes, inside the mapping (valid while this object lives). Tensors are naturally
  // aligned in files written by todae and by the safetensors library; others may not be.
  std::string_view bytes(const TensorInfo& t) const;
  // Copies a tensor into `out` as f32 (from F32, F16 or BF16), checking that its element count is
  // out.size() and, when `shape` is given, its shape. Errors name file, tensor and the mismatch.
  void read_f32(std::string_view name, std::span<float> out, std::span<const int64_t> shape = {}) const;
  // Copies the raw bytes of a tensor of exactly this dtype and byte size.
  void read_raw(std::string_view name, DType dtype, void* out, size_t nbytes) const;
  // Recomputes every checksum found in __metadata__; Error naming the first tensor that differs.
  void verify_checksums() const;

  std::unique_ptr<MappedFile> map;
  const char* data = nullptr;  // start of the data section
  uint64_t data_size = 0;
};

struct SafetensorsOpenOptions {
  bool verify_checksums = true;  // reads every tensor once; turn off for lazy, huge files
};

// Opens and validates a .safetensors file.
std::unique_ptr<SafetensorsFile> open_safetensors(const std::string& path, const SafetensorsOpenOptions& opt = {});
// The same checks on bytes in memory (`name` is used in messages). The returned object points into
// `bytes`, which must outlive it.
std::unique_ptr<SafetensorsFile> parse_safetensors(std::string_view bytes, const std::string& name,
                                                   const SafetensorsOpenOptions& opt = {});

// A Hugging Face model folder's weights: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": {tensor: shard file}). `path` may be the folder, a
// .safetensors file or an index .json file.
struct SafetensorsSet {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  std::map<std::string, Entry, std::less<>> tensors;

  const Entry* find(std::string_view name) const;
  const Entry& get(std::string_view name) const;  // Error naming the tensor when absent
  void read_f32(std::string_view name, std::span<float> out, std::span<const int64_t> shape = {}) const;
};
SafetensorsSet open_safetensors_model(const std::string& path, const SafetensorsOpenOptions& opt = {});

// ---- writing ----------------------------------------------------------------------------------

// A tensor to write: the caller's bytes, not copied. nbytes must equal numel(shape) × dtype size.
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};
TensorRef f32_tensor(std::string name, std::vector<int64_t> shape, const float* data);

struct SafetensorsWriteOptions {
  bool checksums = true;  // add "todae.xxh64.<name>" per tensor to __metadata__
  bool atomic = true;     // write PATH.tmp.PID, fsync, rename over PATH, fsync the folder
};

// Writes a standard safetensors file: header keys sorted by name, header padded with spaces to a
// multiple of 8, data laid out by decreasing dtype size then name (as the safetensors library does,
// so every tensor is aligned to its element size without holes), "format": "pt" in __metadata__.
// Streams from the caller's buffers (no copy of the data). Disk full, unwritable paths and the like
// are an Error naming the file and the OS reason; a failed write leaves no partial file at `path`.
void write_safetensors(const std::string& path, std::span<const TensorRef> tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       const SafetensorsWriteOptions& opt = {});

// Writes `dir`/model.safetensors when everything fits in max_shard_bytes, otherwise
// model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json (as transformers does;
// a tensor larger than the limit gets a shard of its own). Returns the files written.
std::vector<std::string> write_safetensors_model(const std::string& dir, std::span<const TensorRef> tensors,
                                                 uint64_t max_shard_bytes = 5ull << 30,
                                                 const std::map<std::string, std::string>& metadata = {});

// ---- conversions --------------------------------------------------------------------------------
float float_from_bf16(uint16_t h);
uint16_t bf16_from_float(float f);  // round to nearest even; NaN stays NaN
float float_from_f16(uint16_t h);
uint16_t f16_from_float(float f);  // round to nearest even; overflow to inf

}  // namespace todae
