"""Faiss's getting-started tutorial, run with `import fathom as faiss`, against faiss-cpu
on the same data: exact results for Flat, recall within 0.01 for approximate indexes."""

import numpy as np
import pytest

import fathom
from conftest import assert_recall_matches, ground_truth, intersection_recall, recall_at


def run_tutorial_flat(faiss, xb, xq, k=4):
    index = faiss.IndexFlatL2(xb.shape[1])
    assert index.is_trained
    index.add(xb)
    assert index.ntotal == len(xb)
    D, I = index.search(xb[:5], k)  # sanity check: each vector finds itself
    D2, I2 = index.search(xq, k)
    return D, I, D2, I2


def test_flat_equals_faiss(tutorial, faiss):
    _, xb, xq = tutorial
    D, I, Dq, Iq = run_tutorial_flat(fathom, xb, xq)
    assert (I[:, 0] == np.arange(5)).all()
    assert np.allclose(D[:, 0], 0, atol=1e-4)
    Dr, Ir, Dqr, Iqr = run_tutorial_flat(faiss, xb, xq)
    assert (Iq == Iqr).mean() > 0.999, "labels differ beyond ties"
    np.testing.assert_allclose(Dq, Dqr, rtol=1e-4, atol=1e-4)
    assert Dq.dtype == np.float32 and Iq.dtype == np.int64
    assert Dq.shape == (len(xq), 4)


def test_flat_ip_and_generic_metrics(tutorial, faiss):
    _, xb, xq = tutorial
    for make in (lambda f: f.IndexFlatIP(64), lambda f: f.IndexFlat(64, f.METRIC_L1)):
        a, b = make(fathom), make(faiss)
        a.add(xb)
        b.add(xb)
        Da, Ia = a.search(xq, 5)
        Db, Ib = b.search(xq, 5)
        assert (Ia == Ib).mean() > 0.999
        np.testing.assert_allclose(Da, Db, rtol=1e-4)
        assert a.metric_type == b.metric_type


def ivf_flat(faiss, xb, xq, nlist=100, nprobe=1, k=4):
    quantizer = faiss.IndexFlatL2(xb.shape[1])
    index = faiss.IndexIVFFlat(quantizer, xb.shape[1], nlist)
    assert not index.is_trained
    index.train(xb)
    assert index.is_trained
    index.add(xb)
    index.nprobe = nprobe
    return index.search(xq, k)


@pytest.mark.parametrize("nprobe", [1, 10])
def test_ivf_flat_recall_matches_faiss(tutorial, faiss, nprobe):
    _, xb, xq = tutorial
    gt = ground_truth(xb, xq, 1)
    _, I = ivf_flat(fathom, xb, xq, nprobe=nprobe)
    _, Ir = ivf_flat(faiss, xb, xq, nprobe=nprobe)
    r, rr = recall_at(I, gt, 1), recall_at(Ir, gt, 1)
    assert_recall_matches(r, rr, f"nprobe={nprobe}")


def ivf_pq(faiss, xb, xq, k=10):
    d = xb.shape[1]
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFPQ(quantizer, d, 100, 8, 8)
    index.train(xb)
    index.add(xb)
    index.nprobe = 10
    return index.search(xq, k)


def test_ivf_pq_recall_matches_faiss(tutorial, faiss):
    _, xb, xq = tutorial
    gt = ground_truth(xb, xq, 10)
    _, I = ivf_pq(fathom, xb, xq)
    _, Ir = ivf_pq(faiss, xb, xq)
    for r in (1, 10):
        a, b = recall_at(I, gt, r), recall_at(Ir, gt, r)
        assert_recall_matches(a, b, f"1-recall@{r}")
    assert_recall_matches(intersection_recall(I, gt), intersection_recall(Ir, gt), "10-R@10")


def test_kmeans_matches_faiss(clustered, faiss):
    xt, _, xq = clustered
    km = fathom.Kmeans(xt.shape[1], 50, niter=20, seed=123)
    obj = km.train(xt)
    ref = faiss.Kmeans(xt.shape[1], 50, niter=20, seed=123)
    ref_obj = ref.train(xt)
    assert km.centroids.shape == (50, xt.shape[1])
    assert len(km.obj) == 20
    assert obj == pytest.approx(km.obj[-1])
    assert abs(obj - ref_obj) / ref_obj < 0.01, (obj, ref_obj)
    D, I = km.index.search(xq, 1)
    D2, I2 = km.assign(xq)
    assert (I[:, 0] == I2).all()
    np.testing.assert_allclose(D[:, 0], D2, rtol=1e-5)


