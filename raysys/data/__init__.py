"""Reading raysys slice stores: ``open_store``, ``SliceDataset``, ``DistinctSubjectBatchSampler``."""

from .dataset import SliceDataset
from .sampler import DistinctSubjectBatchSampler
from .store import Store, StoreError, open_store

__all__ = ["DistinctSubjectBatchSampler", "SliceDataset", "Store", "StoreError", "open_store"]
