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
// A lane's 8 spectrum slots s of a core tile: slot pairs (2i, 2i + 1) at tile * 256 + 64 i + 2 lane
// (ops/fftconv/fused.py LANE_SLOT), so that each of a warp's four accesses to them (16 bytes per lane for
// fp32 slots) reads one contiguous run; lane-contiguous slots would leave half of every sector
// unused and double the L1 traffic of the filter and twiddle loads.
constexpr int kSlotPairStride = 64;
__host__ __device__ constexpr int lane_slots(int tile, int lane) { return tile * kCore + 2 * lane; }

__host__ __device__ constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x / 2); }

// Element offset within a plane -> physical offset: 16-byte chunks XOR-permuted so that ldmatrix
// rows at stride 16 or 256 elements and the accumulator stores are bank-conflict free.
__device__ __forceinline__ int swz(int e) {
  int c = e >> 3;
  c ^= ((c >> 3) & 1) ^ ((c >> 5) & 7);
  return (c << 3) | (e & 7);
}

// The scale c of the DFT fragments (kBf16DftScale in fftconv.h). Each tensor-core DFT multiplies
// by c; the core twiddles carry 1/c (undoing S1 and S3), and one constant on the frequency-domain
// product undoes S2, S4 and the radix-16 stage's two DFTs (Block::freq_comp).
template <typename T>
__host__ __device__ constexpr float dft_scale() {
  return std::is_same<T, __nv_bfloat16>::value ? kBf16DftScale : 1.f;
}

// The unitary 16-point DFT times c, c F[a][i] = c exp(-2 pi i a i / 16) / 4, as A fragments of its
// real part, imaginary part and negated imaginary part. F is symmetric, so the same registers also
// serve as B fragments (n-tile h: registers {h, 2+h}).
template <typename T>
struct Dft16 {
  uint32_t fr[4], fi[4], nfi[4];

