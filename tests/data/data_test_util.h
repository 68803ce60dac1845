#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "base/base.h"
#include "data/data.h"
#include "text/test_util.h"
#include "text/text.h"

namespace todae::test {

// A small todae tokenizer trained on the sample corpus, written to DIR/tok.
inline std::string make_tokenizer(const TempDir& t, int vocab = 400) {
  std::string corpus = t.file("tok_corpus.txt", sample_corpus());
  TokenizerTrainOptions o;
  o.inputs = {corpus};
  o.vocab_size = vocab;
  o.progress = false;
  o.threads = 1;
  Tokenizer tok = train_bpe(o);
  std::string dir = t.path + "/tok";
  make_directories(dir);
  save_tokenizer(tok, dir);
  return dir;
}

// Documents with varied Korean and English text, numbered so they differ.
inline std::vector<std::string> sample_docs(int n) {
  const char* parts[] = {"이 패키지는 리눅스에서 사용할 수 있습니다.", "This package provides the shared library.",
                         "대한민국의 수도는 서울입니다.", "You can install it with apt-get.",
                         "한국어 토크나이저는 조사와 어미를 단어에 붙여서 학습합니다.", "GPU를 사용하면 학습이 빨라집니다."};
  std::vector<std::string> docs;
  for (int i = 0; i < n; ++i) {
    std::string d;
    int lines = 1 + i % 4;
    for (int l = 0; l < lines; ++l) d += cat(parts[(i + l * 3) % 6], " 번호 ", i, "-", l, l + 1 < lines ? "\n" : "");
    docs.push_back(d);
  }
  return docs;
}

inline std::string join_docs(const std::vector<std::string>& docs) {
  std::string s;
  for (const auto& d : docs) s += d + "\n\n";
  return s;
}

inline std::string run_cmd(const std::string& cmd, int* rc) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return out;
}

inline CommonOptions quiet_common(const std::string& out, int threads = 1) {
  CommonOptions co;
  co.output = out;
  co.threads = threads;
  co.progress = false;
  return co;
}

// All documents of a stage output folder, in order.
inline std::vector<Doc> read_docs(const std::string& dir) {
  InputOptions in;
  in.inputs = {dir};
  std::vector<Doc> out;
  read_documents(in, [&](Doc& d) { out.push_back(d); });
  return out;
}

}  // namespace todae::test
