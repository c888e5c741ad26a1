// Backward instantiations: 2 dtypes x 4 first-stage radices.
#include "fftconv_launch.cuh"

namespace longconv::fftconv {

template <typename T, int R0>
struct BackwardKernel {
  static auto get() { return &fftconv_backward_kernel<T, R0>; }
};

Geometry geometry_forward(const Params& p, DType dtype);

Geometry geometry(const Params& p, bool backward, DType dtype) {
  if (!backward) return geometry_forward(p, dtype);
  Geometry geo{};
  with_kernel<BackwardKernel>(p.N, dtype, [&](auto kernel) {
    geo = geometry_of(kernel, p, 2);
    return cudaSuccess;
  });
  return geo;
}

cudaError_t launch_backward(const Params& p, DType dtype, cudaStream_t stream) {
  const Geometry geo = geometry(p, true, dtype);
  return with_kernel<BackwardKernel>(p.N, dtype, [&](auto kernel) { return launch_with(kernel, p, geo, stream); });
}

// One thread per rfft bin f: sum the per-block accumulators at slots of f and N - f and keep
// the Hermitian part (the anti-Hermitian part is the cross-talk of the two rows of a pair),
// scaled to the gradient of the rfft spectrum: N * w_f * (S_f + conj S_{N-f}) / 2 with
// w = 2/N inside, 1/N at DC and Nyquist. With M1 > 1 (the long path) the accumulators are the
// inner kernel's: frequency f sits at row f % M1, slot freq_to_slot(f / M1, N / M1).
__global__ void slots_to_spectrum_grad_kernel(const float2* __restrict__ s_partial, float2* __restrict__ dk_f,
                                              int chunks, int H, int P, int N, int M1) {
  const int f = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, half = N / 2, M2 = N / M1;
  if (f > half) return;
  const int g = (N - f) % N;
  const int64_t qa = static_cast<int64_t>(f % M1) * M2 + freq_to_slot(f / M1, M2);
  const int64_t qb = static_cast<int64_t>(g % M1) * M2 + freq_to_slot(g / M1, M2);
  float2 a = make_float2(0.f, 0.f), b = make_float2(0.f, 0.f);
  for (int c = 0; c < chunks; ++c)
    for (int pr = 0; pr < P; ++pr) {
      const float2* base = s_partial + ((static_cast<int64_t>(c) * H + h) * P + pr) * N;
      const float2 va = base[qa], vb = base[qb];
      a.x += va.x;
      a.y += va.y;
      b.x += vb.x;
      b.y += vb.y;
    }
  float2 grad = make_float2(a.x + b.x, a.y - b.y);
  if (f == 0 || f == half) grad = make_float2(0.5f * grad.x, 0.f);
  dk_f[static_cast<int64_t>(h) * (half + 1) + f] = grad;
}

cudaError_t launch_slots_to_spectrum_grad(const float2* s_partial, float2* dk_f, int chunks, int H, int P, int N,
                                          int M1, cudaStream_t stream) {
  slots_to_spectrum_grad_kernel<<<dim3((N / 2 + 256) / 256, H), 256, 0, stream>>>(s_partial, dk_f, chunks, H, P, N,
                                                                                  M1);
  return cudaGetLastError();
}

}  // namespace longconv::fftconv
