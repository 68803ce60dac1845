#!/usr/bin/env python3
"""Regenerates the interop test texts in this folder (mixed.txt, special.txt,
korean.txt, bom_start.txt, empty.txt).

The texts are committed; this script only documents exactly which (invalid)
bytes they contain and lets you rebuild them:  python3 make_texts.py
Output is deterministic.
"""
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))


def u(s: str) -> bytes:
    return s.encode("utf-8")


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


# ---------------------------------------------------------------- mixed.txt
parts = []
add = parts.append

add(u(
    "# todae 토크나이저 상호운용 시험 문서 (mixed.txt)\n"
    "\n"
    "오늘은 2026년 11월 27일 금요일입니다. 서울의 기온은 영하 3.5도였고, 점심값으로 1,234,567원을 "
    "썼다는 건 물론 농담이에요. 우리는 한국어를 먼저 생각하는 파운데이션 모델을 만들고 있습니다. "
    "토크나이저가 조사(은/는/이/가/을/를/에게/에서/으로/부터/까지/처럼)를 어떻게 나누는지가 중요해요. "
    "예를 들어 \"GPU가\", \"API를\", \"C++로\", \"Python에서\", \"2026년에는\"처럼 영어·숫자 뒤에 "
    "조사가 붙는 경우가 많습니다.\n"
    "漢字(한자)도 섞어 씁니다: 大韓民國, 國語, 學校, 先生님께서 말씀하셨다. 韓國語と日本語.\n"
    "친구가 ㅋㅋㅋㅋㅋ 하고 웃더니 ㅠㅠ ㅎㅎ ㄱㄱ ㅇㅇ 라고 답했다. ㄴㄴ 그건 아니지~\n"
    "가격표: 3,000원 / 12,500원 / 99,999,999원 / ₩1,000 / 약 1.5억 원 / 0.001%\n"
    "전화번호 010-1234-5678, 우편번호 06236, 주민번호 같은 건 절대 넣지 마세요!!!\n"
    "띄어쓰기를안하고길게쓴문장도토큰화가잘되어야합니다그렇지않으면곤란해요\n"
    "\n"
))

add(u(
    "## English\n"
    "I'll be there at 10:30, but don't wait for me. IT'S FINE, WE'VE DONE THIS BEFORE; "
    "she'd said they'RE ready and you'LL see. It’s a curly apostrophe (U+2019), not '.\n"
    "The quick brown fox jumps over the lazy dog. McDonald's iPhone HTTPServer XMLHttpRequest "
    "camelCaseWord snake_case_word SCREAMING_CASE kebab-case-word ABCdef abcDEF.\n"
    "Numbers: 1234567890 12345678901234567890 3.14159265358979 -42 +7 1e-9 0x1F 0b1010 "
    "1,000,000 2nd 3rd 4th 100% 50°C 5km/h.\n"
    "Punctuation runs: ... ?!?! !!! ??? --- === *** ### /// \\\\\\ ~~~ ((( ))) [[[ ]]] {{{ }}} "
    "<<<>>> :::;;; ,,,,, '''''' \"\"\"\"\"\" ```code``` ~!@#$%^&*()_+-=[]{}|;':\",./<>?\n"
    "URLs: https://example.com/path/to/page?query=1&lang=ko#section-2 and "
    "http://localhost:8080/api/v1/tokenize, mailto:dev@todae.ai, ftp://files.example.org/a_b-c.tar.gz\n"
    "\n"
))

add(u(
    "## Code (C++)\n"
    "#include <string>\n"
    "#include <vector>\n"
    "\n"
    "namespace todae {\n"
    "// 주석: 토큰 id 목록을 반환합니다\n"
    "std::vector<int> encode(const std::string& text) {\n"
    "    std::vector<int> ids;\n"
    "    for (size_t i = 0; i < text.size(); ++i) {\n"
    "        if (text[i] == ' ') {   // space\n"
    "            ids.push_back(220);\n"
    "        } else if (text[i] == '\\t') {\n"
    "            ids.push_back(197);\n"
    "        }\n"
    "    }\n"
    "    return ids;  /* done */\n"
    "}\n"
    "}  // namespace todae\n"
    "\n"
))