  __device__ void init(int lane) {
    const int g = lane >> 2, t = lane & 3;
    constexpr float q = 0.25f * dft_scale<T>();
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
      const float2 w0 = unit_root(row * col % 16, 16);
      const float2 w1 = unit_root(row * (col + 1) % 16, 16);
      fr[r] = pack2<T>(q * w0.x, q * w1.x);
      fi[r] = pack2<T>(q * w0.y, q * w1.y);
      nfi[r] = pack2<T>(-q * w0.y, -q * w1.y);
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

// What the core does in the frequency domain.
// kConvLowBand: the forward conv of a low-band filter (Params::lowband_dft).
enum class CoreMode { kConv, kConvLowBand, kSaveSpectrum, kSaveSpectrumConv, kGradConv };

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

// DFT fragments of the low-band core (see Params::lowband_dft), per lane: B' = F[:, perm] as the
// B operand of the last forward stage's one n-tile (real, imaginary, negated imaginary; two
// k-halves each) and A' = F[:, perm] as the k = 8 A operand of the first inverse stage, with
// perm = (12, 13, 14, 15, 0, 1, 2, 3): the columns of the low band |f| < N/4.
struct LowBandDft {
  uint32_t br[2], bi[2], bni[2], ar[2], ai[2], ani[2];
  __device__ __forceinline__ void load(const uint32_t* table, int lane) {
    const uint4* src = reinterpret_cast<const uint4*>(table + 12 * lane);
    const uint4 a = __ldg(src), b = __ldg(src + 1), c = __ldg(src + 2);
    br[0] = a.x, br[1] = a.y, bi[0] = a.z, bi[1] = a.w;
    bni[0] = b.x, bni[1] = b.y, ar[0] = b.z, ar[1] = b.w;
    ai[0] = c.x, ai[1] = c.y, ani[0] = c.z, ani[1] = c.w;
  }
  // the same block selection as Dft16::right (forward) and Dft16::inv (inverse)
  __device__ __forceinline__ const uint32_t (&right(int ks, int po) const)[2] {
    return ks == po ? br : (ks == 0 ? bi : bni);
  }
  __device__ __forceinline__ const uint32_t (&inv(int mt, int ks) const)[2] {
    return mt == ks ? ar : (mt == 0 ? ai : ani);
  }
};

// Shared memory of a block: the complex planes of the P pairs of a step, the staging rows
// (raw inputs of the next pass, fetched with cp.async while the current pass computes), and one
// "non-finite input" flag per row and pass.
struct SmemLayout {
  int planes_bytes, staging_bytes, flags_bytes;
  __host__ __device__ SmemLayout(int N, int P, int L, bool staging, int elem_bytes)
      : planes_bytes(P * 2 * N * elem_bytes),
        staging_bytes(staging ? P * 2 * 2 * padded(L) * elem_bytes : 0),
        flags_bytes(2 * P * 2 * static_cast<int>(sizeof(int))) {}
  __host__ __device__ static int padded(int L) { return (L + 7) / 8 * 8; }
  __host__ __device__ int total() const { return planes_bytes + staging_bytes + flags_bytes; }
};

// Where a forward kernel's filter comes from: fp32 slots (Params::k_slots), bf16 slots
// (Params::k_slots_bf16: the long path's filter rows), or the taps (Params::filter: the kernel's
// prologue writes the slots, then every core reads them back with coherent loads). Separate
// instantiations, so that the plain kernel's code and registers stay its own.
enum class FilterIn { kSlots, kSlotsBf16, kTaps };

template <typename T, int R0, FilterIn kFilter = FilterIn::kSlots>
struct Block {
  static constexpr int V = R0 > 1 ? 16 / R0 : 8;  // elements per row access in the first stage

  const Params& p;
  T* smem;
  T* staging;
  int* flags;  // [pass][pair][part]: the row had a non-finite input in this pass
  const int h, lane, warp;
  const int N, S0, tiles, P, Lpad;
  const int log_tiles;     // log2(N / 256)
  const int log_chunks;    // log2(N / 8): 16-byte chunks of a plane
  const int log_lchunks;   // ceil(log2(ceil(L / 8))): chunks of a row, rounded up to a power of two
  const int64_t HL, hL;    // H * L and h * L: row (b, h) starts at b * HL + hL
  int tile_lds, tile_sts[2][2];  // this lane's swizzled ldmatrix / store offsets within a core tile
  const bool stage1;  // the radix-16 tensor-core stage (N >= 4096)
  // 1 / c^(tensor-core DFTs not undone by a twiddle): forward spectra (S2, radix-16 stage) and
  // the frequency-domain product (those of the forward and of the inverse: S4, radix-16 stage)
  const float spectrum_comp, freq_comp;
  Dft16<T> dft;
  float2 tw_core[2][4];  // W256^(row*col) / c at the accumulator positions of this lane

  // row: the channel (filter row) this block works on (default: blockIdx.x)
  __device__ Block(const Params& params, unsigned char* shared, int row = -1)
      : p(params),
        h(row < 0 ? static_cast<int>(blockIdx.x) : row),
        lane(threadIdx.x & 31),
        warp(threadIdx.x >> 5),
        N(params.N),
        S0(params.N / R0),
        tiles(params.N / kCore),
        P(params.pairs_per_step),
        Lpad(SmemLayout::padded(params.L)),
        log_tiles(ilog2(params.N / kCore)),
        log_chunks(ilog2(params.N / 8)),
        log_lchunks(ilog2(2 * ((params.L + 7) / 8) - 1)),
        HL(static_cast<int64_t>(params.H) * params.L),
        hL(static_cast<int64_t>(h) * params.L),
        stage1(params.N / (kCore * R0) == 16),
        spectrum_comp(stage1 ? 1.f / (dft_scale<T>() * dft_scale<T>()) : 1.f / dft_scale<T>()),
        freq_comp(spectrum_comp * spectrum_comp) {
    const SmemLayout lay(N, P, p.L, p.use_staging, sizeof(T));
    smem = reinterpret_cast<T*>(shared);
    staging = reinterpret_cast<T*>(shared + lay.planes_bytes);
    flags = reinterpret_cast<int*>(shared + lay.planes_bytes + lay.staging_bytes);
    dft.init(lane);
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        tw_core[nt][r] = scale2(unit_root((g + 8 * (r >> 1)) * (8 * nt + 2 * t + (r & 1)), kCore), 1.f / dft_scale<T>());
    // Within a core tile (256 elements = 32 chunks at tile*256), swz(tile*256 + e) =
    // tile*256 + (swz(e) ^ ((tile & 7) << 3)): precompute swz(e) for this lane's accesses.
    const int m = lane >> 3;
    tile_lds = swz(((lane & 7) + 8 * (m & 1)) * 16 + 8 * (m >> 1));
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int q = 0; q < 2; ++q) tile_sts[nt][q] = swz((g + 8 * q) * 16 + 8 * nt + 2 * t);
  }

  // Physical offset of a precomputed in-tile offset `local` (swizzled) in core tile `tile`.
  __device__ __forceinline__ static int in_tile(int tile, int local) { return tile * kCore + (local ^ ((tile & 7) << 3)); }

  __device__ __forceinline__ T* plane(int pair, int part) const { return smem + (2 * pair + part) * N; }
  __device__ __forceinline__ int& flag(int pass, int pair, int part) const { return flags[(pass * P + pair) * 2 + part]; }

  // Offset of row (b = 2*pair + part, h) of a (B, H, L) tensor, or -1 past the batch.
  __device__ __forceinline__ int64_t row_offset(int pair, int part) const {
    const int b = 2 * pair + part;
    return b < p.B ? b * HL + hL : -1;
  }
  __device__ __forceinline__ const T* in_row(const void* base, int64_t off) const {
    return (base == nullptr || off < 0) ? nullptr : static_cast<const T*>(base) + off;
  }
  // Staged copy of the pass input (which = 0: src, 1: mul) of a row of the current step.
  __device__ __forceinline__ T* staged_row(int local_pair, int part, int which) const {
    return staging + ((local_pair * 2 + part) * 2 + which) * Lpad;
  }

  // Issue the copies of a pass's input rows into the staging buffer (needs vec_ok rows).
  __device__ void prefetch(const LoadSpec& ld, int pair0) const {
    const int chunks = p.L / 8;  // vec_ok implies L % 8 == 0
    for (int it = threadIdx.x; it < (P * 4) << log_lchunks; it += kThreads) {
      const int c = it & ((1 << log_lchunks) - 1);
      if (c >= chunks) continue;
      const int which = (it >> log_lchunks) & 1, part = (it >> (log_lchunks + 1)) & 1, pair = it >> (log_lchunks + 2);
      const T* src = in_row(which ? ld.mul : ld.src, row_offset(pair0 + pair, part));
      if (src != nullptr) cp_async16(staged_row(pair, part, which) + 8 * c, src + 8 * c);
    }
    cp_async_commit();
  }

  // x[0..W) = src * mul at row positions [pos, pos + W) (zero past L or the batch). Non-finite
  // values are zeroed and flag the row: the two rows of a pair share one FFT, so a NaN would
  // otherwise leak into the partner row; the flagged row's outputs are written as NaN instead.
  template <int W>
  __device__ __forceinline__ void load_gated(float (&x)[W], const LoadSpec& ld, int local_pair, int pair0, int part,
                                             int pos, int pass) const {
#pragma unroll
    for (int v = 0; v < W; ++v) x[v] = 0.f;
    const int64_t off = row_offset(pair0 + local_pair, part);
    if (pos >= p.L || off < 0) return;
    if (p.use_staging) {
      load_smem_vec<W>(x, staged_row(local_pair, part, 0) + pos);
      if (ld.mul != nullptr) {
        float m[W];
        load_smem_vec<W>(m, staged_row(local_pair, part, 1) + pos);
#pragma unroll
        for (int v = 0; v < W; ++v) x[v] *= m[v];
      }
    } else {
      load_row<T, W>(x, static_cast<const T*>(ld.src) + off, pos, p.L, p.vec_ok);
      if (ld.mul != nullptr) {
        float m[W];
        load_row<T, W>(m, static_cast<const T*>(ld.mul) + off, pos, p.L, p.vec_ok);
#pragma unroll
        for (int v = 0; v < W; ++v) x[v] *= m[v];
      }
    }
    float probe = 0.f;  // NaN iff some x is NaN or infinite (x * 0)
#pragma unroll
    for (int v = 0; v < W; ++v) probe = fmaf(x[v], 0.f, probe);
    if (probe != probe) {
#pragma unroll
      for (int v = 0; v < W; ++v) x[v] = isfinite(x[v]) ? x[v] : 0.f;
      flag(pass, local_pair, part) = 1;
    }
  }

  template <int W>
  __device__ __forceinline__ static void load_smem_vec(float (&x)[W], const T* src) {
    const Vec<T, W> bits = *reinterpret_cast<const Vec<T, W>*>(src);
    const uint32_t* w = reinterpret_cast<const uint32_t*>(&bits);
#pragma unroll
    for (int v = 0; v < W / 2; ++v) {
      const float2 f = unpack2<T>(w[v]);
      x[2 * v] = f.x;
      x[2 * v + 1] = f.y;
    }
  }

  template <int W>
  __device__ __forceinline__ static void store_smem_vec(T* dst, const float (&x)[W]) {
    Vec<T, W> bits;
    uint32_t* w = reinterpret_cast<uint32_t*>(&bits);
#pragma unroll
    for (int v = 0; v < W / 2; ++v) w[v] = pack2<T>(x[2 * v], x[2 * v + 1]);
    *reinterpret_cast<Vec<T, W>*>(dst) = bits;
  }

  template <int W>
  __device__ __forceinline__ void store_gated(const StoreSpec& st, const float (&x)[W], int local_pair, int pair0,
                                              int part, int pos, int pass) const {
    const int64_t off = row_offset(pair0 + local_pair, part);
    if (pos >= p.L || off < 0) return;
    const float nan_or_one = flag(pass, local_pair, part) != 0 ? __int_as_float(0x7fffffff) : 1.f;
    // one scratch row at a time (the backward's gated stores run at the register limit):
    // out1 = v * mul1 first (mul1 is present whenever out1 is), then out0 = v (* mul0)
    float m[W];
    if (st.out1 != nullptr) {
      load_row<T, W>(m, static_cast<const T*>(st.mul1) + off, pos, p.L, p.vec_ok);
#pragma unroll
      for (int v = 0; v < W; ++v) m[v] *= x[v] * nan_or_one;
      store_row<T, W>(static_cast<T*>(st.out1) + off, m, pos, p.L, p.vec_ok);
    }
    if (st.mul0 != nullptr) {
      load_row<T, W>(m, static_cast<const T*>(st.mul0) + off, pos, p.L, p.vec_ok);
    } else {
#pragma unroll
      for (int v = 0; v < W; ++v) m[v] = 1.f;
    }
#pragma unroll
    for (int v = 0; v < W; ++v) m[v] *= x[v] * nan_or_one;
    store_row<T, W>(static_cast<T*>(st.out0) + off, m, pos, p.L, p.vec_ok);
  }

  // ---- first stage: plain load (R0 == 1) or radix-R0 DFT fused with the load (R0 > 1) ----
  __device__ void load_forward(const LoadSpec& ld, int pair0, int pass) const {
    if constexpr (R0 == 1) {
      if (p.use_staging && ld.mul == nullptr) return copy_staged(ld, pair0, pass);
    }
    load_forward_with([&](auto& x, int pair, int part, int pos) { load_gated(x, ld, pair, pair0, part, pos, pass); }, P);
  }

  // R0 == 1, staged rows, no input gate: the 16-bit values go to the planes as they are (a chunk
  // with a non-finite value takes load_gated, which zeroes it and flags the row).
  __device__ void copy_staged(const LoadSpec& ld, int pair0, int pass) const {
    for (int it = threadIdx.x; it < (P * 2) << log_chunks; it += kThreads) {
      const int c = it & ((1 << log_chunks) - 1), part = (it >> log_chunks) & 1, pair = it >> (log_chunks + 1);
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (8 * c < p.L && row_offset(pair0 + pair, part) >= 0) {  // (staging: L % 8 == 0)
        v = *reinterpret_cast<const uint4*>(staged_row(pair, part, 0) + 8 * c);
        if (!all_finite8<T>(v)) {
          float x[8];
          load_gated<8>(x, ld, pair, pair0, part, 8 * c, pass);
          store_smem_vec<8>(plane(pair, part) + swz(8 * c), x);
          continue;
        }
      }
      *reinterpret_cast<uint4*>(plane(pair, part) + swz(8 * c)) = v;
    }
  }

  // The same from any source, for the first `pairs` pairs: load(x, local_pair, part, pos) fills
  // x[0..W) with row positions [pos, pos + W) of the pair's part (zero past the end).
  template <class Load>
  __device__ __forceinline__ void load_forward_with(const Load& load, int pairs) const {
    if constexpr (R0 == 1) {
      for (int it = threadIdx.x; it < (pairs * 2) << log_chunks; it += kThreads) {
        const int c = it & ((1 << log_chunks) - 1), part = (it >> log_chunks) & 1, pair = it >> (log_chunks + 1);
        float x[8];
        load(x, pair, part, 8 * c);
        store_smem_vec<8>(plane(pair, part) + swz(8 * c), x);
      }
    } else {
      const int log_groups = log_chunks + 3 - ilog2(R0 * V);  // log2(S0 / V)
      const float scale = rsqrtf(static_cast<float>(R0));
      for (int it = threadIdx.x; it < pairs << log_groups; it += kThreads) {
        const int c = (it & ((1 << log_groups) - 1)) * V, pair = it >> log_groups;
        float re[R0][V], im[R0][V];
#pragma unroll
        for (int n0 = 0; n0 < R0; ++n0) {
          load(re[n0], pair, 0, n0 * S0 + c);
          load(im[n0], pair, 1, n0 * S0 + c);
        }
#pragma unroll
        for (int v = 0; v < V; ++v) {
          float xr[R0], xi[R0];
#pragma unroll
          for (int n0 = 0; n0 < R0; ++n0) {
            xr[n0] = re[n0][v];
            xi[n0] = im[n0][v];
          }
          small_dft<R0, false>(xr, xi);
          // twiddle W_N^(k0 (c+v)) = w1^k0, times the stage's scale (row 0: the scale alone)
          const float2 w1 = unit_root(c + v, N);
          float2 w = make_float2(w1.x * scale, w1.y * scale);
          re[0][v] = xr[0] * scale;
          im[0][v] = xi[0] * scale;
#pragma unroll
          for (int k0 = 1; k0 < R0; ++k0) {
            const float2 y = cmul(make_float2(xr[k0], xi[k0]), w);
            re[k0][v] = y.x;
            im[k0][v] = y.y;
            if (k0 + 1 < R0) w = cmul(w, w1);
          }
        }
#pragma unroll
        for (int k0 = 0; k0 < R0; ++k0) {
          store_smem_vec<V>(plane(pair, 0) + swz(k0 * S0 + c), re[k0]);
          store_smem_vec<V>(plane(pair, 1) + swz(k0 * S0 + c), im[k0]);
        }
      }
    }
  }

  // ---- last stage: plain store (R0 == 1) or inverse radix-R0 DFT fused with the store ----
  __device__ void store_inverse(const StoreSpec& st, int pair0, int pass) const {
    if constexpr (R0 == 1) {
      const bool plain = p.vec_ok && st.mul0 == nullptr && st.out1 == nullptr;
      for (int it = threadIdx.x; it < (P * 2) << log_lchunks; it += kThreads) {
        const int c = it & ((1 << log_lchunks) - 1), part = (it >> log_lchunks) & 1, pair = it >> (log_lchunks + 1);
        if (8 * c >= p.L) continue;
        const T* src = plane(pair, part) + swz(8 * c);
        if (plain) {  // no gates: the 16-bit values go out as they are (vec_ok: L % 8 == 0)
          const int64_t off = row_offset(pair0 + pair, part);
          if (off >= 0)
            *reinterpret_cast<uint4*>(static_cast<T*>(st.out0) + off + 8 * c) =
                flag(pass, pair, part) != 0 ? nan8<T>() : *reinterpret_cast<const uint4*>(src);
          continue;
        }
        float x[8];
        load_smem_vec<8>(x, src);
        store_gated<8>(st, x, pair, pair0, part, 8 * c, pass);
      }
    } else {
      const int log_groups = log_chunks + 3 - ilog2(R0 * V);  // log2(S0 / V)
      const float scale = rsqrtf(static_cast<float>(R0));
      const int rows_needed = (p.L + S0 - 1) / S0;  // output rows n0 with n0*S0 < L
      for (int it = threadIdx.x; it < P << log_groups; it += kThreads) {
        const int c = (it & ((1 << log_groups) - 1)) * V, pair = it >> log_groups;
        float re[R0][V], im[R0][V];
#pragma unroll
        for (int k0 = 0; k0 < R0; ++k0) {
          load_smem_vec<V>(re[k0], plane(pair, 0) + swz(k0 * S0 + c));
          load_smem_vec<V>(im[k0], plane(pair, 1) + swz(k0 * S0 + c));
        }
#pragma unroll
        for (int v = 0; v < V; ++v) {
          const float2 w1 = unit_root(c + v, N);
          float2 w = make_float2(w1.x * scale, w1.y * scale);
          float xr[R0], xi[R0];
          xr[0] = re[0][v] * scale;
          xi[0] = im[0][v] * scale;
#pragma unroll
          for (int k0 = 1; k0 < R0; ++k0) {
            const float2 y = cmul_conj(make_float2(re[k0][v], im[k0][v]), w);
            xr[k0] = y.x;
            xi[k0] = y.y;
            if (k0 + 1 < R0) w = cmul(w, w1);
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
            store_gated<V>(st, re[n0], pair, pair0, 0, n0 * S0 + c, pass);
            store_gated<V>(st, im[n0], pair, pair0, 1, n0 * S0 + c, pass);
          }
        }
      }
    }
  }

  // ---- tensor-core pieces ----
  // B operands bx[part][nt][reg] of the 16x16 tile of both planes of a pair whose ldmatrix row
  // address for this lane is plane offset `off`.
  __device__ __forceinline__ void load_pair_tile(uint32_t (&bx)[2][2][2], int pair, int off) const {
#pragma unroll
    for (int part = 0; part < 2; ++part) {
      uint32_t r[4];
      ldmatrix_x4_trans(r, plane(pair, part) + off);
      bx[part][0][0] = r[0];
      bx[part][0][1] = r[1];
      bx[part][1][0] = r[2];
      bx[part][1][1] = r[3];
    }
  }
  // Accumulators d[part][nt][2q, 2q+1] as 16-bit pairs at plane offsets off(nt, q) of both planes.
  template <class Offset>
  __device__ __forceinline__ void store_pair_tile(const float (&d)[2][2][4], int pair, const Offset& off) const {
#pragma unroll
    for (int part = 0; part < 2; ++part)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int q = 0; q < 2; ++q)
          *reinterpret_cast<uint32_t*>(plane(pair, part) + off(nt, q)) =
              pack2<T>(d[part][nt][2 * q], d[part][nt][2 * q + 1]);
  }

