#!/usr/bin/env python3
"""Generates the bundled domain SFT set under data/domain/ (reproducible: fixed seed, numpy only).

Images (PNG, written by the small encoder below) show coloured shapes or simple bar charts; each
conversation asks one question about its image(s) and the assistant answers with a short exact
answer. Text-only conversations ask domain questions about shapes, colours and counts, each fact in several
phrasings (some with an instruction suffix or a system line); no conversation occurs twice, every fact a
held-out question recalls (sides, paint mixing, number words, sums) is taught by other phrasings in train.jsonl,
and the quickstart's two text questions occur in neither file.

Each record carries a "task" label (image_count, image_colour, ..., paint_mixing, number_words, ...), so
`llama4 eval` reports loss and exact match per task. Split: a record goes to eval.jsonl when the hash of its
messages as one JSON line (FNV-1a 64 + splitmix64 finaliser, the function `llama4 prepare` uses for
data.eval_fraction) maps below EVAL_FRACTION; recipes hold eval.jsonl out whole with data.eval_sources.

    python3 scripts/make_domain_data.py [--out data/domain]
"""
import argparse
import json
import os
import shutil
import struct
import zlib

import numpy as np

SEED = 20261127
EVAL_FRACTION = 0.1
SIZE = 128
N_IMAGE_RECORDS = 1200
N_PAIR_RECORDS = 100
N_TEXT_RECORDS = 600

COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30),
    "purple": (140, 60, 180), "orange": (245, 140, 30), "black": (20, 20, 20), "cyan": (40, 200, 210),
}
SHAPES = ["circle", "square", "triangle"]
SIDES = {"circle": 0, "square": 4, "triangle": 3}
MIXES = {("blue", "red"): "purple", ("blue", "yellow"): "green", ("red", "yellow"): "orange"}
CHART_MAX, CHART_UNIT = 5, 20  # bar values 1..CHART_MAX, CHART_UNIT pixels each
# A picture with one shape draws it large: the tower's tokens each cover about 10x10 of the 128x128 pixels,
# and a small shape's colour and outline sit in two or three of its 144 tokens.
SHAPE_RADIUS = (9, 15)  # [low, high) half-size in pixels of the shapes of a picture with several
LONE_RADIUS = (24, 40)
PAIR_RADIUS = (16, 26)  # the two shapes of a left/right or above/below question
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

M64 = (1 << 64) - 1


def record_hash_unit(data: bytes) -> float:
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & M64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & M64
    h ^= h >> 31
    return (h >> 11) * 2.0**-53


