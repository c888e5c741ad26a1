"""A numpy model of the fused FFT-conv kernel's dataflow, register fragment by register fragment.

It mirrors ``longconv_models/kernels/fftconv/fftconv_kernel.cuh`` (same stages, same fragment conversions, same
twiddle and filter-slot positions, same swizzle) so that the index math can be checked on a CPU
against a plain FFT convolution. Values stay in float64 unless ``round_fn`` is given (e.g. bf16
rounding of what the kernel stores in 16 bits).
"""

from __future__ import annotations

import numpy as np

LANE = np.arange(32)
G, T = LANE // 4, LANE % 4


# --- mma.m16n8k16 fragment layouts ---------------------------------------------------------
def a_coords():
    """A (16x16, row-major): reg r holds rows g + 8*(r&1), cols 2t + 8*(r>>1) + {0,1}."""
    r = np.arange(4)[None, :, None]
    h = np.arange(2)[None, None, :]
    row = G[:, None, None] + 8 * (r & 1) + 0 * h
    col = 2 * T[:, None, None] + 8 * (r >> 1) + h
    return row, col


def b_coords():
    """B (16x8, 'col'): reg r holds k = 2t + 8r + {0,1}, n = g."""
    r = np.arange(2)[None, :, None]
    h = np.arange(2)[None, None, :]
    k = 2 * T[:, None, None] + 8 * r + h
    n = G[:, None, None] + 0 * k
    return k, n


def c_coords():
    """C/D (16x8 fp32): reg r holds row g + 8*(r>>1), col 2t + (r&1)."""
    r = np.arange(4)[None, :]
    return G[:, None] + 8 * (r >> 1), 2 * T[:, None] + (r & 1)


def a_frag(m):
    row, col = a_coords()
    return m[row, col]


def b_frag(m):
    k, n = b_coords()
    return m[k, n]


def mat_a(f):
    m = np.zeros((16, 16))
    row, col = a_coords()
    m[row, col] = f
    return m


def mat_b(f):
    m = np.zeros((16, 8))
    k, n = b_coords()
    m[k, n] = f
    return m


def mat_c(f):
    m = np.zeros((16, 8))
    row, col = c_coords()
    m[row, col] = f
    return m


def c_frag(m):
    row, col = c_coords()
    return m[row, col]


def mma(a, b, c):
    return c_frag(mat_a(a) @ mat_b(b) + mat_c(c))


# --- register reinterpretations used by the kernel (no data movement between lanes) ---------
def pack(lo, hi, rnd):
    return np.stack([rnd(lo), rnd(hi)], -1)


def acc_to_a(d_lo, d_hi, rnd):
    """Two 16x8 accumulators (cols 0-7, 8-15) -> one 16x16 A operand."""
    return np.stack(
        [pack(d_lo[:, 0], d_lo[:, 1], rnd), pack(d_lo[:, 2], d_lo[:, 3], rnd),
         pack(d_hi[:, 0], d_hi[:, 1], rnd), pack(d_hi[:, 2], d_hi[:, 3], rnd)], 1)


def acc_to_b(d_lo, d_hi, half, rnd):
    """Transpose of two accumulators -> B operand for n-tile ``half`` (rows 8*half..8*half+7)."""
    i = 2 * half
    return np.stack([pack(d_lo[:, i], d_lo[:, i + 1], rnd), pack(d_hi[:, i], d_hi[:, i + 1], rnd)], 1)


def sym_b(a, half):
    """B operand (n-tile ``half``) of a symmetric matrix from its A fragment."""
    return np.stack([a[:, half], a[:, 2 + half]], 1)


# --- shared memory ------------------------------------------------------------------------------
def swizzle(e):
    """Element offset within a plane -> physical offset (16-byte chunks XOR-permuted)."""
    c = e >> 3
    c = c ^ (((c >> 3) & 1) ^ ((c >> 5) & 7))
    return (c << 3) | (e & 7)


def ldmatrix_x4_trans(plane, base, row_stride):
    """B operands of a 16x16 tile at ``base`` with rows ``row_stride`` apart, as the kernel loads
    them: matrix m covers rows 8*(m&1).., cols 8*(m>>1)..; returns [nt][32 lanes, 2 regs, 2]."""
    def matrix(m):
        rows = np.arange(8) + 8 * (m & 1)
        return np.array([[plane[swizzle(base + r * row_stride + 8 * (m >> 1) + c)] for c in range(8)]
                         for r in rows])
    mats = [matrix(m) for m in range(4)]
    # .trans: thread (g, t) receives M[2t][g], M[2t+1][g]
    reg = [np.stack([mats[m][2 * T, G], mats[m][2 * T + 1, G]], -1) for m in range(4)]
    return [np.stack([reg[0], reg[1]], 1), np.stack([reg[2], reg[3]], 1)]


