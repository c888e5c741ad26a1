// Short depthwise conv1d kernels: forward (also used for the input gradient) and the
// weight/bias-gradient reduction, in channels-first and channels-last layouts.
#include <algorithm>

#include "../common/device.cuh"
#include "shortconv.h"

namespace longconv::shortconv {
namespace {

// ---- channels-first (B, H, L) --------------------------------------------------------------
// Weight gradient: a block owns kTile timesteps of one row, staged in shared memory.
constexpr int kThreadsCF = 128;
constexpr int kPerThreadCF = 8;
constexpr int kTile = kThreadsCF * kPerThreadCF;
constexpr int kHalo = 8;  // >= max(pad_left, K - 1 - pad_left)
constexpr int kWindow = kTile + 2 * kHalo;

// Shared-memory index with one pad word per 32: a thread reading 8*i + c is conflict-free.
__device__ __forceinline__ int padded(int s) { return s + (s >> 5); }

// Stage x[row, t0 - kHalo .. t0 + kTile + kHalo) (zeros outside [0, L)) as floats; 16-byte loads
// when the row is aligned (every chunk then starts at a multiple of 8 elements).
template <typename T>
__device__ __forceinline__ void stage_window(float* xs, const T* __restrict__ row, int t0, int L, bool vec) {
  constexpr int V = 16 / sizeof(T);
  for (int c = threadIdx.x; c < kWindow / V; c += kThreadsCF) {
    const int t = t0 - kHalo + c * V;
    float v[V];
    if (vec && t >= 0 && t + V <= L) {
      const uint4 bits = __ldg(reinterpret_cast<const uint4*>(row + t));
      const T* e = reinterpret_cast<const T*>(&bits);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = to_float(e[i]);
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = (t + i >= 0 && t + i < L) ? to_float(row[t + i]) : 0.f;
    }
#pragma unroll
    for (int i = 0; i < V; ++i) xs[padded(c * V + i)] = v[i];
  }
}

// The 8 + 7 window values thread i needs: x at t0 + 8i - pad_left + (0 .. 14).
__device__ __forceinline__ void thread_window(float (&win)[kPerThreadCF + kMaxWidth - 1], const float* xs, int pad_left) {
  const int s0 = kHalo + kPerThreadCF * threadIdx.x - pad_left;
#pragma unroll
  for (int i = 0; i < kPerThreadCF + kMaxWidth - 1; ++i) win[i] = xs[padded(s0 + i)];
}

template <typename T>
__device__ __forceinline__ bool row_aligned(const Params& p, const void* base) {
  return p.L % (16 / sizeof(T)) == 0 && reinterpret_cast<uintptr_t>(base) % 16 == 0;
}

// Forward: one thread per 8 outputs (a 16-byte chunk) of a row, no shared memory and no
// barrier. With win = x[t0 - 8 .. t0 + 16) (chunks c - 1, c, c + 1 of the row),
//   y[t0 + v] = bias + sum_m W[m] * win[v + m],  W[m] = w[m - 8 + pad_left]  (zero off [0, K)),
// and m spans [kLo, kHi) ⊇ [8 - pad_left, 8 - pad_left + K): [1, 9) for the causal conv (chunks
// c - 1 and c), [8, 16) for its input gradient (pad_left = 0: chunks c and c + 1), [5, 13) for
// "same" padding (pad_left <= 3, K - pad_left <= 5), [1, 16) otherwise. Neighbouring chunks are
// read by neighbouring threads, so the extra loads hit in L1/L2.
constexpr int kThreadsRow = 256;

template <typename T, int kLo, int kHi>
__global__ void __launch_bounds__(kThreadsRow) forward_cf(const __grid_constant__ Params p) {
  const int chunks = (p.L + 7) / 8;
  const int64_t gid = static_cast<int64_t>(blockIdx.x) * kThreadsRow + threadIdx.x;
  if (gid >= static_cast<int64_t>(p.B) * p.H * chunks) return;
  const int64_t row = gid / chunks;  // b * H + h
  const int t0 = static_cast<int>(gid - row * chunks) * 8;
  const int h = static_cast<int>(row % p.H);
  const bool vec = row_aligned<T>(p, p.x) && row_aligned<T>(p, p.y);
  const T* x = static_cast<const T*>(p.x) + row * p.L;
  float prev[8] = {}, cur[8], next[8] = {};
  if (kLo < 8 && t0 > 0) load_row<T, 8>(prev, x, t0 - 8, p.L, vec);
  load_row<T, 8>(cur, x, t0, p.L, vec);
  if (kHi > 9) load_row<T, 8>(next, x, t0 + 8, p.L, vec);  // zeros past L
  float w[16];
#pragma unroll
  for (int m = kLo; m < kHi; ++m) {
    const int j = m - 8 + p.pad_left;
    w[m] = (j >= 0 && j < p.K) ? p.w[h * p.K + (p.reverse_taps ? p.K - 1 - j : j)] : 0.f;
  }
  const float b = p.bias ? p.bias[h] : 0.f;
  float y[8];
#pragma unroll
  for (int v = 0; v < 8; ++v) {
    float acc = b;
#pragma unroll
    for (int m = kLo; m < kHi; ++m) {
      const int i = v + m;  // compile-time: the window stays in registers
      acc += w[m] * (i < 8 ? prev[i] : i < 16 ? cur[i - 8] : next[i - 16]);
    }
    y[v] = acc;
  }
  store_row<T, 8>(static_cast<T*>(p.y) + row * p.L, y, t0, p.L, vec);
}

template <typename T>
__global__ void __launch_bounds__(kThreadsCF) weight_grad_cf(const __grid_constant__ Params p) {
  __shared__ float xs[kWindow + kWindow / 32 + 1];
  __shared__ float red[kThreadsCF / 32][kMaxWidth + 1];
  const int chunks = (p.L + kTile - 1) / kTile;
  const int64_t row = blockIdx.x / chunks;
  const int chunk = blockIdx.x % chunks, t0 = chunk * kTile;
  const int h = static_cast<int>(row % p.H), b = static_cast<int>(row / p.H);
  const bool vec = row_aligned<T>(p, p.x) && row_aligned<T>(p, p.dy);
  stage_window(xs, static_cast<const T*>(p.x) + row * p.L, t0, p.L, vec);
  float g[kPerThreadCF];
  const int t = t0 + kPerThreadCF * threadIdx.x;
  load_row<T, kPerThreadCF>(g, static_cast<const T*>(p.dy) + row * p.L, min(t, p.L), p.L, vec);  // zeros past L
  __syncthreads();
  float win[kPerThreadCF + kMaxWidth - 1];
  thread_window(win, xs, p.pad_left);
  float acc[kMaxWidth + 1] = {};
#pragma unroll
  for (int v = 0; v < kPerThreadCF; ++v) {
#pragma unroll
    for (int j = 0; j < kMaxWidth; ++j) acc[j] += g[v] * win[v + j];
    acc[kMaxWidth] += g[v];
  }
  // block reduction: warp shuffles, then one value per warp through shared memory
#pragma unroll
  for (int j = 0; j <= kMaxWidth; ++j)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], o);
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0)
#pragma unroll
    for (int j = 0; j <= kMaxWidth; ++j) red[warp][j] = acc[j];
  __syncthreads();
  if (threadIdx.x <= p.K) {
    const int j = threadIdx.x == p.K ? kMaxWidth : threadIdx.x;  // last column: bias
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < kThreadsCF / 32; ++w) s += red[w][j];
    p.dw_partial[((static_cast<int64_t>(b) * chunks + chunk) * p.H + h) * (p.K + 1) + threadIdx.x] = s;
  }
}

