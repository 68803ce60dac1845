// Load generator for OpenAI-compatible servers (todae serve, llama.cpp's llama-server) on loopback.
// Streams completions at fixed concurrency levels and reports aggregate generated tokens/s, time to
// first token and inter-token latency (p50/p99), and errors. Bounded in count and time.
//
// Compare mode: the targets are measured alternately (level by level, the order flipped every round,
// because the machine drifts), and the report gives per-level medians over the rounds and the ratio
// of the first target to the second.
//   node bench/serve_bench.mjs --target todae=http://127.0.0.1:8080@PID --target llama-server=http://127.0.0.1:8081@PID
//        [--tokenizer tokenizer.json] [--concurrency 1,4,16] [--rounds 5] [--requests-per-stream 8]
//        [--max-tokens 128] [--time-limit 180] [--endpoint completions|chat] [--json out.json]
// (--url URL --label NAME is the one-target form; @PID is optional and only used to read CPU time/RSS.)
//
// Soak mode: --soak SECONDS --pid PID: the largest concurrency level, continuously, against the first
// target; samples the server's VmRSS every --rss-every seconds (10) and counts errors.
//
// Every request is the same for every server: /v1/completions with a plain prompt (no chat
// template), max_tokens fixed and `ignore_eos: true` (both servers accept it), explicit sampling
// parameters (llama-server's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05) and a
// per-request seed. With --tokenizer (a byte-level BPE tokenizer.json), `logit_bias` bans (-100)
// every token whose bytes are not valid UTF-8 on their own, and every added/special token, so each
// sampled token is a complete piece of text: llama-server otherwise answers 500 when a stream of a
// barely trained model ends inside a character, and neither server holds text back between tokens.
// No dependencies (Node >= 18: fetch, streams).
import { readFileSync, writeFileSync } from "node:fs";

const argv = process.argv.slice(2);
const args = {};
const targets = [];
for (let i = 0; i < argv.length; i++) {
  if (!argv[i].startsWith("--")) continue;
  const k = argv[i].slice(2), v = argv[i + 1];
  if (k === "target") {
    const m = /^([^=]+)=([^@]+)(?:@(\d+))?$/.exec(v ?? "");
    if (!m) throw new Error(`--target wants LABEL=URL[@PID], got ${v}`);
    targets.push({ label: m[1], url: m[2], pid: m[3] ? Number(m[3]) : null });
  } else args[k] = v;
}
if (!targets.length)
  targets.push({ label: args.label ?? "server", url: args.url ?? "http://127.0.0.1:8080", pid: args.pid ? Number(args.pid) : null });
for (const t of targets)
  if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(t.url)) throw new Error("the URL must be a loopback address: " + t.url);
const levels = (args.concurrency ?? "1,4,16").split(",").map(Number);
const rounds = Number(args.rounds ?? 1);
const perStream = Number(args["requests-per-stream"] ?? 8);
const maxTokens = Number(args["max-tokens"] ?? 128);
const timeLimit = Number(args["time-limit"] ?? 180) * 1000;
const soakSecs = args.soak ? Number(args.soak) : 0;
const rssEvery = Number(args["rss-every"] ?? 10) * 1000;
const flatMiB = Number(args["flat-mib"] ?? 4);
// completions (default): raw text, so both servers do the same work whatever chat-template handling
// they have; chat: /v1/chat/completions through the model's template.
const endpoint = args.endpoint ?? "completions";
const prompts = [
  "대한민국의 수도는 어디인가요? 자세히 설명해 주세요.",
  "데비안 패키지를 설치하는 방법을 알려 주세요.",
  "리눅스 커널은 무엇을 하나요?",
  "Explain what a package manager does, in a few sentences.",
  "이 패키지는 어떤 라이브러리를 제공하나요?",
  "GPU를 사용하면 학습이 얼마나 빨라지나요?",
];

// Token ids to ban: byte-level BPE (GPT-2 byte<->unicode mapping) pieces that are not valid UTF-8
// alone, plus the added (special) tokens.
function bannedTokens(path) {
  const tok = JSON.parse(readFileSync(path, "utf8"));
  const printable = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const byteOf = new Map();
  let n = 0;
  for (let b = 0; b < 256; b++) byteOf.set(String.fromCodePoint(printable.includes(b) ? b : 256 + n++), b);
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const banned = new Set();
  const vocab = tok.model?.vocab ?? {};
  for (const [piece, id] of Object.entries(vocab)) {
    const bytes = [];
    for (const ch of piece) {
      const b = byteOf.get(ch);
      if (b === undefined) { bytes.length = 0; banned.add(id); break; }  // not a byte-level piece
      bytes.push(b);
    }
    if (!bytes.length) continue;
    try { fatal.decode(Uint8Array.from(bytes)); } catch { banned.add(id); }
  }
  const added = (tok.added_tokens ?? []).map((t) => t.id);
  for (const id of added) banned.add(id);
  return { ids: [...banned].sort((a, b) => a - b), vocab: Object.keys(vocab).length, added: added.length };
}

