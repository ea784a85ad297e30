"""A study driver turns SIGTERM (``ray job stop``, ``kill``) into KeyboardInterrupt, so it ends its
MLflow runs KILLED as for Ctrl-C, and gives the previous handler back afterwards (fast, no Ray)."""

from __future__ import annotations

import signal

import pytest

from raysys.tune.run import sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_inside_and_the_old_handler_is_restored():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with sigterm_as_interrupt():
                signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # outside the block: the handler from before
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
