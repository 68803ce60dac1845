#!/usr/bin/python3
"""Size table of corpus files: bytes, lines, documents (blank-line separated), Hangul syllables.

usage: stats.py ROOT [FILE...]      (default: every *.txt, *.tsv, *.jsonl in ROOT's subfolders,
                                     except .cache/ and licenses/)
Prints a TSV with paths relative to ROOT.
"""
import os
import sys
from textlib import HANGUL_RE, walk_sorted

root = sys.argv[1]
files = sys.argv[2:] or [p for p in walk_sorted(root, r'\.(txt|tsv|jsonl)$')
                         if os.sep in os.path.relpath(p, root)
                         and os.path.relpath(p, root).split(os.sep)[0] not in ('.cache', 'licenses')]
print('file\tbytes\tlines\tdocuments\thangul')
for p in files:
    data = open(p, encoding='utf-8', errors='replace').read()
    docs = sum(1 for d in data.split('\n\n') if d.strip())
    print(f'{os.path.relpath(p, root)}\t{os.path.getsize(p)}\t{data.count(chr(10))}\t{docs}'
          f'\t{len(HANGUL_RE.findall(data))}')