def png_bytes(rgb: np.ndarray) -> bytes:
    """8-bit RGB PNG, filter 0 on every row."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def shape_mask(shape, cx, cy, r):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
    # triangle pointing up: apex (cx, cy - r), base y = cy + r
    inside_y = (yy >= cy - r) & (yy <= cy + r)
    half = (yy - (cy - r)) / 2.0
    return inside_y & (abs(xx - cx) <= half)


def place_shapes(rng, specs, radius=SHAPE_RADIUS):
    """specs: list of (shape, colour); radius: [low, high) of each shape's half-size in pixels. Returns image and
    centres; shapes never overlap (a layout where the last shapes find no room is drawn again from the start)."""
    for _ in range(50):
        img = np.full((SIZE, SIZE, 3), 255, np.uint8)
        taken = np.zeros((SIZE, SIZE), bool)
        centres = []
        for shape, colour in specs:
            for _ in range(200):
                r = int(rng.integers(*radius))
                cx, cy = int(rng.integers(r + 2, SIZE - r - 2)), int(rng.integers(r + 2, SIZE - r - 2))
                m = shape_mask(shape, cx, cy, r)
                grown = shape_mask("square", cx, cy, r + 3)
                if not (taken & grown).any():
                    break
            else:
                break
            img[m] = COLOURS[colour]
            taken |= grown
            centres.append((cx, cy))
        if len(centres) == len(specs):
            return img, centres
    raise RuntimeError(f"could not place {len(specs)} shapes")


def bar_chart(rng):
    """3 to 5 bars of values 1 to CHART_MAX over a grey gridline per unit: one unit is CHART_UNIT pixels (about
    four of the tower's patches at its input size), so a value is read off the gridlines, not guessed from a
    height a patch or two apart."""
    n = int(rng.integers(3, 6))
    values = [int(v) for v in rng.integers(1, CHART_MAX + 1, size=n)]
    while values.count(max(values)) > 1:
        values[int(rng.integers(0, n))] = int(rng.integers(1, CHART_MAX + 1))
    img = np.full((SIZE, SIZE, 3), 255, np.uint8)
    base = SIZE - 10
    for v in range(1, CHART_MAX + 1):
        img[base - v * CHART_UNIT, 6:SIZE - 6] = 170  # gridline
    img[base, 6:SIZE - 6] = 0  # axis
    width = (SIZE - 20) // n
    colour = COLOURS[str(rng.choice(["blue", "green", "orange", "purple"]))]
    for i, v in enumerate(values):
        x0 = 12 + i * width
        img[base - v * CHART_UNIT:base, x0:x0 + width - 6] = colour
    return img, values


def chat(user_parts, answer, task):
    return {"messages": [{"role": "user", "content": user_parts}, {"role": "assistant", "content": answer}],
            "task": task}


def image_records(rng, out_dir):
    records = []
    for i in range(N_IMAGE_RECORDS):
        kind = ["count", "colour", "shape", "position", "chart_max", "chart_value"][i % 6]
        name = f"images/img_{i:04d}.png"
        if kind.startswith("chart"):
            img, values = bar_chart(rng)
            labels = "ABCDE"[:len(values)]
            if kind == "chart_max":
                q, a = f"The bars are labelled {', '.join(labels)} from left to right. Which bar is tallest?", \
                    labels[int(np.argmax(values))]
            else:
                k = int(rng.integers(0, len(values)))
                q, a = f"The bars are labelled {', '.join(labels)} from left to right. What is the value of bar {labels[k]}?", \
                    str(values[k])
        elif kind == "count":
            shape = str(rng.choice(SHAPES))
            count = int(rng.integers(1, 7))
            others = [str(s) for s in rng.choice([s for s in SHAPES if s != shape], size=int(rng.integers(0, 3)))]
            specs = [(shape, str(rng.choice(list(COLOURS)))) for _ in range(count)]
            specs += [(s, str(rng.choice(list(COLOURS)))) for s in others]
            img, _ = place_shapes(rng, specs)
            q, a = f"How many {shape}s are in the image?", str(count)
        elif kind == "colour":
            shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
            img, _ = place_shapes(rng, [(shape, colour)], LONE_RADIUS)
            q, a = f"What colour is the {shape}?", colour
        elif kind == "shape":
            shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
            img, _ = place_shapes(rng, [(shape, colour)], LONE_RADIUS)
            q, a = "What shape is shown in the image?", shape
        else:  # position of one of two shapes
            c1, c2 = [str(c) for c in rng.choice(list(COLOURS), size=2, replace=False)]
            s = str(rng.choice(SHAPES))
            img, centres = place_shapes(rng, [(s, c1), (s, c2)], PAIR_RADIUS)
            (x1, y1), (x2, y2) = centres
            if abs(x1 - x2) >= abs(y1 - y2):
                q, a = f"Is the {c1} {s} to the left or to the right of the {c2} {s}?", "left" if x1 < x2 else "right"
            else:
                q, a = f"Is the {c1} {s} above or below the {c2} {s}?", "above" if y1 < y2 else "below"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(png_bytes(img))
        records.append(chat([{"type": "image", "path": name}, {"type": "text", "text": q}], a, f"image_{kind}"))
    for i in range(N_PAIR_RECORDS):
        shape = str(rng.choice(SHAPES))
        counts = [int(v) for v in rng.choice(np.arange(1, 6), size=2, replace=False)]
        names = []
        for j, n in enumerate(counts):
            img, _ = place_shapes(rng, [(shape, str(rng.choice(list(COLOURS)))) for _ in range(n)])
            names.append(f"images/pair_{i:03d}_{j}.png")
            with open(os.path.join(out_dir, names[-1]), "wb") as f:
                f.write(png_bytes(img))
        q = f"Which image has more {shape}s, the first or the second?"
        a = "first" if counts[0] > counts[1] else "second"
        records.append(chat([{"type": "image", "path": names[0]}, {"type": "image", "path": names[1]},
                             {"type": "text", "text": q}], a, "image_compare"))
    return records


TEXT_TEMPLATES = {
    "sides": ["How many sides does a {s} have?", "A {s} has how many sides?", "Count the sides of a {s}.",
              "How many straight sides has a {s}?"],
    "paint_mixing": ["Which colour do you get by mixing {a} and {b} paint?", "What colour do you get by mixing {a} and {b}?",
                     "Mixing {a} and {b} paint gives which colour?", "What colour comes from mixing {a} paint with {b} paint?"],
    "addition": ["A picture has {n} {s}s and {m} more are added. How many {s}s are there now?",
                 "There are {n} {s}s. {m} more {s}s are drawn. How many {s}s are there?",
                 "What is {n} plus {m}?"],
    "number_words": ["Write the number {n} as a word.", "How is {n} written in words?", "What is {n} in words?",
                     "Spell the number {n} as a word."],
    "text_chart": ["A bar chart shows A = {a}, B = {b}, C = {c}. Which bar is tallest?",
                   "Bars: A is {a}, B is {b}, C is {c}. Which bar is the tallest?"],
}
# Tasks whose answer is a fact to recall (taught in other phrasings); text_chart is a skill, held out on new
# numbers. Sums are facts too: the tiny base does not learn to add from a few dozen pairs (held out on new
# pairs, addition stayed at 0.07-0.21 exact match), so each held-out sum is taught in other phrasings.
RECALLED_TASKS = {"sides", "paint_mixing", "number_words", "addition"}
ADDEND_MAX = 4  # 16 sums, each asked several times, so that every held-out sum is also taught
# The quickstart asks these after tuning: no record carries them (in any suffix), so its answers come from the
# facts taught by the other phrasings.
DEMO_QUESTIONS = ("How many sides does a triangle have?", "What colour do you get by mixing red and blue?")
SUFFIXES = ["", " Answer with one word.", " Answer with one word or number."]
SIDE_COUNTS = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}


def text_question(rng, task):
    """One text question of a task: (question, answer, fact). The fact names what the answer depends on,
    so that the generator can check that every held-out fact is also taught by other phrasings."""
    template = str(rng.choice(TEXT_TEMPLATES[task]))
    if task == "sides":
        s = str(rng.choice(list(SIDE_COUNTS)))
        return template.format(s=s), str(SIDE_COUNTS[s]), s
    if task == "paint_mixing":
        (a, b), mix = list(MIXES.items())[int(rng.integers(0, len(MIXES)))]
        if rng.integers(0, 2):
            a, b = b, a
        return template.format(a=a, b=b), mix, (a, b)
    if task == "addition":
        n, m = int(rng.integers(1, ADDEND_MAX + 1)), int(rng.integers(1, ADDEND_MAX + 1))
        return template.format(n=n, m=m, s=str(rng.choice(SHAPES))), str(n + m), (n, m)
    if task == "number_words":
        n = int(rng.integers(0, 11))
        return template.format(n=n), NUMBER_WORDS[n], n
    values = [int(v) for v in rng.integers(1, 10, size=3)]
    while values.count(max(values)) > 1:
        values = [int(v) for v in rng.integers(1, 10, size=3)]
    a, b, c = values
    return template.format(a=a, b=b, c=c), "ABC"[int(np.argmax(values))], tuple(values)


def text_records(rng):
    """Distinct text questions (no record twice: a repeated question would weigh one fact many times in
    the held-out set), several phrasings per fact, some with an instruction suffix or a system line."""
    tasks = list(TEXT_TEMPLATES)
    records, seen = [], set()
    i = 0
    while len(records) < N_TEXT_RECORDS:
        task = tasks[i % len(tasks)]
        i += 1
        q, a, fact = text_question(rng, task)
        if q in DEMO_QUESTIONS:
            continue
        q += str(rng.choice(SUFFIXES))
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if rng.integers(0, 7) == 0:
            msgs.insert(0, {"role": "system", "content": "Answer with one word or number."})
        key = json.dumps(msgs)
        if key in seen:
            continue
        seen.add(key)
        records.append({"messages": msgs, "task": task, "fact": [task, fact]})
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "domain"))
    args = parser.parse_args()
    out = os.path.normpath(args.out)
    shutil.rmtree(os.path.join(out, "images"), ignore_errors=True)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rng = np.random.default_rng(SEED)
    records = image_records(rng, out) + text_records(rng)
    order = rng.permutation(len(records))
    splits = {"train": [], "eval": []}
    facts = {"train": set(), "eval": set()}
    for k in order:
        fact = records[k].pop("fact", None)
        line = json.dumps(records[k], ensure_ascii=False, separators=(", ", ": "))
        content = json.dumps({"messages": records[k]["messages"]}, ensure_ascii=False, separators=(", ", ": "))
        split = "eval" if record_hash_unit(content.encode()) < EVAL_FRACTION else "train"
        splits[split].append(line)
        if fact is not None and fact[0] in RECALLED_TASKS:
            facts[split].add(json.dumps(fact))
    untaught = facts["eval"] - facts["train"]
    if untaught:
        raise SystemExit(f"held-out facts with no training question: {sorted(untaught)}")
    for name, lines in splits.items():
        with open(os.path.join(out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    print(f"{out}: {len(splits['train'])} train, {len(splits['eval'])} eval records, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
