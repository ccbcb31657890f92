"""faiss-gpu's side of `cargo xtask gpu`: the same measurements as examples/gpu_bench.rs on
the same TEXMEX-layout data, one JSON object per line."""

import json
import sys
import time

import numpy as np
import faiss


def vecs(path, dtype):
    raw = np.fromfile(path, dtype=dtype if dtype != "float32" else "int32")
    d = raw[:1].view("int32")[0]
    rows = raw.reshape(-1, d + 1)[:, 1:]
    return rows.copy().view("float32") if dtype == "float32" else rows.copy()


def best_qps(index, xq, k=10):
    best, I = float("inf"), None
    for _ in range(3):
        t = time.perf_counter()
        _, I = index.search(xq, k)
        best = min(best, time.perf_counter() - t)
    return len(xq) / best, I


def main():
    data = sys.argv[1]
    xb = vecs(f"{data}/base.fvecs", "float32")
    xq = vecs(f"{data}/query.fvecs", "float32")
    xt = vecs(f"{data}/learn.fvecs", "float32")
    gt = vecs(f"{data}/groundtruth.ivecs", "int32")
    d = xb.shape[1]
    res = faiss.StandardGpuResources()
    flat = faiss.GpuIndexFlatL2(res, d)
    t = time.perf_counter()
    flat.add(xb)
    add_s = time.perf_counter() - t
    qps, I = best_qps(flat, xq)
    print(json.dumps({"tool": "faiss-gpu", "index": "Flat", "precision": "f32", "add_s": add_s, "qps": qps,
                      "recall_at_1": float((I[:, 0] == gt[:, 0]).mean())}), flush=True)
    del flat
    for name in ["IVF4096,Flat", "IVF4096,PQ32"]:
        cpu = faiss.index_factory(d, name)
        index = faiss.index_cpu_to_gpu(res, 0, cpu)
        t = time.perf_counter()
        index.train(xt)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        index.add(xb)
        add_s = time.perf_counter() - t
        for nprobe in (16, 64):
            index.nprobe = nprobe
            qps, I = best_qps(index, xq)
            print(json.dumps({"tool": "faiss-gpu", "index": name, "nprobe": nprobe,
                              "train_s": train_s, "add_s": add_s, "qps": qps,
                              "recall_at_1": float((I[:, 0] == gt[:, 0]).mean())}), flush=True)
    km = faiss.Kmeans(d, 4096, niter=20, gpu=True, max_points_per_centroid=len(xb) // 4096 + 1)
    t = time.perf_counter()
    km.train(xb)
    print(json.dumps({"tool": "faiss-gpu", "kmeans": 4096, "niter": 20,
                      "time_s": time.perf_counter() - t, "obj": float(km.obj[-1])}), flush=True)


if __name__ == "__main__":
    main()
