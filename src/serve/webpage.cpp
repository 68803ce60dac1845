// The chat page of `todae serve` (GET /): one self-contained HTML document, no external assets.
// Streams answers from /v1/chat/completions, keeps the conversation and the settings in
// localStorage, never sends on Enter while an input method is composing (Korean, Japanese, ...),
// and has a copy button on every answer.
#include "serve/webpage.h"

namespace todae::serve {

namespace {
constexpr char kPage[] = R"HTML(<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>todae chat</title>
<style>
:root { --bg:#f6f7f9; --fg:#1d2330; --muted:#6b7385; --card:#fff; --accent:#2f6fed; --line:#dde1e8; --user:#e8efff; }
@media (prefers-color-scheme: dark) {
  :root { --bg:#14171c; --fg:#e6e9ef; --muted:#9aa3b5; --card:#1d2128; --accent:#6d9bff; --line:#2c323c; --user:#22304d; }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { background: var(--bg); color: var(--fg); display: flex; flex-direction: column;
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", "Noto Sans KR", "Apple SD Gothic Neo", "Malgun Gothic", sans-serif; }
header { display: flex; align-items: center; gap: .6rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1rem; margin: 0; }
header .model { color: var(--muted); font-size: .85rem; flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
button { font: inherit; border: 1px solid var(--line); background: var(--card); color: var(--fg); border-radius: 8px; padding: .35rem .7rem; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
#log { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .8rem; }
.msg { max-width: 52rem; width: fit-content; padding: .6rem .8rem; border-radius: 12px; background: var(--card); border: 1px solid var(--line); white-space: pre-wrap; word-break: break-word; position: relative; }
.msg.user { align-self: flex-end; background: var(--user); }
.msg.assistant { align-self: flex-start; min-width: 6rem; }
.msg.error { border-color: #d9534f; color: #d9534f; }
.msg .copy { position: absolute; top: .25rem; right: .3rem; font-size: .75rem; padding: .1rem .4rem; opacity: .55; }
.msg .copy:hover { opacity: 1; }
.msg.assistant .text { padding-right: 3.2rem; }
.msg .meta { color: var(--muted); font-size: .75rem; margin-top: .3rem; }
.empty { color: var(--muted); margin: auto; text-align: center; }
form { display: flex; gap: .5rem; padding: .7rem 1rem 1rem; border-top: 1px solid var(--line); background: var(--card); }
textarea { flex: 1; resize: none; font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 10px; padding: .55rem .7rem; min-height: 2.8rem; max-height: 12rem; }
dialog { border: 1px solid var(--line); border-radius: 12px; background: var(--card); color: var(--fg); width: min(30rem, 92vw); }
dialog label { display: block; margin: .6rem 0 .2rem; font-size: .85rem; color: var(--muted); }
dialog input, dialog textarea { width: 100%; font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: .35rem .5rem; }
dialog .row { display: flex; gap: .5rem; justify-content: flex-end; margin-top: 1rem; }
</style>
</head>
<body>
<header>
  <h1>토대 todae</h1>
  <span class="model" id="model">…</span>
  <button id="settingsBtn" type="button" title="설정 / Settings">⚙︎</button>
  <button id="clearBtn" type="button" title="새 대화 / New chat">새 대화</button>
</header>
<main id="log" aria-live="polite"></main>
<form id="form">
  <textarea id="input" rows="1" placeholder="메시지를 입력하세요 (Enter: 보내기, Shift+Enter: 줄바꿈)" autofocus></textarea>
  <button id="send" class="primary" type="submit">보내기</button>
</form>
<dialog id="settings">
  <form method="dialog" id="settingsForm">
    <strong>설정 / Settings</strong>
    <label for="sSystem">시스템 프롬프트 / System prompt</label>
    <textarea id="sSystem" rows="3"></textarea>
    <label for="sTemp">temperature (0–2)</label>
    <input id="sTemp" type="number" min="0" max="2" step="0.05">
    <label for="sTopP">top_p (0–1)</label>
    <input id="sTopP" type="number" min="0" max="1" step="0.05">
    <label for="sMax">max_tokens</label>
    <input id="sMax" type="number" min="1" step="1">
    <label for="sKey">API key (--api-key)</label>
    <input id="sKey" type="password" autocomplete="off">
    <div class="row"><button value="cancel">취소</button><button class="primary" value="ok" id="sSave">저장</button></div>
  </form>
</dialog>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const STORE = "todae.chat.v1", SETTINGS = "todae.settings.v1";
const defaults = { system: "", temperature: 0.7, top_p: 0.95, max_tokens: 512, apiKey: "" };
let settings = Object.assign({}, defaults, JSON.parse(localStorage.getItem(SETTINGS) || "{}"));
let messages = JSON.parse(localStorage.getItem(STORE) || "[]");
let modelId = null, busy = null;

function save() { localStorage.setItem(STORE, JSON.stringify(messages)); }
function headers() {
  const h = { "Content-Type": "application/json" };
  if (settings.apiKey) h["Authorization"] = "Bearer " + settings.apiKey;
  return h;
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const t = document.createElement("div");
  t.className = "text";
  t.textContent = text;
  div.appendChild(t);
  if (role === "assistant") {
    const b = document.createElement("button");
    b.type = "button"; b.className = "copy"; b.textContent = "복사"; b.title = "Copy";
    b.onclick = async () => {
      const s = t.textContent;
      try { await navigator.clipboard.writeText(s); }
      catch { const r = document.createRange(); r.selectNodeContents(t); const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r); document.execCommand("copy"); sel.removeAllRanges(); }
      b.textContent = "복사됨"; setTimeout(() => (b.textContent = "복사"), 1200);
    };
    div.appendChild(b);
  }
  $("log").appendChild(div);
  return div;
}

function render() {
  const log = $("log");
  log.innerHTML = "";
  if (!messages.length) {
    const e = document.createElement("div");
    e.className = "empty";
    e.textContent = "무엇이든 물어보세요. 대화는 이 브라우저에만 저장됩니다.";
    log.appendChild(e);
  }
  for (const m of messages) bubble(m.role, m.content);
  log.scrollTop = log.scrollHeight;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    modelId = j.data[0].id;
    $("model").textContent = modelId + " · ctx " + (j.data[0].context_length || "?");
  } catch (e) { $("model").textContent = "model: " + e.message; }
}

async function send(text) {
  if (!modelId) await loadModel();
  messages.push({ role: "user", content: text });
  save(); render();
  const div = bubble("assistant", "");
  const out = div.querySelector(".text");
  const meta = document.createElement("div"); meta.className = "meta"; div.appendChild(meta);
  const body = {
    model: modelId, stream: true, stream_options: { include_usage: true },
    temperature: Number(settings.temperature), top_p: Number(settings.top_p), max_tokens: Number(settings.max_tokens),
    messages: (settings.system ? [{ role: "system", content: settings.system }] : []).concat(messages),
  };
  const ctrl = new AbortController();
  busy = ctrl; $("send").textContent = "중지";
  let answer = "", t0 = performance.now(), tFirst = 0, usage = null;
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: ctrl.signal });
    if (!r.ok) { const j = await r.json().catch(() => ({})); throw new Error(j.error ? j.error.message : r.status + " " + r.statusText); }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, k); buf = buf.slice(k + 2);
        for (const line of ev.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          for (const c of j.choices || []) {
            const piece = (c.delta && c.delta.content) || "";
            if (piece) { if (!tFirst) tFirst = performance.now(); answer += piece; out.textContent = answer; }
            if (c.delta && c.delta.tool_calls) { answer += JSON.stringify(c.delta.tool_calls); out.textContent = answer; }
          }
          $("log").scrollTop = $("log").scrollHeight;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") { div.classList.add("error"); out.textContent = answer + (answer ? "\n" : "") + "⚠ " + e.message; }
  } finally {
    busy = null; $("send").textContent = "보내기";
  }
  const secs = (performance.now() - t0) / 1000;
  if (usage) meta.textContent = usage.completion_tokens + " tokens · " + (usage.completion_tokens / Math.max(secs, 1e-3)).toFixed(1) + " tok/s" + (tFirst ? " · first token " + ((tFirst - t0) / 1000).toFixed(2) + " s" : "");
  if (answer) { messages.push({ role: "assistant", content: answer }); save(); }
}

const input = $("input");
function autosize() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight, 192) + "px"; }
input.addEventListener("input", autosize);
// Enter sends, Shift+Enter is a new line; while an IME composes (isComposing, or keyCode 229 on
// browsers that report the confirming Enter that way) Enter belongs to the input method.
input.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  $("form").requestSubmit();
});
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (busy) { busy.abort(); return; }
  const text = input.value.trim();
  if (!text) return;
  input.value = ""; autosize();
  send(text);
});
$("clearBtn").onclick = () => { if (busy) busy.abort(); messages = []; save(); render(); input.focus(); };
$("settingsBtn").onclick = () => {
  $("sSystem").value = settings.system; $("sTemp").value = settings.temperature; $("sTopP").value = settings.top_p;
  $("sMax").value = settings.max_tokens; $("sKey").value = settings.apiKey;
  $("settings").showModal();
};
$("settings").addEventListener("close", () => {
  if ($("settings").returnValue !== "ok") return;
  settings = { system: $("sSystem").value, temperature: $("sTemp").value, top_p: $("sTopP").value, max_tokens: $("sMax").value, apiKey: $("sKey").value };
  localStorage.setItem(SETTINGS, JSON.stringify(settings));
  loadModel();
});
render();
loadModel();
</script>
</body>
</html>
)HTML";
}  // namespace

std::string_view chat_page_html() { return {kPage, sizeof(kPage) - 1}; }

}  // namespace todae::serve
