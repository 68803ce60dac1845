#!/usr/bin/python3
"""EN/KO pairs from compiled GNU gettext catalogs (*.mo): msgid -> Korean msgstr.

usage: gettext_mo.py OUT.tsv PATH...    (a PATH is a .mo file or a folder searched recursively for *.mo,
                                          in sorted order; earlier PATHs win on duplicate pairs)
Context prefixes (msgctxt\\x04) are dropped, plural forms are zipped, keyboard mnemonics
('_File', '~Open', Korean '(_F)') are removed, whitespace is collapsed. Kept: Korean side has Hangul,
English side has none.
"""
import os
import re
import struct
import sys
from textlib import PairWriter, has_hangul, log, squash, walk_sorted

MNEMONIC_KO = re.compile(r'\(\s*[_~&][A-Za-z0-9]\)')


def read_mo(path):
    b = open(path, 'rb').read()
    if len(b) < 28:
        return
    magic = struct.unpack('<I', b[:4])[0]
    e = '<' if magic == 0x950412de else '>'
    _, n, orig_tab, trans_tab = struct.unpack(e + '4I', b[4:20])
    for i in range(n):
        ol, oo = struct.unpack_from(e + '2I', b, orig_tab + 8 * i)
        tl, to = struct.unpack_from(e + '2I', b, trans_tab + 8 * i)
        yield b[oo:oo + ol].decode('utf-8', 'replace'), b[to:to + tl].decode('utf-8', 'replace')


def clean(s):
    s = MNEMONIC_KO.sub('', s)
    for ch in '_~':
        if s.count(ch) == 1:
            s = re.sub(re.escape(ch) + r'(?=[A-Za-z0-9\uac00-\ud7a3])', '', s)
    return squash(s)


out = PairWriter(sys.argv[1])
n_files = 0
for arg in sys.argv[2:]:
    if os.path.isdir(arg):
        files = sorted(walk_sorted(arg, r'\.mo$'))     # plain path order
    else:
        files = [arg] if os.path.isfile(arg) else []
    for p in files:
        n_files += 1
        try:
            for msgid, msgstr in read_mo(p):
                if not msgid:
                    continue            # catalog header
                msgid = msgid.split('\x04', 1)[-1]
                for en, ko in zip(msgid.split('\x00'), msgstr.split('\x00')):
                    en, ko = clean(en), clean(ko)
                    if has_hangul(ko) and not has_hangul(en):
                        out.add(en, ko, os.path.basename(p))
        except (struct.error, ValueError) as ex:
            log('skip', p, ex)
out.close()
log(f'.mo files {n_files}, pairs {out.n}')
