#!/usr/bin/python3
"""EN/KO pairs from Mozilla localisation: the Korean language pack (.xpi) against the en-US strings
inside the application's omni.ja archives, matched by (file, message id). Fluent (.ftl) and
.properties files. Both archives are zip files, read in place.

usage: mozilla.py TAG OUT.tsv KO_XPI EN_OMNI_JA [EN_OMNI_JA...]   (later omni.ja override earlier)
"""
import re
import sys
import zipfile
from textlib import PairWriter, has_hangul, log

FTL_MSG = re.compile(r'^(-?[A-Za-z][\w-]*)\s*=\s*(.*)$')
FTL_ATTR = re.compile(r'^\s+\.([\w-]+)\s*=\s*(.*)$')


def norm_path(name, lang):
    for mark in ('localization/', 'locale/'):
        if mark in name:
            name = name[name.rindex(mark) + len(mark):]
    return '/'.join(p for p in name.split('/') if p not in (lang, 'en-US', 'ko'))


def parse_ftl(text):
    out, msg, key = {}, None, None
    for line in text.split('\n'):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        m = FTL_MSG.match(line)
        if m:
            msg = key = m.group(1); out[key] = m.group(2).strip(); continue
        m = FTL_ATTR.match(line)
        if m and msg:
            key = msg + '.' + m.group(1); out[key] = m.group(2).strip(); continue
        if line.startswith(' ') and key:
            out[key] = (out[key] + ' ' + line.strip()).strip()
    return out


def parse_properties(text):
    out = {}
    for line in text.split('\n'):
        if line.startswith('#') or '=' not in line:
            continue
        k, v = line.split('=', 1)
        out[k.strip()] = v.strip()
    return out


def load(archive, lang, prefixes=None):
    d = {}
    with zipfile.ZipFile(archive) as z:
        for name in sorted(z.namelist()):
            if prefixes and not name.startswith(prefixes):
                continue
            if name.endswith('.ftl'):
                parse = parse_ftl
            elif name.endswith('.properties'):
                parse = parse_properties
            else:
                continue
            text = z.read(name).decode('utf-8', 'replace')
            key = norm_path(name, lang)
            for k, v in parse(text).items():
                d[(key, k)] = v
    return d


tag, out_path, ko_xpi, *en_archives = sys.argv[1:]
ko = load(ko_xpi, 'ko')
en = {}
for a in en_archives:
    en.update(load(a, 'en-US', ('localization/en-US/', 'chrome/en-US/')))
out = PairWriter(out_path)
for (f, k), v in ko.items():
    e = en.get((f, k))
    if e and has_hangul(v) and not has_hangul(e):
        out.add(e, v, f'{tag}:{f}#{k}')
out.close()
log(f'{tag}: en {len(en)}, ko {len(ko)}, pairs {out.n}')
