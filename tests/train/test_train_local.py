"""raysys.train.train_local: the epoch loop in this process, without Ray (benches, tests, one-process trials)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from raysys.names import OBJECTIVE, TAG_FAMILY, TAG_STORE
from raysys.train import TrackingSpec, TrainConfig, train_local
from raysys.train.checkpoint import load_state, read_rank_records

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent


def toy_train(store: str, **kw) -> TrainConfig:
    base = dict(family="toy", preset="tiny", data=store, epochs=2, batch_size=2, max_steps_per_epoch=2, max_val_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def test_train_local_runs_without_ray(tiny_store):
    code = (
        "import json, sys\n"
        "from raysys.models import FAMILIES\n"
        "FAMILIES['toy'] = 'toy_family:ToyFamily'\n"
        "from raysys.train import TrainConfig, train_local\n"
        f"train = TrainConfig(family='toy', data={tiny_store!r}, epochs=2, batch_size=2, max_steps_per_epoch=2, max_val_steps=2)\n"
        "result = train_local(train)\n"
        "print(json.dumps({'metrics': result.metrics, 'ray': sorted(m for m in sys.modules if m.split('.')[0] == 'ray')}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ray"] == []
    metrics = out["metrics"]
    assert metrics["epoch"] == 2 and math.isfinite(metrics[OBJECTIVE])
    assert metrics[OBJECTIVE] == metrics["val/psnr"] and math.isfinite(metrics["val/l1"])
    assert math.isfinite(metrics["train/loss/total"])


def test_callback_sees_every_epoch_and_a_resumed_run_replays_exactly(tiny_store, tmp_path):
    seen: list[tuple[int, str | None]] = []

    def report(metrics, checkpoint_dir):
        seen.append((metrics["epoch"], checkpoint_dir))
        assert load_state(checkpoint_dir)["epoch"] == metrics["epoch"]  # complete when the callback runs

    straight = train_local(toy_train(tiny_store, epochs=3), checkpoint_dir=tmp_path / "straight")
    first = train_local(toy_train(tiny_store, epochs=2), report=report, checkpoint_dir=tmp_path / "a")
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert first.checkpoint == Path(seen[-1][1]) and first.summary["epochs_done"] == 2
    kept = sorted(p.name for p in (tmp_path / "a").glob("checkpoint_epoch=*"))
    best_epoch = first.best_state["epoch"]
    assert kept == sorted({f"checkpoint_epoch={e:06d}" for e in (best_epoch, 2)})  # the best and the latest
    assert first.best_state["best_metric"] == pytest.approx(first.metrics["best_objective"])

    # A Tune trial restored from its checkpoint: resume_from names it; this run writes its own directory.
    seen.clear()
    resumed = train_local(toy_train(tiny_store, epochs=3), report=report, checkpoint_dir=tmp_path / "b", resume_from=first.checkpoint)
    assert [epoch for epoch, _ in seen] == [3] and resumed.summary["epochs_done"] == 3
    # Per-epoch reseeding + restored optimizer/scheduler state: the continuation is exact.
    assert read_rank_records(resumed.checkpoint)[0]["parameter_sha256"] == read_rank_records(straight.checkpoint)[0]["parameter_sha256"]
    assert resumed.metrics[OBJECTIVE] == pytest.approx(straight.metrics[OBJECTIVE], abs=1e-6)

    # The same checkpoint directory again: continues from its latest, nothing left to do at epochs=2.
    again = train_local(toy_train(tiny_store, epochs=2), checkpoint_dir=tmp_path / "a")
    assert again.metrics == {} and again.summary["epochs_done"] == 2


def test_tracked_local_run_is_recorded_like_fit(tiny_store, tmp_path, tracking_uri):
    result = train_local(toy_train(tiny_store, epochs=1), tracking=TrackingSpec(tracking_uri, experiment="local"), run_name="toy-local")
    client = MlflowClient(tracking_uri)
    run = client.get_run(result.summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "toy-local"
    assert run.data.tags[TAG_FAMILY] == "toy" and run.data.tags[TAG_STORE] and run.data.tags["model.width"] == "8"
    assert run.data.params["train.epochs"] == "1" and float(run.data.metrics[OBJECTIVE]) == pytest.approx(result.metrics[OBJECTIVE])
    assert "figures/synthesis_grid.png" in [a.path for a in client.list_artifacts(run.info.run_id, "figures")]


def test_bad_arguments_fail_before_training(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="train.data"):
        train_local(toy_train(""))
    with pytest.raises(ValueError, match="width_typo"):
        train_local(toy_train(tiny_store), {"width_typo": 1})
