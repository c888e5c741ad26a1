// The fused FFT-convolution kernel family (see kernels/README.md for the algorithm).
//
// One template, parameterised by the element type T (bf16/fp16), the radix R0 of the CUDA-core
// stage (1, 2, 4, 8) and the direction; the radix-16 tensor-core stage and all sizes are runtime
// values. tests/kernel_model.py is a numpy model of exactly this dataflow.
#pragma once

#include "../common/device.cuh"
#include "fftconv.h"

namespace longconv::fftconv {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kCore = 256;  // points of the in-register core: a 16x16 tile per warp

// Element offset within a plane -> physical offset: 16-byte chunks XOR-permuted so that ldmatrix
// rows at stride 16 or 256 elements and the accumulator stores are bank-conflict free.
__device__ __forceinline__ int swz(int e) {
  int c = e >> 3;
  c ^= ((c >> 3) & 1) ^ ((c >> 5) & 7);
  return (c << 3) | (e & 7);
}

// The unitary 16-point DFT, F[a][i] = exp(-2 pi i a i / 16) / 4, as A fragments of its real part,
// imaginary part and negated imaginary part. F is symmetric, so the same registers also serve as
// B fragments (n-tile h: registers {h, 2+h}).
template <typename T>
struct Dft16 {
  uint32_t fr[4], fi[4], nfi[4];

  __device__ void init(int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
      const float2 w0 = unit_root_accurate(row * col % 16, 16);
      const float2 w1 = unit_root_accurate(row * (col + 1) % 16, 16);
      fr[r] = pack2<T>(0.25f * w0.x, 0.25f * w1.x);
      fi[r] = pack2<T>(0.25f * w0.y, 0.25f * w1.y);
      nfi[r] = pack2<T>(-0.25f * w0.y, -0.25f * w1.y);
    }
  }
  // Real-block form of F (forward) and of conj(F) (inverse): block (row part mt, col part ks).
  __device__ __forceinline__ const uint32_t (&fwd(int mt, int ks) const)[4] {
    return mt == ks ? fr : (mt == 0 ? nfi : fi);
  }
  __device__ __forceinline__ const uint32_t (&inv(int mt, int ks) const)[4] {
    return mt == ks ? fr : (mt == 0 ? fi : nfi);
  }
  // B operand (K = input part ks, N = output part po) of the product Y * F.
  __device__ __forceinline__ const uint32_t (&right(int ks, int po) const)[4] {
    return ks == po ? fr : (ks == 0 ? fi : nfi);
  }
};

