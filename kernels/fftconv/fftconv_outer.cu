// Outer passes of the long-sequence FFT convolution (N = M1 * M2 > 32K points).
//
// The N-point FFT of z = x_b + i x_{b+1} (two batch rows, as in the fused kernel) is split as
// n = n1*M2 + n2, k = k1 + M1*k2 (four-step FFT):
//   outer forward:  A[k1][n2] = W_N^(n2 k1) * DFT_M1 over n1 of z[n1*M2 + n2]      (this file)
//   inner:          C[k1]     = IFFT_M2( FFT_M2(A[k1]) * K[k1 + M1*k2] )           (fused kernel)
//   outer inverse:  y[n1*M2 + n2] = IDFT_M1 over k1 of W_N^(-n2 k1) C[k1][n2]       (this file)
// Rows A[k1] are the inner kernel's (batch, channel) rows: the real and imaginary parts of pair
// `pl` are its batch rows 2*pl and 2*pl+1, channel (h, k1) is row h*M1 + k1. Both outer DFTs
// are scaled by 1/sqrt(M1) (unitary, like every stage of the inner kernel), so the intermediate
// keeps the input's magnitude and is stored in bf16.
//
// The M1-point DFT (M1 = Ra*Rb <= 256) of a column is itself two register stages with one
// exchange through shared memory: n1 = Rb*a + b, k1 = ka + Ra*kb. A block owns C consecutive
// columns n2 of one pair and one channel; threads take consecutive columns, so every global
// access of a warp is a contiguous run.
#include "../common/device.cuh"
#include "fftconv.h"

namespace longconv::fftconv {

namespace {

constexpr int kOuterThreads = 256;
constexpr int kTileComplex = 4096;  // M1 * C complex values per block (48 KB of shared memory)

// Columns per block; kOuterThreads is a multiple of it and Ra * C >= kOuterThreads.
template <int M1>
__host__ __device__ constexpr int columns_per_block() { return M1 >= 32 ? kTileComplex / M1 : 256; }

// exp(-2 pi i e / M) (or its conjugate) for 0 <= e < M, the argument reduced to [-pi, pi].
template <bool kConj>
__device__ __forceinline__ float2 root(int e, int M) {
  if (2 * e > M) e -= M;
  float s, c;
  __sincosf(-6.283185307179586f * static_cast<float>(e) / static_cast<float>(M), &s, &c);
  return make_float2(c, kConj ? -s : s);
}

__device__ __forceinline__ void twiddle(float& re, float& im, float2 w) {
  const float r = re * w.x - im * w.y;
  im = re * w.y + im * w.x;
  re = r;
}

struct OuterIndex {
  int n2, col0, hl, pl, h, b0, b1;
  int64_t row0, row1;  // element offsets of rows (b0, h), (b1, h); -1 past the batch

