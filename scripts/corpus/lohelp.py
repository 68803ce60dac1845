#!/usr/bin/python3
"""LibreOffice help (Debian libreoffice-help-ko / libreoffice-help-en-us): Korean paragraphs + EN/KO pairs.

usage: lohelp.py KO_HELP_ROOT EN_HELP_ROOT OUT_KO.txt OUT_PAIRS.tsv

Each help page's <p>/<h1..h6> elements carry a stable id; the Korean and English pages share file
names and ids, so pairs are exact. Nested id'd elements also contribute their text to the parent.
One document per page: its Hangul paragraphs not seen on an earlier page.
"""
import os
import sys
from html.parser import HTMLParser
from textlib import DocWriter, PairWriter, has_hangul, log, squash, walk_sorted

ID_TAGS = {'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6'}


class HelpPage(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = {}          # id -> text (first occurrence wins), insertion ordered
        self._open = []         # stack of [tag, id, chunks]
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ('script', 'style'):
            self._hidden += 1
        if tag in ID_TAGS:
            pid = dict(attrs).get('id')
            if pid:
                self._open.append([tag, pid, []])

    def handle_endtag(self, tag):
        if tag in ('script', 'style'):
            self._hidden -= 1
        if self._open and self._open[-1][0] == tag:
            _, pid, chunks = self._open.pop()
            t = squash(''.join(chunks))
            if t and pid not in self.text:
                self.text[pid] = t
            if self._open:
                self._open[-1][2].append(' ' + t + ' ')

    def handle_data(self, data):
        if not self._hidden and self._open:
            self._open[-1][2].append(data)


def parse(path):
    p = HelpPage()
    with open(path, encoding='utf-8', errors='replace') as f:
        p.feed(f.read())
    return p.text


ko_root, en_root, out_ko, out_pairs = sys.argv[1:5]
out, pairs, seen = DocWriter(out_ko), PairWriter(out_pairs), set()
for kp in walk_sorted(ko_root, r'\.html$'):
    rel = os.path.relpath(kp, ko_root)
    ko = parse(kp)
    ep = os.path.join(en_root, rel)
    en = parse(ep) if os.path.exists(ep) else {}
    doc = []
    for pid, k in ko.items():
        if not has_hangul(k):
            continue
        if k not in seen:
            seen.add(k); doc.append(k)
        e = en.get(pid)
        if e is not None and e != k and not has_hangul(e):
            pairs.add(e, k, f'{rel}#{pid}')
    out.doc(doc)
out.close(); pairs.close()
log(f'docs {out.docs}, ko paragraphs {out.paras}, pairs {pairs.n}')
