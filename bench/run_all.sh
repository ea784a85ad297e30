#!/usr/bin/env bash
# Run every benchmark; each prints one JSON object, collected under bench/results/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p bench/results
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run() {   # run NAME SCRIPT [ARGS...]
    local name=$1 script=$2
    shift 2
    echo "== bench/$script.py $*" >&2
    "$PY" "bench/$script.py" "$@" | tee "bench/results/$name.json"
}
run phantom_speed phantom_speed
run data_convert data_convert
run data_convert_no_tissue data_convert --no-tissue
run data_convert_2mm data_convert --resolution 2
run data_read data_read
run mmhvae_size mmhvae_size
run train_overhead train_overhead
run train_scaling train_scaling
run tune_overhead tune_overhead
run learning learning
run hpo_efficiency hpo_efficiency
