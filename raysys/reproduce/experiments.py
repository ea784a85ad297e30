"""The papers' experiments as data: each variant is a model family plus flat config overrides
(the names the studies use: ``model.encoder``, ``model.levels``, ``train.modalities`` ...), each
claim a comparison of two table rows, each budget a preset plus a training length.

``LMAX`` as ``model.levels`` means the preset's L_max (7 in the paper preset, 6 in tiny and cpu).
Keys of switches a build may not have yet (``model.posterior``, ``train.modalities``,
``train.training_subjects``, ``train.inputs``) are resolved by ``raysys.reproduce.plan``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Mapping, Sequence

LMAX = "max"

# The cells a claim averages: cross-synthesis (target not among the inputs; disentangle: source != target).
SYNTHESIS = "synthesis"
METRICS = ("psnr", "ssim", "probe_gap")  # probe_gap = |probe accuracy on f(s) - chance|, lower is better


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a table. ``method`` groups rows that are one method of the paper (the MHVAE
    pair models); ``section`` is the ablation block the row belongs to."""

    label: str
    family: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    method: str = ""
    section: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))
        if not self.method:
            object.__setattr__(self, "method", self.label)
        bad = [k for k in self.overrides if not k.startswith(("model.", "train."))]
        if bad:
            raise ValueError(f"variant {self.label!r}: override {bad[0]!r} has neither the 'model.' nor the 'train.' prefix")


@dataclasses.dataclass(frozen=True)
class Claim:
    """"``better`` beats ``worse`` on ``metric``" over the cells both scored, paired by seed and
    test subject (``probe_gap``: one value per run, paired by seed). ``paper``: the evidence."""

    text: str
    better: str
    worse: str
    metric: str = "psnr"
    paper: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"claim {self.text!r}: metric must be one of {METRICS}, got {self.metric!r}")


