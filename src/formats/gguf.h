// todae formats, GGUF (v3, the llama.cpp / ggml model file; spec: ggml's docs/gguf.md):
//   u32 magic "GGUF", u32 version (2 or 3 read, 3 written), u64 tensor_count, u64 kv_count,
//   kv_count × { string key, u32 value_type, value }, tensor_count × { string name, u32 n_dims,
//   u64 dims[n_dims] (innermost first), u32 ggml_type, u64 offset }, padding to general.alignment
//   (default 32), then the tensor data (each offset relative to the data start, aligned).
// Strings are { u64 length, bytes } (no NUL). Arrays are { u32 elem_type, u64 n, elems }.
//
// The reader maps the file and validates every length, count, type, dimension, offset and size
// before use (and bounds allocations by the file size), so a corrupt or truncated file is a
// todae::Error naming the file and the key or tensor, never a crash. Files we write carry one
// xxhash64 per tensor in the string array "todae.checksums.xxh64" (same order as the tensors,
// 16 lowercase hex digits each), verified on open when present.
//
// What the reader accepts: versions 2 and 3 (little-endian; version 1 used 32-bit counts and is
// refused, a big-endian file is named as such); every value type of the spec except arrays of
// arrays; tensors of 1 to 4 dims, each > 0, of a type in GgmlType, the innermost dim a multiple of
// the type's block size, each offset a multiple of the alignment, all inside the file and none
// overlapping (any order and any gaps, as the spec allows); unique keys and tensor names;
// general.alignment, when present, a UINT32 power of two. Errors are one line:
//   "model.gguf: tensor 'blk.0.attn_q.weight': data [A, B) runs past the end of the file (size S); ..."
// with A and B file offsets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/base.h"

namespace todae {

// ggml tensor types (numbering as in ggml.h). Only some are readable by todae's kernels (F32, F16,
// BF16, Q8_0, Q4_0), but the reader knows the block sizes of all listed so it can validate and
// report a file with others ("tensor X has type Q6_K, which todae cannot compute with yet").
// The IQ*, TQ* and MXFP4 types are listed only so that files using them (common on the Hub) open
// and can be reported precisely; 4, 5 and 31-33 were removed from ggml and are refused.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
const char* ggml_type_name(GgmlType t);  // "F32", "Q8_0", ...; "type N" for unknown values
// Block size (elements) and bytes per block; false for a type the reader does not know.
bool ggml_type_block(GgmlType t, int* block_elems, int* block_bytes);
// Bytes of a tensor of this type and GGUF dims (innermost first). Error (without a file name) for
// an unknown type, 0 or more than 4 dims, a dim <= 0, an innermost dim that is not a multiple of
// the block size, or a size that overflows.
uint64_t ggml_nbytes(GgmlType t, std::span<const int64_t> dims);

// GGUF metadata value types (as in the spec).
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);  // "UINT32", ...; "type N" for unknown values

// The string array of per-tensor checksums the writer adds.
inline constexpr std::string_view kGgufChecksumsKey = "todae.checksums.xxh64";
// A hash of the tensor table (names, types, shapes) the checksums belong to: a file whose table
// differs (metadata copied into a new file by another tool, e.g. llama-quantize) has its checksums
// ignored (and both keys dropped from `metadata`) instead of reported as corrupt.
inline constexpr std::string_view kGgufLayoutKey = "todae.checksums.layout";

// One metadata value. Integers of any width are held as int64/uint64, floats as double; arrays
// keep their element type. Arrays of arrays are rejected on read (no model uses them).
// Which scalar alternative is held: uint64_t for UINT8/16/32/64, int64_t for INT8/16/32/64, double
// for FLOAT32/64, bool for BOOL, std::string for STRING (the writer also accepts the other integer
// alternative when the value fits). UINT64 arrays keep each value's bit pattern in `ints`.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT32;
  GgufValueType elem_type = GgufValueType::UINT32;  // arrays only
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;
  std::vector<std::string> strings;  // STRING arrays
  std::vector<int64_t> ints;         // integer and BOOL arrays
  std::vector<double> floats;        // FLOAT32/FLOAT64 arrays

  bool is_array() const { return type == GgufValueType::ARRAY; }
  uint64_t size() const;  // array length (0 for a scalar)
  bool operator==(const GgufValue&) const = default;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;        // relative to the data section, validated
  uint64_t nbytes = 0;
  uint64_t numel() const;
};

