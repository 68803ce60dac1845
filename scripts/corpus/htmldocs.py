#!/usr/bin/python3
"""Korean text (and EN/KO block pairs) from translated HTML / Mallard / DocBook documentation.

usage: htmldocs.py KO_ROOT OUT_KO.txt [--en-root EN_ROOT --pairs OUT.tsv] [--rename KO_SUFFIX=EN_SUFFIX]
                   [--append]

Every *.html|*.htm|*.xhtml|*.page|*.xml file under KO_ROOT (sorted by path) becomes one document:
its blocks (see textlib.BlockText) that contain Hangul and were not already emitted by an earlier file.
With --en-root, the English file at the same relative path (after --rename) is read too, and when both
files have the same number of blocks (same structure) the blocks are paired in order.
"""
import argparse
import os
from textlib import BlockText, DocWriter, PairWriter, has_hangul, log, walk_sorted

ap = argparse.ArgumentParser()
ap.add_argument('ko_root'); ap.add_argument('out_ko')
ap.add_argument('--en-root'); ap.add_argument('--pairs')
ap.add_argument('--rename', default='=')
ap.add_argument('--append', action='store_true', help='append to OUT_KO instead of overwriting')
a = ap.parse_args()
ko_suf, en_suf = a.rename.split('=', 1)

out = DocWriter(a.out_ko, append=a.append)
pairs = PairWriter(a.pairs)
seen = set()
n_files = n_aligned = 0
for kp in walk_sorted(a.ko_root, r'\.(html?|xhtml|page|xml)$'):
    if not os.path.isfile(kp):
        continue                        # dangling symlink into another package
    kb = BlockText.of_file(kp)
    n_files += 1
    doc = []
    for b in kb:
        if has_hangul(b) and b not in seen:
            seen.add(b); doc.append(b)
    out.doc(doc)
    if not a.en_root:
        continue
    rel = os.path.relpath(kp, a.ko_root)
    ep = os.path.join(a.en_root, rel.replace(ko_suf, en_suf) if ko_suf else rel)
    if not os.path.exists(ep):
        continue
    eb = BlockText.of_file(ep)
    if len(eb) != len(kb):
        continue
    n_aligned += 1
    for e, k in zip(eb, kb):
        if has_hangul(k) and not has_hangul(e) and e != k and len(e) > 1:
            pairs.add(e, k, rel)
out.close(); pairs.close()
log(f'{a.ko_root}: files {n_files}, docs {out.docs}, ko paragraphs {out.paras}, aligned files {n_aligned}, pairs {pairs.n}')
