"""Synthesis of a subject's missing modalities (mmhvae, mmgan) and anatomy maps (disentangle).

``--output`` (``output=``):

* ``synthesis`` (mmhvae's and mmgan's default): every modality the model knows and the subject
  lacks, ``synthesise`` (``SubsetSynthesis``) from all the subject's modalities, in the store's normalised
  units. ``temperature`` defaults to the model config's (0.5, the paper's, in every preset), as
  in ``raysys.evaluate``; a chunk of slices starting at slice i draws with seed ``seed + i``,
  so a run is repeatable and independent of the number of actors.
* ``anatomy``: disentangle's s [C channels] of each available modality, ``<subj>_anatomy-<mod>``,
  a 4-D NIfTI [X, Y, Z, C].
* ``fused`` (disentangle's default): Concat(max, mean, min) of s over the available modalities,
  ``<subj>_anatomy-fused`` [X, Y, Z, 3C]: what the segmenter's ``fused_anatomy`` mode reads.
  Disentangle cannot synthesise a missing modality: its decoder needs that modality's code z,
  which only an image of it gives, so ``synthesis`` is refused for it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from raysys.predict.predictor import Output, Predictor
from raysys.predict.preprocess import PredictError, Prepared, with_context

OUTPUTS = ("synthesis", "anatomy", "fused")
DEFAULT_OUTPUT = {"mmhvae": "synthesis", "mmgan": "synthesis", "disentangle": "fused"}
FAMILY_OUTPUTS = {"mmhvae": ("synthesis",), "mmgan": ("synthesis",), "disentangle": ("anatomy", "fused")}


def output_for(meta: Mapping[str, Any], output: str | None) -> str:
    """The output to make for a model of ``meta``'s family (its default when ``output`` is None)."""
    family = meta["family"]
    if family not in FAMILY_OUTPUTS:
        raise PredictError(f"model family {family!r} does not synthesise; expected one of {', '.join(FAMILY_OUTPUTS)}")
    if (meta.get("model_config") or {}).get("input_range") is not None:
        raise PredictError("the model was trained on raw inputs (train.inputs=raw); raysys.synthesise prepares "
                           "normalised images only: use a model trained with train.inputs=normalised")
    output = output or DEFAULT_OUTPUT[family]
    if output not in FAMILY_OUTPUTS[family]:
        why = (" (disentangle's decoder needs the missing modality's code z, which only an image of it gives)"
               if family == "disentangle" else "")
        raise PredictError(f"--output {output}: a {family} model makes {' or '.join(FAMILY_OUTPUTS[family])}{why}")
    return output


class SynthesisPredictor(Predictor):
    families = tuple(FAMILY_OUTPUTS)

    def __init__(self, inference, output: str | None = None, temperature: float | None = None, seed: int = 0):
        super().__init__(inference)
        self.output = output_for(inference.meta, output)
        config = getattr(inference.module, "config", None)
        self.temperature = float(temperature if temperature is not None else getattr(config, "temperature", 0.5))
        self.seed = int(seed)

    @classmethod
    def check(cls, meta: Mapping[str, Any], output: str | None = None, temperature: float | None = None, seed: int = 0) -> None:
        output_for(meta, output)
        if temperature is not None and temperature < 0:
            raise PredictError(f"--temperature {temperature}: must be >= 0")

    def outputs(self, prepared: Prepared) -> list[Output]:
        modalities = list(self.inference.modalities)
        n = prepared.images.shape[0]
        available = np.repeat(prepared.available[None], n, axis=0)
        if self.output == "synthesis":
            missing = [i for i, a in enumerate(prepared.available) if not a]
            if not missing:
                return []
            out = np.concatenate([self.inference.synthesise(prepared.images[c], available[c], temperature=self.temperature,
                                                            seed=self.seed + c.start) for c in self.chunks(n)])
            return [Output(modalities[i], out[:, i]) for i in missing]
        x = with_context(prepared.images, self.inference.context or 1)
        if self.output == "anatomy":
            s = np.concatenate([self.inference.anatomy(x[c], available[c]) for c in self.chunks(n)])    # [Z, M, C, H, W]
            return [Output(f"anatomy-{modalities[i]}", s[:, i]) for i in np.flatnonzero(prepared.available)]
        fused = np.concatenate([self.inference.fused_anatomy(x[c], available[c]) for c in self.chunks(n)])  # [Z, 3C, H, W]
        return [Output("anatomy-fused", fused)]


def synthesise(model_uri: str, input_dir: str, out_dir: str, *, output: str | None = None,
               temperature: float | None = None, seed: int = 0, tracking_uri: str | None = None,
               store: str | None = None, address: str | None = None, actors: int = 1,
               gpus: float | None = None, log=lambda line: None):
    """``python -m raysys.synthesise``: synthesise (or map the anatomy of) every subject of
    ``input_dir`` into ``out_dir`` -> ``raysys.predict.pipeline.PredictionReport``."""
    from raysys.predict.pipeline import run_predictions

    options = {"output": output, "temperature": temperature, "seed": seed}
    return run_predictions(model_uri, input_dir, out_dir, SynthesisPredictor, options, tracking_uri=tracking_uri,
                           store=store, address=address, actors=actors, gpus=gpus, log=log)
