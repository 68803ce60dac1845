#!/usr/bin/python3
"""Clean prose paragraphs from Mallard help pages (*.page, e.g. GNOME Help in gnome-user-docs).

usage: mallard_prose.py PAGES_DIR OUT.txt [MAX_BYTES [ko|en]]

One document per page (pages in sorted file-name order), one paragraph per line, a blank line
between documents; stops before MAX_BYTES (default 200000) would be exceeded.
Kept: the text of <p> elements outside <info> (credits, licence, revision history) and outside
code/screen/media blocks, whitespace-collapsed, that
  - have at least 20 characters,
  - are mostly Korean: Hangul syllables >= 60 % of the Hangul + Latin letters (ko, the default),
    or English: Latin letters and no Hangul (en, for the untranslated originals in help/C),
  - end like a sentence ('.', '?', '!' optionally followed by a closing quote or bracket),
  - were not already emitted (exact duplicates dropped).
"""
import os
import re
import sys
import xml.etree.ElementTree as ET
from textlib import HANGUL_RE, LATIN_RE, DocWriter, log, squash

SKIP = {'info', 'code', 'screen', 'media', 'synopsis', 'comment'}
SENTENCE_END = re.compile(r'[.?!][)"\'”’」』]*$')


def local(tag):
    return tag.rsplit('}', 1)[-1] if isinstance(tag, str) else ''


JOINERS = {'keyseq': '+', 'guiseq': ' ▸ '}     # <keyseq><key>Ctrl</key><key>L</key></keyseq> -> Ctrl+L


def text_of(el):
    name = local(el.tag)
    if name in JOINERS:
        return JOINERS[name].join(squash(text_of(k)) for k in el if local(k.tag) not in SKIP)
    parts = [el.text or '']
    for kid in el:
        if local(kid.tag) not in SKIP:
            parts.append(text_of(kid))
        parts.append(kid.tail or '')
    return ''.join(parts)


def paragraphs(el):
    name = local(el.tag)
    if name in SKIP:
        return
    if name == 'p':
        yield squash(text_of(el))
        return
    for kid in el:
        yield from paragraphs(kid)


def good(p):
    h, l = len(HANGUL_RE.findall(p)), len(LATIN_RE.findall(p))
    lang_ok = (l and not h) if lang == 'en' else (h and h / (h + l) >= 0.6)
    return len(p) >= 20 and lang_ok and SENTENCE_END.search(p)


src, dst = sys.argv[1:3]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
lang = sys.argv[4] if len(sys.argv) > 4 else 'ko'
if lang not in ('ko', 'en'):
    sys.exit(f'mallard_prose.py: unknown language {lang!r} (ko or en)')
out, seen, total, pages = DocWriter(dst), set(), 0, 0
for name in sorted(os.listdir(src)):
    if not name.endswith('.page'):
        continue
    try:
        root = ET.parse(os.path.join(src, name)).getroot()
    except ET.ParseError as ex:
        log('skip', name, ex); continue
    pages += 1
    doc = []
    for p in paragraphs(root):
        if good(p) and p not in seen:
            seen.add(p); doc.append(p)
    size = len(('\n'.join(doc) + '\n\n').encode('utf-8')) if doc else 0
    if total + size > limit:
        break
    out.doc(doc); total += size
out.close()
log(f'{src}: pages read {pages}, documents {out.docs}, paragraphs {out.paras}, bytes {total}')
