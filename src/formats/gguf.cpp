// GGUF reader and writer. See gguf.h for the layout and guarantees.
//
// The reader never trusts a number from the file before checking it against the bytes that are
// actually there: counts and lengths are bounded by what remains of the file before anything is
// allocated, and every tensor's type, shape, offset and size are validated before data() can be
// called. Messages are one line: "FILE: WHERE: what is wrong".
#include "formats/gguf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "formats/formats.h"

namespace fs = std::filesystem;

namespace todae {

// ---- types --------------------------------------------------------------------------------------

namespace {

struct GgmlTypeDesc {
  GgmlType t;
  const char* name;
  int block_elems, block_bytes;
};
// Block layouts as in ggml's ggml-common.h (QK_K = 256).
constexpr GgmlTypeDesc kGgmlTypes[] = {
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},      {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 36},
    {GgmlType::Q2_K, "Q2_K", 256, 84},     {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},   {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},            {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},          {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},        {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},   {GgmlType::MXFP4, "MXFP4", 32, 17},
};

const GgmlTypeDesc* find_type(GgmlType t) {
  for (const auto& d : kGgmlTypes)
    if (d.t == t) return &d;
  return nullptr;
}

constexpr const char* kValueTypeNames[] = {"UINT8",  "INT8",   "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
                                           "BOOL",   "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
constexpr uint32_t kNumValueTypes = 13;

bool valid_value_type(uint32_t t) { return t < kNumValueTypes; }

// Bytes one value of this type takes in the file (the minimum, 8, for a string).
uint64_t value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    default: return 8;
  }
}

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}
bool is_integer(GgufValueType t) { return is_unsigned(t) || is_signed(t); }
bool is_float(GgufValueType t) { return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64; }

std::string dims_text(std::span<const int64_t> d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); ++i) out += cat(i ? ", " : "", d[i]);
  return out + "]";
}

// Bytes of a tensor, or an empty optional-like false with `why` set.
bool tensor_nbytes(GgmlType t, std::span<const int64_t> dims, uint64_t* out, std::string* why) {
  const GgmlTypeDesc* d = find_type(t);
  if (!d) {
    *why = cat("unknown ggml type ", static_cast<uint32_t>(t));
    return false;
  }
  if (dims.empty() || dims.size() > 4) {
    *why = cat("has ", dims.size(), " dimensions, expected 1 to 4");
    return false;
  }
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] <= 0) {
      *why = cat("dimension ", i, " is ", dims[i], ", expected > 0");
      return false;
    }
  if (dims[0] % d->block_elems != 0) {
    *why = cat("innermost dimension ", dims[0], " is not a multiple of the ", d->name, " block size ",
               d->block_elems);
    return false;
  }
  uint64_t numel = 1, bytes = 0;
  bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(dims[0] / d->block_elems),
                                         static_cast<uint64_t>(d->block_bytes), &bytes);
  for (int64_t x : dims) overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(x), &numel);
  for (size_t i = 1; i < dims.size(); ++i)
    overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(dims[i]), &bytes);
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX) || bytes > static_cast<uint64_t>(INT64_MAX)) {
    *why = cat("shape ", dims_text(dims), " of ", d->name, " is too large (its size overflows 63 bits)");
    return false;
  }
  *out = bytes;
  return true;
}

bool is_lower_hex16(std::string_view s) {
  return s.size() == 16 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

const char* ggml_type_name(GgmlType t) {
  if (const GgmlTypeDesc* d = find_type(t)) return d->name;
  // Unknown values: a small ring of buffers keeps the returned pointer valid for a while.
  static thread_local char buf[4][24];
  static thread_local int next = 0;
  char* b = buf[next++ & 3];
  std::snprintf(b, 24, "type %u", static_cast<unsigned>(t));
  return b;
}

bool ggml_type_block(GgmlType t, int* block_elems, int* block_bytes) {
  const GgmlTypeDesc* d = find_type(t);
  if (!d) return false;
  if (block_elems) *block_elems = d->block_elems;
  if (block_bytes) *block_bytes = d->block_bytes;
  return true;
}

uint64_t ggml_nbytes(GgmlType t, std::span<const int64_t> dims) {
  uint64_t n = 0;
  std::string why;
  if (!tensor_nbytes(t, dims, &n, &why)) fail(why);
  return n;
}

const char* gguf_value_type_name(GgufValueType t) {
  uint32_t v = static_cast<uint32_t>(t);
  if (v < kNumValueTypes) return kValueTypeNames[v];
  static thread_local char buf[4][24];
  static thread_local int next = 0;
  char* b = buf[next++ & 3];
  std::snprintf(b, 24, "type %u", v);
  return b;
}

uint64_t GgufValue::size() const {
  if (type != GgufValueType::ARRAY) return 0;
  if (elem_type == GgufValueType::STRING) return strings.size();
  if (is_float(elem_type)) return floats.size();
  return ints.size();
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : dims) n *= static_cast<uint64_t>(d);  // validated not to overflow on parse
  return n;
}

