"""``python -m raysys.synthesise``: missing modalities of NIfTI subjects from a registered model
(``raysys.predict.synthesis``; the command line is ``raysys.synthesise.cli``)."""

from raysys.predict.synthesis import synthesise

__all__ = ["synthesise"]
