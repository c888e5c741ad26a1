// Forward instantiations: 2 dtypes x 4 first-stage radices x (dense, low-band filter); bf16 x 4
// radices x (bf16 slots, taps prologue; the filter spectrum kernel); the filter layout kernels.
#include "fftconv_launch.cuh"
#include "stockham.cuh"

namespace longconv::fftconv {

template <typename T, int R0>
struct ForwardKernel {
  static auto get() { return &fftconv_forward_kernel<T, R0, false>; }
};
// Separate instantiations, so that the dense kernel's register allocation is not shared with them.
template <typename T, int R0>
struct LowBandForwardKernel {
  static auto get() { return &fftconv_forward_kernel<T, R0, true>; }
};
template <typename T, int R0>
struct Bf16SlotsForwardKernel {
  static auto get() { return &fftconv_forward_kernel<T, R0, false, FilterIn::kSlotsBf16>; }
};
template <typename T, int R0>
struct TapsForwardKernel {
  static auto get() { return &fftconv_forward_kernel<T, R0, false, FilterIn::kTaps>; }
};

template <template <typename, int> class KernelOf, bool kBf16Only = false>
cudaError_t launch_forward_with(const Params& p, DType dtype, cudaStream_t stream) {
  const auto with_variant = [&](auto&& f) { return with_kernel<KernelOf, kBf16Only>(p.N, dtype, f); };
  Geometry geo{};
  const cudaError_t err = with_variant([&](auto kernel) {
    geo = geometry_of(kernel, p, 2);
    return cudaSuccess;
  });
  if (err != cudaSuccess) return err;
  return with_variant([&](auto kernel) { return launch_with(kernel, p, geo, stream); });
}

Geometry geometry_forward(const Params& p, DType dtype) {
  Geometry geo{};
  with_kernel<ForwardKernel>(p.N, dtype, [&](auto kernel) {
    geo = geometry_of(kernel, p, 2);
    return cudaSuccess;
  });
  return geo;
}

cudaError_t launch_forward(const Params& p, DType dtype, cudaStream_t stream) {
  if (p.filter.k != nullptr) return launch_forward_with<TapsForwardKernel, true>(p, dtype, stream);
  if (p.k_slots_bf16 != nullptr) return launch_forward_with<Bf16SlotsForwardKernel, true>(p, dtype, stream);
  if (p.lowband_dft != nullptr) return launch_forward_with<LowBandForwardKernel>(p, dtype, stream);
  return launch_forward_with<ForwardKernel>(p, dtype, stream);
}

// The filter's spectrum (see FilterSource): the forward half of a pass over one row, its slots
// written out. bf16 only: bf16 has fp32's exponent range, so any fp32 filter transforms safely.
// At M2 = 4096 (64K..1M points) it runs 3 blocks per SM (85 registers, no spills): more of the
// latency of its load -> FFT -> store sequence hidden than with 2.
template <int R0>
__global__ void __launch_bounds__(kThreads, R0 == 1 ? 3 : 2) filter_spectrum_kernel(const __grid_constant__ Params p,
                                                                                   const __grid_constant__ FilterSource f) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int M1 = f.rows_per_channel, per_channel = f.mirror_rows ? M1 / 2 + 1 : M1;
  const int channel = blockIdx.x / per_channel, k1 = blockIdx.x % per_channel;
  const Block<__nv_bfloat16, R0> blk(p, smem_raw, channel * M1 + k1);
  if (threadIdx.x < 4) blk.flags[threadIdx.x] = 0;
  __syncthreads();
  if (f.k != nullptr)
    blk.load_taps(f);
  else
    blk.load_forward(LoadSpec{p.u, nullptr}, 0, 0);
  __syncthreads();
  const bool bad = (f.bad_channels != nullptr && f.bad_channels[channel] != 0) || blk.flag(0, 0, 0) != 0 ||
                   blk.flag(0, 0, 1) != 0;
  const bool mirror = f.mirror_rows && k1 != 0 && 2 * k1 != M1;
  const int64_t row = static_cast<int64_t>(blk.h) * p.N;
  const int64_t mirror_row = static_cast<int64_t>(channel * M1 + M1 - k1) * p.N;
  const auto store = [&](int64_t off, const float2(&z)[8]) {
    if (f.out_bf16 != nullptr)
      Block<__nv_bfloat16, R0>::store8(f.out_bf16 + off, z);
    else
      Block<__nv_bfloat16, R0>::store8(f.out + off, z);
  };
  blk.forward_spectrum(f.scale, f.bias != nullptr ? f.bias[channel] : 0.f, [&](int q, float2(&zs)[8]) {
    if (bad) {
#pragma unroll
      for (int s = 0; s < 8; ++s) zs[s] = make_float2(__int_as_float(0x7fffffff), __int_as_float(0x7fffffff));
    }
    store(row + q, zs);
    if (mirror) {
      // the slot order's digits are those of the frequency, so complementing the inner frequency
      // (M2 - 1 - k2) complements the slot: the mirror row is this row reversed and conjugated.
      // Slot s at q + 64 (s / 2) + s % 2 reverses to slot 7 - s of the lane position below.
      float2 zm[8];
#pragma unroll
      for (int s = 0; s < 8; ++s) zm[s] = make_float2(zs[7 - s].x, -zs[7 - s].y);
      store(mirror_row + (p.N - 2 - 3 * kSlotPairStride - q), zm);
    }
  });
}