// ---- metadata access ------------------------------------------------------------------------------

namespace {
std::string value_desc(const GgufValue& v) {
  if (v.type == GgufValueType::ARRAY) return cat("an array of ", gguf_value_type_name(v.elem_type));
  return gguf_value_type_name(v.type);
}
}  // namespace

const GgufValue* GgufFile::find_value(std::string_view key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

namespace {
const GgufValue& must_find(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find_value(key);
  if (!v) fail(f.path, ": no metadata key '", printable(key), "'");
  return *v;
}
[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const GgufValue& v, const char* expected) {
  fail(f.path, ": metadata key '", printable(key), "' is ", value_desc(v), ", expected ", expected);
}
std::string string_of(const GgufFile& f, std::string_view key, const GgufValue& v) {
  if (v.type != GgufValueType::STRING) wrong_type(f, key, v, "STRING");
  return std::get<std::string>(v.scalar);
}
int64_t int_of(const GgufFile& f, std::string_view key, const GgufValue& v) {
  if (!is_integer(v.type)) wrong_type(f, key, v, "an integer");
  if (const uint64_t* u = std::get_if<uint64_t>(&v.scalar)) {
    if (*u > static_cast<uint64_t>(INT64_MAX))
      fail(f.path, ": metadata key '", printable(key), "' is ", *u, ", which is too large for a signed 64-bit integer");
    return static_cast<int64_t>(*u);
  }
  if (const int64_t* i = std::get_if<int64_t>(&v.scalar)) return *i;
  wrong_type(f, key, v, "an integer");
}
double float_of(const GgufFile& f, std::string_view key, const GgufValue& v) {
  if (is_float(v.type)) {
    if (const double* d = std::get_if<double>(&v.scalar)) return *d;
  } else if (is_integer(v.type)) {
    if (const uint64_t* u = std::get_if<uint64_t>(&v.scalar)) return static_cast<double>(*u);
    if (const int64_t* i = std::get_if<int64_t>(&v.scalar)) return static_cast<double>(*i);
  }
  wrong_type(f, key, v, "a number");
}
}  // namespace

std::string GgufFile::get_string(std::string_view key) const { return string_of(*this, key, must_find(*this, key)); }
int64_t GgufFile::get_int(std::string_view key) const { return int_of(*this, key, must_find(*this, key)); }
double GgufFile::get_float(std::string_view key) const { return float_of(*this, key, must_find(*this, key)); }
bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::BOOL) wrong_type(*this, key, v, "BOOL");
  return std::get<bool>(v.scalar);
}
std::string GgufFile::get_string(std::string_view key, std::string_view def) const {
  const GgufValue* v = find_value(key);
  return v ? string_of(*this, key, *v) : std::string(def);
}
int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
  const GgufValue* v = find_value(key);
  return v ? int_of(*this, key, *v) : def;
}
double GgufFile::get_float(std::string_view key, double def) const {
  const GgufValue* v = find_value(key);
  return v ? float_of(*this, key, *v) : def;
}
const std::vector<std::string>& GgufFile::get_strings(std::string_view key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::ARRAY || v.elem_type != GgufValueType::STRING)
    wrong_type(*this, key, v, "an array of STRING");
  return v.strings;
}
const std::vector<int64_t>& GgufFile::get_ints(std::string_view key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::ARRAY || !(is_integer(v.elem_type) || v.elem_type == GgufValueType::BOOL))
    wrong_type(*this, key, v, "an array of integers");
  return v.ints;
}
const std::vector<double>& GgufFile::get_floats(std::string_view key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::ARRAY || !is_float(v.elem_type)) wrong_type(*this, key, v, "an array of FLOAT32/FLOAT64");
  return v.floats;
}