# Python with 4-space indentation, tab-indented lines and CRLF line endings.
add(u("## Code (Python, CRLF line endings)\r\n"))
add(u(
    "def tokenize(text: str) -> list[int]:\r\n"
    "    \"\"\"Return token ids.\"\"\"\r\n"
    "    ids = []\r\n"
    "    for ch in text:\r\n"
    "        if ch.isspace():\r\n"
    "            ids.append(0)        # whitespace\r\n"
    "        else:\r\n"
    "            ids.append(ord(ch))\r\n"
    "    return ids\r\n"
    "\r\n"
))
add(u(
    "class Foo:\n"
    "\tdef bar(self):\n"
    "\t\treturn {\"키\": \"값\", 'n': 3}\t# tab-indented\n"
    "\t \tmixed = [1, 2,\t3]  \t  \n"
    "x = 1    +    2          # runs of spaces\n"
    "                                        \n"   # 40 spaces then newline
    "\n\n\n"
    "if __name__ == \"__main__\":\n"
    "    print(f\"{tokenize('안녕하세요')!r:>20}\")\n"
    "\n"
))

add(u(
    "## Emoji\n"
    "좋아요 👍 👍🏽 👍🏿 박수 👏🏻👏🏼 가족 👨‍👩‍👧‍👦 무지개깃발 🏳️‍🌈 해적 🏴‍☠️ 국기 🇰🇷🇯🇵🇺🇸 "
    "키캡 1️⃣ #️⃣ 하트 ❤️ ❤ 🫶 개발자 👩🏻‍💻 🧑‍🔬 얼굴 😀😂🤣🥲 🙏 ✨🔥💯\n"
    "\n"
))

add(u(
    "## 日本語 / 中文\n"
    "日本語のテキストも含めます。東京は今日も晴れです。カタカナ、ひらがな、ｶﾀｶﾅ（半角）。ラーメン々。\n"
    "中文测试：我们正在构建一个分词器。繁體中文：我們正在構建一個分詞器。標點符號，「引號」、『雙引號』。\n"
    "\n"
))

add(u(
    "## Latin, Greek, Cyrillic, others\n"
    "Café naïve résumé Ångström Zürich Straße ŒUVRE façade jalapeño São Paulo Łódź İstanbul "
    "ǅemal ﬁnance ﬂow Ⅻ ½ ² ① ٣٤٥ १२३ ١٢٣ １２３ 𝟙𝟚𝟛.\n"
    "Ελληνικά κείμενα, Русский текст, Українська мова, עברית, العربية, हिन्दी भाषा, ภาษาไทย, "
    "Tiếng Việt có dấu.\n"
    "Spaces: non-breaking[\u00a0]nbsp, ideographic[\u3000]space, thin[\u2009]space, "
    "line sep[\u2028]here, next-line[\u0085]here, zero-width[\u200b]space, ZWJ[\u200d] ZWNJ[\u200c], "
    "word\u2060joiner, soft\u00adhyphen, mid-text BOM[\ufeff]here, "
    "Mongolian vowel separator (Cf since Unicode 6.3, not White_Space)[\u180e]'The x \u180ey.\n"
    "Letters new in Unicode 15.0: \U00031350's \U00011f04's \U0001e030's (CJK Ext H, Kawi, Cyrillic modifier).\n"
    "Controls: tab[\t] vtab[\x0b] formfeed[\x0c] bell[\x07] esc[\x1b] lone-CR[\r]after-CR del[\x7f].\n"
    "\n"
))

# NFD / compatibility / singleton decompositions: matter for the NFC normalizer (qwen3).
add(u("## Normalization\n"))
add(u("NFD 한글: " + nfd("한국어 자모 분해 테스트입니다. 읽기 쉬운 글") + "\n"))
add(u("NFD e-acute: " + nfd("café résumé é") + " vs NFC: café résumé é\n"))
add(u("Old Hangul jamo (no composition): \u1112\u119e\u11ab \u1100\u1161\u11f0 "
      "half-width ﾡﾢ compat jamo ㄱㅏ\n"))
