"""Issue 29: Faiss code that runs on faiss runs on `import fathom as faiss`.

Each test is a Faiss-style snippet run unchanged on both modules (the `lib` parameter is
faiss-cpu or fathom), and the results compared.
"""

import numpy as np
import pytest

import fathom


@pytest.fixture(params=["fathom", "faiss"])
def lib(request, faiss):
    return fathom if request.param == "fathom" else faiss


def both(faiss, snippet):
    """Runs `snippet(module)` on faiss-cpu and on fathom; returns (fathom's, faiss's)."""
    return snippet(fathom), snippet(faiss)


def test_knn_and_pairwise_distances(clustered, faiss):
    _, xb, xq = clustered
    xb, xq = xb[:3000], xq[:200]
    for metric in [1, 0]:  # METRIC_L2, METRIC_INNER_PRODUCT

        def snippet(lib):
            D, I = lib.knn(xq, xb, 10, metric=metric)
            P = lib.pairwise_distances(xq[:20], xb[:500], metric=metric)
            return D, I, P

        (D, I, P), (Df, If, Pf) = both(faiss, snippet)
        assert D.shape == I.shape == (200, 10) and I.dtype == np.int64
        np.testing.assert_allclose(D, Df, rtol=1e-4, atol=1e-3)
        assert (I == If).mean() > 0.99
        np.testing.assert_allclose(P, Pf, rtol=1e-4, atol=1e-3)
    # L1 goes through the same call with metric_arg left at its default.
    D, I = fathom.knn(xq, xb, 5, fathom.METRIC_L1)
    Df, If = faiss.knn(xq, xb, 5, faiss.METRIC_L1)
    np.testing.assert_allclose(D, Df, rtol=1e-4)


def test_kmin_kmax(faiss):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((50, 300)).astype("float32")
    a[:, 7] = a[:, 8]  # ties: faiss's heap may order them either way
    for name in ["kmin", "kmax"]:
        (D, I), (Df, If) = both(faiss, lambda lib: getattr(lib, name)(a, 12))
        np.testing.assert_array_equal(D, Df)
        for row in range(len(a)):
            assert sorted(zip(D[row], I[row])) == sorted(zip(Df[row], If[row]))
    # More wanted than a row holds: padded as faiss pads.
    (D, I), (Df, If) = both(faiss, lambda lib: lib.kmin(a[:, :5], 8))
    np.testing.assert_array_equal(I, If)
    np.testing.assert_array_equal(D, Df)


def test_merge_knn_results_and_result_heap(clustered, faiss):
    _, xb, xq = clustered
    xb, xq = xb[:4000], xq[:100]
    k = 10
    shards = np.array_split(np.arange(len(xb)), 4)

    def sharded(lib, keep_max):
        metric = lib.METRIC_INNER_PRODUCT if keep_max else lib.METRIC_L2
        Ds, Is = [], []
        for ids in shards:
            D, I = lib.knn(xq, xb[ids], k, metric=metric)
            Ds.append(D)
            Is.append(np.where(I >= 0, ids[np.maximum(I, 0)], -1))
        Dall, Iall = np.stack(Ds), np.stack(Is)
        D, I = lib.merge_knn_results(Dall, Iall, keep_max=keep_max)
        rh = lib.ResultHeap(len(xq), k, keep_max=keep_max)
        for Dp, Ip in zip(Ds, Is):
            rh.add_result(Dp, Ip)
        rh.finalize()
        return D, I, rh.D, rh.I

    for keep_max in [False, True]:
        ours, theirs = both(faiss, lambda lib: sharded(lib, keep_max))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
        # The merge equals searching the whole set at once.
        whole = fathom.knn(
            xq, xb, k, metric=fathom.METRIC_INNER_PRODUCT if keep_max else fathom.METRIC_L2
        )
        np.testing.assert_allclose(ours[0], whole[0], rtol=1e-5, atol=1e-4)

    # A shard with fewer than k results: -1 ends its list, and the padding is faiss's.
    Dall = np.array([[[1.0, 2.0, 9.0]], [[1.5, 0.0, 0.0]]], dtype="float32")
    Iall = np.array([[[10, 11, -1]], [[20, -1, -1]]], dtype="int64")
    ours, theirs = both(faiss, lambda lib: lib.merge_knn_results(Dall, Iall))
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[0][0, :3], theirs[0][0, :3])

    # add_result_subset: only the listed queries take the results.
    def subset(lib):
        rh = lib.ResultHeap(4, 2)
        rh.add_result_subset(
            np.array([1, 3]),
            np.array([[3.0, 1.0], [2.0, 5.0]], dtype="float32"),
            np.array([[7, 8], [9, 10]]),
        )
        rh.finalize()
        return rh.D, rh.I

    ours, theirs = both(faiss, subset)
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[0][[1, 3]], theirs[0][[1, 3]])