// ---- channels-last (B, L, H): a thread owns V channels and kSteps timesteps ------------------
constexpr int kThreadsCL = 128;
// Forward runs: 32 steps, unrolled by 8 so that a group's loads are all in flight. Each thread
// reads its V x K weights once (strided scalar loads: the costly part at 8 steps per thread).
constexpr int kStepsForward = 32;
constexpr int kUnrollForward = 8;
constexpr int kStepsGrad = 64;    // the weight gradient writes one partial sum per run

// The window holds x[t - pad_left + j - (kW - K)] for j < kW; the weights are right-aligned
// (w_al[j] = w[j - (kW - K)], zero before), so each step shifts by one and loads into the last
// slot: compile-time indices only. kW = 4 when K <= 4 (half the registers and FMAs), else 8.
// Threads are numbered (b, run, channel group), channel groups fastest: a warp reads whole rows.
template <typename T, int V, int kSteps>
struct ChannelsLast {
  const Params& p;
  int b, run, c0, t0;
  bool active;
  __device__ explicit ChannelsLast(const Params& params) : p(params) {
    const int groups = p.H / V, runs = (p.L + kSteps - 1) / kSteps;
    const int64_t gid = static_cast<int64_t>(blockIdx.x) * kThreadsCL + threadIdx.x;
    active = gid < static_cast<int64_t>(p.B) * runs * groups;
    const int64_t rest = gid / groups;
    c0 = static_cast<int>(gid - rest * groups) * V;
    run = static_cast<int>(rest % runs);
    b = static_cast<int>(rest / runs);
    t0 = run * kSteps;
  }