cudaError_t launch_filter_spectrum(const Params& p, const FilterSource& f, cudaStream_t stream) {
  Params q = p;
  q.pairs_per_step = 1;
  q.use_staging = false;
  const int smem = SmemLayout(q.N, 1, q.L, false, 2).total();  // 4 bytes per point: <= 128 KB
  const int M1 = f.rows_per_channel;
  if (f.mirror_rows && (f.k != nullptr || M1 < 2 || q.H % M1 != 0)) return cudaErrorInvalidValue;
  const int blocks = f.mirror_rows ? q.H / M1 * (M1 / 2 + 1) : q.H;
  const auto launch = [&](auto kernel) {
    if (smem > 48 * 1024) {
      const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (err != cudaSuccess) return err;
    }
    kernel<<<blocks, kThreads, smem, stream>>>(q, f);
    return cudaGetLastError();
  };
  return dispatch<1, 2, 4, 8>(radix0(q.N),
                              [&](auto r0) { return launch(&filter_spectrum_kernel<decltype(r0)::value>); });
}

// Full-spectrum value at frequency f of a real filter from v, its half-spectrum value at bin
// min(f, N - f).
__device__ __forceinline__ float2 hermitian_extension(float2 v, int f, int N) {
  const int half = N / 2;
  if (f > half) v.y = -v.y;            // conjugate symmetry of a real filter
  if (f == 0 || f == half) v.y = 0.f;  // irfft ignores these imaginary parts
  return v;
}

// Filter value of slot q in row k1: the Hermitian extension of the half spectrum at frequency
// f = k1 + M1 * slot_to_freq(q, M2) (M1 = 1: the fused kernel's layout; M1 > 1: the long path's rows).
__device__ __forceinline__ float2 hermitian_at(const float2* __restrict__ row, int f, int N) {
  return hermitian_extension(f <= N / 2 ? row[f] : row[N - f], f, N);
}

// M1 = 1: one thread per slot.
__global__ void spectrum_to_slots_kernel(const float2* __restrict__ k_f, float2* __restrict__ k_slots, int N,
                                         bool low_band) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (q >= N) return;
  k_slots[static_cast<int64_t>(h) * N + q] =
      hermitian_at(k_f + static_cast<int64_t>(h) * (N / 2 + 1), slot_to_freq(q, N, low_band), N);
}

// M1 > 1: a block owns Q = 4096 / M1 consecutive slots q of every row k1 (a 4096-value tile).
// The frequencies of one slot's rows are M1 consecutive bins (read by consecutive threads), the
// outputs of one row Q consecutive slots: the tile goes through shared memory so that both sides
// are contiguous runs.
constexpr int kSlotTileValues = 4096;

__global__ void spectrum_to_slot_rows_kernel(const float2* __restrict__ k_f, float2* __restrict__ k_slots, int N,
                                             int M1, bool low_band) {
  extern __shared__ float2 tile[];  // [Q][M1 + 1]
  const int M2 = N / M1, Q = kSlotTileValues / M1, q0 = blockIdx.x * Q, h = blockIdx.y;
  const float2* row = k_f + static_cast<int64_t>(h) * (N / 2 + 1);
  for (int e = threadIdx.x; e < kSlotTileValues; e += blockDim.x) {
    const int i = e / M1, k1 = e % M1;
    tile[i * (M1 + 1) + k1] = hermitian_at(row, k1 + M1 * slot_to_freq(q0 + i, M2, low_band), N);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kSlotTileValues; e += blockDim.x) {
    const int k1 = e / Q, i = e % Q;
    k_slots[(static_cast<int64_t>(h) * M1 + k1) * M2 + q0 + i] = tile[i * (M1 + 1) + k1];
  }
}

