// `todae serve` driven by the official OpenAI client (openai@6.30.1) and by raw HTTP.
//
//   TODAE_BIN=build/todae TODAE_MODEL=DIR NODE_PATH=.../node_modules node --test serve.test.mjs
// (run.sh makes the tiny model and sets these). Each server runs on a free loopback port.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.TODAE_NODE_MODULES ?? ".", "x.js"));
const { default: OpenAI } = await import(require.resolve("openai"));

const BIN = process.env.TODAE_BIN;
const MODEL = process.env.TODAE_MODEL;
if (!BIN || !MODEL) throw new Error("set TODAE_BIN and TODAE_MODEL");
const KEY = "sk-todae-test";
const tmp = mkdtempSync(join(tmpdir(), "todae-serve-"));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `todae serve` on a free port; resolves when it listens.
async function startServer(name, args) {
  const portFile = join(tmp, name + ".port");
  const proc = spawn(BIN, ["serve", "--model", MODEL, "--port", "0", "--port-file", portFile, "--alias", "tiny", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((r) => proc.on("exit", (code, sig) => r({ code, sig })));
  for (let i = 0; i < 300 && !existsSync(portFile); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  if (!existsSync(portFile)) throw new Error(`server ${name} did not start:\n${log}`);
  const port = Number(readFileSync(portFile, "utf8"));
  return { proc, port, base: `http://127.0.0.1:${port}`, exited, log: () => log };
}

function raw(port, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = null;
        try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// Polls /health until no slot is busy or ms have passed; returns the last slots_busy.
async function slotsBusyAfter(port, ms) {
  const t0 = Date.now();
  let busy = 1;
  while (Date.now() - t0 < ms) {
    busy = (await raw(port, "GET", "/health")).json.slots_busy;
    if (busy === 0) break;
    await sleep(20);
  }
  return busy;
}

function assertErrorShape(json, status) {
  assert.ok(json && json.error, `error body expected, got ${JSON.stringify(json)}`);
  const e = json.error;
  assert.deepEqual(Object.keys(e).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof e.message, "string");
  assert.ok(e.message.length > 0);
  assert.equal(typeof e.type, "string");
}

let main, small, client, noRetry;

before(async () => {
  main = await startServer("main", ["--api-key", KEY, "--api-key", "second-key", "--parallel", "4", "--ctx", "1024"]);
  small = await startServer("small", ["--parallel", "1", "--queue", "1", "--ctx", "16384"]);
  client = new OpenAI({ apiKey: KEY, baseURL: main.base + "/v1", maxRetries: 0 });
  noRetry = new OpenAI({ apiKey: "none", baseURL: small.base + "/v1", maxRetries: 0 });
});

after(async () => {
  for (const s of [main, small]) if (s && s.proc.exitCode === null) s.proc.kill("SIGKILL");
});

const user = (content) => [{ role: "user", content }];

test("models", async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, "tiny");
  assert.equal(list.data[0].object, "model");
  const one = await client.models.retrieve("tiny");
  assert.equal(one.id, "tiny");
});

test("plain chat", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: user("대한민국의 수도는?"), max_tokens: 16, temperature: 0 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "tiny");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  // System and developer messages, content parts.
  const r2 = await client.chat.completions.create({
    model: "tiny", max_completion_tokens: 4,
    messages: [{ role: "developer", content: "짧게" }, { role: "user", content: [{ type: "text", text: "안녕" }] }],
  });
  assert.ok(r2.usage.completion_tokens <= 4);
});

