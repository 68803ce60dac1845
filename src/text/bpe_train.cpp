// Byte-level BPE training: count pre-tokenized words in parallel, then learn merges with
// incremental pair counts and a lazy max-heap (each merge touches only the words that contain it).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "base/base.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace todae {

std::vector<std::string> default_special_tokens() {
  std::vector<std::string> s = {"<|bos|>",  "<|eos|>", "<|pad|>",       "<|system|>",     "<|user|>",
                                "<|assistant|>", "<|tool|>", "<|end|>", "<|tool_call|>", "<|/tool_call|>",
                                "<|image_start|>", "<|image_end|>"};
  for (int i = 0; i < 64; ++i) s.push_back(cat("<|image_", i, "|>"));  // reserved for image patches
  return s;
}

std::string default_chat_template() {
  // Plain Jinja that every renderer (transformers, @huggingface/jinja, llama.cpp's minja) accepts.
  return "{{- bos_token -}}\n"
         "{%- if tools -%}\n"
         "<|system|>You can call these tools. To call one, answer with <|tool_call|>{\"name\": ..., \"arguments\": {...}}<|/tool_call|>.\n"
         "{%- for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{%- endfor -%}\n"
         "<|end|>\n"
         "{%- endif -%}\n"
         "{%- for message in messages -%}\n"
         "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] -%}\n"
         "{{- raise_exception('unknown role: ' + message['role']) -}}\n"
         "{%- endif -%}\n"
         "<|{{ message['role'] }}|>\n"
         "{%- if message['content'] is string -%}{{ message['content'] }}\n"
         "{%- elif message['content'] -%}{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}\n"
         "{%- endif -%}\n"
         "{%- if message['tool_calls'] -%}{%- for call in message['tool_calls'] -%}\n"
         "<|tool_call|>{{ {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson }}<|/tool_call|>\n"
         "{%- endfor -%}{%- endif -%}\n"
         "<|end|>\n"
         "{%- endfor -%}\n"
         "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}\n";
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using WordCounts = std::unordered_map<std::string, uint64_t>;

struct Chunk {
  size_t file;
  size_t begin, end;
};

bool is_jsonl(const std::string& path) {
  auto ends = [&](const char* s) {
    size_t n = std::strlen(s);
    return path.size() >= n && path.compare(path.size() - n, n, s) == 0;
  };
  return ends(".jsonl") || ends(".ndjson");
}

// Cuts a file into ~4 MB chunks at line ends so threads can share big files.
void chunk_file(size_t fi, std::string_view data, std::vector<Chunk>* out) {
  const size_t target = 4 << 20;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t end = std::min(data.size(), pos + target);
    if (end < data.size()) {
      size_t nl = data.find('\n', end);
      end = nl == std::string_view::npos ? data.size() : nl + 1;
    }
    out->push_back({fi, pos, end});
    pos = end;
  }
}

void count_text(std::string_view text, int max_words, WordCounts& counts, std::vector<Span>& spans) {
  std::string norm = unicode::nfc(text);
  pretokenize_korean(norm, max_words, &spans);
  for (const Span& s : spans) ++counts[norm.substr(s.begin, s.end - s.begin)];
}

// Text of a chunk: the chunk itself, or the field of each JSONL record in it.
void count_chunk(const std::string& path, std::string_view file_data, const Chunk& c, const std::string& field,
                 int max_words, WordCounts& counts, uint64_t* docs) {
  std::vector<Span> spans;
  std::string_view data = file_data.substr(c.begin, c.end - c.begin);
  if (!is_jsonl(path)) {
    count_text(data, max_words, counts, spans);
    // Documents are separated by blank lines in plain text.
    for (size_t p = 0; (p = data.find("\n\n", p)) != std::string_view::npos; p += 2) ++*docs;
    return;
  }
  size_t line_no = std::count(file_data.begin(), file_data.begin() + long(c.begin), '\n');
  for (size_t pos = 0; pos < data.size();) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string_view::npos) eol = data.size();
    std::string_view line = data.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      fail(path, ":", line_no, ": malformed JSON line");
    }
    if (!j.is_object() || !j.contains(field))
      fail(path, ":", line_no, ": no field '", field, "' (choose another with --jsonl-field)");
    if (!j[field].is_string()) fail(path, ":", line_no, ": field '", field, "' is not a string");
    count_text(j[field].get_ref<const std::string&>(), max_words, counts, spans);
    ++*docs;
  }
}

