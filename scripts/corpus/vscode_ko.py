#!/usr/bin/python3
"""Korean VS Code UI strings from the npm package @codingame/monaco-vscode-language-pack-ko.

usage: vscode_ko.py PACKAGE_DIR OUT_KO.txt OUT_PAIRS.tsv

OUT_KO.txt: unique Hangul strings of translations/main.i18n.json.js (a JS array literal) and of every
string value in translations/extensions/*.json, one per line (a single document).
OUT_PAIRS.tsv: the extensions' l10n "bundle" objects, whose keys are the English source strings.
"""
import glob
import json
import os
import re
import sys
from textlib import PairWriter, has_hangul, log, squash

pkg, out_ko, out_pairs = sys.argv[1:4]
strings, seen = [], set()


def add(s):
    s = squash(s)
    if has_hangul(s) and s not in seen:
        seen.add(s); strings.append(s)


def strings_in(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from strings_in(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings_in(x)
    elif isinstance(v, str):
        yield v


js = open(os.path.join(pkg, 'translations/main.i18n.json.js'), encoding='utf-8').read()
array = js[js.index('['):js.rindex(']') + 1]
array = re.sub(r'(?m)^(\s*)undefined,', r'\1null,', array)     # JS holes -> JSON null
for s in json.loads(array):
    if isinstance(s, str):
        add(s)
pairs = PairWriter(out_pairs)
for p in sorted(glob.glob(os.path.join(pkg, 'translations/extensions/*.json'))):
    contents = json.load(open(p, encoding='utf-8')).get('contents', {})
    for s in strings_in(contents):
        add(s)
    for en, ko in contents.get('bundle', {}).items():
        if not isinstance(ko, str):
            continue
        en, ko = squash(en), squash(ko)
        if has_hangul(ko) and not has_hangul(en) and len(en) > 1:
            pairs.add(en, ko, 'vscode:' + os.path.basename(p))
pairs.close()
with open(out_ko, 'w', encoding='utf-8') as f:
    f.write('\n'.join(strings) + '\n')
log(f'ko strings {len(strings)}, pairs {pairs.n}')
