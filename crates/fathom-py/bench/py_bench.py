"""One round of the Python-module benchmark (`cargo xtask py-bench` runs it several times,
between runs of the Rust CLI on the same data).

Prints JSON lines:
- {"kind": "overhead", "lib": ..., "us_per_call": ...}: a search call for one query of
  d = 128 on an index of one vector, so the time is the Python-side overhead of the call;
- {"kind": "bulk", "lib": ..., "index": ..., "qps": ..., "recall": ...}: a whole query set
  searched in one call on DATA (TEXMEX layout), best of at least 10 calls and `--seconds`,
  the figure the Rust CLI (`fathom bench --runs 10`, best of its runs) also reports.
fathom and faiss alternate within the round.
"""

import argparse
import json
import time

import numpy as np


def fvecs(path):
    raw = np.fromfile(path, dtype="int32")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view("float32")


def ivecs(path):
    raw = np.fromfile(path, dtype="int32")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy()


def overhead(lib, seconds):
    index = lib.IndexFlatL2(128)
    index.add(np.ones((1, 128), dtype="float32"))
    q = np.zeros((1, 128), dtype="float32")
    for _ in range(1000):
        index.search(q, 1)
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            index.search(q, 1)
        n += 1000
        t = time.perf_counter() - t0
        if t > seconds:
            return t / n * 1e6


def bulk(lib, desc, param, xt, xb, xq, gt, k=10, min_seconds=2.0):
    index = lib.index_factory(xb.shape[1], desc)
    index.train(xt)
    index.add(xb)
    if param:
        lib.ParameterSpace().set_index_parameters(index, param)
    index.search(xq[:10], k)
    best, calls, t0 = float("inf"), 0, time.perf_counter()
    # At least 10 calls, as the Rust CLI's `--runs 10`, and at least `min_seconds`.
    while calls < 10 or time.perf_counter() - t0 < min_seconds:
        t1 = time.perf_counter()
        _, I = index.search(xq, k)
        best = min(best, time.perf_counter() - t1)
        calls += 1
    recall = float((I[:, :1] == gt[:, :1]).mean())
    return len(xq) / best, recall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--index", action="append", default=[])
    args = ap.parse_args()
    import faiss
    import fathom

    for lib in (faiss, fathom):
        lib.omp_set_num_threads(args.threads)
    for lib in (fathom, faiss):
        us = overhead(lib, args.seconds)
        print(json.dumps({"kind": "overhead", "lib": lib.__name__, "us_per_call": us}), flush=True)
    xb = fvecs(f"{args.data}/base.fvecs")
    xq = fvecs(f"{args.data}/query.fvecs")
    xt = fvecs(f"{args.data}/learn.fvecs")
    gt = ivecs(f"{args.data}/groundtruth.ivecs")
    for spec in args.index or ["Flat"]:
        desc, _, param = spec.partition(":")
        for lib in (fathom, faiss):
            qps, recall = bulk(lib, desc, param, xt, xb, xq, gt, min_seconds=args.seconds)
            print(json.dumps({"kind": "bulk", "lib": lib.__name__, "index": spec,
                              "qps": qps, "recall": recall}), flush=True)


if __name__ == "__main__":
    main()