let logitBias;
if (args.tokenizer) {
  const b = bannedTokens(args.tokenizer);
  logitBias = Object.fromEntries(b.ids.map((id) => [String(id), -100]));
  console.log(`logit_bias: ${b.ids.length} of ${b.vocab} tokens banned (not valid UTF-8 alone, or one of ${b.added} added tokens)`);
}

async function modelId(t) {
  if (args.model) return args.model;
  const r = await fetch(t.url + "/v1/models");
  return (await r.json()).data[0].id;
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuSecs = (pid) => {  // utime + stime of a process, in seconds (clock ticks of 100 Hz)
  if (!pid) return NaN;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return NaN; }
};
const rssKiB = (pid, key = "VmRSS") => {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
};
let seedCounter = 1;

// One streamed request: returns { tokens, ttft, itls[] } or throws.
async function one(t, prompt, deadline) {
  const t0 = performance.now();
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), Math.max(1, deadline - Date.now()));
  try {
    const common = {
      model: t.model, stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens, ignore_eos: true,
      temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, seed: seedCounter++,
      ...(logitBias ? { logit_bias: logitBias } : {}),
    };
    const chat = endpoint === "chat";
    const r = await fetch(t.url + (chat ? "/v1/chat/completions" : "/v1/completions"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      signal: ctrl.signal,
      body: JSON.stringify(chat ? { ...common, messages: [{ role: "user", content: prompt }] } : { ...common, prompt }),
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`);
    const reader = r.body.getReader();
    const dec = new TextDecoder("utf-8", { fatal: true });
    let buf = "", ttft = null, last = null, tokens = 0, chunks = 0, sawDone = false;
    const itls = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!ev.startsWith("data: ")) continue;
        const data = ev.slice(6);
        if (data === "[DONE]") { sawDone = true; continue; }
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        if (j.usage) tokens = j.usage.completion_tokens;
        const c = j.choices && j.choices[0];
        const piece = c && (c.delta ? c.delta.content : c.text);
        if (piece) {
          const now = performance.now();
          if (ttft === null) ttft = now - t0;
          else itls.push(now - last);
          last = now;
          chunks++;
        }
      }
    }
    if (!sawDone) throw new Error("stream ended without data: [DONE]");
    return { tokens: tokens || chunks, chunks, ttft: ttft ?? NaN, itls };
  } finally {
    clearTimeout(timer);
  }
}

async function level(t, conc) {
  const deadline = Date.now() + timeLimit;
  const results = [], errors = [];
  const cpu0 = targets.map((x) => cpuSecs(x.pid));
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async (_, w) => {
      for (let i = 0; i < perStream && Date.now() < deadline; i++) {
        try {
          results.push(await one(t, prompts[(w + i) % prompts.length], deadline));
        } catch (e) {
          errors.push(String(e.message ?? e));
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = targets.map((x, i) => cpuSecs(x.pid) - cpu0[i]);
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  const ttfts = results.map((r) => r.ttft).filter((x) => !Number.isNaN(x));
  const itls = results.flatMap((r) => r.itls);
  const own = targets.indexOf(t);
  return {
    label: t.label, concurrency: conc, requests: results.length, errors: errors.length, first_error: errors[0] ?? null,
    short: results.filter((r) => r.tokens !== maxTokens).length,  // requests that did not produce exactly max_tokens
    // tokens that came without their own text chunk (held back or merged): ITL is per token only when 0
    merged: results.reduce((s, r) => s + Math.max(0, r.tokens - r.chunks), 0),
    seconds: +secs.toFixed(2), generated_tokens: tokens, tokens_per_s: +(tokens / secs).toFixed(1),
    ttft_ms_p50: +pct(ttfts, 50).toFixed(1), ttft_ms_p99: +pct(ttfts, 99).toFixed(1),
    itl_ms_p50: +pct(itls, 50).toFixed(2), itl_ms_p99: +pct(itls, 99).toFixed(2),
    server_cpu_s: Number.isNaN(cpu[own]) ? null : +cpu[own].toFixed(2),
    // CPU seconds the other (idle) servers burnt meanwhile: should be ~0 for a fair alternation
    others_cpu_s: targets.some((x, i) => i !== own && x.pid)
      ? +cpu.reduce((s, c, i) => (i === own || Number.isNaN(c) ? s : s + c), 0).toFixed(2) : null,
  };
}

const line = (r) =>
  `${r.label.padEnd(12)} streams=${String(r.concurrency).padStart(2)}  ${String(r.tokens_per_s).padStart(8)} tok/s  ` +
  `TTFT p50 ${r.ttft_ms_p50} ms p99 ${r.ttft_ms_p99} ms  ITL p50 ${r.itl_ms_p50} ms p99 ${r.itl_ms_p99} ms  ` +
  `requests ${r.requests} errors ${r.errors}${r.short ? ` short ${r.short}` : ""}${r.merged ? ` merged ${r.merged}` : ""}` +
  `${r.others_cpu_s === null ? "" : `  idle-peer cpu ${r.others_cpu_s}s`}` +
  `${r.first_error ? " (" + r.first_error + ")" : ""}`;

for (const t of targets) {
  t.model = await modelId(t);
  // Warm-up (first-touch of weights and buffers), not measured; it must succeed.
  await one(t, prompts[0], Date.now() + 60000).catch((e) => {
    console.log(`${t.label}: warm-up request failed: ${e.message ?? e}`);
  });
}

if (soakSecs > 0) {
  // Soak: the largest level continuously against the first target, RSS sampled every rssEvery.
  const t = targets[0];
  const conc = Math.max(...levels);
  const pid = t.pid ?? Number(args.pid);
  const start = Date.now(), end = start + soakSecs * 1000;
  const samples = [];
  let requests = 0, tokens = 0, short = 0;
  const errors = [];
  const sample = () => {
    const s = { t_s: Math.round((Date.now() - start) / 1000), rss_kib: rssKiB(pid), requests, errors: errors.length, tokens };
    samples.push(s);
    console.log(`soak t=${String(s.t_s).padStart(4)}s  RSS ${(s.rss_kib / 1024).toFixed(1)} MiB  requests ${requests}  errors ${errors.length}`);
  };
  sample();
  const timer = setInterval(sample, rssEvery);
  await Promise.all(
    Array.from({ length: conc }, async (_, w) => {
      for (let i = 0; Date.now() < end; i++) {
        try {
          const r = await one(t, prompts[(w + i) % prompts.length], Date.now() + 120000);
          requests++, tokens += r.tokens;
          if (r.tokens !== maxTokens) short++;
        } catch (e) {
          errors.push(String(e.message ?? e));
        }
      }
    }),
  );
  clearInterval(timer);
  sample();
  const secs = (Date.now() - start) / 1000;
  // Warm-up: the first 60 s (or a fifth of a short soak); flat = every later sample within flatMiB.
  const warm = Math.min(60, soakSecs / 5);
  const after = samples.filter((s) => s.t_s >= warm && !Number.isNaN(s.rss_kib));
  const mib = (k) => +(k / 1024).toFixed(1);
  const rs = after.map((s) => s.rss_kib);
  const spread = rs.length ? Math.max(...rs) - Math.min(...rs) : NaN;
  const summary = {
    label: t.label, concurrency: conc, seconds: +secs.toFixed(1), requests, errors: errors.length, first_error: errors[0] ?? null,
    short, tokens_per_s: +(tokens / secs).toFixed(1), warmup_s: warm,
    rss_mib_start: after.length ? mib(after[0].rss_kib) : NaN,
    rss_mib_middle: after.length ? mib(after[Math.floor(after.length / 2)].rss_kib) : NaN,
    rss_mib_end: after.length ? mib(after[after.length - 1].rss_kib) : NaN,
    rss_mib_spread_after_warmup: mib(spread), flat_tolerance_mib: flatMiB, flat: spread <= flatMiB * 1024,
    peak_rss_mib: mib(rssKiB(pid, "VmHWM")),
  };
  console.log(
    `soak ${t.label}: ${summary.seconds} s at ${conc} streams, ${requests} requests, ${summary.tokens_per_s} tok/s, ` +
      `errors ${errors.length}${short ? `, short ${short}` : ""}${summary.first_error ? " (" + summary.first_error + ")" : ""}`,
  );
  console.log(
    `soak RSS after ${warm} s warm-up: start ${summary.rss_mib_start} MiB, middle ${summary.rss_mib_middle} MiB, ` +
      `end ${summary.rss_mib_end} MiB, spread ${summary.rss_mib_spread_after_warmup} MiB -> ` +
      `${summary.flat ? "FLAT" : "NOT FLAT"} (tolerance ${flatMiB} MiB); peak ${summary.peak_rss_mib} MiB`,
  );
  if (args.json) writeFileSync(args.json, JSON.stringify({ summary, samples }, null, 2) + "\n");
  process.exit(errors.length || !summary.flat ? 1 : 0);
}

// Alternate: for each round and level, every target once, the order flipped every round.
const runs = [];
for (let round = 0; round < rounds; round++) {
  for (const c of levels) {
    const order = round % 2 ? [...targets].reverse() : targets;
    for (const t of order) {
      const r = { round: round + 1, ...(await level(t, c)) };
      runs.push(r);
      console.log(`round ${r.round}  ${line(r)}`);
    }
  }
}

const summary = [];
for (const c of levels) {
  for (const t of targets) {
    const rs = runs.filter((r) => r.label === t.label && r.concurrency === c);
    summary.push({
      label: t.label, concurrency: c, rounds: rs.length,
      requests: rs.reduce((s, r) => s + r.requests, 0), errors: rs.reduce((s, r) => s + r.errors, 0),
      short: rs.reduce((s, r) => s + r.short, 0),
      tokens_per_s: +median(rs.map((r) => r.tokens_per_s)).toFixed(1),
      tokens_per_s_min: Math.min(...rs.map((r) => r.tokens_per_s)), tokens_per_s_max: Math.max(...rs.map((r) => r.tokens_per_s)),
      ttft_ms_p50: +median(rs.map((r) => r.ttft_ms_p50)).toFixed(1), ttft_ms_p99: +median(rs.map((r) => r.ttft_ms_p99)).toFixed(1),
      itl_ms_p50: +median(rs.map((r) => r.itl_ms_p50)).toFixed(2), itl_ms_p99: +median(rs.map((r) => r.itl_ms_p99)).toFixed(2),
    });
  }
}
console.log(`\nmedians over ${rounds} round(s), ${maxTokens} tokens per request:`);
console.log("| server | streams | tok/s (min–max) | TTFT p50 / p99 ms | ITL p50 / p99 ms | requests | errors |");
console.log("|---|---|---|---|---|---|---|");
for (const s of summary)
  console.log(
    `| ${s.label} | ${s.concurrency} | ${s.tokens_per_s} (${s.tokens_per_s_min}–${s.tokens_per_s_max}) | ` +
      `${s.ttft_ms_p50} / ${s.ttft_ms_p99} | ${s.itl_ms_p50} / ${s.itl_ms_p99} | ${s.requests} | ${s.errors}${s.short ? ` (short ${s.short})` : ""} |`,
  );
const get = (label, c) => summary.find((s) => s.label === label && s.concurrency === c);
if (targets.length > 1) {
  const [a, b] = targets;
  // Ratio of medians, and the median of the per-round ratios (each pair measured back to back).
  for (const c of levels) {
    const pr = runs.filter((r) => r.label === a.label && r.concurrency === c).map((ra) => {
      const rb = runs.find((r) => r.label === b.label && r.concurrency === c && r.round === ra.round);
      return rb && rb.tokens_per_s > 0 ? ra.tokens_per_s / rb.tokens_per_s : NaN;
    });
    console.log(
      `${a.label}/${b.label} at ${String(c).padStart(2)} streams: ${(get(a.label, c).tokens_per_s / get(b.label, c).tokens_per_s).toFixed(2)}x ` +
        `(median of per-round ratios ${median(pr).toFixed(2)}x, range ${Math.min(...pr).toFixed(2)}–${Math.max(...pr).toFixed(2)})`,
    );
  }
}
if (levels.length > 1)
  for (const t of targets) {
    const lo = get(t.label, levels[0]), hi = get(t.label, levels[levels.length - 1]);
    if (lo.tokens_per_s > 0)
      console.log(`${t.label}: ${hi.concurrency} streams = ${(hi.tokens_per_s / lo.tokens_per_s).toFixed(2)}x ${lo.concurrency} stream(s)`);
  }
if (args.json) writeFileSync(args.json, JSON.stringify({ max_tokens: maxTokens, rounds, runs, summary }, null, 2) + "\n");
process.exit(summary.some((s) => s.errors) ? 1 : 0);