const GgufTensorInfo* GgufFile::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const GgufTensorInfo& GgufFile::get(std::string_view name) const {
  const GgufTensorInfo* t = find(name);
  if (!t) fail(path, ": no tensor '", printable(name), "'");
  return *t;
}

const uint8_t* GgufFile::data(const GgufTensorInfo& t) const { return data_start + t.offset; }

std::string_view GgufFile::bytes(const GgufTensorInfo& t) const {
  return {reinterpret_cast<const char*>(data_start + t.offset), static_cast<size_t>(t.nbytes)};
}

// The checksums describe the tensors of the file todae wrote. Tools that copy every metadata key
// into a new file with other tensor data (llama-quantize does) would carry them over stale, so the
// writer also records a hash of the tensor table (names, types, shapes): when it no longer matches,
// the checksums are about another file and are ignored rather than reported as corruption.
static std::string tensor_layout_hash(const std::vector<GgufTensorInfo>& tensors) {
  std::string s;
  for (const GgufTensorInfo& t : tensors) {
    s += t.name;
    s += cat('\0', uint32_t(t.type));
    for (int64_t d : t.dims) s += cat(':', d);
    s += '\n';
  }
  return xxh64_hex(xxh64(s.data(), s.size()));
}

void GgufFile::verify_checksums() const {
  const GgufValue* v = find_value(kGgufChecksumsKey);
  if (!v) return;
  // Shape checked on parse; re-checked here so a caller-modified object cannot index out of range.
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING || v->strings.size() != tensors.size())
    fail(path, ": metadata key '", kGgufChecksumsKey, "' does not hold one checksum per tensor");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = tensors[i];
    std::string got = xxh64_hex(xxh64(data(t), t.nbytes));
    if (got != v->strings[i])
      fail(path, ": tensor '", printable(t.name), "' is corrupt: xxh64 checksum of its data is ", got, ", expected ",
           v->strings[i], " (from ", kGgufChecksumsKey, ")");
  }
}

// ---- reading --------------------------------------------------------------------------------------

namespace {

// Little-endian reads with bounds checks; `where` names the entry being read for messages.
struct Cursor {
  const uint8_t* p;
  uint64_t size;
  const std::string& file;
  uint64_t pos = 0;
  std::string where = "header";

