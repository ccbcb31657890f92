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


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("nb_bits", [1, 3])
def test_fast_scan_rabitq_matches_faiss_and_files_go_both_ways(faiss, metric, nb_bits, tmp_path):
    xt, xb, xq = clustered_data(d=32, nb=3000, nq=50, nt=3000)
    res = []
    for m in (fathom, faiss):
        mt = m.METRIC_L2 if metric == "L2" else m.METRIC_INNER_PRODUCT
        flat = m.IndexRaBitQFastScan(32, mt, 32, nb_bits)
        flat.train(xb)
        flat.add(xb)
        assert flat.qb == 8
        flat.qb = 6
        assert flat.qb == 6
        ivf = m.index_factory(32, "IVF16,RaBitQfs" + ("" if nb_bits == 1 else str(nb_bits)), mt)
        ivf.train(xb)
        ivf.add(xb)
        ivf.nprobe = 4
        res.append((flat.search(xq, 10), ivf.search(xq, 10), flat, ivf))
    (fo, io_, flat, ivf), (fr, ir, flat_r, ivf_r) = res
    def gaps(ours, theirs):
        """The fraction of labels both hold, and their distances' differences."""
        shared, gap = 0, []
        for q in range(len(ours[1])):
            t = dict(zip(theirs[1][q], theirs[0][q]))
            for label, dist in zip(ours[1][q], ours[0][q]):
                if label in t:
                    shared += 1
                    gap.append(abs(dist - t[label]))
        return shared / ours[1].size, np.array(gap)

    # Flat: faiss's distances (the same quantization of the same tables) but where
    # faiss's SIMD query rounding (a fused multiply-add) moves a coordinate's code by one.
    shared, gap = gaps(fo, fr)
    scale = np.abs(fr[0]).max()
    assert shared > 0.95 and np.quantile(gap, 0.9) <= 1e-3 * scale and gap.max() <= 0.05 * scale
    # IVF: fathom quantizes each list's tables alone, faiss all of a query's lists with
    # one scale, so 1-bit distances differ by both roundings; with more bits only full
    # estimates are returned.
    shared, gap = gaps(io_, ir)
    assert shared > (0.85 if nb_bits == 1 else 0.95)
    if nb_bits > 1:
        assert np.quantile(gap, 0.9) <= 1e-3 * np.abs(ir[0]).max()
    else:
        # Against the popcount estimates (IndexIVFRaBitQ at the same qb, trained alike):
        # fathom's rounding is no larger than faiss's.
        exact = faiss.index_factory(32, "IVF16,RaBitQ", faiss_metric := (
            faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT))
        exact.train(xb)
        exact.add(xb)
        exact.nprobe = 4
        exact.qb = 8
        ref = exact.search(xq, 10)
        ours_err, theirs_err = gaps(io_, ref)[1].mean(), gaps(ir, ref)[1].mean()
        assert ours_err <= 1.2 * theirs_err, (ours_err, theirs_err)
    # fathom's files in faiss: the same codes, so faiss's own search of them equals its
    # search of the index it built (IVF: the same lists when trained alike).
    fathom.write_index(flat, str(tmp_path / "f.faiss"))
    back = faiss.read_index(str(tmp_path / "f.faiss"))
    assert type(back).__name__ == "IndexRaBitQFastScan"
    back.qb = 6
    Db, Ib = back.search(xq, 10)
    np.testing.assert_array_equal(Ib, fr[1])
    np.testing.assert_allclose(Db, fr[0], rtol=1e-4, atol=1e-4)
    fathom.write_index(ivf, str(tmp_path / "i.faiss"))
    back = faiss.read_index(str(tmp_path / "i.faiss"))
    assert type(back).__name__ == "IndexIVFRaBitQFastScan" and back.nprobe == 4
    D2, I2 = back.search(xq, 10)
    assert (I2 == ir[1]).mean() > 0.95
    # And faiss's files in fathom.
    faiss.write_index(ivf_r, str(tmp_path / "r.faiss"))
    ours = fathom.read_index(str(tmp_path / "r.faiss"))
    assert type(ours).__name__ == "IndexIVFRaBitQFastScan"
    I3 = ours.search(xq, 10)[1]
    assert np.mean([len(set(a) & set(b)) for a, b in zip(I3, ir[1])]) / 10 > 0.85


def test_fast_scan_rabitq_constructors_take_faiss_s_arguments():
    q = fathom.IndexFlatL2(32)
    ivf = fathom.IndexIVFRaBitQFastScan(q, 32, 16, fathom.METRIC_L2, 64, True, 2)
    assert ivf.nlist == 16 and ivf.qb == 8 and not ivf.centered
    ivf.centered = True
    assert ivf.centered
    assert fathom.IndexRaBitQFastScan(32, fathom.METRIC_L2, 64, 3).d == 32


def test_fast_scan_rabitq_refuses_bad_settings():
    with pytest.raises(Exception, match="bbs|multiple of 32"):
        fathom.IndexRaBitQFastScan(32, fathom.METRIC_L2, 48)
    index = fathom.IndexRaBitQFastScan(32)
    for bad in (0, 9):
        with pytest.raises(Exception, match="qb"):
            index.qb = bad
    with pytest.raises(Exception, match="1024"):
        fathom.IndexRaBitQFastScan(2048)