  // d[mt][nt] = A(mt, ks) * bx[ks][nt]: a 16-point DFT along the tile rows (real-block form).
  // kLowBand (inverse only): only the first k-half of bx is nonzero (a low-band spectrum), so k = 8
  // matmuls with the permuted inverse DFT A' = conj(F)[:, perm] of lb.
  template <bool kInverse, bool kLowBand = false>
  __device__ __forceinline__ void dft_rows(float (&d)[2][2][4], const uint32_t (&bx)[2][2][2],
                                           const LowBandDft* lb = nullptr) const {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int r = 0; r < 4; ++r) d[mt][nt][r] = 0.f;
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {
          if constexpr (kLowBand) {
            const uint32_t(&a)[2] = lb->inv(mt, ks);
            mma_1688<T>(d[mt][nt], a[0], a[1], bx[ks][nt][0]);
          } else {
            mma_16816<T>(d[mt][nt], kInverse ? dft.inv(mt, ks) : dft.fwd(mt, ks), bx[ks][nt][0], bx[ks][nt][1]);
          }
        }
      }
  }

  // The first M of this lane's slots (slot s = 4*nt + r of the accumulator pair (re, im)) from
  // src = a lane_slots() position, through the read-only path.
  template <int M>
  __device__ __forceinline__ static void load_slots(float2 (&v)[M], const float2* src) {
#pragma unroll
    for (int i = 0; i < M / 2; ++i) {
      const float4 f = __ldg(reinterpret_cast<const float4*>(src + kSlotPairStride * i));
      v[2 * i] = make_float2(f.x, f.y);
      v[2 * i + 1] = make_float2(f.z, f.w);
    }
  }
  __device__ __forceinline__ static void load8(float2 (&v)[8], const float2* src) { load_slots(v, src); }
  __device__ __forceinline__ static void load8(float2 (&v)[8], const uint32_t* src) {  // bf16 (re, im) pairs
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint2 w = __ldg(reinterpret_cast<const uint2*>(src + kSlotPairStride * i));
      v[2 * i] = unpack2<__nv_bfloat16>(w.x);
      v[2 * i + 1] = unpack2<__nv_bfloat16>(w.y);
    }
  }
  // the filter's 8 slots of this lane at slot offset `off` of row h (kTaps: written by this
  // kernel's prologue, so coherent loads, not the read-only path)
  __device__ __forceinline__ void load_filter8(float2 (&v)[8], int64_t off) const {
    if constexpr (kFilter == FilterIn::kSlotsBf16)
      load8(v, p.k_slots_bf16 + off);
    else if constexpr (kFilter == FilterIn::kTaps)
      load8_rw(v, p.k_slots + off);
    else
      load8(v, p.k_slots + off);
  }

  // The circular filter of time-domain taps (FilterSource::k, k_rev) as part 0 of pair 0, through
  // the first stage. A non-finite tap is not masked: the whole spectrum of its channel becomes NaN,
  // as with any FFT.
  __device__ void load_taps(const FilterSource& f) const {
    const float* k = f.k + static_cast<int64_t>(h) * f.Lk;
    const float* k_rev = f.k_rev != nullptr ? f.k_rev + static_cast<int64_t>(h) * f.Lr : nullptr;
    load_forward_with(
        [&](auto& x, int, int part, int pos) {
          constexpr int W = sizeof(x) / sizeof(float);
#pragma unroll
          for (int v = 0; v < W; ++v) {
            const int t = pos + v;
            float tap = part == 0 && t < f.Lk ? k[t] : 0.f;
            if (part == 0 && k_rev != nullptr && t >= N - f.Lr) tap += k_rev[N - 1 - t];
            x[v] = tap;
          }
        },
        1);
  }

  // The forward FFT of pair 0 after its first stage: emit(q, zs) per core tile, zs the 8 spectrum
  // values of this lane (slot s at q + 64 (s / 2) + s % 2, q = lane_slots(tile, lane)) times scale,
  // plus bias on the real parts.
  template <class Emit>
  __device__ void forward_spectrum(float scale, float bias, const Emit& emit) const {
    if (stage1) {
      stage16<false>(1);
      __syncthreads();
    }
    for (int tile = warp; tile < tiles; tile += kWarps) {
      float2 zs[8];
      core_forward(zs, 0, tile);
      const float sc = scale * spectrum_comp;
#pragma unroll
      for (int s = 0; s < 8; ++s) zs[s] = make_float2(fmaf(zs[s].x, sc, bias), zs[s].y * sc);
      emit(lane_slots(tile, lane), zs);
    }
  }
  __device__ __forceinline__ static void load8_rw(float2 (&v)[8], const float2* src) {  // not read-only
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 f = *reinterpret_cast<const float4*>(src + kSlotPairStride * i);
      v[2 * i] = make_float2(f.x, f.y);
      v[2 * i + 1] = make_float2(f.z, f.w);
    }
  }
  __device__ __forceinline__ static void store8(uint32_t* dst, const float2 (&v)[8]) {  // as bf16 (re, im) pairs
#pragma unroll
    for (int i = 0; i < 4; ++i)
      *reinterpret_cast<uint2*>(dst + kSlotPairStride * i) = make_uint2(pack2<__nv_bfloat16>(v[2 * i].x, v[2 * i].y),
                                                                      pack2<__nv_bfloat16>(v[2 * i + 1].x, v[2 * i + 1].y));
  }
  __device__ __forceinline__ static void store8(float2* dst, const float2 (&v)[8]) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      *reinterpret_cast<float4*>(dst + kSlotPairStride * i) = make_float4(v[2 * i].x, v[2 * i].y, v[2 * i + 1].x, v[2 * i + 1].y);
  }

  // d[.][nt][r] *= tw[4*nt + r] (complex; conjugated twiddles if kConj), re in d[0], im in d[1].
  template <bool kConj>
  __device__ __forceinline__ static void apply_twiddles(float (&d)[2][2][4], const float2 (&tw)[8]) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const float2 a = make_float2(d[0][nt][r], d[1][nt][r]);
        const float2 y = kConj ? cmul_conj(a, tw[4 * nt + r]) : cmul(a, tw[4 * nt + r]);
        d[0][nt][r] = y.x;
        d[1][nt][r] = y.y;
      }
  }

  // The radix-16 tensor-core stage: 16-point DFTs down columns of 16 x 256 blocks (first `pairs`).
  // A block's 16x16 tile has rows 256 apart at base = k0 * 4096 + 16 cb. The 16-byte chunk bits of
  // the row, the column and the base are disjoint, so swz(base + 256 row + col) =
  // local(row, col) ^ base ^ (bit 2 of cb) << 3: the lane's offsets once, one XOR per access.
  template <bool kInverse>
  __device__ void stage16(int pairs) const {
    const auto local = [](int row, int col) { return (row * kCore + col) ^ ((row & 7) << 3); };
    const int m = lane >> 3, g = lane >> 2, t = lane & 3;
    const int lds = local((lane & 7) + 8 * (m & 1), 8 * (m >> 1));  // ldmatrix row address of this lane
    // accumulator pair (nt, q) at local(g + 8 q, 8 nt + 2 t) = sts ^ q << 11 ^ nt << 3 (free bits)
    const int sts = local(g, 2 * t);
    for (int it = warp; it < pairs * R0 * 16; it += kWarps) {
      const int cb = it % 16, k0 = (it / 16) % R0, pair = it / (16 * R0);
      const int base = (k0 * 16 * kCore + 16 * cb) ^ (((cb >> 2) & 1) << 3);  // (S0 = 4096 here)
      float2 tw[8];
      if (!kInverse) load8(tw, p.tw_stage + lane_slots(cb, lane));  // issued before the matmuls
      uint32_t bx[2][2][2];
      load_pair_tile(bx, pair, lds ^ base);
      float d[2][2][4];
      dft_rows<kInverse>(d, bx);
      if (!kInverse) apply_twiddles<false>(d, tw);
      store_pair_tile(d, pair, [&](int nt, int q) { return sts ^ base ^ (q << 11) ^ (nt << 3); });
    }
  }

  // Core forward: 256-point FFT of the tile at `base` -> this lane's 8 spectrum slots (kLow: the
  // 4 slots of the low band, columns permuted by lb).
  template <bool kLow = false>
  __device__ __forceinline__ void core_forward(float2 (&zs)[8], int pair, int tile, const LowBandDft* lb = nullptr) const {
    uint32_t bx[2][2][2];
    load_pair_tile(bx, pair, in_tile(tile, tile_lds));
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
      if (kLow && (nt & 1)) continue;  // the low band is n-tile 0 of the permuted columns
#pragma unroll
      for (int r = 0; r < 4; ++r) z[nt][r] = 0.f;
#pragma unroll
      for (int ks = 0; ks < 2; ++ks) {
        if constexpr (kLow) {
          const uint32_t(&b)[2] = lb->right(ks, nt >> 1);
          mma_16816<T>(z[nt], a2[ks], b[0], b[1]);
        } else {
          const uint32_t(&b)[4] = dft.right(ks, nt >> 1);
          mma_16816<T>(z[nt], a2[ks], b[nt & 1], b[2 + (nt & 1)]);
        }
      }
    }
