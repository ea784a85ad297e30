#!/usr/bin/env bash
# Run every benchmark; each prints one JSON object, collected under bench/results/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p bench/results
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for script in phantom_speed data_convert data_read mmhvae_size train_overhead train_scaling tune_overhead; do
    echo "== bench/$script.py" >&2
    "$PY" "bench/$script.py" | tee "bench/results/$script.json"
done
