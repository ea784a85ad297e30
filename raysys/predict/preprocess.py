"""A subject's NIfTI files -> the model's input slices, preprocessed exactly as its training store.

The steps are the converter's own (``data_prep.convert.volumes.load_subject`` reads and
reorients to RAS, ``data_prep.convert.subject.preprocess`` masks, normalises, chooses the axial
slices and resizes them), driven by the preprocessing record of the registered model
(``meta["training"]["preprocessing"]``, ``raysys.registry.format.preprocessing_record``), so
a subject gives here the slices the store holds for it (tests/predict/test_predict_preprocess.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from data_prep.convert.discover import LABEL_MODALITIES, parse_slices
from data_prep.convert.subject import preprocess
from data_prep.convert.volumes import InputError, load_subject
from raysys.data import layout

TISSUE = "tissue"


class PredictError(Exception):
    """The prediction cannot start (bad model, input folder or flag); the message says what would work."""


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The training store's preprocessing (``raysys.registry.format.preprocessing_record``)."""

    size: tuple[int, int]
    slices: tuple[int, int] | None
    normalise: str
    value_range: tuple[float, float]
    modalities: tuple[str, ...]
    dtype: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Preprocessing":
        return cls(size=tuple(int(v) for v in record["size"]), slices=parse_slices(record["slices"]),
                   normalise=str(record["normalise"]), value_range=tuple(float(v) for v in record["value_range"]),
                   modalities=tuple(record["modalities"]), dtype=str(record["dtype"]))


def preprocessing_of(meta: Mapping[str, Any], store: str | None = None) -> Preprocessing:
    """The model's preprocessing: from ``store``'s attrs when given, else from the model's meta.

    Raises ``PredictError`` when neither has it (a model registered before the record existed)
    or when the store's modalities are not the model's.
    """
    from raysys.registry.format import preprocessing_record

    if store is not None:
        from raysys.data import StoreError, open_store

        try:
            record = preprocessing_record(open_store(store).attrs)
        except (StoreError, KeyError) as error:
            raise PredictError(f"--store {store}: no preprocessing record ({type(error).__name__}: {error})") from error
    else:
        record = (meta.get("training") or {}).get("preprocessing")
        if record is None:
            raise PredictError(f"model {meta.get('uri') or meta.get('source')} has no preprocessing record (registered "
                               f"before raysys recorded it); pass --store STORE, the Zarr store it was trained on, "
                               f"to read the preprocessing from the store's attrs")
    spec = Preprocessing.from_record(record)
    if list(spec.modalities) != list(meta["modalities"]):
        raise PredictError(f"the store's modalities {list(spec.modalities)} are not the model's {list(meta['modalities'])}")
    return spec


@dataclasses.dataclass
class Prepared:
    """One subject on the model's grid and what maps results back to its own grid."""

    subject: str
    images: np.ndarray        # [Z, M, H, W] float32, model modality order, zeros for a missing modality
    available: np.ndarray     # [M] bool
    keep: np.ndarray          # [Z] kept axial indices of the RAS volume (one contiguous range)
    brain: np.ndarray         # [X, Y, Z_all] bool: the brain mask of the RAS volume
    inputs: dict[str, str]    # modality -> path of the image files used
    reference: str            # the file whose grid and header the outputs copy (first input, model order)

    @property
    def position(self) -> np.ndarray:
        """[Z] each slice's relative position in the stored range, in [0, 1) (bin centres, as
        ``raysys.evaluate.baselines.position_bins`` counts them)."""
        n = len(self.keep)
        return (np.arange(n) + 0.5) / n


def prepare_subject(subject: str, files: Mapping[str, str], spec: Preprocessing) -> Prepared:
    """Read and preprocess one subject's files (``{modality: path}``; labels are ignored, a tissue
    map sets the brain mask as in the converter, other modalities than the model's are ignored).
    Raises ``InputError("<path>: <problem>")``."""
    images = {m: files[m] for m in spec.modalities if m in files}
    if not images:
        path = next(iter(files.values()), subject)
        raise InputError(path, f"subject {subject} has no image of the model's modalities {list(spec.modalities)}")
    used = {**images, **({TISSUE: files[TISSUE]} if TISSUE in files else {})}
    volumes, _, _ = load_subject(used, integer_modalities=set(LABEL_MODALITIES))
    tissue = volumes.pop(TISSUE, None)
    first = next(iter(images.values()))
    arrays, brain, keep, _ = preprocess(volumes, tissue, spec.size, spec.slices, spec.normalise, first)
    stack = np.zeros((len(keep), len(spec.modalities), *spec.size), dtype=np.float32)
    for i, modality in enumerate(spec.modalities):
        if modality in volumes:     # rounded to the store's dtype, as the model saw its slices
            stack[:, i] = arrays[f"{layout.IMAGES}/{modality}"].astype(spec.dtype, copy=False)
    available = np.array([m in volumes for m in spec.modalities])
    return Prepared(subject, stack, available, keep, brain, images, first)


def with_context(images: np.ndarray, context: int) -> np.ndarray:
    """[Z, M, H, W] -> [Z, M, K, H, W]: each slice with its K context slices, the subject's edge
    slices repeated (the rule of ``raysys.data.SliceDataset``)."""
    half = context // 2
    n = images.shape[0]
    index = np.clip(np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)   # [Z, K]
    return np.moveaxis(images[index], 1, 2)
