#!/usr/bin/python3
"""Deterministic sample of a corpus file, cut only at document (or line) boundaries.

Corpus format: one paragraph per line, a blank line between documents.

usage: sample.py IN OUT BUDGET_BYTES [--unit doc|line] [--mode spread|prefix]

  --mode prefix   take whole units from the start while the total stays <= BUDGET_BYTES
  --mode spread   keep unit i (0-based) iff floor((i+1)*r) > floor(i*r), r = BUDGET/size,
                  i.e. units evenly spread over the whole file; stop before BUDGET is exceeded
  --unit doc      a unit is a document (its lines plus the blank line after it)
  --unit line     a unit is a single line (for files that are one long list of strings)
Prints: units kept / total, bytes written.
"""
import argparse, math, sys

ap = argparse.ArgumentParser()
ap.add_argument('src'); ap.add_argument('dst'); ap.add_argument('budget', type=int)
ap.add_argument('--unit', choices=('doc', 'line'), default='doc')
ap.add_argument('--mode', choices=('spread', 'prefix'), default='spread')
a = ap.parse_args()

data = open(a.src, 'rb').read()
if a.unit == 'line':
    units = [l + b'\n' for l in data.split(b'\n') if l.strip()]
else:
    units = [d.strip(b'\n') + b'\n\n' for d in data.split(b'\n\n') if d.strip()]
size = sum(map(len, units))
r = min(1.0, a.budget / size) if size else 1.0
out, total = [], 0
for i, u in enumerate(units):
    if a.mode == 'spread' and math.floor((i + 1) * r) == math.floor(i * r):
        continue
    if total + len(u) > a.budget:
        if a.mode == 'prefix':
            break
        continue
    out.append(u); total += len(u)
with open(a.dst, 'wb') as f:
    f.writelines(out)
print(f'{a.src}: kept {len(out)}/{len(units)} {a.unit}s, {total} bytes', file=sys.stderr)