@dataclasses.dataclass(frozen=True)
class Budget:
    """``preset`` and the ``TrainConfig`` overrides every run gets (the same for every family of
    the experiment), per-family model overrides, the evaluation's slices per subject (0 = all)
    and the default number of seeds. ``sized_for``: what it is sized for (README, report)."""

    preset: str
    train: Mapping[str, Any]
    model: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    eval_slices: int = 0
    seeds: int = 1
    sized_for: str = ""


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    kind: str  # "disentangle" (Ouyang Table 1) | "table1" (MMHVAE Table I) | "ablation" (MMHVAE Table II)
    variants: Callable[[str, Sequence[str]], list[Variant]]  # (budget name, store modalities) -> rows
    claims: tuple[Claim, ...]
    budgets: Mapping[str, Budget]
    source: str

    def rows(self, budget: str, modalities: Sequence[str]) -> list[Variant]:
        rows = self.variants(budget, list(modalities))
        labels = [v.label for v in rows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{self.name}: duplicate row labels {labels}")
        methods = {v.method for v in rows}
        for claim in self.claims:
            for side in (claim.better, claim.worse):
                if side not in methods:
                    raise ValueError(f"{self.name}: claim {claim.text!r} names {side!r}, not a row ({sorted(methods)})")
        return rows


SMOKE_TRAIN = {"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 2, "max_val_steps": 1}


# --- Ouyang et al. 2021, Table 1 -----------------------------------------------------------
# Table 1's networks have the paper's 4 anatomy channels at every budget (the `cpu` preset's 8 serve
# FLAIR's self-reconstruction; the probe on f(s), a Table 1 claim, reads more modality with 8).
PAPER_ANATOMY = {"model.anatomy_channels": 4}


def _ouyang_rows(budget: str, modalities: Sequence[str]) -> list[Variant]:
    return [
        Variant("Conv+NA", "disentangle", {"model.encoder": "conv", "model.regulariser": "na", **PAPER_ANATOMY}),
        Variant("Conv+Adv", "disentangle", {"model.encoder": "conv", "model.regulariser": "adv", **PAPER_ANATOMY}),
        Variant("Conv+Sim", "disentangle", {"model.encoder": "conv", "model.regulariser": "sim", **PAPER_ANATOMY}),
        Variant("CondConv+Sim", "disentangle", {"model.encoder": "condconv", "model.regulariser": "sim",
                                                **PAPER_ANATOMY}),
    ]


OUYANG_TABLE1 = Experiment(
    name="ouyang-table1",
    title="Ouyang et al. 2021, Table 1: disentanglement regularisers and conditional convolution",
    kind="disentangle",
    variants=_ouyang_rows,
    claims=(
        Claim("+Sim beats +NA on cross-reconstruction (PSNR)", "Conv+Sim", "Conv+NA", "psnr",
              "Table 1c (BraTS): +0.59 to +1.42 dB per target"),
        Claim("+Sim beats +NA on cross-reconstruction (SSIM)", "Conv+Sim", "Conv+NA", "ssim",
              "Table 1c (BraTS): +0.039 to +0.123 per target"),
        Claim("+Sim beats +Adv on cross-reconstruction (PSNR)", "Conv+Sim", "Conv+Adv", "psnr",
              "Table 1c (BraTS): +0.41 to +0.73 dB per target"),
        Claim("+Adv beats +NA on cross-reconstruction (PSNR)", "Conv+Adv", "Conv+NA", "psnr",
              "Table 1c (BraTS): +0.18 to +0.97 dB per target"),
        Claim("a probe on f(s) is nearer chance with +Sim than with +NA", "Conv+Sim", "Conv+NA", "probe_gap",
              "Fig. 3d-f (t-SNE): f(s) clusters by subject without modality bias only with +Sim"),
        Claim("a probe on f(s) is nearer chance with +Sim than with +Adv", "Conv+Sim", "Conv+Adv", "probe_gap",
              "Fig. 3d-f (t-SNE), as above"),
    ),
    budgets={
        "smoke": Budget("tiny", SMOKE_TRAIN, eval_slices=2, seeds=1, sized_for="CI: seconds per run"),
        # 500 steps of batch 6 per run (the preset's own budget is 780): 0.6-0.8 s per step on one
        # core of this box (docs: disentangle cpu preset), 4 rows x 2 seeds on 2 cores in parallel.
        # The similarity warm-up keeps the preset's share of the run (500 of 780 steps -> 300 of 500).
        "cpu": Budget("cpu", {"epochs": 10, "max_steps_per_epoch": 50, "batch_size": 6, "max_val_steps": 4},
                      model={"disentangle": {"sim_warmup_steps": 300}}, eval_slices=24, seeds=2,
                      sized_for="<= 60 min on 2 CPU cores with --seeds 2"),
        "gpu": Budget("paper", {"epochs": 50, "batch_size": 8}, seeds=3, sized_for="the paper's 50 epochs"),
    },
    source="C. Ouyang et al., Representation disentanglement for multi-modal brain MRI analysis, IPMI 2021",
)


# --- Dorent et al., MMHVAE: Table I and the ablations ---------------------------------------
# The full model of the paper: L = L_max, PoE fusion, the GAN (0 for the first 80 % of epochs,
# then 0.025; the cpu preset switches it off), the subset mixture, every training subject.
MMHVAE_FULL = {"model.levels": LMAX, "model.fusion": "poe", "model.lambda_gan": 0.025,
               "model.posterior": "mixture", "train.training_subjects": "all"}
# The MHVAE baseline's model part (contract: raysys.models.mmhvae.config.MHVAE_OVERRIDES).
MHVAE = {"model.posterior": "full"}
ANCHOR = "t2"  # the MR modality of the paper's two-modality MHVAE (iUS + T2)


def mhvae_pairs(budget: str, modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """The two-modality pairs the MHVAE baseline is trained on (store order).

    The paper's MHVAE pairs T2 with iUS; this store has no iUS, so T2 (else the first modality)
    is paired with each other modality (``cpu``: 3 models, not all 6 pairs, to fit the hour);
    ``smoke`` trains one pair, ``gpu`` every pair.
    """
    modalities = list(modalities)
    if len(modalities) < 2:
        return []
    if budget == "gpu":
        return list(itertools.combinations(modalities, 2))
    anchor = ANCHOR if ANCHOR in modalities else modalities[0]
    pairs = [tuple(m for m in modalities if m in (anchor, other)) for other in modalities if other != anchor]
    return pairs[-1:] if budget == "smoke" else pairs


def _table1_rows(budget: str, modalities: Sequence[str]) -> list[Variant]:
    rows = [
        Variant("MMHVAE", "mmhvae", MMHVAE_FULL),
        Variant("MoPoE", "mmhvae", {**MMHVAE_FULL, "model.levels": 1}),
        Variant("MM-GAN", "mmgan", {}),
    ]
    for pair in mhvae_pairs(budget, modalities):
        rows.append(Variant(f"MHVAE ({'+'.join(pair)})", "mmhvae",
                            {**MMHVAE_FULL, **MHVAE, "train.modalities": tuple(pair)}, method="MHVAE"))
    return rows


def _ablation_rows(budget: str, modalities: Sequence[str]) -> list[Variant]:
    def row(label: str, section: str, **changes: Any) -> Variant:
        return Variant(label, "mmhvae", {**MMHVAE_FULL, **{k.replace("__", "."): v for k, v in changes.items()}},
                       section=section)

    levels, fusion, gan = "a) number of latent variables L", "b) fusing operation", "c) GAN loss"
    posterior, data = "d) posterior", "e) training data"
    return [
        row("L=1", levels, model__levels=1), row("L=2", levels, model__levels=2), row("L=3", levels, model__levels=3),
        row("L=Lmax", levels),
        row("concat_zeros", fusion, model__fusion="concat_zeros"), row("average", fusion, model__fusion="average"),
        row("poe", fusion),
        row("GAN off", gan, model__lambda_gan=0.0), row("GAN on", gan),
        row("full posterior", posterior, model__posterior="full"), row("subset mixture", posterior),
        row("complete data", data, train__training_subjects="complete"), row("incomplete data", data),
    ]


_MMHVAE_BUDGETS_SMOKE = Budget("tiny", SMOKE_TRAIN, model={"mmhvae": {"subsets_per_step": 1}}, eval_slices=2, seeds=1,
                               sized_for="CI: seconds per run")
_MMHVAE_BUDGET_GPU = Budget("paper", {"epochs": 1000, "batch_size": 16}, seeds=3,
                            sized_for="the paper's 1000 epochs (GAN from epoch 800), batch 16")

MMHVAE_TABLE1 = Experiment(
    name="mmhvae-table1",
    title="Dorent et al., MMHVAE Table I: MMHVAE vs MoPoE, MM-GAN and MHVAE for every input subset x target",
    kind="table1",
    variants=_table1_rows,
    claims=(
        Claim("MMHVAE beats MoPoE (L = 1) on cross-modal synthesis", "MMHVAE", "MoPoE", "psnr",
              "Table I: every synthesis cell; average +1.5 to +7.7 dB (T2/ceT1/FLAIR)"),
        Claim("MMHVAE beats MM-GAN on cross-modal synthesis", "MMHVAE", "MM-GAN", "psnr",
              "Table I: average +4.1 to +6.7 dB (T2/ceT1/FLAIR)"),
        Claim("MMHVAE beats MHVAE on MHVAE's two-modality cells", "MMHVAE", "MHVAE", "psnr",
              "Table I: T2 harmonisation 35.9 vs 28.6 dB (MHVAE's only MR cells)"),
    ),
    budgets={
        "smoke": _MMHVAE_BUDGETS_SMOKE,
        # 400 steps of batch 8 per run for every family (mmhvae cpu preset: 0.5-1.1 s per step on
        # one core; L = L_max and the GAN's last 20 % cost more; MM-GAN's own cpu budget is 800
        # cheaper steps). 6 models (3 MHVAE pairs) x 2 seeds on 2 cores.
        "cpu": Budget("cpu", {"epochs": 8, "max_steps_per_epoch": 50, "batch_size": 8, "max_val_steps": 2},
                      eval_slices=16, seeds=2, sized_for="<= 60 min on 2 CPU cores with --seeds 2"),
        "gpu": _MMHVAE_BUDGET_GPU,
    },
    source="R. Dorent et al., Unified cross-modal image synthesis with hierarchical mixture of product-of-experts (MMHVAE)",
)

MMHVAE_ABLATION = Experiment(
    name="mmhvae-ablation",
    title="Dorent et al., MMHVAE Table II and the design ablations: L, fusion, GAN, posterior, training data",
    kind="ablation",
    variants=_ablation_rows,
    claims=(
        Claim("L = Lmax beats L = 1", "L=Lmax", "L=1", "psnr", "Table II a: L=7 vs L=1 +5.8 to +8.2 dB (T2/ceT1/FLAIR)"),
        Claim("L = 2 beats L = 1", "L=2", "L=1", "psnr", "Table II a: +0.6 to +1.9 dB"),
        Claim("L = Lmax beats L = 3", "L=Lmax", "L=3", "psnr", "Table II a: L=7 vs L=3 +3.7 to +4.1 dB"),
        Claim("PoE beats average", "poe", "average", "psnr", "Table II b: +1.6 to +2.6 dB"),
        Claim("PoE beats concat with zeros", "poe", "concat_zeros", "psnr", "Table II b: +2.8 to +3.5 dB"),
        Claim("the GAN lowers PSNR (its gain is perceptual: LPIPS, not computed here)", "GAN off", "GAN on", "psnr",
              "Table II c: without GAN +0.4 to +1.3 dB PSNR, LPIPS worse"),
        Claim("the subset mixture beats a single full-input posterior", "subset mixture", "full posterior", "psnr",
              "Sec. 3.3 (design; no table)"),
        Claim("training with incomplete data helps", "incomplete data", "complete data", "psnr",
              "Sec. 3.2 (design; no table)"),
    ),
    budgets={
        "smoke": _MMHVAE_BUDGETS_SMOKE,
        # 250 steps of batch 8 per run: 9 distinct models (the full model is 5 rows) x 2 seeds on 2 cores,
        # ~45 min of work at ~1.1 s per step (L_max and the GAN), plus validation and evaluation.
        "cpu": Budget("cpu", {"epochs": 5, "max_steps_per_epoch": 50, "batch_size": 8, "max_val_steps": 1},
                      eval_slices=12, seeds=2, sized_for="<= 60 min on 2 CPU cores with --seeds 2"),
        "gpu": _MMHVAE_BUDGET_GPU,
    },
    source=MMHVAE_TABLE1.source,
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (OUYANG_TABLE1, MMHVAE_TABLE1, MMHVAE_ABLATION)}
BUDGETS = ("smoke", "cpu", "gpu")


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]
