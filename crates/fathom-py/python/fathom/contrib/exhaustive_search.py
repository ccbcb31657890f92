"""Exact searches over data that arrives in blocks (Faiss's ``contrib.exhaustive_search``).

Every function runs on the CPU: fathom's GPU indexes are reached from Rust, so the ``ngpu``
and ``shard`` arguments are accepted for compatibility and only ``0``/``-1`` (no GPU) are
meaningful.
"""

import logging
import time

import numpy as np

import fathom

LOG = logging.getLogger(__name__)

#: Faiss kept its ``knn`` here once; code importing it from this module still works.
knn = fathom.knn


def _keeps_max(metric_type):
    """Whether larger values are better (similarities) for ``metric_type``."""
    return metric_type == fathom.METRIC_INNER_PRODUCT


def _cpu_only(ngpu):
    if ngpu not in (0, -1):
        raise ValueError(
            f"ngpu={ngpu}: fathom's Python module searches on the CPU; pass ngpu=0 "
            "(GPU search is available from Rust through fathom-gpu)")


def knn_ground_truth(xq, db_iterator, k, metric_type=fathom.METRIC_L2, shard=False, ngpu=-1):
    """Exact ``k`` nearest neighbours of ``xq`` in a database that ``db_iterator`` yields
    block by block (e.g. one that does not fit in memory). Ids number the vectors in the
    order they arrive. Returns ``(D, I)``, shape ``(nq, k)``."""
    _cpu_only(ngpu)
    xq = np.ascontiguousarray(xq, dtype="float32")
    nq, d = xq.shape
    t0 = time.time()
    heap = fathom.ResultHeap(nq, k, keep_max=_keeps_max(metric_type))
    index = fathom.IndexFlat(d, metric_type)
    seen = 0
    for block in db_iterator:
        index.add(block)
        D, I = index.search(xq, k)
        # Missing results keep id -1; the others are shifted to database numbering.
        I[I >= 0] += seen
        heap.add_result(D, I)
        index.reset()
        seen += len(block)
        LOG.info("%d database vectors, %.3f s", seen, time.time() - t0)
    heap.finalize()
    return heap.D, heap.I


def range_ground_truth(xq, db_iterator, threshold, metric_type=fathom.METRIC_L2,
                       shard=False, ngpu=-1):
    """Every database vector within ``threshold`` of each query (below it for distances,
    above it for similarities), over a database given block by block. Returns
    ``(lims, D, I)`` as ``range_search`` does."""
    _cpu_only(ngpu)
    xq = np.ascontiguousarray(xq, dtype="float32")
    nq, d = xq.shape
    index = fathom.IndexFlat(d, metric_type)
    per_query_D = [[] for _ in range(nq)]
    per_query_I = [[] for _ in range(nq)]
    seen = 0
    for block in db_iterator:
        index.add(block)
        lims, D, I = index.range_search(xq, threshold)
        index.reset()
        I = I + seen
        for q in range(nq):
            lo, hi = int(lims[q]), int(lims[q + 1])
            if hi > lo:
                per_query_D[q].append(D[lo:hi])
                per_query_I[q].append(I[lo:hi])
        seen += len(block)
    D = [np.concatenate(p) if p else np.zeros(0, "float32") for p in per_query_D]
    I = [np.concatenate(p) if p else np.zeros(0, "int64") for p in per_query_I]
    lims = np.zeros(nq + 1, dtype="uint64")
    lims[1:] = np.cumsum([len(i) for i in I])
    return lims, np.concatenate(D), np.concatenate(I)


def _inside(dis, thresh, keep_max):
    return dis > thresh if keep_max else dis < thresh


