#!/usr/bin/python3
"""Question/answer records from the Debian FAQ (debian-faq-ko, debian-faq): every section whose title
is a question becomes {id, question_ko, answer_ko[, question_en, answer_en]} (JSON lines), matched to
the English FAQ by the section anchor id.

usage: faqqa.py KO_FAQ_DIR EN_FAQ_DIR OUT.jsonl
"""
import html
import json
import os
import re
import sys
from textlib import has_hangul, log, squash

SECTION = re.compile(r'<h[2-4] class="title"><a id="([^"]+)"></a>(.*?)</h[2-4]>', re.S)
TAG = re.compile(r'<[^>]+>')


def text(fragment):
    return squash(html.unescape(TAG.sub(' ', fragment)))


def sections(path):
    parts = SECTION.split(open(path, encoding='utf-8', errors='replace').read())
    out = {}
    for i in range(1, len(parts) - 2, 3):
        anchor, title, body = parts[i], parts[i + 1], parts[i + 2]
        body = body.split('<div class="section"')[0]          # stop at the first subsection
        q = re.sub(r'^[\d.]+\s*', '', text(title))
        a = text(body)
        if q.endswith('?') and len(a) > 20:
            out[anchor] = (q, a)
    return out


ko_dir, en_dir, out_path = sys.argv[1:4]
n = 0
with open(out_path, 'w', encoding='utf-8') as f:
    for fn in sorted(os.listdir(ko_dir)):
        if not fn.endswith('.ko.html'):
            continue
        base = fn[:-len('.ko.html')]
        en_file = next((os.path.join(en_dir, c) for c in (base + '.en.html', base + '.html')
                        if os.path.exists(os.path.join(en_dir, c))), None)
        en = sections(en_file) if en_file else {}
        for anchor, (q, a) in sections(os.path.join(ko_dir, fn)).items():
            if not has_hangul(q):
                continue
            rec = {'id': f'{base}#{anchor}', 'question_ko': q, 'answer_ko': a}
            if anchor in en:
                rec['question_en'], rec['answer_en'] = en[anchor]
            f.write(json.dumps(rec, ensure_ascii=False) + '\n'); n += 1
log(f'qa records {n}')
