"""RaBitQ through `import fathom as faiss`, against faiss-cpu on the same data: the same
codes, the same estimates, files both ways."""

import numpy as np
import pytest

import fathom
from conftest import clustered_data


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("nb_bits", [1, 4])
def test_flat_rabitq_matches_faiss(faiss, metric, nb_bits):
    xt, xb, xq = clustered_data(d=32, nb=3000, nq=50, nt=3000)
    res = []
    for m in (fathom, faiss):
        index = m.IndexRaBitQ(32, getattr(m, f"METRIC_{metric}" if metric == "L2" else "METRIC_INNER_PRODUCT"), nb_bits)
        index.train(xb)
        index.add(xb)
        index.qb = 8
        assert index.qb == 8
        res.append(index.search(xq, 10))
        codes = index.sa_encode(xb[:100])
        res[-1] = res[-1] + (codes,)
    (D, I, C), (Dr, Ir, Cr) = res
    # Sign bits and base factors equal; with more bits, two factors within rounding.
    exact = C.shape[1] if nb_bits == 1 else C.shape[1] - 8
    np.testing.assert_array_equal(C[:, :exact], Cr[:, :exact])
    same = I == Ir
    assert same.mean() > (0.95 if nb_bits == 1 else 0.8)
    np.testing.assert_allclose(D[same], Dr[same], rtol=1e-4, atol=1e-4)


def test_ivf_rabitq_files_go_both_ways(faiss, tmp_path):
    xt, xb, xq = clustered_data(d=32, nb=3000, nq=50, nt=3000)
    theirs = faiss.index_factory(32, "IVF16,RaBitQ")
    theirs.train(xb)
    theirs.add(xb)
    theirs.nprobe = 4
    faiss.write_index(theirs, str(tmp_path / "t.faiss"))
    ours = fathom.read_index(str(tmp_path / "t.faiss"))
    assert type(ours).__name__ == "IndexIVFRaBitQ" and ours.qb == 4
    D, I = ours.search(xq, 10)
    Dr, Ir = theirs.search(xq, 10)
    same = I == Ir
    assert same.mean() > 0.95
    np.testing.assert_allclose(D[same], Dr[same], rtol=1e-4, atol=1e-4)
    fathom.write_index(ours, str(tmp_path / "o.faiss"))
    assert (tmp_path / "o.faiss").read_bytes() == (tmp_path / "t.faiss").read_bytes()
    back = faiss.read_index(str(tmp_path / "o.faiss"))
    np.testing.assert_array_equal(back.search(xq, 10)[1], Ir)
