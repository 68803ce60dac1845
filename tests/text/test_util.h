#pragma once

#include <string>
#include <unistd.h>

#include "base/base.h"

namespace todae::test {

// A fresh temporary folder per test, removed at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/todae-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& name, const std::string& content) const {
    std::string p = path + "/" + name;
    write_file_atomic(p, content);
    return p;
  }
};

// A small Korean + English corpus with repeated phrases, enough to learn a few hundred merges.
inline std::string sample_corpus() {
  const char* lines[] = {
      "이 패키지는 리눅스에서 사용할 수 있습니다. 설치하려면 다음 명령을 실행하십시오.",
      "대한민국의 수도는 서울입니다. 서울에는 많은 사람들이 살고 있습니다.",
      "문서를 저장하려면 파일 메뉴에서 저장을 선택할 수 있습니다.",
      "This package provides the shared library for the 2026 release.",
      "You can install it with apt-get install todae, and it's free software.",
      "한국어 토크나이저는 조사와 어미를 단어에 붙여서 학습합니다.",
      "GPU를 사용하면 학습이 빨라집니다. CPU에서도 실행할 수 있습니다.",
      "漢字와 한글을 함께 쓰는 문서도 있습니다. 1,234,567원입니다.",
  };
  std::string s;
  for (int r = 0; r < 40; ++r)
    for (const char* l : lines) s += std::string(l) + (r % 3 == 0 ? "\n\n" : "\n");
  return s;
}

}  // namespace todae::test
