#!/usr/bin/env bash
# A/B of two source trees in one device call: this tree ("new") and an older one under baselines/
# (git-ignored; carry it). Make it here first, e.g.
#   mkdir -p baselines/head && git archive HEAD~1 longconv_models benchmarks | tar -x -C baselines/head
# then on the device: bash benchmarks/device_ab.sh baselines/head [sizes]
# Each tree builds into its own extension directory (both at once); the timings alternate
# old, new, old, new so that drift shows as a difference between the two runs of one tree.
set -u
OLD=${1:?usage: device_ab.sh OLD_TREE [sizes]}
SIZES=${2:-256,1024,4096,16384,65536,1048576}
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
R=$PWD
new() { PYTHONPATH=$R TORCH_EXTENSIONS_DIR=/tmp/ext_new "$@"; }
old() { PYTHONPATH=$R/$OLD TORCH_EXTENSIONS_DIR=/tmp/ext_old "$@"; }
BUILD='import time, longconv_models.extension as e; t = time.time(); e.load_extension(); print("built in %.0fs" % (time.time() - t), e.unavailable_reason())'
nvidia-smi --query-gpu=name --format=csv,noheader
old python -c "$BUILD" > "$OUT/build_old.log" 2>&1 &
new python -c "$BUILD" 2>&1 | tail -1
wait
tail -1 "$OUT/build_old.log"
for run in 1 2; do
  old python benchmarks/ab_fftconv.py --sizes "$SIZES" --tag old >> "$OUT/ab.jsonl" 2>>"$OUT/ab.err"
  new python benchmarks/ab_fftconv.py --sizes "$SIZES" --tag new >> "$OUT/ab.jsonl" 2>>"$OUT/ab.err"
done
python - "$OUT/ab.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
best = {}
for r in rows:  # the faster of each tree's two runs
    key = (r["tag"], r["N"])
    best[key] = min(best.get(key, r), r, key=lambda x: x["fwd_ms"] + x["fwdbwd_ms"])
print(f"{'N':>8} {'floor':>8} {'fwd old':>8} {'fwd new':>8} {'new/old':>7} {'f+b old':>8} {'f+b new':>8} {'new/old':>7}")
for N in sorted({n for _, n in best}):
    o, n = best.get(("old", N)), best.get(("new", N))
    if o and n:
        print(f"{N:>8} {n['floor_ms']:>8.4f} {o['fwd_ms']:>8.4f} {n['fwd_ms']:>8.4f} {n['fwd_ms'] / o['fwd_ms']:>7.3f} "
              f"{o['fwdbwd_ms']:>8.4f} {n['fwdbwd_ms']:>8.4f} {n['fwdbwd_ms'] / o['fwdbwd_ms']:>7.3f}")
PY
