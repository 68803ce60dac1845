#!/usr/bin/python3
"""EN/KO pairs from Unicode CLDR XML (Debian unicode-cldr-core): leaves with the same element path
and attributes (ignoring draft/references) in en.xml and ko.xml of main/, annotations/,
annotationsDerived/ and subdivisions/.

usage: cldr.py CLDR_COMMON_DIR OUT.tsv
"""
import os
import sys
import xml.etree.ElementTree as ET
from textlib import PairWriter, has_hangul, log

IGNORED_ATTRS = ('draft', 'references')


def leaves(path):
    out = {}

    def walk(el, prefix):
        key = prefix + '/' + el.tag + ''.join(
            f'[{k}={v}]' for k, v in sorted(el.attrib.items()) if k not in IGNORED_ATTRS)
        kids = list(el)
        if not kids and el.text and el.text.strip():
            out.setdefault(key, el.text.strip())
        for k in kids:
            walk(k, key)
    walk(ET.parse(path).getroot(), '')
    return out


root, out_path = sys.argv[1:3]
out = PairWriter(out_path)
for sub in ('main', 'annotations', 'annotationsDerived', 'subdivisions'):
    ep, kp = os.path.join(root, sub, 'en.xml'), os.path.join(root, sub, 'ko.xml')
    if not (os.path.exists(ep) and os.path.exists(kp)):
        log('missing', sub); continue
    en, ko = leaves(ep), leaves(kp)
    for k, v in ko.items():
        if k in en and has_hangul(v) and not has_hangul(en[k]):
            out.add(en[k], v, 'cldr:' + sub)
out.close()
log(f'pairs {out.n}')
