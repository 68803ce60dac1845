// `todae tokenizer ...`: train, encode, decode, show.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <unistd.h>

#include "app/commands.h"
#include "base/base.h"
#include "text/text.h"

namespace todae::cli {

namespace {

std::string read_input(const std::string& file) {
  if (!file.empty() && file != "-") return read_file(file);
  std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) fail("cannot read standard input");
  return s;
}

void write_out(std::string_view s) {
  if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) fail("cannot write to standard output");
}

struct TrainArgs {
  TokenizerTrainOptions opt;
  std::string output;
  bool quiet = false;
};

struct EncodeArgs {
  std::string tokenizer, file, invalid = "keep";
  bool ids = false, tokens = false, count = false, add_special = false, no_split_special = false, nfc = false;
  int threads = 1;
};

struct DecodeArgs {
  std::string tokenizer, file;
  bool skip_special = false;
};

struct ShowArgs {
  std::string tokenizer, text, file;
};

void run_train(TrainArgs& a) {
  if (a.quiet) set_progress_enabled(false);
  a.opt.progress = !a.quiet;
  auto t0 = std::chrono::steady_clock::now();
  TokenizerTrainStats st;
  Tokenizer tok = train_bpe(a.opt, &st);
  save_tokenizer(tok, a.output);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "trained %d tokens (%llu merges, %llu superword merges) on %.1f MB, %llu unique words, in %.1f s "
               "(counting %.1f s, %.1f MB/s; merging %.1f s)\nwrote %s/tokenizer.json and %s/tokenizer_config.json\n",
               tok.vocab_size(), (unsigned long long)st.merges, (unsigned long long)st.superword_merges, st.bytes / 1e6,
               (unsigned long long)st.unique_words, secs, st.seconds_count,
               st.seconds_count > 0 ? st.bytes / 1e6 / st.seconds_count : 0.0, st.seconds_merge, a.output.c_str(),
               a.output.c_str());
  if (tok.vocab_size() < a.opt.vocab_size)
    std::fprintf(stderr, "note: the corpus supports only %d tokens (no pair seen %llu times remains), not %d\n",
                 tok.vocab_size(), (unsigned long long)a.opt.min_frequency, a.opt.vocab_size);
}

void run_encode(EncodeArgs& a) {
  if (int(a.ids) + int(a.tokens) + int(a.count) > 1) fail("choose one of --ids, --tokens, --count");
  if (a.invalid != "keep" && a.invalid != "replace") fail("--invalid-utf8 must be 'keep' or 'replace'");
  Tokenizer tok = load_tokenizer(a.tokenizer);
  std::string text = read_input(a.file);
  if (a.invalid == "replace") text = replace_invalid_utf8(text);
  if (a.nfc) text = nfc_normalize(text);
  EncodeOptions opt;
  opt.add_special_tokens = a.add_special;
  opt.split_special = !a.no_split_special;
  std::vector<int32_t> ids = encode_parallel(tok, text, opt, a.threads);
  std::string out;
  if (a.count) {
    out = cat("tokens=", ids.size(), " chars=", count_chars(text), " bytes=", text.size(), "\n");
  } else {
    out.reserve(ids.size() * 6);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out.push_back(' ');
      out += a.tokens ? tok.token_text(ids[i]) : std::to_string(ids[i]);
    }
    out.push_back('\n');
  }
  write_out(out);
}

void run_decode(DecodeArgs& a) {
  Tokenizer tok = load_tokenizer(a.tokenizer);
  std::string in = read_input(a.file);
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < in.size()) {
    while (i < in.size() && (in[i] == ' ' || in[i] == '\n' || in[i] == '\t' || in[i] == '\r' || in[i] == ',')) ++i;
    if (i >= in.size()) break;
    size_t j = i;
    while (j < in.size() && !(in[j] == ' ' || in[j] == '\n' || in[j] == '\t' || in[j] == '\r' || in[j] == ',')) ++j;
    std::string w = in.substr(i, j - i);
    if (w.size() > 10 || w.find_first_not_of("0123456789") != std::string::npos)
      fail("decode: '", printable(w, 40), "' is not a token id (expected non-negative integers separated by spaces)");
    long long v = std::stoll(w);
    if (v >= tok.vocab_size()) fail("decode: token id ", v, " is outside the vocabulary (size ", tok.vocab_size(), ")");
    ids.push_back(int32_t(v));
    i = j;
  }
  write_out(decode(tok, ids, a.skip_special));
}