def test_selectors(lib):
    """IDSelectorNot/And/Or/XOr/Bitmap/Array/All, as faiss's python spells them."""
    mask = np.arange(100) % 3 == 0
    bitmap = lib.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
    arr = lib.IDSelectorArray(np.array([5, 6, 7, 9], dtype="int64"))
    sels = {
        "bitmap": bitmap,
        "array": arr,
        "not": lib.IDSelectorNot(arr),
        "and": lib.IDSelectorAnd(bitmap, arr),
        "or": lib.IDSelectorOr(bitmap, arr),
        "xor": lib.IDSelectorXOr(bitmap, arr),
        "all": lib.IDSelectorAll(),
    }
    member = {name: [s.is_member(i) for i in range(-2, 110)] for name, s in sels.items()}
    ids = range(-2, 110)
    in_arr = [i in (5, 6, 7, 9) for i in ids]
    in_bm = [0 <= i < 100 and i % 3 == 0 for i in ids]
    assert member["bitmap"] == in_bm
    assert member["array"] == in_arr
    assert member["not"] == [not a for a in in_arr]
    assert member["and"] == [a and b for a, b in zip(in_bm, in_arr)]
    assert member["or"] == [a or b for a, b in zip(in_bm, in_arr)]
    assert member["xor"] == [a != b for a, b in zip(in_bm, in_arr)]
    assert all(member["all"])


def test_selectors_restrict_search_and_removal(clustered, faiss):
    _, xb, xq = clustered
    xb = xb[:2000]

    def snippet(lib):
        index = lib.IndexFlatL2(xb.shape[1])
        index.add(xb)
        even = lib.IDSelectorBitmap(np.packbits(np.arange(2000) % 2 == 0, bitorder="little"))
        low = lib.IDSelectorRange(0, 500)
        sel = lib.IDSelectorAnd(even, lib.IDSelectorNot(low))
        D, I = index.search(xq[:50], 5, params=lib.SearchParameters(sel=sel))
        removed = index.remove_ids(lib.IDSelectorOr(low, lib.IDSelectorArray(np.array([1999]))))
        return I, removed, index.ntotal

    (I, removed, n), (If, removedf, nf) = both(faiss, snippet)
    assert ((I % 2 == 0) & (I >= 500)).all()
    np.testing.assert_array_equal(I, If)
    assert (removed, n) == (removedf, nf) == (501, 1499)


def test_clustering_class_with_parameters(clustered, faiss):
    """faiss.Clustering + ClusteringParameters, trained through an index that then holds
    the centroids, as the Faiss wiki's k-means example does."""
    xt, _, _ = clustered
    d, k = xt.shape[1], 50

    def snippet(lib):
        cp = lib.ClusteringParameters()
        cp.niter = 15
        cp.seed = 7
        cp.max_points_per_centroid = 100
        clus = lib.Clustering(d, k, cp)
        assert clus.niter == 15 and clus.seed == 7
        clus.verbose = False
        index = lib.IndexFlatL2(d)
        clus.train(xt, index)
        centroids = lib.vector_to_array(clus.centroids).reshape(k, d)
        _, I = index.search(xt[:500], 1)
        return centroids, I, index.ntotal

    (c, I, n), (cf, If, nf) = both(faiss, snippet)
    assert n == nf == k
    # Same subsample, same initial centroids, same updates: faiss's centroids.
    np.testing.assert_allclose(c, cf, rtol=1e-3, atol=1e-3)
    assert (I == If).mean() > 0.99
    # Defaults as faiss's.
    a, b = fathom.ClusteringParameters(), faiss.ClusteringParameters()
    for name in ["niter", "nredo", "seed", "min_points_per_centroid", "max_points_per_centroid"]:
        assert getattr(a, name) == getattr(b, name), name
    plain = fathom.Clustering(d, k)
    plain.niter = 5
    plain.train(xt)
    assert fathom.vector_to_array(plain.centroids).shape == (k * d,)


def test_omp_num_threads_environment():
    import subprocess
    import sys

    code = "import fathom; print(fathom.omp_get_max_threads())"
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAYON_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "3"},
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "3"
    bad = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], env={**env, "OMP_NUM_THREADS": "many"},
        capture_output=True, text=True, check=True,
    )
    assert "OMP_NUM_THREADS" in bad.stderr and int(bad.stdout) >= 1


