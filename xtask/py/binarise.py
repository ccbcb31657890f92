#!/usr/bin/env python3
"""Binary vectors for `cargo xtask binary-bench`: sign bits of BITS random projections
(seed 0) of a TEXMEX dataset's base and query vectors — how float embeddings are turned
into binary ones — saved as uint8 rows (bit j of byte i is projection 8i + j).

usage: binarise.py DATA_DIR OUT_DIR [BITS]
"""
import os, sys
import numpy as np

from texmex import read_vecs


src, out = sys.argv[1], sys.argv[2]
bits = int(sys.argv[3]) if len(sys.argv) > 3 else 256
os.makedirs(out, exist_ok=True)
xb, xq = read_vecs(f"{src}/base.fvecs"), read_vecs(f"{src}/query.fvecs")
mean = xb[:100000].mean(axis=0)
planes = np.random.default_rng(0).standard_normal((xb.shape[1], bits)).astype("float32")
for name, x in (("base", xb), ("query", xq)):
    codes = np.concatenate([
        np.packbits((x[i:i + 100000] - mean) @ planes > 0, axis=1, bitorder="little")
        for i in range(0, len(x), 100000)
    ])
    np.save(f"{out}/{name}.npy", codes)
print(f"wrote {out}: {len(xb)} base and {len(xq)} query vectors of {bits} bits")