cudaError_t launch_spectrum_to_slots(const float2* k_f, float2* k_slots, int H, int N, int M1, bool low_band,
                                     cudaStream_t stream) {
  if (M1 == 1) {
    spectrum_to_slots_kernel<<<dim3((N + 255) / 256, H), 256, 0, stream>>>(k_f, k_slots, N, low_band);
  } else {  // 2 <= M1 <= 512 and M2 = N / M1 >= 4096: Q = 4096 / M1 divides M2
    const int Q = kSlotTileValues / M1;
    const size_t smem = sizeof(float2) * Q * (M1 + 1);  // 33-40 KB
    spectrum_to_slot_rows_kernel<<<dim3(N / M1 / Q, H), 256, smem, stream>>>(k_f, k_slots, N, M1, low_band);
  }
  return cudaGetLastError();
}

// The filter straight from the time domain, for the fused sizes: the circular filter
//   buf[t] = k[t] (t < Lk) + k_rev[N-1-t] (N-1-t < Lr) + bias (t = 0)
// transformed in fp32 and written in slot order (what rfft + spectrum_to_slots give, in one
// launch instead of four). The real N-point FFT is an M = N/2-point complex FFT of
// (buf[2n], buf[2n+1]) (stockham.cuh), then the split into even/odd spectra. M/4 threads per
// channel (the passes use M/R of them; loads and the slot-order output all), max(1, 512 / M)
// channels per block. `twiddle` holds W_N^j for j < N/2.
__global__ void filter_to_slots_kernel(const float* __restrict__ k, int Lk, const float* __restrict__ k_rev, int Lr,
                                       const float* __restrict__ bias, const float2* __restrict__ twiddle,
                                       float2* __restrict__ k_slots, int H, int N) {
  extern __shared__ float2 smem[];
  const int M = N / 2, T = M / 4, t = threadIdx.x % T, h = blockIdx.x * (blockDim.x / T) + threadIdx.x / T;
  const bool active = h < H;  // idle channel slots of the last block still take part in the barriers
  float2* z = smem + 2 * M * (threadIdx.x / T);
  float2* buf = z + M;
  if (active) {
    const float* kh = k + static_cast<int64_t>(h) * Lk;
    const float* rh = k_rev ? k_rev + static_cast<int64_t>(h) * Lr : nullptr;
    const float b = bias ? bias[h] : 0.f;
    auto tap = [&](int i) {
      float v = i < Lk ? kh[i] : 0.f;
      if (rh && N - 1 - i < Lr) v += rh[N - 1 - i];
      return i == 0 ? v + b : v;
    };
    for (int n = t; n < M; n += T) z[n] = make_float2(tap(2 * n), tap(2 * n + 1));
  }
  __syncthreads();
  z = stockham_fft<false>(z, buf, M, t, T, active, twiddle);
  if (!active) return;
  float2* out = k_slots + static_cast<int64_t>(h) * N;
  for (int q = t; q < N; q += T) {
    const int f = slot_to_freq(q, N), g = f <= M ? f : N - f;  // half-spectrum bin
    const float2 zg = z[g & (M - 1)], zc = z[(M - g) & (M - 1)];
    const float2 even = make_float2(0.5f * (zg.x + zc.x), 0.5f * (zg.y - zc.y));  // (Z[g] + conj Z[M-g]) / 2
    const float2 odd = make_float2(0.5f * (zg.y + zc.y), -0.5f * (zg.x - zc.x));   // (Z[g] - conj Z[M-g]) / 2i
    const float2 w = g < M ? twiddle[g] : make_float2(-1.f, 0.f);
    const float2 wo = cmul(w, odd);
    out[q] = hermitian_extension(make_float2(even.x + wo.x, even.y + wo.y), f, N);
  }
}

cudaError_t launch_filter_to_slots(const float* k, int Lk, const float* k_rev, int Lr, const float* bias,
                                   const float2* twiddle, float2* k_slots, int H, int N, cudaStream_t stream) {
  return launch_per_channel_fft(filter_to_slots_kernel, N, H, N /* 2 M */, stream, k, Lk, k_rev, Lr, bias, twiddle,
                                k_slots, H, N);
}

}  // namespace longconv::fftconv