test("streamed chat matches the plain answer, with a usage chunk", async () => {
  const req = { model: "tiny", messages: user("데비안은"), max_tokens: 24, temperature: 0.9, seed: 7 };
  const plain = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = "", chunks = 0, first = null, finish = null, usage = null, id = null;
  for await (const c of stream) {
    chunks++;
    id ??= c.id;
    assert.equal(c.id, id);
    assert.equal(c.object, "chat.completion.chunk");
    if (c.usage) { usage = c.usage; assert.equal(c.choices.length, 0); continue; }
    assert.equal(c.usage, null);
    const ch = c.choices[0];
    if (first === null) first = ch.delta;
    if (ch.delta.content) text += ch.delta.content;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(first.role, "assistant");
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.ok(chunks > 3);
  assert.equal(usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.equal(usage.completion_tokens, plain.usage.completion_tokens);
  assert.equal(usage.total_tokens, plain.usage.total_tokens);
});

test("n = 2, plain and streamed", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: user("리눅스 커널은"), max_tokens: 8, n: 2, seed: 3 });
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.ok(r.usage.completion_tokens <= 16);
  const s = await client.chat.completions.create({ model: "tiny", messages: user("리눅스 커널은"), max_tokens: 8, n: 2, seed: 3, stream: true });
  const texts = ["", ""], finishes = [null, null];
  for await (const c of s) for (const ch of c.choices) {
    texts[ch.index] += ch.delta.content ?? "";
    if (ch.finish_reason) finishes[ch.index] = ch.finish_reason;
  }
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
  assert.ok(finishes.every((f) => f));
});

test("stop strings", async () => {
  const req = { model: "tiny", messages: user("이 패키지는"), max_tokens: 40, temperature: 0 };
  const full = (await client.chat.completions.create(req)).choices[0].message.content;
  // A stop string from the middle of the greedy answer (whole characters, no replacement marks).
  const chars = [...full];
  let stop = null;
  for (let i = 4; i + 2 <= chars.length && !stop; i++) {
    const s = chars.slice(i, i + 2).join("");
    if (!s.includes("\uFFFD") && s.trim().length === 2) stop = s;
  }
  assert.ok(stop, `no usable stop string in ${JSON.stringify(full)}`);
  const cut = full.slice(0, full.indexOf(stop));
  const r = await client.chat.completions.create({ ...req, stop: [stop, "never-appears"] });
  assert.equal(r.choices[0].message.content, cut);
  assert.equal(r.choices[0].finish_reason, "stop");
  const r1 = await client.chat.completions.create({ ...req, stop });
  assert.equal(r1.choices[0].message.content, cut);
});

test("seed reproducibility", async () => {
  const req = { model: "tiny", messages: user("서울"), max_tokens: 30, temperature: 1, seed: 1234 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  const c = await client.chat.completions.create({ ...req, seed: 99 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content);
});

test("logprobs", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: user("한국어"), max_tokens: 6, logprobs: true, top_logprobs: 3, temperature: 0 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Array.isArray(t.bytes));
    // Greedy: the token is the most likely one.
    assert.deepEqual(t.top_logprobs[0].bytes, t.bytes);
  }
});

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", maxLength: 12 }, days: { type: "integer", minimum: 1, maximum: 7 } },
      required: ["city", "days"],
      additionalProperties: false,
    },
  },
};

test("tools: forced call, tool message back, streamed deltas", async () => {
  const messages = user("서울 날씨 알려줘");
  const r = await client.chat.completions.create({
    model: "tiny", messages, tools: [weatherTool], tool_choice: { type: "function", function: { name: "get_weather" } },
    max_tokens: 200, seed: 5,
  });
  const ch = r.choices[0];
  assert.equal(ch.finish_reason, "tool_calls");
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, "get_weather");
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok([...args.city].length <= 12);
  assert.ok(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7);

  // Round trip: the call and its result go back in; the model answers (tool_choice none: text).
  const back = await client.chat.completions.create({
    model: "tiny", tools: [weatherTool], tool_choice: "none", max_tokens: 10,
    messages: [...messages, ch.message, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temp_c: 21 }) }],
  });
  assert.equal(back.choices[0].message.role, "assistant");
  assert.ok(!back.choices[0].message.tool_calls);
  // Auto: whatever the model chooses, the answer is well formed.
  const auto = await client.chat.completions.create({ model: "tiny", messages, tools: [weatherTool], max_tokens: 10 });
  assert.ok(["stop", "length", "tool_calls"].includes(auto.choices[0].finish_reason));

  // Required, streamed: tool_calls arrive as deltas.
  const s = await client.chat.completions.create({
    model: "tiny", messages, tools: [weatherTool], tool_choice: "required", max_tokens: 200, seed: 6, stream: true,
  });
  let name = "", argText = "", finish = null;
  for await (const c of s) for (const d of c.choices) {
    for (const tc of d.delta.tool_calls ?? []) {
      if (tc.function?.name) name += tc.function.name;
      if (tc.function?.arguments) argText += tc.function.arguments;
    }
    if (d.finish_reason) finish = d.finish_reason;
  }
  assert.equal(name, "get_weather");
  assert.equal(finish, "tool_calls");
  JSON.parse(argText);
});

