#!/usr/bin/env bash
# The GPU check `cargo xtask gpu` prepares: fathom-gpu's tests, then its benchmark beside
# PyTorch (and faiss-gpu where Python can import it) on the same data, ending with one
# table. It needs no Rust toolchain: `cargo xtask gpu --carry DIR` puts the built test
# binary, gpu_bench and these scripts in DIR. Logs and the table go to $OUT (the device
# tool's folder) or DIR/out. Arguments are passed to gpu_bench (e.g. --nb 200000).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
data=${FATHOM_GPU_DATA:-/tmp/fathom-gpu-data}
mkdir -p "$out"

# cudarc opens libcublas.so / libnvrtc.so (or .so.12); CUDA 13 installs .so.13. Link each
# library, from the toolkit first (its NVRTC matches the driver: PTX from a newer NVRTC
# than the driver's CUDA does not load), into one folder on the library path.
libs="$here/cuda-libs"
mkdir -p "$libs"
for lib in cublas cublasLt nvrtc; do
    found=""
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
        /usr/lib/x86_64-linux-gnu; do
        found=$(ls "$dir/lib$lib.so" "$dir"/lib$lib.so.1[23]* 2>/dev/null | sort -V | tail -1)
        [ -n "$found" ] && break
    done
    if [ -z "$found" ]; then
        found=$(find /usr/local/ /opt/ -name "lib$lib.so.1[23]*" 2>/dev/null | sort -V | tail -1)
    fi
    if [ -n "$found" ]; then
        ln -sf "$found" "$libs/lib$lib.so"
        export LD_LIBRARY_PATH="$(dirname "$found"):${LD_LIBRARY_PATH:-}"
    fi
done
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
echo "libraries: $(ls -l "$libs" | awk 'NR > 1 {print $9 " -> " $11}' | tr '\n' ' ')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/device.txt"
nvidia-smi 2>/dev/null | grep -o "CUDA Version: [0-9.]*" | tee -a "$out/device.txt"

start=$(date +%s)
# Each step under a time limit, so that a hung kernel still leaves the other steps' output.
timeout -k 10 "${FATHOM_GPU_TEST_S:-150}" "$here/gpu-tests" 2>&1 | tee "$out/tests.log"
tests_rc=${PIPESTATUS[0]}
echo "tests: exit $tests_rc in $(( $(date +%s) - start )) s"

# The Python module's GPU classes, where the kit has the wheel.
if ls "$here"/fathom-*.whl > /dev/null 2>&1; then
    rm -rf /tmp/fathom-py
    python3 -m pip install -q --no-deps --no-index --target /tmp/fathom-py "$here"/fathom-*.whl \
        && PYTHONPATH=/tmp/fathom-py timeout -k 10 120 python3 -m pytest -q -p no:cacheprovider \
            -rs "$here/test_gpu.py" 2>&1 | tee "$out/pytest.log"
    py_rc=${PIPESTATUS[0]}
    [ "$tests_rc" = 0 ] && tests_rc=$py_rc
fi

start=$(date +%s)
timeout -k 10 "${FATHOM_GPU_BENCH_S:-210}" "$here/gpu_bench" "$data" "$@" 2> "$out/bench.err" \
    | tee "$out/fathom.jsonl"
echo "gpu_bench: exit ${PIPESTATUS[0]} in $(( $(date +%s) - start )) s"; tail -5 "$out/bench.err"
timeout -k 10 90 python3 -u "$here/torch_ref.py" "$data" 2> "$out/torch.err" | tee "$out/torch.jsonl"
tail -3 "$out/torch.err"
if python3 -c "import faiss; faiss.StandardGpuResources()" 2>/dev/null; then
    timeout -k 10 120 python3 -u "$here/faiss_gpu_ref.py" "$data" | tee "$out/faiss.jsonl"
fi
python3 "$here/table.py" "$out/fathom.jsonl" "$out/torch.jsonl" "$out/faiss.jsonl" | tee "$out/table.md"
exit "$tests_rc"
