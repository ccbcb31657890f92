#!/usr/bin/env python3
"""faiss-cpu's side of `cargo xtask binary-bench`: the twin of fathom-io's
`binary_bench` example, with the same arguments and the same JSON lines.

usage: faiss_binary.py DIR THREADS [FACTORY [NB|all [PARAM=V1,V2,...]]]
"""
import json, sys, time
import numpy as np
import faiss

dir_, threads = sys.argv[1], int(sys.argv[2])
factory = sys.argv[3] if len(sys.argv) > 3 else "BFlat"
nb = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "all" else None
sweep = sys.argv[5] if len(sys.argv) > 5 else None
faiss.omp_set_num_threads(threads)
xb = np.load(f"{dir_}/base.npy")
xq = np.load(f"{dir_}/query.npy")
if nb is not None:
    xb = xb[:nb]
d = xb.shape[1] * 8

exact = faiss.IndexBinaryFlat(d)
exact.add(xb)
truth = exact.search(xq, 1)[0][:, 0]

t = time.perf_counter()
index = faiss.index_binary_factory(d, factory)
index.train(xb)
index.add(xb)
build = time.perf_counter() - t


def set_param(name, v):
    if name == "efSearch":
        index.hnsw.efSearch = int(v)
    else:
        setattr(index, name, int(v))


name, values = (sweep.split("=")[0], [float(v) for v in sweep.split("=")[1].split(",")]) if sweep else ("", [None])
for v in values:
    if name:
        set_param(name, v)
    best, D = 0.0, None
    for _ in range(3):
        t = time.perf_counter()
        D, _ = index.search(xq, 10)
        best = max(best, len(xq) / (time.perf_counter() - t))
    r1 = float((D[:, 0] == truth).mean())
    print(json.dumps({"tool": "faiss", "index": factory, "nb": len(xb), "param": {name: v} if name else None,
                      "build_s": round(build, 3), "qps": round(best, 1), "r1": round(r1, 4)}))
