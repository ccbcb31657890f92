"""Shared data for fathom's pytest suite.

The datasets are the Faiss tutorial's (uniform random vectors with a drift along the first
component), deterministic, small enough for a 2-core CI machine. `faiss` is faiss-cpu when
it is installed beside fathom; comparisons with it are skipped otherwise.
"""

import numpy as np
import pytest

import fathom

try:
    import faiss as faiss_ref  # the reference implementation, when installed
except ImportError:  # pragma: no cover - depends on the machine
    faiss_ref = None


def tutorial_data(d=64, nb=20000, nq=2000, nt=None, seed=1234):
    rs = np.random.RandomState(seed)
    xb = rs.random((nb, d)).astype("float32")
    xb[:, 0] += np.arange(nb) / 1000.0
    xq = rs.random((nq, d)).astype("float32")
    xq[:, 0] += np.arange(nq) / 1000.0
    xt = xb if nt is None else rs.random((nt, d)).astype("float32")
    return xt, xb, xq


def clustered_data(d=32, nb=20000, nq=2000, nt=10000, ncenters=50, seed=1338):
    """Points around `ncenters` centres: approximate indexes reach high recall on them."""
    rs = np.random.RandomState(seed)
    centres = rs.normal(size=(ncenters, d)).astype("float32") * 4

    def draw(n):
        c = centres[rs.randint(ncenters, size=n)]
        return (c + rs.normal(size=(n, d))).astype("float32")

    return draw(nt), draw(nb), draw(nq)


def ground_truth(xb, xq, k, metric="l2"):
    if metric == "l2":
        dist = (xq ** 2).sum(1)[:, None] - 2 * xq @ xb.T + (xb ** 2).sum(1)[None, :]
        return np.argsort(dist, axis=1)[:, :k]
    return np.argsort(-(xq @ xb.T), axis=1)[:, :k]


def recall_at(I, gt, r=1):
    """1-recall@r: how often the true nearest neighbour is among the first r results."""
    return float((I[:, :r] == gt[:, :1]).any(axis=1).mean())


def intersection_recall(I, gt):
    k = gt.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(I, gt)]))


def assert_recall_matches(ours, theirs, what="", tol=0.01):
    """fathom's recall is Faiss's within `tol`, or above it (training draws and graph
    insertion orders differ, so fathom may land higher; lower would be a regression)."""
    assert ours >= theirs - tol, f"{what}: fathom {ours:.3f} < faiss {theirs:.3f} - {tol}"


@pytest.fixture(scope="session")
def tutorial():
    return tutorial_data()


@pytest.fixture(scope="session")
def clustered():
    return clustered_data()


@pytest.fixture
def faiss():
    if faiss_ref is None:
        pytest.skip("faiss-cpu is not installed; the comparisons with it are skipped")
    return faiss_ref


@pytest.fixture
def fa():
    return fathom
