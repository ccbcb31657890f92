"""Bad input at every entry point raises a Python exception that says what was wrong —
never a crash, never a Rust panic (pyo3's PanicException derives from BaseException, so
catching `Exception` below lets one through and fails the test)."""

import itertools
import os

import numpy as np
import pytest

import fathom

D = 8


def vecs(n=100, d=D, seed=0):
    return np.random.RandomState(seed).random((n, d)).astype("float32")


def raises(exc, fn, *args, match=None, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


def trained(desc, n=500):
    index = fathom.index_factory(D, desc)
    index.train(vecs(n))
    index.add(vecs(n))
    return index


def test_constructors():
    raises(ValueError, fathom.IndexFlatL2, 0, match="d must be at least 1")
    raises(ValueError, fathom.IndexFlatL2, -3)
    raises(TypeError, fathom.IndexFlatL2, "8")
    raises(RuntimeError, fathom.IndexFlat, D, 99, match="metric")
    raises(ValueError, fathom.IndexIVFFlat, "not an index", D, 4, match="quantizer")
    raises(ValueError, fathom.IndexIVFFlat, fathom.IndexFlatL2(D + 1), D, 4, match="dimension")
    raises(ValueError, fathom.IndexIVFFlat, fathom.IndexFlatL2(D), D, 0, match="nlist")
    raises(RuntimeError, fathom.IndexIVFPQ, fathom.IndexFlatL2(D), D, 4, 3, 8, match="multiple")
    raises(RuntimeError, fathom.IndexPQ, D, 4, 40)
    raises(ValueError, fathom.IndexScalarQuantizer, D, 99, match="scalar quantizer type")
    raises(ValueError, fathom.IndexLSH, D, 0)
    raises(ValueError, fathom.IndexHNSWFlat, D, 0)
    raises(ValueError, fathom.IndexPQFastScan, D, 4, 8, match="4-bit")
    raises(RuntimeError, fathom.IndexPQFastScan, D, 4, 4, bbs=33, match="32")
    raises(ValueError, fathom.IndexIVFPQR, fathom.IndexFlatL2(D), D, 4, 2, 8, 2, 4)
    raises(RuntimeError, fathom.MultiIndexQuantizer, D, 4, 20)
    full = fathom.IndexFlatL2(D)
    full.add(vecs(3))
    raises(ValueError, fathom.IndexIDMap, full, match="empty")
    raises(ValueError, fathom.IndexRefineFlat, full, match="empty")
    raises(ValueError, fathom.IndexPreTransform, full, fathom.IndexFlatL2(D))
    raises(RuntimeError, fathom.IndexPreTransform, fathom.PCAMatrix(D, 4), fathom.IndexFlatL2(D))
    raises(ValueError, fathom.IndexShards, 0)
    raises(RuntimeError, fathom.index_factory, D, "IVF16,Nonsense", match="Nonsense")
    raises(RuntimeError, fathom.index_factory, 0, "Flat")
    raises(RuntimeError, fathom.index_factory, D, "")


BAD_ARRAYS = [
    ("strings", np.array([["a"] * D] * 3), TypeError, "dtype"),
    ("objects", np.array([[object()] * D] * 3), TypeError, "dtype"),
    ("complex", np.ones((3, D), dtype=np.complex64), TypeError, "dtype"),
    ("bools", np.ones((3, D), dtype=bool), TypeError, "dtype"),
    ("1-D", np.ones(D, dtype="float32"), ValueError, "reshape"),
    ("3-D", np.ones((2, 3, D), dtype="float32"), ValueError, "2-D"),
    ("wrong d", np.ones((3, D + 1), dtype="float32"), ValueError, "expected d"),
    ("ragged list", [[1.0] * D, [1.0]], TypeError, "array"),
    ("None", None, TypeError, None),
]


@pytest.mark.parametrize("name,x,exc,msg", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_arrays_everywhere(name, x, exc, msg):
    index = trained("IVF4,Flat")
    before = index.ntotal
    for call in (index.add, index.train, lambda v: index.search(v, 3),
                 lambda v: index.range_search(v, 1.0), lambda v: index.assign(v, 2),
                 lambda v: index.add_with_ids(v, np.arange(3))):
        with pytest.raises(exc, match=msg):
            call(x)
    assert index.ntotal == before  # nothing stored by a refused call


def test_values_and_shapes_that_convert_are_accepted():
    index = fathom.IndexFlatL2(D)
    x = vecs(50)
    index.add(x.astype("float64"))  # converted, as Faiss's wrappers do
    index.add(x.astype("int32"))
    index.add(x.tolist())
    index.add(np.asfortranarray(x))
    wide = np.ascontiguousarray(np.hstack([x, x]))
    index.add(wide[:, ::2])  # a strided view is copied
    assert index.ntotal == 250
    np.testing.assert_array_equal(index.search(wide[:, ::2], 1)[1][:, 0] % 50, np.arange(50))
    assert index.search(np.zeros((0, D), dtype="float32"), 3)[0].shape == (0, 3)


def test_non_finite_and_k():
    index = trained("Flat")
    bad = vecs(3)
    bad[1, 2] = np.nan
    raises(RuntimeError, index.add, bad, match="finite|NaN")
    bad[1, 2] = np.inf
    raises(RuntimeError, index.search, bad, 3, match="finite|NaN|inf")
    raises(RuntimeError, index.add, np.full((2, D), 1e40), match="finite|inf")
    raises(ValueError, index.search, vecs(2), 0, match="k must be at least 1")
    raises(ValueError, index.search, vecs(2), -5, match="k must be at least 1")
    raises(RuntimeError, index.search, vecs(2), 10**15, match="memory|k")
    raises(TypeError, index.search, vecs(2), "3")
    raises(RuntimeError, index.range_search, vecs(2), float("nan"), match="radius is NaN")


def test_untrained_and_unsupported():
    ivf = fathom.index_factory(D, "IVF4,PQ4")
    raises(RuntimeError, ivf.add, vecs(10), match="not trained")
    raises(RuntimeError, ivf.search, vecs(1), 1, match="not trained")
    raises(RuntimeError, fathom.IndexIVFFlat(fathom.IndexFlatL2(D), D, 64).train, vecs(10),
           match="at least")
    h = trained("HNSW8")
    raises(RuntimeError, h.remove_ids, np.array([1]), match="HNSW|remov|support")
    raises(RuntimeError, h.reconstruct, 10**9)
    raises(RuntimeError, trained("Flat").reconstruct, -1)
    raises(RuntimeError, trained("Flat").reconstruct_n, 400, 200)
    raises(ValueError, trained("Flat").reconstruct_n, -1, 2)
    raises(RuntimeError, trained("IVF4,Flat").reconstruct, 0, match="direct map")
    raises(RuntimeError, trained("Flat").make_direct_map)
    raises(RuntimeError, trained("IVF4,Flat").merge_from, trained("Flat"), match="same kind")
    flat = trained("Flat")
    raises(ValueError, flat.merge_from, flat, match="itself")
    raises(ValueError, flat.merge_from, trained("Flat"), 5, match="add_id")


def test_ids():
    index = fathom.IndexIDMap(fathom.IndexFlatL2(D))
    raises(ValueError, index.add_with_ids, vecs(3), np.arange(4), match="3 vectors")
    raises(TypeError, index.add_with_ids, vecs(3), np.arange(3.0), match="integer")
    raises(ValueError, index.add_with_ids, vecs(3), np.arange(6).reshape(3, 2), match="1-D")
    raises(ValueError, index.add_with_ids, vecs(1), np.array([2**63], dtype=np.uint64),
           match="2\\^63")
    raises(RuntimeError, index.add, vecs(3), match="add_with_ids|ids")
    raises(TypeError, index.remove_ids, "1,2,3")
    raises(TypeError, fathom.IDSelectorBatch, np.array([1.5]))
    raises(ValueError, fathom.IDSelectorBatch, 3, np.arange(2))
    assert index.ntotal == 0


def test_attributes():
    ivf = trained("IVF4,Flat")
    for bad in (0, -1):
        raises(ValueError, setattr, ivf, "nprobe", bad)
    raises(TypeError, setattr, ivf, "nprobe", "many")
    assert ivf.nprobe == 1
    h = fathom.IndexHNSWFlat(D, 8)
    raises(ValueError, setattr, h.hnsw, "efSearch", 0)
    raises(AttributeError, setattr, fathom.IndexFlatL2(D), "nprobe", 3)
    raises(ValueError, fathom.SearchParametersIVF, nprobe=0)
    raises(ValueError, fathom.SearchParametersHNSW, efSearch=-1)
    raises(RuntimeError, setattr, fathom.IndexRefineFlat(fathom.IndexFlatL2(D)), "k_factor", 0)


def test_parameter_space_errors():
    ivf = trained("IVF4,Flat")
    ps = fathom.ParameterSpace()
    raises(RuntimeError, ps.n_combinations, match="initialize")
    ps.initialize(ivf)
    raises(RuntimeError, ps.set_index_parameters, ivf, "nprobe=0", match="nprobe")
    raises(RuntimeError, ps.set_index_parameters, ivf, "nprobe=abc")
    raises(RuntimeError, ps.set_index_parameters, ivf, "efSearch=10", match="efSearch")
    raises(RuntimeError, ps.set_index_parameters, ivf, "nprobe")
    raises(ValueError, ps.set_index_parameters, ivf, 10**6, match="out of range")
    raises(ValueError, ps.combination_name, 10**6)
    raises(RuntimeError, ps.set_index_parameter, ivf, "bogus", 1.0, match="bogus")
    assert ivf.nprobe == 1


def test_normalize_l2_refuses_what_it_cannot_write(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, vecs(100))
    mapped = np.load(path, mmap_mode="r")[:12]
    raises(ValueError, fathom.normalize_L2, mapped, match="read-only.*np.array")
    frozen = vecs(4)
    frozen.setflags(write=False)
    raises(ValueError, fathom.normalize_L2, frozen, match="read-only")
    raises(TypeError, fathom.normalize_L2, vecs(4).astype("float64"), match="float32")
    raises(TypeError, fathom.normalize_L2, vecs(4).tolist(), match="float32")
    raises(TypeError, fathom.normalize_L2, vecs(4)[0], match="2-D")
    raises(ValueError, fathom.normalize_L2, vecs(4, 16)[:, ::2], match="contiguous")
    np.testing.assert_array_equal(np.load(path)[:12], mapped)  # the file is untouched
    x = vecs(4)
    x[2] = 0
    fathom.normalize_L2(x)
    np.testing.assert_allclose(np.linalg.norm(x[[0, 1, 3]], axis=1), 1, rtol=1e-6)
    assert (x[2] == 0).all()


def test_files(tmp_path):
    index = trained("IVF4,PQ4")
    good = tmp_path / "good.index"
    fathom.write_index(index, str(good))
    data = good.read_bytes()
    raises(RuntimeError, fathom.read_index, str(tmp_path / "missing.index"), match="missing")
    raises(RuntimeError, fathom.read_index, str(tmp_path))
    for cut in (0, 3, 20, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.index"
        p.write_bytes(data[:cut])
        raises(RuntimeError, fathom.read_index, str(p))
    rs = np.random.RandomState(5)
    for trial in range(30):
        corrupt = bytearray(data)
        for pos in rs.randint(0, len(data), size=3):
            corrupt[pos] = rs.randint(256)
        p = tmp_path / "corrupt.index"
        p.write_bytes(bytes(corrupt))
        try:
            r = fathom.read_index(str(p))
            r.search(vecs(2), 3)  # a flip in the codes may still read; it must not crash
        except RuntimeError:
            pass
    raises(RuntimeError, fathom.deserialize_index, np.zeros(0, dtype=np.uint8))
    raises(RuntimeError, fathom.deserialize_index, np.frombuffer(b"IxFl garbage", dtype=np.uint8))
    raises(TypeError, fathom.deserialize_index, np.zeros(8, dtype=np.float32))
    raises(RuntimeError, fathom.write_index, index, str(tmp_path / "no" / "such" / "dir.index"))
    raises(ValueError, fathom.read_index, str(good), 1 << 20, match="io_flags")
    assert fathom.read_index(good).ntotal == index.ntotal  # a pathlib.Path works too


def test_clustering_transforms_and_codecs():
    raises(RuntimeError, fathom.Kmeans(D, 50).train, vecs(10), match="at least")
    raises(TypeError, fathom.Kmeans, D, 4, nitre=3, match="nitre")
    if fathom.get_num_gpus() == 0:  # gpu=True clusters on the GPU where there is one
        raises(RuntimeError, fathom.Kmeans(D, 4, gpu=True).train, vecs(100), match="GPU")
    raises(ValueError, fathom.Kmeans(D, 4).train, vecs(100), weights=np.ones(100))
    raises(RuntimeError, fathom.Kmeans(D, 4).assign, vecs(3), match="train")
    raises(RuntimeError, fathom.Kmeans, D, 0)
    raises(RuntimeError, fathom.Kmeans(D, 4, niter=0).train, vecs(100), match="niter")
    bad = vecs(100)
    bad[5, 5] = np.nan
    raises(RuntimeError, fathom.Kmeans(D, 4).train, bad, match="finite|NaN")

    raises(RuntimeError, fathom.PCAMatrix(D, 4).apply, vecs(3), match="train")
    raises(RuntimeError, fathom.PCAMatrix, D, D + 4)
    w = fathom.PCAMatrix(D, 4, eigen_power=-0.5)
    w.train(vecs(200))
    raises(RuntimeError, w.reverse_transform, vecs(3, 4), match="whitening")
    raises(ValueError, w.apply, vecs(3, 5))
    raises(ValueError, fathom.NormalizationTransform, D, 1.0)
    raises(RuntimeError, fathom.RemapDimensionsTransform, 0, 4)

    raises(RuntimeError, fathom.ProductQuantizer, 10, 3, 8, match="multiple")
    pq = fathom.ProductQuantizer(D, 2, 4)
    raises(RuntimeError, pq.compute_codes, vecs(3), match="not trained")
    pq.train(vecs(300))
    raises(ValueError, pq.decode, np.zeros((3, 5), dtype=np.uint8), match="shape")
    raises(TypeError, pq.decode, np.zeros((3, 1), dtype=np.float32), match="uint8")
    raises(TypeError, pq.decode, np.zeros((3, 1), dtype=np.uint16), match="uint8")
    raises(ValueError, fathom.ScalarQuantizer, D, 42)
    sq = fathom.ScalarQuantizer(D, fathom.ScalarQuantizer.QT_8bit)
    raises(RuntimeError, sq.decode, np.zeros((1, D), dtype=np.uint8), match="not trained")
    raises(ValueError, fathom.omp_set_num_threads, 0)
    raises(ValueError, fathom.omp_set_num_threads, -4)


GARBAGE = [None, 0, -1, 2**70, 1.5, float("nan"), "x", b"\x00", [], [[1.0]], {},
           np.zeros((0, 0)), np.zeros((2, D), dtype="float32"), np.full((1, D), np.nan),
           np.array([-1, 2**40]), object()]


def test_random_garbage_never_crashes():
    """Every entry point, called with combinations of odd values, either works or raises
    an ordinary exception."""
    index = trained("IVF4,Flat")
    hnsw = trained("HNSW8")
    pq = fathom.ProductQuantizer(D, 2, 4)
    km = fathom.Kmeans(D, 2)
    pca = fathom.PCAMatrix(D, 4)
    ps = fathom.ParameterSpace()
    targets = [
        index.add, index.train, index.search, index.range_search, index.assign,
        index.add_with_ids, index.reconstruct, index.reconstruct_n, index.remove_ids,
        index.merge_from, index.compute_distance_subset, hnsw.search, hnsw.add,
        pq.train, pq.compute_codes, pq.decode, km.train, km.assign, pca.train, pca.apply,
        pca.reverse_transform, ps.initialize, ps.set_index_parameters,
        fathom.index_factory, fathom.read_index, fathom.write_index,
        fathom.deserialize_index, fathom.normalize_L2, fathom.IndexFlat, fathom.IndexIVFFlat,
        fathom.IndexIVFPQ, fathom.IndexHNSWFlat, fathom.IndexPQ, fathom.IndexLSH,
        fathom.IDSelectorBatch, fathom.IDSelectorRange, fathom.Kmeans,
        fathom.ProductQuantizer, fathom.PCAMatrix, fathom.omp_set_num_threads,
    ]
    calls = 0
    for fn in targets:
        for arity in (0, 1, 2, 3):
            for args in itertools.islice(itertools.product(GARBAGE, repeat=arity), 200):
                try:
                    fn(*args)
                except Exception:  # noqa: BLE001 - any ordinary exception is fine
                    pass
                calls += 1
    assert calls > 1000
    fathom.omp_set_num_threads(os.cpu_count() or 1)
    # The indexes still answer.
    assert index.search(vecs(2), 2)[1].shape == (2, 2)