// A validator for the keywords the test schema uses.
function validate(schema, v, path = "$") {
  const fail = (why) => { throw new Error(`${path}: ${why} (${JSON.stringify(v)})`); };
  switch (schema.type) {
    case "object":
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail("not an object");
      for (const k of schema.required ?? []) if (!(k in v)) fail(`missing ${k}`);
      for (const [k, x] of Object.entries(v)) {
        if (!(k in (schema.properties ?? {}))) { if (schema.additionalProperties === false) fail(`extra ${k}`); continue; }
        validate(schema.properties[k], x, `${path}.${k}`);
      }
      break;
    case "array":
      if (!Array.isArray(v)) fail("not an array");
      if (schema.maxItems !== undefined && v.length > schema.maxItems) fail("too many items");
      v.forEach((x, i) => validate(schema.items, x, `${path}[${i}]`));
      break;
    case "string":
      if (typeof v !== "string") fail("not a string");
      if (schema.maxLength !== undefined && [...v].length > schema.maxLength) fail("too long");
      if (schema.enum && !schema.enum.includes(v)) fail("not in enum");
      break;
    case "integer":
      if (!Number.isInteger(v)) fail("not an integer");
      if (schema.minimum !== undefined && v < schema.minimum) fail("below minimum");
      if (schema.maximum !== undefined && v > schema.maximum) fail("above maximum");
      break;
    case "boolean":
      if (typeof v !== "boolean") fail("not a boolean");
      break;
    default:
      fail(`unknown type ${schema.type}`);
  }
}

test("response_format json_schema and json_object are enforced", async () => {
  const schema = {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 12 },
      age: { type: "integer", minimum: 0, maximum: 150 },
      city: { type: "string", enum: ["서울", "부산", "대구"] },
      tags: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 3 },
      member: { type: "boolean" },
    },
    required: ["name", "age", "city", "tags", "member"],
    additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: "tiny", messages: user("사람 한 명을 JSON으로"), max_tokens: 300, seed, temperature: 1,
      response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    });
    assert.equal(r.choices[0].finish_reason, "stop", r.choices[0].message.content);
    const v = JSON.parse(r.choices[0].message.content);
    validate(schema, v);
    assert.deepEqual(Object.keys(v), Object.keys(schema.properties));  // the schema's order
  }
  const o = await client.chat.completions.create({
    model: "tiny", messages: user("JSON"), max_tokens: 200, seed: 4, response_format: { type: "json_object" },
  });
  if (o.choices[0].finish_reason === "stop") {
    const v = JSON.parse(o.choices[0].message.content);
    assert.equal(typeof v, "object");
  }
  // An unsupported keyword is a 400 naming it.
  await assert.rejects(
    client.chat.completions.create({
      model: "tiny", messages: user("x"),
      response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "a+" } } },
    }),
    (e) => e instanceof OpenAI.BadRequestError && /pattern/.test(e.message),
  );
});

