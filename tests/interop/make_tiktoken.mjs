// Convert js-tiktoken's compressed rank tables (dist/ranks/<name>.js) into the
// standard OpenAI .tiktoken format: one line per token, `base64(bytes) rank\n`,
// sorted by rank.  The result is byte-identical to OpenAI's published files
// (cl100k_base sha256 223921b7..., o200k_base sha256 446a9538...).
//
// usage: node make_tiktoken.mjs NODE_MODULES_DIR OUT_DIR [name ...]
//        (default names: cl100k_base o200k_base)
// Also writes OUT_DIR/<name>.meta.json with {pat_str, special_tokens}.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, outDir, ...names] = process.argv.slice(2);
if (!nodeModules || !outDir) {
  console.error("usage: node make_tiktoken.mjs NODE_MODULES_DIR OUT_DIR [name ...]");
  process.exit(2);
}
const encodings = names.length ? names : ["cl100k_base", "o200k_base"];
fs.mkdirSync(outDir, { recursive: true });

for (const name of encodings) {
  const src = path.resolve(nodeModules, "js-tiktoken", "dist", "ranks", `${name}.js`);
  const ranks = (await import(pathToFileURL(src).href)).default;
  // Same decoding as js-tiktoken's Tiktoken constructor: each line is
  // `<label> <offset> tok0 tok1 ...` and tok_i gets rank offset+i.
  const byRank = [];
  for (const line of ranks.bpe_ranks.split("\n")) {
    if (!line) continue;
    const [, offsetStr, ...tokens] = line.split(" ");
    const offset = Number.parseInt(offsetStr, 10);
    tokens.forEach((tok, i) => {
      const rank = offset + i;
      if (byRank[rank] !== undefined && byRank[rank] !== tok) {
        throw new Error(`${name}: rank ${rank} assigned twice`);
      }
      byRank[rank] = tok;
    });
  }
  const lines = [];
  const seen = new Set();
  for (let r = 0; r < byRank.length; r++) {
    const tok = byRank[r];
    if (tok === undefined) continue; // tiktoken files may have holes (none in cl100k/o200k)
    // Normalise base64 (round-trip through bytes) so the output is canonical.
    const canon = Buffer.from(tok, "base64").toString("base64");
    if (canon !== tok) throw new Error(`${name}: non-canonical base64 for rank ${r}: ${tok}`);
    if (seen.has(tok)) throw new Error(`${name}: duplicate token ${tok}`);
    seen.add(tok);
    lines.push(`${tok} ${r}\n`);
  }
  const outFile = path.join(outDir, `${name}.tiktoken`);
  const tmp = `${outFile}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, lines.join(""));
  fs.renameSync(tmp, outFile);
  fs.writeFileSync(
    path.join(outDir, `${name}.meta.json`),
    JSON.stringify({ pat_str: ranks.pat_str, special_tokens: ranks.special_tokens }, null, 1) + "\n",
  );
  console.error(`wrote ${outFile} (${lines.length} ranks)`);
}