def test_invlists_search_preassigned_and_extract_index_ivf(clustered, faiss):
    """Reading an IVF's lists the way Faiss users do (rev_swig_ptr over get_ids /
    get_codes), search_preassigned with the quantizer's own assignment, and
    extract_index_ivf (of an IVF index: fathom's wrappers do not expose the index they
    wrap yet, and it says so)."""
    xt, xb, xq = clustered
    d = xb.shape[1]
    # The coarse assignment from faiss's quantizer (fathom trains the same centroids; its
    # IVF classes do not expose `quantizer` yet), given to both.
    ref = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, 32)
    ref.train(xt)
    Dq, Iq = ref.quantizer.search(xq[:100], 4)

    def snippet(lib):
        quantizer = lib.IndexFlatL2(d)
        index = lib.IndexIVFFlat(quantizer, d, 32)
        index.train(xt)
        index.add(xb[:5000])
        invlists = index.invlists
        sizes = [invlists.list_size(l) for l in range(invlists.nlist)]
        l0 = int(np.argmax(sizes))
        ids = lib.rev_swig_ptr(invlists.get_ids(l0), sizes[l0]).copy()
        codes = lib.rev_swig_ptr(invlists.get_codes(l0), sizes[l0] * invlists.code_size).copy()
        index.nprobe = 4  # faiss checks Iq's width against it
        D, I = index.search_preassigned(xq[:100], 5, Iq, Dq)
        D2, I2 = index.search(xq[:100], 5)
        inner = lib.extract_index_ivf(lib.IndexIVFFlat(lib.IndexFlatL2(d), d, 8))
        return sizes, ids, codes, invlists.code_size, (D, I), (D2, I2), inner.nlist

    ours, theirs = both(faiss, snippet)
    sizes, ids, codes, cs, pre, full, nlist = ours
    assert sizes == theirs[0] and cs == theirs[3] == 4 * d and nlist == theirs[6] == 8
    np.testing.assert_array_equal(np.sort(ids), np.sort(theirs[1]))
    # Each list holds the vectors themselves for IVF-Flat, in id order of addition.
    rows = codes.view("float32").reshape(-1, d)
    np.testing.assert_array_equal(rows, xb[ids])
    np.testing.assert_allclose(pre[0], theirs[4][0], rtol=1e-4, atol=1e-3)
    # With the quantizer's own assignment it is the ordinary search.
    np.testing.assert_array_equal(pre[1], full[1])
    with pytest.raises(ValueError, match="list"):
        fathom.IndexIVFFlat(fathom.IndexFlatL2(d), d, 4).invlists.list_size(9)
    with pytest.raises(ValueError, match="IVF"):
        fathom.extract_index_ivf(fathom.IndexFlatL2(d))
    # Through a wrapper: the IVF index it holds, as a view.
    wrapped = fathom.IndexIDMap(fathom.IndexIVFFlat(fathom.IndexFlatL2(d), d, 8))
    assert type(fathom.extract_index_ivf(wrapped)).__name__ == "IndexIVFFlat"


def test_settable_ivf_attributes(clustered, faiss):
    """by_residual, quantizer_trains_alone, own_fields, verbose: set as faiss users set
    them, with the same effect on what the index finds."""
    from conftest import ground_truth, intersection_recall

    xt, xb, xq = clustered
    d = xb.shape[1]
    gt = ground_truth(xb[:3000], xq[:200], 10)

    def snippet(lib, by_residual):
        index = lib.IndexIVFPQ(lib.IndexFlatL2(d), d, 16, 8, 8)
        index.verbose = False
        assert not index.verbose
        index.by_residual = by_residual
        assert index.by_residual == by_residual
        index.quantizer_trains_alone = 0  # faiss reads it back as a char, '\x00'
        index.train(xt)
        index.add(xb[:3000])
        index.nprobe = 8
        return intersection_recall(index.search(xq[:200], 10)[1], gt)

    for by_residual in [True, False]:
        ours, theirs = both(faiss, lambda lib: snippet(lib, by_residual))
        assert abs(ours - theirs) < 0.05, (by_residual, ours, theirs)
    index = fathom.IndexIVFFlat(fathom.IndexFlatL2(d), d, 8)
    index.train(xt)
    index.add(xb[:100])
    with pytest.raises(Exception, match="reset"):
        index.by_residual = not index.by_residual
    with pytest.raises(ValueError, match="quantizer_trains_alone"):
        index.quantizer_trains_alone = 5
    index.quantizer_trains_alone = 2
    assert index.quantizer_trains_alone == 2
    # (faiss would free a quantizer Python also owns; in fathom the flag changes nothing.)
    index.own_fields = False
    assert index.own_fields and index.search(xq[:5], 3)[1].shape == (5, 3)