  uint64_t left() const { return size - pos; }
  [[noreturn]] void bad(const std::string& what) { fail(file, ": ", where, ": ", what); }
  void need(uint64_t n, const char* what) {
    if (n > left())
      bad(cat(what, " (", n, " bytes at offset ", pos, ") runs past the end of the file (size ", size,
              "); the file is truncated"));
  }
  uint64_t uint(int n, const char* what) {
    need(static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[pos + i];
    pos += static_cast<uint64_t>(n);
    return v;
  }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(uint(4, what)); }
  uint64_t u64(const char* what) { return uint(8, what); }
  std::string_view str(const char* what) {
    uint64_t at = pos;
    uint64_t n = u64(what);
    if (n > left())
      bad(cat(what, " length ", n, " (at offset ", at, ") runs past the end of the file (", left(),
              " bytes left of ", size, "); the file is truncated or corrupt"));
    std::string_view s(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }
};

// One element or scalar of a non-array type into the value's scalar or the array vectors.
void read_scalar(Cursor& c, GgufValueType t, GgufValue& v, bool in_array) {
  const char* what = in_array ? "array element" : "value";
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32: case GgufValueType::UINT64: {
      uint64_t u = c.uint(static_cast<int>(value_size(t)), what);
      if (in_array)
        v.ints.push_back(static_cast<int64_t>(u));  // UINT64: the bit pattern
      else
        v.scalar = u;
      return;
    }
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64: {
      int bytes = static_cast<int>(value_size(t));
      uint64_t u = c.uint(bytes, what);
      int shift = 64 - 8 * bytes;
      int64_t s = static_cast<int64_t>(u << shift) >> shift;  // sign-extend
      if (in_array)
        v.ints.push_back(s);
      else
        v.scalar = s;
      return;
    }
    case GgufValueType::FLOAT32: {
      uint32_t u = c.u32(what);
      float f;
      std::memcpy(&f, &u, 4);
      if (in_array)
        v.floats.push_back(f);
      else
        v.scalar = static_cast<double>(f);
      return;
    }
    case GgufValueType::FLOAT64: {
      uint64_t u = c.u64(what);
      double d;
      std::memcpy(&d, &u, 8);
      if (in_array)
        v.floats.push_back(d);
      else
        v.scalar = d;
      return;
    }
    case GgufValueType::BOOL: {
      uint64_t at = c.pos;
      uint64_t b = c.uint(1, what);
      if (b > 1) c.bad(cat("BOOL ", what, " at offset ", at, " is ", b, ", expected 0 or 1"));
      if (in_array)
        v.ints.push_back(static_cast<int64_t>(b));
      else
        v.scalar = b == 1;
      return;
    }
    case GgufValueType::STRING: {
      std::string_view s = c.str(in_array ? "string array element" : "string value");
      if (in_array)
        v.strings.emplace_back(s);
      else
        v.scalar = std::string(s);
      return;
    }
    case GgufValueType::ARRAY:
      break;
  }
  c.bad("internal: unexpected value type");  // not reached: callers check the type
}

GgufValue read_value(Cursor& c) {
  GgufValue v;
  uint64_t at = c.pos;
  uint32_t type = c.u32("value type");
  if (!valid_value_type(type))
    c.bad(cat("unknown value type ", type, " (at offset ", at, "; known types are 0 to 12)"));
  v.type = static_cast<GgufValueType>(type);
  if (v.type != GgufValueType::ARRAY) {
    read_scalar(c, v.type, v, false);
    return v;
  }
  at = c.pos;
  uint32_t elem = c.u32("array element type");
  if (elem == static_cast<uint32_t>(GgufValueType::ARRAY))
    c.bad(cat("nested array (element type ARRAY at offset ", at, "): arrays of arrays are not supported"));
  if (!valid_value_type(elem))
    c.bad(cat("unknown array element type ", elem, " (at offset ", at, "; known types are 0 to 12)"));
  v.elem_type = static_cast<GgufValueType>(elem);
  at = c.pos;
  uint64_t n = c.u64("array length");
  uint64_t es = value_size(v.elem_type);
  // Bound the count by the bytes that are there before reserving anything.
  if (n > c.left() / es)
    c.bad(cat("array of ", n, " ", gguf_value_type_name(v.elem_type), " (length at offset ", at, ") needs ",
              n > std::numeric_limits<uint64_t>::max() / es ? std::string("more than 2^64")
                                                             : cat("at least ", n * es),
              " bytes but only ", c.left(), " are left in the file (size ", c.size,
              "); the file is truncated or corrupt"));
  if (v.elem_type == GgufValueType::STRING)
    v.strings.reserve(n);
  else if (is_float(v.elem_type))
    v.floats.reserve(n);
  else
    v.ints.reserve(n);
  for (uint64_t i = 0; i < n; ++i) read_scalar(c, v.elem_type, v, true);
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool is_pow2(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

// Minimum bytes of one metadata entry (empty key, 1-byte value) and of one tensor info (empty name,
// one dimension): counts above size / these cannot be genuine.
constexpr uint64_t kMinKv = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfo = 8 + 4 + 8 + 4 + 8;

}  // namespace

std::unique_ptr<GgufFile> parse_gguf(std::string_view bytes, const std::string& name, const GgufOpenOptions& opt) {
  auto f = std::make_unique<GgufFile>();
  f->path = name;
  Cursor c{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name};

  // Header.
  if (bytes.size() < 4) fail(name, ": not a GGUF file: ", bytes.size(), " bytes, shorter than the 4-byte magic");
  if (bytes.substr(0, 4) != "GGUF")
    fail(name, ": not a GGUF file: the magic is '", printable(bytes.substr(0, 4)), "', expected 'GGUF'");
  c.pos = 4;
  uint32_t version = c.u32("version");
  if (version == 1)
    fail(name, ": GGUF version 1 is not supported (only 2 and 3; version 1 files predate August 2023, convert the "
               "model again)");
  if (version == 0x02000000u || version == 0x03000000u)
    fail(name, ": this is a big-endian GGUF file (version ", __builtin_bswap32(version),
         " byte-swapped), which is not supported");
  if (version != 2 && version != 3) fail(name, ": unknown GGUF version ", version, " (supported: 2 and 3)");
  f->version = version;
  uint64_t n_tensors = c.u64("tensor count");
  uint64_t n_kv = c.u64("metadata count");
  if (n_tensors > c.left() / kMinTensorInfo)
    fail(name, ": header: tensor count ", n_tensors, " cannot fit in a file of ", c.size,
         " bytes (each tensor info takes at least ", kMinTensorInfo, "); the file is corrupt or truncated");
  if (n_kv > c.left() / kMinKv)
    fail(name, ": header: metadata count ", n_kv, " cannot fit in a file of ", c.size,
         " bytes (each entry takes at least ", kMinKv, "); the file is corrupt or truncated");

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.where = cat("metadata entry #", i);
    std::string_view key = c.str("key");
    if (key.empty()) c.bad("empty key");
    c.where = cat("metadata key '", printable(key), "'");
    if (f->metadata.count(key)) c.bad("the key appears twice");
    GgufValue v = read_value(c);
    f->metadata.emplace(std::string(key), std::move(v));
  }
  c.where = "header";

  if (const GgufValue* a = f->find_value("general.alignment")) {
    const uint64_t* u = std::get_if<uint64_t>(&a->scalar);
    if (a->type != GgufValueType::UINT32 || !u)
      fail(name, ": metadata key 'general.alignment' is ", value_desc(*a), ", expected UINT32");
    if (!is_pow2(*u)) fail(name, ": metadata key 'general.alignment' is ", *u, ", expected a power of two");
    f->alignment = static_cast<uint32_t>(*u);
  }

  // Tensor infos.
  f->tensors.reserve(n_tensors);
  std::set<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.where = cat("tensor info #", i);
    std::string_view tname = c.str("name");
    if (tname.empty()) c.bad("empty tensor name");
    c.where = cat("tensor '", printable(tname), "'");
    if (!names.insert(tname).second) c.bad("the tensor name appears twice");
    GgufTensorInfo t;
    t.name = std::string(tname);
    uint32_t nd = c.u32("n_dims");
    if (nd < 1 || nd > 4) c.bad(cat("n_dims is ", nd, ", expected 1 to 4"));
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t x = c.u64("dimension");
      if (x == 0) c.bad(cat("dimension ", d, " is 0, expected > 0"));
      if (x > static_cast<uint64_t>(INT64_MAX)) c.bad(cat("dimension ", d, " is ", x, ", which is too large"));
      t.dims.push_back(static_cast<int64_t>(x));
    }
    uint32_t type = c.u32("type");
    t.type = static_cast<GgmlType>(type);
    if (!find_type(t.type)) {
      const char* removed = (type == 4 || type == 5 || (type >= 31 && type <= 33)) ? ", removed from ggml" : "";
      c.bad(cat("unknown ggml type ", type, " (", "not one todae knows", removed, ")"));
    }
    t.offset = c.u64("offset");
    std::string why;
    if (!tensor_nbytes(t.type, t.dims, &t.nbytes, &why)) c.bad(why);
    f->tensors.push_back(std::move(t));
  }

  // Data section: starts at the first multiple of the alignment after the tensor infos.
  uint64_t data_off = align_up(c.pos, f->alignment);
  f->data_size = data_off <= c.size ? c.size - data_off : 0;
  f->data_start = c.p + std::min<uint64_t>(data_off, c.size);
  for (const auto& t : f->tensors) {
    std::string where = cat("tensor '", printable(t.name), "'");
    if (t.offset % f->alignment != 0)
      fail(name, ": ", where, ": offset ", t.offset, " is not a multiple of the alignment ", f->alignment);
    if (t.offset > f->data_size)
      fail(name, ": ", where, ": offset ", t.offset, " is past the end of the file (size ", c.size,
           ", data section at ", data_off, "); the file is truncated or corrupt");
    if (t.nbytes > f->data_size - t.offset) {
      uint64_t a = data_off + t.offset;
      fail(name, ": ", where, ": data [", a, ", ", a + t.nbytes, ") runs past the end of the file (size ", c.size,
           "); the file is truncated");
    }
  }
  // No two tensors may share bytes (all have nbytes > 0).
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : f->tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->name < b->name;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo *a = by_offset[i - 1], *b = by_offset[i];
    if (b->offset < a->offset + a->nbytes)
      fail(name, ": tensors '", printable(a->name), "' and '", printable(b->name), "' overlap: data [", a->offset, ", ",
           a->offset + a->nbytes, ") and [", b->offset, ", ", b->offset + b->nbytes, ") of the data section");
  }

  const GgufValue* layout = f->find_value(kGgufLayoutKey);
  const bool stale = layout && (layout->type != GgufValueType::STRING ||
                                std::get<std::string>(layout->scalar) != tensor_layout_hash(f->tensors));
  if (stale) {
    f->metadata.erase(std::string(kGgufChecksumsKey));
    f->metadata.erase(std::string(kGgufLayoutKey));
  }
  if (const GgufValue* cs = f->find_value(kGgufChecksumsKey)) {
    std::string where = cat("metadata key '", kGgufChecksumsKey, "'");
    if (cs->type != GgufValueType::ARRAY || cs->elem_type != GgufValueType::STRING)
      fail(name, ": ", where, " is ", value_desc(*cs), ", expected an array of STRING");
    if (cs->strings.size() != f->tensors.size())
      fail(name, ": ", where, " has ", cs->strings.size(), " checksums for ", f->tensors.size(), " tensors");
    for (size_t i = 0; i < cs->strings.size(); ++i)
      if (!is_lower_hex16(cs->strings[i]))
        fail(name, ": ", where, ": entry ", i, " ('", printable(cs->strings[i]), "') is not 16 lowercase hex digits");
    if (opt.verify_checksums) f->verify_checksums();
  }
  return f;
}