// Radix-R DFT of R complex values in registers (R = 2, 4, 8), unnormalised; kInv: conj twiddles.
template <int R, bool kInv>
__device__ __forceinline__ void small_dft(float (&re)[R], float (&im)[R]) {
  if constexpr (R == 1) {
    return;
  } else {
    // iterative radix-2 DIT: bit-reversed input order, then log2(R) butterfly levels
    float xr[R], xi[R];
#pragma unroll
    for (int i = 0; i < R; ++i) {
      int rev = 0;
#pragma unroll
      for (int b = 1, x = i; b < R; b <<= 1, x >>= 1) rev = (rev << 1) | (x & 1);
      xr[i] = re[rev];
      xi[i] = im[rev];
    }
#pragma unroll
    for (int len = 2; len <= R; len <<= 1) {
#pragma unroll
      for (int start = 0; start < R; start += len) {
#pragma unroll
        for (int k = 0; k < len / 2; ++k) {
          // w = exp(-+2 pi i k / len), exact constants for len <= 8
          const int e = k * (8 / len);  // in eighths of a turn
          const float c = 0.70710678118654752f;
          float wr = e == 0 ? 1.f : e == 1 ? c : e == 2 ? 0.f : -c;
          float wi = e == 0 ? 0.f : e == 1 ? -c : e == 2 ? -1.f : -c;
          if (kInv) wi = -wi;
          const int a = start + k, b = a + len / 2;
          const float tr = xr[b] * wr - xi[b] * wi, ti = xr[b] * wi + xi[b] * wr;
          xr[b] = xr[a] - tr;
          xi[b] = xi[a] - ti;
          xr[a] += tr;
          xi[a] += ti;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < R; ++i) {
      re[i] = xr[i];
      im[i] = xi[i];
    }
  }
}

// What the core does in the frequency domain.
enum class CoreMode { kConv, kSaveSpectrum, kSaveSpectrumConv, kGradConv };

// What a load phase reads: x = src * mul (mul optional), per batch row.
struct LoadSpec {
  const void* src;
  const void* mul;
};
// What a store phase writes: out0 = v * mul0 (mul0 optional); out1 = v * mul1 if out1.
struct StoreSpec {
  void* out0;
  const void* mul0;
  void* out1;
  const void* mul1;
};

template <typename T, int R0>
struct Block {
  static constexpr int V = R0 > 1 ? 16 / R0 : 8;  // elements per row access in the first stage

  const Params& p;
  T* smem;
  const int h, lane, warp;
  const int N, S0, tiles, P;
  const bool stage1;  // the radix-16 tensor-core stage (N >= 4096)
  Dft16<T> dft;
  float2 tw_core[2][4];  // W256^(row*col) at the accumulator positions of this lane

  __device__ Block(const Params& params, T* shared)
      : p(params),
        smem(shared),
        h(blockIdx.x),
        lane(threadIdx.x & 31),
        warp(threadIdx.x >> 5),
        N(params.N),
        S0(params.N / R0),
        tiles(params.N / kCore),
        P(params.pairs_per_step),
        stage1(params.N / (kCore * R0) == 16) {
    dft.init(lane);
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        tw_core[nt][r] = unit_root_accurate((g + 8 * (r >> 1)) * (8 * nt + 2 * t + (r & 1)), kCore);
  }

  __device__ __forceinline__ T* plane(int pair, int part) const { return smem + (2 * pair + part) * N; }

  // Row (b = 2*pair + part, h) of a (B, H, L) tensor, or nullptr past the batch / if absent.
  __device__ __forceinline__ int64_t row_offset(int pair, int part) const {
    const int b = 2 * pair + part;
    return b < p.B ? (static_cast<int64_t>(b) * p.H + h) * p.L : -1;
  }
  __device__ __forceinline__ const T* in_row(const void* base, int pair, int part) const {
    const int64_t off = row_offset(pair, part);
    return (base == nullptr || off < 0) ? nullptr : static_cast<const T*>(base) + off;
  }
  __device__ __forceinline__ T* out_row(void* base, int pair, int part) const {
    const int64_t off = row_offset(pair, part);
    return (base == nullptr || off < 0) ? nullptr : static_cast<T*>(base) + off;
  }

  template <int W>
  __device__ __forceinline__ void load_gated(float (&x)[W], const LoadSpec& ld, int pair, int part, int pos) const {
    const T* src = in_row(ld.src, pair, part);
    if (src == nullptr || pos >= p.L) {
#pragma unroll
      for (int v = 0; v < W; ++v) x[v] = 0.f;
      return;
    }
    load_row<T, W>(x, src, pos, p.L, p.vec_ok);
    if (const T* mul = in_row(ld.mul, pair, part)) {
      float m[W];
      load_row<T, W>(m, mul, pos, p.L, p.vec_ok);
#pragma unroll
      for (int v = 0; v < W; ++v) x[v] *= m[v];
    }
  }

  template <int W>
  __device__ __forceinline__ void store_gated(const StoreSpec& st, const float (&x)[W], int pair, int part,
                                              int pos) const {
    if (pos >= p.L) return;
    T* out0 = out_row(st.out0, pair, part);
    if (out0 == nullptr) return;
    float v0[W];
#pragma unroll
    for (int v = 0; v < W; ++v) v0[v] = x[v];
    if (const T* mul = in_row(st.mul0, pair, part)) {
      float m[W];
      load_row<T, W>(m, mul, pos, p.L, p.vec_ok);
#pragma unroll
      for (int v = 0; v < W; ++v) v0[v] *= m[v];
    }
    store_row<T, W>(out0, v0, pos, p.L, p.vec_ok);
    if (T* out1 = out_row(st.out1, pair, part)) {
      float m[W], v1[W];
      load_row<T, W>(m, in_row(st.mul1, pair, part), pos, p.L, p.vec_ok);
#pragma unroll
      for (int v = 0; v < W; ++v) v1[v] = x[v] * m[v];
      store_row<T, W>(out1, v1, pos, p.L, p.vec_ok);
    }
  }

  // ---- first stage: plain load (R0 == 1) or radix-R0 DFT fused with the load (R0 > 1) ----
  __device__ void load_forward(const LoadSpec& ld, int pair0) const {
    if constexpr (R0 == 1) {
      const int chunks = N / 8;
      for (int it = threadIdx.x; it < P * 2 * chunks; it += kThreads) {
        const int c = it % chunks, part = (it / chunks) & 1, pair = it / (2 * chunks);
        float x[8];
        load_gated<8>(x, ld, pair0 + pair, part, 8 * c);
        uint4 bits;
        uint32_t* w = reinterpret_cast<uint32_t*>(&bits);
#pragma unroll
        for (int v = 0; v < 4; ++v) w[v] = pack2<T>(x[2 * v], x[2 * v + 1]);
        *reinterpret_cast<uint4*>(plane(pair, part) + swz(8 * c)) = bits;
      }
    } else {
      const int groups = S0 / V;
      const float scale = rsqrtf(static_cast<float>(R0));
      for (int it = threadIdx.x; it < P * groups; it += kThreads) {
        const int c = (it % groups) * V, pair = it / groups;
        float re[R0][V], im[R0][V];
#pragma unroll
        for (int n0 = 0; n0 < R0; ++n0) {
          load_gated<V>(re[n0], ld, pair0 + pair, 0, n0 * S0 + c);
          load_gated<V>(im[n0], ld, pair0 + pair, 1, n0 * S0 + c);
        }
        float out_re[R0][V], out_im[R0][V];
#pragma unroll
        for (int v = 0; v < V; ++v) {
          float xr[R0], xi[R0];
#pragma unroll
          for (int n0 = 0; n0 < R0; ++n0) {
            xr[n0] = re[n0][v];
            xi[n0] = im[n0][v];
          }
          small_dft<R0, false>(xr, xi);
          const float2 w1 = unit_root(c + v, N);  // twiddle W_N^(k0 (c+v)) = w1^k0
          float2 w = make_float2(scale, 0.f);
#pragma unroll
          for (int k0 = 0; k0 < R0; ++k0) {
            const float2 y = cmul(make_float2(xr[k0], xi[k0]), w);
            out_re[k0][v] = y.x;
            out_im[k0][v] = y.y;
            w = cmul(w, w1);
          }
        }
#pragma unroll
        for (int k0 = 0; k0 < R0; ++k0) {
          store_smem(plane(pair, 0) + swz(k0 * S0 + c), out_re[k0]);
          store_smem(plane(pair, 1) + swz(k0 * S0 + c), out_im[k0]);
        }
      }
    }
  }

  __device__ __forceinline__ static void store_smem(T* dst, const float (&x)[V]) {
    typename VecBits<V>::type bits;
    uint32_t* w = reinterpret_cast<uint32_t*>(&bits);
#pragma unroll
    for (int v = 0; v < V / 2; ++v) w[v] = pack2<T>(x[2 * v], x[2 * v + 1]);
    *reinterpret_cast<typename VecBits<V>::type*>(dst) = bits;
  }

  __device__ __forceinline__ static void load_smem(float (&x)[V], const T* src) {
    const typename VecBits<V>::type bits = *reinterpret_cast<const typename VecBits<V>::type*>(src);
    const uint32_t* w = reinterpret_cast<const uint32_t*>(&bits);
#pragma unroll
    for (int v = 0; v < V / 2; ++v) {
      const float2 f = unpack2<T>(w[v]);
      x[2 * v] = f.x;
      x[2 * v + 1] = f.y;
    }
  }

  // ---- last stage: plain store (R0 == 1) or inverse radix-R0 DFT fused with the store ----
  __device__ void store_inverse(const StoreSpec& st, int pair0) const {
    if constexpr (R0 == 1) {
      const int chunks = (p.L + 7) / 8;
      for (int it = threadIdx.x; it < P * 2 * chunks; it += kThreads) {
        const int c = it % chunks, part = (it / chunks) & 1, pair = it / (2 * chunks);
        float x[8];
        load_smem8(x, plane(pair, part) + swz(8 * c));
        store_gated<8>(st, x, pair0 + pair, part, 8 * c);
      }
    } else {
      const int groups = S0 / V;
      const float scale = rsqrtf(static_cast<float>(R0));
      const int rows_needed = (p.L + S0 - 1) / S0;  // output rows n0 with n0*S0 < L
      for (int it = threadIdx.x; it < P * groups; it += kThreads) {
        const int c = (it % groups) * V, pair = it / groups;
        float re[R0][V], im[R0][V];
#pragma unroll
        for (int k0 = 0; k0 < R0; ++k0) {
          load_smem(re[k0], plane(pair, 0) + swz(k0 * S0 + c));
          load_smem(im[k0], plane(pair, 1) + swz(k0 * S0 + c));
        }
#pragma unroll
        for (int v = 0; v < V; ++v) {
          const float2 w1 = unit_root(c + v, N);
          float2 w = make_float2(scale, 0.f);
          float xr[R0], xi[R0];
#pragma unroll
          for (int k0 = 0; k0 < R0; ++k0) {
            const float2 y = cmul_conj(make_float2(re[k0][v], im[k0][v]), w);
            xr[k0] = y.x;
            xi[k0] = y.y;
            w = cmul(w, w1);
          }
          small_dft<R0, true>(xr, xi);
#pragma unroll
          for (int n0 = 0; n0 < R0; ++n0) {
            re[n0][v] = xr[n0];
            im[n0][v] = xi[n0];
          }
        }
#pragma unroll
        for (int n0 = 0; n0 < R0; ++n0) {
          if (n0 < rows_needed) {
            store_gated<V>(st, re[n0], pair0 + pair, 0, n0 * S0 + c);
            store_gated<V>(st, im[n0], pair0 + pair, 1, n0 * S0 + c);
          }
        }
      }
    }
  }

  __device__ __forceinline__ static void load_smem8(float (&x)[8], const T* src) {
    const uint4 bits = *reinterpret_cast<const uint4*>(src);
    const uint32_t* w = reinterpret_cast<const uint32_t*>(&bits);
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const float2 f = unpack2<T>(w[v]);
      x[2 * v] = f.x;
      x[2 * v + 1] = f.y;
    }
  }

  // ---- tensor-core pieces ----
  // B operands of the 16x16 tile at `base` (rows `stride` apart) of both planes of a pair:
  // bx[part][nt][reg].
  __device__ __forceinline__ void load_tile(uint32_t (&bx)[2][2][2], int pair, int base, int stride) const {
    const int m = lane >> 3;
    const int e = base + ((lane & 7) + 8 * (m & 1)) * stride + 8 * (m >> 1);
#pragma unroll
    for (int part = 0; part < 2; ++part) {
      uint32_t r[4];
      ldmatrix_x4_trans(r, plane(pair, part) + swz(e));
      bx[part][0][0] = r[0];
      bx[part][0][1] = r[1];
      bx[part][1][0] = r[2];
      bx[part][1][1] = r[3];
    }
  }

  // d[mt][nt] = A(mt, ks) * bx[ks][nt]: a 16-point DFT along the tile rows (real-block form).
  template <bool kInverse>
  __device__ __forceinline__ void dft_rows(float (&d)[2][2][4], const uint32_t (&bx)[2][2][2]) const {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int r = 0; r < 4; ++r) d[mt][nt][r] = 0.f;
#pragma unroll
        for (int ks = 0; ks < 2; ++ks)
          mma_16816<T>(d[mt][nt], kInverse ? dft.inv(mt, ks) : dft.fwd(mt, ks), bx[ks][nt][0], bx[ks][nt][1]);
      }
  }

  // Store accumulators (rows = digit at `stride`, 8-column tiles) as 16-bit pairs, optionally
  // times twiddles tw[4*nt + r] (conjugated if kConjTw).
  template <bool kConjTw>
  __device__ __forceinline__ void store_tile(float (&d)[2][2][4], int pair, int base, int stride,
                                             const float2* tw) const {
    const int g = lane >> 2, t = lane & 3;
    if (tw != nullptr) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const float4 w = __ldg(reinterpret_cast<const float4*>(tw) + 2 * nt + q);
          const float2 wa = make_float2(w.x, w.y), wb = make_float2(w.z, w.w);
          float2 a = make_float2(d[0][nt][2 * q], d[1][nt][2 * q]);
          float2 b = make_float2(d[0][nt][2 * q + 1], d[1][nt][2 * q + 1]);
          a = kConjTw ? cmul_conj(a, wa) : cmul(a, wa);
          b = kConjTw ? cmul_conj(b, wb) : cmul(b, wb);
          d[0][nt][2 * q] = a.x;
          d[1][nt][2 * q] = a.y;
          d[0][nt][2 * q + 1] = b.x;
          d[1][nt][2 * q + 1] = b.y;
        }
    }