def dft_frags(inverse=False):
    """A fragments of Fr, Fi, -Fi for the unitary 16-point DFT (F[a][i] = W16^(ai) / 4)."""
    idx = np.arange(16)
    w = np.exp(-2j * np.pi * np.outer(idx, idx) / 16) / 4
    return a_frag(w.real), a_frag(w.imag), a_frag(-w.imag)


# --- the kernel stages ---------------------------------------------------------------------------
class Kernel:
    """``rnd``: the rounding of what the kernel stores in 16 bits (intermediates, operands);
    ``const_rnd``: that of the 16-bit DFT fragments (the kernel keeps them in its element type);
    ``dft_scale``: the fragments hold c F (``DFT_FRAGMENT_SCALE``: bf16 rounds c F closer than F),
    undone as the kernel does: 1/c in the core twiddles (S1, S3), the rest in one constant on the
    frequency-domain product and on the forward spectrum."""

    def __init__(self, N, rnd=lambda x: x, const_rnd=lambda x: x, dft_scale=1.0):
        from longconv_models.ops.fftconv.fused import LANE_SLOT, fft_plan, twiddle_tables
        import torch

        self.N = N
        self.R0, self.R1 = fft_plan(N)
        self.S0 = N // self.R0
        self.rnd = rnd
        self.fr, self.fi, self.nfi = (const_rnd(dft_scale * f) for f in dft_frags())
        idx_r, idx_c = c_coords()
        self.tw_core = np.stack(
            [np.exp(-2j * np.pi * idx_r * (8 * nt + idx_c) / 256) for nt in range(2)], 1) / dft_scale  # [32, 2, 4]
        self.spectrum_comp = dft_scale ** -(1 + (self.R1 == 16))  # S2 (+ the radix-16 stage)
        self.freq_comp = self.spectrum_comp**2  # and S4 (+ the radix-16 stage's inverse)
        st, co = twiddle_tables(torch.device("cpu"))
        st, co = st.double().numpy(), co.double().numpy()
        self.lane_slot = LANE_SLOT  # [32 lanes, 8 slots] -> position in a core tile's slots
        self.tw_stage = (st[..., 0] + 1j * st[..., 1])[:, LANE_SLOT]  # [16 cb, 32, 8]
        self.tw_stage_core = (co[..., 0] + 1j * co[..., 1])[:, LANE_SLOT]

    # A_F(mt, ks) of the forward transform and of its inverse (conjugate)
    def a_fwd(self, mt, ks):
        return [[self.fr, self.nfi], [self.fi, self.fr]][mt][ks]

    def a_inv(self, mt, ks):
        return [[self.fr, self.fi], [self.nfi, self.fr]][mt][ks]

    def strided_pass(self, planes, base, row_stride, a_of):
        """S1-type stage on a 16x16 tile from shared memory: returns D[mt][nt] (fp32 accumulators)."""
        bx = [ldmatrix_x4_trans(planes[part], base, row_stride) for part in range(2)]
        d = [[np.zeros((32, 4)) for _ in range(2)] for _ in range(2)]
        for mt in range(2):
            for nt in range(2):
                for ks in range(2):
                    d[mt][nt] = mma(a_of(mt, ks), bx[ks][nt], d[mt][nt])
        return d

    def store_acc(self, planes, d, base, row_stride, tw=None):
        """Store D[mt][nt] (rows = digit, 8-col tiles) as bf16 pairs at base + row*stride + col."""
        row, col = c_coords()
        for nt in range(2):
            val = d[0][nt] + 1j * d[1][nt]
            if tw is not None:
                val = val * tw[:, 4 * nt: 4 * nt + 4]
            pos = base + row * row_stride + 8 * nt + col
            planes[0][swizzle(pos)] = self.rnd(val.real)
            planes[1][swizzle(pos)] = self.rnd(val.imag)

    def core_forward(self, planes, tile):
        """The core's first half: the tile's spectrum in its slot layout, [32 lanes, 8 slots] (fp32
        accumulators: what the kernel multiplies by the filter slots)."""
        rnd = self.rnd
        base = tile * 256
        d1 = self.strided_pass(planes, base, 16, self.a_fwd)
        for nt in range(2):  # core twiddle W256^(a j)
            v = (d1[0][nt] + 1j * d1[1][nt]) * self.tw_core[:, nt]
            d1[0][nt], d1[1][nt] = v.real, v.imag
        a2 = [acc_to_a(d1[p][0], d1[p][1], rnd) for p in range(2)]
        b_of = lambda ks, po: [[self.fr, self.fi], [self.nfi, self.fr]][ks][po]  # noqa: E731
        z = [np.zeros((32, 4)) for _ in range(4)]
        for nt in range(4):
            for ks in range(2):
                z[nt] = mma(a2[ks], sym_b(b_of(ks, nt >> 1), nt & 1), z[nt])
        # filter slots: slot s = 4*bh + r  <->  (re z[bh].r, im z[2+bh].r)
        return np.concatenate([z[0] + 1j * z[2], z[1] + 1j * z[3]], 1)  # [32, 8]

    def core(self, planes, tile, k_slots):
        rnd = self.rnd
        base = tile * 256
        zc = self.core_forward(planes, tile) * (k_slots[tile * 256 + self.lane_slot] * self.freq_comp)
        z = [zc[:, :4].real, zc[:, 4:].real, zc[:, :4].imag, zc[:, 4:].imag]
        # S3: B operand = transposed accumulators; A = inverse DFT
        bz = [[acc_to_b(z[2 * p], z[2 * p + 1], ah, rnd) for ah in range(2)] for p in range(2)]
        d3 = [[np.zeros((32, 4)) for _ in range(2)] for _ in range(2)]
        for mt in range(2):
            for nt in range(2):
                for ks in range(2):
                    d3[mt][nt] = mma(self.a_inv(mt, ks), bz[ks][nt], d3[mt][nt])
        for nt in range(2):
            v = (d3[0][nt] + 1j * d3[1][nt]) * self.tw_core[:, nt].conj()
            d3[0][nt], d3[1][nt] = v.real, v.imag
        bv = [[acc_to_b(d3[p][0], d3[p][1], jh, rnd) for jh in range(2)] for p in range(2)]
        d4 = [[np.zeros((32, 4)) for _ in range(2)] for _ in range(2)]
        for mt in range(2):
            for nt in range(2):
                for ks in range(2):
                    d4[mt][nt] = mma(self.a_inv(mt, ks), bv[ks][nt], d4[mt][nt])
        tw = None
        if self.R1 == 16:
            tw = self.tw_stage_core[tile % 16].conj()
        self.store_acc(planes, d4, base, 16, tw)

    def stage0(self, planes, inverse):
        R0, S0, N = self.R0, self.S0, self.N
        x = (planes[0][swizzle(np.arange(N))] + 1j * planes[1][swizzle(np.arange(N))]).reshape(R0, S0)
        idx = np.arange(R0)
        tw = np.exp(-2j * np.pi * np.outer(idx, np.arange(S0)) / N)
        w = np.exp(-2j * np.pi * np.outer(idx, idx) / R0) / np.sqrt(R0)
        if not inverse:
            y = (w @ x) * tw
        else:
            y = w.conj() @ (x * tw.conj())
        y = y.reshape(-1)
        planes[0][swizzle(np.arange(N))] = self.rnd(y.real)
        planes[1][swizzle(np.arange(N))] = self.rnd(y.imag)

    def stage1(self, planes, inverse):
        for k0 in range(self.R0):
            for cb in range(16):
                base = k0 * self.S0 + 16 * cb
                if not inverse:
                    d = self.strided_pass(planes, base, 256, self.a_fwd)
                    self.store_acc(planes, d, base, 256, self.tw_stage[cb])
                else:
                    d = self.strided_pass(planes, base, 256, self.a_inv)
                    self.store_acc(planes, d, base, 256)

    def load_forward(self, x0, x1):
        """The pair x0 + i x1 in shared memory, through the stages before the core (forward)."""
        N = self.N
        planes = [np.zeros(N), np.zeros(N)]
        planes[0][swizzle(np.arange(len(x0)))] = self.rnd(x0)
        planes[1][swizzle(np.arange(len(x1)))] = self.rnd(x1)
        if self.R0 > 1:
            self.stage0(planes, inverse=False)
        if self.R1 > 1:
            self.stage1(planes, inverse=False)
        return planes

    def spectrum(self, x0, x1):
        """The forward transform of x0 + i x1 in slot order (as the kernel multiplies it by the
        filter slots; unitary scaling)."""
        planes = self.load_forward(x0, x1)
        out = np.zeros(self.N, np.complex128)
        for tile in range(self.N // 256):
            out[tile * 256 + self.lane_slot] = self.core_forward(planes, tile)
        return out * self.spectrum_comp

    def conv(self, x0, x1, k_slots):
        """Causal conv of two real rows sharing a filter: returns (y0, y1)."""
        planes = self.load_forward(x0, x1)
        for tile in range(self.N // 256):
            self.core(planes, tile, k_slots)
        if self.R1 > 1:
            self.stage1(planes, inverse=True)
        if self.R0 > 1:
            self.stage0(planes, inverse=True)
        L = len(x0)
        return planes[0][swizzle(np.arange(L))], planes[1][swizzle(np.arange(L))]
