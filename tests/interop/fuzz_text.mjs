#!/usr/bin/env node
// Writes a pseudo-random adversarial text (raw bytes) for differential testing:
//   node fuzz_text.mjs SEED SIZE_BYTES OUT [--valid] [--no-specials] [--without=HEX,HEX...]
// Pieces are drawn from pools of characters that tokenizers tend to disagree on: every kind of
// whitespace, contractions, digits of many scripts, Hangul (NFC, NFD, compatibility jamo),
// combining marks, emoji sequences, CJK, special-token strings (whole and broken) and, unless
// --valid, invalid UTF-8 bytes. --without=180e,feff drops pieces holding those code points (to look
// past a known difference). Same SEED (and options) -> same bytes.
import fs from "node:fs";

const [seedArg, sizeArg, out, ...opts] = process.argv.slice(2);
if (!out) {
  console.error("usage: node fuzz_text.mjs SEED SIZE_BYTES OUT [--valid] [--no-specials] [--without=HEX,...]");
  process.exit(2);
}
const valid = opts.includes("--valid");
const noSpecials = opts.includes("--no-specials");
const without = (opts.find((o) => o.startsWith("--without=")) ?? "--without=").slice(10).split(",").filter(Boolean)
  .map((h) => String.fromCodePoint(parseInt(h, 16)));
let state = BigInt(seedArg) ^ 0x9e3779b97f4a7c15n;
function rnd(n) {
  state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
  return Number((state >> 33n) % BigInt(n));
}
const pick = (arr) => arr[rnd(arr.length)];

const ws = [" ", " ", " ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\t\n", "  \r\n  ",
  "\u00a0", "\u3000", "\u2009", "\u2028", "\u2029", "\u0085", "\ufeff", "\u200b", "\u000b", "\u000c",
  "\u1680", "\u202f", "\u205f", "\u180e"];
const ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const words = ["the", "The", "THE", "token", "Tokenizer", "HTTPServer", "iPhone", "camelCase", "snake_case",
  "don", "I", "we", "they", "it", "You", "McDonald", "naïve", "café", "Straße", "ǅemal", "ΣΊΣΥΦΟΣ",
  "ʰello", "x", "a", "Z", "ß", "İ", "ſ"];
const contractions = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL",
  "'lL", "'d", "'D", "’s", "'", "''", "'x", "'ſ"];
const digits = ["0", "7", "42", "123", "1234", "12345678", "3.14", "1,000", "٣٤٥", "१२३", "１２３", "²", "½",
  "Ⅻ", "①", "𝟙𝟚", "๑๒", "〇", "零"];
const punct = ["!", "?", ".", ",", "...", "!!!", "?!", "---", "//", "/", "\\", "#", "@", "$", "%", "^",
  "&", "*", "(", ")", "[", "]", "{", "}", "<", ">", "<<", ">>", "=", "==", "=>", "->", "::", ";", ":",
  "\"", "`", "~", "|", "_", "__", "+", "-", "«", "»", "“", "”", "‘", "’", "…", "—", "·", "、", "。",
  "，", "！", "？", "「", "」", "※", "→", "€", "₩", "©", "°", "\u0000", "\u0001", "\u001b", "\u007f"];
const korean = ["한국어", "토크나이저", "는", "은", "이", "가", "을", "를", "에서", "으로", "2026년", "11월",
  "원", "ㅋㅋㅋ", "ㅋ", "ㅠㅠ", "ㄱ", "ㅏ", "뷁", "똠", "햏", "쀍", "가나다라마바사아자차카타파하",
  "\u1112\u1161\u11ab", "\u1100\u1161", "\u1112\u119e\u11ab", "\u11a8", "\u1161", "ﾡ"];
const cjk = ["漢字", "大韓民國", "日本語", "ひらがな", "カタカナ", "ｶﾀｶﾅ", "ー", "々", "中文", "繁體", "𠜎",
  "𡃁", "\uf900", "\ufa0e", "〜"];
const marks = ["\u0301", "\u0308", "\u0323", "\u0302", "\u093f", "\u094d", "\u0e31", "\u064e", "\u05b7",
  "\u20dd", "\ufe0f", "\ufe0e", "\u200d", "\u200c", "\u2060", "\u00ad"];