#pragma unroll
    for (int part = 0; part < 2; ++part)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int e = base + (g + 8 * q) * stride + 8 * nt + 2 * t;
          *reinterpret_cast<uint32_t*>(plane(pair, part) + swz(e)) =
              pack2<T>(d[part][nt][2 * q], d[part][nt][2 * q + 1]);
        }
  }

  // The radix-16 tensor-core stage: 16-point DFTs down columns of 16 x 256 blocks.
  template <bool kInverse>
  __device__ void stage16() const {
    for (int it = warp; it < P * R0 * 16; it += kWarps) {
      const int cb = it % 16, k0 = (it / 16) % R0, pair = it / (16 * R0);
      const int base = k0 * S0 + 16 * cb;
      uint32_t bx[2][2][2];
      load_tile(bx, pair, base, kCore);
      float d[2][2][4];
      dft_rows<kInverse>(d, bx);
      store_tile<false>(d, pair, base, kCore, kInverse ? nullptr : p.tw_stage + (cb * 32 + lane) * 8);
    }
  }

  // 8 complex filter-domain values of this lane for a tile: slot s = 4*bh + r.
  __device__ __forceinline__ static void load_slots(float2 (&v)[8], const float2* src) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 f = __ldg(reinterpret_cast<const float4*>(src) + i);
      v[2 * i] = make_float2(f.x, f.y);
      v[2 * i + 1] = make_float2(f.z, f.w);
    }
  }
  __device__ __forceinline__ static void load_slots_rw(float2 (&v)[8], const float2* src) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 f = reinterpret_cast<const float4*>(src)[i];
      v[2 * i] = make_float2(f.x, f.y);
      v[2 * i + 1] = make_float2(f.z, f.w);
    }
  }
  __device__ __forceinline__ static void store_slots(float2* dst, const float2 (&v)[8]) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      reinterpret_cast<float4*>(dst)[i] = make_float4(v[2 * i].x, v[2 * i].y, v[2 * i + 1].x, v[2 * i + 1].y);
  }

  // The 256-point core of one tile: forward FFT, frequency-domain work, inverse FFT.
  template <CoreMode kMode>
  __device__ void core(int pair, int tile, int slot_block) const {
    const int base = tile * kCore;
    uint32_t bx[2][2][2];
    load_tile(bx, pair, base, 16);

    // S1: DFT over the high digit i (data as B operand), then the core twiddle W256^(a j)
    float d1[2][2][4];
    dft_rows<false>(d1, bx);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const float2 v = cmul(make_float2(d1[0][nt][r], d1[1][nt][r]), tw_core[nt][r]);
        d1[0][nt][r] = v.x;
        d1[1][nt][r] = v.y;
      }
    // S2: DFT over j with the data as A operand (accumulator layout == A layout)
    uint32_t a2[2][4];
