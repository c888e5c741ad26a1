"""The Python route rules (ops/fftconv/plan.py, long.py) agree with the limits the C++ host code
checks (kernels/binding.cpp): read from the sources, so neither side can drift alone (CPU)."""

import re
from pathlib import Path

import longconv_models
from longconv_models.ops.fftconv import long as long_path
from longconv_models.ops.fftconv import plan

BINDING = (Path(longconv_models.__file__).parent / "kernels" / "binding.cpp").read_text()


def test_fused_kernel_sizes():
    ranges = {tuple(map(int, m)) for m in re.findall(r"fft_size >= (\d+) && fft_size <= (\d+)", BINDING)}
    assert ranges == {(plan.FUSED_FFT_SIZES[0], plan.FUSED_FFT_SIZES[-1])}, ranges
    assert plan.MIN_FFT_SIZE == plan.FUSED_FFT_SIZES[0]


def test_long_path_limits():
    outer = {int(m) for m in re.findall(r"outer >= 1 && outer <= (\d+)", BINDING)}
    m1 = {int(m) for m in re.findall(r"M1 >= 2 && M1 <= (\d+)", BINDING)}
    assert outer == m1 == {long_path.MAX_OUTER}
    inner_min = {int(m) for m in re.findall(r"fft_size / M1 >= (\d+)", BINDING)}
    assert inner_min == {long_path.MIN_INNER}
    for n in plan.LONG_FFT_SIZES:  # every planned split passes the C++ checks
        M1, M2 = long_path.long_plan(n, gated=False)
        assert 2 <= M1 <= long_path.MAX_OUTER and M2 >= long_path.MIN_INNER and M1 * M2 == n
        assert M2 <= plan.FUSED_FFT_SIZES[-1]