test("completions (legacy)", async () => {
  const r = await client.completions.create({ model: "tiny", prompt: "데비안은", max_tokens: 8, temperature: 0, echo: true, logprobs: 2 });
  assert.equal(r.object, "text_completion");
  assert.ok(r.choices[0].text.startsWith("데비안은"));
  // echo + logprobs: the prompt's tokens too (the first with a null logprob, as OpenAI and vLLM)
  assert.equal(r.choices[0].logprobs.tokens.length, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(r.choices[0].logprobs.token_logprobs[0], null);
  assert.equal(r.choices[0].logprobs.text_offset[0], 0);
  const s = await client.completions.create({ model: "tiny", prompt: "데비안은", max_tokens: 8, temperature: 0, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.text ?? "";
  assert.equal("데비안은" + text, r.choices[0].text);
});

test("embeddings", async () => {
  const f = await client.embeddings.create({ model: "tiny", input: ["안녕하세요", "hello world"], encoding_format: "float" });
  assert.equal(f.data.length, 2);
  assert.equal(f.object, "list");
  const v = f.data[0].embedding;
  assert.ok(v.length > 0);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
  assert.notDeepEqual(f.data[0].embedding, f.data[1].embedding);
  // The client's default is base64; it decodes to the same floats.
  const b = await client.embeddings.create({ model: "tiny", input: ["안녕하세요", "hello world"] });
  for (let i = 0; i < v.length; i++) assert.ok(Math.abs(b.data[0].embedding[i] - v[i]) < 1e-6);
  assert.ok(f.usage.prompt_tokens > 0);
  const d = await client.embeddings.create({ model: "tiny", input: "안녕", dimensions: 8, encoding_format: "float" });
  assert.equal(d.data[0].embedding.length, 8);
});

test("errors through the client", async () => {
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: user("x"), temperature: 5 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, "temperature");
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [] }), OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: user("x".repeat(8000)) }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.code, "context_length_exceeded");
    return true;
  });
  const wrongKey = new OpenAI({ apiKey: "sk-wrong", baseURL: main.base + "/v1", maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const second = new OpenAI({ apiKey: "second-key", baseURL: main.base + "/v1", maxRetries: 0 });
  assert.equal((await second.models.list()).data[0].id, "tiny");
  await assert.rejects(client.chat.completions.create({ model: "gpt-4o", messages: user("x") }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, "model_not_found");
    return true;
  });
  // 429: one slot, a queue of one; long requests fill both.
  const long = () => noRetry.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 3000, ignore_eos: true });
  const results = await Promise.allSettled([long(), long(), long(), long()]);
  const limited = results.filter((r) => r.status === "rejected");
  assert.ok(limited.length >= 1, "expected at least one 429");
  for (const r of limited) {
    assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
    assert.ok(Number(r.reason.headers.get("retry-after")) >= 1);
  }
  assert.ok(results.some((r) => r.status === "fulfilled"));
});

