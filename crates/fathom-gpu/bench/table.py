"""Joins the JSON lines of gpu_bench and the peers (torch_ref.py, faiss_gpu_ref.py) into
one table: prints it as Markdown, then as one JSON object on the last line."""

import json
import sys


def rows(paths):
    for p in paths:
        try:
            with open(p) as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("{"):
                        try:
                            yield json.loads(line)
                        except ValueError:  # a line cut by a time limit
                            pass
        except OSError:
            pass


def key(r):
    return (r.get("index"), r.get("precision"), r.get("nprobe"), r.get("kmeans"))


def peer_of(r, peers):
    """The peer's row for the same measurement (peers have one Flat row per precision)."""
    return next((p for p in peers if key(p) == key(r)), None)


def main():
    all_rows = list(rows(sys.argv[1:]))
    head = {r["tool"]: r for r in all_rows if "gpu" in r}
    errors = [r for r in all_rows if "error" in r]
    ours = [r for r in all_rows
            if r.get("tool") == "fathom-gpu" and "gpu" not in r and "error" not in r]
    peers = [r for r in all_rows if r.get("tool") != "fathom-gpu" and "gpu" not in r]
    table = []
    for r in ours:
        peer = peer_of(r, peers)
        if "kmeans" in r:
            name = f"k-means → {r['kmeans']}, {r['niter']} iterations (s)"
        else:
            name = r["index"]
            if r.get("precision"):
                name += f" {r['precision'].upper()}"
            if r.get("temp_memory") and r["temp_memory"] != "1GiB":
                name += f", {r['temp_memory']} tiles"
            if r.get("order"):
                name += f" {r['order']}"
            if r.get("nprobe"):
                name += f" nprobe {r['nprobe']}"
            name += " (QPS)"
        row = {"measurement": name, "fathom": r.get("qps", r.get("time_s")),
               "recall_at_1": r.get("recall_at_1")}
        if "fp32_again" in r:
            row["fp32_again"] = r["fp32_again"]
        if peer:
            row["peer"] = peer["tool"]
            row["peer_value"] = peer.get("qps", peer.get("time_s"))
            row["peer_recall_at_1"] = peer.get("recall_at_1")
            if row["fathom"] and row["peer_value"]:
                faster = row["fathom"] / row["peer_value"]
                row["ratio"] = 1 / faster if "kmeans" in r else faster
        table.append(row)
    print("| measurement | fathom-gpu | peer | ratio | recall@1 fathom / peer |")
    print("|---|---:|---:|---:|---|")
    for row in table:
        fmt = (lambda v: f"{v:.2f}") if "(s)" in row["measurement"] else (lambda v: f"{v:,.0f}")
        peer = f"{fmt(row['peer_value'])} ({row['peer']})" if "peer_value" in row else "—"
        ratio = f"{row['ratio']:.2f}×" if "ratio" in row else "—"
        rec = lambda v: "—" if v is None else f"{v:.3f}"
        print(f"| {row['measurement']} | {fmt(row['fathom'])} | {peer} | {ratio} | "
              f"{rec(row.get('recall_at_1'))} / {rec(row.get('peer_recall_at_1'))} |")
    for e in errors:
        msg = " ".join(str(e["error"]).split()).replace("|", "/")
        print(f"| failed: {e.get('section', '?')} | {msg} | | | |")
    print(json.dumps({"devices": head, "rows": table, "errors": errors}))


if __name__ == "__main__":
    main()