  __device__ OuterIndex(const OuterParams& p, int C) {
    col0 = blockIdx.x * C;
    hl = blockIdx.y;
    pl = blockIdx.z;
    h = p.h0 + hl;
    b0 = 2 * (p.pair0 + pl);
    b1 = b0 + 1;
    row0 = (static_cast<int64_t>(b0) * p.H + h) * p.L;
    row1 = b1 < p.B ? (static_cast<int64_t>(b1) * p.H + h) * p.L : -1;
  }
  // Element offset of inner-layout row (part, k1).
  __device__ int64_t inner_row(const OuterParams& p, int part, int k1) const {
    return (static_cast<int64_t>(2 * pl + part) * p.hs * p.M1 + static_cast<int64_t>(hl) * p.M1 + k1) * p.M2;
  }
};

// The block's bf16 inner rows in shared memory, after the float2 tile: [part][k1][c].
__device__ __forceinline__ __nv_bfloat16* staging_rows(float2* tile, int tile_complex) {
  return reinterpret_cast<__nv_bfloat16*>(tile + tile_complex);
}

// Copies the block's 2*M1 inner row segments of C bf16 between shared memory and the inner
// tensor with 16-byte accesses (row starts are multiples of 8 elements: M2 % 8 == 0, C % 8 == 0).
template <int M1, int C, bool kLoad>
__device__ __forceinline__ void copy_rows(__nv_bfloat16* rows, __nv_bfloat16* inner, const OuterIndex& ix,
                                          const OuterParams& p) {
  constexpr int kChunks = C / 8;
  for (int i = threadIdx.x; i < 2 * M1 * kChunks; i += kOuterThreads) {
    const int ch = i % kChunks, r = i / kChunks;
    uint4* g = reinterpret_cast<uint4*>(inner + ix.inner_row(p, r / M1, r % M1) + ix.col0 + 8 * ch);
    uint4* sm = reinterpret_cast<uint4*>(rows + r * C + 8 * ch);
    if (kLoad)
      *sm = *g;
    else
      *g = *sm;
  }
}

// Sequence (B, H, L) of T -> inner layout (2*pairs, hs*M1, M2) of bf16.
template <typename T, int Ra, int Rb>
__global__ void __launch_bounds__(kOuterThreads, 4) outer_forward_kernel(OuterParams p) {
  constexpr int M1 = Ra * Rb, C = columns_per_block<M1>();
  extern __shared__ float2 tile[];  // [ka][b][c]
  const OuterIndex ix(p, C);
  const T* x = static_cast<const T*>(p.x);
  const T* gate = static_cast<const T*>(p.gate);
  const float scale = rsqrtf(static_cast<float>(M1));
  bool bad0 = false, bad1 = false;

  // Stage 1: DFT over a of x[(Rb*a + b)*M2 + n2] for each (b, c), times W_M1^(b ka).
  for (int i = threadIdx.x; i < Rb * C; i += kOuterThreads) {
    const int c = i % C, b = i / C, n2 = ix.col0 + c;
    float re[Ra], im[Ra];
#pragma unroll
    for (int a = 0; a < Ra; ++a) {
      const int64_t n = static_cast<int64_t>(Rb * a + b) * p.M2 + n2;
      re[a] = im[a] = 0.f;
      if (n < p.L) {  // implicit zero padding: positions >= L are never read
        float v0 = to_float(x[ix.row0 + n]);
        if (gate) v0 *= to_float(gate[ix.row0 + n]);
        if (!isfinite(v0)) bad0 = true, v0 = 0.f;
        re[a] = v0;
        if (ix.row1 >= 0) {
          float v1 = to_float(x[ix.row1 + n]);
          if (gate) v1 *= to_float(gate[ix.row1 + n]);
          if (!isfinite(v1)) bad1 = true, v1 = 0.f;
          im[a] = v1;
        }
      }
    }
    small_dft<Ra, false>(re, im);
    // W_M1^(b ka) = step^ka: one sincos per item, not per element
    const float2 step = root<false>(b, M1);
    float2 w = make_float2(1.f, 0.f);
#pragma unroll
    for (int ka = 0; ka < Ra; ++ka) {
      if (Rb > 1 && ka > 0) {
        w = cmul(w, step);
        twiddle(re[ka], im[ka], w);
      }
      tile[(ka * Rb + b) * C + c] = make_float2(re[ka], im[ka]);
    }
  }
  // A non-finite input zeroes its element and marks the row; the inverse pass writes the row as
  // NaN. The partner row of the pair stays exact.
  if (bad0) p.bad_rows[ix.b0 * p.H + ix.h] = 1;
  if (bad1) p.bad_rows[ix.b1 * p.H + ix.h] = 1;
  __syncthreads();

  // Stage 2: DFT over b for each (ka, c) -> k1 = ka + Ra*kb, times W_N^(n2 k1), as bf16 rows in
  // shared memory, then stored with 16-byte accesses.
  __nv_bfloat16* rows = staging_rows(tile, M1 * C);
  // A thread keeps its column: items ka = ka0, ka0 + kStride, ..., so W_N^(n2 k1) with
  // k1 = ka + Ra*kb is W_N^(n2 ka0) * (W_N^(n2 kStride))^j * (W_N^(n2 Ra))^kb: three sincos per thread.
  constexpr int kStride = kOuterThreads / C;
  const int c = threadIdx.x % C, n2 = ix.col0 + c;
  const float2 step_j = root<false>(n2 * kStride, p.N), step = root<false>(n2 * Ra, p.N);
  float2 w_ka = root<false>(n2 * (threadIdx.x / C), p.N);
  for (int ka = threadIdx.x / C; ka < Ra; ka += kStride, w_ka = cmul(w_ka, step_j)) {
    float re[Rb], im[Rb];
#pragma unroll
    for (int b = 0; b < Rb; ++b) {
      const float2 v = tile[(ka * Rb + b) * C + c];
      re[b] = v.x;
      im[b] = v.y;
    }
    small_dft<Rb, false>(re, im);
    float2 w = w_ka;
#pragma unroll
    for (int kb = 0; kb < Rb; ++kb) {
      const int k1 = ka + Ra * kb;
      float vr = re[kb] * scale, vi = im[kb] * scale;
      if (kb > 0) w = cmul(w, step);
      twiddle(vr, vi, w);
      rows[k1 * C + c] = __float2bfloat16_rn(vr);
      rows[(M1 + k1) * C + c] = __float2bfloat16_rn(vi);
    }
  }
  __syncthreads();
  copy_rows<M1, C, false>(rows, static_cast<__nv_bfloat16*>(p.out), ix, p);
}

// Inner layout (2*pairs, hs*M1, M2) of bf16 -> sequence (B, H, L) of T (positions < L only).
template <typename T, int Ra, int Rb>
__global__ void __launch_bounds__(kOuterThreads, 4) outer_inverse_kernel(OuterParams p) {
  constexpr int M1 = Ra * Rb, C = columns_per_block<M1>();
  extern __shared__ float2 tile[];  // [b][ka][c]
  const OuterIndex ix(p, C);
  const float scale = rsqrtf(static_cast<float>(M1));
  __nv_bfloat16* rows = staging_rows(tile, M1 * C);
  copy_rows<M1, C, true>(rows, const_cast<__nv_bfloat16*>(static_cast<const __nv_bfloat16*>(p.x)), ix, p);
  __syncthreads();

  // Stage 1: inverse DFT over kb of W_N^(-n2 k1) C[ka + Ra*kb][n2] for each (ka, c), times W_M1^(-b ka).
  constexpr int kStride = kOuterThreads / C;  // as in the forward's stage 2
  const int c = threadIdx.x % C, n2 = ix.col0 + c;
  const float2 step_j = root<true>(n2 * kStride, p.N), step = root<true>(n2 * Ra, p.N);
  float2 w_ka = root<true>(n2 * (threadIdx.x / C), p.N);
  for (int ka = threadIdx.x / C; ka < Ra; ka += kStride, w_ka = cmul(w_ka, step_j)) {
    float re[Rb], im[Rb];
    float2 w = w_ka;
#pragma unroll
    for (int kb = 0; kb < Rb; ++kb) {
      const int k1 = ka + Ra * kb;
      re[kb] = __bfloat162float(rows[k1 * C + c]);
      im[kb] = __bfloat162float(rows[(M1 + k1) * C + c]);
      if (kb > 0) w = cmul(w, step);
      twiddle(re[kb], im[kb], w);
    }
    small_dft<Rb, true>(re, im);
    const float2 step1 = root<true>(ka, M1);
    float2 w1 = make_float2(1.f, 0.f);
#pragma unroll
    for (int b = 0; b < Rb; ++b) {
      if (Rb > 1 && b > 0) {
        w1 = cmul(w1, step1);
        twiddle(re[b], im[b], w1);
      }
      tile[(b * Ra + ka) * C + c] = make_float2(re[b], im[b]);
    }
  }
  __syncthreads();

  // Stage 2: inverse DFT over ka for each (b, c) -> n1 = b + Rb*a; y = scale * (re, im) * gate.
  T* y = static_cast<T*>(p.out);
  const T* gate = static_cast<const T*>(p.gate);
  const bool bad0 = p.bad_rows[ix.b0 * p.H + ix.h] != 0;
  const bool bad1 = ix.row1 >= 0 && p.bad_rows[ix.b1 * p.H + ix.h] != 0;
  for (int i = threadIdx.x; i < Rb * C; i += kOuterThreads) {
    const int c = i % C, b = i / C, n2 = ix.col0 + c;
    if (static_cast<int64_t>(b) * p.M2 + n2 >= p.L) continue;  // every output of this column is past L
    float re[Ra], im[Ra];
#pragma unroll
    for (int ka = 0; ka < Ra; ++ka) {
      const float2 v = tile[(b * Ra + ka) * C + c];
      re[ka] = v.x;
      im[ka] = v.y;
    }
    small_dft<Ra, true>(re, im);
#pragma unroll
    for (int a = 0; a < Ra; ++a) {
      const int64_t n = static_cast<int64_t>(b + Rb * a) * p.M2 + n2;
      if (n >= p.L) continue;
      float v0 = bad0 ? __int_as_float(0x7fc00000) : re[a] * scale;
      if (gate) v0 *= to_float(gate[ix.row0 + n]);
      y[ix.row0 + n] = from_float<T>(v0);
      if (ix.row1 >= 0) {
        float v1 = bad1 ? __int_as_float(0x7fc00000) : im[a] * scale;
        if (gate) v1 *= to_float(gate[ix.row1 + n]);
        y[ix.row1 + n] = from_float<T>(v1);
      }
    }
  }
}

template <typename T, int Ra, int Rb>
cudaError_t launch_outer(const OuterParams& p, bool inverse, cudaStream_t stream) {
  constexpr int C = columns_per_block<Ra * Rb>();
  if (p.M2 % C != 0 || p.hs > 65535 || p.pairs > 65535) return cudaErrorInvalidValue;
  const auto kernel = inverse ? outer_inverse_kernel<T, Ra, Rb> : outer_forward_kernel<T, Ra, Rb>;
  // the float2 exchange tile plus the bf16 staging rows: 12 bytes per complex value (48 KB)
  const int smem = Ra * Rb * C * static_cast<int>(sizeof(float2) + 2 * sizeof(__nv_bfloat16));
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  kernel<<<dim3(p.M2 / C, p.hs, p.pairs), kOuterThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

// M1 = Ra * Rb with the first stage as large as possible.
template <typename T>
cudaError_t launch_outer_t(const OuterParams& p, bool inverse, cudaStream_t stream) {
  switch (p.M1) {
    case 2: return launch_outer<T, 2, 1>(p, inverse, stream);
    case 4: return launch_outer<T, 4, 1>(p, inverse, stream);
    case 8: return launch_outer<T, 8, 1>(p, inverse, stream);
    case 16: return launch_outer<T, 16, 1>(p, inverse, stream);
    case 32: return launch_outer<T, 16, 2>(p, inverse, stream);
    case 64: return launch_outer<T, 16, 4>(p, inverse, stream);
    case 128: return launch_outer<T, 16, 8>(p, inverse, stream);
    case 256: return launch_outer<T, 16, 16>(p, inverse, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_outer_pass(const OuterParams& p, DType dtype, bool inverse, cudaStream_t stream) {
  if (p.M1 * static_cast<int64_t>(p.M2) != p.N) return cudaErrorInvalidValue;
  return dtype == DType::kBF16 ? launch_outer_t<__nv_bfloat16>(p, inverse, stream)
                               : launch_outer_t<__half>(p, inverse, stream);
}

}  // namespace longconv::fftconv
