#!/usr/bin/python3
"""Debian package descriptions from the DDTP index files (dists/bookworm/main/i18n/Translation-LL).

usage: ddtp.py ko TRANSLATION_EN TRANSLATION_KO OUT_KO.txt OUT_PAIRS.tsv
       ddtp.py en TRANSLATION_EN OUT_EN.txt

Each description becomes one document: the short description, then one line per paragraph
(paragraphs are separated by ' .' lines in the index). The Korean translations are hard-wrapped at
75-76 display columns, often in the middle of a word; such breaks are glued back without a space
when both sides are Hangul and the line does not end in a common particle (heuristic).
Pairs (ko mode): Korean and English descriptions with the same Description-md5; the short
descriptions are paired, and paragraphs pairwise when both have the same number of paragraphs,
otherwise the whole long descriptions.
"""
import sys
import unicodedata
from textlib import DocWriter, PairWriter, HANGUL_RE, has_hangul, log

PARTICLES = set('은는을를의에와과고며면서도')


def records(path, lang):
    """Yield (package, md5, [first line, continuation lines without the leading space...])."""
    tag = f'Description-{lang}: '
    pkg = md5 = lines = None
    with open(path, encoding='utf-8', errors='replace') as f:
        for raw in f:
            line = raw.rstrip('\n')
            if line.startswith('Package: '):
                pkg = line[9:]
            elif line.startswith('Description-md5: '):
                md5 = line[17:]
            elif line.startswith(tag):
                lines = [line[len(tag):]]
            elif line.startswith(' ') and lines is not None:
                lines.append(line[1:])
            elif not line:
                if lines is not None:
                    yield pkg, md5, lines
                lines = None
    if lines is not None:
        yield pkg, md5, lines


def width(s):
    return sum(2 if unicodedata.east_asian_width(c) in 'WF' else 1 for c in s)


def join_wrapped(lines):
    text = lines[0].strip()
    for prev, nxt in zip(lines, lines[1:]):
        n = nxt.strip()
        glue = (width(' ' + prev) in (75, 76) and prev and HANGUL_RE.match(prev[-1])
                and n and HANGUL_RE.match(n[0]) and prev[-1] not in PARTICLES)
        text += ('' if glue else ' ') + n
    return text


def paragraphs(lines, rejoin):
    short, paras, buf = lines[0].strip(), [], []
    for l in lines[1:]:
        if l.strip() == '.':
            if buf:
                paras.append(rejoin(buf)); buf = []
        else:
            buf.append(l)
    if buf:
        paras.append(rejoin(buf))
    return short, paras


def plain_join(lines):
    return ' '.join(l.strip() for l in lines)


def main_ko(tr_en, tr_ko, out_ko, out_pairs):
    ko = {}
    for pkg, md5, lines in records(tr_ko, 'ko'):
        ko[md5] = (pkg, lines)          # one entry per distinct description (last package name wins)
    en = {md5: lines for _, md5, lines in records(tr_en, 'en')}
    out, pairs = DocWriter(out_ko), PairWriter(out_pairs)
    for md5, (pkg, lines) in ko.items():
        ks, kp = paragraphs(lines, join_wrapped)
        out.doc([ks] + kp)
        if md5 not in en:
            continue
        es, ep = paragraphs(en[md5], join_wrapped)
        cand = [(es, ks)] + (list(zip(ep, kp)) if len(ep) == len(kp) else [(' '.join(ep), ' '.join(kp))])
        for e, k in cand:
            if has_hangul(k):
                pairs.add(e, k, 'ddtp:' + pkg)
    out.close(); pairs.close()
    log(f'ko descriptions {out.docs}, pairs {pairs.n}')


def main_en(tr_en, out_en):
    out = DocWriter(out_en)
    for _, _, lines in records(tr_en, 'en'):
        short, paras = paragraphs(lines, plain_join)
        out.doc([short] + paras)
    out.close()
    log(f'en descriptions {out.docs}')


if __name__ == '__main__':
    if sys.argv[1:2] == ['ko'] and len(sys.argv) == 6:
        main_ko(*sys.argv[2:])
    elif sys.argv[1:2] == ['en'] and len(sys.argv) == 4:
        main_en(*sys.argv[2:])
    else:
        sys.exit(__doc__)
