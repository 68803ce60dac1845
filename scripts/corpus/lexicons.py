#!/usr/bin/python3
"""Korean word lists (not running text).

usage: lexicons.py OUT_LEXICON_DIR HUNSPELL_KO_DIC HANJA_TXT NLPJS_DICT_JSON

ko_hunspell_stems.txt    stems of hunspell-ko's ko.dic (stored as NFD jamo; converted to NFC)
ko_hanja_libhangul.tsv   hangul<TAB>hanja<TAB>gloss from libhangul-data's hanja.txt
ko_pos_lexicon_nlpjs.tsv word<TAB>POS from @nlpjs/lang-ko's src/dict.json
"""
import json
import os
import sys
import unicodedata
from textlib import log

out, dic, hanja, nlpjs = sys.argv[1:5]
with open(dic, encoding='utf-8') as f:
    lines = f.read().splitlines()[1:]          # first line: entry count
stems = [unicodedata.normalize('NFC', l.split('/')[0]).strip() for l in lines]
with open(os.path.join(out, 'ko_hunspell_stems.txt'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(s for s in stems if s) + '\n')
rows = []
with open(hanja, encoding='utf-8') as f:
    for line in f:
        if line.startswith('#') or ':' not in line:
            continue
        cols = line.rstrip('\n').split(':', 2)
        rows.append('\t'.join(cols + [''] * (3 - len(cols))))
with open(os.path.join(out, 'ko_hanja_libhangul.tsv'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(rows) + '\n')
n = 0
with open(os.path.join(out, 'ko_pos_lexicon_nlpjs.tsv'), 'w', encoding='utf-8') as f:
    for pos, words in json.load(open(nlpjs, encoding='utf-8')).items():
        for w in words:
            if w:
                f.write(f'{w}\t{pos}\n'); n += 1
log(f'hunspell stems {sum(1 for s in stems if s)}, hanja rows {len(rows)}, nlpjs entries {n}')
