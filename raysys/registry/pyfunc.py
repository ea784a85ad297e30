"""The MLflow ``python_function`` flavour of a raysys model (for MLflow tooling and serving).

The model directory's artifact ``raysys`` holds the raysys format (``format.py``); ``predict``
takes ``{"images": [B, M, (K,) H, W], "available": [B, M]}`` and returns the family's main output
(mmhvae, mmgan: synthesised modalities; disentangle: the fused anatomy; segmenter: BraTS labels,
with an optional ``"position"`` [B]). ``raysys.registry.load`` does
not go through this class: it rebuilds the module from the raysys format directly.
"""

from __future__ import annotations

import mlflow.pyfunc


class RaysysModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from raysys.registry.format import read_model_dir
        from raysys.registry.inference import SubsetSynthesis, wrap

        meta, module = read_model_dir(context.artifacts["raysys"])
        self.inference = wrap(module, meta)
        self.synthesises = isinstance(self.inference, SubsetSynthesis)

    def predict(self, context, model_input, params=None):
        images, available = model_input["images"], model_input.get("available")
        if self.synthesises:
            return self.inference.synthesise(images, available, temperature=float((params or {}).get("temperature", 0.5)))
        if self.inference.family == "segmenter":
            return self.inference.segment(images, available, model_input.get("position"))
        return self.inference.fused_anatomy(images, available)