// Shows how text splits into tokens, with statistics: what `make demo` prints.
void run_show(ShowArgs& a) {
  Tokenizer tok = load_tokenizer(a.tokenizer);
  std::string text = !a.text.empty() ? a.text : read_input(a.file);
  bool color = ::isatty(1);
  for (std::string_view line : {std::string_view(text)}) {
    std::vector<int32_t> ids = encode(tok, line);
    std::string out;
    const char* colors[] = {"\x1b[48;5;153m", "\x1b[48;5;222m", "\x1b[48;5;157m", "\x1b[48;5;218m"};
    // Tokens that hold part of a character (byte-level BPE) are shown together with the tokens
    // that complete it, marked with how many tokens the character took: 민(2).
    std::string pending;
    int parts = 0, shown = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      pending += tok.token_bytes(ids[i]);
      ++parts;
      bool complete = count_chars(pending) == count_chars(replace_invalid_utf8(pending)) &&
                      replace_invalid_utf8(pending) == pending;
      if (!complete && i + 1 < ids.size() && parts < 4) continue;
      std::string cell = parts > 1 ? cat(pending, "(", parts, ")") : pending;
      if (color)
        out += cat(colors[shown % 4], "\x1b[30m", cell, "\x1b[0m");
      else
        out += cat(shown ? "|" : "", cell);
      ++shown;
      pending.clear();
      parts = 0;
    }
    size_t chars = count_chars(line);
    out += cat("\n  tokens=", ids.size(), " chars=", chars, " bytes=", line.size());
    char buf[96];
    std::snprintf(buf, sizeof buf, " chars/token=%.2f bytes/token=%.2f\n", ids.empty() ? 0.0 : double(chars) / ids.size(),
                  ids.empty() ? 0.0 : double(line.size()) / ids.size());
    out += buf;
    write_out(out);
  }
}

}  // namespace

static void add_tokenizer_commands(CLI::App& app) {
  auto* grp = app.add_subcommand("tokenizer", "Train, inspect and run tokenizers (BPE, Hugging Face tokenizer.json, tiktoken)");
  grp->require_subcommand(1);

  static TrainArgs train;
  auto* t = grp->add_subcommand("train", "Train a byte-level BPE tokenizer with the Korean-first pre-tokenizer");
  t->add_option("--input", train.opt.inputs, "Text files, JSONL files (*.jsonl) or folders of them")->required();
  t->add_option("--jsonl-field", train.opt.jsonl_field, "Field holding the text in JSONL records")->capture_default_str();
  t->add_option("--vocab-size", train.opt.vocab_size, "Vocabulary size, including the 256 bytes and the special tokens")
      ->required();
  t->add_option("--output", train.output, "Folder to write tokenizer.json and tokenizer_config.json to")->required();
  t->add_option("--special", train.opt.extra_special, "Extra special tokens (repeatable)");
  t->add_option("--threads", train.opt.threads, "Threads (default: all cores)");
  t->add_option("--min-frequency", train.opt.min_frequency, "Never merge pairs seen fewer times")->capture_default_str();
  t->add_option("--superword", train.opt.superword_fraction,
                "Fraction of the merges (e.g. 0.2) learned in a second stage that may span the space between words "
                "(SuperBPE), for frequent phrases such as '할 수 있습니다'")
      ->capture_default_str();
  t->add_option("--max-superword-words", train.opt.max_superword_words, "Words a superword token may span")
      ->capture_default_str();
  t->add_flag("--quiet", train.quiet, "No progress bars");
  t->callback([] { run_train(train); });

  static EncodeArgs enc;
  auto* e = grp->add_subcommand("encode", "Encode text (a FILE or standard input, as one text) into token ids");
  e->add_option("--tokenizer", enc.tokenizer, "Folder with tokenizer.json, a tokenizer.json file or a .tiktoken file")
      ->required();
  e->add_flag("--ids", enc.ids, "Print ids separated by single spaces (default)");
  e->add_flag("--tokens", enc.tokens, "Print the tokens as written in tokenizer.json");
  e->add_flag("--count", enc.count, "Print one line: tokens=N chars=M bytes=B");
  e->add_flag("--add-special-tokens", enc.add_special, "Apply the post-processor (e.g. prepend <bos>)");
  e->add_flag("--no-split-special", enc.no_split_special, "Treat special-token text in the input as plain text");
  e->add_option("--invalid-utf8", enc.invalid,
                "keep: encode invalid bytes losslessly; replace: U+FFFD as JavaScript's TextDecoder does")
      ->capture_default_str();
  e->add_flag("--nfc", enc.nfc, "NFC-normalise the input first (todae tokenizers are trained on NFC text)");
  e->add_option("--threads", enc.threads, "Threads for long inputs")->capture_default_str();
  e->add_option("FILE", enc.file, "Input file (default: standard input)");
  e->callback([] { run_encode(enc); });

  static DecodeArgs dec;
  auto* d = grp->add_subcommand("decode", "Decode token ids (FILE or standard input) back to text");
  d->add_option("--tokenizer", dec.tokenizer, "Folder with tokenizer.json, a tokenizer.json file or a .tiktoken file")
      ->required();
  d->add_flag("--skip-special", dec.skip_special, "Leave special tokens out");
  d->add_option("FILE", dec.file, "Input file of ids (default: standard input)");
  d->callback([] { run_decode(dec); });

  static ShowArgs show;
  auto* s = grp->add_subcommand("show", "Show how a text splits into tokens, with statistics");
  s->add_option("--tokenizer", show.tokenizer, "Folder with tokenizer.json, a tokenizer.json file or a .tiktoken file")
      ->required();
  s->add_option("--text", show.text, "Text to show (default: FILE or standard input)");
  s->add_option("FILE", show.file, "Input file");
  s->callback([] { run_show(show); });
}

static CommandRegistrar registrar(20, add_tokenizer_commands);

}  // namespace todae::cli