#pragma unroll
    for (int part = 0; part < 2; ++part) {
      a2[part][0] = pack2<T>(d1[part][0][0], d1[part][0][1]);
      a2[part][1] = pack2<T>(d1[part][0][2], d1[part][0][3]);
      a2[part][2] = pack2<T>(d1[part][1][0], d1[part][1][1]);
      a2[part][3] = pack2<T>(d1[part][1][2], d1[part][1][3]);
    }
    float z[4][4];  // z[2*part_out + bh]
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int r = 0; r < 4; ++r) z[nt][r] = 0.f;
#pragma unroll
      for (int ks = 0; ks < 2; ++ks) {
        const uint32_t(&b)[4] = dft.right(ks, nt >> 1);
        mma_16816<T>(z[nt], a2[ks], b[nt & 1], b[2 + (nt & 1)]);
      }
    }

    // Frequency domain: this lane's 8 spectrum slots (s = 4*bh + r)
    float2 zs[8];
#pragma unroll
    for (int s = 0; s < 8; ++s) zs[s] = make_float2(z[s >> 2][s & 3], z[2 + (s >> 2)][s & 3]);
    const int slot_off = (tile * 32 + lane) * 8;
    const float2* k_slots = p.k_slots + static_cast<int64_t>(h) * N + slot_off;
    float2 kv[8];
    if constexpr (kMode == CoreMode::kConv) {
      load_slots(kv, k_slots);
#pragma unroll
      for (int s = 0; s < 8; ++s) zs[s] = cmul(zs[s], kv[s]);
    } else if constexpr (kMode == CoreMode::kSaveSpectrum || kMode == CoreMode::kSaveSpectrumConv) {
      store_slots(p.x_scratch + static_cast<int64_t>(slot_block) * N + slot_off, zs);
      if constexpr (kMode == CoreMode::kSaveSpectrum) return;
      load_slots(kv, k_slots);
#pragma unroll
      for (int s = 0; s < 8; ++s) zs[s] = cmul(zs[s], kv[s]);
    } else {  // kGradConv: S += conj(X) * DC; DX = DC * conj(K)
      float2 xs[8], acc[8];
      load_slots_rw(xs, p.x_scratch + static_cast<int64_t>(slot_block) * N + slot_off);
      float2* s_ptr = p.s_partial + (static_cast<int64_t>(blockIdx.y) * p.H + h) * P * N +
                      static_cast<int64_t>(pair) * N + slot_off;
      load_slots_rw(acc, s_ptr);
#pragma unroll
      for (int s = 0; s < 8; ++s) {
        const float2 c = cmul_conj(zs[s], xs[s]);
        acc[s].x += c.x;
        acc[s].y += c.y;
      }
      store_slots(s_ptr, acc);
      load_slots(kv, k_slots);
#pragma unroll
      for (int s = 0; s < 8; ++s) zs[s] = cmul_conj(zs[s], kv[s]);
    }
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      z[s >> 2][s & 3] = zs[s].x;
      z[2 + (s >> 2)][s & 3] = zs[s].y;
    }

    // S3: inverse DFT over b; the transposed accumulators are B operands
    uint32_t b3[2][2][2];  // [part][a-half][reg]