std::unique_ptr<GgufFile> open_gguf(const std::string& path, const GgufOpenOptions& opt) {
  auto map = std::make_unique<MappedFile>(path);
  auto f = parse_gguf(map->view(), path, opt);
  f->map = std::move(map);
  return f;
}

// ---- builders -------------------------------------------------------------------------------------

static GgufValue scalar_value(GgufValueType type, decltype(GgufValue::scalar) x) {
  GgufValue v;
  v.type = type;
  v.scalar = std::move(x);
  return v;
}
GgufValue gguf_string(std::string s) { return scalar_value(GgufValueType::STRING, std::move(s)); }
GgufValue gguf_u32(uint32_t x) { return scalar_value(GgufValueType::UINT32, static_cast<uint64_t>(x)); }
GgufValue gguf_i32(int32_t x) { return scalar_value(GgufValueType::INT32, static_cast<int64_t>(x)); }
GgufValue gguf_u64(uint64_t x) { return scalar_value(GgufValueType::UINT64, x); }
GgufValue gguf_i64(int64_t x) { return scalar_value(GgufValueType::INT64, x); }
GgufValue gguf_f32(float x) { return scalar_value(GgufValueType::FLOAT32, static_cast<double>(x)); }
GgufValue gguf_f64(double x) { return scalar_value(GgufValueType::FLOAT64, x); }
GgufValue gguf_bool(bool x) { return scalar_value(GgufValueType::BOOL, x); }
GgufValue gguf_scalar(GgufValueType type, int64_t x) {
  if (!is_integer(type)) fail("gguf_scalar: ", gguf_value_type_name(type), " is not an integer type");
  if (is_unsigned(type)) return scalar_value(type, static_cast<uint64_t>(x));
  return scalar_value(type, x);
}
GgufValue gguf_strings(std::vector<std::string> x) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = GgufValueType::STRING;
  v.strings = std::move(x);
  return v;
}
GgufValue gguf_ints(GgufValueType elem, std::vector<int64_t> x) {
  if (!is_integer(elem) && elem != GgufValueType::BOOL)
    fail("gguf_ints: ", gguf_value_type_name(elem), " is not an integer or BOOL type");
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = elem;
  v.ints = std::move(x);
  return v;
}
GgufValue gguf_floats(GgufValueType elem, std::vector<double> x) {
  if (!is_float(elem)) fail("gguf_floats: ", gguf_value_type_name(elem), " is not FLOAT32 or FLOAT64");
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = elem;
  v.floats = std::move(x);
  return v;
}
GgufValue gguf_i32s(std::vector<int64_t> x) { return gguf_ints(GgufValueType::INT32, std::move(x)); }
GgufValue gguf_f32s(std::vector<double> x) { return gguf_floats(GgufValueType::FLOAT32, std::move(x)); }

