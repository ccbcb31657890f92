"""PyTorch's side of `cargo xtask gpu`: exact k-NN by matrix product and top-k on the GPU
(the brute force a PyTorch user writes), on the same TEXMEX-layout data as
examples/gpu_bench.rs, in FP32, TF32 and FP16, one JSON object per line."""

import json
import sys
import time

import numpy as np


def vecs(path, dtype):
    raw = np.fromfile(path, dtype="int32")
    d = raw[0]
    rows = raw.reshape(-1, d + 1)[:, 1:]
    return rows.copy().view("float32") if dtype == "float32" else rows.copy()


def knn(torch, xb, xb_norms, xq, k, batch):
    out = []
    for s in range(0, xq.shape[0], batch):
        q = xq[s : s + batch]
        # ‖x‖² − 2⟨q, x⟩ ranks as the squared distance does (‖q‖² is the same per row).
        dist = xb_norms[None, :] - 2.0 * (q @ xb.T).float()
        out.append(torch.topk(dist, k, dim=1, largest=False).indices)
    return torch.cat(out)


def main():
    try:
        import torch
    except ImportError as e:
        print(json.dumps({"tool": "pytorch", "gpu": False, "why": str(e)}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"tool": "pytorch", "gpu": False, "why": "torch.cuda.is_available() is False"}))
        return
    data, k, batch = sys.argv[1], 10, 2048
    xb = torch.from_numpy(vecs(f"{data}/base.fvecs", "float32")).cuda()
    xq = torch.from_numpy(vecs(f"{data}/query.fvecs", "float32")).cuda()
    gt = vecs(f"{data}/groundtruth.ivecs", "int32")[:, 0]
    print(json.dumps({"tool": "pytorch", "gpu": True, "device": torch.cuda.get_device_name(0),
                      "version": torch.__version__}))
    for precision in ["f32", "tf32", "f16"]:
        torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
        b, q = (xb.half(), xq.half()) if precision == "f16" else (xb, xq)
        norms = (b.float() ** 2).sum(1)
        best, labels = float("inf"), None
        for _ in range(3):
            torch.cuda.synchronize()
            t = time.perf_counter()
            labels = knn(torch, b, norms, q, k, batch)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        top1 = labels[:, 0].cpu().numpy()
        print(json.dumps({"tool": "pytorch", "index": "Flat", "precision": precision,
                          "qps": xq.shape[0] / best, "recall_at_1": float((top1 == gt).mean())}))
        del b, q, norms


if __name__ == "__main__":
    main()
