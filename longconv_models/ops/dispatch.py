"""Which implementation runs each op: the CUDA kernel when it is built and supports the case,
the PyTorch reference otherwise. The choice is never silent: it is logged at DEBUG level on the
``longconv_models`` logger and can be queried with :func:`last_backend`.

Each op is a ``torch.library`` custom op (what ``torch.compile``, FakeTensor, vmap and dispatch
modes see). Plain eager calls on CUDA tensors skip the library dispatcher and call the same CUDA
implementation directly (:func:`direct_call_ok`): its Python autograd wrapper costs ~20-30 us a
call, which at short lengths is as long as the kernel."""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging

import torch

from .. import extension

logger = logging.getLogger("longconv_models")

_last: dict[str, tuple[str, str]] = {}
_counters: list[collections.Counter] = []  # the open count_backends() contexts
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


def kernels_enabled() -> bool:
    """False inside :func:`reference_path`."""
    return _kernels_enabled


def eager_cuda_call(*tensors: torch.Tensor | None) -> bool:
    """Whether an op may call a CUDA implementation directly: eager mode (not tracing or
    compiling), no functorch transform or torch function / dispatch mode active, every tensor a
    plain CUDA tensor (no subclass such as FakeTensor or DTensor), kernels not disabled."""
    if not (_direct_calls and _kernels_enabled) or torch.compiler.is_compiling() or torch._C._is_tracing():
        return False
    if _transforms_or_modes_active():
        return False
    for t in tensors:
        if t is not None and (type(t) not in _PLAIN_TENSOR_TYPES or not t.is_cuda):
            return False
    return True


_triton_modules: dict[str, object] = {}
_triton_errors: dict[str, str] = {}


def triton_kernels(name: str):
    """``longconv_models.kernels.<name>`` (Triton kernels: imported on first use, since Triton is
    optional and only CUDA builds of torch ship it), or ``None``: :func:`triton_error` says why."""
    if name not in _triton_modules and name not in _triton_errors:
        try:
            _triton_modules[name] = importlib.import_module(f"{__package__.rpartition('.')[0]}.kernels.{name}")
        except Exception as e:  # no Triton, or it does not import
            _triton_errors[name] = f"triton unavailable ({type(e).__name__})"
    return _triton_modules.get(name)


def triton_error(name: str) -> str | None:
    return _triton_errors.get(name)


def direct_module(*tensors: torch.Tensor | None):
    """The extension if an op may call its CUDA implementation directly (:func:`eager_cuda_call`)
    and the kernels are built, else ``None``. The caller has checked that the kernel takes the
    case, and records the choice."""
    return extension.load_extension() if eager_cuda_call(*tensors) else None


def direct_call_ok(*tensors: torch.Tensor | None) -> bool:
    """Whether eager calls with these tensors take the direct route (see :func:`direct_module`)."""
    return direct_module(*tensors) is not None


_AUTOCAST_ELIGIBLE = (torch.float32, torch.bfloat16, torch.float16)


def autocast_dtype(t: torch.Tensor) -> torch.dtype | None:
    """The activation dtype of the ops under ``torch.autocast`` on ``t``'s device, else ``None``.

    The ops follow autocast's rule for a matmul: activations (the input and the gates) run in the
    autocast dtype, whatever dtype they arrive in (fp64 excepted, as autocast leaves it); filters
    and their spectra stay fp32; the output has the autocast dtype. So an fp32 model under
    ``autocast(dtype=torch.bfloat16)`` (``Trainer(bf16=True)``, accelerate) runs the kernels."""
    device_type = t.device.type
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def autocast_activations(dtype: torch.dtype | None, *tensors: torch.Tensor | None) -> tuple:
    """``tensors`` cast to ``dtype`` where autocast would cast them (see :func:`autocast_dtype`);
    a cast tensor comes out contiguous (one copy does both, the ops want contiguous rows)."""
    if dtype is None:
        return tensors
    return tuple(
        t.to(dtype, memory_format=torch.contiguous_format) if t is not None and t.dtype in _AUTOCAST_ELIGIBLE else t
        for t in tensors
    )


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd has to record a call with these inputs."""
    if not torch.is_grad_enabled():
        return False
    for t in tensors:  # a plain loop: this runs on every eager call
        if t is not None and t.requires_grad:
            return True
    return False


def record(op: str, backend: str, reason: str = "") -> None:
    """Remember (and log) which backend ran ``op``; count the call in every open
    :func:`count_backends` context. Nothing while torch.compile traces (a Python side effect
    there would break the graph); the compiled graph's custom ops record when they run."""
    if torch.compiler.is_compiling():
        return
    if _last.get(op) != (backend, reason):
        logger.debug("%s: %s%s", op, backend, f" ({reason})" if reason else "")
    _last[op] = (backend, reason)
    for counter in _counters:
        counter[(op, backend, reason)] += 1


@contextlib.contextmanager
def count_backends():
    """Count every op call made inside the context by ``(op, backend, reason)``::

        with lcm.count_backends() as calls:
            model(ids, labels=ids).loss.backward()
        assert {backend for (op, backend, why) in calls} == {"cuda"}, calls

    ``op`` is ``fftconv`` / ``short_conv`` for forward calls and ``fftconv_bwd`` /
    ``short_conv_bwd`` for backward ones (a backward that runs as one C++ autograd node is
    counted when its forward records it). Under ``torch.compile`` the custom ops' implementations
    record at run time, so each run of the compiled graph counts; CUDA-graph replays do not."""
    counter: collections.Counter = collections.Counter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


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
