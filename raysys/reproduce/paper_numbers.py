"""The papers' own numbers, printed beside ours in the report (a different dataset: for reference only).

SSIM is stored as a fraction (the MMHVAE paper prints percent). Modality names are mapped onto
the store's: the MMHVAE paper's T2, ceT1, FLAIR are our ``t2``, ``t1gd``, ``flair``; its iUS has
no counterpart here (and our ``t1`` none there), so only rows and columns without iUS are kept.
"""

from __future__ import annotations

# Ouyang et al. 2021, Table 1 (c) BraTS: cross-reconstruction PSNR / SSIM per target, averaged
# over the three other source modalities (5-fold cross-validation).
OUYANG_TABLE1 = {
    "Conv+NA": {"t1": (27.304, 0.717), "t1gd": (24.897, 0.638), "t2": (25.148, 0.621), "flair": (25.166, 0.617)},
    "Conv+Adv": {"t1": (27.485, 0.717), "t1gd": (25.385, 0.656), "t2": (25.951, 0.658), "flair": (26.135, 0.642)},
    "Conv+Sim": {"t1": (27.892, 0.756), "t1gd": (26.114, 0.723), "t2": (26.479, 0.744), "flair": (26.588, 0.692)},
    "CondConv+Sim": {"t1": (27.916, 0.752), "t1gd": (26.221, 0.731), "t2": (26.445, 0.735), "flair": (26.489, 0.687)},
}

PAPER_TO_STORE = {"T2": "t2", "ceT1": "t1gd", "FLAIR": "flair"}

# Dorent et al., MMHVAE, Table I: {(method, input subset): {target: (PSNR dB, SSIM %)}}, the rows
# whose inputs hold no iUS; "average" = the table's last block (averaged over every input subset,
# iUS inputs included). Method "Ours" is MMHVAE. ResViT and M2DN are not implemented here.
_TABLE1 = {
    ("MoPoE", ("T2",)): {"T2": (21.8, 83.2), "ceT1": (24.4, 85.9), "FLAIR": (20.3, 81.0)},
    ("MHVAE", ("T2",)): {"T2": (28.6, 91.0)},
    ("MM-GAN", ("T2",)): {"T2": (23.3, 93.0), "ceT1": (24.4, 86.1), "FLAIR": (19.8, 79.3)},
    ("Ours", ("T2",)): {"T2": (35.9, 98.5), "ceT1": (24.9, 86.7), "FLAIR": (23.5, 85.1)},
    ("MoPoE", ("ceT1",)): {"T2": (21.7, 82.8), "ceT1": (23.6, 85.0), "FLAIR": (18.3, 79.2)},
    ("MM-GAN", ("ceT1",)): {"T2": (21.2, 82.1), "ceT1": (28.1, 94.8), "FLAIR": (18.6, 78.1)},
    ("Ours", ("ceT1",)): {"T2": (23.2, 84.2), "ceT1": (36.1, 98.6), "FLAIR": (21.4, 83.6)},
    ("MoPoE", ("FLAIR",)): {"T2": (22.0, 84.1), "ceT1": (22.5, 84.9), "FLAIR": (18.3, 79.5)},
    ("MM-GAN", ("FLAIR",)): {"T2": (20.5, 80.3), "ceT1": (22.4, 83.1), "FLAIR": (22.2, 86.9)},
    ("Ours", ("FLAIR",)): {"T2": (21.7, 83.6), "ceT1": (22.4, 84.1), "FLAIR": (31.3, 97.6)},
    ("MoPoE", ("T2", "ceT1")): {"T2": (21.8, 82.9), "ceT1": (24.4, 85.9), "FLAIR": (20.2, 80.3)},
    ("MM-GAN", ("T2", "ceT1")): {"T2": (24.0, 93.3), "ceT1": (28.2, 93.9), "FLAIR": (20.4, 80.6)},
    ("Ours", ("T2", "ceT1")): {"T2": (35.6, 98.4), "ceT1": (36.1, 98.7), "FLAIR": (23.9, 85.8)},
    ("MoPoE", ("T2", "FLAIR")): {"T2": (22.3, 84.3), "ceT1": (24.2, 86.3), "FLAIR": (20.2, 80.9)},
    ("MM-GAN", ("T2", "FLAIR")): {"T2": (24.1, 93.3), "ceT1": (24.9, 87.1), "FLAIR": (25.7, 91.2)},
    ("Ours", ("T2", "FLAIR")): {"T2": (35.1, 98.3), "ceT1": (24.6, 87.0), "FLAIR": (33.3, 98.2)},
    ("MoPoE", ("ceT1", "FLAIR")): {"T2": (22.0, 83.6), "ceT1": (22.8, 85.2), "FLAIR": (18.2, 79.1)},
    ("MM-GAN", ("ceT1", "FLAIR")): {"T2": (21.4, 82.2), "ceT1": (26.9, 93.2), "FLAIR": (23.0, 89.0)},
    ("Ours", ("ceT1", "FLAIR")): {"T2": (23.9, 85.6), "ceT1": (33.5, 97.9), "FLAIR": (31.1, 97.6)},
    ("MoPoE", ("T2", "ceT1", "FLAIR")): {"T2": (22.1, 83.6), "ceT1": (24.3, 86.4), "FLAIR": (20.2, 80.3)},
    ("MM-GAN", ("T2", "ceT1", "FLAIR")): {"T2": (25.3, 93.8), "ceT1": (28.1, 93.6), "FLAIR": (26.2, 92.2)},
    ("Ours", ("T2", "ceT1", "FLAIR")): {"T2": (35.1, 98.2), "ceT1": (34.2, 98.4), "FLAIR": (32.8, 98.1)},
    ("MoPoE", "average"): {"T2": (21.8, 83.2), "ceT1": (23.8, 85.4), "FLAIR": (19.2, 79.9)},
    ("MM-GAN", "average"): {"T2": (22.2, 86.5), "ceT1": (25.4, 88.5), "FLAIR": (21.4, 83.7)},
    ("Ours", "average"): {"T2": (28.9, 90.5), "ceT1": (29.5, 91.4), "FLAIR": (26.9, 90.5)},
}
# Our method names for the paper's.
_METHOD = {"Ours": "MMHVAE", "MoPoE": "MoPoE", "MM-GAN": "MM-GAN", "MHVAE": "MHVAE"}

