"""ASHA stops trials that run a real TorchTrainer, and later trials still get their workers.

After the study every placement group must be REMOVED: Train's cleaner (which needs the
dashboard's State API, i.e. ``ray[default]``) releases the groups of the trials ASHA stopped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
import ray.train
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudySpec, run_study

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def worker_loop(config):
    for epoch in range(config["epochs"]):
        # Each trial is worse than the one before it: ASHA (rf 2) stops all but the first at rung 1.
        ray.train.report({"objective": 10.0 - config["order"] - 0.01 * epoch, "epoch": epoch})


def torch_trainer_trainable(config, context):
    """The trial driver's shape: a Tune function trainable that launches a TorchTrainer."""
    counter = Path(context.train_storage) / "order.txt"
    counter.parent.mkdir(parents=True, exist_ok=True)
    order = len(counter.read_text()) if counter.exists() else 0
    counter.write_text("x" * (order + 1))
    trial_id = ray.tune.get_context().get_trial_id()
    TorchTrainer(
        worker_loop,
        train_loop_config={"epochs": context.train.epochs, "order": order},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(
            name=trial_id, storage_path=context.train_storage, callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0, controller_failure_limit=0),
        ),
    ).fit()


def test_asha_stops_train_trials_and_later_trials_still_start(tmp_path):
    # A busy 2-core CI box can take longer than Train's default 60 s to start a worker group.
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 1}, include_dashboard=True, dashboard_host="127.0.0.1",
             log_to_driver=False, runtime_env={"env_vars": {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "180"}})
    try:
        spec = StudySpec(train=TrainConfig(family="disentangle", epochs=3), name="asha",
                         storage=str(tmp_path / "studies"), trials=3, grace_epochs=1, concurrency=1, register=False,
                         mode="max", tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t"))
        outcome = run_study(spec, trainable=torch_trainer_trainable)
        from ray.tune import ExperimentAnalysis

        analysis = ExperimentAnalysis(str(spec.study_dir))
        iterations = sorted(int(t.last_result.get("training_iteration", 0)) for t in analysis.trials)
        assert outcome.trials == 3 and not outcome.errored
        assert iterations == [1, 1, 3], iterations  # two stopped at the grace rung, one ran to max_t
        assert outcome.best_objective == pytest.approx(10.0)
        # The last stopped trial's group is removed asynchronously by Train's cleaner (1 s polls).
        deadline = time.monotonic() + 60
        while (leaked := [pg for pg in ray.util.placement_group_table().values() if pg["state"] != "REMOVED"]):
            assert time.monotonic() < deadline, f"placement groups not removed: {leaked}"
            time.sleep(1)
    finally:
        ray.shutdown()