// ---- writing --------------------------------------------------------------------------------------

namespace {

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& out, std::string_view s) {
  put_le(out, s.size(), 8);
  out.append(s);
}

// Range of each integer type, as [lo, hi] in a 128-bit integer.
bool int_fits(GgufValueType t, __int128 x) {
  switch (t) {
    case GgufValueType::UINT8: return x >= 0 && x <= 0xff;
    case GgufValueType::INT8: return x >= -128 && x <= 127;
    case GgufValueType::UINT16: return x >= 0 && x <= 0xffff;
    case GgufValueType::INT16: return x >= -32768 && x <= 32767;
    case GgufValueType::UINT32: return x >= 0 && x <= 0xffffffffll;
    case GgufValueType::INT32: return x >= INT32_MIN && x <= INT32_MAX;
    case GgufValueType::UINT64: return x >= 0 && x <= static_cast<__int128>(UINT64_MAX);
    case GgufValueType::INT64: return x >= INT64_MIN && x <= INT64_MAX;
    case GgufValueType::BOOL: return x == 0 || x == 1;
    default: return false;
  }
}

void put_float(std::string& out, GgufValueType t, double d, const std::string& err) {
  if (t == GgufValueType::FLOAT32) {
    if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
      fail(err, "value ", d, " does not fit in FLOAT32");
    float f = static_cast<float>(d);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    put_le(out, u, 4);
  } else {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    put_le(out, u, 8);
  }
}