add(u("Compatibility ideographs: \uf900\uf901\ufa0e  Angstrom sign \u212b  Ohm sign \u2126  "
      "Kelvin \u212a  combining-only \u0301\u0308 a\u0323\u0302\n"))
add(u("\n"))

# Invalid UTF-8: each group is surrounded by ASCII so the replacement boundaries are visible.
add(u("## Invalid UTF-8 bytes\n"))
add(u("lone continuation [") + b"\x80" + u("] [") + b"\xbf\xbf" + u("]\n"))
add(u("truncated 2-byte [") + b"\xc3" + u("] 3-byte [") + b"\xe3\x81" + u("] 4-byte [") + b"\xf0\x9f\x98" + u("]\n"))
add(u("overlong [") + b"\xc0\xaf" + u("] [") + b"\xe0\x80\xaf" + u("] [") + b"\xc1\xbf" + u("] [") + b"\xf0\x80\x80\xaf" + u("]\n"))
add(u("surrogates [") + b"\xed\xa0\x80" + u("] [") + b"\xed\xbf\xbf" + u("] [") + b"\xed\xa0\xbd\xed\xb8\x80" + u("]\n"))
add(u("F5+ and > U+10FFFF [") + b"\xf5\x80\x80\x80" + u("] [") + b"\xf4\x90\x80\x80" + u("] [") + b"\xff" + u("] [") + b"\xfe\xfe" + u("] [") + b"\xf8\x88\x80\x80\x80" + u("]\n"))
add(u("inside Korean 한") + b"\xea\xb5" + u("국") + b"\x80" + u("어 and emoji 😀") + b"\xf0\x9f" + u("😂\n"))
add(u("NUL byte [") + b"\x00" + u("] and text after it.\n"))
add(u("\n"))

add(u(
    "## Repetition\n"
    + "ㅋ" * 60 + "\n"
    + "=" * 300 + "\n"
    + "a" * 280 + "\n"
    + "가나다라마바사" * 12 + "\n"
    + "0123456789" * 8 + "\n"
    + "         ." * 6 + "\n"
    "끝. The end.  \n"
    "   trailing spaces and no newline at end   "
))

mixed = b"".join(parts)
with open(os.path.join(HERE, "mixed.txt"), "wb") as f:
    f.write(mixed)

# ---------------------------------------------------------------- korean.txt (valid UTF-8 only)
korean = (
    "대한민국의 수도는 서울특별시이다. 한국어는 교착어로서 체언 뒤에 조사가 붙고, 용언의 어간 뒤에 "
    "어미가 붙어 문법적 관계를 나타낸다. 예컨대 '학생이 책을 읽었다'에서 '이'는 주격 조사, '을'은 "
    "목적격 조사이며, '-었-'은 과거 시제 선어말 어미, '-다'는 종결 어미이다.\n"
    "2025년 기준 인구는 약 5,168만 명이고, 국내총생산(GDP)은 2조 달러 안팎이다.\n"
    "\"안녕하세요!\" 그녀가 말했다. \"오랜만이에요… 잘 지냈어요?\"\n"
    "  들여쓰기된 줄과\t탭이 섞인 줄,\n\n\n빈 줄이 여러 개 있는 경우도 있다.\n"
    "맞춤법: 됐다/됬다, 안 돼/안 되, 왠지/웬지, 몇일/며칠 — 헷갈리기 쉽다ㅎㅎ.\n"
    "괄호(括弧)와 한자어(漢字語), 그리고 외래어(컴퓨터, 소프트웨어, 인공지능 AI)가 섞인다.\n"
    "뷁 똠방각하 햏 쀍 꿟 — 드물게 쓰이는 음절들.\n"
)
with open(os.path.join(HERE, "korean.txt"), "wb") as f:
    f.write(u(korean))

