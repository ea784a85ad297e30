"""``DIR/report.md`` with ``DIR/figures/*.png``, ``DIR/scores.csv`` and ``DIR/claims.csv``.

report.md: what ran (store, fold, budget, seeds, machine, wall time, rows skipped and why), the
tables in the papers' layouts (``raysys.reproduce.tables``) and the claim checks
(``raysys.reproduce.claims``): per claim the rows compared, the metric, n pairs, the effect
sizes, the paired Wilcoxon p and the verdict.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from raysys.reproduce import claims as claim_checks
from raysys.reproduce import tables
from raysys.reproduce.experiments import Claim
from raysys.reproduce.plan import Plan
from raysys.reproduce.scores import Scores

CLAIM_COLUMNS = ("claim", "better", "worse", "metric", "n", "mean_diff", "rank_biserial", "p", "verdict", "reason", "paper")
NOT_IMPLEMENTED = {"ResViT": "transformer baseline of MMHVAE Table I", "M2DN": "diffusion baseline of MMHVAE Table I"}


@dataclasses.dataclass
class ClaimResult:
    claim: Claim
    check: claim_checks.Check


def check_claims(plan: Plan, scores: Scores, chance: float) -> list[ClaimResult]:
    """Every claim of the experiment; a side that was not run makes it not testable (with why)."""
    out = []
    for claim in plan.experiment.claims:
        missing = [side for side in (claim.better, claim.worse)
                   if all(r.label in plan.skipped for r in plan.rows if r.method == side)]
        if missing:
            reasons = "; ".join(f"{r.label}: {plan.skipped[r.label]}" for r in plan.rows if r.method in missing)
            out.append(ClaimResult(claim, claim_checks.Check(0, math.nan, math.nan, math.nan, claim_checks.NOT_TESTABLE,
                                                             f"not run ({reasons})")))
            continue
        if claim.metric == "probe_gap":
            _, a, b = scores.paired_probes(claim.better, claim.worse, chance)
            out.append(ClaimResult(claim, claim_checks.check(a, b, higher_is_better=False)))
        else:
            _, a, b = scores.paired(claim.better, claim.worse, claim.metric)
            out.append(ClaimResult(claim, claim_checks.check(a, b)))
    return out


def _num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) and math.isfinite(value) else "–"


def claims_table(results: Sequence[ClaimResult]) -> str:
    lines = ["| claim | rows | metric | n pairs | effect: mean difference (> 0 = as claimed) | rank-biserial r | "
             "Wilcoxon p | verdict | why | paper |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c, k = r.claim, r.check
        unit = {"psnr": "dB", "ssim": "", "probe_gap": "(distance of the probe accuracy to chance)"}[c.metric]
        lines.append(f"| {c.text} | {c.better} vs {c.worse} | {c.metric} | {k.n} | {_num(k.mean_diff)} {unit} | "
                     f"{_num(k.rank_biserial, 2)} | {_num(k.p)} | **{k.verdict}** | {k.reason} | {c.paper} |")
    return "\n".join(lines)


def write_claims_csv(results: Sequence[ClaimResult], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CLAIM_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow({"claim": r.claim.text, "better": r.claim.better, "worse": r.claim.worse,
                             "metric": r.claim.metric, "n": r.check.n, "mean_diff": r.check.mean_diff,
                             "rank_biserial": r.check.rank_biserial, "p": r.check.p, "verdict": r.check.verdict,
                             "reason": r.check.reason, "paper": r.claim.paper})
    return path


def write_scores_csv(scores: Scores, path: Path) -> Path:
    columns = ("method", "run", "seed", "subject", "inputs", "target", "psnr", "ssim")
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(scores.rows)
    return path


def scores_figure(plan: Plan, scores: Scores, path: Path) -> Path:
    """Box plots of each method's per-unit cross-synthesis PSNR (test subject x seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = tables.table_methods(plan, scores)
    data = [list(scores.values(m, "psnr").values()) for m in methods]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(methods)), 4.0))
    ax.boxplot([d if d else [np.nan] for d in data], showmeans=True)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
    ax.set_ylabel("cross-synthesis PSNR (dB), per test subject x seed")
    ax.set_title(plan.experiment.name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def probe_figure(plan: Plan, scores: Scores, chance: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r.method for r in plan.rows))
    values = [[v["probe_modality_from_fs"] for (m, _), v in scores.probes.items() if m == method
               and "probe_modality_from_fs" in v] for method in methods]
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    for i, v in enumerate(values):
        ax.scatter([i] * len(v), v, color="C0")
        if v:
            ax.plot([i - 0.2, i + 0.2], [np.mean(v)] * 2, color="C1")
    ax.axhline(chance, color="grey", linestyle="--", label=f"chance {chance:.2f}")
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylim(0, 1)
    ax.set_ylabel("modality probe accuracy on f(s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def runs_table(plan: Plan, seeds: Sequence[int], missing: dict[tuple[str, int], str]) -> str:
    lines = ["| row | family | trained as | runs with scores | note |", "|---|---|---|---|---|"]
    for row in plan.rows:
        run = plan.run_of(row.label)
        if run is None:
            lines.append(f"| {row.label} | {row.family} | – | 0 | not run: {plan.skipped.get(row.label, '')} |")
            continue
        ok = [s for s in seeds if (run.key, s) not in missing]
        notes = [f"seed {s}: {missing[(run.key, s)]}" for s in seeds if (run.key, s) in missing]
        if run.note:
            notes.insert(0, run.note)
        if row.label != run.key:
            notes.insert(0, f"same configuration as {run.key!r}, trained once")
        lines.append(f"| {row.label} | {row.family} | {run.key} | {len(ok)} of {len(seeds)} | {'; '.join(notes)} |")
    return "\n".join(lines)


def write_report(plan: Plan, scores: Scores, missing: dict[tuple[str, int], str], seeds: Sequence[int], *,
                 out: Path, store: Any, fold: int, machine: str, wall_seconds: float, parent_run_id: str,
                 tracking_uri: str) -> tuple[Path, list[ClaimResult], list[Path]]:
    """Write report.md, figures/, scores.csv and claims.csv into ``out``; returns (report, claims, files)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    modalities = list(store.modalities)
    chance = 1.0 / len(modalities)
    experiment, budget = plan.experiment, plan.budget
    results = check_claims(plan, scores, chance)
    files = [write_scores_csv(scores, out / "scores.csv"), write_claims_csv(results, out / "claims.csv"),
             scores_figure(plan, scores, out / "figures" / "scores.png")]
    n_subjects = len({j for (_, _, j) in scores.cells})
    train_text = ", ".join(f"{k} {v}" for k, v in budget.train.items())
    lines = [
        f"# {experiment.title}", "",
        f"Paper: {experiment.source}.",
        f"**A different dataset**: the paper's numbers (in brackets or *paper* rows) are for reference only; "
        "the claims are checked as relative orderings on our data.", "",
        f"- Store: `{store.url}` (id `{store.store_id}`), modalities {', '.join(modalities)}; test split of fold {fold} "
        f"({n_subjects} subjects scored).",
        f"- Budget `{plan.budget_name}`: preset `{budget.preset}`, {train_text} (every run the same; no early stopping, "
        f"the last checkpoint scored); {budget.eval_slices or 'all'} slices per test subject; sized for: {budget.sized_for}.",
        f"- Seeds: {', '.join(map(str, seeds))}; pairs for the tests are test subject x seed.",
        f"- Inputs: {plan.inputs} images ("
        + ("mmhvae reads the raw images and is scored on the normalised targets: harmonisation as the paper; "
           "the copy baseline copies the raw input, the target's own raw image included (identity harmonisation)"
           if plan.inputs == "raw" else "the store has no raw images, so a target among the inputs is self-reconstruction")
        + ").",
        f"- Machine: {machine}; wall time {wall_seconds / 60:.1f} min.",
        f"- MLflow: parent run `{parent_run_id}` at `{tracking_uri}` (one child run per row x seed).",
    ]
    dropped = sorted({k for keys in plan.dropped.values() for k in keys})
    if dropped:
        lines.append(f"- Switches this build does not have, left at their default (today's behaviour): {', '.join(dropped)}.")
    lines += ["", "## Runs", "", runs_table(plan, seeds, missing), "", "## Tables", ""]
    if experiment.kind == "disentangle":
        files.append(probe_figure(plan, scores, chance, out / "figures" / "probe.png"))
        lines += ["Cross-reconstruction PSNR (dB) / SSIM per target, averaged over the other source modalities, "
                  "mean over test subjects x seeds (Table 1 c layout; [paper] = BraTS). Baselines: zeros, the "
                  "training cohort's mean image, the best other modality copied.", "",
                  tables.ouyang_table(plan, scores, modalities), "",
                  "Disentanglement of the representations (test split; one value per run, mean (std) over seeds). "
                  "The paper shows these as t-SNE plots (Fig. 3), with no numbers.", "",
                  tables.probe_table(plan, scores, chance), "", "![probe](figures/probe.png)", ""]
    elif experiment.kind == "table1":
        lines += ["PSNR (dB) and SSIM per input subset (● = input) and target, mean (std) over test subjects x seeds "
                  "(Table I layout; LPIPS not computed). *paper* rows: the paper's values with our names "
                  "(T2 = t2, ceT1 = t1gd, FLAIR = flair; the paper has iUS where we have t1, so subsets with t1 have "
                  "no paper row). A target among the inputs is harmonisation (see Inputs above).", "",
                  tables.mmhvae_table1(plan, scores, modalities), "",
                  "Not implemented (out of scope of issue 14): "
                  + "; ".join(f"{k} ({v})" for k, v in NOT_IMPLEMENTED.items()) + ".", ""]
    else:
        lines += ["Cross-synthesis PSNR (dB) and SSIM per target, averaged over every input subset without the "
                  "target, mean (std) over test subjects x seeds (Table II layout; the paper also averages its "
                  "harmonisation cells; [paper] = its value, L = Lmax is its L = 7). Sections d) and e) are design "
                  "claims with no table in the paper.", "", tables.ablation_table(plan, scores, modalities), ""]
    lines += ["![scores](figures/scores.png)", "", "## Claims", "",
              f"Paired two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) over test subject x seed, each "
              f"unit averaged over the cross-synthesis cells both rows scored; held = effect as claimed and "
              f"p < {claim_checks.ALPHA:g}; n < {claim_checks.min_pairs()} pairs cannot reach that p (not testable). "
              "No correction over the claims.", "", claims_table(results), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report, results, files