def threshold_radius_nres(nres, dis, ids, thresh, keep_max=False):
    """Keeps the results strictly inside ``thresh``; ``nres`` is the number of results per
    query. Returns ``(nres, dis, ids)`` of what is kept."""
    mask = _inside(dis, thresh, keep_max)
    ends = np.cumsum(np.asarray(nres, dtype="int64"))
    kept_before = np.concatenate([[0], np.cumsum(mask)])
    starts = ends - np.asarray(nres, dtype="int64")
    new_nres = (kept_before[ends] - kept_before[starts]).astype(np.asarray(nres).dtype)
    return new_nres, dis[mask], ids[mask]


def threshold_radius(lims, dis, ids, thresh, keep_max=False):
    """Keeps the range-search results ``(lims, dis, ids)`` strictly inside ``thresh``."""
    lims = np.asarray(lims)
    mask = _inside(dis, thresh, keep_max)
    kept_before = np.concatenate([[0], np.cumsum(mask)])
    new_lims = kept_before[lims.astype("int64")].astype(lims.dtype)
    return new_lims, dis[mask], ids[mask]


def apply_maxres(res_batches, target_nres, keep_max=False):
    """Finds the radius that leaves ``target_nres`` results in ``res_batches`` (a list of
    ``(nres, dis, ids)``), and applies it to the batches in place. Returns
    ``(radius, results left)``."""
    alldis = np.concatenate([dis for _, dis, _ in res_batches])
    if len(alldis) <= target_nres:
        raise ValueError(
            f"apply_maxres: {len(alldis)} results, which is not more than the "
            f"{target_nres} wanted")
    if keep_max:
        radius = np.partition(alldis, len(alldis) - target_nres - 1)[len(alldis) - target_nres - 1]
    else:
        radius = np.partition(alldis, target_nres)[target_nres]
    radius = float(radius) if alldis.dtype.kind == "f" else int(radius)
    total = 0
    for b, (nres, dis, ids) in enumerate(res_batches):
        res_batches[b] = threshold_radius_nres(nres, dis, ids, radius, keep_max=keep_max)
        total += len(res_batches[b][1])
    return radius, total


def range_search_max_results(index, query_iterator, radius, max_results=None,
                             min_results=None, shard=False, ngpu=0, clip_to_min=False):
    """Range search over queries given block by block, tightening the radius whenever
    the results so far exceed ``max_results`` (down to ``min_results``, 0.8 of the
    maximum by default). Returns ``(radius, lims, D, I)`` with the final radius applied
    to every query."""
    _cpu_only(ngpu)
    if max_results is None and min_results is None:
        raise ValueError("range_search_max_results: give max_results or min_results")
    if min_results is None:
        min_results = int(0.8 * max_results)
    if max_results is None:
        max_results = int(min_results * 1.5)
    keep_max = _keeps_max(getattr(index, "metric_type", fathom.METRIC_L2))
    binary = isinstance(index, fathom.IndexBinary)
    batches = []
    total = 0
    for xqi in query_iterator:
        lims, D, I = index.range_search(xqi, radius)
        if binary:
            D = D.astype("int16")
        lims = np.asarray(lims, dtype="int64")
        batches.append((lims[1:] - lims[:-1], D, I))
        total += len(D)
        if total > max_results:
            LOG.info("%d results > %d: tightening the radius", total, max_results)
            radius, total = apply_maxres(batches, min_results, keep_max=keep_max)
    if clip_to_min and total > min_results:
        radius, total = apply_maxres(batches, min_results, keep_max=keep_max)
    nres = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, "int64")
    lims = np.zeros(len(nres) + 1, dtype="uint64")
    lims[1:] = np.cumsum(nres)
    D = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0, "float32")
    I = np.concatenate([b[2] for b in batches]) if batches else np.zeros(0, "int64")
    return radius, lims, D, I


def exponential_query_iterator(xq, start_bs=32, max_bs=20000):
    """Yields ``xq`` in batches that double from ``start_bs`` up to ``max_bs``: the radius
    adapts on small batches before large ones can overflow the results."""
    bs = start_bs
    i = 0
    while i < len(xq):
        batch = xq[i:i + bs]
        yield batch
        i += len(batch)
        bs = min(bs * 2, max_bs) if bs < max_bs else bs
