"""Which implementation runs each op: the CUDA kernel when it is built and supports the case,
the PyTorch reference otherwise. The choice is never silent: it is logged at DEBUG level on the
``longconv_models`` logger and can be queried with :func:`last_backend`.

Each op is a ``torch.library`` custom op (what ``torch.compile``, FakeTensor, vmap and dispatch
modes see). Plain eager calls on CUDA tensors skip the library dispatcher and call the same CUDA
implementation directly (:func:`direct_call_ok`): its Python autograd wrapper costs ~20-30 us a
call, which at short lengths is as long as the kernel."""

from __future__ import annotations

import contextlib
import logging

import torch

from .. import extension

logger = logging.getLogger("longconv_models")

_last: dict[str, tuple[str, str]] = {}
_warned: set[str] = set()
_kernels_enabled = True
_direct_calls = True
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


@contextlib.contextmanager
def reference_path():
    """Within this context every op runs its PyTorch reference, even where a kernel exists."""
    global _kernels_enabled
    previous, _kernels_enabled = _kernels_enabled, False
    try:
        yield
    finally:
        _kernels_enabled = previous


@contextlib.contextmanager
def through_custom_ops():
    """Within this context eager calls go through the ``torch.library`` dispatcher as well (tests
    use it to cover the route ``torch.compile`` takes)."""
    global _direct_calls
    previous, _direct_calls = _direct_calls, False
    try:
        yield
    finally:
        _direct_calls = previous


def _transforms_or_modes_active() -> bool:
    return (
        torch._C._are_functorch_transforms_active()
        or torch._C._is_torch_function_mode_enabled()
        or torch._C._len_torch_dispatch_stack() > 0
    )


def direct_module(*tensors: torch.Tensor | None):
    """The extension if an op may call its CUDA implementation directly, else ``None``: eager
    mode (not tracing or compiling), no functorch transform or torch function / dispatch mode
    active, every tensor a plain CUDA tensor (no subclass such as FakeTensor or DTensor), the
    kernels built. The caller has checked that the kernel takes the case, and records the choice."""
    if not (_direct_calls and _kernels_enabled) or torch.compiler.is_compiling() or torch._C._is_tracing():
        return None
    if _transforms_or_modes_active():
        return None
    for t in tensors:
        if t is not None and (type(t) not in _PLAIN_TENSOR_TYPES or not t.is_cuda):
            return None
    return extension.load_extension()


def direct_call_ok(*tensors: torch.Tensor | None) -> bool:
    """Whether eager calls with these tensors take the direct route (see :func:`direct_module`)."""
    return direct_module(*tensors) is not None


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd has to record a call with these inputs."""
    if not torch.is_grad_enabled():
        return False
    for t in tensors:  # a plain loop: this runs on every eager call
        if t is not None and t.requires_grad:
            return True
    return False


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
