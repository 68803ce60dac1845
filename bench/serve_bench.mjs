// Load generator for OpenAI-compatible servers (todae serve, llama.cpp's llama-server) on loopback.
// Streams chat completions at fixed concurrency levels and reports aggregate generated tokens/s,
// time to first token and inter-token latency (p50/p99), and errors. Bounded in count and time.
//
//   node bench/serve_bench.mjs --url http://127.0.0.1:8080 [--model ID] [--concurrency 1,4,16]
//        [--requests-per-stream 3] [--max-tokens 128] [--time-limit 120] [--label todae] [--json out.json]
//        [--endpoint completions|chat]
// No dependencies (Node >= 18: fetch, streams).
import { writeFileSync } from "node:fs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url ?? "http://127.0.0.1:8080";
if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(url)) throw new Error("--url must be a loopback address");
const levels = (args.concurrency ?? "1,4,16").split(",").map(Number);
const perStream = Number(args["requests-per-stream"] ?? 3);
const maxTokens = Number(args["max-tokens"] ?? 128);
const timeLimit = Number(args["time-limit"] ?? 120) * 1000;
const label = args.label ?? "server";
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

async function modelId() {
  if (args.model) return args.model;
  const r = await fetch(url + "/v1/models");
  return (await r.json()).data[0].id;
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// One streamed request: returns { tokens, ttft, itls[] } or throws.
async function one(model, prompt, deadline) {
  const t0 = performance.now();
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), Math.max(1, deadline - Date.now()));
  try {
    const common = { model, stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens, temperature: 0.8, seed: 1, ignore_eos: true };
    const chat = endpoint === "chat";
    const r = await fetch(url + (chat ? "/v1/chat/completions" : "/v1/completions"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      signal: ctrl.signal,
      body: JSON.stringify(chat ? { ...common, messages: [{ role: "user", content: prompt }] } : { ...common, prompt }),
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`);
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "", ttft = null, last = null, tokens = 0, chunks = 0;
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
        if (data === "[DONE]") continue;
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
    return { tokens: tokens || chunks, ttft: ttft ?? NaN, itls };
  } finally {
    clearTimeout(timer);
  }
}

async function level(model, conc) {
  const deadline = Date.now() + timeLimit;
  const results = [], errors = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async (_, w) => {
      for (let i = 0; i < perStream && Date.now() < deadline; i++) {
        try {
          results.push(await one(model, prompts[(w + i) % prompts.length], deadline));
        } catch (e) {
          errors.push(String(e.message ?? e));
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  const ttfts = results.map((r) => r.ttft).filter((x) => !Number.isNaN(x));
  const itls = results.flatMap((r) => r.itls);
  return {
    label, concurrency: conc, requests: results.length, errors: errors.length, first_error: errors[0] ?? null,
    seconds: +secs.toFixed(2), generated_tokens: tokens, tokens_per_s: +(tokens / secs).toFixed(1),
    ttft_ms_p50: +pct(ttfts, 50).toFixed(1), ttft_ms_p99: +pct(ttfts, 99).toFixed(1),
    itl_ms_p50: +pct(itls, 50).toFixed(2), itl_ms_p99: +pct(itls, 99).toFixed(2),
  };
}

const model = await modelId();
const rows = [];
// Warm-up (first-touch of weights and buffers), not measured.
await one(model, prompts[0], Date.now() + 30000).catch(() => {});
for (const c of levels) {
  const r = await level(model, c);
  rows.push(r);
  console.log(
    `${label.padEnd(12)} streams=${String(c).padStart(2)}  ${String(r.tokens_per_s).padStart(8)} tok/s  ` +
      `TTFT p50 ${r.ttft_ms_p50} ms p99 ${r.ttft_ms_p99} ms  ITL p50 ${r.itl_ms_p50} ms p99 ${r.itl_ms_p99} ms  ` +
      `requests ${r.requests} errors ${r.errors}${r.first_error ? " (" + r.first_error + ")" : ""}`,
  );
}
if (rows.length > 1 && rows[0].tokens_per_s > 0) {
  const last = rows[rows.length - 1];
  console.log(`${label}: ${last.concurrency} streams = ${(last.tokens_per_s / rows[0].tokens_per_s).toFixed(2)}x one stream`);
}
if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2) + "\n");
