#!/usr/bin/env python3
"""Where the states' cost goes: for a folder written by scripts/states-profile.sh (bench.log,
without.data, with.data), the perf samples per 1,000 events of each (thread, library, symbol)
with states minus without, largest first. Events are counted from the bench's per-round rates.
Usage: scripts/perf-diff.py OUT_DIR [ROWS]"""
import collections
import re
import subprocess
import sys

folder = sys.argv[1]
rows_shown = int(sys.argv[2]) if len(sys.argv) > 2 else 40
log = open(f"{folder}/bench.log").read()
seconds = float(re.search(r"rounds of (\d+) s", log).group(1))
events = {"without": 0.0, "with": 0.0}
for match in re.finditer(r"round \d+ (without \(0\)|with \(90d\))\s+\d+-event batches x\d+\s+(\d+) events/s", log):
    events["without" if match.group(1).startswith("without") else "with"] += float(match.group(2)) * seconds
samples = {}
for mode in events:
    report = subprocess.run(
        ["perf", "report", "-i", f"{folder}/{mode}.data", "--no-children", "--sort", "comm,dso,sym",
         "-g", "none", "-q", "--stdio", "-n"],
        capture_output=True, text=True, check=True).stdout
    counted = collections.Counter()
    for line in report.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1].isdigit():
            counted[" ".join(fields[2:])] += int(fields[1])
    samples[mode] = counted
per_1000 = {mode: sum(samples[mode].values()) / events[mode] * 1000 for mode in events}
print(f"events: without {events['without']:.0f}, with {events['with']:.0f}")
print(f"samples per 1,000 events: without {per_1000['without']:.1f}, with {per_1000['with']:.1f} "
      f"({(per_1000['with'] / per_1000['without'] - 1) * 100:+.1f} %)")
rows = []
for key in set(samples["with"]) | set(samples["without"]):
    without = samples["without"][key] / events["without"] * 1000
    with_states = samples["with"][key] / events["with"] * 1000
    rows.append((with_states - without, without, with_states, key))
rows.sort(reverse=True)
print(f"{'diff':>7} {'without':>8} {'with':>8}  thread library symbol")
for diff, without, with_states, key in rows[:rows_shown]:
    print(f"{diff:+7.2f} {without:8.2f} {with_states:8.2f}  {key[:120]}")
