// todae data, supervised fine-tuning examples: the JSONL formats TRL users already have, turned
// into token ids with a per-token loss mask, and batches of them (padded or packed).
//
//   {"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": ..., "tool_calls": [...]}, ...]}
//       rendered by the model's chat template (our Jinja engine); loss on the assistant turns only
//       (SftOptions::loss_all for every token)
//   {"prompt": ..., "completion": ...}   loss on the completion only (prompt/completion may also be
//       message lists: TRL's conversational prompt-completion form)
//   {"text": ...}                        loss on every token
// A line with several of these keys uses the first in that order (as TRL does); other keys are
// ignored. messages and conversational prompt/completion lines may carry "tools" (a list of tool
// definitions, or that list as JSON text) for the template; assistant messages may carry
// "tool_calls" (function.arguments an object or JSON text, as OpenAI sends it), "tool" messages
// the results. Chat turns are located by rendering the conversation prefix by prefix, so the
// template must be prefix-stable (checked: an Error names the turn where it is not). Whitespace a
// template writes after an end token ("<|im_end|>\n") stays out of the loss: it is never generated.
//
// A bad line is an Error "FILE:LINE: FIELD: what is wrong"; nothing is skipped silently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/text.h"

namespace todae {

struct SftOptions {
  int max_length = 1024;    // tokens per example; longer ones are truncated (counted in the report)
  bool loss_all = false;    // --loss all: loss on every token (chat and prompt/completion lines)
  bool add_eos = true;      // append eos_id to string prompt/completion and text lines (not twice)
  // Jinja, the model's own (LoadedModel::chat_template; the server falls back to
  // default_chat_template() for todae's tokenizers). Empty: a messages line is an Error.
  std::string chat_template;
  std::string bos_token, eos_token;  // texts the template may use
  int eos_id = -1;  // -1: the id of eos_token, if any (an Error only when add_eos needs it)
};

// One example: ids[n] and, per position, whether predicting ids[n] counts in the loss
// (loss[0] is always 0: nothing predicts the first token).
struct SftExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;
  std::string source;  // "FILE:LINE"
};

struct SftReport {
  int64_t lines = 0, examples = 0, tokens = 0, loss_tokens = 0;
  int64_t truncated = 0;  // examples cut to max_length (kept or dropped)
  int64_t dropped = 0;    // examples with no loss token left after truncation (listed in `notes`)
  std::vector<std::string> notes;  // one line per dropped example: "FILE:LINE: why"
  std::string summary() const;     // one human line
};

// Reads every file (JSONL; blank lines ignored). Errors name FILE:LINE and the field; an empty
// file is an Error. *report is filled from zero. String parts are tokenized as Hugging Face does
// (the post-processor, e.g. a bos, on the prompt or text); rendered chat text without it, with
// special tokens in it read as their ids (what inference does with a rendered prompt).
std::vector<SftExample> load_sft_jsonl(const std::vector<std::string>& files, const Tokenizer& tok,
                                       const SftOptions& opt, SftReport* report = nullptr);
// The same for one file's contents held in memory (`name` is what errors call it).
std::vector<SftExample> load_sft_jsonl_text(std::string_view data, const std::string& name, const Tokenizer& tok,
                                            const SftOptions& opt, SftReport* report = nullptr);

// A batch of rows [B, T]: inputs and targets (target -1 = no loss; the next token of the same
// example otherwise), and for packed rows the document lengths of each row (see model.h's Packing).
struct SftBatch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs, targets;  // [B*T]
  std::vector<std::vector<int>> docs;    // [B]; empty when not packed
  int64_t loss_tokens = 0;
};

// Groups examples into batches of at most `batch_tokens` tokens (B·T with T the longest row of the
// batch, rounded up to a multiple of 8, at most max_length). order: the examples' indices in the
// order to use (an epoch's shuffle). packing: short examples share rows (first fit, in order)
// with document boundaries recorded; otherwise one example per row, padded. Padding: input 0,
// target -1. Packed rows are all T = max_length long, or the longest row rounded up to 8 when all
// are shorter; a batch has batch_tokens / T rows (the last may have fewer). A batch always holds
// at least one row. Examples without a loss token get no row. Deterministic.
std::vector<SftBatch> make_sft_batches(const std::vector<SftExample>& ex, const std::vector<size_t>& order,
                                       int batch_tokens, int max_length, bool packing);

}  // namespace todae
