#!/usr/bin/env python3
"""Render bench results (the markdown table run.sh writes) as a PNG:
requests per proxy CPU-second and p99 latency per scenario.

  plot.py RESULTS.md OUT.png
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def ms(v):
    m = re.fullmatch(r"([\d.]+)\s*(us|µs|ms|s)", v.strip())
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def rows(path):
    out = []
    for line in open(path, encoding="utf-8"):
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 10 or cols[0] in ("scenario", "---") or cols[1] == "-":
            continue
        try:
            per_cpu = float(cols[8]) if cols[8] != "-" else None
        except ValueError:
            continue
        out.append((cols[0], per_cpu, ms(cols[3])))
    return out


def main(src, dst):
    data = [r for r in rows(src) if r[1] is not None or r[2] is not None]
    names = [r[0] for r in data]
    colors = ["#2b6cb0" if n.startswith("portcullis") else "#a0aec0" for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, max(4, 0.38 * len(names))), sharey=True)
    a.barh(names, [r[1] or 0 for r in data], color=colors)
    a.set_title("requests per proxy CPU-second (higher is better)")
    b.barh(names, [r[2] or 0 for r in data], color=colors)
    b.set_title("p99 latency, ms (lower is better)")
    a.invert_yaxis()
    for ax in (a, b):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
