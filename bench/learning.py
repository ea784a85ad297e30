"""Test-split SSIM against training wall time for both families' ``cpu`` preset, beside the
trivial baselines (the learning curves of the README).

Each family trains exactly as ``python jobs/tune_<family>.py --preset cpu --trials 1
--workers-per-trial 2`` trains its one trial: ``raysys.train.fit`` with 2 Ray Train workers
(DDP, gloo, 1 CPU and 1 torch thread each) on the preset's own budget, but every epoch's
checkpoint is kept. Each checkpoint is then scored on the held-out test subjects by
``raysys.evaluate`` (the same code as ``jobs/evaluate.py``). Wall time of an epoch's point = the
MLflow timestamp of that epoch's metrics minus the run's start (training + validation, no
worker start-up). Prints one JSON object and writes the figure (``--figure``).

    OMP_NUM_THREADS=1 python bench/learning.py [--data STORE] [--families mmhvae disentangle]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from train_common import MACHINE, phantom_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("synthesis", "self")


def train_keeping_every_epoch(family: str, data: str, workers: int, root: Path) -> tuple[list[Path], list[float], dict]:
    """(checkpoint dir per epoch, wall seconds at each epoch's end, budget) of one cpu-preset run."""
    from mlflow import MlflowClient

    from raysys.models import preset_budget
    from raysys.train import ScalingSpec, TrackingSpec, TrainConfig, fit

    budget = preset_budget(family, "cpu")
    train = TrainConfig(family=family, preset="cpu", data=data, **budget)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    result = fit(train, {}, ScalingSpec(workers=workers, cpus_per_worker=1), run_name=f"learning-{family}",
                 storage=str(root / "runs"), tracking=TrackingSpec(tracking_uri, experiment="learning"),
                 keep_checkpoints=None)
    run_id = result.return_value["mlflow_run_id"]
    client = MlflowClient(tracking_uri)
    start = client.get_run(run_id).info.start_time
    history = sorted(client.get_metric_history(run_id, "epoch"), key=lambda m: m.step)
    seconds = [(m.timestamp - start) / 1000.0 for m in history]
    checkpoints = sorted((root / "runs" / f"learning-{family}").glob("checkpoint_epoch=*"))
    return checkpoints, seconds, budget


def score(checkpoint: Path, data: str, out: Path, max_slices: int) -> dict:
    """``raysys.evaluate`` summary of one checkpoint on the test split (fold 0)."""
    from raysys.evaluate import evaluate
    from raysys.registry import save_from_checkpoint

    model_dir = save_from_checkpoint(checkpoint, out / "model")
    return evaluate(str(model_dir), data, split="test", fold=0, out=out / "evaluation",
                    max_slices_per_subject=max_slices).summary


def curve_point(summary: dict) -> dict:
    """Per kind: the model's and each baseline's SSIM averaged over targets, and per target."""
    point: dict = {}
    for kind in KINDS:
        rows = {t: v[kind] for t, v in summary["targets"].items() if kind in v}
        methods = sorted({m for per in rows.values() for m in per})
        point[kind] = {m: sum(per[m]["ssim"] for per in rows.values() if m in per) / len(rows) for m in methods}
        point[f"{kind}_per_target"] = {t: {m: v["ssim"] for m, v in per.items()} for t, per in rows.items()}
    point["beats_baselines"] = summary["beats_baselines"]
    return point


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
    styles = {"baseline:zeros": ":", "baseline:mean": "--", "baseline:copy": "-."}
    for ax, (family, curve) in zip(axes[0], curves.items()):
        minutes = [p["seconds"] / 60 for p in curve["points"]]
        label = {"synthesis": "synthesis (mmhvae: all others -> target)" if family == "mmhvae" else "cross-synthesis (mean over pairs)",
                 "self": "self-reconstruction"}
        for kind, colour in zip(KINDS, ("C0", "C1")):
            ax.plot(minutes, [p[kind]["model"] for p in curve["points"]], "o-", color=colour, label=f"model: {label[kind]}")
            if kind == "synthesis":
                for baseline, style in styles.items():
                    ax.axhline(curve["points"][-1][kind][baseline], color="grey", linestyle=style,
                               label=f"{baseline} ({kind})")
        ax.set_title(f"{family} (cpu preset, 2 workers)")
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel("test SSIM (brain-masked, mean over targets)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="store (default: a fresh 24-subject 2 mm 64x64 phantom store)")
    p.add_argument("--families", nargs="+", default=["mmhvae", "disentangle"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-slices-per-subject", type=int, default=8, help="test slices scored per subject and epoch")
    p.add_argument("--score-every", type=int, default=1, help="score every k-th epoch (the first and last always)")
    p.add_argument("--figure", default=str(ROOT / "docs" / "learning_curves.png"))
    p.add_argument("--keep", default=None, metavar="JSON",
                   help="an earlier result of this bench: the curves of families not in --families come from it "
                        "(re-measure one family, plot both)")
    args = p.parse_args()
    kept = {}
    if args.keep:
        earlier = json.loads(Path(args.keep).read_text())
        kept = {f: c for f, c in earlier["curves"].items() if f not in args.families}
    data = phantom_store(args.data, subjects=24)

    import ray

    ray.init(address="local", num_cpus=args.workers, log_to_driver=False)
    root = Path(tempfile.mkdtemp(prefix="raysys-bench-learning-"))
    curves = {}
    for family in args.families:
        start = time.perf_counter()
        checkpoints, seconds, budget = train_keeping_every_epoch(family, data, args.workers, root)
        fit_seconds = time.perf_counter() - start
        points = []
        for epoch, (checkpoint, wall) in enumerate(zip(checkpoints, seconds), start=1):
            if epoch not in (1, len(checkpoints)) and epoch % args.score_every:
                continue
            summary = score(checkpoint, data, root / family / f"epoch{epoch}", args.max_slices_per_subject)
            points.append({"epoch": epoch, "seconds": wall, **curve_point(summary)})
        curves[family] = {"budget": budget, "fit_wall_seconds": fit_seconds, "points": points}
    ray.shutdown()
    curves = {**kept, **curves}
    plot(curves, Path(args.figure))
    print(json.dumps({"benchmark": "learning", "machine": MACHINE, "workers": args.workers, "data": data,
                      "split": "test", "fold": 0, "max_slices_per_subject": args.max_slices_per_subject,
                      "figure": args.figure, "kept_from": args.keep if kept else None, "curves": curves}, indent=2))


if __name__ == "__main__":
    main()