const scripts = ["Ελληνικά", "Русский", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "Tiếng", "ქართული",
  "Հայերեն", "ᏣᎳᎩ", "ꯃꯤ", "ᠮᠣᠩ"];
const emoji = ["😀", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇰🇷", "1️⃣", "❤️", "🫶", "👩🏻‍💻", "🧑‍🔬",
  "\ue000", "\u{f0000}", "\u{e0067}"];
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|begin_of_text|>",
  "<|eot_id|>", "<|start_header_id|>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<unused7>",
  "<｜begin▁of▁sentence｜>", "<｜User｜>", "<|endofprompt|>", "<|fim_prefix|>", "<|im_start", "im_end|>",
  "<|", "|>", "<bo", "▁", "▁▁"];
const invalid = [[0x80], [0xbf], [0xc0, 0xaf], [0xc3], [0xe3, 0x81], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf], [0xf5], [0xff], [0xfe], [0xf4, 0x90, 0x80, 0x80], [0xe0, 0x80, 0xaf], [0xc2],
  [0xf8, 0x88, 0x80, 0x80, 0x80]];

const nfcTricky = ["\uac00\u11a8", "\u1100\u1161\u11a8", "\u0344", "\u0340", "\u0958", "\u1e9b\u0323",
  "e\u0301", "\u2126", "\u212b", "\u212a", "A\u030a", "\u0f73", "\u2adc", "\u{1d15e}", "\u{2f800}"];
// Any code point assigned by Unicode 14 (the oldest tables among the implementations involved)
// is fair; the ranges below are dense, long-assigned blocks (skips surrogates and unassigned areas).
const ranges = [[0x20, 0x24f], [0x370, 0x3ff], [0x400, 0x52f], [0x591, 0x5f4], [0x600, 0x6ff], [0x900, 0x97f],
  [0xe01, 0xe5b], [0x1100, 0x11ff], [0x1e00, 0x1fff], [0x2000, 0x206f], [0x2070, 0x209c], [0x20a0, 0x20c0],
  [0x2100, 0x218b], [0x2190, 0x23ff], [0x2460, 0x27ff], [0x3000, 0x303f], [0x3041, 0x30ff], [0x3131, 0x318e],
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xf900, 0xfa6d], [0xfe30, 0xfe4f], [0xff01, 0xffee],
  [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff], [0x1d400, 0x1d6a5], [0x20000, 0x2a6df]];
const randomCp = () => {
  const [lo, hi] = pick(ranges);
  return String.fromCodePoint(lo + rnd(hi - lo + 1));
};
const hangul = () => Array.from({ length: 1 + rnd(5) }, () => String.fromCodePoint(0xac00 + rnd(11172))).join("");

const pools = [
  [20, () => pick(ws)],
  [12, () => pick(words)],
  [6, () => Array.from({ length: 1 + rnd(6) }, () => ascii[rnd(ascii.length)]).join("")],
  [6, () => pick(contractions)],
  [8, () => pick(digits)],
  [10, () => pick(punct)],
  [14, () => pick(korean)],
  [5, () => pick(cjk)],
  [4, () => pick(marks)],
  [4, () => pick(scripts)],
  [5, () => pick(emoji)],
  [noSpecials ? 0 : 3, () => pick(specials)],
  [valid ? 0 : 3, () => Buffer.from(pick(invalid))],
  [1, () => pick(["a", " ", "ㅋ", "0", "!", "\n", "가"]).repeat(10 + rnd(300))],
  [3, () => pick(nfcTricky)],
  [8, () => Array.from({ length: 1 + rnd(4) }, randomCp).join("")],
  [6, hangul],
];
const total = pools.reduce((s, [w]) => s + w, 0);
const chunks = [];
let size = 0;
const want = Number(sizeArg);
while (size < want) {
  let r = rnd(total);
  let gen;
  for (const [w, g] of pools) { if (r < w) { gen = g; break; } r -= w; }
  const piece = gen();
  if (typeof piece === "string" && without.some((c) => piece.includes(c))) continue;
  const buf = typeof piece === "string" ? Buffer.from(piece, "utf8") : piece;
  chunks.push(buf);
  size += buf.length;
}
fs.writeFileSync(out, Buffer.concat(chunks));