#pragma unroll
    for (int s = 0; s < (kLow ? 4 : 8); ++s) zs[s] = make_float2(z[s >> 2][s & 3], z[2 + (s >> 2)][s & 3]);
  }

  // Core inverse: 8 spectrum slots per lane -> inverse 256-point FFT -> 16-bit tile at `base`
  // (times the conjugate radix-16 stage twiddles `tw_epi` when that stage exists).
  template <bool kLow = false>
  __device__ __forceinline__ void core_inverse(const float2 (&zs)[8], int pair, int tile, const float2 (&tw_epi)[8],
                                               const LowBandDft* lb = nullptr) const {
    // S3: inverse DFT over b; the transposed accumulators are B operands (kLow: only the first
    // k-half is nonzero, so k = 8 matmuls with the permuted A')
    uint32_t b3[2][2][2];  // [part][a-half][reg]; slot s = 4*bh + r holds (re, im) of z[bh].r
#pragma unroll
    for (int ah = 0; ah < 2; ++ah)
#pragma unroll
      for (int bh = 0; bh < (kLow ? 1 : 2); ++bh) {
        const float2 lo = zs[4 * bh + 2 * ah], hi = zs[4 * bh + 2 * ah + 1];
        b3[0][ah][bh] = pack2<T>(lo.x, hi.x);
        b3[1][ah][bh] = pack2<T>(lo.y, hi.y);
      }
    float d3[2][2][4];
    dft_rows<true, kLow>(d3, b3, lb);
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
    if (stage1) apply_twiddles<true>(d4, tw_epi);  // the radix-16 stage's inverse twiddle, before rounding
    store_pair_tile(d4, pair, [&](int nt, int q) { return in_tile(tile, tile_sts[nt][q]); });
  }

  // The 256-point core of one tile: forward FFT, frequency-domain work, inverse FFT.
  template <CoreMode kMode>
  __device__ void core(int pair, int tile, bool first_step) const {
    const int slot_off = lane_slots(tile, lane);
    const int64_t block_slot = static_cast<int64_t>(blockIdx.y * gridDim.x + blockIdx.x) * P + pair;
    float2* x_slots = p.x_scratch + block_slot * N + slot_off;
    float2 zs[8], kv[8];
    if constexpr (kMode == CoreMode::kSaveSpectrum) {
      core_forward(zs, pair, tile);
      store8(x_slots, zs);
      return;
    } else {
      // global loads first, so that their latency hides behind the forward matmuls
      load_filter8(kv, static_cast<int64_t>(h) * N + slot_off);
      float2 tw_epi[8];
      if (stage1) load8(tw_epi, p.tw_core + lane_slots(tile % 16, lane));
      if constexpr (kMode == CoreMode::kGradConv) {
        core_forward(zs, pair, tile);
#pragma unroll
        for (int s = 0; s < 8; ++s) zs[s] = scale2(zs[s], freq_comp);  // X is saved uncompensated: conj(X) DC once
        // S += conj(X) DC in this block's accumulator (NaN if a row of the pair was non-finite)
        const bool bad = flag(0, pair, 0) | flag(0, pair, 1) | flag(1, pair, 0) | flag(1, pair, 1);
        float2* s_ptr = p.s_partial + ((static_cast<int64_t>(blockIdx.y) * p.H + h) * P + pair) * N + slot_off;
        // one slot pair (16 bytes) of the accumulator at a time: the backward runs at the register limit
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float4* acc_ptr = reinterpret_cast<float4*>(s_ptr + kSlotPairStride * i);
          const float4 x = *reinterpret_cast<const float4*>(x_slots + kSlotPairStride * i);
          float4 acc = first_step ? make_float4(0.f, 0.f, 0.f, 0.f) : *acc_ptr;
          const float2 nan = make_float2(__int_as_float(0x7fffffff), 0.f);
          const float2 c0 = bad ? nan : cmul_conj(zs[2 * i], make_float2(x.x, x.y));
          const float2 c1 = bad ? nan : cmul_conj(zs[2 * i + 1], make_float2(x.z, x.w));
          *acc_ptr = make_float4(acc.x + c0.x, acc.y + c0.y, acc.z + c1.x, acc.w + c1.y);
        }
#pragma unroll
        for (int s = 0; s < 8; ++s) zs[s] = cmul_conj(zs[s], kv[s]);  // DX = DC * conj(K)
      } else {
        core_forward(zs, pair, tile);
        if constexpr (kMode == CoreMode::kSaveSpectrumConv) store8(x_slots, zs);
#pragma unroll
        for (int s = 0; s < 8; ++s) zs[s] = cmul(zs[s], scale2(kv[s], freq_comp));
      }
      core_inverse(zs, pair, tile, tw_epi);
    }
  }

  // The core of a low-band filter (forward conv): half of the last forward DFT stage, 4 filter
  // slots, k = 8 matmuls in the first inverse stage.
  __device__ void core_low_band(int pair, int tile, const LowBandDft& lb) const {
    const int slot_off = lane_slots(tile, lane);
    float2 kv[4];  // the low band's 4 slots (s < 4) of this lane
    load_slots(kv, p.k_slots + static_cast<int64_t>(h) * N + slot_off);
    float2 tw_epi[8];
    if (stage1) load8(tw_epi, p.tw_core + lane_slots(tile % 16, lane));
    float2 zs[8];
    core_forward<true>(zs, pair, tile, &lb);
#pragma unroll
    for (int s = 0; s < 4; ++s) zs[s] = cmul(zs[s], scale2(kv[s], freq_comp));
    core_inverse<true>(zs, pair, tile, tw_epi, &lb);
  }

  // One FFT -> (frequency-domain work) -> inverse FFT pass over the P pairs starting at pair0.
  // While it computes, the input rows of the next pass (next_ld at next_pair0 >= 0) are fetched.
  template <CoreMode kMode>
  __device__ void pass(const LoadSpec& ld, const StoreSpec& st, int pair0, int pass, const LoadSpec& next_ld,
                       int next_pair0, bool first_step) const {
    if (pass == 0 && threadIdx.x < 4 * P) flags[threadIdx.x] = 0;  // new step: clear both passes' flags
    if (p.use_staging) cp_async_wait_all();
    __syncthreads();
    load_forward(ld, pair0, pass);
    __syncthreads();
    if (p.use_staging && next_pair0 >= 0) prefetch(next_ld, next_pair0);
    if (stage1) {
      stage16<false>(P);
      __syncthreads();
    }
    if constexpr (kMode == CoreMode::kConvLowBand) {
      LowBandDft lb;
      lb.load(p.lowband_dft, lane);
      for (int it = warp; it < P << log_tiles; it += kWarps) core_low_band(it >> log_tiles, it & (tiles - 1), lb);
    } else {
      for (int it = warp; it < P << log_tiles; it += kWarps) core<kMode>(it >> log_tiles, it & (tiles - 1), first_step);
    }
    __syncthreads();
    if constexpr (kMode == CoreMode::kSaveSpectrum) return;
    if (stage1) {
      stage16<true>(P);
      __syncthreads();
    }
    store_inverse(st, pair0, pass);
    __syncthreads();
  }
};