def test_spherical_kmeans_gives_unit_centroids(clustered):
    xt = clustered[0]
    km = fathom.Kmeans(xt.shape[1], 10, niter=5, spherical=True)
    km.train(xt)
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1, rtol=1e-4)
    assert isinstance(km.index, fathom.IndexFlatIP)


def test_pca_matches_faiss(clustered, faiss):
    xt, xb, _ = clustered
    a, b = fathom.PCAMatrix(32, 8), faiss.PCAMatrix(32, 8)
    a.train(xt)
    b.train(xt)
    ya, yb = a.apply_py(xb[:500]), b.apply_py(xb[:500])
    assert ya.shape == (500, 8)
    # Components are defined up to their sign.
    np.testing.assert_allclose(np.abs(ya), np.abs(yb), rtol=1e-3, atol=1e-3)
    # fathom maps back to mean + Aᵀy, the preimage nearest the data; Faiss computes
    # Aᵀ(y − b), which loses the part of the mean outside the kept components.
    back = a.reverse_transform(ya)
    np.testing.assert_allclose(back, ya @ a.A + a.mean, rtol=1e-4, atol=1e-4)
    err = ((back - xb[:500]) ** 2).sum()
    err_faiss = ((b.reverse_transform(yb) - xb[:500]) ** 2).sum()
    assert err <= err_faiss * 1.0001, (err, err_faiss)
    np.testing.assert_allclose(a.eigenvalues, faiss.vector_to_array(b.eigenvalues)[:32],
                               rtol=1e-3)


def test_pq_encode_decode_matches_faiss(clustered, faiss):
    xt, xb, _ = clustered
    a, b = fathom.ProductQuantizer(32, 4, 8), faiss.ProductQuantizer(32, 4, 8)
    a.train(xt)
    b.train(xt)
    ca, cb = a.compute_codes(xb[:2000]), b.compute_codes(xb[:2000])
    assert ca.shape == cb.shape == (2000, 4) and ca.dtype == np.uint8
    err_a = ((a.decode(ca) - xb[:2000]) ** 2).sum(1).mean()
    err_b = ((b.decode(cb) - xb[:2000]) ** 2).sum(1).mean()
    assert abs(err_a - err_b) / err_b < 0.02, (err_a, err_b)
    # Decoding then encoding again gives the same codes.
    assert (a.compute_codes(a.decode(ca)) == ca).all()


def test_id_map_matches_faiss(tutorial, faiss):
    _, xb, xq = tutorial
    ids = np.arange(len(xb), dtype="int64") * 10 + 7
    out = []
    for f in (fathom, faiss):
        index = f.IndexIDMap(f.IndexFlatL2(64))
        index.add_with_ids(xb, ids)
        out.append(index.search(xq, 5))
    assert (out[0][1] == out[1][1]).mean() > 0.999
    assert set(out[0][1].ravel()) <= set(ids)


def test_pretransform_matches_faiss(clustered, faiss):
    xt, xb, xq = clustered
    gt = ground_truth(xb, xq, 1)
    rec = []
    for f in (fathom, faiss):
        pca = f.PCAMatrix(32, 16)
        index = f.IndexPreTransform(pca, f.IndexFlatL2(16))
        index.train(xt)
        index.add(xb)
        rec.append(recall_at(index.search(xq, 10)[1], gt, 1))
    assert_recall_matches(rec[0], rec[1])


def test_refine_flat_matches_faiss(clustered, faiss):
    xt, xb, xq = clustered
    gt = ground_truth(xb, xq, 1)
    rec = []
    for f in (fathom, faiss):
        base = f.IndexIVFPQ(f.IndexFlatL2(32), 32, 64, 4, 8)
        index = f.IndexRefineFlat(base)
        index.train(xt)
        index.add(xb)
        index.k_factor = 4
        ps = f.ParameterSpace()
        ps.set_index_parameters(index, "nprobe=8")
        rec.append(recall_at(index.search(xq, 10)[1], gt, 1))
    assert_recall_matches(rec[0], rec[1])
    assert rec[0] > 0.75


