#!/usr/bin/python3
"""Last pass over OUT_DIR: filter the parallel files, build their union, and derive the Korean UI-string
text from the gettext + Mozilla pairs.

usage: finalize.py OUT_DIR

1. every parallel/en_ko_*.tsv is filtered in place: the Korean side must have Hangul making up >= 30 %
   of its Hangul+Latin letters, the English side >= 2 characters; GIMP xrefs.xml entries are dropped.
2. parallel/ALL_en_ko_dedup.tsv: union of those files (sorted by name), exact (en, ko) duplicates
   removed; column 3 becomes '<file tag>:<source id>'.
3. ko/ko_ui_strings_gettext_mozilla.txt: unique Korean sides of en_ko_gettext_ui.tsv then
   en_ko_mozilla_l10n.tsv, one per line.
"""
import glob
import os
import sys
from textlib import HANGUL_RE, LATIN_RE, PairWriter, log

out_dir = sys.argv[1]
par = os.path.join(out_dir, 'parallel')
union = PairWriter(os.path.join(par, 'ALL_en_ko_dedup.tsv'))


def keep(en, ko, src):
    h, l = len(HANGUL_RE.findall(ko)), len(LATIN_RE.findall(ko))
    return h and h / (h + l) >= 0.3 and len(en.strip()) >= 2 and 'xrefs.xml' not in src


for path in sorted(glob.glob(os.path.join(par, 'en_ko_*.tsv'))):
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            cols = line.rstrip('\n').split('\t')
            if len(cols) >= 3 and keep(*cols[:3]):
                rows.append(cols[:3])
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(f'{en}\t{ko}\t{src}\n' for en, ko, src in rows)
    tag = os.path.basename(path)[len('en_ko_'):-len('.tsv')]
    for en, ko, src in rows:
        union.add(en, ko, f'{tag}:{src}')
    log(f'{os.path.basename(path):38s} pairs {len(rows):7d}')
union.close()
log(f'ALL_en_ko_dedup.tsv pairs {union.n}')

seen, ui = set(), []
for name in ('en_ko_gettext_ui.tsv', 'en_ko_mozilla_l10n.tsv'):
    with open(os.path.join(par, name), encoding='utf-8') as f:
        for line in f:
            cols = line.rstrip('\n').split('\t')
            if len(cols) >= 2 and cols[1] not in seen:
                seen.add(cols[1]); ui.append(cols[1])
with open(os.path.join(out_dir, 'ko', 'ko_ui_strings_gettext_mozilla.txt'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(ui) + '\n')
log(f'ko UI strings {len(ui)}')
