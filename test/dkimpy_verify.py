#!/usr/bin/python3
"""Verify every DKIM signature of the message on stdin with dkimpy.

Usage: dkimpy_verify.py KEYS.tsv N
KEYS.tsv holds "name<TAB>txt" lines: the key records, so that dkimpy never
asks the machine's resolver. Exits 0 when exactly N signatures verify.
"""
import sys
import dkim

keys = {}
with open(sys.argv[1]) as f:
    for line in f:
        name, _, txt = line.rstrip("\n").partition("\t")
        keys.setdefault(name.rstrip(".").lower(), []).append(txt)


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    txts = keys.get(name.rstrip(".").lower())
    return txts[0].encode() if txts else None


msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
want = int(sys.argv[2])
if len(sigs) != want:
    print(f"{len(sigs)} signatures, want {want}")
    sys.exit(1)
for i in range(len(sigs)):
    if not d.verify(idx=i, dnsfunc=dnsfunc):
        print(f"signature {i} does not verify: {d.signature_fields if hasattr(d, 'signature_fields') else ''}")
        sys.exit(1)
    print(f"signature {i}: pass d={d.domain.decode()} s={d.selector.decode()}")