#pragma unroll
    for (int part = 0; part < 2; ++part)
#pragma unroll
      for (int ah = 0; ah < 2; ++ah) {
        b3[part][ah][0] = pack2<T>(z[2 * part][2 * ah], z[2 * part][2 * ah + 1]);
        b3[part][ah][1] = pack2<T>(z[2 * part + 1][2 * ah], z[2 * part + 1][2 * ah + 1]);
      }
    float d3[2][2][4];
    dft_rows<true>(d3, b3);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const float2 v = cmul_conj(make_float2(d3[0][nt][r], d3[1][nt][r]), tw_core[nt][r]);
        d3[0][nt][r] = v.x;
        d3[1][nt][r] = v.y;
      }
    // S4: inverse DFT over a, again from transposed accumulators
    uint32_t b4[2][2][2];  // [part][j-half][reg]
#pragma unroll
    for (int part = 0; part < 2; ++part)
#pragma unroll
      for (int jh = 0; jh < 2; ++jh) {
        b4[part][jh][0] = pack2<T>(d3[part][0][2 * jh], d3[part][0][2 * jh + 1]);
        b4[part][jh][1] = pack2<T>(d3[part][1][2 * jh], d3[part][1][2 * jh + 1]);
      }
    float d4[2][2][4];
    dft_rows<true>(d4, b4);
    // the radix-16 stage's inverse twiddle is applied here, before rounding to 16 bits
    store_tile<true>(d4, pair, base, 16, stage1 ? p.tw_core + ((tile % 16) * 32 + lane) * 8 : nullptr);
  }

  template <CoreMode kMode>
  __device__ void core_all(int slot_block0) const {
    for (int it = warp; it < P * tiles; it += kWarps) {
      const int tile = it % tiles, pair = it / tiles;
      core<kMode>(pair, tile, slot_block0 + pair);
    }
  }

  // One FFT -> (frequency-domain work) -> inverse FFT pass over the P pairs starting at pair0.
  template <CoreMode kMode>
  __device__ void pass(const LoadSpec& ld, const StoreSpec& st, int pair0) const {
    load_forward(ld, pair0);
    __syncthreads();
    if (stage1) {
      stage16<false>();
      __syncthreads();
    }
    const int slot_block0 = (blockIdx.y * gridDim.x + blockIdx.x) * P;
    core_all<kMode>(slot_block0);
    __syncthreads();
    if constexpr (kMode == CoreMode::kSaveSpectrum) return;
    if (stage1) {
      stage16<true>();
      __syncthreads();
    }
    store_inverse(st, pair0);
    __syncthreads();
  }
};