test("raw HTTP: malformed requests", async () => {
  const auth = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };
  const p = main.port;
  let r = await raw(p, "POST", "/v1/chat/completions", '{"model":"tiny","messages":[{"role":"us', auth);
  assert.equal(r.status, 400); assertErrorShape(r.json); assert.equal(r.json.error.code, "invalid_json");
  r = await raw(p, "POST", "/v1/chat/completions", JSON.stringify({ model: "tiny", messages: "hello" }), auth);
  assert.equal(r.status, 400); assertErrorShape(r.json); assert.equal(r.json.error.param, "messages");
  r = await raw(p, "POST", "/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user("x"), max_tokens: "lots" }), auth);
  assert.equal(r.status, 400); assert.equal(r.json.error.param, "max_tokens");
  r = await raw(p, "POST", "/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user("x"), n: -1 }), auth);
  assert.equal(r.status, 400); assert.equal(r.json.error.param, "n");
  r = await raw(p, "POST", "/v1/embeddings", JSON.stringify({ model: "tiny", input: [1.5] }), auth);
  assert.equal(r.status, 400); assertErrorShape(r.json);
  // Invalid UTF-8 inside the JSON.
  const bad = Buffer.concat([Buffer.from('{"model":"tiny","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')]);
  r = await raw(p, "POST", "/v1/chat/completions", bad, auth);
  assert.equal(r.status, 400); assertErrorShape(r.json);
  // 10 MB body.
  r = await raw(p, "POST", "/v1/chat/completions", Buffer.alloc(10 * 1024 * 1024, 0x61), auth);
  assert.equal(r.status, 413); assertErrorShape(r.json);
  // Unknown route, missing key, wrong method.
  r = await raw(p, "GET", "/v1/nothing", undefined, auth);
  assert.equal(r.status, 404); assertErrorShape(r.json);
  r = await raw(p, "POST", "/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user("x") }), { "Content-Type": "application/json" });
  assert.equal(r.status, 401); assertErrorShape(r.json); assert.equal(r.json.error.code, "invalid_api_key");
  r = await raw(p, "GET", "/v1/chat/completions", undefined, auth);
  assert.equal(r.status, 404); assertErrorShape(r.json);
  // Empty body, body that is not an object.
  r = await raw(p, "POST", "/v1/completions", "", auth);
  assert.equal(r.status, 400); assertErrorShape(r.json);
  r = await raw(p, "POST", "/v1/completions", "[1,2]", auth);
  assert.equal(r.status, 400); assertErrorShape(r.json);
  // Never a 500 for user input: the metrics agree.
  r = await raw(p, "GET", "/metrics");
  assert.equal(r.status, 200);
  assert.match(r.text, /todae_requests_total\{endpoint="\/v1\/chat\/completions",code="200"\}/);
  assert.doesNotMatch(r.text, /code="500"/);
});

test("page, health, metrics", async () => {
  let r = await raw(main.port, "GET", "/");
  assert.equal(r.status, 200);
  assert.match(r.headers["content-type"], /text\/html/);
  assert.match(r.text, /isComposing/);
  assert.doesNotMatch(r.text, /https?:\/\/(?!127)/);  // no CDN
  r = await raw(main.port, "GET", "/health");
  assert.equal(r.status, 200);
  assert.equal(r.json.status, "ok");
  r = await raw(main.port, "GET", "/metrics");
  for (const m of ["todae_generated_tokens_total", "todae_queue_depth", "todae_time_to_first_token_seconds_bucket",
                   "todae_inter_token_latency_seconds_count", "todae_tokens_per_second", "todae_request_duration_seconds_sum"])
    assert.match(r.text, new RegExp(m));
});

test("a client that disconnects frees its slot at once", async () => {
  // One slot; a stream that would run for 16k tokens is dropped after its first chunk.
  const ctrl = new AbortController();
  const s = await noRetry.chat.completions.create(
    { model: "tiny", messages: user("x"), max_tokens: 16000, ignore_eos: true, stream: true },
    { signal: ctrl.signal },
  );
  for await (const c of s) { if (c.choices[0]?.delta?.content) break; }  // break aborts the request
  assert.equal(await slotsBusyAfter(small.port, 3000), 0, "slot still busy 3 s after the client left");
  const r = await noRetry.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 4 });
  assert.ok(r.choices[0].message);
});

test("a non-streamed answer that runs past a second arrives whole; a non-streaming client that leaves frees its slot", async () => {
  // Past one second the server answers through a chunked body that leads with spaces (its way of
  // noticing a closed connection): the official client must still parse it.
  const t0 = Date.now();
  const r = await raw(small.port, "POST", "/v1/completions",
    JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 12000, ignore_eos: true }),
    { "content-type": "application/json" });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.equal(r.json.usage.completion_tokens, 12000, r.text.slice(0, 200));
  if (ms > 1300) {
    assert.equal(r.headers["transfer-encoding"], "chunked");
    assert.match(r.text, /^ +\{/);
  }
  const c = await noRetry.completions.create({ model: "tiny", prompt: "x", max_tokens: 12000, ignore_eos: true });
  assert.equal(c.usage.completion_tokens, 12000);
  // A non-streaming request dropped after 300 ms: the slot is free again well before its 16k tokens.
  const ctrl = new AbortController();
  const p = noRetry.completions.create({ model: "tiny", prompt: "x", max_tokens: 16000, ignore_eos: true },
                                       { signal: ctrl.signal }).catch((e) => e);
  await sleep(300);
  ctrl.abort();
  await p;
  const t1 = Date.now();
  assert.equal(await slotsBusyAfter(small.port, 3000), 0, "slot still busy 3 s after the client left");
  console.log(`# 12000 tokens non-streamed in ${ms} ms; slot freed ${Date.now() - t1} ms after the abort`);
});

