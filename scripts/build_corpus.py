#!/usr/bin/env python3
"""Builds data/corpus/ from offline Debian packages (see data/README.md for sources and licences).

Usage (Debian/Ubuntu):
  cd /tmp && apt-get download python3.11-doc sword-text-web sword-text-sparv
  for f in *.deb; do dpkg -x "$f" x; done
  scripts/build_corpus.py --root /tmp/x --out data/corpus

Writes one UTF-8 text file per source, one paragraph (or Bible verse) per line, markup removed.
Deterministic: same packages in, same bytes out.
"""
import argparse
import html
import os
import re
import struct
import zlib

SWORD_DIR = "usr/share/sword/modules/texts/ztext"
PY_DOC_DIR = "usr/share/doc/python3.11/html/_sources"


def sword_verses(module_dir):
    """Verse texts of a SWORD zText module (.bzs block index, .bzz zlib blocks, .bzv verse index)."""
    for testament in ("ot", "nt"):
        bzs = open(os.path.join(module_dir, testament + ".bzs"), "rb").read()
        bzz = open(os.path.join(module_dir, testament + ".bzz"), "rb").read()
        bzv = open(os.path.join(module_dir, testament + ".bzv"), "rb").read()
        blocks = {}
        for i in range(len(bzv) // 10):
            block, offset, size = struct.unpack("<IIH", bzv[i * 10:i * 10 + 10])
            if size == 0:
                continue
            if block not in blocks:
                start, csize, _ = struct.unpack("<III", bzs[block * 12:block * 12 + 12])
                blocks[block] = zlib.decompress(bzz[start:start + csize])
            yield blocks[block][offset:offset + size].decode("utf-8")


NOTE = re.compile(r"<note\b.*?</note>", re.S)
TAG = re.compile(r"<[^>]*>")
SPACES = re.compile(r"[ \t\r\n]+")


def clean_osis(verse):
    text = TAG.sub("", NOTE.sub("", verse))
    return SPACES.sub(" ", html.unescape(text)).strip()


def write_bible(root, module, out_path):
    lines = [clean_osis(v) for v in sword_verses(os.path.join(root, SWORD_DIR, module))]
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            if line:
                f.write(line + "\n")


def write_python_docs(root, out_path, max_bytes):
    """reStructuredText sources of the Python tutorial/library/reference docs, paragraphs kept as is."""
    base = os.path.join(root, PY_DOC_DIR)
    files = []
    for sub in ("tutorial", "reference", "howto", "faq", "library"):
        for dirpath, _, names in os.walk(os.path.join(base, sub)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith(".rst.txt")]
    files.sort()
    written = 0
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for path in files:
            text = open(path, encoding="utf-8").read().replace("\r\n", "\n")
            data = text.rstrip("\n") + "\n\n"
            if written + len(data.encode()) > max_bytes:
                break
            f.write(data)
            written += len(data.encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="folder where the .deb packages were extracted")
    ap.add_argument("--out", required=True)
    ap.add_argument("--python-docs-bytes", type=int, default=4_000_000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_bible(args.root, "engWEB2015eb", os.path.join(args.out, "web_bible_en.txt"))
    write_bible(args.root, "spaRV1909eb", os.path.join(args.out, "reina_valera_1909_es.txt"))
    write_python_docs(args.root, os.path.join(args.out, "python_docs_en.txt"), args.python_docs_bytes)


if __name__ == "__main__":
    main()
