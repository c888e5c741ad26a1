// fp32 complex FFT of M <= 4096 points in shared memory, for the filter transforms at the fused
// sizes (filter_to_slots: forward; the taps' gradient in the backward: inverse). Stockham autosort
// passes (natural order in and out, ping-pong between two buffers): radix 2, 4 or 8 first, then
// radix 16, each a register DFT, so log2(M) radix-2 stages take at most 4 barriers. T threads
// (index t) of a block work on one transform; the whole block takes part in the barriers.
// `twiddle` holds W_N^j = exp(-2 pi i j / N) for j < N/2, N = 2M.
#pragma once

#include <algorithm>

#include "../common/device.cuh"
#include "fftconv.h"

namespace longconv::fftconv {

constexpr int kStockhamMaxM = kFilterTransformMaxFFTSize / 2;  // 64 KB of ping-pong buffers per transform

template <int R, bool kInv>
__device__ __forceinline__ void stockham_pass(const float2* src, float2* dst, int M, int Ns, int t, int T,
                                              const float2* __restrict__ twiddle) {
  const int span = M / R, step = 2 * M / (Ns * R);  // W_{Ns R}^(jm r) = W_N^(step jm r)
  for (int j = t; j < span; j += T) {
    const int jm = j & (Ns - 1);
    float re[R], im[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float2 v = src[j + r * span];
      if (r > 0 && jm > 0) {
        const int e = step * jm * r;  // < 2M = N
        const float2 w = e < M ? twiddle[e] : make_float2(-twiddle[e - M].x, -twiddle[e - M].y);
        v = kInv ? cmul_conj(v, w) : cmul(v, w);
      }
      re[r] = v.x;
      im[r] = v.y;
    }
    small_dft<R, kInv>(re, im);
    const int d = (j - jm) * R + jm;
#pragma unroll
    for (int r = 0; r < R; ++r) dst[d + r * Ns] = make_float2(re[r], im[r]);
  }
}

// The unnormalised M-point DFT (kInv: inverse, exp(+2 pi i ...)) of z[0..M); buf: M values of
// scratch. Returns the buffer holding the result (z or buf). `active`: this thread's transform
// exists (idle threads still pass the barriers).
template <bool kInv>
__device__ float2* stockham_fft(float2* z, float2* buf, int M, int t, int T, bool active,
                                const float2* __restrict__ twiddle) {
  const int log2M = __ffs(M) - 1, first = 1 << (log2M % 4);
  int Ns = 1;
  if (first > 1) {
    if (active) {
      if (first == 2) stockham_pass<2, kInv>(z, buf, M, 1, t, T, twiddle);
      else if (first == 4) stockham_pass<4, kInv>(z, buf, M, 1, t, T, twiddle);
      else stockham_pass<8, kInv>(z, buf, M, 1, t, T, twiddle);
    }
    Ns = first;
    float2* tmp = z; z = buf; buf = tmp;
    __syncthreads();
  }
  for (; Ns < M; Ns *= 16) {
    if (active) stockham_pass<16, kInv>(z, buf, M, Ns, t, T, twiddle);
    float2* tmp = z; z = buf; buf = tmp;
    __syncthreads();
  }
  return z;
}

// Launches `kernel(args...)` with one M = N/2-point transform per channel: M/4 threads each,
// several channels per block when M is small (thread t of channel threadIdx.x / (M/4) of block
// blockIdx.x), `values` float2 of shared memory per channel.
template <class Kernel, class... Args>
cudaError_t launch_per_channel_fft(Kernel kernel, int N, int H, int values, cudaStream_t stream, Args... args) {
  const int M = N / 2;
  if (M < 128 || M > kStockhamMaxM) return cudaErrorInvalidValue;
  const int per_channel = M / 4, channels = std::max(1, 128 / per_channel);
  const int smem = channels * values * static_cast<int>(sizeof(float2));  // <= ~64 KB (N = 8192)
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
  }
  kernel<<<(H + channels - 1) / channels, channels * per_channel, smem, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace longconv::fftconv