test("SIGTERM: running streams finish, then the server exits 0", async () => {
  const srv = await startServer("term", ["--parallel", "2", "--ctx", "4096", "--shutdown-grace", "20"]);
  const c = new OpenAI({ apiKey: "x", baseURL: srv.base + "/v1", maxRetries: 0 });
  const s = await c.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 1500, ignore_eos: true, stream: true });
  let n = 0, finish = null, signalled = false;
  for await (const ch of s) {
    n++;
    if (!signalled && n === 2) { srv.proc.kill("SIGTERM"); signalled = true; await sleep(100); 
      // New work is refused while draining.
      const h = await raw(srv.port, "GET", "/health");
      assert.equal(h.status, 503);
    }
    if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
  }
  assert.equal(finish, "length");
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.log());
});

// ---- LoRA adapters over one base (issue 12, "using adapters without merging") -------------------

// A PEFT adapter folder written here, byte by byte, as PEFT's save_pretrained lays it out
// (adapter_config.json + adapter_model.safetensors with "base_model.model." keys): an adapter
// "made elsewhere". A and B are random (B = 0 would change nothing).
function writePeftAdapter(dir, { rank, alpha, targets, seed }) {
  const cfg = JSON.parse(readFileSync(join(MODEL, "config.json"), "utf8"));
  const C = cfg.hidden_size, F = cfg.intermediate_size, D = cfg.head_dim ?? C / cfg.num_attention_heads;
  const q = cfg.num_attention_heads * D, kv = cfg.num_key_value_heads * D;
  const shape = { q_proj: [q, C], k_proj: [kv, C], v_proj: [kv, C], o_proj: [C, q],
                  gate_proj: [F, C], up_proj: [F, C], down_proj: [C, F] };  // [out, in]
  let x = seed >>> 0;  // xorshift32: the same adapter every run
  const rand = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296 - 0.5; };
  const header = {}, parts = [];
  let off = 0;
  const add = (name, dims) => {
    const a = new Float32Array(dims[0] * dims[1]);
    for (let i = 0; i < a.length; i++) a[i] = rand() * 0.6;
    header[name] = { dtype: "F32", shape: dims, data_offsets: [off, off + a.byteLength] };
    parts.push(Buffer.from(a.buffer));
    off += a.byteLength;
  };
  for (let l = 0; l < cfg.num_hidden_layers; l++)
    for (const t of targets) {
      const mod = ["q_proj", "k_proj", "v_proj", "o_proj"].includes(t) ? "self_attn" : "mlp";
      const key = `base_model.model.model.layers.${l}.${mod}.${t}`;
      add(`${key}.lora_A.weight`, [rank, shape[t][1]]);
      add(`${key}.lora_B.weight`, [shape[t][0], rank]);
    }
  header.__metadata__ = { format: "pt" };
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_model.safetensors"), Buffer.concat([len, h, ...parts]));
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({
    peft_type: "LORA", task_type: "CAUSAL_LM", r: rank, lora_alpha: alpha, target_modules: targets,
    lora_dropout: 0.0, bias: "none", fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: "tiny",
  }, null, 2));
  return dir;
}

