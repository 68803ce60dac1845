#!/usr/bin/python3
"""safetensors interop with PyTorch, without the safetensors package (Debian has none for torch 1.13).

  st_interop.py check FILE         read FILE with the rules of the reference safetensors library
                                   (contiguous data, no holes, exact sizes), load every tensor with
                                   torch.frombuffer and print {name: {dtype, shape, values}} as JSON
  st_interop.py write FILE EXPECT  write FILE laid out as safetensors.torch.save_file does, from
                                   torch tensors, and their values to EXPECT as JSON
"""
import json
import struct
import sys

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


def fail(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def check(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        fail("header too long")
    header_bytes = raw[8:8 + n]
    if not header_bytes.startswith(b"{"):
        fail("header does not start with {")
    header = json.loads(header_bytes.decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        fail("__metadata__ must map strings to strings")
    # The reference library's Metadata::validate: sorted by offsets, each starting where the
    # previous ended, sizes exact, the last ending at the end of the buffer.
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    expected = 0
    out = {}
    for name, info in entries:
        b, e = info["data_offsets"]
        if b != expected or e < b:
            fail(f"{name}: offsets [{b}, {e}] leave a hole or overlap (expected start {expected})")
        dtype = DTYPES[info["dtype"]]
        numel = 1
        for d in info["shape"]:
            numel *= d
        if numel * torch.tensor([], dtype=dtype).element_size() != e - b:
            fail(f"{name}: size mismatch")
        expected = e
        if numel == 0:
            t = torch.empty(info["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=dtype).reshape(info["shape"])
        out[name] = {"dtype": info["dtype"], "shape": list(t.shape),
                     "values": t.reshape(-1).double().tolist()}
    if expected != len(data):
        fail(f"data section is {len(data)} bytes, tensors end at {expected}")
    json.dump({"metadata": meta, "tensors": out}, sys.stdout)


def tensor_bytes(t):
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()


def write(path, expect_path):
    g = torch.Generator().manual_seed(5)
    tensors = {
        "model.embed_tokens.weight": torch.randn(7, 5, generator=g),
        "model.norm.weight": torch.randn(5, generator=g).to(torch.float16),
        "lm_head.weight": torch.randn(3, 4, generator=g).to(torch.bfloat16),
        "f64": torch.randn(2, generator=g).double(),
        "positions": torch.arange(-3, 3, dtype=torch.int64),
        "i32": torch.tensor([1, -1, 2**31 - 1], dtype=torch.int32),
        "bytes": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 2),
    }
    # As safetensors.torch.save_file: data ordered by decreasing alignment, then name.
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, offset = {"__metadata__": {"format": "pt", "source": "python"}}, [], 0
    for name in order:
        b = tensor_bytes(tensors[name])
        header[name] = {"dtype": NAMES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    json.dump({k: {"dtype": NAMES[t.dtype], "shape": list(t.shape), "values": t.reshape(-1).double().tolist()}
               for k, t in tensors.items()}, open(expect_path, "w"))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2])
    elif sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        fail("usage: st_interop.py check FILE | write FILE EXPECT")
