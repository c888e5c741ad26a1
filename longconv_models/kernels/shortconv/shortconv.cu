// Short depthwise conv1d kernels in channels-first and channels-last layouts: the forward, and
// the backward (channels-first: input and weight/bias gradients in one pass; channels-last: the
// forward kernel on dy for the input gradient, then the weight/bias-gradient reduction).
#include <algorithm>

#include "../common/device.cuh"
#include "shortconv.h"

namespace longconv::shortconv {
namespace {

// ---- channels-first (B, H, L) --------------------------------------------------------------
// A warp owns a strip of one row: up to kMaxRounds rounds of 32 consecutive 8-element chunks
// (16 bytes in bf16), one chunk per lane per round. The window a chunk needs beyond itself is
// its neighbour lanes' chunks (warp shuffles); only lanes 0 and 31 load the chunk past the
// round's ends. So every input is read from memory once, the row's weights once per strip, and
// the row and batch indices are divided out once per warp, not per chunk.
//
// Offsets: y[t] = bias + sum_o W[o] x[t + o], o = j - pad_left in [-pad_left, K - 1 - pad_left],
// W[o] = w[o + pad_left]. The kernels take a compile-time offset range [kLo, kHi] covering that
// (see by_window): kLo < 0 reads the previous chunk, kHi > 0 the next one.
constexpr int kThreadsCF = 128;
constexpr int kWarpsCF = kThreadsCF / 32;
constexpr int kRoundElems = 32 * 8;
constexpr int kMaxRounds = 8;

int64_t cf_rounds(int64_t L) { return std::min<int64_t>((L + kRoundElems - 1) / kRoundElems, kMaxRounds); }
int64_t cf_strips(int64_t L) {
  const int64_t strip = kRoundElems * cf_rounds(L);
  return (L + strip - 1) / strip;
}

struct StripCF {
  int64_t row;       // b * H + h
  int h, b, lane, rounds;
  int64_t strip, t_first;  // the strip's index in its row; this lane's first element
  bool active;       // warp-uniform
  __device__ explicit StripCF(const Params& p, int64_t rounds_, int64_t strips) {
    const int64_t warp = static_cast<int64_t>(blockIdx.x) * kWarpsCF + threadIdx.x / 32;
    lane = threadIdx.x & 31;
    rounds = static_cast<int>(rounds_);
    active = warp < static_cast<int64_t>(p.B) * p.H * strips;
    row = warp / strips;
    strip = warp - row * strips;
    h = static_cast<int>(row % p.H);
    b = static_cast<int>(row / p.H);
    t_first = strip * rounds_ * kRoundElems + lane * 8;
  }
};

// The previous chunk's elements [kFrom, 8): lane - 1's, lane 0 loads them (zeros before t = 0).
template <typename T, int kFrom>
__device__ __forceinline__ void previous_chunk(float (&prev)[8], const float (&cur)[8], const T* row, int64_t t0,
                                               int L, bool vec, int lane) {
#pragma unroll
  for (int i = kFrom; i < 8; ++i) prev[i] = __shfl_up_sync(0xffffffffu, cur[i], 1);
  if (lane == 0 && t0 > 0 && t0 <= L) load_row<T, 8>(prev, row, static_cast<int>(t0 - 8), L, vec);
  else if (lane == 0)
#pragma unroll
    for (int i = 0; i < 8; ++i) prev[i] = 0.f;
}

// The next chunk's elements [0, kTo): lane + 1's, lane 31 loads them (zeros past L).
template <typename T, int kTo>
__device__ __forceinline__ void next_chunk(float (&next)[8], const float (&cur)[8], const T* row, int64_t t0, int L,
                                           bool vec, int lane) {
#pragma unroll
  for (int i = 0; i < kTo; ++i) next[i] = __shfl_down_sync(0xffffffffu, cur[i], 1);
  if (lane == 31 && t0 + 8 < L) load_row<T, 8>(next, row, static_cast<int>(t0 + 8), L, vec);
  else if (lane == 31)
#pragma unroll
    for (int i = 0; i < 8; ++i) next[i] = 0.f;
}

template <typename T>
__device__ __forceinline__ void load_chunk(float (&cur)[8], const T* row, int64_t t0, int L, bool vec) {
  if (t0 < L) {
    load_row<T, 8>(cur, row, static_cast<int>(t0), L, vec);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) cur[i] = 0.f;
  }
}

// Element i in [-8, 16) of the window prev | cur | next (compile-time i: registers only).
__device__ __forceinline__ float window(const float (&prev)[8], const float (&cur)[8], const float (&next)[8], int i) {
  return i < 0 ? prev[i + 8] : i < 8 ? cur[i] : next[i - 8];
}

// W[o] for o in [kLo, kHi] at index o + 7 (zero where o + pad_left is no tap).
template <int kLo, int kHi>
__device__ __forceinline__ void offset_weights(float (&W)[15], const Params& p, int h) {
#pragma unroll
  for (int o = kLo; o <= kHi; ++o) {
    const int j = o + p.pad_left;
    W[o + 7] = (j >= 0 && j < p.K) ? p.w[h * p.K + (p.reverse_taps ? p.K - 1 - j : j)] : 0.f;
  }
}

template <typename T>
__device__ __forceinline__ bool row_aligned(const Params& p, const void* base) {
  return p.L % (16 / sizeof(T)) == 0 && reinterpret_cast<uintptr_t>(base) % 16 == 0;
}

template <typename T, int kLo, int kHi>
__global__ void __launch_bounds__(kThreadsCF) forward_cf(const __grid_constant__ Params p, int64_t rounds, int64_t strips) {
  const StripCF s(p, rounds, strips);
  if (!s.active) return;
  const bool vec = row_aligned<T>(p, p.x) && row_aligned<T>(p, p.y);
  const T* x = static_cast<const T*>(p.x) + s.row * p.L;
  T* y = static_cast<T*>(p.y) + s.row * p.L;
  float W[15];
  offset_weights<kLo, kHi>(W, p, s.h);
  const float bias = p.bias ? p.bias[s.h] : 0.f;
  for (int r = 0; r < s.rounds; ++r) {
    const int64_t t0 = s.t_first + static_cast<int64_t>(r) * kRoundElems;
    float prev[8] = {}, cur[8], next[8] = {};
    load_chunk<T>(cur, x, t0, p.L, vec);
    if constexpr (kLo < 0) previous_chunk<T, 8 + kLo>(prev, cur, x, t0, p.L, vec, s.lane);
    if constexpr (kHi > 0) next_chunk<T, kHi>(next, cur, x, t0, p.L, vec, s.lane);
    float out[8];
#pragma unroll
    for (int v = 0; v < 8; ++v) {
      float acc = bias;
#pragma unroll
      for (int o = kLo; o <= kHi; ++o) acc += W[o + 7] * window(prev, cur, next, v + o);
      out[v] = acc;
    }
    if (t0 < p.L) store_row<T, 8>(y, out, static_cast<int>(t0), p.L, vec);
  }
}

// Both gradients in one pass over x and dy:
//   dx[t] = sum_o W[o] dy[t - o]   (dy's window mirrors x's: kLo < 0 reads dy's next chunk)
//   dW[o] = sum_t dy[t] x[t + o],  dbias = sum_t dy[t]
// The warp's sums go to dw_partial[b * strips + strip, h, :] (summed over partials on the host).
template <typename T, int kLo, int kHi>
__global__ void __launch_bounds__(kThreadsCF) backward_cf(const __grid_constant__ Params p, int64_t rounds, int64_t strips) {
  const StripCF s(p, rounds, strips);
  if (!s.active) return;
  const bool vec = row_aligned<T>(p, p.x) && row_aligned<T>(p, p.dy) && row_aligned<T>(p, p.y);
  const T* x = static_cast<const T*>(p.x) + s.row * p.L;
  const T* dy = static_cast<const T*>(p.dy) + s.row * p.L;
  T* dx = static_cast<T*>(p.y) + s.row * p.L;
  float W[15];
  offset_weights<kLo, kHi>(W, p, s.h);
  float dW[15] = {}, dbias = 0.f;
  for (int r = 0; r < s.rounds; ++r) {
    const int64_t t0 = s.t_first + static_cast<int64_t>(r) * kRoundElems;
    float xp[8] = {}, xc[8], xn[8] = {}, gp[8] = {}, gc[8], gn[8] = {};
    load_chunk<T>(xc, x, t0, p.L, vec);
    load_chunk<T>(gc, dy, t0, p.L, vec);
    if constexpr (kLo < 0) {
      previous_chunk<T, 8 + kLo>(xp, xc, x, t0, p.L, vec, s.lane);
      next_chunk<T, -kLo>(gn, gc, dy, t0, p.L, vec, s.lane);
    }
    if constexpr (kHi > 0) {
      next_chunk<T, kHi>(xn, xc, x, t0, p.L, vec, s.lane);
      previous_chunk<T, 8 - kHi>(gp, gc, dy, t0, p.L, vec, s.lane);
    }
    float out[8];
#pragma unroll
    for (int v = 0; v < 8; ++v) {
      float acc = 0.f;
#pragma unroll
      for (int o = kLo; o <= kHi; ++o) {
        acc += W[o + 7] * window(gp, gc, gn, v - o);
        dW[o + 7] += gc[v] * window(xp, xc, xn, v + o);
      }
      dbias += gc[v];
      out[v] = acc;
    }
    if (t0 < p.L) store_row<T, 8>(dx, out, static_cast<int>(t0), p.L, vec);
  }
#pragma unroll
  for (int o = kLo; o <= kHi; ++o)
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) dW[o + 7] += __shfl_xor_sync(0xffffffffu, dW[o + 7], m);
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) dbias += __shfl_xor_sync(0xffffffffu, dbias, m);
  if (s.lane == 0) {
    float* out = p.dw_partial + ((static_cast<int64_t>(s.b) * strips + s.strip) * p.H + s.h) * (p.K + 1);
#pragma unroll
    for (int o = kLo; o <= kHi; ++o) {
      const int j = o + p.pad_left;
      if (j >= 0 && j < p.K) out[j] = dW[o + 7];
    }
    out[p.K] = dbias;
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

// Calls launch(range) with a compile-time offset range [range.lo, range.hi] covering the taps'
// offsets [-pad_left, K - 1 - pad_left]: causal, anti-causal (its input gradient), "same"
// (pad_left <= 3, K - 1 - pad_left <= 4), one tap, any other.
template <int kLo, int kHi> struct Offsets { static constexpr int lo = kLo, hi = kHi; };

template <typename F>
cudaError_t by_window(const Params& p, F&& launch) {
  const int lo = -p.pad_left, hi = p.K - 1 - p.pad_left;
  if (lo == 0 && hi == 0) launch(Offsets<0, 0>{});
  else if (hi == 0) launch(Offsets<-7, 0>{});
  else if (lo == 0) launch(Offsets<0, 7>{});
  else if (lo >= -3 && hi <= 4) launch(Offsets<-3, 4>{});
  else launch(Offsets<-7, 7>{});
  return cudaGetLastError();
}

// The channels-first forward or backward kernel: one warp per strip.
template <typename T, bool kBackward>
cudaError_t launch_cf(const Params& p, cudaStream_t stream) {
  const int64_t rounds = cf_rounds(p.L), strips = cf_strips(p.L);
  unsigned blocks;
  if (!grid_for(static_cast<int64_t>(p.B) * p.H * strips, kWarpsCF, blocks)) return cudaErrorInvalidValue;
  return by_window(p, [&](auto range) {
    constexpr int lo = decltype(range)::lo, hi = decltype(range)::hi;
    if constexpr (kBackward)
      backward_cf<T, lo, hi><<<blocks, kThreadsCF, 0, stream>>>(p, rounds, strips);
    else
      forward_cf<T, lo, hi><<<blocks, kThreadsCF, 0, stream>>>(p, rounds, strips);
  });
}

template <typename T>
cudaError_t launch_forward_t(const Params& p, cudaStream_t stream) {
  if (!p.channels_last) return launch_cf<T, false>(p, stream);
  constexpr int V = 16 / sizeof(T);
  return cl_vectorized<T>(p) ? launch_forward_cl<T, V>(p, stream) : launch_forward_cl<T, 1>(p, stream);
}

// Channels-last: the input gradient is the forward kernel on dy (flipped taps, mirrored
// padding), then the weight-gradient runs. Channels-first: one kernel for both.
template <typename T>
cudaError_t launch_backward_t(const Params& p, cudaStream_t stream) {
  if (!p.channels_last) return launch_cf<T, true>(p, stream);
  Params q = p;
  q.x = p.dy;
  q.bias = nullptr;
  q.pad_left = p.K - 1 - p.pad_left;
  q.reverse_taps = true;
  const cudaError_t err = launch_forward_t<T>(q, stream);
  if (err != cudaSuccess) return err;
  constexpr int V = 16 / sizeof(T);
  const bool vec = cl_vectorized<T>(p);
  unsigned blocks;
  const int64_t groups = vec ? p.H / V : p.H;
  if (!grid_for(static_cast<int64_t>(p.B) * grad_runs(p) * groups, kThreadsCL, blocks)) return cudaErrorInvalidValue;
  if (vec) {
    weight_grad_cl<T, V><<<blocks, kThreadsCL, 0, stream>>>(p);
  } else {
    weight_grad_cl<T, 1><<<blocks, kThreadsCL, 0, stream>>>(p);
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

int64_t weight_grad_partials(const Params& p) {
  return static_cast<int64_t>(p.B) * (p.channels_last ? grad_runs(p) : cf_strips(p.L));
}

cudaError_t launch_backward(const Params& p, DType dtype, cudaStream_t stream) {
  if (p.K < 1 || p.K > kMaxWidth) return cudaErrorInvalidValue;
  return by_dtype(dtype, [&](auto tag) { return launch_backward_t<decltype(tag)>(p, stream); });
}

}  // namespace longconv::shortconv
