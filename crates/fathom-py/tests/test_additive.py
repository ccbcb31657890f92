"""The additive quantizers (RQ, LSQ, PRQ, PLSQ, every norm encoding, the residual coarse
quantizer) through `import fathom as faiss`, against faiss-cpu on the same data: faiss's
files open and search to faiss's distances, fathom's open in faiss, and fathom's own
training codes as well as faiss's."""

import numpy as np
import pytest

import fathom
from conftest import clustered_data


def mse(index, x):
    return float(((x - index.sa_decode(index.sa_encode(x))) ** 2).sum(1).mean())


@pytest.mark.parametrize(
    "key",
    [
        "RQ4x6",
        "RQ4x6_Nfloat",
        "RQ2x8_Nqint8",
        "IVF16,RQ3x5_Nfloat",
        "RQ4x6_Ncqint8",
        "RQ4x6_Nrq2x4",
        "LSQ4x5_Nqint8",
        "PRQ2x2x5_Nfloat",
        "PLSQ2x2x4",
        "IVF16,LSQ3x5_Ncqint4",
        "RQ4x4fs_Nrq2x4",
        "PLSQ2x2x4fs_64_Nlsq2x4",
        "IVF16,RQ4x4fsr_Nrq2x4",
    ],
)
def test_additive_matches_faiss(faiss, key, tmp_path):
    _, xb, xq = clustered_data(d=32, nb=3000, nq=50, nt=3000)
    theirs = faiss.index_factory(32, key)
    theirs.train(xb)
    theirs.add(xb)
    ours = fathom.index_factory(32, key)
    ours.train(xb)
    ours.add(xb)
    for ix in (ours, theirs):
        if key.startswith("IVF"):
            ix.nprobe = 4
    # LSQ's training is randomized and varies a lot with the seed, in faiss too: on this
    # data LSQ4x5's MSE is 46 to 62 over three faiss seeds and 32 to 104 over five of
    # fathom's. A broken trainer is far off (random codes: 500).
    assert mse(ours, xb) <= (1.6 if "LSQ" in key else 1.1) * mse(theirs, xb)
    # faiss's index, read by fathom: the same distances rank by rank.
    faiss.write_index(theirs, str(tmp_path / "t.faiss"))
    loaded = fathom.read_index(str(tmp_path / "t.faiss"))
    D, _ = loaded.search(xq, 10)
    Dr, _ = theirs.search(xq, 10)
    assert_same_distances(key, D, Dr)
    # fathom's index, read by faiss: the same results.
    fathom.write_index(ours, str(tmp_path / "o.faiss"))
    back = faiss.read_index(str(tmp_path / "o.faiss"))
    if key.startswith("IVF"):
        back.nprobe = 4
    Db, _ = back.search(xq, 10)
    Do, _ = ours.search(xq, 10)
    assert_same_distances(key, Do, Db)


def assert_same_distances(key, ours, theirs):
    """Rank by rank the same distances. Fast-scan: faiss rounds an IVF list's bias to the
    8-bit table step and, with rescaled norms, counts the norm columns' minimums once
    (a constant per query); fathom keeps both exact, so each query's distances are held
    to faiss's up to one shift per query."""
    if "fs" in key:
        gap = ours - theirs
        spread = np.abs(gap - np.median(gap, axis=1, keepdims=True)).mean()
        assert spread <= 0.005 * np.abs(theirs).mean(), spread
    else:
        close = np.isclose(ours, theirs, rtol=1e-3, atol=1e-3)
        assert close.mean() > 0.97, close.mean()


def test_additive_classes_and_errors():
    _, xb, _ = clustered_data(d=16, nb=2000, nq=1, nt=100)
    index = fathom.IndexResidualQuantizer(16, 3, 5, fathom.METRIC_L2, 3)
    index.train(xb)
    index.add(xb)
    assert fathom.reverse_index_factory(index) == "RQ3x5_Nfloat"
    assert index.sa_code_size() == (15 + 32 + 7) // 8
    assert isinstance(index, fathom.IndexAdditiveQuantizer)
    index.max_beam_size = 2
    assert index.max_beam_size == 2
    for ix, want in [
        (fathom.IndexLocalSearchQuantizer(16, 2, 4), "LSQ2x4"),
        (fathom.IndexProductResidualQuantizer(16, 2, 2, 4, fathom.METRIC_L2, 6), "PRQ2x2x4_Ncqint8"),
        (fathom.IndexProductLocalSearchQuantizer(16, 2, 1, 4), "PLSQ2x1x4"),
    ]:
        ix.train(xb[:500])
        ix.add(xb[:500])
        assert fathom.reverse_index_factory(ix) == want
        back = fathom.deserialize_index(fathom.serialize_index(ix))
        assert type(back) is type(ix)
    q = fathom.IndexFlatL2(16)
    ivf = fathom.IndexIVFLocalSearchQuantizer(q, 16, 4, 2, 4)
    ivf.train(xb)
    ivf.add(xb)
    assert isinstance(ivf, fathom.IndexIVFAdditiveQuantizer)
    fs = fathom.IndexResidualQuantizerFastScan(16, 4)
    fs.train(xb)
    fs.add(xb)
    assert fathom.reverse_index_factory(fs) == "RQ4x4fs_Nrq2x4"
    assert isinstance(fathom.deserialize_index(fathom.serialize_index(fs)), fathom.IndexResidualQuantizerFastScan)
    rcq = fathom.ResidualCoarseQuantizer(16, 2, 4)
    rcq.train(xb)
    assert rcq.ntotal == 256
    _, beam = rcq.search(xb[:20], 1)
    rcq.set_beam_factor(-1.0)
    _, exact = rcq.search(xb[:20], 1)
    assert (beam == exact).mean() >= 0.9
    with pytest.raises(RuntimeError):
        rcq.add(xb[:1])
    with pytest.raises(RuntimeError, match="expected"):
        fathom.index_factory(16, "RQ3x5fs")


def test_local_search_coarse_quantizer_as_faiss(faiss):
    xt, xb, xq = clustered_data(d=16, nb=3000, nq=20, nt=3000)
    lscq = fathom.LocalSearchCoarseQuantizer(16, 2, 4)
    lscq.train(xb)
    assert lscq.ntotal == 256
    # Its centroids are searched exhaustively: the nearest reconstructed centroid.
    centroids = np.stack([lscq.reconstruct(i) for i in range(256)])
    _, I = lscq.search(xq, 1)
    brute = ((xq[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(I[:, 0], brute)
    # As an IVF's coarse quantizer, probing every list: faiss's exact results.
    res, indexes = [], []
    for m in (fathom, faiss):
        index = m.index_factory(16, "IVF256(LSCQ2x4),Flat")
        if m is faiss:
            # faiss's factory leaves an LSCQ quantizer to k-means and add (which it
            # refuses); fathom trains it alone, as faiss does RCQ.
            index.quantizer_trains_alone = 1
        index.train(xb)
        index.add(xb)
        index.nprobe = 256
        res.append(index.search(xq, 5))
        indexes.append(index)
    np.testing.assert_array_equal(res[0][1], res[1][1])
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-4, atol=1e-4)
    assert fathom.reverse_index_factory(indexes[0]) == "IVF256(LSCQ2x4),Flat"
    # Faiss has no file record for it; saving says so.
    with pytest.raises(Exception, match="local-search coarse quantizer"):
        fathom.serialize_index(indexes[0])
