"""One forward (and backward) fftconv call at a given size, for ncu / nsys.

    ncu --clock-control none -k regex:fftconv python benchmarks/profile_case.py 4096 64 768
"""
import sys

import torch

import longconv_models as lcm

N, B, H = (int(a) for a in sys.argv[1:4])
bwd = len(sys.argv) > 4 and sys.argv[4] == "bwd"
u = torch.randn(B, H, N // 2, device="cuda", dtype=torch.bfloat16, requires_grad=bwd)
k = torch.randn(H, N // 2, device="cuda", requires_grad=bwd)
spec = lcm.prepare_filter(k, N // 2, fft_size=N)
for _ in range(2):
    y = lcm.fftconv(u, spec)
    if bwd:
        y.backward(torch.ones_like(y))
torch.cuda.synchronize()