# ---------------------------------------------------------------- special.txt
special = (
    "Qwen chat: <|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n안녕?<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n</think>\n답변입니다<|im_end|><|endoftext|>\n"
    "Llama3: <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n<|end_of_text|> <|reserved_special_token_5|>\n"
    "Gemma3: <bos><start_of_turn>user\n한국어로 답해줘<end_of_turn>\n<start_of_turn>model\n네!<end_of_turn><eos>"
    " <pad><unk> <mask> [multimodal] <unused0><unused42> <start_of_image><image_soft_token><end_of_image>\n"
    "DeepSeek: <｜begin▁of▁sentence｜>You are DeepSeek.<｜User｜>질문<｜Assistant｜>대답<｜end▁of▁sentence｜>"
    " <｜▁pad▁｜><｜place▁holder▁no▁0｜>\n"
    "OpenAI: <|endoftext|>text<|endofprompt|> <|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>  pass\n"
    "Look-alikes that must stay plain text: <|im_start <im_start|> <|IM_START|> < |endoftext| > "
    "<bos <eos > <|begin_of_text| <｜begin of sentence｜> <|endoftext|<|endoftext|>>\n"
    "Adjacent: x<|im_end|>y<|endoftext|>z  <|im_start|><|im_start|>  spaced <|im_end|>  out\n"
)
with open(os.path.join(HERE, "special.txt"), "wb") as f:
    f.write(u(special))

# ---------------------------------------------------------------- train.txt
# Valid-UTF-8 training corpus for `todae tokenizer train` (~40 KB): the valid texts above plus
# deterministic pseudo-random Korean/English/code "sentences" so that a 2000-entry vocabulary
# can actually be filled.
state = 20261127


def rnd(n: int) -> int:
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return (state >> 33) % n


ko_words = ("우리 나라 사람 시간 문제 사회 경제 정부 대학 학생 선생님 회사 기술 모델 데이터 토큰 언어 "
            "한국어 영어 컴퓨터 인공지능 학습 추론 서울 부산 오늘 내일 어제 정말 아주 조금 많이 함께").split()
ko_particles = "은 는 이 가 을 를 에 에서 으로 로 와 과 의 도 만 까지 부터 에게 처럼 보다".split()
ko_endings = ("입니다. 했다. 합니다. 했어요. 하겠습니다. 이다. 였다. 해요? 할까? 하자! 되었다. "
              "할 수 있다. 하지 않았다.").split(" ")
en_words = ("the of and to in is that for it with as was on be by this are from at or an have not "
            "model token data train encode decode vocabulary merge byte pair Korean language GPU "
            "don't I'll it's we've they're can't won't").split()
code_bits = ["for (int i = 0; i < n; ++i) {", "    return x;", "}", "def f(x):", "\tif x:",
             "        pass", "std::vector<int> v;", "auto it = m.find(k);", "print(f'{x!r}')",
             "x += 1  # increment", "const char* s = \"문자열\";", "// TODO: 최적화"]
lines = [mixed.decode("utf-8", "replace").replace("\x00", ""), korean, special]  # no NUL: keep the train case about BPE
while sum(len(s.encode()) for s in lines) < 40000:
    kind = rnd(10)
    if kind < 5:
        words = []
        for _ in range(3 + rnd(8)):
            w = ko_words[rnd(len(ko_words))]
            if rnd(3):
                w += ko_particles[rnd(len(ko_particles))]
            words.append(w)
        words.append(ko_words[rnd(len(ko_words))] + ko_endings[rnd(len(ko_endings))])
        if rnd(4) == 0:
            words.insert(rnd(len(words)), f"{1 + rnd(2030)}년")
        lines.append(" ".join(words) + "\n")
    elif kind < 8:
        words = [en_words[rnd(len(en_words))] for _ in range(4 + rnd(10))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + (".\n" if rnd(2) else "!\n"))
    else:
        lines.append("\n".join(code_bits[rnd(len(code_bits))] for _ in range(2 + rnd(4))) + "\n")
with open(os.path.join(HERE, "train.txt"), "wb") as f:
    f.write(u("".join(lines)))

# ---------------------------------------------------------------- bom_start.txt / empty.txt
with open(os.path.join(HERE, "bom_start.txt"), "wb") as f:
    f.write(b"\xef\xbb\xbf" + u("BOM으로 시작하는 파일. Buffer.toString('utf8') keeps the BOM.\n"))
with open(os.path.join(HERE, "empty.txt"), "wb") as f:
    f.write(b"")

print(f"mixed.txt {len(mixed)} bytes, korean.txt {len(u(korean))} bytes, special.txt {len(u(special))} bytes")
