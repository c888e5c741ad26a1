#!/usr/bin/env bash
# Device session for the models: build, the model GPU tests, the model, generation and original-HyenaDNA benchmarks.
# Usage (GPU machine, repo root): [MODELS=a,b] [BENCH_ARGS=...] bash benchmarks/device_models.sh
set -u
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import transformers, torch; print(torch.__version__, transformers.__version__)"
python - <<'PY' 2>&1 | tee "$OUT/build.log"
import time, longconv_models.extension as e
t = time.time(); m = e.load_extension(); print("built in %.0fs:" % (time.time() - t), m, e.unavailable_reason())
PY
python -m pytest tests/models/test_cuda_models.py tests/models/test_cuda_generation.py tests/kernels/test_cuda_add_layer_norm.py tests/kernels/test_cuda_segmented.py tests/ops/test_compile.py -q -m cuda -p no:cacheprovider -rf -s 2>&1 \
  | tee "$OUT/test_models.log" | grep -E "passed|failed|FAILED|Error|floor|Trainer" | tail -40
cd benchmarks
python bench_models.py --models ${MODELS:-hyenadna-tiny-1k,hyenadna-small-32k,hyena-small-150b,m2-bert-80m-2k} \
  --out "$OUT/models.json" ${BENCH_ARGS:-} 2>"$OUT/bench_models.err" | tee "$OUT/bench_models.txt"
tail -3 "$OUT/bench_models.err"
# generation (graph, fused step, eager) and the original HyenaDNA beside ours (needs
# baselines/hyena-dna/standalone_hyenadna.py, carried: run(..., carry=["baselines"]))
python bench_generate.py --prefixes ${GEN_PREFIXES:-1024,16384,131072} --out "$OUT/generate.json" 2>>"$OUT/bench_models.err" | tail -8
if [ -f ../baselines/hyena-dna/standalone_hyenadna.py ]; then
  python bench_vs_original.py --configs ${ORIG_CONFIGS:-tiny-1k,small-32k} --out "$OUT/vs_original.json" 2>>"$OUT/bench_models.err" | tail -4
fi
