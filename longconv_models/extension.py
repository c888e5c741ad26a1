"""Build and load the CUDA kernels.

The kernels live in ``longconv_models/kernels/`` (package data of ``longconv_models.kernels``) and are
compiled with ``torch.utils.cpp_extension`` + ninja:

* just in time, the first time a CUDA tensor reaches an op (one line on stderr says so; the
  result is cached under ``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``);
* ahead of time with ``python -m longconv_models.build [--arch "8.0;9.0a"]``, which also works
  on a machine without a GPU as long as ``nvcc`` is found (``CUDA_HOME``).

A CPU-only machine never compiles anything: every op has a pure-PyTorch reference path.

Environment:
    LONGCONV_DISABLE_CUDA_KERNELS=1   never load the kernels (always use the reference path)
    LONGCONV_CUDA_ARCH="8.0;9.0a"     architectures to compile for (default: the visible GPUs)
    MAX_JOBS                          parallel compile jobs (ninja)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger("longconv_models")

# The .cu files hold the kernels and include no torch header; the host code of each op
# (*_host.cpp, ATen only) and the pybind module (binding.cpp) are the torch-aware units.
SOURCES = (
    "binding.cpp",
    "fftconv/fftconv_host.cpp",
    "fftconv/fftconv_long_host.cpp",
    "shortconv/shortconv_host.cpp",
    "fftconv/fftconv_fwd.cu",
    "fftconv/fftconv_bwd.cu",
    "fftconv/fftconv_outer.cu",
    "shortconv/shortconv.cu",
)

_lock = threading.Lock()
_module: ModuleType | None = None
_load_error: str | None = None
_tried = False


def kernel_source_dir() -> Path:
    """The CUDA sources: the subpackage ``longconv_models.kernels`` (a folder in the source
    checkout and in an installed wheel alike)."""
    return Path(__file__).resolve().parent / "kernels"


def _arch_tag(arch: str) -> str:
    return arch.replace(".", "").replace("+PTX", "")


def default_arch_list() -> list[str]:
    """Architectures to compile for: ``LONGCONV_CUDA_ARCH``, else the visible GPUs."""
    env = os.environ.get("LONGCONV_CUDA_ARCH")
    if env:
        return [a for a in env.replace(",", ";").split(";") if a.strip()]
    archs = set()
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            # Hopper gets the arch-specific target (wgmma/setmaxnreg need sm_90a).
            archs.add(f"{major}.{minor}a" if major == 9 else f"{major}.{minor}")
    return sorted(archs) or ["8.0", "9.0a"]


def gencode_flags(arch_list: list[str]) -> list[str]:
    flags = []
    for arch in arch_list:
        arch = arch.strip()
        ptx = arch.endswith("+PTX")
        num = _arch_tag(arch)
        flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    return flags


def build(arch_list: list[str] | None = None, verbose: bool = False) -> ModuleType:
    """Compile (or load from the cache) the CUDA extension and return it."""
    from torch.utils.cpp_extension import load

    arch_list = arch_list or default_arch_list()
    src_dir = kernel_source_dir()
    name = "longconv_models_cuda_" + "_".join(_arch_tag(a) for a in arch_list)
    cuda_flags = [
        "-O3",
        "--use_fast_math",
        "-lineinfo",
        "--expt-relaxed-constexpr",
        "-U__CUDA_NO_HALF_OPERATORS__",
        "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT16_OPERATORS__",
        "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "--threads=2",
        *gencode_flags(arch_list),
    ]
    return load(
        name=name,
        sources=[str(src_dir / s) for s in SOURCES],
        extra_include_paths=[str(src_dir)],
        extra_cflags=["-O3"],
        extra_cuda_cflags=cuda_flags,
        verbose=verbose,
    )


def disabled() -> bool:
    return os.environ.get("LONGCONV_DISABLE_CUDA_KERNELS", "0") not in ("", "0", "false", "False")


def load_extension() -> ModuleType | None:
    """Return the compiled kernels, building them on first use; ``None`` if unavailable.

    Never raises: a failed build is reported once (warning) and the reference path is used.
    """
    global _module, _load_error, _tried
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        _tried = True
        if disabled():
            _load_error = "disabled by LONGCONV_DISABLE_CUDA_KERNELS"
        elif not torch.cuda.is_available():
            _load_error = "no CUDA device"
        else:
            print(
                "longconv_models: loading CUDA kernels (compiling on first use, ~1-2 min)...",
                file=sys.stderr,
                flush=True,
            )
            try:
                _module = build()
            except Exception as exc:  # a broken toolchain must not break the library
                _load_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "longconv_models: CUDA kernels unavailable, using the PyTorch reference path (%s)",
                    _load_error.splitlines()[0][:300],
                )
    return _module


def unavailable_reason() -> str | None:
    """Why the kernels are not in use (``None`` once they are loaded)."""
    if _module is not None:
        return None
    return _load_error or "not loaded yet"
