"""HPO efficiency: trial-epochs ASHA + TPE needs to reach random search's final best objective.

One search space (``search_spaces/mmhvae.py``), one store, several seeds. For every seed three
studies run through ``raysys.tune.run_study`` (the real trial driver, exactly what
``jobs/tune_mmhvae.py --search S --scheduler X`` runs), differing only in ``search`` and ``scheduler``:
    asha+tpe   --search tpe    --scheduler asha   (raysys' default study)
    random     --search random --scheduler none   (the random-search baseline: every trial runs its epochs)
    tpe        --search tpe    --scheduler none   (TPE without ASHA)
All three evaluate the same first point (the paper's values, or the cpu preset's own) and share
the seed (sampler and training), so a difference comes from the sampler and the scheduler alone.

Measure. Trials run one after another (``--concurrency 1``); a study's trial-epochs are the
epochs its trials reported, in the order they ran. Its curve is the best objective (``objective``
= mmhvae's ``val/psnr_mean``, maximised) reported by any epoch so far against trial-epochs spent.
Per seed the target is random search's final best; each method's "trial-epochs to target" is
the first point of its curve at or beyond it (None: never within its budget). Budget per study:
random and tpe run ``trials`` x ``epochs`` trial-epochs; asha+tpe runs as many trials as ASHA
would spend about the same trial-epochs on if each rung kept exactly half (``asha_trials``:
``trials x epochs / expected ASHA epochs per trial``); asynchronous ASHA with one trial at a time
promotes more while its rungs hold few results, so it usually spends somewhat more (the JSON has
each study's ``trial_epochs``). Goal: asha+tpe needs <= 1/3 of random's trial-epochs
(``ratio`` <= 0.333).

Budgets (``--budget``):
    small  tiny preset on a fresh 12-subject 64x64 phantom store, 4 epochs of 2 steps (batch 4,
           2 validation batches), 12 trials (24 for asha+tpe), 3 seeds: 35 minutes measured on the
           2-core sandbox while other jobs loaded it (load 3-9); each trial also costs seconds of
           Tune/MLflow overhead, which is not counted in trial-epochs.
    cpu    the issue's setting: the cpu preset with its own budget (10 epochs of 55 steps, batch 8,
           4 validation batches) on a 24-subject store, 16 trials, 3 seeds: for a bigger machine
           (a cpu trial is 5-8 minutes on 2 cores; give it --concurrency > 1 there, see README).
Any budget value can be overridden by its flag. Prints one JSON object (also written to
``--out``, after every seed too) and draws the curves (``--figure``, default docs/hpo_efficiency.png).

    OMP_NUM_THREADS=1 python bench/hpo_efficiency.py [--budget small|cpu] [--data STORE] [--seeds N] \
        | tee bench/results/hpo_efficiency.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from train_common import MACHINE, phantom_store  # noqa: E402

from raysys.tune.spec import ASHA_REDUCTION_FACTOR, TPE_STARTUP_TRIALS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAMILY = "mmhvae"
METHODS = {"asha+tpe": ("tpe", "asha"), "random": ("random", "none"), "tpe": ("tpe", "none")}
GOAL_RATIO = 1 / 3
GRACE_EPOCHS = 1
BUDGETS: dict[str, dict[str, Any]] = {
    "small": {"preset": "tiny", "subjects": 12, "epochs": 4, "max_steps_per_epoch": 2, "batch_size": 4,
              "max_val_steps": 2, "trials": 12, "seeds": 3},
    # The cpu preset's own training budget (raysys.models.preset_budget) is filled in at run time.
    "cpu": {"preset": "cpu", "subjects": 24, "trials": 16, "seeds": 3},
}


def expected_asha_epochs(max_t: int, grace: int, reduction_factor: int = 2) -> float:
    """Epochs an ASHA trial runs on average when each rung keeps 1/reduction_factor of the trials
    (rungs at grace x rf^k below max_t, as Ray's ASHA places them)."""
    milestones, rung = [], grace
    while rung < max_t:
        milestones.append(rung)
        rung *= reduction_factor
    spend, surviving, previous = 0.0, 1.0, 0
    for milestone in milestones + [max_t]:
        spend += surviving * (milestone - previous)
        surviving /= reduction_factor
        previous = milestone
    return spend


def curve(reports: list[tuple[int, int, int, float]], mode: str) -> list[tuple[int, float | None]]:
    """(trial-epochs spent, best objective so far) after every reported epoch.

    ``reports``: (report time in s, trial index, epoch, objective) in any order, sorted into the
    order they were reported (ties, within a second, by trial then epoch: with trials one after
    another that is exactly the order they ran). Non-finite objectives (a diverged trial) count
    as spent, never as best (None until a finite one was reported).
    """
    sign = 1.0 if mode == "max" else -1.0
    points: list[tuple[int, float | None]] = []
    best = -math.inf
    for spent, (*_, value) in enumerate(sorted(reports), start=1):
        if math.isfinite(value):
            best = max(best, sign * value)
        points.append((spent, sign * best if math.isfinite(best) else None))
    return points


def epochs_to_reach(points: list[tuple[int, float | None]], target: float | None, mode: str) -> int | None:
    """Trial-epochs at which the curve first reaches ``target`` (None if it never does)."""
    if target is None:
        return None
    for spent, best in points:
        if best is not None and (best >= target if mode == "max" else best <= target):
            return spent
    return None


def study_reports(study_dir: str) -> list[tuple[int, int, int, float]]:
    """(report time, trial index, epoch, objective) of every epoch any trial of the study reported
    (Tune's results; ``timestamp`` is Tune's whole-second report time)."""
    from ray.tune import ExperimentAnalysis

    from raysys.names import OBJECTIVE

    analysis = ExperimentAnalysis(study_dir)
    frames = analysis.trial_dataframes
    reports = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        if frame is None or frame.empty or OBJECTIVE not in frame:
            continue
        index = int(trial.experiment_tag.split("_", 1)[0])  # "<n>_<params>": n counts trials in creation order
        for stamp, iteration, value in zip(frame["timestamp"], frame["training_iteration"], frame[OBJECTIVE]):
            reports.append((int(stamp), index, int(iteration), float(value) if value is not None else math.nan))
    return reports


def run_method(method: str, seed: int, budget: dict[str, Any], data: str, root: Path, concurrency: int) -> dict[str, Any]:
    """One study of ``method`` with ``seed``; its curve, trials and wall time."""
    from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
    from raysys.tune import StudySpec, run_study

    search, scheduler = METHODS[method]
    trials = budget["asha_trials"] if scheduler == "asha" else budget["trials"]
    train = TrainConfig(family=FAMILY, preset=budget["preset"], data=data, seed=seed, epochs=budget["epochs"],
                        batch_size=budget["batch_size"], max_steps_per_epoch=budget["max_steps_per_epoch"],
                        max_val_steps=budget["max_val_steps"])
    spec = StudySpec(train=train, name=f"{method.replace('+', '-')}-seed{seed}", storage=str(root / "studies"),
                     scaling=ScalingSpec(workers=budget["workers_per_trial"]), trials=trials, grace_epochs=GRACE_EPOCHS,
                     concurrency=concurrency, register=False, search=search, scheduler=scheduler,
                     reduction_factor=budget["reduction_factor"], tpe_startup_trials=budget["tpe_startup_trials"],
                     tracking=TrackingSpec(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment="hpo-efficiency"))
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Tune's progress tables: stdout is the JSON
        outcome = run_study(spec)
    wall = time.perf_counter() - start
    reports = study_reports(str(spec.study_dir))
    points = curve(reports, spec.objective_mode)
    print(f"[hpo_efficiency] {spec.name}: {outcome.trials} trials, {len(points)} trial-epochs, "
          f"best {points[-1][1] if points else float('nan'):.3f}, {wall:.0f} s", file=sys.stderr, flush=True)
    return {"search": search, "scheduler": scheduler, "trials": outcome.trials, "errored": len(outcome.errored),
            "trial_epochs": len(points), "final_best": points[-1][1] if points else None,
            "wall_s": round(wall, 1), "curve": points, "mode": spec.objective_mode}


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One seed's comparison: random's final best as target, each method's trial-epochs to it."""
    mode = runs["random"]["mode"]
    target = runs["random"]["final_best"]
    reach = {m: epochs_to_reach(r["curve"], target, mode) for m, r in runs.items()}
    ratio = reach["asha+tpe"] / reach["random"] if None not in (reach["asha+tpe"], reach["random"]) else None
    return {"target": target, "trial_epochs_to_target": reach,
            "asha_tpe_over_random": ratio, "goal_met": ratio is not None and ratio <= GOAL_RATIO}


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Over seeds: asha+tpe / random per seed and its median (a seed where asha+tpe never reached
    the target counts as infinitely slow), how many seeds met the goal, mean trial-epochs to target."""
    comparisons = [r["comparison"] for r in per_seed.values()]
    ratios = [c["asha_tpe_over_random"] for c in comparisons]
    median = statistics.median(math.inf if r is None else r for r in ratios)
    to_target = {m: [c["trial_epochs_to_target"][m] for c in comparisons] for m in METHODS}
    return {
        "ratio_per_seed": ratios,
        "ratio_median": median if math.isfinite(median) else None,
        "goal_ratio": round(GOAL_RATIO, 3),
        "goal_met_seeds": sum(c["goal_met"] for c in comparisons),
        "goal_met_median": math.isfinite(median) and median <= GOAL_RATIO,
        "seeds": len(comparisons),
        "trial_epochs_to_target_mean": {m: (statistics.mean(v) if None not in v else None) for m, v in to_target.items()},
        "final_best_mean": {m: (statistics.mean(v) if None not in v else None)
                        for m in METHODS for v in [[r["runs"][m]["final_best"] for r in per_seed.values()]]},
    }


def plot(per_seed: dict[int, dict[str, Any]], budget_name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Distinct line styles too: curves that coincide (the shared first point) stay visible.
    styles = {"asha+tpe": ("C0", "-", 2.2), "random": ("C1", "--", 1.6), "tpe": ("C2", ":", 1.6)}
    fig, axes = plt.subplots(1, len(per_seed), figsize=(5.2 * len(per_seed), 4.0), squeeze=False, sharey=True)
    for ax, (seed, result) in zip(axes[0], per_seed.items()):
        for method, run in result["runs"].items():
            xs = [0] + [x for x, _ in run["curve"]]
            ys = [math.nan] + [math.nan if y is None else y for _, y in run["curve"]]
            colour, style, width = styles[method]
            ax.step(xs, ys, where="post", color=colour, linestyle=style, linewidth=width,
                    label=f"{method} ({run['trials']} trials, {run['trial_epochs']} trial-epochs)")
            reached = result["comparison"]["trial_epochs_to_target"][method]
            if reached is not None:
                ax.plot([reached], [dict(run["curve"])[reached]], "o", color=colour)
        if result["comparison"]["target"] is not None:
            ax.axhline(result["comparison"]["target"], color="grey", linestyle="--", label="random search's final best")
        random_reach = result["comparison"]["trial_epochs_to_target"]["random"]
        if random_reach is not None:
            ax.axvline(random_reach * GOAL_RATIO, color="grey", linestyle=":", label="goal: 1/3 of random's trial-epochs")
        ratio = result["comparison"]["asha_tpe_over_random"]
        ax.set_title(f"seed {seed}: asha+tpe / random = " + (f"{ratio:.2f}" if ratio is not None else "not reached"))
        ax.set_xlabel("trial-epochs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("best validation objective so far (PSNR, dB)")
    fig.suptitle(f"mmhvae, budget '{budget_name}': best objective vs trial-epochs (dot: reaches random's final best)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def resolve_budget(args: argparse.Namespace) -> dict[str, Any]:
    """The named budget, the preset's own training budget where it has one, then the flags."""
    from raysys.models import preset_budget

    budget = dict(BUDGETS[args.budget])
    budget = {**preset_budget(FAMILY, budget["preset"]), **budget}
    for key in ("trials", "seeds", "epochs", "batch_size", "max_steps_per_epoch", "max_val_steps"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    budget["workers_per_trial"] = args.workers_per_trial
    budget["reduction_factor"], budget["tpe_startup_trials"] = args.reduction_factor, args.tpe_startup_trials
    expected = expected_asha_epochs(budget["epochs"], GRACE_EPOCHS, args.reduction_factor)
    budget["asha_trials"] = args.asha_trials or math.ceil(budget["trials"] * budget["epochs"] / expected)
    budget["expected_asha_epochs_per_trial"] = round(expected, 3)
    return budget


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--data", default=None, help="store (default: a fresh phantom store of the budget's subjects)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the budget's)")
    p.add_argument("--trials", type=int, default=None, help="trials of random and tpe (default: the budget's)")
    p.add_argument("--asha-trials", type=int, default=None, help="trials of asha+tpe (default: the same expected trial-epochs)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial = ASHA's max_t")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--max-val-steps", type=int, default=None)
    p.add_argument("--reduction-factor", type=int, default=ASHA_REDUCTION_FACTOR,
                   help="ASHA's eta for asha+tpe (jobs/tune_*.py --reduction-factor; default the studies')")
    p.add_argument("--tpe-startup-trials", type=int, default=TPE_STARTUP_TRIALS,
                   help="TPE's random start-up trials for asha+tpe and tpe (default the studies')")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Train workers per trial (1: in the trial process)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="trials at once (1: the curve is the serial order; more: trial-epochs in report order, "
                        "TPE then sees fewer finished trials)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--figure", default=str(ROOT / "docs" / "hpo_efficiency.png"))
    p.add_argument("--out", default=None,
                   help="also write the JSON there, after every seed too (bench/run_all.sh keeps stdout in bench/results/)")
    args = p.parse_args()
    budget = resolve_budget(args)
    data = phantom_store(args.data, subjects=budget["subjects"])

    import ray

    start = time.perf_counter()
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(address="local", num_cpus=args.num_cpus, resources={"trial_driver": args.concurrency},
                 include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    root = Path(tempfile.mkdtemp(prefix="raysys-bench-hpo-"))
    per_seed: dict[int, dict[str, Any]] = {}
    out = Path(args.out) if args.out else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)

    def result() -> dict[str, Any]:
        return {"bench": "hpo_efficiency", "machine": machine(), "budget_name": args.budget, "budget": budget,
                "data": data, "concurrency": args.concurrency, "wall_s": round(time.perf_counter() - start, 1),
                "figure": args.figure, "summary": summarise(per_seed), "per_seed": per_seed}

    try:
        for seed in range(budget["seeds"]):
            runs = {method: run_method(method, seed, budget, data, root, args.concurrency) for method in METHODS}
            per_seed[seed] = {"runs": runs, "comparison": compare(runs)}
            plot(per_seed, args.budget, Path(args.figure))  # what a stopped run has so far
            if out is not None:
                out.write_text(json.dumps({**result(), "partial": seed + 1 < budget["seeds"]}, indent=2))
    finally:
        ray.shutdown()
    text = json.dumps(result(), indent=2)
    if out is not None:
        out.write_text(text)
    print(text)


def machine() -> str:
    import torch

    if os.cpu_count() == 2 and not torch.cuda.is_available():
        return MACHINE
    return f"{os.cpu_count()} CPUs ({platform.machine()}), {torch.cuda.device_count()} GPU(s)"


if __name__ == "__main__":
    main()
