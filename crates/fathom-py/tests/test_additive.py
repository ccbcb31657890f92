"""The residual quantizer through `import fathom as faiss`, against faiss-cpu on the same
data: faiss's files open and search to faiss's distances, fathom's open in faiss, and
fathom's own training codes as well as faiss's."""

import numpy as np
import pytest

import fathom
from conftest import clustered_data


def mse(index, x):
    return float(((x - index.sa_decode(index.sa_encode(x))) ** 2).sum(1).mean())


@pytest.mark.parametrize("key", ["RQ4x6", "RQ4x6_Nfloat", "RQ2x8_Nqint8", "IVF16,RQ3x5_Nfloat"])
def test_rq_matches_faiss(faiss, key, tmp_path):
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
    assert mse(ours, xb) <= 1.1 * mse(theirs, xb)
    # faiss's index, read by fathom: the same distances rank by rank.
    faiss.write_index(theirs, str(tmp_path / "t.faiss"))
    loaded = fathom.read_index(str(tmp_path / "t.faiss"))
    D, _ = loaded.search(xq, 10)
    Dr, _ = theirs.search(xq, 10)
    close = np.isclose(D, Dr, rtol=1e-3, atol=1e-3)
    assert close.mean() > 0.97, close.mean()
    # fathom's index, read by faiss: the same results.
    fathom.write_index(ours, str(tmp_path / "o.faiss"))
    back = faiss.read_index(str(tmp_path / "o.faiss"))
    if key.startswith("IVF"):
        back.nprobe = 4
    Db, _ = back.search(xq, 10)
    Do, _ = ours.search(xq, 10)
    assert np.isclose(Db, Do, rtol=1e-3, atol=1e-3).mean() > 0.97


def test_rq_classes_and_errors():
    _, xb, _ = clustered_data(d=16, nb=2000, nq=1, nt=100)
    index = fathom.IndexResidualQuantizer(16, 3, 5, fathom.METRIC_L2, 3)
    index.train(xb)
    index.add(xb)
    assert fathom.reverse_index_factory(index) == "RQ3x5_Nfloat"
    assert index.sa_code_size() == (15 + 32 + 7) // 8
    with pytest.raises(RuntimeError, match="not built yet"):
        fathom.index_factory(16, "RQ3x5_Ncqint8")
