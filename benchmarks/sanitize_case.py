"""Small fftconv / short_conv calls for compute-sanitizer (every kernel variant, odd shapes)."""
import torch

import longconv_models as lcm

CASES = [(N, N // 2 - 1) for N in (256, 1024, 4096, 32768, 65536, 2**20)]  # fused sizes, long path (M1 = 16, 256)
CASES += [(65536, 32768), (2**22, 2**21 - 8)]  # the long path's 16-byte copies; 4M
for N, L in CASES:
    for dtype in (torch.bfloat16, torch.float16):
        u = torch.randn(3, 3, L, device="cuda", dtype=dtype, requires_grad=True)
        g = torch.randn(3, 3, L, device="cuda", dtype=dtype, requires_grad=True)
        k = torch.randn(3, L, device="cuda", requires_grad=True)
        k_rev = torch.randn(3, N // 2 - 7, device="cuda", requires_grad=True)  # bidirectional, with bias
        y = lcm.fftconv(u, k, k_rev=k_rev, bias=k[:, 0], pre_gate=g, post_gate=g, fft_size=N)
        y.sum().backward()
        assert lcm.last_backend("fftconv_bwd")[0] == "cuda"
        if N == 2**22:  # without gates the 4M plan has M1 = 512
            lcm.fftconv(u, k, fft_size=N).sum().backward()
with torch.no_grad():  # inference from taps: the forward kernel's filter prologue (bf16), the long
    # path's filter rows (M1 = 8, 16, 256, 512), the standalone filter transform
    from longconv_models.ops.fftconv.fused import filter_spectrum_slots_cuda
    from longconv_models.ops import dispatch

    for N in (256, 1024, 4096, 16384, 32768, 65536, 2**20, 2**22):
        for dtype in (torch.bfloat16, torch.float16):
            u = torch.randn(3, 3, N // 2 - 5, device="cuda", dtype=dtype)
            lcm.fftconv(u, torch.randn(3, N // 2 - 9, device="cuda"), bias=torch.randn(3, device="cuda"), fft_size=N)
        if N <= 16384:
            filter_spectrum_slots_cuda(dispatch.cuda_module("fftconv"), torch.randn(3, N // 2 + 3, device="cuda"),
                                       torch.randn(3, 11, device="cuda"), torch.randn(3, device="cuda"), N)
with torch.no_grad():  # frequency-sparse inference: the low-band kernels (fused sizes, long path)
    for N in (256, 4096, 65536):
        u = torch.randn(3, 3, N // 2 - 3, device="cuda", dtype=torch.bfloat16)
        lcm.fftconv(u, lcm.frequency_sparse(torch.randn(3, N // 2 - 3, device="cuda"), 0.25, N // 2 - 3))
        assert lcm.last_backend() == ("cuda", "low band")
for cl in (False, True):
    for K, padding, dtype in ((4, "causal", torch.bfloat16), (3, "same", torch.float16), (8, "causal", torch.float32)):
        x = torch.randn(2, 37, 13, device="cuda", dtype=dtype, requires_grad=True)
        w = torch.randn(37 if not cl else 13, K, device="cuda", requires_grad=True)
        lcm.short_conv(x, w, padding=padding, channels_last=cl).sum().backward()
    x = torch.randn(2, 40, 24, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # 16-byte paths
    lcm.short_conv(x, torch.randn(40 if not cl else 24, 3, device="cuda"), channels_last=cl).sum().backward()
torch.cuda.synchronize()
print("sanitize cases done")
