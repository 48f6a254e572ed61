#!/usr/bin/env python3
"""Summarises a LibTorch profiler trace written by `logging.profile_step`: self time per operator (time in
the op minus time in ops nested inside it, per thread), largest first.

Usage: scripts/bench/profile_summary.py RUN_DIR/profile_step_N_rank0.json [--top 30]
"""
import argparse
import collections
import json


def self_times(events):
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    totals = collections.Counter()
    counts = collections.Counter()
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [event, child time]
        for e in thread_events:
            while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
                done, child = stack.pop()
                totals[done["name"]] += done["dur"] - child
                counts[done["name"]] += 1
                if stack:
                    stack[-1][1] += done["dur"]
            stack.append([e, 0.0])
        while stack:
            done, child = stack.pop()
            totals[done["name"]] += done["dur"] - child
            counts[done["name"]] += 1
            if stack:
                stack[-1][1] += done["dur"]
    return totals, counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    data = json.load(open(args.trace))
    events = data["traceEvents"] if isinstance(data, dict) else data
    totals, counts = self_times(events)
    whole = sum(totals.values())
    print(f"{'self ms':>9} {'share':>6} {'calls':>6}  operator")
    for name, us in totals.most_common(args.top):
        print(f"{us / 1e3:9.1f} {100 * us / whole:5.1f}% {counts[name]:6d}  {name}")
    print(f"{whole / 1e3:9.1f} total (summed over threads)")


if __name__ == "__main__":
    main()