  __device__ __forceinline__ void load(float (&x)[V], const void* base, int t) const {
    if (t < 0 || t >= p.L) {
#pragma unroll
      for (int v = 0; v < V; ++v) x[v] = 0.f;
      return;
    }
    const T* src = static_cast<const T*>(base) + (static_cast<int64_t>(b) * p.L + t) * p.H + c0;
    if constexpr (V * sizeof(T) == 16) {
      const uint4 bits = __ldg(reinterpret_cast<const uint4*>(src));
      const T* e = reinterpret_cast<const T*>(&bits);
#pragma unroll
      for (int v = 0; v < V; ++v) x[v] = to_float(e[v]);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) x[v] = to_float(src[v]);
    }
  }
  __device__ __forceinline__ void store(const float (&y)[V], int t) const {
    T* dst = static_cast<T*>(p.y) + (static_cast<int64_t>(b) * p.L + t) * p.H + c0;
    if constexpr (V * sizeof(T) == 16) {
      uint4 bits;
      T* e = reinterpret_cast<T*>(&bits);
#pragma unroll
      for (int v = 0; v < V; ++v) e[v] = from_float<T>(y[v]);
      *reinterpret_cast<uint4*>(dst) = bits;
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) dst[v] = from_float<T>(y[v]);
    }
  }
  // The window as of step t0 - 1 (every step first shifts, then loads its newest value).
  template <int kW>
  __device__ __forceinline__ void init_window(float (&win)[kW][V]) const {
    const int first = t0 - 1 - p.pad_left - (kW - p.K);
#pragma unroll
    for (int j = 0; j < kW; ++j) {
      if (j >= kW - p.K) {
        load(win[j], p.x, first + j);
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) win[j][v] = 0.f;
      }
    }
  }
  template <int kW>
  __device__ __forceinline__ void shift_in(float (&win)[kW][V], int t) const {
#pragma unroll
    for (int j = 0; j < kW - 1; ++j)
#pragma unroll
      for (int v = 0; v < V; ++v) win[j][v] = win[j + 1][v];
    load(win[kW - 1], p.x, t - p.pad_left + p.K - 1);
  }
};

template <typename T, int V, int kW>
__global__ void __launch_bounds__(kThreadsCL) forward_cl(const __grid_constant__ Params p) {
  const ChannelsLast<T, V, kStepsForward> cl(p);
  if (!cl.active) return;
  float w[kW][V], bias[V], win[kW][V];
#pragma unroll
  for (int j = 0; j < kW; ++j)
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int src = j - (kW - p.K);
      w[j][v] = src >= 0 ? p.w[(cl.c0 + v) * p.K + (p.reverse_taps ? p.K - 1 - src : src)] : 0.f;
    }
#pragma unroll
  for (int v = 0; v < V; ++v) bias[v] = p.bias ? p.bias[cl.c0 + v] : 0.f;
  cl.init_window(win);
  for (int i0 = 0; i0 < kStepsForward && cl.t0 + i0 < p.L; i0 += kUnrollForward) {
#pragma unroll
    for (int i = 0; i < kUnrollForward; ++i) {
      const int t = cl.t0 + i0 + i;
      cl.shift_in(win, t);  // reads zeros past L
      float y[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
        float acc = bias[v];
#pragma unroll
        for (int j = 0; j < kW; ++j) acc += w[j][v] * win[j][v];
        y[v] = acc;
      }
      if (t < p.L) cl.store(y, t);
    }
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreadsCL) weight_grad_cl(const __grid_constant__ Params p) {
  const ChannelsLast<T, V, kStepsGrad> cl(p);
  if (!cl.active) return;
  float acc[kMaxWidth + 1][V] = {}, win[kMaxWidth][V];
  cl.init_window(win);
  const int t_end = min(cl.t0 + kStepsGrad, p.L);
  for (int t = cl.t0; t < t_end; ++t) {
    cl.shift_in(win, t);
    float g[V];
    cl.load(g, p.dy, t);
#pragma unroll
    for (int v = 0; v < V; ++v) {
#pragma unroll
      for (int j = 0; j < kMaxWidth; ++j) acc[j][v] += g[v] * win[j][v];
      acc[kMaxWidth][v] += g[v];
    }
  }
  const int64_t part = static_cast<int64_t>(cl.b) * ((p.L + kStepsGrad - 1) / kStepsGrad) + cl.run;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    float* out = p.dw_partial + (part * p.H + cl.c0 + v) * (p.K + 1);
#pragma unroll
    for (int j = 0; j < kMaxWidth; ++j)
      if (j >= kMaxWidth - p.K) out[j - (kMaxWidth - p.K)] = acc[j][v];
    out[p.K] = acc[kMaxWidth][v];
  }
}

