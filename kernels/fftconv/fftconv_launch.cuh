// Launch helpers shared by the forward and backward translation units.
#pragma once

#include <algorithm>

#include "fftconv_kernel.cuh"

namespace longconv::fftconv {

inline int radix0(int N) {  // R0 of N = R0 * R1 * 256 (R1 = 16 once N >= 4096)
  const int outer = N / kCore;
  return outer >= 16 ? outer / 16 : outer;
}

inline int pairs_per_step(int N) { return std::max(1, kWarps * kCore / N); }

// Calls f(kernel) with the kernel instantiated for (dtype, R0 of N).
template <template <typename, int> class KernelOf, typename F>
cudaError_t with_kernel(int N, DType dtype, F&& f) {
  const int r0 = radix0(N);
#define LONGCONV_R0_CASE(R)                                                                  \
  case R:                                                                                    \
    return dtype == DType::kBF16 ? f(KernelOf<__nv_bfloat16, R>::get()) : f(KernelOf<__half, R>::get());
  switch (r0) {
    LONGCONV_R0_CASE(1)
    LONGCONV_R0_CASE(2)
    LONGCONV_R0_CASE(4)
    LONGCONV_R0_CASE(8)
    default:
      return cudaErrorInvalidValue;
  }
#undef LONGCONV_R0_CASE
}

template <typename Kernel>
inline Geometry geometry_of(Kernel kernel, const Params& p, int elem_bytes) {
  Geometry geo{};
  geo.pairs_per_step = pairs_per_step(p.N);
  geo.threads = kThreads;
  geo.smem_bytes = geo.pairs_per_step * 2 * p.N * elem_bytes;
  int device = 0, sms = 1, per_sm = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, geo.smem_bytes);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, geo.smem_bytes);
  const int n_steps = ((p.B + 1) / 2 + geo.pairs_per_step - 1) / geo.pairs_per_step;
  // Enough blocks for two waves; each block owns one channel and strides over batch steps.
  const int target = 2 * sms * std::max(per_sm, 1);
  geo.chunks = std::max(1, std::min(n_steps, (target + p.H - 1) / p.H));
  return geo;
}

template <typename Kernel>
inline cudaError_t launch_with(Kernel kernel, const Params& p, const Geometry& geo, cudaStream_t stream) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, geo.smem_bytes);
  if (err != cudaSuccess) return err;
  Params q = p;
  q.pairs_per_step = geo.pairs_per_step;
  kernel<<<dim3(p.H, geo.chunks), geo.threads, geo.smem_bytes, stream>>>(q);
  return cudaGetLastError();
}

}  // namespace longconv::fftconv
