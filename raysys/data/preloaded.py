"""Whole store arrays held in memory once per process, shared by every dataset that preloads them.

A trial reads its store's arrays for its train and its validation dataset, and a reused Tune
trial actor (``reuse_actors``) runs trial after trial on the same store: without this each of
them would read the same arrays again (seconds per trial on a small store). Keyed by the store's
URL and content id, so a store converted again at the same URL is read again. The arrays are
read-only; at most ``MAX_BYTES`` are kept (oldest dropped first).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .store import Store

MAX_BYTES = 1024 * 2**20
_arrays: "OrderedDict[tuple[str, str, str], np.ndarray]" = OrderedDict()


def preloaded(store: Store, name: str) -> np.ndarray:
    """The whole array ``name`` of ``store``, read on first use in this process."""
    key = (store.url, store.store_id, name)
    if key in _arrays:
        _arrays.move_to_end(key)
        return _arrays[key]
    array = np.asarray(store.array(name)[...])
    array.flags.writeable = False
    _arrays[key] = array
    while sum(a.nbytes for a in _arrays.values()) > MAX_BYTES and len(_arrays) > 1:
        _arrays.popitem(last=False)
    return array


def clear() -> None:
    _arrays.clear()