const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => "\\" + c)} (\\S+)$`, "m"));
  return m ? Number(m[1]) : NaN;
};

test("LoRA: two adapters over one base, listed, chosen by model, decoded in the same batches", async () => {
  const sqlDir = writePeftAdapter(join(tmp, "lora-sql"), { rank: 4, alpha: 8, seed: 1,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] });
  const koDir = writePeftAdapter(join(tmp, "lora-ko"), { rank: 8, alpha: 8, seed: 2, targets: ["q_proj", "v_proj", "down_proj"] });
  const srv = await startServer("lora", ["--parallel", "6", "--ctx", "512", "--lora", `sql=${sqlDir}`,
                                         "--lora", `ko=${koDir}:1.5`]);
  try {
    const c = new OpenAI({ apiKey: "x", baseURL: srv.base + "/v1", maxRetries: 0 });
    // /v1/models: the base, then each adapter with the base as its parent (vLLM's listing)
    const list = await c.models.list();
    assert.deepEqual(list.data.map((m) => m.id), ["tiny", "sql", "ko"]);
    assert.equal(list.data[1].parent, "tiny");
    assert.equal(list.data[2].parent, "tiny");
    assert.equal((await c.models.retrieve("ko")).root, koDir);
    // an unknown model is OpenAI's 404 model_not_found
    const err = await c.completions.create({ model: "nope", prompt: "x", max_tokens: 2 }).catch((e) => e);
    assert.equal(err.status, 404);
    assert.equal(err.code, "model_not_found");

    // Greedy continuations, each request alone: the adapters change the text, and each equals
    // `todae generate --lora` on the same prompt.
    const prompt = "데비안 패키지는";
    const req = (model, extra = {}) => c.completions.create({ model, prompt, max_tokens: 24, temperature: 0, ...extra });
    const alone = {};
    for (const m of ["tiny", "sql", "ko"]) {
      const r = await req(m);
      assert.equal(r.model, m);
      alone[m] = r.choices[0].text;
    }
    assert.notEqual(alone.sql, alone.tiny);
    assert.notEqual(alone.ko, alone.tiny);
    assert.notEqual(alone.ko, alone.sql);
    const generate = (...lora) => execFileSync(BIN, ["generate", "--model", MODEL, "--prompt", prompt, "-n", "24",
      "--greedy", "--threads", "2", ...lora.flatMap((l) => ["--lora", l])], { encoding: "utf8" }).replace(/\n$/, "");
    assert.equal(generate(), alone.tiny);
    assert.equal(generate(sqlDir), alone.sql);
    assert.equal(generate(`${koDir}:1.5`), alone.ko);
    assert.equal(generate(`${koDir}:0`), alone.tiny);  // a multiplier of 0 is the bare base
    // two adapters stack (their effects add): unlike either alone
    const both = generate(sqlDir, `${koDir}:1.5`);
    assert.notEqual(both, alone.sql);
    assert.notEqual(both, alone.ko);

    // Concurrent requests for the base and both adapters: every answer is the one it gets alone,
    // and the server's forward passes held several adapters at once.
    const long = {};
    for (const m of ["tiny", "sql", "ko"]) long[m] = (await req(m, { max_tokens: 48, ignore_eos: true })).choices[0].text;
    const before = metric((await raw(srv.port, "GET", "/metrics")).text, "todae_mixed_adapter_passes_total");
    assert.equal(before, 0, "sequential requests never share a pass");
    const models = ["tiny", "sql", "ko", "ko", "sql", "tiny"];
    const outs = await Promise.all(models.map((m) => req(m, { max_tokens: 48, ignore_eos: true })));
    outs.forEach((r, i) => assert.equal(r.choices[0].text, long[models[i]], `${models[i]} (request ${i})`));
    const text = (await raw(srv.port, "GET", "/metrics")).text;
    const mixed = metric(text, "todae_mixed_adapter_passes_total");
    assert.ok(mixed >= 10, `forward passes with several adapters: ${mixed}`);
    assert.equal(metric(text, 'todae_model_requests_total{model="sql"}'), 1 + 1 + 2);
    assert.equal(metric(text, 'todae_model_requests_total{model="tiny"}'), 1 + 1 + 2);
    console.log(`# 6 concurrent requests (base, sql, ko): ${mixed} forward passes mixed adapters`);

    // chat with an adapter; streamed chunks name the adapter too
    const stream = await c.chat.completions.create({ model: "ko", messages: user("안녕"), max_tokens: 6, stream: true });
    for await (const ch of stream) assert.equal(ch.model, "ko");
  } finally {
    srv.proc.kill("SIGKILL");
  }
  // an adapter may not take the base's name
  const bad = spawn(BIN, ["serve", "--model", MODEL, "--alias", "tiny", "--port", "0", "--lora", `tiny=${sqlDir}`],
                    { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  bad.stderr.on("data", (d) => (log += d));
  const code = await new Promise((r) => bad.on("exit", r));
  assert.notEqual(code, 0);
  assert.match(log, /tiny.*base model/);
});
