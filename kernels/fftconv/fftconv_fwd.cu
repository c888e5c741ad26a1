// Forward instantiations: 2 dtypes x 4 first-stage radices.
#include "fftconv_launch.cuh"

namespace longconv::fftconv {

template <typename T, int R0>
struct ForwardKernel {
  static auto get() { return &fftconv_forward_kernel<T, R0>; }
};

Geometry geometry_forward(const Params& p, DType dtype) {
  Geometry geo{};
  with_kernel<ForwardKernel>(p.N, dtype, [&](auto kernel) {
    geo = geometry_of(kernel, p, 2);
    return cudaSuccess;
  });
  return geo;
}

cudaError_t launch_forward(const Params& p, DType dtype, cudaStream_t stream) {
  const Geometry geo = geometry_forward(p, dtype);
  return with_kernel<ForwardKernel>(p.N, dtype, [&](auto kernel) { return launch_with(kernel, p, geo, stream); });
}

// One thread per slot q of the inner size M2 = N / M1, looping over the M1 rows k1: gather the
// Hermitian extension of the half spectrum at frequency k1 + M1 * slot_to_freq(q, M2) (M1 = 1:
// the fused kernel's layout; M1 > 1: the long path's rows). A thread's reads for consecutive k1
// are adjacent, so every fetched sector is used.
__global__ void spectrum_to_slots_kernel(const float2* __restrict__ k_f, float2* __restrict__ k_slots, int N,
                                         int M1) {
  const int M2 = N / M1, q = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (q >= M2) return;
  const int half = N / 2, base = M1 * slot_to_freq(q, M2);
  const float2* row = k_f + static_cast<int64_t>(h) * (half + 1);
  for (int k1 = 0; k1 < M1; ++k1) {
    const int f = base + k1;
    float2 v = f <= half ? row[f] : row[N - f];
    if (f > half) v.y = -v.y;                  // conjugate symmetry of a real filter
    if (f == 0 || f == half) v.y = 0.f;        // irfft ignores these imaginary parts
    k_slots[(static_cast<int64_t>(h) * M1 + k1) * M2 + q] = v;
  }
}

cudaError_t launch_spectrum_to_slots(const float2* k_f, float2* k_slots, int H, int N, int M1, cudaStream_t stream) {
  spectrum_to_slots_kernel<<<dim3((N / M1 + 255) / 256, H), 256, 0, stream>>>(k_f, k_slots, N, M1);
  return cudaGetLastError();
}

}  // namespace longconv::fftconv
