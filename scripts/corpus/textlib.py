"""Shared helpers for the corpus extractors (stdlib only, run with Debian's /usr/bin/python3).

Corpus text format: one paragraph (or UI string) per line, a blank line after each document.
Pair format (TSV): english<TAB>korean<TAB>source-id, tabs/newlines inside fields flattened to spaces.
"""
import os
import re
import sys
from html.parser import HTMLParser

HANGUL_RE = re.compile('[\uac00-\ud7a3]')      # precomposed Hangul syllables
LATIN_RE = re.compile('[A-Za-z]')
_WS_RE = re.compile(r'\s+')


def has_hangul(s):
    return HANGUL_RE.search(s) is not None


def squash(s):
    """Collapse every run of whitespace to one space and trim."""
    return _WS_RE.sub(' ', s).strip()


def tsv_field(s):
    return s.replace('\t', ' ').replace('\n', ' ')


def log(*a):
    print(os.path.basename(sys.argv[0]) + ':', *a, file=sys.stderr, flush=True)


def walk_sorted(root, pattern=None):
    """All files under root, sorted by (directory, name); optional regex on the file name."""
    rx = re.compile(pattern) if pattern else None
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if rx is None or rx.search(f):
                out.append((d, f))
    return [os.path.join(d, f) for d, f in sorted(out)]


class DocWriter:
    """Writes documents (lists of paragraphs) in corpus format."""

    def __init__(self, path, append=False):
        self.f = open(path, 'a' if append else 'w', encoding='utf-8')
        self.docs = self.paras = 0

    def doc(self, paras):
        paras = [p for p in paras if p]
        if not paras:
            return
        self.f.write('\n'.join(paras) + '\n\n')
        self.docs += 1
        self.paras += len(paras)

    def close(self):
        self.f.close()


class PairWriter:
    """Writes EN/KO pairs as TSV, dropping exact (en, ko) duplicates. path '-' or None: discard."""

    def __init__(self, path):
        self.f = open(path, 'w', encoding='utf-8') if path and path != '-' else None
        self.seen = set()
        self.n = 0

    def add(self, en, ko, src):
        key = (en, ko)
        if key in self.seen:
            return False
        self.seen.add(key)
        if self.f:
            self.f.write(f'{tsv_field(en)}\t{tsv_field(ko)}\t{src}\n')
        self.n += 1
        return True

    def close(self):
        if self.f:
            self.f.close()


class BlockText(HTMLParser):
    """Block-level text of an HTML page or a Mallard/DocBook XML file.

    Text is collected between block boundaries (paragraphs, headings, list items, table cells,
    Mallard <item>/<desc>, DocBook <para>, ...), whitespace-collapsed, one string per block.
    <script> and <style> are ignored.
    """
    BLOCKS = {'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'li', 'dt', 'dd', 'td', 'th', 'title',
              'caption', 'pre', 'desc', 'para', 'item'}
    BREAK_OPEN = BLOCKS | {'br', 'div', 'section', 'page', 'table', 'tr', 'ul', 'ol', 'dl', 'note',
                           'list', 'terms', 'tree'}
    BREAK_CLOSE = BLOCKS | {'div', 'section', 'page', 'table', 'tr', 'ul', 'ol', 'dl', 'note'}
    HIDDEN = {'script', 'style'}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self._buf, self._hidden = [], [], 0

    def _flush(self):
        t = squash(''.join(self._buf))
        self._buf = []
        if t:
            self.blocks.append(t)

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self._hidden += 1
        if tag in self.BREAK_OPEN and not (tag == 'title' and self._hidden):
            self._flush()

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self._hidden -= 1
        if tag in self.BREAK_CLOSE:
            self._flush()

    def handle_data(self, data):
        if not self._hidden:
            self._buf.append(data)

    @classmethod
    def of_file(cls, path):
        p = cls()
        with open(path, encoding='utf-8', errors='replace') as f:
            p.feed(f.read())
        p.close()
        p._flush()
        return p.blocks
