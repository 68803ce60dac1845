// gguf_vocab_check VOCAB.gguf: rebuilds a tokenizer from a GGUF's tokenizer.ggml.* keys (as
// todae does for GGUF models it did not write) and checks it against the test vectors llama.cpp
// ships beside its vocabulary files: VOCAB.gguf.inp (texts separated by "\n__ggml_vocab_test__\n")
// and VOCAB.gguf.out (the expected ids, one line per text). Prints the agreement; exit 1 on any
// difference.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "base/base.h"
#include "formats/gguf.h"
#include "infer/infer_impl.h"
#include "text/text.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_vocab_check VOCAB.gguf\n");
    return 2;
  }
  try {
    const std::string path = argv[1];
    auto f = todae::open_gguf(path);
    todae::Tokenizer tok = todae::load_tokenizer_json(todae::tokenizer_json_from_gguf(*f), path);
    const std::string inp = todae::read_file(path + ".inp"), out = todae::read_file(path + ".out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    for (size_t at = 0;;) {
      size_t next = inp.find(sep, at);
      if (next == std::string::npos) break;
      texts.push_back(inp.substr(at, next - at));
      at = next + sep.size();
    }
    std::istringstream lines(out);
    std::string line;
    int same = 0, total = 0;
    for (const std::string& t : texts) {
      if (!std::getline(lines, line)) break;
      std::vector<int32_t> want;
      std::istringstream ids(line);
      for (int32_t id; ids >> id;) want.push_back(id);
      std::vector<int32_t> got = todae::encode(tok, t);
      total++;
      if (got == want) same++;
      else if (total - same <= 3) std::fprintf(stderr, "  differs: %.60s\n", t.c_str());
    }
    std::printf("%s: %d/%d texts tokenized as llama.cpp's test vectors\n", path.c_str(), same, total);
    return same == total && total > 0 ? 0 : 1;
  } catch (const todae::Error& e) {
    std::fprintf(stderr, "gguf_vocab_check: %s\n", e.what());
    return 1;
  }
}