// Counts pre-tokenized words over all inputs on all threads. Bounded memory: when a table grows
// past its budget, words seen once are dropped (they almost never reach a merge).
WordCounts count_words(const TokenizerTrainOptions& opt, int max_words, TokenizerTrainStats* st, const char* label) {
  std::vector<std::string> files = list_input_files(opt.inputs);
  if (files.empty()) fail("no input files");
  std::vector<std::unique_ptr<MappedFile>> maps;
  std::vector<Chunk> chunks;
  uint64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    maps.push_back(std::make_unique<MappedFile>(files[i]));
    if (maps.back()->size > 0 && !is_jsonl(files[i]) && std::memchr(maps.back()->data, 0, std::min<size_t>(maps.back()->size, 4096)))
      fail(files[i], ": looks like a binary file (NUL bytes), not text");
    chunk_file(i, maps.back()->view(), &chunks);
    total += maps.back()->size;
  }
  int threads = opt.threads > 0 ? opt.threads : default_threads();
  threads = std::max(1, std::min<int>(threads, int(chunks.size())));
  std::vector<WordCounts> tables(static_cast<size_t>(threads));
  std::vector<uint64_t> docs(static_cast<size_t>(threads), 0);
  size_t budget = std::max<size_t>(opt.max_unique_words / size_t(threads), 1000);
  Progress progress(label, total);
  std::atomic<size_t> next{0};
  parallel_for(size_t(threads), threads, [&](size_t t) {
    for (size_t k; (k = next.fetch_add(1)) < chunks.size();) {
      const Chunk& c = chunks[k];
      count_chunk(files[c.file], maps[c.file]->view(), c, opt.jsonl_field, max_words, tables[t], &docs[t]);
      if (tables[t].size() > budget) std::erase_if(tables[t], [](const auto& kv) { return kv.second < 2; });
      if (opt.progress) progress.add(c.end - c.begin);
    }
  });
  progress.finish();
  WordCounts all = std::move(tables[0]);
  for (size_t t = 1; t < tables.size(); ++t)
    for (auto& [w, n] : tables[t]) all[w] += n;
  if (st) {
    st->bytes = total;
    st->documents = 0;
    for (auto d : docs) st->documents += d;
    st->documents += files.size();
  }
  return all;
}

struct Word {
  uint32_t off, len;
  uint64_t count;
};

struct Learner {
  std::vector<int32_t> syms;
  std::vector<Word> words;
  std::vector<std::string>* tokens;           // bytes of every token so far
  std::vector<std::pair<int32_t, int32_t>>* merges;
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;

  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  struct Entry {
    int64_t count;
    uint64_t key;
    bool operator<(const Entry& o) const { return count != o.count ? count < o.count : key > o.key; }
  };
  std::priority_queue<Entry> heap;

  void add_word(const std::vector<int32_t>& s, uint64_t count) {
    words.push_back({uint32_t(syms.size()), uint32_t(s.size()), count});
    syms.insert(syms.end(), s.begin(), s.end());
  }

  void init() {
    pair_count.reserve(words.size());
    for (uint32_t w = 0; w < words.size(); ++w) {
      const Word& wd = words[w];
      for (uint32_t i = 0; i + 1 < wd.len; ++i) {
        uint64_t k = key(syms[wd.off + i], syms[wd.off + i + 1]);
        pair_count[k] += int64_t(wd.count);
        auto& v = pair_words[k];
        if (v.empty() || v.back() != w) v.push_back(w);
      }
    }
    for (auto& [k, c] : pair_count) heap.push({c, k});
  }

