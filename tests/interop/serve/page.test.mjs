// The chat page of `todae serve` in headless Chromium (Debian's chromium, driven by playwright-core):
// type a Korean question, see a streamed answer, check the input method rule (no send while
// composing), the conversation surviving a reload, the copy button; a screenshot is saved.
//
//   TODAE_BIN=... TODAE_MODEL=... TODAE_NODE_MODULES=... [CHROMIUM=/usr/bin/chromium] [TODAE_SCREENSHOT=out.png]
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.TODAE_NODE_MODULES ?? ".", "x.js"));
const pw = await import(require.resolve("playwright-core"));
const chromium = pw.chromium ?? pw.default.chromium;

const BIN = process.env.TODAE_BIN, MODEL = process.env.TODAE_MODEL;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const tmp = mkdtempSync(join(tmpdir(), "todae-page-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let server, browser, base;

before(async () => {
  if (!existsSync(CHROMIUM)) return;
  const portFile = join(tmp, "port");
  server = spawn(BIN, ["serve", "--model", MODEL, "--port", "0", "--port-file", portFile, "--ctx", "1024", "--quiet"], { stdio: "ignore" });
  for (let i = 0; i < 300 && !existsSync(portFile); i++) await sleep(50);
  base = `http://127.0.0.1:${Number(readFileSync(portFile, "utf8"))}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
});

test("chat page: Korean question, streamed answer, IME-safe Enter, saved conversation", { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}` }, async () => {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(base + "/");
  await page.waitForFunction(() => !document.getElementById("model").textContent.startsWith("…"));
  const input = page.locator("#input");

  // Enter while an input method is composing must not send (the Hangul syllable is not finished).
  await input.fill("대한민국의 수도는");
  await page.evaluate(() => {
    const el = document.getElementById("input");
    el.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", isComposing: true, bubbles: true, cancelable: true }));
    el.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", keyCode: 229, bubbles: true, cancelable: true }));
  });
  await sleep(300);
  assert.equal(await page.locator(".msg").count(), 0);
  assert.equal(await input.inputValue(), "대한민국의 수도는");

  // Enter (not composing) sends.
  await input.press("End");
  await page.keyboard.type("?");
  await input.press("Enter");
  await page.locator(".msg.user").first().waitFor();
  assert.equal(await page.locator(".msg.user .text").first().textContent(), "대한민국의 수도는?");
  // The answer streams in: wait for the token count line the page writes at the end.
  await page.locator(".msg.assistant .meta").filter({ hasText: "tokens" }).first().waitFor({ timeout: 30000 });
  const answer = await page.locator(".msg.assistant .text").first().textContent();
  assert.ok(answer.length > 0, "empty answer");
  assert.equal(await page.locator(".msg.assistant .copy").count(), 1);

  // The conversation is kept in the browser.
  await page.reload();
  await page.locator(".msg.assistant").first().waitFor();
  assert.equal(await page.locator(".msg").count(), 2);
  // Everything came from this server (no CDN).
  assert.ok(requests.every((u) => u.startsWith(base)), requests.filter((u) => !u.startsWith(base)).join(", "));
  assert.deepEqual(errors, []);
  await page.screenshot({ path: process.env.TODAE_SCREENSHOT ?? join(tmp, "page.png") });
});
