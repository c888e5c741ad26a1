"""Which implementation runs each op: the CUDA kernel when it is built and supports the case,
the PyTorch reference otherwise. The choice is never silent: it is logged at DEBUG level on the
``longconv_models`` logger and can be queried with :func:`last_backend`."""

from __future__ import annotations

import contextlib
import logging

from .. import extension

logger = logging.getLogger("longconv_models")

_last: dict[str, tuple[str, str]] = {}
_warned: set[str] = set()
_kernels_enabled = True


@contextlib.contextmanager
def reference_path():
    """Within this context every op runs its PyTorch reference, even where a kernel exists."""
    global _kernels_enabled
    previous, _kernels_enabled = _kernels_enabled, False
    try:
        yield
    finally:
        _kernels_enabled = previous


def record(op: str, backend: str, reason: str = "") -> None:
    """Remember (and log) which backend ran ``op``."""
    if _last.get(op) != (backend, reason):
        logger.debug("%s: %s%s", op, backend, f" ({reason})" if reason else "")
    _last[op] = (backend, reason)


def last_backend(op: str = "fftconv") -> tuple[str, str] | None:
    """``(backend, reason)`` of the last call of ``op``: backend is ``"cuda"`` or ``"reference"``."""
    return _last.get(op)


def cuda_module(op: str):
    """The compiled extension, or ``None`` (with a one-time warning naming the reason)."""
    if not _kernels_enabled:
        return None
    mod = extension.load_extension()
    if mod is None and op not in _warned and not extension.disabled():
        _warned.add(op)
        logger.warning(
            "%s: CUDA kernels not available (%s); running the PyTorch reference path",
            op,
            extension.unavailable_reason(),
        )
    return mod


def select(op: str, unsupported_reason: str | None):
    """The extension if it can run ``op`` for this call (``unsupported_reason`` is None and the
    kernels are loaded), else ``None``; records the choice either way."""
    mod = None
    reason = unsupported_reason
    if reason is None:
        mod = cuda_module(op)
        if mod is None:
            reason = "kernels disabled (reference_path)" if not _kernels_enabled else "kernels not built"
    record(op, "cuda" if mod is not None else "reference", reason or "")
    return mod
