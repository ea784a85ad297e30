"""``jobs/reproduce.py --budget smoke`` of every experiment in one Ray session, on the session's
tiny store: the reports' tables and claims, the MLflow parent and child runs and their params.

Rows that need a switch this build lacks (MHVAE: ``model.posterior``/``train.modalities``; the
ablation's ``full posterior`` / ``complete data``) are skipped by the job itself and reported as
such; once the switches are merged the same test trains them (the counts below follow the plan).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient

from raysys.data import open_store
from raysys.names import TAG_VARIANT
from raysys.reproduce.cli import EXPERIMENT_NAME, TAG_EXPERIMENT, main
from raysys.reproduce.experiments import EXPERIMENTS
from raysys.reproduce.plan import make_plan
from raysys.tracking import PARENT_TAG

pytestmark = pytest.mark.slow

PARAMS_OF = {"ouyang-table1": ("model.encoder", "model.regulariser"),
             "mmhvae-table1": ("train.family", "train.preset"),
             "mmhvae-ablation": ("model.levels", "model.fusion", "model.lambda_gan")}


@pytest.fixture(scope="module")
def smoke_runs(tiny_store, tmp_path_factory):
    """The three smoke runs, one Ray session; {experiment: (out dir, None)} and the tracking URI (no
    timed assertion here: pytest --durations reports the fixture's time in CI)."""
    root = tmp_path_factory.mktemp("reproduce")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 2}, include_dashboard=False, log_to_driver=False)
    done = {}
    try:
        for name in EXPERIMENTS:
            code = main([name, "--budget", "smoke", "--seeds", "1", "--data", tiny_store, "--tracking-uri", tracking,
                         "--out", str(root / name)])
            assert code == 0
            done[name] = (root / name, None)
    finally:
        ray.shutdown()
    return done, tracking


def _parent(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_EXPERIMENT}` = '{name}' "
                              "and tags.`raysys.role` = 'reproduce'")
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_smoke_report_has_the_tables_and_every_claim(smoke_runs, name):
    done, _ = smoke_runs
    out, _ = done[name]
    report = (out / "report.md").read_text()
    experiment = EXPERIMENTS[name]
    assert report.startswith(f"# {experiment.title}") and "A different dataset" in report
    assert "## Tables" in report and "## Claims" in report
    for claim in experiment.claims:  # one seed x 2 test subjects: never enough pairs for p < 0.01
        line = next(line for line in report.splitlines() if line.startswith(f"| {claim.text} |"))
        assert "**not testable**" in line
    assert (out / "figures" / "scores.png").stat().st_size > 0
    assert (out / "claims.csv").read_text().count("not testable") == len(experiment.claims)
    scores = (out / "scores.csv").read_text().splitlines()
    assert scores[0] == "method,run,seed,subject,inputs,target,psnr,ssim" and len(scores) > 10
    assert any(line.startswith("copy,") for line in scores)  # the trivial baselines are in the tables
    for baseline in ("zeros", "mean", "copy"):
        assert f"| {baseline} |" in report or f"| baseline {baseline} |" in report or f"| {baseline} | ●" in report \
            or f"| {baseline} | ○" in report


def test_smoke_layouts(smoke_runs, tiny_store):
    done, _ = smoke_runs
    ouyang = (done["ouyang-table1"][0] / "report.md").read_text()
    assert "| Conv+NA | " in ouyang and "[27.30/0.717]" in ouyang  # the paper's BraTS value beside ours
    assert "probe accuracy on f(s) (chance 0.25)" in ouyang and "| CondConv+Sim | 0." in ouyang
    table1 = (done["mmhvae-table1"][0] / "report.md").read_text()
    assert "*paper: MMHVAE* | ○ | ○ | ● | ○ | " in table1 and "ResViT" in table1 and "M2DN" in table1
    ablation = (done["mmhvae-ablation"][0] / "report.md").read_text()
    assert "**a) number of latent variables L**" in ablation and "| L=Lmax | " in ablation
    assert "same configuration as 'L=Lmax', trained once" in ablation


def test_smoke_mlflow_parent_children_and_params(smoke_runs, tiny_store):
    done, tracking = smoke_runs
    client = MlflowClient(tracking)
    store = open_store(tiny_store)
    for name, (out, _) in done.items():
        parent = _parent(client, name)
        assert parent.info.status == "FINISHED"
        assert parent.data.params["reproduce.budget"] == "smoke" and parent.data.params["reproduce.seeds"] == "0"
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"report.md", "claims.csv", "scores.csv", "figures"} <= artifacts
        plan = make_plan(EXPERIMENTS[name], "smoke", store, 0)
        children = client.search_runs([parent.info.experiment_id],
                                      filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
        assert sorted(c.data.tags[TAG_VARIANT] for c in children) == sorted(r.key for r in plan.runs)  # once each
        for child in children:
            run = next(r for r in plan.runs if r.key == child.data.tags[TAG_VARIANT])
            assert child.info.status == "FINISHED"
            for key in PARAMS_OF[name]:  # the studies' names, the row's values
                assert child.data.params[key] == str(run.flat[key])
            assert child.data.params["train.epochs"] == "1"
            scored = [k for k in child.data.metrics if k.startswith("test/")]
            # a two-modality MHVAE row has synthesis cells only where a test subject has both
            assert scored and ("test/ssim_synthesis_mean" in scored or run.flat.get("train.modalities")), (child.data.tags, scored)
            assert {a.path for a in client.list_artifacts(child.info.run_id, "evaluation")} >= {
                "evaluation/per_subject.csv", "evaluation/summary.json"}


def test_bad_flags_exit_2_before_ray(tmp_path, capsys):
    assert main(["ouyang-table1", "--budget", "smoke", "--data", str(tmp_path / "none.zarr"), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
