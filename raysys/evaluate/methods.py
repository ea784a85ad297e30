"""Models as evaluation methods: the same ``predict(subject, rows, inputs, targets)`` as the baselines.

``ModelMethod.predict`` returns ``{target: [n, H, W]}`` for the slices ``rows`` of a subject:

* families that synthesise from subsets (``SubsetSynthesis``: mmhvae, mmgan): one ``synthesise``
  call per slice batch with ``available`` = the input subset (missing modalities zeroed by the
  inference object); every target comes from that call. ``temperature`` (default: the model
  config's) and ``seed`` make mmhvae's draw repeatable; mmgan is deterministic and ignores them.
* disentangle: ``cross_synthesis(source, target)`` with ``available`` = {source, target} (the
  target image supplies only the modality code z); source == target is self-reconstruction.

A model may be built on some of the store's modalities (``train.modalities``): it is given its
own modalities' images, in its own order, and predicts only those. A model trained on raw inputs
(``train.inputs=raw``) is given the raw images; its predictions are scored against the
normalised ones like every method's: a target among the inputs is then harmonisation as the
MMHVAE paper defines it (raw input -> normalised target).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysys.evaluate.slices import SubjectSlices
from raysys.registry.inference import Inference, SubsetSynthesis


class ModelMethod:
    """A loaded model (``raysys.registry.load``) under a method label (``model``, ``model:2`` ...).

    ``modalities``: the model's (some or all of ``store_modalities``, any order)."""

    def __init__(self, name: str, uri: str, inference: Inference, store_modalities: Sequence[str],
                 temperature: float | None = None, seed: int = 0):
        self.name, self.uri, self.inference = name, uri, inference
        self.family = inference.family
        self.modalities = list(inference.modalities)
        unknown = [m for m in self.modalities if m not in store_modalities]
        if unknown:
            raise ValueError(f"model {uri} has modalities {self.modalities}; {unknown} not in the store's {list(store_modalities)}")
        self.columns = [list(store_modalities).index(m) for m in self.modalities]  # the model's images in the store's
        config = getattr(inference.module, "config", None)
        self.temperature = float(temperature if temperature is not None else getattr(config, "temperature", 0.5))
        self.seed = int(seed)
        self.context = inference.context or 1
        self.raw_inputs = bool(getattr(inference, "raw_inputs", False))

    def images(self, subject: SubjectSlices, rows: np.ndarray) -> np.ndarray:
        """[n, M, K, H, W]: the model's M modalities with its K (the centre of the stored context when K differs)."""
        if self.raw_inputs and subject.raw is None:
            raise ValueError(f"model {self.uri} encodes raw images; read the subject with raw=True")
        x = (subject.raw if self.raw_inputs else subject.images)[rows][:, self.columns]
        k, c = x.shape[2], self.context
        if k != c:
            if c > k:
                raise ValueError(f"model {self.uri} needs {c} context slices, the evaluation read {k}")
            x = x[:, :, k // 2 - c // 2: k // 2 + c // 2 + 1]
        return x

    def predict(self, subject: SubjectSlices, rows: np.ndarray, inputs: Sequence[str], targets: Sequence[str]) -> dict[str, np.ndarray]:
        x = self.images(subject, rows)
        n, m = x.shape[0], len(self.modalities)
        if isinstance(self.inference, SubsetSynthesis):
            available = np.zeros((n, m), dtype=bool)
            available[:, [self.modalities.index(i) for i in inputs]] = True
            out = self.inference.synthesise(x, available, temperature=self.temperature, seed=self.seed)  # [n, M, H, W]
            return {t: out[:, self.modalities.index(t)] for t in targets}
        if self.family == "disentangle":
            if len(inputs) != 1:
                raise ValueError(f"disentangle cells have one source, got inputs {list(inputs)}")
            source = inputs[0]
            result = {}
            for t in targets:
                available = np.zeros((n, m), dtype=bool)
                available[:, [self.modalities.index(source), self.modalities.index(t)]] = True
                y = self.inference.cross_synthesis(x, source, t, available)  # [n, K, H, W]
                result[t] = y[:, y.shape[1] // 2]
            return result
        raise ValueError(f"no evaluation for model family {self.family!r}")
