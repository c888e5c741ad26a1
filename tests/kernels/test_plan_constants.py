"""The Python route rules (ops/fftconv/plan.py, long.py) agree with the size limits the C++ host
code checks (the named constants of kernels/fftconv/fftconv.h): read from the sources, so neither
side can drift alone (CPU)."""

import re
from pathlib import Path

import torch

import longconv_models
from longconv_models.ops.fftconv import long as long_path
from longconv_models.ops.fftconv import plan

KERNELS = Path(longconv_models.__file__).parent / "kernels"
HEADER = (KERNELS / "fftconv" / "fftconv.h").read_text()


def constant(name: str) -> int:
    match = re.search(rf"constexpr int {name} = ([^;]+);", HEADER)
    assert match, f"{name} not found in fftconv.h"
    return int(eval(match.group(1), {}))  # literals and shifts only


def test_fused_kernel_sizes():
    assert constant("kMinFFTSize") == plan.MIN_FFT_SIZE == plan.FUSED_FFT_SIZES[0]
    assert constant("kMaxFusedFFTSize") == plan.FUSED_FFT_SIZES[-1]
    assert constant("kFilterTransformMaxFFTSize") == plan.FILTER_TRANSFORM_MAX_FFT_SIZE


def test_dft_fragment_scale():
    """The low-band table (Python) scales its DFT fragments as the kernel scales its own."""
    from longconv_models.ops.fftconv.fused import DFT_FRAGMENT_SCALE

    match = re.search(r"constexpr float kBf16DftScale = ([0-9.]+)f;", HEADER)
    assert match, "kBf16DftScale not found in fftconv.h"
    assert float(match.group(1)) == DFT_FRAGMENT_SCALE[torch.bfloat16]
    assert DFT_FRAGMENT_SCALE[torch.float16] == 1.0


def test_long_path_limits():
    assert constant("kMaxOuter") == long_path.MAX_OUTER
    assert constant("kMinInner") == long_path.MIN_INNER
    assert constant("kMaxLongFFTSize") == plan.LONG_FFT_SIZES[-1]
    for n in plan.LONG_FFT_SIZES:  # every planned split passes the C++ checks
        for gated in (False, True):
            M1, M2 = long_path.long_plan(n, gated=gated)
            assert 2 <= M1 <= long_path.MAX_OUTER and M2 >= long_path.MIN_INNER and M1 * M2 == n
            assert M2 <= plan.FUSED_FFT_SIZES[-1]


def test_host_code_checks_the_named_limits():
    """No size literal of the plan left in the host code: the checks name the constants."""
    for path in KERNELS.rglob("*_host.cpp"):
        text = path.read_text()
        for literal in ("32768", "<= 512", ">= 4096", "1) << 2"):
            assert literal not in text, f"{path.name} checks the literal {literal!r}; use fftconv.h's constant"
    for path in KERNELS.rglob("*.cu*"):  # one dispatch helper, no hand-written radix switches
        assert "switch (radix0" not in path.read_text(), path.name