FACTORY = [
    ("Flat", None),
    ("IVF64,Flat", "nprobe=8"),
    ("IVF64,SQ8", "nprobe=8"),
    ("PCA16,IVF64,Flat", "nprobe=8"),
    ("IVF64,PQ8", "nprobe=8"),
    ("OPQ8,IVF64,PQ8", "nprobe=8"),
    ("IVF64,PQ8x4fs,RFlat", "nprobe=8,k_factor_rf=4"),
    ("PQ8", None),
    ("SQ4", None),
    ("HNSW16", "efSearch=64"),
    ("IDMap,Flat", None),
]


@pytest.mark.parametrize("desc,params", FACTORY)
def test_factory_strings_match_faiss(clustered, faiss, desc, params):
    xt, xb, xq = clustered
    gt = ground_truth(xb, xq, 1)
    rec = []
    for f in (fathom, faiss):
        index = f.index_factory(32, desc)
        index.train(xt)
        if desc.startswith("IDMap"):
            index.add_with_ids(xb, np.arange(len(xb)))
        else:
            index.add(xb)
        if params:
            f.ParameterSpace().set_index_parameters(index, params)
        rec.append(recall_at(index.search(xq, 10)[1], gt, 1))
    assert_recall_matches(rec[0], rec[1], desc)


def test_factory_gives_specific_classes():
    assert isinstance(fathom.index_factory(8, "Flat"), fathom.IndexFlatL2)
    assert isinstance(fathom.index_factory(8, "Flat", fathom.METRIC_INNER_PRODUCT), fathom.IndexFlatIP)
    ivf = fathom.index_factory(8, "IVF10,PQ4")
    assert isinstance(ivf, fathom.IndexIVFPQ) and isinstance(ivf, fathom.IndexIVF)
    assert isinstance(ivf, fathom.Index)
    assert isinstance(fathom.index_factory(8, "HNSW8"), fathom.IndexHNSWFlat)
    assert isinstance(fathom.index_factory(8, "IDMap2,Flat"), fathom.IndexIDMap2)
    assert isinstance(fathom.index_factory(8, "PCA4,Flat"), fathom.IndexPreTransform)
    assert fathom.reverse_index_factory(ivf) == "IVF10,PQ4"


def test_write_read_both_ways(clustered, faiss, tmp_path):
    xt, xb, xq = clustered
    for desc in ["IVF64,Flat", "IVF64,PQ8", "HNSW16", "PCA16,IVF64,SQ8", "IDMap,Flat"]:
        ours = fathom.index_factory(32, desc)
        ours.train(xt)
        if desc.startswith("IDMap"):
            ours.add_with_ids(xb, np.arange(len(xb)) * 3)
        else:
            ours.add(xb)
        path = str(tmp_path / "ours.index")
        fathom.write_index(ours, path)
        theirs = faiss.read_index(path)
        assert theirs.ntotal == ours.ntotal and theirs.d == ours.d
        D, I = ours.search(xq, 5)
        Dr, Ir = theirs.search(xq, 5)
        assert (I == Ir).mean() > 0.999, desc
        np.testing.assert_allclose(D, Dr, rtol=1e-3, atol=1e-3)

        # And back: faiss writes, fathom reads.
        path2 = str(tmp_path / "theirs.index")
        faiss.write_index(theirs, path2)
        again = fathom.read_index(path2)
        D2, I2 = again.search(xq, 5)
        assert (I2 == Ir).mean() > 0.999, desc


def test_faiss_built_index_opens_in_fathom(clustered, faiss, tmp_path):
    xt, xb, xq = clustered
    ref = faiss.index_factory(32, "IVF64,PQ8")
    ref.train(xt)
    ref.add(xb)
    ref.nprobe = 8
    path = str(tmp_path / "faiss.index")
    faiss.write_index(ref, path)
    ours = fathom.read_index(path)
    assert isinstance(ours, fathom.IndexIVFPQ)
    assert ours.nprobe == 8
    D, I = ours.search(xq, 10)
    Dr, Ir = ref.search(xq, 10)
    assert (I == Ir).mean() > 0.99
    mapped = fathom.read_index(path, fathom.IO_FLAG_MMAP)
    assert (mapped.search(xq, 10)[1] == I).all()