  // Learns up to n merges; returns how many were learned.
  size_t learn(size_t n, uint64_t min_frequency, Progress* progress) {
    std::vector<uint32_t> seen(words.size(), UINT32_MAX);
    std::vector<uint64_t> touched;
    size_t done = 0;
    while (done < n && !heap.empty()) {
      Entry top = heap.top();
      heap.pop();
      auto it = pair_count.find(top.key);
      int64_t cur = it == pair_count.end() ? 0 : it->second;
      if (cur != top.count) {
        if (cur > 0) heap.push({cur, top.key});
        continue;
      }
      if (cur < int64_t(min_frequency)) break;
      int32_t a = int32_t(top.key >> 32), b = int32_t(uint32_t(top.key));
      int32_t nid = int32_t(tokens->size());
      tokens->push_back((*tokens)[size_t(a)] + (*tokens)[size_t(b)]);
      merges->push_back({a, b});
      touched.clear();
      auto change = [&](int32_t x, int32_t y, int64_t delta, uint32_t w) {
        uint64_t k = key(x, y);
        int64_t& c = pair_count[k];
        c += delta;
        if (delta > 0) {
          auto& v = pair_words[k];
          if (v.empty() || v.back() != w) v.push_back(w);
          touched.push_back(k);
        }
      };
      std::vector<uint32_t> where = std::move(pair_words[top.key]);
      pair_words.erase(top.key);
      for (uint32_t w : where) {
        if (seen[w] == done) continue;
        seen[w] = uint32_t(done);
        Word& wd = words[w];
        int32_t* s = syms.data() + wd.off;
        int64_t c = int64_t(wd.count);
        uint32_t j = 0;
        for (uint32_t i = 0; i < wd.len;) {
          if (i + 1 < wd.len && s[i] == a && s[i + 1] == b) {
            if (j > 0) {
              change(s[j - 1], a, -c, w);
              change(s[j - 1], nid, c, w);
            }
            if (i + 2 < wd.len) {
              change(b, s[i + 2], -c, w);
              change(nid, s[i + 2], c, w);
            }
            s[j++] = nid;
            i += 2;
          } else {
            s[j++] = s[i++];
          }
        }
        wd.len = j;
      }
      pair_count.erase(top.key);
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (uint64_t k : touched) {
        auto pc = pair_count.find(k);
        if (pc != pair_count.end() && pc->second > 0) heap.push({pc->second, k});
      }
      ++done;
      if (progress) progress->set(done);
    }
    return done;
  }
};

void fill_learner(Learner& L, const WordCounts& counts, const std::function<void(const std::string&, std::vector<int32_t>*)>& symbols) {
  // Sorted words make the result independent of thread count and hash order.
  std::vector<const std::pair<const std::string, uint64_t>*> order;
  order.reserve(counts.size());
  for (const auto& kv : counts) order.push_back(&kv);
  std::sort(order.begin(), order.end(), [](auto* x, auto* y) { return x->first < y->first; });
  std::vector<int32_t> s;
  for (auto* kv : order) {
    symbols(kv->first, &s);
    if (s.size() >= 2) L.add_word(s, kv->second);
  }
}

}  // namespace

