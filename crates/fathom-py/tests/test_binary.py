"""Faiss's binary indexes through `import fathom as faiss`, against faiss-cpu on the same
data: the same code runs on both modules, and results, files and attributes agree."""

import numpy as np
import pytest

import fathom


def binary_data(d=64, nb=3000, nq=50, seed=7):
    rs = np.random.RandomState(seed)
    # Sign bits of random projections of points in 8 dimensions: near points, near codes.
    planes = rs.normal(size=(8, d)).astype("float32")
    pts = rs.normal(size=(nb + nq, 8)).astype("float32")
    bits = (pts @ planes) > 0
    codes = np.packbits(bits, axis=1, bitorder="little")
    return codes[:nb], codes[nb:]


def brute_force(xb, xq, k):
    xor = np.bitwise_xor(xq[:, None, :], xb[None, :, :])
    dist = np.unpackbits(xor, axis=2).sum(axis=2)
    return np.sort(dist, axis=1)[:, :k]


def same_results(a, b):
    """Equal distances, and labels equal except among equal distances."""
    (Da, Ia), (Db, Ib) = a, b
    np.testing.assert_array_equal(Da, Db)
    assert Da.dtype == np.int32 and Ia.dtype == np.int64


def test_flat_and_knn_hamming_equal_faiss(faiss):
    xb, xq = binary_data()
    res = []
    for m in (fathom, faiss):
        index = m.IndexBinaryFlat(64)
        index.add(xb)
        assert index.ntotal == 3000 and index.code_size == 8 and index.d == 64
        res.append(index.search(xq, 10))
    same_results(res[0], res[1])
    np.testing.assert_array_equal(res[0][0], brute_force(xb, xq, 10))
    D, I = fathom.knn_hamming(xq, xb, 5)
    Dr, Ir = faiss.knn_hamming(xq, xb, 5)
    np.testing.assert_array_equal(D, Dr)


@pytest.mark.parametrize("factory", ["BIVF32", "BHNSW16", "BHash12", "BHash4x12", "IDMap2,BFlat"])
def test_factory_indexes_search_as_faiss(faiss, factory):
    xb, xq = binary_data()
    res = []
    for m in (fathom, faiss):
        index = m.index_binary_factory(64, factory)
        index.train(xb)
        if factory.startswith("IDMap"):
            index.add_with_ids(xb, np.arange(len(xb), dtype="int64") * 3)
        else:
            index.add(xb)
        if factory.startswith("BIVF"):
            index.nprobe = 8
            assert index.nprobe == 8
        if factory.startswith("BHNSW"):
            index.hnsw.efSearch = 64
            assert index.hnsw.efSearch == 64
        if factory.startswith("BHash"):
            index.nflip = 2
            assert index.nflip == 2
        res.append(index.search(xq, 10))
    (D, I), (Dr, Ir) = res
    exact = brute_force(xb, xq, 10)
    if factory in ("BIVF32", "IDMap2,BFlat"):
        # BIVF trains the same centroids as faiss: the same lists, the same distances.
        np.testing.assert_array_equal(D, Dr)
    else:
        # Graph walks and hash balls: as close to exact as faiss's, within one bit a row.
        ours, theirs = (D - exact).sum(), (Dr - exact).sum()
        assert ours <= theirs + len(xq), f"{factory}: fathom {ours} vs faiss {theirs} bits over exact"
    assert (D >= exact).all()


def test_files_go_both_ways(faiss, tmp_path):
    xb, xq = binary_data()
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, 16)
    index.train(xb)
    index.add(xb)
    index.nprobe = 4
    faiss.write_index_binary(index, str(tmp_path / "theirs.bin"))
    ours = fathom.read_index_binary(str(tmp_path / "theirs.bin"))
    assert type(ours).__name__ == "IndexBinaryIVF" and ours.nprobe == 4 and ours.nlist == 16
    np.testing.assert_array_equal(ours.search(xq, 5)[0], index.search(xq, 5)[0])
    # fathom writes, faiss reads: the same bytes as faiss's own file.
    fathom.write_index_binary(ours, str(tmp_path / "ours.bin"))
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "theirs.bin").read_bytes()
    back = faiss.read_index_binary(str(tmp_path / "ours.bin"))
    np.testing.assert_array_equal(back.search(xq, 5)[0], index.search(xq, 5)[0])
    for factory in ["BHNSW8", "BHash10", "BHash3x10", "IDMap,BFlat"]:
        mine = fathom.index_binary_factory(64, factory)
        if factory.startswith("IDMap"):
            mine.add_with_ids(xb, np.arange(len(xb), dtype="int64") + 100)
        else:
            mine.add(xb)
        data = fathom.serialize_index_binary(mine)
        theirs = faiss.deserialize_index_binary(data)
        assert theirs.ntotal == len(xb)
        if not factory.startswith("BHNSW"):
            np.testing.assert_array_equal(theirs.search(xq, 5)[0], mine.search(xq, 5)[0])


def test_range_search_reconstruct_and_remove(faiss):
    xb, xq = binary_data()
    index = fathom.IndexBinaryFlat(64)
    ref = faiss.IndexBinaryFlat(64)
    for ix in (index, ref):
        ix.add(xb)
    lims, D, I = index.range_search(xq, 20)
    rlims, rD, rI = ref.range_search(xq, 20)
    np.testing.assert_array_equal(lims, rlims)
    assert D.dtype == np.int32
    for q in range(len(xq)):
        assert sorted(I[lims[q] : lims[q + 1]]) == sorted(rI[rlims[q] : rlims[q + 1]])
    np.testing.assert_array_equal(index.reconstruct(7), xb[7])
    assert index.remove_ids(np.array([0, 1, 2], dtype="int64")) == 3
    assert index.ntotal == len(xb) - 3


def test_from_float_and_id_maps():
    xb, xq = binary_data(nb=500)
    index = fathom.IndexBinaryFromFloat(fathom.IndexFlatL2(64))
    index.add(xb)
    D, _ = index.search(xq, 5)
    np.testing.assert_array_equal(D, brute_force(xb, xq, 5))
    m = fathom.IndexBinaryIDMap2(fathom.IndexBinaryFlat(64))
    m.add_with_ids(xb, np.arange(500, dtype="int64") * 10)
    np.testing.assert_array_equal(m.reconstruct(70), xb[7])
    assert m.id_map[3] == 30
    assert isinstance(m, fathom.IndexBinaryIDMap)


def test_bad_binary_input_raises():
    index = fathom.IndexBinaryFlat(64)
    with pytest.raises(ValueError):
        index.add(np.zeros((3, 7), dtype="uint8"))
    with pytest.raises(TypeError):
        index.add(np.zeros((3, 8), dtype="float32"))
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 8), dtype="uint8"), 0)
    with pytest.raises(RuntimeError):
        fathom.index_binary_factory(64, "BPQ8")
    with pytest.raises(RuntimeError, match="multiple of 8"):
        fathom.IndexBinaryFlat(12)
    q = fathom.IndexBinaryFlat(64)
    ivf = fathom.IndexBinaryIVF(q, 64, 4)
    with pytest.raises(RuntimeError, match="belongs to the IndexBinaryIVF"):
        q.add(np.zeros((1, 8), dtype="uint8"))
    with pytest.raises(RuntimeError):
        ivf.add(np.zeros((1, 8), dtype="uint8"))  # not trained
    with pytest.raises(ValueError):
        ivf.nprobe = 0
    D, I = fathom.index_binary_factory(64, "BHash16").search(np.zeros((1, 8), dtype="uint8"), 3)
    assert (I == -1).all() and (D == np.iinfo(np.int32).max).all()