// Serializes a value after checking it is representable; `err` prefixes messages.
void put_value(std::string& out, const GgufValue& v, const std::string& err) {
  uint32_t type = static_cast<uint32_t>(v.type);
  if (!valid_value_type(type)) fail(err, "unknown value type ", type);
  put_le(out, type, 4);
  if (v.type == GgufValueType::ARRAY) {
    uint32_t elem = static_cast<uint32_t>(v.elem_type);
    if (v.elem_type == GgufValueType::ARRAY) fail(err, "arrays of arrays are not supported");
    if (!valid_value_type(elem)) fail(err, "unknown array element type ", elem);
    bool s = v.elem_type == GgufValueType::STRING, fl = is_float(v.elem_type), in = !s && !fl;
    if ((!s && !v.strings.empty()) || (!fl && !v.floats.empty()) || (!in && !v.ints.empty()))
      fail(err, "an array of ", gguf_value_type_name(v.elem_type), " holds elements in the wrong vector");
    put_le(out, elem, 4);
    if (s) {
      put_le(out, v.strings.size(), 8);
      for (const auto& x : v.strings) put_str(out, x);
    } else if (fl) {
      put_le(out, v.floats.size(), 8);
      for (double x : v.floats) put_float(out, v.elem_type, x, err);
    } else {
      put_le(out, v.ints.size(), 8);
      int bytes = static_cast<int>(value_size(v.elem_type));
      for (size_t i = 0; i < v.ints.size(); ++i) {
        int64_t x = v.ints[i];
        // UINT64 arrays keep the bit pattern, so any int64 is fine there.
        if (v.elem_type != GgufValueType::UINT64 && !int_fits(v.elem_type, x))
          fail(err, "array element ", i, " (", x, ") does not fit in ", gguf_value_type_name(v.elem_type));
        put_le(out, static_cast<uint64_t>(x), bytes);
      }
    }
    return;
  }
  if (v.type == GgufValueType::STRING) {
    const std::string* s = std::get_if<std::string>(&v.scalar);
    if (!s) fail(err, "a STRING value does not hold a string");
    put_str(out, *s);
  } else if (is_float(v.type)) {
    const double* d = std::get_if<double>(&v.scalar);
    if (!d) fail(err, "a ", gguf_value_type_name(v.type), " value does not hold a double");
    put_float(out, v.type, *d, err);
  } else if (v.type == GgufValueType::BOOL) {
    const bool* b = std::get_if<bool>(&v.scalar);
    if (!b) fail(err, "a BOOL value does not hold a bool");
    put_le(out, *b ? 1 : 0, 1);
  } else {
    __int128 x;
    if (const uint64_t* u = std::get_if<uint64_t>(&v.scalar))
      x = *u;
    else if (const int64_t* i = std::get_if<int64_t>(&v.scalar))
      x = *i;
    else
      fail(err, "a ", gguf_value_type_name(v.type), " value does not hold an integer");
    if (!int_fits(v.type, x)) fail(err, "value does not fit in ", gguf_value_type_name(v.type));
    put_le(out, static_cast<uint64_t>(x), static_cast<int>(value_size(v.type)));
  }
}


