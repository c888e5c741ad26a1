// Backward instantiations: 2 dtypes x 4 first-stage radices.
#include "fftconv_launch.cuh"
#include "stockham.cuh"

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

// The gradient of the circular filter buffer (see filter_to_slots) straight from the per-block
// accumulators, for the taps route at N <= 8192 (in place of slots_to_spectrum_grad, a weighting
// and cuFFT's irfft: four host-side ops fewer per training step, which at 256-1K points is
// host-bound). With Z[f] the accumulators of frequency f summed over blocks and pairs,
//   d_buf[t] = Re sum_f Z[f] exp(2 pi i f t / N),
// to which only the Hermitian part H[f] = (Z[f] + conj Z[N-f]) / 2 contributes: a real inverse
// FFT, done as the M = N/2-point complex one of Y[k] = A0[k] + i A1[k] with A0 = H[k] + conj H[M-k]
// and A1 = (H[k] - conj H[M-k]) exp(2 pi i k / N), whose output is y[n] = d_buf[2n] + i d_buf[2n+1].
// Layout and threads as filter_to_slots: M/4 threads per channel; `twiddle`: W_N^j, j < N/2.
__global__ void partials_to_taps_grad_kernel(const float2* __restrict__ s_partial, int chunks, int H, int P, int N,
                                             const float2* __restrict__ twiddle, float* __restrict__ d_buf) {
  extern __shared__ float2 smem[];
  const int M = N / 2, T = M / 4, t = threadIdx.x % T, h = blockIdx.x * (blockDim.x / T) + threadIdx.x / T;
  const bool active = h < H;  // idle channel slots of the last block still take part in the barriers
  float2* z = smem + (2 * M + 2) * (threadIdx.x / T);
  float2* buf = z + M;  // M + 2 values: first H[0..M], then the transform's scratch
  if (active) {
    for (int f = t; f <= M; f += T) {
      const int qa = freq_to_slot(f, N), qb = freq_to_slot((N - f) & (N - 1), N);
      float2 a = make_float2(0.f, 0.f), b = make_float2(0.f, 0.f);
      for (int c = 0; c < chunks; ++c)
        for (int pr = 0; pr < P; ++pr) {
          const float2* base = s_partial + ((static_cast<int64_t>(c) * H + h) * P + pr) * N;
          const float2 va = base[qa], vb = base[qb];
          a = make_float2(a.x + va.x, a.y + va.y);
          b = make_float2(b.x + vb.x, b.y + vb.y);
        }
      buf[f] = make_float2(0.5f * (a.x + b.x), f == 0 || f == M ? 0.f : 0.5f * (a.y - b.y));
    }
  }
  __syncthreads();
  if (active) {
    for (int k = t; k < M; k += T) {
      const float2 hk = buf[k], hm = buf[M - k];
      const float2 a0 = make_float2(hk.x + hm.x, hk.y - hm.y);                       // H[k] + conj H[M-k]
      const float2 a1 = cmul_conj(make_float2(hk.x - hm.x, hk.y + hm.y), twiddle[k]);  // (..) exp(2 pi i k / N)
      z[k] = make_float2(a0.x - a1.y, a0.y + a1.x);
    }
  }
  __syncthreads();
  z = stockham_fft<true>(z, buf, M, t, T, active, twiddle);
  if (!active) return;
  float2* out = reinterpret_cast<float2*>(d_buf + static_cast<int64_t>(h) * N);
  for (int n = t; n < M; n += T) out[n] = z[n];
}

cudaError_t launch_partials_to_taps_grad(const float2* s_partial, int chunks, int H, int P, int N,
                                         const float2* twiddle, float* d_buf, cudaStream_t stream) {
  return launch_per_channel_fft(partials_to_taps_grad_kernel, N, H, N + 2 /* 2 M + 2 */, stream, s_partial, chunks, H,
                                P, N, twiddle, d_buf);
}

}  // namespace longconv::fftconv