struct GgufFile {
  std::string path;
  uint32_t version = 3;
  uint32_t alignment = 32;
  std::map<std::string, GgufValue, std::less<>> metadata;
  std::vector<GgufTensorInfo> tensors;  // file order

  const GgufValue* find_value(std::string_view key) const;
  // Typed getters: Error naming file and key when absent or of an incompatible type.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;  // any integer type (uint64 > INT64_MAX is an error)
  double get_float(std::string_view key) const;  // FLOAT32/FLOAT64, or an integer
  bool get_bool(std::string_view key) const;
  // The same with a default when absent (still an Error for the wrong type).
  std::string get_string(std::string_view key, std::string_view def) const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key, double def) const;
  // Arrays: Error naming file and key when absent or of another element type. get_ints takes any
  // integer or BOOL element type, get_floats FLOAT32/FLOAT64.
  const std::vector<std::string>& get_strings(std::string_view key) const;
  const std::vector<int64_t>& get_ints(std::string_view key) const;
  const std::vector<double>& get_floats(std::string_view key) const;

  const GgufTensorInfo* find(std::string_view name) const;
  const GgufTensorInfo& get(std::string_view name) const;  // Error naming file and tensor
  // The tensor's bytes inside the mapping (valid while this object lives). From open_gguf they are
  // aligned to `alignment` (up to the page size); from parse_gguf, as aligned as the caller's buffer.
  const uint8_t* data(const GgufTensorInfo& t) const;
  std::string_view bytes(const GgufTensorInfo& t) const;
  void verify_checksums() const;  // Error naming the first tensor whose checksum differs

  std::unique_ptr<MappedFile> map;
  const uint8_t* data_start = nullptr;
  uint64_t data_size = 0;
};

struct GgufOpenOptions {
  bool verify_checksums = true;
};
std::unique_ptr<GgufFile> open_gguf(const std::string& path, const GgufOpenOptions& opt = {});
// The same checks on bytes in memory (for tests and the fuzzer); points into `bytes`.
std::unique_ptr<GgufFile> parse_gguf(std::string_view bytes, const std::string& name,
                                     const GgufOpenOptions& opt = {});

// ---- writing ----------------------------------------------------------------------------------

struct GgufTensorRef {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;  // GGUF order (innermost first)
  const void* data = nullptr; // nbytes of it, not copied
  uint64_t nbytes = 0;
};

// Builders for metadata values.
GgufValue gguf_string(std::string s);
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_i64(int64_t v);
GgufValue gguf_f64(double v);
GgufValue gguf_scalar(GgufValueType type, int64_t v);  // any integer type (UINT64 from the bits)
GgufValue gguf_strings(std::vector<std::string> v);
GgufValue gguf_i32s(std::vector<int64_t> v);    // INT32 array (e.g. tokenizer.ggml.token_type)
GgufValue gguf_f32s(std::vector<double> v);     // FLOAT32 array (e.g. tokenizer.ggml.scores)
GgufValue gguf_ints(GgufValueType elem, std::vector<int64_t> v);  // any integer or BOOL array
GgufValue gguf_floats(GgufValueType elem, std::vector<double> v); // FLOAT32 or FLOAT64 array

struct GgufWriteOptions {
  bool checksums = true;  // add "todae.checksums.xxh64"
  bool atomic = true;     // PATH.tmp.PID, fsync, rename (a failed write leaves nothing at PATH)
  uint32_t alignment = 32;
};
// Writes a GGUF v3 file: metadata in the given order with general.alignment added when not 32,
// tensors in the given order, each aligned, padded with zeros (after the last one too, as ggml
// does). Streams from the caller's buffers. Checks before creating anything: unique non-empty keys,
// values that fit their type (no arrays of arrays), tensor names unique, non-empty and at most 63
// bytes (ggml's limit), dims/type/nbytes consistent (ggml_nbytes), alignment a power of two. A
// given "todae.checksums.xxh64" is dropped (stale after copying metadata from another file) and
// recomputed when opt.checksums; a given general.alignment must be UINT32 and equal opt.alignment.
// Errors name the file ("cannot write PATH: ...") and, for I/O, the OS reason; a failed write
// leaves nothing at PATH.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                std::span<const GgufTensorRef> tensors, const GgufWriteOptions& opt = {});

}  // namespace todae