# Dorent et al., Table II (one fold of ReMIND), averaged over every input subset: {setting: {target: (PSNR, SSIM %)}}.
_TABLE2 = {
    "L=1": {"T2": (21.6, 83.4), "ceT1": (24.0, 86.0), "FLAIR": (19.2, 80.4)},
    "L=2": {"T2": (22.6, 81.4), "ceT1": (24.6, 84.0), "FLAIR": (21.1, 80.9)},
    "L=3": {"T2": (24.6, 85.0), "ceT1": (25.7, 87.0), "FLAIR": (23.7, 85.1)},
    "L=Lmax": {"T2": (28.6, 90.7), "ceT1": (29.8, 91.7), "FLAIR": (27.4, 91.0)},  # the paper's L = 7
    "concat_zeros": {"T2": (25.8, 88.6), "ceT1": (26.3, 90.1), "FLAIR": (24.0, 88.2)},
    "average": {"T2": (27.0, 89.0), "ceT1": (27.2, 90.0), "FLAIR": (25.7, 89.7)},
    "poe": {"T2": (28.6, 90.7), "ceT1": (29.8, 91.7), "FLAIR": (27.4, 91.0)},
    "GAN off": {"T2": (30.1, 91.6), "ceT1": (30.6, 92.6), "FLAIR": (27.2, 90.5)},
    "GAN on": {"T2": (28.8, 89.8), "ceT1": (29.4, 90.6), "FLAIR": (26.8, 90.1)},
}


def _to_store(row: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return {PAPER_TO_STORE[t]: (psnr, round(ssim / 100.0, 4)) for t, (psnr, ssim) in row.items()}


def mmhvae_table1(method: str, inputs: tuple[str, ...] | str) -> dict[str, tuple[float, float]]:
    """The paper's {target: (PSNR, SSIM)} of our ``method`` for our ``inputs`` (store names, or
    ``"average"``); {} where the paper has no such row (inputs with t1, ResViT, ...)."""
    paper = {v: k for k, v in _METHOD.items()}.get(method)
    store_to_paper = {v: k for k, v in PAPER_TO_STORE.items()}
    if inputs != "average":
        if any(m not in store_to_paper for m in inputs):
            return {}
        inputs = tuple(p for p in PAPER_TO_STORE if PAPER_TO_STORE[p] in inputs)  # the paper's order
    return _to_store(_TABLE1.get((paper, inputs), {}))


def mmhvae_table2(label: str) -> dict[str, tuple[float, float]]:
    """The paper's Table II {target: (PSNR, SSIM)} of the ablation row ``label``; {} if not in the paper."""
    return _to_store(_TABLE2.get(label, {}))
