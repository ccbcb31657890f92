#!/usr/bin/env python3
"""Times faiss-cpu reading (and writing) one index file, for `cargo xtask io`.

usage: faiss_io.py FILE OUT [--mmap]
Prints one JSON line: {"load_s": …, "save_s": …, "ntotal": …} — read_index(FILE) (with
IO_FLAG_MMAP when --mmap), then write_index to OUT.
"""
import json
import sys
import time

import faiss

path, out = sys.argv[1], sys.argv[2]
flags = faiss.IO_FLAG_MMAP if "--mmap" in sys.argv else 0
t0 = time.perf_counter()
index = faiss.read_index(path, flags)
load_s = time.perf_counter() - t0
save_s = None
if flags == 0:
    t0 = time.perf_counter()
    faiss.write_index(index, out)
    save_s = time.perf_counter() - t0
print(json.dumps({"load_s": load_s, "save_s": save_s, "ntotal": index.ntotal}))
