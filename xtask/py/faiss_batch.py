#!/usr/bin/env python3
"""faiss-cpu timed like `fathom bench --batch B --queries N [--param nprobe=1,4]`: the
query set is searched B queries per call (B = 1: single-query latency); indexes that need
training are trained on learn.fvecs. Same JSON fields as ../shared/bench/faiss_ref.py,
which cargo xtask bench uses for whole-batch rows, plus the process's peak RSS."""
import argparse, json, resource, time
import numpy as np
import faiss

from texmex import read_vecs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--key", default="Flat")
    ap.add_argument("--metric", default="l2", choices=["l2", "ip"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--param", default="")
    a = ap.parse_args()
    if a.threads:
        faiss.omp_set_num_threads(a.threads)
    xb = read_vecs(f"{a.data}/base.fvecs", np.float32)
    xq = read_vecs(f"{a.data}/query.fvecs", np.float32)[: a.queries]
    gt = read_vecs(f"{a.data}/groundtruth.ivecs", np.int32)[: a.queries]
    metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(xb.shape[1], a.key, metric)
    t0 = time.perf_counter()
    if not index.is_trained:
        index.train(read_vecs(f"{a.data}/learn.fvecs", np.float32))
    t1 = time.perf_counter()
    index.add(xb); t2 = time.perf_counter()
    pname, _, pvals = a.param.partition("=")
    for v in [v for v in pvals.split(",") if v] or [None]:
        if v is not None:
            faiss.ParameterSpace().set_index_parameter(index, pname, float(v))
        best = 1e30
        for _ in range(3):
            t = time.perf_counter()
            I = np.concatenate([index.search(xq[i:i + a.batch], a.k)[1] for i in range(0, len(xq), a.batch)])
            best = min(best, time.perf_counter() - t)
        r1 = float((I[:, 0] == gt[:, 0]).mean())
        k = min(10, a.k)
        r10 = float(np.mean([len(set(I[i, :k]) & set(gt[i, :k])) / k for i in range(len(I))]))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"tool": "faiss", "version": faiss.__version__, "key": a.key,
                          "param": pname or None, "value": v, "batch": a.batch,
                          "threads": faiss.omp_get_max_threads(), "train_s": t1 - t0,
                          "add_s": t2 - t1, "qps": len(xq) / best, "recall_at_1": r1,
                          "recall_10_at_10": r10, "peak_rss_mb": rss}), flush=True)


if __name__ == "__main__":
    main()
