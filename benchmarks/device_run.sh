#!/usr/bin/env bash
# One device session: build the kernels, run the GPU tests, sanitize, benchmark.
# Usage (on the GPU machine, repo root): bash benchmarks/device_run.sh [quick]
# Writes logs and JSON under $OUT (default ./benchmarks/out).
set -u
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export MAX_JOBS=${MAX_JOBS:-16}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python - <<'PY' 2>&1 | tee "$OUT/build.log"
import time, torch, longconv_models.extension as e
t = time.time(); m = e.load_extension(); print("built in %.0fs:" % (time.time() - t), m, e.unavailable_reason())
PY
python -m pytest tests -q -m cuda -p no:cacheprovider -rf 2>&1 | tee "$OUT/test_cuda.log" | tail -25
if [ "${1:-}" != "quick" ]; then
  compute-sanitizer --tool memcheck --print-limit 10 python benchmarks/sanitize_case.py 2>&1 | tail -8 | tee "$OUT/sanitizer.log"
fi
python benchmarks/host_overhead.py --out "$OUT/host.json" 2>"$OUT/host.err" | tee "$OUT/host.txt"
python benchmarks/bench_fftconv.py --out "$OUT/bench.json" ${BENCH_ARGS:-} 2>"$OUT/bench.err" | tee "$OUT/bench.txt"
python benchmarks/bench_fftconv.py --sizes 65536,262144,1048576,4194304 --reps 10 --warmup 2 \
  --out "$OUT/bench_long.json" 2>>"$OUT/bench.err" | tee "$OUT/bench_long.txt"
tail -3 "$OUT/bench.err"
