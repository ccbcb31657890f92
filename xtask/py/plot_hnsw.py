"""Draws the recall@10 / QPS curves written by `cargo xtask hnsw` into a PNG."""

import json, sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    curves = json.load(open(sys.argv[1]))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for tool, pts in curves.items():
        if not pts:
            continue
        pts = sorted(pts, key=lambda p: p["recall"])
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", label=tool)
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(sys.argv[3] if len(sys.argv) > 3 else "HNSW")
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
