"""Faiss's GPU API in fathom's module. Without a GPU (`get_num_gpus() == 0`) the classes
exist and making a GPU index raises FathomError (a RuntimeError) that says why; with one,
every GPU index answers as its CPU counterpart. The GPU half skips itself elsewhere.

Self-contained (no conftest helpers), so `cargo xtask gpu --carry` can run it on a GPU
machine beside the wheel.
"""

import numpy as np
import pytest

import fathom as faiss

HAS_GPU = faiss.get_num_gpus() > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device on this machine")


def data(d=32, nb=5000, nq=200, seed=7):
    rs = np.random.RandomState(seed)
    centres = rs.normal(size=(40, d)).astype("float32") * 4
    draw = lambda n: (centres[rs.randint(40, size=n)] + rs.normal(size=(n, d))).astype("float32")
    return draw(nb), draw(nb), draw(nq)


def same_answers(D0, I0, D1, I1, share=0.999):
    assert (I0 == I1).mean() >= share, (I0 == I1).mean()
    np.testing.assert_allclose(D0, D1, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(HAS_GPU, reason="checks the machine without a GPU")
def test_without_a_gpu_the_api_is_there_and_says_why_it_cannot_run():
    assert faiss.get_num_gpus() == 0
    res = faiss.StandardGpuResources()  # opens nothing yet
    res.setTempMemory(64 << 20)
    res.noTempMemory()
    res.setDefaultNullStreamAllDevices()
    cpu = faiss.IndexFlatL2(8)
    cpu.add(np.ones((3, 8), dtype="float32"))
    for make in [
        lambda: faiss.GpuIndexFlatL2(res, 8),
        lambda: faiss.GpuIndexFlatIP(res, cpu),
        lambda: faiss.GpuIndexIVFFlat(res, 8, 4),
        lambda: faiss.GpuIndexIVFPQ(res, 8, 4, 2),
        lambda: faiss.GpuIndexIVFScalarQuantizer(res, 8, 4, faiss.ScalarQuantizer.QT_8bit),
        lambda: faiss.index_cpu_to_gpu(res, 0, cpu),
        lambda: faiss.index_cpu_to_all_gpus(cpu),
        lambda: faiss.knn_gpu(res, np.ones((1, 8), "float32"), np.ones((4, 8), "float32"), 2),
        lambda: faiss.Kmeans(8, 2, gpu=True).train(np.random.rand(100, 8).astype("float32")),
    ]:
        with pytest.raises(RuntimeError, match="GPU"):
            make()
    # A CPU index passes through index_gpu_to_cpu as a copy.
    back = faiss.index_gpu_to_cpu(cpu)
    assert isinstance(back, faiss.IndexFlatL2) and back.ntotal == 3
    # The option objects behave as Faiss's.
    co = faiss.GpuClonerOptions()
    co.useFloat16 = True
    assert co.useFloat16 and not co.useTF32
    mo = faiss.GpuMultipleClonerOptions()
    mo.shard = True
    assert mo.shard and isinstance(mo, faiss.GpuClonerOptions)
    cfg = faiss.GpuIndexFlatConfig()
    cfg.device, cfg.useFloat16 = 0, True
    ivf = faiss.GpuIndexIVFPQConfig()
    ivf.device = 1
    assert isinstance(ivf, faiss.GpuIndexIVFConfig) and ivf.device == 1
    assert issubclass(faiss.GpuIndexIVFFlatConfig, faiss.GpuIndexIVFConfig)


def test_wrong_arguments_are_errors_on_every_machine():
    res = faiss.StandardGpuResources()
    with pytest.raises((ValueError, RuntimeError)):
        faiss.GpuIndexIVFPQ(res, 8, 4, 2, 6)  # 6-bit codes
    with pytest.raises((ValueError, RuntimeError)):
        faiss.knn_gpu(res, np.ones((1, 8), "float32"), np.ones((0, 8), "float32"), 2)
    with pytest.raises((ValueError, RuntimeError)):
        faiss.knn_gpu(res, np.ones((1, 7), "float32"), np.ones((4, 8), "float32"), 2)


@needs_gpu
def test_gpu_flat_answers_as_the_cpu_flat_in_every_precision():
    xt, xb, xq = data()
    res = faiss.StandardGpuResources()
    for Cpu, Gpu in [(faiss.IndexFlatL2, faiss.GpuIndexFlatL2), (faiss.IndexFlatIP, faiss.GpuIndexFlatIP)]:
        cpu = Cpu(32)
        cpu.add(xb)
        D0, I0 = cpu.search(xq, 10)
        for fp16, tf32 in [(False, False), (False, True), (True, False)]:
            cfg = faiss.GpuIndexFlatConfig()
            cfg.useFloat16, cfg.useTF32 = fp16, tf32
            g = Gpu(res, 32, cfg)
            assert isinstance(g, faiss.GpuIndexFlat) and isinstance(g, faiss.GpuIndex)
            g.add(xb)
            D1, I1 = g.search(xq, 10)
            if fp16:
                assert (I0[:, :1] == I1[:, :1]).mean() >= 0.98
            else:
                same_answers(D0, I0, D1, I1)
        g = faiss.index_cpu_to_gpu(res, 0, cpu)
        assert isinstance(g, Gpu)
        same_answers(D0, I0, *g.search(xq, 10))
        back = faiss.index_gpu_to_cpu(g)
        assert isinstance(back, Cpu) and back.ntotal == cpu.ntotal
        D2, I2 = faiss.knn_gpu(res, xq, xb, 10, metric=cpu.metric_type)
        same_answers(D0, I0, D2, I2)


@needs_gpu
def test_gpu_ivf_indexes_round_trip_and_recall_as_the_cpu():
    xt, xb, xq = data()
    res = faiss.StandardGpuResources()
    flat = faiss.IndexFlatL2(32)
    flat.add(xb)
    gt = flat.search(xq, 1)[1]
    recall = lambda I: (I[:, :10] == gt).any(axis=1).mean()
    # Fast-scan: the CPU quantizes its tables to 8 bits, the GPU does not.
    for key, GpuClass, tolerance in [
        ("IVF64,Flat", faiss.GpuIndexIVFFlat, 0.02),
        ("IVF64,PQ8", faiss.GpuIndexIVFPQ, 0.02),
        ("IVF64,SQ8", faiss.GpuIndexIVFScalarQuantizer, 0.02),
        ("IVF64,PQ16x4fs", faiss.GpuIndexIVF, 0.05),
    ]:
        cpu = faiss.index_factory(32, key)
        cpu.train(xt)
        cpu.add(xb)
        cpu.nprobe = 8
        g = faiss.index_cpu_to_gpu(res, 0, cpu)
        assert isinstance(g, GpuClass) and isinstance(g, faiss.GpuIndexIVF)
        g.nprobe = 8
        assert g.nprobe == 8
        _, I0 = cpu.search(xq, 10)
        _, I1 = g.search(xq, 10)
        assert abs(recall(I0) - recall(I1)) <= tolerance, (key, recall(I0), recall(I1))
        back = faiss.index_gpu_to_cpu(g)
        assert back.ntotal == cpu.ntotal
    g = faiss.GpuIndexIVFFlat(res, 32, 64, faiss.METRIC_L2)
    g.train(xt)
    g.add(xb)
    assert g.ntotal == len(xb)
    g = faiss.GpuIndexIVFPQ(res, 32, 64, 8, 4)  # 4-bit codes
    g.train(xt)
    g.add(xb)
    assert g.ntotal == len(xb)
    g = faiss.GpuIndexIVFScalarQuantizer(res, 32, 64, faiss.ScalarQuantizer.QT_8bit)
    g.train(xt)
    g.add(xb)
    assert g.ntotal == len(xb)


@needs_gpu
def test_gpu_kmeans_and_all_gpus():
    xt, xb, xq = data()
    cpu = faiss.Kmeans(32, 40, niter=10, seed=3)
    cpu.train(xb)
    gpu = faiss.Kmeans(32, 40, niter=10, seed=3, gpu=True)
    gpu.train(xb)
    assert abs(gpu.obj[-1] - cpu.obj[-1]) <= 0.01 * cpu.obj[-1]
    flat = faiss.IndexFlatL2(32)
    flat.add(xb)
    every = faiss.index_cpu_to_all_gpus(flat)
    same_answers(*flat.search(xq, 5), *every.search(xq, 5))
