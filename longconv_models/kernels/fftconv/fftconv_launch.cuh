// Launch helpers shared by the forward and backward translation units.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "fftconv_kernel.cuh"

namespace longconv::fftconv {

__host__ __device__ inline int radix0(int N) {  // R0 of N = R0 * R1 * 256 (R1 = 16 once N >= 4096)
  const int outer = N / kCore;
  return outer >= 16 ? outer / 16 : outer;
}

// Pairs of rows per step: ~8K complex points per step (4 core tiles per warp) for N <= 8K, but
// no more pairs than the batch has.
inline int pairs_per_step(int N, int B) { return std::max(1, std::min(8192 / N, (B + 1) / 2)); }

// Slot q = lane_slots(tile, lane) + 64 (s / 2) + s % 2 of the kernel's spectrum layout -> frequency (see
// ops/fftconv/fused.py slot_frequencies), and back. The low-band order rotates the core's output columns
// by 4 (column c holds the top digit (c - 4) mod 16), so |f| < N/4 is the first 8-column tile.
__host__ __device__ inline int slot_to_freq(int q, int N, bool low_band = false) {
  const int r0 = radix0(N), r1 = N / (kCore * r0);
  const int tile = q / kCore, w = q % kCore;
  const int lane = (w % kSlotPairStride) / 2, s = 2 * (w / kSlotPairStride) + w % 2;  // lane_slots()
  const int g = lane / 4, t = lane % 4, bh = s / 4, r = s % 4;
  const int row = g + 8 * (r / 2), col = 8 * bh + 2 * t + r % 2;
  const int digit = low_band ? (col + 12) % 16 : col;
  return tile / r1 + r0 * (tile % r1) + r0 * r1 * (row + 16 * digit);
}
__host__ __device__ inline int freq_to_slot(int f, int N) {
  const int r0 = radix0(N), r1 = N / (kCore * r0);
  const int k0 = f % r0, k1 = (f / r0) % r1, kc = f / (r0 * r1);
  const int row = kc % 16, col = kc / 16;
  const int g = row % 8, t = (col % 8) / 2, s = 4 * (col / 8) + 2 * (row / 8) + col % 2;
  return lane_slots(k0 * r1 + k1, 4 * g + t) + kSlotPairStride * (s / 2) + s % 2;
}

// Calls f(kernel) with the kernel instantiated for (element type, R0 of N); kBf16Only: the
// variants that exist for bf16 only.
template <template <typename, int> class KernelOf, bool kBf16Only = false, typename F>
cudaError_t with_kernel(int N, DType dtype, F&& f) {
  return dispatch<1, 2, 4, 8>(radix0(N), [&](auto r0) {
    const auto by_type = [&](auto d) { return f(KernelOf<element_t<decltype(d)::value>, decltype(r0)::value>::get()); };
    if constexpr (kBf16Only)
      return dispatch<DType::kBF16>(dtype, by_type);
    else
      return dispatch<DType::kBF16, DType::kFP16>(dtype, by_type);
  });
}

template <typename Kernel>
Geometry compute_geometry(Kernel kernel, const Params& p, int elem_bytes, int sms, int max_smem) {
  Geometry geo{};
  geo.pairs_per_step = pairs_per_step(p.N, p.B);
  geo.threads = kThreads;
  // Stage (prefetch) the next pass's rows when it fits and costs no resident blocks: at 16K the
  // staging buffer would halve the blocks per SM, which hides latency better than prefetching.
  const int staged = SmemLayout(p.N, geo.pairs_per_step, p.L, true, elem_bytes).total();
  const int plain = SmemLayout(p.N, geo.pairs_per_step, p.L, false, elem_bytes).total();
  const auto blocks_per_sm = [&](int smem) {
    int n = 0;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem);
    return n;
  };
  const int per_sm_plain = blocks_per_sm(plain);
  geo.use_staging = p.vec_ok && staged <= max_smem && blocks_per_sm(staged) >= per_sm_plain;
  geo.smem_bytes = geo.use_staging ? staged : plain;
  const int per_sm = geo.use_staging ? per_sm_plain : blocks_per_sm(plain);
  const int n_steps = ((p.B + 1) / 2 + geo.pairs_per_step - 1) / geo.pairs_per_step;
  // Enough blocks for two waves; each block owns one channel and strides over batch steps.
  const int target = 2 * sms * std::max(per_sm, 1);
  geo.chunks = std::max(1, std::min(n_steps, (target + p.H - 1) / p.H));
  return geo;
}

// The launch geometry, cached per (device, kernel, shape): the occupancy queries and attribute
// calls behind it cost more host time than a small launch itself.
template <typename Kernel>
inline Geometry geometry_of(Kernel kernel, const Params& p, int elem_bytes) {
  using Key = std::tuple<int, const void*, int, int, int, int, bool, int>;
  static std::mutex mutex;
  static std::map<Key, Geometry> cache;
  int device = 0;
  cudaGetDevice(&device);
  const Key key{device, reinterpret_cast<const void*>(kernel), p.N, p.B, p.H, p.L, p.vec_ok, elem_bytes};
  std::lock_guard<std::mutex> lock(mutex);
  const auto hit = cache.find(key);
  if (hit != cache.end()) return hit->second;
  int sms = 0, max_smem = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const Geometry geo = compute_geometry(kernel, p, elem_bytes, sms, max_smem);
  // the occupancy queries above changed the kernel's shared-memory limit: raise it to the
  // device maximum once, so that every cached geometry can launch without another call
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
  if (cache.size() > 4096) cache.clear();
  cache.emplace(key, geo);
  return geo;
}

template <typename Kernel>
inline cudaError_t launch_with(Kernel kernel, const Params& p, const Geometry& geo, cudaStream_t stream) {
  Params q = p;  // (the shared-memory limit was raised by geometry_of)
  q.pairs_per_step = geo.pairs_per_step;
  q.use_staging = geo.use_staging;
  kernel<<<dim3(p.H, geo.chunks), geo.threads, geo.smem_bytes, stream>>>(q);
  return cudaGetLastError();
}

}  // namespace longconv::fftconv
