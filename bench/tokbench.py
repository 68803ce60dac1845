#!/usr/bin/python3
"""Helpers for bench/tokenizer_bench.sh (run with Debian's /usr/bin/python3, which has sentencepiece).

  tokbench.py join IN OUT                      non-empty lines of IN joined by single spaces -> OUT (no final newline);
                                               prints "chars bytes lines"
  tokbench.py split-tail IN HEAD TAIL BYTES    split IN at the first blank line (document boundary) at or after
                                               size-BYTES: HEAD gets what precedes, TAIL the rest; prints "head tail"
  tokbench.py pyspm MODEL FILE THREADS         python sentencepiece: encode the lines of FILE (one batch call, num_threads
                                               THREADS); prints "encode_seconds tokens bytes load_seconds encode_cpu_seconds"
  tokbench.py analyze SPEC IDS                 per-script statistics of the token sequence in IDS (whitespace-separated ids)
                                               produced by the tokenizer SPEC; prints one tab-separated line
                                               (see ANALYZE_FIELDS)
  tokbench.py pick IN N MAXCHARS              the first N lines of IN (<= MAXCHARS characters) where a Hangul
                                               character touches a Latin letter
  tokbench.py gap SPEC IDS SPM_MODEL TEXT      where two tokenizers' counts differ: the text's words (a word = one run of
                                               non-space characters with the space before it; spaces beyond one are
                                               "extra whitespace") by class, with the tokens each tokenizer spends on them
                                               (a token counts for the word holding its last character); IDS = SPEC's
                                               ids for TEXT; prints "class words spec_tokens spm_tokens" lines, tab-separated
  tokbench.py render SPEC IDS                  the tokens of IDS as text separated by '|' (a character split over k tokens
                                               is shown once with "(k)", as `todae tokenizer show` does)

SPEC is a tokenizer.json (or a folder holding one), a .tiktoken file, or a SentencePiece .model file.
Token byte strings come from the vocabulary: GPT-2 byte-level alphabet when the decoder is ByteLevel, otherwise
'\u2581' -> space and <0xXX> byte-fallback pieces (SentencePiece / Gemma style).
"""
import base64
import json
import os
import re
import sys
import time
import unicodedata

ANALYZE_FIELDS = ["tokens", "chars", "hangul_tokens", "cross_hangul_latin", "cross_hangul_digit",
                  "cross_hangul_punct", "hangul_latin_adjacencies", "hangul_chars", "split_hangul_chars",
                  "multiword_tokens", "utf8_ok"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


BYTE_RE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def load_vocab(spec):
    """Returns a function id -> bytes."""
    if os.path.isdir(spec):
        spec = os.path.join(spec, "tokenizer.json")
    if spec.endswith(".tiktoken"):
        table = {}
        with open(spec, "rb") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    table[int(parts[1])] = base64.b64decode(parts[0])
        return lambda i: table.get(i, b"")
    if spec.endswith(".model"):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=spec)

        def dec(i):
            if sp.is_byte(i):
                return bytes([int(BYTE_RE.fullmatch(sp.id_to_piece(i)).group(1), 16)])
            if sp.is_control(i) or sp.is_unknown(i):
                return b""
            return sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")
        return dec
    with open(spec, encoding="utf-8") as f:
        j = json.load(f)
    id2s = {v: k for k, v in j["model"]["vocab"].items()}
    special = {}
    for t in j.get("added_tokens") or []:
        id2s[t["id"]] = t["content"]
        special[t["id"]] = t["content"]
    bytelevel = '"ByteLevel"' in json.dumps(j.get("decoder"))
    table = {}
    if bytelevel:
        inv = bytes_to_unicode()
        for i, s in id2s.items():
            if i in special or any(c not in inv for c in s):
                table[i] = s.encode("utf-8")
            else:
                table[i] = bytes(inv[c] for c in s)
    else:
        for i, s in id2s.items():
            m = BYTE_RE.fullmatch(s)
            table[i] = bytes([int(m.group(1), 16)]) if m else s.replace("\u2581", " ").encode("utf-8")
    return lambda i: table.get(i, b"")


