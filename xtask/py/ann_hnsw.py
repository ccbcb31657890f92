"""HNSW peers on one dataset, for `cargo xtask hnsw`: faiss-cpu (IndexHNSWFlat via the
factory), hnswlib and usearch, built with the same graph degree (M = 32: 64 links on the
bottom layer) and construction beam (40), then searched at each beam width.

Prints one JSON line per search setting: tool, build_s, ef, qps (best of 3 passes),
recall_at_1, recall_10_at_10 and, where the library exposes it, graph_mb.
"""

import argparse, json, time

import numpy as np

from texmex import read_vecs


def recalls(I, gt, k):
    r1 = float((I[:, 0] == gt[:, 0]).mean())
    r10 = float(np.mean([len(set(I[i, :k]) & set(gt[i, :k])) / k for i in range(len(I))]))
    return r1, r10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--tool", required=True, choices=["faiss", "hnswlib", "usearch"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ef", default="16,32,64,128,256")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=32)
    ap.add_argument("--efc", type=int, default=40)
    a = ap.parse_args()
    xb = read_vecs(f"{a.data}/base.fvecs", np.float32)
    xq = read_vecs(f"{a.data}/query.fvecs", np.float32)
    gt = read_vecs(f"{a.data}/groundtruth.ivecs", np.int32)
    n, d = xb.shape
    graph_mb = None
    t0 = time.perf_counter()
    if a.tool == "faiss":
        import faiss

        faiss.omp_set_num_threads(a.threads)
        index = faiss.IndexHNSWFlat(d, a.M)
        index.hnsw.efConstruction = a.efc
        index.add(xb)
        h = index.hnsw
        graph_mb = (h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4) / 2**20
        version = faiss.__version__

        def search(ef):
            index.hnsw.efSearch = ef
            return index.search(xq, a.k)[1]

    elif a.tool == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="l2", dim=d)
        index.init_index(max_elements=n, ef_construction=a.efc, M=a.M, random_seed=100)
        index.set_num_threads(a.threads)
        index.add_items(xb, np.arange(n))
        version = getattr(hnswlib, "__version__", "?")

        def search(ef):
            index.set_ef(ef)
            return index.knn_query(xq, k=a.k, num_threads=a.threads)[0]

    else:
        import usearch
        from usearch.index import Index

        index = Index(ndim=d, metric="l2sq", dtype="f32", connectivity=a.M,
                      expansion_add=a.efc, expansion_search=16)
        index.add(np.arange(n, dtype=np.uint64), xb, threads=a.threads)
        version = usearch.__version__

        def search(ef):
            index.expansion_search = ef
            return index.search(xq, a.k, threads=a.threads).keys.astype(np.int64)

    build_s = time.perf_counter() - t0
    for ef in [int(v) for v in a.ef.split(",") if v]:
        best = 1e30
        for _ in range(3):
            t = time.perf_counter()
            I = search(ef)
            best = min(best, time.perf_counter() - t)
        r1, r10 = recalls(np.asarray(I), gt, a.k)
        print(json.dumps({"tool": a.tool, "version": version, "threads": a.threads,
                          "build_s": build_s, "ef": ef, "qps": len(xq) / best,
                          "recall_at_1": r1, "recall_10_at_10": r10, "graph_mb": graph_mb}),
              flush=True)


if __name__ == "__main__":
    main()