Tokenizer train_bpe(const TokenizerTrainOptions& opt, TokenizerTrainStats* stats) {
  TokenizerTrainStats local;
  TokenizerTrainStats& st = stats ? *stats : local;
  std::vector<std::string> specials = default_special_tokens();
  for (const auto& s : opt.extra_special) {
    if (s.empty()) fail("--special: empty token");
    if (std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
  }
  int64_t min_vocab = 256 + int64_t(specials.size());
  if (opt.vocab_size < min_vocab)
    fail("--vocab-size ", opt.vocab_size, " is too small: it must be at least ", min_vocab, " (256 bytes + ",
         specials.size(), " special tokens)");
  if (opt.superword_fraction < 0 || opt.superword_fraction >= 1) fail("--superword must be in [0, 1)");
  if (opt.max_superword_words < 2 || opt.max_superword_words > 64) fail("--max-superword-words must be in [2, 64]");

  auto t0 = Clock::now();
  WordCounts counts = count_words(opt, 1, &st, "counting words");
  if (counts.empty()) fail("the inputs hold no text to train on");
  st.unique_words = counts.size();
  st.seconds_count = since(t0);

  auto impl = std::make_shared<TokenizerImpl>();
  BpeModel& m = impl->model;
  m.byte_level = true;
  for (int b = 0; b < 256; ++b) m.tokens.push_back(std::string(1, char(b)));
  std::vector<std::pair<int32_t, int32_t>> merges;

  size_t total_merges = size_t(opt.vocab_size - min_vocab);
  size_t super_merges = size_t(double(total_merges) * opt.superword_fraction);
  size_t base_merges = total_merges - super_merges;

  auto t1 = Clock::now();
  {
    Learner L;
    L.tokens = &m.tokens;
    L.merges = &merges;
    fill_learner(L, counts, [](const std::string& w, std::vector<int32_t>* s) {
      s->assign(reinterpret_cast<const uint8_t*>(w.data()), reinterpret_cast<const uint8_t*>(w.data()) + w.size());
    });
    counts = WordCounts();
    L.init();
    Progress progress("learning merges", base_merges, "merges");
    st.merges = L.learn(base_merges, opt.min_frequency, opt.progress ? &progress : nullptr);
  }
  auto rebuild_pairs = [&] {
    m.merges = PairMap();
    m.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r)
      m.merges.insert(merges[r].first, merges[r].second, int32_t(r), int32_t(256 + r));
    m.merge_list = merges;
    m.token_to_id.clear();
    for (size_t id = 0; id < m.tokens.size(); ++id) m.token_to_id.emplace(m.tokens[id], int32_t(id));
    m.index_bytes();
  };
  rebuild_pairs();

  int max_words = 1;
  if (super_merges > 0) {
    // Stage 2 (SuperBPE): recount with pieces that span up to max_superword_words words, encode
    // them with the stage-1 merges, and keep merging. Stage-1 merges never cross a word boundary,
    // so applying them to a multi-word piece gives the same tokens as applying them word by word.
    max_words = opt.max_superword_words;
    WordCounts chunks = count_words(opt, max_words, nullptr, "counting superwords");
    Learner L;
    L.tokens = &m.tokens;
    L.merges = &merges;
    fill_learner(L, chunks, [&](const std::string& w, std::vector<int32_t>* s) {
      s->clear();
      bpe_encode_piece(m, w, s);
    });
    chunks = WordCounts();
    L.init();
    Progress progress("learning superword merges", super_merges, "merges");
    st.superword_merges = L.learn(super_merges, opt.min_frequency, opt.progress ? &progress : nullptr);
    rebuild_pairs();
  }
  st.seconds_merge = since(t1);

  // Special tokens follow the learned vocabulary.
  for (const auto& s : specials) {
    int32_t id = int32_t(m.tokens.size());
    m.tokens.push_back(s);
    impl->added.push_back(AddedToken{s, id, true, false, false, false, false});
  }
  m.token_to_id.clear();
  for (size_t id = 0; id < m.tokens.size(); ++id)
    if (size_t(id) < m.tokens.size() - specials.size()) m.token_to_id.emplace(m.tokens[id], int32_t(id));
  // The corpus was NFC-normalised for counting, so the vocabulary holds composed Hangul; encoding
  // itself carries no normalizer, so decode(encode(x)) == x for any bytes (as tiktoken and Llama-3).
  // Text from other sources goes through `todae data clean` (or `encode --nfc`) first.
  PretokenizerStep ko;
  ko.type = PretokenizerStep::kKorean;
  ko.max_words = max_words;
  impl->pretokenizers.push_back(ko);
  PretokenizerStep bl;
  bl.type = PretokenizerStep::kByteLevel;
  bl.add_prefix_space = false;
  bl.use_regex = false;
  impl->pretokenizers.push_back(bl);
  impl->decoders.push_back(DecoderStep{DecoderStep::kByteLevel, "", "", 0, 0, "", false});
  impl->bos_token = "<|bos|>";
  impl->eos_token = "<|eos|>";
  impl->pad_token = "<|pad|>";
  impl->chat_template = default_chat_template();
  impl->name = "trained";
  impl->finish();
  return Tokenizer{impl};
}

}  // namespace todae