template <typename T, int R0, bool kLowBand, FilterIn kFilter = FilterIn::kSlots>
__global__ void __launch_bounds__(kThreads, 2) fftconv_forward_kernel(const __grid_constant__ Params p) {
  constexpr CoreMode kMode = kLowBand ? CoreMode::kConvLowBand : CoreMode::kConv;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Block<T, R0, kFilter> blk(p, smem_raw);
  const int P = p.pairs_per_step;
  const int n_steps = ((p.B + 1) / 2 + P - 1) / P;
  const LoadSpec ld{p.u, p.pre};
  const StoreSpec st{p.y, p.post, nullptr, nullptr};
  if (p.use_staging && blockIdx.y < n_steps) blk.prefetch(ld, blockIdx.y * P);
  if constexpr (kFilter == FilterIn::kTaps) {
    // taps route: the channel's filter spectrum first, from its taps (no separate launch; every
    // block of the channel writes the same values, then reads its own back)
    blk.load_taps(p.filter);
    __syncthreads();
    const float bias = p.filter.bias != nullptr ? p.filter.bias[blk.h] : 0.f;
    float2* out = p.filter.out + static_cast<int64_t>(blk.h) * p.N;
    blk.forward_spectrum(p.filter.scale, bias, [&](int q, const float2(&zs)[8]) { blk.store8(out + q, zs); });
  }
  for (int step = blockIdx.y; step < n_steps; step += gridDim.y) {
    const int next = step + gridDim.y;
    blk.template pass<kMode>(ld, st, step * P, 0, ld, next < n_steps ? next * P : -1, step == blockIdx.y);
  }
}

