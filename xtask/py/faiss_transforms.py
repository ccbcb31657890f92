#!/usr/bin/env python3
"""faiss-cpu (and numpy) side of `cargo xtask bench`'s transform rows, on learn.fvecs:

  --pca N : time faiss.PCAMatrix(d, N) training; explained-variance ratios from faiss and
            from numpy's own eigendecomposition of the covariance (the reference).
  --opq M : time faiss.OPQMatrix(d, M) training, then train a ProductQuantizer(d, M, 8) on
            the rotated data and report its mean squared reconstruction error per vector.
  --kmeans K [--on-base] : time faiss.Kmeans(d, K, niter=20, seed=1) on learn.fvecs (or
            base.fvecs), as faiss_ref.py --kmeans but able to use the base set.
One JSON object on stdout."""
import argparse, json, time
import numpy as np
import faiss

from texmex import read_vecs


ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--pca", type=int, default=0)
ap.add_argument("--opq", type=int, default=0)
ap.add_argument("--kmeans", type=int, default=0)
ap.add_argument("--on-base", action="store_true")
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()
if a.threads:
    faiss.omp_set_num_threads(a.threads)
x = read_vecs(f"{a.data}/{'base' if a.on_base else 'learn'}.fvecs")
n, d = x.shape
out = {"tool": "faiss", "n": n, "d": d, "threads": faiss.omp_get_max_threads()}
if a.pca:
    t = time.perf_counter()
    pca = faiss.PCAMatrix(d, a.pca)
    pca.train(x)
    out["seconds"] = time.perf_counter() - t
    ev = faiss.vector_to_array(pca.eigenvalues).astype(np.float64)
    out["explained_variance_ratio"] = (ev[: a.pca] / ev.sum()).tolist()
    xc = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    w = np.linalg.eigvalsh(xc.T @ xc)[::-1]
    out["numpy_explained_variance_ratio"] = (w[: a.pca] / w.sum()).tolist()
if a.opq:
    t = time.perf_counter()
    opq = faiss.OPQMatrix(d, a.opq)
    opq.train(x)
    out["seconds"] = time.perf_counter() - t
    y = opq.apply(x)
    pq = faiss.ProductQuantizer(d, a.opq, 8)
    pq.train(y)
    r = pq.decode(pq.compute_codes(y))
    out["pq_mse"] = float(((y - r) ** 2).sum() / n)
if a.kmeans:
    t = time.perf_counter()
    km = faiss.Kmeans(d, a.kmeans, niter=20, seed=1)
    km.train(x)
    out["seconds"] = time.perf_counter() - t
    out["objective"] = float(km.obj[-1])
print(json.dumps(out), flush=True)
