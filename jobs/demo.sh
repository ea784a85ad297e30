#!/usr/bin/env bash
# `make demo`: a Ray head and an MLflow server on 127.0.0.1, then the main job submitted with
# `ray job submit -- python jobs/tune_mmhvae.py`; prints the MLflow UI address, the best trial
# and the registered champion. `make stop` (= `bash jobs/demo.sh stop`) stops exactly what this
# script started: the processes recorded under .demo/ (never `ray stop`, which would stop every
# Ray on the machine).
#
# Then the champion is evaluated on the store's held-out test subjects beside the trivial baselines
# (jobs/evaluate.py) and the summary printed.
# Tunables (environment): DEMO_DIR (.demo), DEMO_PRESET (cpu), DEMO_TRIALS (2), DEMO_EPOCHS (4),
# DEMO_STEPS (steps per epoch), DEMO_VAL_STEPS (unset: the preset's budget), DEMO_CPUS (2),
# DEMO_ARGS (extra flags for tune_mmhvae.py), DEMO_EVAL_ARGS (flags for evaluate.py; default --max-slices-per-subject 24).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${DEMO_DIR:-$ROOT/.demo}"
PY="${PY:-$ROOT/.venv/bin/python}"
BIN="$(dirname "$PY")"
RAY_TMP="$DEMO/ray"
# Ray's socket paths live under its temp dir and must stay short (AF_UNIX limit of 107 bytes).
if (( ${#RAY_TMP} > 40 )); then RAY_TMP="/tmp/raysys-ray-$(printf '%s' "$DEMO" | md5sum | cut -c1-10)"; fi
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1

say() { printf '[demo] %s\n' "$*"; }

stop_all() {
  local stopped=0
  if [[ -f "$DEMO/mlflow.pgid" ]]; then
    local pgid; pgid="$(cat "$DEMO/mlflow.pgid")"
    if kill -0 -- "-$pgid" 2>/dev/null; then
      kill -TERM -- "-$pgid" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pgid" 2>/dev/null || true
      stopped=1
    fi
    rm -f "$DEMO/mlflow.pgid"
  fi
  # The head's processes: its session (recorded at start) plus anything carrying its own temp
  # dir on the command line. Nothing else on the machine is touched.
  local pids
  head_pids() {  # live ones only: a zombie left for init to reap is already stopped
    local p
    for p in $({ [[ -f "$DEMO/ray.sid" ]] && pgrep -s "$(cat "$DEMO/ray.sid")"; pgrep -f -- "$RAY_TMP"; } 2>/dev/null | sort -u); do
      [[ "$(ps -o stat= -p "$p" 2>/dev/null)" == Z* ]] || echo "$p"
    done
  }
  pids="$(head_pids)"
  if [[ -n "$pids" ]]; then
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 20); do pids="$(head_pids)"; [[ -z "$pids" ]] && break; sleep 0.5; done
    if [[ -n "$pids" ]]; then
      kill -KILL $pids 2>/dev/null || true
      for _ in $(seq 20); do [[ -z "$(head_pids)" ]] && break; sleep 0.25; done
    fi
    stopped=1
  fi
  rm -f "$DEMO/ports.env" "$DEMO/ray.sid"
  [[ $stopped == 1 ]] && say "stopped the demo's Ray head and MLflow server" || say "nothing of the demo was running"
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

wait_for() {  # wait_for <what> <seconds> <command...>
  local what="$1" limit="$2"; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start > limit )); then say "$what did not come up within ${limit}s (logs in $DEMO)"; return 1; fi
    sleep 1
  done
}

if [[ "${1:-}" == "stop" ]]; then stop_all; exit 0; fi

T0=$SECONDS
mkdir -p "$DEMO/mlflow/artifacts" "$DEMO/studies"
# The head runs with token authentication; its token lives in the demo's own folder (created once,
# readable only by you), so a fresh machine needs no ~/.ray/auth_token and no other Ray's token is used.
export RAY_AUTH_TOKEN_PATH="$DEMO/auth_token"
if [[ ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
  (umask 077; "$PY" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$RAY_AUTH_TOKEN_PATH")
fi
stop_all >/dev/null  # a previous demo's servers (its MLflow data and studies are kept)

RAY_PORT="$(free_port)"; DASH_PORT="$(free_port)"; MLFLOW_PORT="$(free_port)"
CLIENT_PORT="$(free_port)"; AGENT_PORT="$(free_port)"; METRICS_PORT="$(free_port)"; RUNTIME_ENV_PORT="$(free_port)"
printf 'RAY_PORT=%s\nDASH_PORT=%s\nMLFLOW_PORT=%s\n' "$RAY_PORT" "$DASH_PORT" "$MLFLOW_PORT" >"$DEMO/ports.env"

say "starting MLflow server on 127.0.0.1:$MLFLOW_PORT"
setsid "$BIN/mlflow" server \
  --backend-store-uri "sqlite:///$DEMO/mlflow/mlflow.db" \
  --artifacts-destination "$DEMO/mlflow/artifacts" \
  --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 >"$DEMO/mlflow.log" 2>&1 &
echo $! >"$DEMO/mlflow.pgid"

say "starting Ray head on 127.0.0.1:$RAY_PORT (dashboard $DASH_PORT)"
# In a session of its own, so `stop` also finds the agents that rename themselves (ray::DashboardAgent ...).
setsid --wait bash -c 'echo $$ >"$0/ray.sid"; exec "$@"' "$DEMO" \
  "$BIN/ray" start --head --node-ip-address=127.0.0.1 --port "$RAY_PORT" \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port "$DASH_PORT" \
  --ray-client-server-port "$CLIENT_PORT" --dashboard-agent-listen-port "$AGENT_PORT" \
  --metrics-export-port "$METRICS_PORT" --runtime-env-agent-port "$RUNTIME_ENV_PORT" \
  --num-cpus "${DEMO_CPUS:-2}" --resources '{"trial_driver": 2}' --temp-dir "$RAY_TMP" \
  --disable-usage-stats >"$DEMO/ray-start.log" 2>&1 || { say "ray start failed:"; cat "$DEMO/ray-start.log"; stop_all; exit 1; }

wait_for "MLflow server" 120 curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health"
wait_for "Ray job server" 120 "$BIN/ray" job list --address "http://127.0.0.1:$DASH_PORT"
say "both healthy after $((SECONDS - T0)) s"

PRESET="${DEMO_PRESET:-cpu}"
# The preset's own budget, but 4 epochs (cpu: 10) so two trials fit the demo's 10 minutes.
BUDGET=(--max-epochs "${DEMO_EPOCHS:-4}")
[[ -n "${DEMO_STEPS:-}" ]] && BUDGET+=(--max-steps-per-epoch "$DEMO_STEPS")
[[ -n "${DEMO_VAL_STEPS:-}" ]] && BUDGET+=(--max-val-steps "$DEMO_VAL_STEPS")
say "submitting: python jobs/tune_mmhvae.py --preset $PRESET (logs also in $DEMO/job.log)"
set +e
"$BIN/ray" job submit --address "http://127.0.0.1:$DASH_PORT" \
  --runtime-env-json "{\"env_vars\": {\"OMP_NUM_THREADS\": \"1\", \"RAYSYS_HOME\": \"$ROOT\"}}" -- \
  "$PY" "$ROOT/jobs/tune_mmhvae.py" \
    --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" --storage "$DEMO/studies" --preset "$PRESET" \
    --trials "${DEMO_TRIALS:-2}" --grace-epochs 1 "${BUDGET[@]}" \
    --workers-per-trial 1 --concurrency 2 ${DEMO_ARGS:-} 2>&1 | tee "$DEMO/job.log"
STATUS=${PIPESTATUS[0]}
set -e

SUMMARY="$(grep -a '^RAYSYS_STUDY ' "$DEMO/job.log" | tail -1 | cut -d' ' -f2- || true)"
echo
if [[ $STATUS -ne 0 || -z "$SUMMARY" ]]; then
  say "the study job failed (exit $STATUS); see $DEMO/job.log. Servers are still up: 'make stop' stops them."
  exit 1
fi

# The champion on held-out subjects (the store's test fold), beside the trivial predictions.
DATA="$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["data"])' "$SUMMARY")"
say "evaluating models:/mmhvae@champion on the test subjects of $DATA"
set +e
"$PY" "$ROOT/jobs/evaluate.py" --model "models:/mmhvae@champion" --data "$DATA" --split test \
  --out "$DEMO/evaluation" --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" ${DEMO_EVAL_ARGS:---max-slices-per-subject 24} 2>&1 | tee "$DEMO/evaluate.log"
EVAL_STATUS=${PIPESTATUS[0]}
set -e
if [[ $EVAL_STATUS -ne 0 ]]; then
  say "the evaluation failed (exit $EVAL_STATUS); see $DEMO/evaluate.log. Servers are still up: 'make stop' stops them."
  exit 1
fi
echo
"$PY" - "$SUMMARY" "$MLFLOW_PORT" "$DASH_PORT" "$((SECONDS - T0))" "$DEMO" "$ROOT" <<'PYEOF'
import json, sys
s, port, dash, secs, demo, root = json.loads(sys.argv[1]), *sys.argv[2:]
print(f"MLflow UI        : http://127.0.0.1:{port}   (experiments 'raysys-studies' and 'raysys-evaluation', parent run {s['parent_run_id']})")
print(f"best trial       : {s['best_trial']}  objective (val PSNR over input subsets) = {s['best_objective']:.3f} dB (vs the baselines: the test summary above)")
champion = "is the champion" if s["champion"] else "did not beat the current champion"
print(f"registered model : models:/{s['model']}/{s['version']} ({champion}); load it with")
print(f"                   MLFLOW_TRACKING_URI=http://127.0.0.1:{port} python -c \"import raysys.registry as r; print(r.load('models:/{s['model']}@champion'))\"")
print(f"test evaluation  : {demo}/evaluation (table.md, per_subject.csv, figure.png; summary above)")
print(f"Ray dashboard    : http://127.0.0.1:{dash}   submit another job to this head with")
print(f"                   RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={demo}/auth_token {sys.executable.rsplit('/', 1)[0]}/ray job submit --address http://127.0.0.1:{dash} -- \\")
print(f"                     {sys.executable} {root}/jobs/tune_mmhvae.py --preset cpu --trials 2 --tracking-uri http://127.0.0.1:{port}")
print(f"                   (the head uses token authentication; its token is {demo}/auth_token)")
print(f"wall time        : {secs} s.  'make stop' stops the Ray head and the MLflow server.")
PYEOF