template <typename T, int R0>
__global__ void __launch_bounds__(kThreads, 2) fftconv_backward_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Block<T, R0> blk(p, smem_raw);
  const int P = p.pairs_per_step;
  const int n_steps = ((p.B + 1) / 2 + P - 1) / P;
  // pass 0: X = F(pre*u) (kept per block); with a post gate also dpost = dy * conv(pre*u)
  const LoadSpec ld_x{p.u, p.pre};
  const StoreSpec st_dpost{p.dpost, p.dy, nullptr, nullptr};
  // pass 1: DC = F(post*dy); S += conj(X) DC; du = pre * corr(dc), dpre = u * corr(dc)
  const LoadSpec ld_dc{p.dy, p.post};
  const StoreSpec st_du{p.du, p.pre, p.dpre, p.u};
  if (p.use_staging && blockIdx.y < n_steps) blk.prefetch(ld_x, blockIdx.y * P);
  for (int step = blockIdx.y; step < n_steps; step += gridDim.y) {
    const int pair0 = step * P, next = step + gridDim.y;
    const bool first = step == blockIdx.y;
    if (p.post != nullptr)
      blk.template pass<CoreMode::kSaveSpectrumConv>(ld_x, st_dpost, pair0, 0, ld_dc, pair0, first);
    else
      blk.template pass<CoreMode::kSaveSpectrum>(ld_x, st_dpost, pair0, 0, ld_dc, pair0, first);
    blk.template pass<CoreMode::kGradConv>(ld_dc, st_du, pair0, 1, ld_x, next < n_steps ? next * P : -1, first);
  }
}

}  // namespace longconv::fftconv
