#!/usr/bin/env python3
"""faiss-cpu side of `cargo xtask scaling`: search an index file (written by fathom in
Faiss's format, so both tools search the same index) with --threads threads, the queries in
batches of --batch (0: all at once), for each value of --param. QPS is the best of 3
passes. One JSON object per value, with the fields of `fathom bench --json` it shares."""
import argparse, json, time
import numpy as np
import faiss

from texmex import read_vecs


ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--load", required=True)
ap.add_argument("--param", default="")
ap.add_argument("--k", type=int, default=10)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--batch", type=int, default=0)
ap.add_argument("--queries", type=int, default=0)
a = ap.parse_args()
if a.threads:
    faiss.omp_set_num_threads(a.threads)
xq = read_vecs(f"{a.data}/query.fvecs")
if a.queries:
    xq = xq[: a.queries]
index = faiss.read_index(a.load)
batch = a.batch or len(xq)
pname, _, pvals = a.param.partition("=")
for v in [v for v in pvals.split(",") if v] or [""]:
    if pname:
        faiss.ParameterSpace().set_index_parameter(index, pname, float(v))
    best = 1e30
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(xq), batch):
            index.search(xq[i:i + batch], a.k)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"tool": "faiss", "version": faiss.__version__, "param": pname or None,
                      "value": v or None, "threads": faiss.omp_get_max_threads(),
                      "batch": batch, "qps": len(xq) / best}), flush=True)
