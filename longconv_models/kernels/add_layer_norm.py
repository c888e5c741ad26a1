"""Triton kernels of the fused residual add + LayerNorm (pre-norm blocks' ``norm(x + residual)``
and post-norm ``LayerNorm(x + r)``): one pass over the rows forward, one backward.

Forward, per row of width N: s = x + residual (computed in fp32, stored in the residual's
dtype: the next block's residual), y = (s - mean) * rstd * w + b in the output dtype (the
autocast dtype under autocast: what the next GEMM reads). Backward: the gradient of s from y's
and from s's own consumers, written once as dx and once as dresidual in their dtypes; the weight
and bias gradients as per-program partial sums (summed on the host). Imported only on CUDA.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _add_layer_norm_fwd(X, R, W, Bias, Y, S, Mean, Rstd, M, N, eps,
                        HAS_RESIDUAL: tl.constexpr, HAS_BIAS: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok, col_ok = rows < M, cols < N
    mask = row_ok[:, None] & col_ok[None, :]
    offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
    s = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        s += tl.load(R + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(S + offs, s.to(S.dtype.element_ty), mask=mask)
    mean = tl.sum(s, axis=1) / N
    centered = tl.where(mask, s - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=1) / N + eps)
    tl.store(Mean + rows, mean, mask=row_ok)
    tl.store(Rstd + rows, rstd, mask=row_ok)
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    y = centered * rstd[:, None] * w[None, :]
    if HAS_BIAS:
        y += tl.load(Bias + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _add_layer_norm_bwd(S, W, Mean, Rstd, DY, DS_OUT, DX, DR, DW, DB, M, N, rows_per_program,
                        HAS_DS_OUT: tl.constexpr, HAS_RESIDUAL: tl.constexpr, HAS_BIAS: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    first = pid * rows_per_program
    last = tl.minimum(first + rows_per_program, M)
    for start in range(first, last, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < last
        mask = row_ok[:, None] & col_ok[None, :]
        offs = rows.to(tl.int64)[:, None] * N + cols[None, :]
        mean = tl.load(Mean + rows, mask=row_ok, other=0.0)
        rstd = tl.load(Rstd + rows, mask=row_ok, other=0.0)
        xhat = tl.where(mask, (tl.load(S + offs, mask=mask, other=0.0).to(tl.float32) - mean[:, None]) * rstd[:, None], 0.0)
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
        wdy = dy * w[None, :]
        dw += dy * xhat
        if HAS_BIAS:
            db += dy
        c1 = tl.sum(xhat * wdy, axis=1) / N
        c2 = tl.sum(wdy, axis=1) / N
        ds = (wdy - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
        if HAS_DS_OUT:
            ds += tl.load(DS_OUT + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(DX + offs, ds.to(DX.dtype.element_ty), mask=mask)
        if HAS_RESIDUAL:
            tl.store(DR + offs, ds.to(DR.dtype.element_ty), mask=mask)
    tl.store(DW + pid * N + cols, tl.sum(dw, axis=0), mask=col_ok)
    if HAS_BIAS:
        tl.store(DB + pid * N + cols, tl.sum(db, axis=0), mask=col_ok)


def _blocks(N: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps): about 4K elements a program."""
    block_n = triton.next_power_of_2(N)
    block_m = max(1, 4096 // block_n)
    return block_m, block_n, 4 if block_m * block_n <= 4096 else 8


def forward(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor | None,
            eps: float, out_dtype: torch.dtype, residual_dtype: torch.dtype):
    """x, residual: (M, N) contiguous -> (y, s, mean, rstd)."""
    M, N = x.shape
    y = torch.empty((M, N), device=x.device, dtype=out_dtype)
    s = torch.empty((M, N), device=x.device, dtype=residual_dtype)
    mean = torch.empty(M, device=x.device, dtype=torch.float32)
    rstd = torch.empty(M, device=x.device, dtype=torch.float32)
    block_m, block_n, warps = _blocks(N)
    _add_layer_norm_fwd[(triton.cdiv(M, block_m),)](
        x, residual, weight, bias, y, s, mean, rstd, M, N, eps,
        HAS_RESIDUAL=residual is not None, HAS_BIAS=bias is not None,
        BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps)
    return y, s, mean, rstd


def backward(dy: torch.Tensor, ds_out: torch.Tensor | None, s: torch.Tensor, weight: torch.Tensor,
             has_bias: bool, mean: torch.Tensor, rstd: torch.Tensor, x_dtype: torch.dtype,
             residual_dtype: torch.dtype | None):
    """-> (dx, dresidual or None, dweight, dbias or None), all (M, N) / (N,)."""
    M, N = s.shape
    block_m, block_n, warps = _blocks(N)
    sms = torch.cuda.get_device_properties(s.device).multi_processor_count
    programs = max(1, min(triton.cdiv(M, block_m), 4 * sms))
    rows_per_program = triton.cdiv(triton.cdiv(M, programs), block_m) * block_m
    programs = triton.cdiv(M, rows_per_program)
    dx = torch.empty((M, N), device=s.device, dtype=x_dtype)
    dr = None if residual_dtype is None else torch.empty((M, N), device=s.device, dtype=residual_dtype)
    dw = torch.empty((programs, N), device=s.device, dtype=torch.float32)
    db = torch.empty((programs, N), device=s.device, dtype=torch.float32) if has_bias else None
    _add_layer_norm_bwd[(programs,)](
        s, weight, mean, rstd, dy, ds_out, dx, dr, dw, db, M, N, rows_per_program,
        HAS_DS_OUT=ds_out is not None, HAS_RESIDUAL=dr is not None, HAS_BIAS=has_bias,
        BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps)
    return dx, dr, dw.sum(0).to(weight.dtype), None if db is None else db.sum(0).to(weight.dtype)