// ggml keeps names in char[64] with the NUL.
constexpr size_t kMaxTensorName = 63;

}  // namespace

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                std::span<const GgufTensorRef> tensors, const GgufWriteOptions& opt) {
  const std::string err = cat("cannot write ", path, ": ");
  if (!is_pow2(opt.alignment)) fail(err, "alignment ", opt.alignment, " is not a power of two");

  // Everything is checked and the header built before the file is created.
  std::string kv;
  uint64_t n_kv = 0;
  bool has_alignment = false;
  std::set<std::string_view> keys;
  for (const auto& [key, value] : metadata) {
    if (key.empty()) fail(err, "empty metadata key");
    if (!keys.insert(key).second) fail(err, "metadata key '", printable(key), "' given twice");
    if (key == kGgufChecksumsKey || key == kGgufLayoutKey) continue;  // recomputed below
    std::string where = cat(err, "metadata key '", printable(key), "': ");
    if (key == "general.alignment") {
      const uint64_t* u = std::get_if<uint64_t>(&value.scalar);
      if (value.type != GgufValueType::UINT32 || !u || *u != opt.alignment)
        fail(where, "must be UINT32 ", opt.alignment, " (the write alignment), got ", value_desc(value),
             u ? cat(" ", *u) : std::string());
      has_alignment = true;
    }
    put_str(kv, key);
    put_value(kv, value, where);
    ++n_kv;
  }
  if (opt.alignment != 32 && !has_alignment) {
    put_str(kv, "general.alignment");
    put_value(kv, gguf_u32(opt.alignment), err);
    ++n_kv;
  }

  std::vector<uint64_t> offsets;
  std::set<std::string_view> names;
  std::vector<std::string> sums;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    if (t.name.empty()) fail(err, "empty tensor name");
    if (t.name.size() > kMaxTensorName)
      fail(err, "tensor name '", printable(t.name), "' is longer than ", kMaxTensorName, " bytes (ggml's limit)");
    if (!names.insert(t.name).second) fail(err, "tensor '", printable(t.name), "' given twice");
    uint64_t want = 0;
    std::string why;
    if (!tensor_nbytes(t.type, t.dims, &want, &why)) fail(err, "tensor '", printable(t.name), "': ", why);
    if (want != t.nbytes)
      fail(err, "tensor '", printable(t.name), "': shape ", dims_text(t.dims), " of ", ggml_type_name(t.type),
           " needs ", want, " bytes, given ", t.nbytes);
    if (!t.data) fail(err, "tensor '", printable(t.name), "' has no data");
    offsets.push_back(off);
    off = align_up(off + t.nbytes, opt.alignment);
    if (opt.checksums) sums.push_back(xxh64_hex(xxh64(t.data, t.nbytes)));
  }
  if (opt.checksums) {
    put_str(kv, kGgufChecksumsKey);
    put_value(kv, gguf_strings(sums), err);
    ++n_kv;
    std::vector<GgufTensorInfo> table;
    for (const GgufTensorRef& t : tensors) {
      GgufTensorInfo i;
      i.name = t.name;
      i.type = t.type;
      i.dims = t.dims;
      table.push_back(i);
    }
    put_str(kv, kGgufLayoutKey);
    put_value(kv, gguf_string(tensor_layout_hash(table)), err);
    ++n_kv;
  }

  std::string header = "GGUF";
  put_le(header, 3, 4);
  put_le(header, tensors.size(), 8);
  put_le(header, n_kv, 8);
  header += kv;
  kv.clear();
  kv.shrink_to_fit();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    put_str(header, t.name);
    put_le(header, t.dims.size(), 4);
    for (int64_t d : t.dims) put_le(header, static_cast<uint64_t>(d), 8);
    put_le(header, static_cast<uint32_t>(t.type), 4);
    put_le(header, offsets[i], 8);
  }
  header.append(align_up(header.size(), opt.alignment) - header.size(), '\0');

  OutputFile out(path, opt.atomic);
  out.write(header.data(), header.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    out.write(t.data, t.nbytes);
    out.zeros(align_up(t.nbytes, opt.alignment) - t.nbytes);
  }
  out.commit();
}

}  // namespace todae