def read_ids(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def is_hangul(c):
    o = ord(c)
    return (0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F or
            0xA960 <= o <= 0xA97F or 0xD7B0 <= o <= 0xD7FF)


def char_class(c):
    if is_hangul(c):
        return "H"
    if c.isspace():
        return "S"
    cat = unicodedata.category(c)
    if cat.startswith("L"):
        return "L" if "LATIN" in unicodedata.name(c, "") else "O"
    if cat == "Nd":
        return "D"
    if cat[0] in "PS":
        return "P"
    return "O"


def token_spans(spec, ids):
    dec = load_vocab(spec)
    pieces = [dec(i) for i in ids]
    spans, pos = [], 0
    for p in pieces:
        spans.append((pos, pos + len(p)))
        pos += len(p)
    return b"".join(pieces), spans


def chars_with_offsets(blob):
    text = blob.decode("utf-8", errors="surrogateescape")
    out, pos = [], 0
    for c in text:
        n = len(c.encode("utf-8", errors="surrogateescape"))
        out.append((pos, pos + n, c))
        pos += n
    return out


def analyze(spec, ids_path):
    ids = read_ids(ids_path)
    blob, spans = token_spans(spec, ids)
    try:
        blob.decode("utf-8")
        utf8_ok = 1
    except UnicodeDecodeError:
        utf8_ok = 0
    chars = chars_with_offsets(blob)
    cls = [char_class(c) for _, _, c in chars]
    # token boundaries (byte offsets); char index per byte start
    starts = [s for s, _, _ in chars]
    import bisect
    hangul_tokens = cross_hl = cross_hd = cross_hp = multiword = 0
    for s, e in spans:
        if e <= s:
            continue
        a = bisect.bisect_right(starts, s) - 1        # char containing byte s
        b = bisect.bisect_left(starts, e)             # first char starting at or after e
        k = set(cls[a:b])
        if "H" in k:
            hangul_tokens += 1
            cross_hl += "L" in k
            cross_hd += "D" in k
            cross_hp += "P" in k
        txt = "".join(c for cs, ce, c in chars[a:b] if cs >= s and ce <= e)
        if re.search(r"\S\s+\S", txt):
            multiword += 1
    bounds = set(s for s, _ in spans)
    hangul_chars = sum(1 for x in cls if x == "H")
    split_h = 0
    for (cs, ce, c), x in zip(chars, cls):
        if x == "H" and any(b in bounds for b in range(cs + 1, ce)):
            split_h += 1
    adj = sum(1 for i in range(len(cls) - 1) if {cls[i], cls[i + 1]} == {"H", "L"})
    vals = [len(ids), len(chars), hangul_tokens, cross_hl, cross_hd, cross_hp, adj, hangul_chars, split_h,
            multiword, utf8_ok]
    print("\t".join(str(v) for v in vals))


GAP_CLASSES = ["words with digits", "letters only", "letters and punctuation", "punctuation/symbols only",
               "extra whitespace"]


def word_class(w):
    s = w.strip()
    if not s:
        return "extra whitespace"
    cats = [unicodedata.category(c)[0] for c in s]
    if "N" in cats:
        return "words with digits"
    if all(c in "LM" for c in cats):
        return "letters only"
    if "L" in cats:
        return "letters and punctuation"
    return "punctuation/symbols only"


def gap(spec, ids_path, model, text_path):
    import bisect
    import sentencepiece as spm
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    words = [(m.start(), word_class(m.group())) for m in re.finditer(r"\s+(?=\s)|\s?\S+|\s+", text)]
    starts = [a for a, _ in words]
    char_bytes, pos = [], 0  # byte offset where each character starts
    for c in text:
        char_bytes.append(pos)
        pos += len(c.encode("utf-8"))
    _, spans = token_spans(spec, read_ids(ids_path))
    if not spans or spans[-1][1] != pos:
        sys.exit("gap: the ids of %s do not decode to %s" % (spec, text_path))

    def word_at(char_index):
        return max(0, bisect.bisect_right(starts, char_index) - 1)
    # A token counts for the word holding its last character: SentencePiece's "▁word" after a run of
    # spaces starts at the run (it drops the extra spaces), and belongs to the word, not the run.
    ours = [0] * len(words)
    for a, e in spans:
        if e > a:
            ours[word_at(bisect.bisect_right(char_bytes, e - 1) - 1)] += 1
    theirs = [0] * len(words)
    sp = spm.SentencePieceProcessor(model_file=model)
    for piece in sp.encode(text, out_type="immutable_proto").pieces:
        theirs[word_at(piece.end - 1 if piece.end > piece.begin else piece.begin)] += 1
    for cls in GAP_CLASSES:
        idx = [i for i, (_, c) in enumerate(words) if c == cls]
        print("%s\t%d\t%d\t%d" % (cls, len(idx), sum(ours[i] for i in idx), sum(theirs[i] for i in idx)))


def render(spec, ids_path):
    ids = read_ids(ids_path)
    dec = load_vocab(spec)
    out, acc, k = [], b"", 0
    for i in ids:
        acc += dec(i)
        k += 1
        try:
            t = acc.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(t if k == 1 else "%s(%d)" % (t, k))
        acc, k = b"", 0
    if acc:
        out.append(acc.decode("utf-8", errors="replace") + "(%d)" % k)
    print("|".join(out))


def join(inp, outp):
    with open(inp, encoding="utf-8") as f:
        lines = [l.rstrip("\r\n") for l in f]
    lines = [l for l in lines if l.strip()]
    text = " ".join(lines)
    with open(outp, "w", encoding="utf-8") as f:
        f.write(text)
    print(len(text), len(text.encode("utf-8")), len(lines))


def split_tail(inp, head, tail, nbytes):
    with open(inp, "rb") as f:
        data = f.read()
    cut = max(0, len(data) - nbytes)
    i = data.find(b"\n\n", cut)
    if i < 0:
        sys.exit("split-tail: no blank line after byte %d of %s" % (cut, inp))
    i += 2
    with open(head, "wb") as f:
        f.write(data[:i])
    with open(tail, "wb") as f:
        f.write(data[i:])
    print(i, len(data) - i)


def pyspm(model, path, threads):
    import sentencepiece as spm
    t0 = time.perf_counter()
    sp = spm.SentencePieceProcessor(model_file=model)
    t1 = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        data = f.read()
    lines = data.split("\n")
    t2, c2 = time.perf_counter(), time.process_time()
    res = sp.encode(lines, out_type=int, num_threads=threads)
    t3, c3 = time.perf_counter(), time.process_time()
    print("%.4f %d %d %.4f %.4f" % (t3 - t2, sum(len(r) for r in res), len(data.encode("utf-8")), t1 - t0, c3 - c2))


def pick(inp, n, maxchars):
    with open(inp, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or len(line) > maxchars:
                continue
            cls = [char_class(c) for c in line]
            if any({cls[i], cls[i + 1]} == {"H", "L"} for i in range(len(cls) - 1)):
                print(line)
                n -= 1
                if n == 0:
                    break


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "join":
        join(*args)
    elif cmd == "split-tail":
        split_tail(args[0], args[1], args[2], int(args[3]))
    elif cmd == "pyspm":
        pyspm(args[0], args[1], int(args[2]))
    elif cmd == "analyze":
        analyze(*args)
    elif cmd == "pick":
        pick(args[0], int(args[1]), int(args[2]))
    elif cmd == "gap":
        gap(*args)
    elif cmd == "render":
        render(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
