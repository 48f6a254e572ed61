#!/usr/bin/env python3
"""Generates the caption set that pretrains the tiny base's vision tower (recipes/pretrain_vision_tiny.yaml):
pictures drawn like data/domain's (coloured circles, squares and triangles; bar charts), each with one
conversation "Describe the picture." -> a caption that names every shape with its colour and coarse
position, left to right, with the count of each kind, or a chart's bars and values.

The captions teach the tower what the pictures hold, not the domain's questions: no question of
data/domain occurs here, and no picture has the layout of one of data/domain/images (the same drawn
pixels in any colours: a chart with the same bars in another colour is skipped too). The set
is generated where pretraining runs (not bundled): fixed seed, numpy only, the same on every machine.

    python3 scripts/make_vision_captions.py --out runs/data/vision_captions_src [--count 4000]
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_domain_data import (COLOURS, LONE_RADIUS, PAIR_RADIUS, SHAPE_RADIUS, SHAPES, SIZE,  # noqa: E402
                              bar_chart, chat, place_shapes, png_bytes)

SEED = 20261205
PROMPT = "Describe the picture."


def read_png(path):
    """RGB pixels of a PNG written by png_bytes (8-bit RGB, filter 0 on every row)."""
    data = open(path, "rb").read()
    pos, idat = 8, b""
    width = height = 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any(), f"{path}: a row filter other than 0"
    return rows[:, 1:].reshape(height, width, 3)


def layout_key(img):
    """Which pixels are drawn, whatever their colour."""
    return hashlib.sha256(np.packbits((img != 255).any(axis=2)).tobytes()).digest()


def where(cx, cy):
    row = "top" if cy < SIZE / 3 else "bottom" if cy >= 2 * SIZE / 3 else "middle"
    col = "left" if cx < SIZE / 3 else "right" if cx >= 2 * SIZE / 3 else "centre"
    return f"{row} {col}"


def scene(rng):
    """1 to 7 shapes of random kinds and colours: the picture and its caption. One or two shapes are drawn at
    the sizes of the domain's pictures with one or two (a small lone shape's colour sits in two or three of
    the tower's tokens); place_shapes draws the layout again until the shapes fit."""
    n = int(rng.integers(1, 8))
    specs = [(str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))) for _ in range(n)]
    radius = LONE_RADIUS if n == 1 else PAIR_RADIUS if n == 2 else SHAPE_RADIUS
    img, centres = place_shapes(rng, specs, radius)
    kinds = {s: sum(1 for k, _ in specs if k == s) for s in SHAPES}
    counts = [f"{c} {s}{'s' if c > 1 else ''}" for s, c in kinds.items() if c]
    items = sorted(zip(centres, specs), key=lambda item: item[0][0])
    listed = "; ".join(f"{colour} {shape} at {where(cx, cy)}" for (cx, cy), (shape, colour) in items)
    return img, f"{', '.join(counts)}. From left to right: {listed}."


def chart(rng):
    img, values = bar_chart(rng)
    labels = "ABCDE"[: len(values)]
    bars = ", ".join(f"{label} {value}" for label, value in zip(labels, values))
    tallest = labels[int(np.argmax(values))]
    return img, f"A bar chart with {len(values)} bars: {bars}. The tallest is {tallest}."


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--domain", default=os.path.join(os.path.dirname(__file__), "..", "data", "domain"))
    args = parser.parse_args()
    domain_images = os.path.join(args.domain, "images")
    held = {layout_key(read_png(os.path.join(domain_images, f))) for f in os.listdir(domain_images)}
    shutil.rmtree(os.path.join(args.out, "images"), ignore_errors=True)
    os.makedirs(os.path.join(args.out, "images"))
    rng = np.random.default_rng(SEED)
    records, skipped = [], 0
    while len(records) < args.count:
        img, caption = chart(rng) if len(records) % 4 == 3 else scene(rng)
        if layout_key(img) in held:
            skipped += 1
            continue
        name = f"images/cap_{len(records):05d}.png"
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(png_bytes(img))
        records.append(chat([{"type": "image", "path": name}, {"type": "text", "text": PROMPT}], caption, "caption"))
    with open(os.path.join(args.out, "train.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(records)} captioned pictures ({skipped} with a domain picture's layout skipped)")


if __name__ == "__main__":
    main()
