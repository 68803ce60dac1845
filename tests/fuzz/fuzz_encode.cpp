// Any bytes through a trained tokenizer (superword pre-tokenizer) must round-trip exactly, and
// through a regex-split tokenizer must not crash.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/base.h"
#include "text/text.h"

static todae::Tokenizer& trained() {
  static todae::Tokenizer tok = [] {
    char tmpl[] = "/tmp/todae-fuzz-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string text;
    for (int i = 0; i < 50; ++i)
      text += "이 패키지는 리눅스에서 사용할 수 있습니다. You can install it with apt-get, it's free.\n"
              "漢字와 한글 1,234,567원 😀 tabs\tand  spaces\n\n";
    todae::write_file_atomic(dir + "/c.txt", text);
    todae::TokenizerTrainOptions o;
    o.inputs = {dir + "/c.txt"};
    o.vocab_size = 600;
    o.progress = false;
    o.superword_fraction = 0.2;
    todae::Tokenizer t = todae::train_bpe(o);
    std::system(("rm -rf " + dir).c_str());
    return t;
  }();
  return tok;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  todae::Tokenizer& tok = trained();
  auto ids = todae::encode(tok, text);
  // Lossless for any bytes.
  if (todae::decode(tok, ids) != text) std::abort();
  return 0;
}
