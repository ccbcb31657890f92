"""Reading TEXMEX-layout files (`.fvecs`, `.ivecs`: each row an int32 dimension, then
the values) for the xtask's Python helpers, which import it from this folder."""
import numpy as np


def read_vecs(path, dtype=np.float32):
    """The rows of `path` as a C-contiguous (n, d) array of `dtype` (float32 for .fvecs,
    int32 for .ivecs)."""
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return np.ascontiguousarray(a.reshape(-1, d + 1)[:, 1:].view(dtype))
