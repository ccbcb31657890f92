#!/usr/bin/env python3
"""faiss-cpu side of `cargo xtask bench`'s IVF rows: train on learn.fvecs, add base.fvecs,
then for each value of --param: QPS of the whole query set in one call (best of 3), QPS of
the first --latency-queries queries searched one at a time (best of 3), recalls, and the
peak RSS so far. One JSON object per value, with the fields of fathom bench --json."""
import argparse, json, resource, time
import numpy as np
import faiss

from texmex import read_vecs


def recalls(I, gt):
    r1 = float((I[:, 0] == gt[:, 0]).mean())
    k = min(10, I.shape[1])
    r10 = float(np.mean([len(set(I[i, :k]) & set(gt[i, :k])) / k for i in range(len(I))]))
    return r1, r10


def best_of(n, f):
    best = 1e30
    for _ in range(n):
        t = time.perf_counter(); out = f(); best = min(best, time.perf_counter() - t)
    return best, out


ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--key", required=True)
ap.add_argument("--param", default="nprobe=1,4,16,64")
ap.add_argument("--k", type=int, default=10)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--latency-queries", type=int, default=200)
a = ap.parse_args()
if a.threads:
    faiss.omp_set_num_threads(a.threads)
xt = read_vecs(f"{a.data}/learn.fvecs", np.float32)
xb = read_vecs(f"{a.data}/base.fvecs", np.float32)
xq = read_vecs(f"{a.data}/query.fvecs", np.float32)
gt = read_vecs(f"{a.data}/groundtruth.ivecs", np.int32)
index = faiss.index_factory(xb.shape[1], a.key)
t0 = time.perf_counter(); index.train(xt); t1 = time.perf_counter()
index.add(xb); t2 = time.perf_counter()
pname, _, pvals = a.param.partition("=")
nl = a.latency_queries
for v in [v for v in pvals.split(",") if v]:
    faiss.ParameterSpace().set_index_parameter(index, pname, float(v))
    tb, (_, I) = best_of(3, lambda: index.search(xq, a.k))
    t1q, _ = best_of(3, lambda: [index.search(xq[i:i + 1], a.k) for i in range(nl)])
    r1, r10 = recalls(I, gt)
    print(json.dumps({"tool": "faiss", "version": faiss.__version__, "key": a.key, "param": pname,
                      "value": v, "threads": faiss.omp_get_max_threads(), "train_s": t1 - t0,
                      "add_s": t2 - t1, "qps": len(xq) / tb, "qps_nq1": nl / t1q,
                      "recall_at_1": r1, "recall_10_at_10": r10,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
          flush=True)