template <typename T, int R0>
__global__ void __launch_bounds__(kThreads) fftconv_forward_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Block<T, R0> blk(p, reinterpret_cast<T*>(smem_raw));
  const int n_steps = ((p.B + 1) / 2 + p.pairs_per_step - 1) / p.pairs_per_step;
  const LoadSpec ld{p.u, p.pre};
  const StoreSpec st{p.y, p.post, nullptr, nullptr};
  for (int step = blockIdx.y; step < n_steps; step += gridDim.y)
    blk.template pass<CoreMode::kConv>(ld, st, step * p.pairs_per_step);
}

template <typename T, int R0>
__global__ void __launch_bounds__(kThreads) fftconv_backward_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Block<T, R0> blk(p, reinterpret_cast<T*>(smem_raw));
  const int n_steps = ((p.B + 1) / 2 + p.pairs_per_step - 1) / p.pairs_per_step;
  // pass 1: X = F(pre*u) (kept per block); with a post gate also dpost = dy * conv(pre*u)
  const LoadSpec ld_x{p.u, p.pre};
  const StoreSpec st_dpost{p.dpost, p.dy, nullptr, nullptr};
  // pass 2: DC = F(post*dy); S += conj(X) DC; du = pre * corr(dc), dpre = u * corr(dc)
  const LoadSpec ld_dc{p.dy, p.post};
  const StoreSpec st_du{p.du, p.pre, p.dpre, p.u};
  for (int step = blockIdx.y; step < n_steps; step += gridDim.y) {
    const int pair0 = step * p.pairs_per_step;
    if (p.post != nullptr)
      blk.template pass<CoreMode::kSaveSpectrumConv>(ld_x, st_dpost, pair0);
    else
      blk.template pass<CoreMode::kSaveSpectrum>(ld_x, st_dpost, pair0);
    blk.template pass<CoreMode::kGradConv>(ld_dc, st_du, pair0);
  }
}

}  // namespace longconv::fftconv