int cf_chunks(const Params& p) { return (p.L + kTile - 1) / kTile; }
int grad_runs(const Params& p) { return (p.L + kStepsGrad - 1) / kStepsGrad; }

// Vector width of the channels-last kernels: 16 bytes when every row start is aligned.
template <typename T>
bool cl_vectorized(const Params& p) {
  constexpr int V = 16 / sizeof(T);
  const auto aligned = [](const void* ptr) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return p.H % V == 0 && aligned(p.x) && aligned(p.y) && aligned(p.dy);
}

// Blocks of `threads` covering `work` threads (false if the grid would be too large).
bool grid_for(int64_t work, int threads, unsigned& blocks) {
  const int64_t n = (work + threads - 1) / threads;
  blocks = static_cast<unsigned>(n);
  return n > 0 && n <= 0x7fffffff;
}

template <typename T, int V>
cudaError_t launch_forward_cl(const Params& p, cudaStream_t stream) {
  unsigned blocks;
  const int64_t runs = (p.L + kStepsForward - 1) / kStepsForward;
  if (!grid_for(static_cast<int64_t>(p.B) * runs * (p.H / V), kThreadsCL, blocks)) return cudaErrorInvalidValue;
  if (p.K <= 4) {
    forward_cl<T, V, 4><<<blocks, kThreadsCL, 0, stream>>>(p);
  } else {
    forward_cl<T, V, 8><<<blocks, kThreadsCL, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_forward_t(const Params& p, cudaStream_t stream) {
  if (!p.channels_last) {
    unsigned blocks;
    if (!grid_for(static_cast<int64_t>(p.B) * p.H * ((p.L + 7) / 8), kThreadsRow, blocks)) return cudaErrorInvalidValue;
    if (p.pad_left == p.K - 1) {
      forward_cf<T, 1, 9><<<blocks, kThreadsRow, 0, stream>>>(p);  // causal
    } else if (p.pad_left == 0) {
      forward_cf<T, 8, 16><<<blocks, kThreadsRow, 0, stream>>>(p);  // anti-causal (its input gradient)
    } else if (p.pad_left <= 3 && p.K - p.pad_left <= 5) {
      forward_cf<T, 5, 13><<<blocks, kThreadsRow, 0, stream>>>(p);  // "same" and its input gradient
    } else {
      forward_cf<T, 1, 16><<<blocks, kThreadsRow, 0, stream>>>(p);
    }
    return cudaGetLastError();
  }
  constexpr int V = 16 / sizeof(T);
  return cl_vectorized<T>(p) ? launch_forward_cl<T, V>(p, stream) : launch_forward_cl<T, 1>(p, stream);
}

template <typename T>
cudaError_t launch_weight_grad_t(const Params& p, cudaStream_t stream) {
  unsigned blocks;
  if (!p.channels_last) {
    if (!grid_for(static_cast<int64_t>(p.B) * p.H * cf_chunks(p) * kThreadsCF, kThreadsCF, blocks))
      return cudaErrorInvalidValue;
    weight_grad_cf<T><<<blocks, kThreadsCF, 0, stream>>>(p);
  } else {
    constexpr int V = 16 / sizeof(T);
    const bool vec = cl_vectorized<T>(p);
    const int64_t groups = vec ? p.H / V : p.H;
    if (!grid_for(static_cast<int64_t>(p.B) * grad_runs(p) * groups, kThreadsCL, blocks)) return cudaErrorInvalidValue;
    if (vec) {
      weight_grad_cl<T, V><<<blocks, kThreadsCL, 0, stream>>>(p);
    } else {
      weight_grad_cl<T, 1><<<blocks, kThreadsCL, 0, stream>>>(p);
    }
  }
  return cudaGetLastError();
}

template <typename F>
cudaError_t by_dtype(DType dtype, F&& f) {
  return dispatch<DType::kF32, DType::kBF16, DType::kFP16>(dtype, [&](auto d) { return f(element_t<decltype(d)::value>{}); });
}

}  // namespace

cudaError_t launch_forward(const Params& p, DType dtype, cudaStream_t stream) {
  if (p.K < 1 || p.K > kMaxWidth) return cudaErrorInvalidValue;
  return by_dtype(dtype, [&](auto tag) { return launch_forward_t<decltype(tag)>(p, stream); });
}

int weight_grad_partials(const Params& p) { return p.B * (p.channels_last ? grad_runs(p) : cf_chunks(p)); }

cudaError_t launch_weight_grad(const Params& p, DType dtype, cudaStream_t stream) {
  if (p.K < 1 || p.K > kMaxWidth) return cudaErrorInvalidValue;
  return by_dtype(dtype, [&](auto tag) { return launch_weight_grad_t<decltype(tag)>(p, stream); });
}

}  // namespace longconv::shortconv
