// Outer passes of the long-sequence FFT convolution (N = M1 * M2 >= 32K points).
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
// The M1-point DFT (M1 = Ra*Rb <= 512) of a column is one register stage for M1 <= 16, else two
// (Ra = 16, Rb <= 32) with one exchange through shared memory: n1 = Rb*a + b, k1 = ka + Ra*kb.
// A block owns C consecutive columns n2 of one pair and one channel. Global memory moves only as
// 16-byte chunks of contiguous row segments (asynchronous copies into shared memory, zero-filled
// past L), with 2-byte accesses as the fallback for rows that are not 16-byte aligned.
#include "../common/device.cuh"
#include "fftconv.h"

namespace longconv::fftconv {

namespace {

constexpr int kOuterThreads = 256;
constexpr int kTileComplex = 4096;  // M1 * C complex values per block (48 KB of shared memory)

// Columns per block; kOuterThreads is a multiple of it and Ra * C >= kOuterThreads. At M1 = 512
// the tile doubles (96 KB; the radix-32 stage holds 2 blocks per SM anyway) so that every
// thread has stage-2 work and row segments stay 32 bytes long.
template <int M1>
__host__ __device__ constexpr int columns_per_block() {
  return M1 >= 512 ? 2 * kTileComplex / M1 : M1 >= 32 ? kTileComplex / M1 : 256;
}

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
  int col0, hl, pl, h, b0, b1;
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
  // Element offset of inner-layout row (part 0, k1 = 0) at column col0; row (part, k1) is
  // part * part_stride() + k1 * M2 further.
  __device__ int64_t inner_base(const OuterParams& p) const {
    return (static_cast<int64_t>(2 * pl) * p.hs * p.M1 + static_cast<int64_t>(hl) * p.M1) * p.M2 + col0;
  }
  __device__ static int64_t part_stride(const OuterParams& p) { return static_cast<int64_t>(p.hs) * p.M1 * p.M2; }
};

// The loops below run a fixed number of rounds per thread (unrolled, so that part and row
// indices are compile-time where the tile shape allows) and use 32-bit offsets within a row:
// the pass is instruction-bound (ncu, v4.2: 78% issue-slot use at 2.1 TB/s), so per-element
// integer work matters as much as the DFTs.
template <int kItems>
__host__ __device__ constexpr int rounds() { return (kItems + kOuterThreads - 1) / kOuterThreads; }

// Copies the block's 2*M1 inner row segments of C bf16 between shared memory ([part][k1][c]) and
// the inner tensor with 16-byte accesses (row starts are multiples of 8 elements: M2 % 8 == 0,
// C % 8 == 0); loads are asynchronous (the caller commits and waits).
template <int M1, int C, bool kLoad>
__device__ __forceinline__ void copy_rows(__nv_bfloat16* rows, __nv_bfloat16* inner, const OuterIndex& ix,
                                          const OuterParams& p) {
  constexpr int kChunks = C / 8, kItems = 2 * M1 * kChunks;
  __nv_bfloat16* base = inner + ix.inner_base(p);
  const int64_t part_stride = OuterIndex::part_stride(p);
#pragma unroll
  for (int j = 0; j < rounds<kItems>(); ++j) {
    const int i = threadIdx.x + j * kOuterThreads;
    if (kItems % kOuterThreads != 0 && i >= kItems) break;
    const int ch = i % kChunks, r = i / kChunks, part = r / M1, k1 = r % M1;
    __nv_bfloat16* g = base + (part ? part_stride : 0) + (k1 * p.M2 + 8 * ch);
    __nv_bfloat16* sm = rows + 8 * i;
    if (kLoad)
      cp_async16(sm, g);
    else
      *reinterpret_cast<uint4*>(g) = *reinterpret_cast<const uint4*>(sm);
  }
}

// The block's sequence segments in shared memory: positions n = n1*M2 + col0 + c (n1 < M1,
// c < C) of rows b0 and b1 at seg[(part*M1 + n1)*C + c]. Positions >= L (implicit zero padding)
// and the missing partner row of an odd batch read as zero and are never written.
template <typename T, int M1, int C>
struct Segments {
  static constexpr int kChunks = C / 8, kVecItems = 2 * M1 * kChunks, kItems = 2 * M1 * C;

  // With 16-byte aligned rows (p.vec_ok) the whole tile goes out as asynchronous 16-byte copies
  // at once (the caller commits and waits): the 2-byte loads they replace kept too few bytes in
  // flight per SM for the pass to reach DRAM bandwidth.
  __device__ static void load(T* seg, const T* src, const OuterIndex& ix, const OuterParams& p) {
    const T* row0 = src + ix.row0;
    const T* row1 = ix.row1 >= 0 ? src + ix.row1 : nullptr;
    if (p.vec_ok) {
#pragma unroll
      for (int j = 0; j < rounds<kVecItems>(); ++j) {
        const int i = threadIdx.x + j * kOuterThreads;
        if (kVecItems % kOuterThreads != 0 && i >= kVecItems) break;
        const int part = i / (M1 * kChunks), n1 = (i / kChunks) % M1, ch = i % kChunks;
        const T* row = part ? row1 : row0;
        const int n = n1 * p.M2 + ix.col0 + 8 * ch;  // < N <= 2^24
        const int valid = row ? min(max(p.L - n, 0), 8) : 0;
        cp_async16_zfill(seg + 8 * i, valid > 0 ? row + n : src, 2 * valid);
      }
    } else {
#pragma unroll 4
      for (int j = 0; j < rounds<kItems>(); ++j) {
        const int i = threadIdx.x + j * kOuterThreads;
        if (kItems % kOuterThreads != 0 && i >= kItems) break;
        const int part = i / (M1 * C), n1 = (i / C) % M1, c = i % C;
        const T* row = part ? row1 : row0;
        const int n = n1 * p.M2 + ix.col0 + c;
        seg[i] = row && n < p.L ? row[n] : from_float<T>(0.f);
      }
    }
  }

  __device__ static void store(const T* seg, T* dst, const OuterIndex& ix, const OuterParams& p) {
    T* row0 = dst + ix.row0;
    T* row1 = ix.row1 >= 0 ? dst + ix.row1 : nullptr;
    if (p.vec_ok) {
#pragma unroll
      for (int j = 0; j < rounds<kVecItems>(); ++j) {
        const int i = threadIdx.x + j * kOuterThreads;
        if (kVecItems % kOuterThreads != 0 && i >= kVecItems) break;
        const int part = i / (M1 * kChunks), n1 = (i / kChunks) % M1, ch = i % kChunks;
        T* row = part ? row1 : row0;
        const int n = n1 * p.M2 + ix.col0 + 8 * ch;
        if (!row || n >= p.L) continue;
        if (n + 8 <= p.L) {
          *reinterpret_cast<uint4*>(row + n) = *reinterpret_cast<const uint4*>(seg + 8 * i);
        } else {
          for (int e = 0; e < p.L - n; ++e) row[n + e] = seg[8 * i + e];
        }
      }
    } else {
#pragma unroll 4
      for (int j = 0; j < rounds<kItems>(); ++j) {
        const int i = threadIdx.x + j * kOuterThreads;
        if (kItems % kOuterThreads != 0 && i >= kItems) break;
        const int part = i / (M1 * C), n1 = (i / C) % M1, c = i % C;
        T* row = part ? row1 : row0;
        const int n = n1 * p.M2 + ix.col0 + c;
        if (row && n < p.L) row[n] = seg[i];
      }
    }
  }
};

// Reads the Ra values x[(Rb*a + b)*M2 + n2] (times the gate) of column c of both rows. A
// non-finite input is zeroed and marks its row (the inverse pass writes that row as NaN; the
// partner row stays exact). One running sum per row detects them: the per-value checks cost
// more instructions than the DFT.
template <typename T, int Ra, int Rb, int C>
__device__ __forceinline__ void read_column(float (&re)[Ra], float (&im)[Ra], const T* seg, const T* gate_seg,
                                            int b, int c, bool& bad0, bool& bad1) {
  constexpr int kTile = Ra * Rb * C;
  float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
  for (int a = 0; a < Ra; ++a) {
    const int s = (Rb * a + b) * C + c;
    re[a] = to_float(seg[s]);
    im[a] = to_float(seg[kTile + s]);
    if (gate_seg) {
      re[a] *= to_float(gate_seg[s]);
      im[a] *= to_float(gate_seg[kTile + s]);
    }
    sum0 += re[a];
    sum1 += im[a];
  }
  if (!isfinite(sum0) || !isfinite(sum1)) {  // rare (or a finite overflow of the sum)
#pragma unroll
    for (int a = 0; a < Ra; ++a) {
      if (!isfinite(re[a])) bad0 = true, re[a] = 0.f;
      if (!isfinite(im[a])) bad1 = true, im[a] = 0.f;
    }
  }
}

// Blocks per SM the register budget is set for: a radix-32 stage holds 64 values per thread.
template <int Rb>
__host__ __device__ constexpr int min_blocks() { return Rb > 16 ? 2 : 4; }

// Shared memory (bytes) of a block: the float2 exchange tile (Rb > 1 only), the data tile of
// 16-bit values (sequence segments or inner rows, 2 * M1 * C), and with a gate its segments.
template <int Ra, int Rb>
constexpr int outer_smem_bytes(bool gated) {
  constexpr int kTile = Ra * Rb * columns_per_block<Ra * Rb>();
  return (Rb > 1 ? kTile * static_cast<int>(sizeof(float2)) : 0) + (gated ? 2 : 1) * 2 * kTile * 2;
}

// Sequence (B, H, L) of T -> inner layout (2*pairs, hs*M1, M2) of bf16.
template <typename T, int Ra, int Rb>
__global__ void __launch_bounds__(kOuterThreads, min_blocks<Rb>()) outer_forward_kernel(OuterParams p) {
  constexpr int M1 = Ra * Rb, C = columns_per_block<M1>(), kTile = M1 * C;
  using Seg = Segments<T, M1, C>;
  extern __shared__ float2 smem[];
  float2* tile = smem;  // [ka][b][c], Rb > 1
  T* seg = reinterpret_cast<T*>(smem + (Rb > 1 ? kTile : 0));
  T* gate_seg = p.gate ? seg + 2 * kTile : nullptr;
  // The bf16 rows [part][k1][c] overwrite the segments: column c of the rows is written only
  // after every read of column c of the segments.
  __nv_bfloat16* rows = reinterpret_cast<__nv_bfloat16*>(seg);
  const OuterIndex ix(p, C);
  Seg::load(seg, static_cast<const T*>(p.x), ix, p);
  if (gate_seg) Seg::load(gate_seg, static_cast<const T*>(p.gate), ix, p);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  const float scale = rsqrtf(static_cast<float>(M1));
  bool bad0 = false, bad1 = false;

  if constexpr (Rb == 1) {
    // One stage: the M1-point DFT of column c in registers, then W_N^(n2 k1) * scale by
    // recurrence (k1 = ka), written in place of the column. One column per thread.
    static_assert(C == kOuterThreads, "one column per thread");
    const int c = threadIdx.x, n2 = ix.col0 + c;
    float re[Ra], im[Ra];
    read_column<T, Ra, 1, C>(re, im, seg, gate_seg, 0, c, bad0, bad1);
    small_dft<Ra, false>(re, im);
    const float2 step = root<false>(n2, p.N);
    float2 w = make_float2(scale, 0.f);
#pragma unroll
    for (int k1 = 0; k1 < M1; ++k1) {
      if (k1 > 0) w = cmul(w, step);
      twiddle(re[k1], im[k1], w);
      rows[k1 * C + c] = __float2bfloat16_rn(re[k1]);
      rows[(M1 + k1) * C + c] = __float2bfloat16_rn(im[k1]);
    }
  } else {
    // Stage 1: DFT over a of x[(Rb*a + b)*M2 + n2] for each (b, c), times W_M1^(b ka).
#pragma unroll
    for (int j = 0; j < rounds<Rb * C>(); ++j) {
      const int i = threadIdx.x + j * kOuterThreads;
      if ((Rb * C) % kOuterThreads != 0 && i >= Rb * C) break;
      const int c = i % C, b = i / C;
      float re[Ra], im[Ra];
      read_column<T, Ra, Rb, C>(re, im, seg, gate_seg, b, c, bad0, bad1);
      small_dft<Ra, false>(re, im);
      // W_M1^(b ka) = step^ka: one sincos per item, not per element
      const float2 step = root<false>(b, M1);
      float2 w = make_float2(1.f, 0.f);
#pragma unroll
      for (int ka = 0; ka < Ra; ++ka) {
        if (ka > 0) {
          w = cmul(w, step);
          twiddle(re[ka], im[ka], w);
        }
        tile[(ka * Rb + b) * C + c] = make_float2(re[ka], im[ka]);
      }
    }
    __syncthreads();

    // Stage 2: DFT over b for each (ka, c) -> k1 = ka + Ra*kb, times scale * W_N^(n2 k1), as bf16
    // rows in shared memory. A thread keeps its column: items ka = ka0, ka0 + kStride, ..., so
    // W_N^(n2 k1) is W_N^(n2 ka0) * (W_N^(n2 kStride))^j * (W_N^(n2 Ra))^kb: three sincos per thread.
    constexpr int kStride = kOuterThreads / C;
    const int c = threadIdx.x % C, n2 = ix.col0 + c;
    const float2 step_j = root<false>(n2 * kStride, p.N), step = root<false>(n2 * Ra, p.N);
    float2 w_ka = root<false>(n2 * (threadIdx.x / C), p.N);
    w_ka = make_float2(w_ka.x * scale, w_ka.y * scale);
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
        if (kb > 0) w = cmul(w, step);
        twiddle(re[kb], im[kb], w);
        rows[k1 * C + c] = __float2bfloat16_rn(re[kb]);
        rows[(M1 + k1) * C + c] = __float2bfloat16_rn(im[kb]);
      }
    }
  }
  if (bad0) p.bad_rows[ix.b0 * p.H + ix.h] = 1;
  if (bad1) p.bad_rows[ix.b1 * p.H + ix.h] = 1;
  __syncthreads();
  copy_rows<M1, C, false>(rows, static_cast<__nv_bfloat16*>(p.out), ix, p);
}

// Inner layout (2*pairs, hs*M1, M2) of bf16 -> sequence (B, H, L) of T (positions < L only).
template <typename T, int Ra, int Rb>
__global__ void __launch_bounds__(kOuterThreads, min_blocks<Rb>()) outer_inverse_kernel(OuterParams p) {
  constexpr int M1 = Ra * Rb, C = columns_per_block<M1>(), kTile = M1 * C;
  using Seg = Segments<T, M1, C>;
  extern __shared__ float2 smem[];
  float2* tile = smem;  // [b][ka][c], Rb > 1
  __nv_bfloat16* rows = reinterpret_cast<__nv_bfloat16*>(smem + (Rb > 1 ? kTile : 0));
  T* gate_seg = p.gate ? reinterpret_cast<T*>(rows + 2 * kTile) : nullptr;
  // The output segments [part][n1][c] overwrite the rows (column by column, as in the forward).
  T* seg = reinterpret_cast<T*>(rows);
  const OuterIndex ix(p, C);
  const float scale = rsqrtf(static_cast<float>(M1));
  copy_rows<M1, C, true>(rows, const_cast<__nv_bfloat16*>(static_cast<const __nv_bfloat16*>(p.x)), ix, p);
  if (gate_seg) Seg::load(gate_seg, static_cast<const T*>(p.gate), ix, p);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  const bool bad0 = p.bad_rows[ix.b0 * p.H + ix.h] != 0;
  const bool bad1 = ix.row1 >= 0 && p.bad_rows[ix.b1 * p.H + ix.h] != 0;
  const float kNaN = __int_as_float(0x7fc00000);

  // Writes the Ra outputs y[(Rb*a + b)*M2 + n2] of column c (times the gate) to the segments.
  const auto write_column = [&](const float(&re)[Ra], const float(&im)[Ra], int b, int c) {
#pragma unroll
    for (int a = 0; a < Ra; ++a) {
      const int s = (Rb * a + b) * C + c;
      float v0 = bad0 ? kNaN : re[a], v1 = bad1 ? kNaN : im[a];
      if (gate_seg) {
        v0 *= to_float(gate_seg[s]);
        v1 *= to_float(gate_seg[kTile + s]);
      }
      seg[s] = from_float<T>(v0);
      seg[kTile + s] = from_float<T>(v1);
    }
  };

  if constexpr (Rb == 1) {
    static_assert(C == kOuterThreads, "one column per thread");
    const int c = threadIdx.x, n2 = ix.col0 + c;
    float re[Ra], im[Ra];
    const float2 step = root<true>(n2, p.N);
    float2 w = make_float2(scale, 0.f);
#pragma unroll
    for (int k1 = 0; k1 < M1; ++k1) {
      if (k1 > 0) w = cmul(w, step);
      re[k1] = __bfloat162float(rows[k1 * C + c]);
      im[k1] = __bfloat162float(rows[(M1 + k1) * C + c]);
      twiddle(re[k1], im[k1], w);
    }
    small_dft<Ra, true>(re, im);
    write_column(re, im, 0, c);
  } else {
    // Stage 1: inverse DFT over kb of scale * W_N^(-n2 k1) C[ka + Ra*kb][n2] for each (ka, c),
    // times W_M1^(-b ka).
    constexpr int kStride = kOuterThreads / C;  // as in the forward's stage 2
    const int c = threadIdx.x % C, n2 = ix.col0 + c;
    const float2 step_j = root<true>(n2 * kStride, p.N), step = root<true>(n2 * Ra, p.N);
    float2 w_ka = root<true>(n2 * (threadIdx.x / C), p.N);
    w_ka = make_float2(w_ka.x * scale, w_ka.y * scale);
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
        if (b > 0) {
          w1 = cmul(w1, step1);
          twiddle(re[b], im[b], w1);
        }
        tile[(b * Ra + ka) * C + c] = make_float2(re[b], im[b]);
      }
    }
    __syncthreads();

    // Stage 2: inverse DFT over ka for each (b, c) -> n1 = Rb*a + b.
#pragma unroll
    for (int j = 0; j < rounds<Rb * C>(); ++j) {
      const int i = threadIdx.x + j * kOuterThreads;
      if ((Rb * C) % kOuterThreads != 0 && i >= Rb * C) break;
      const int c = i % C, b = i / C;
      if (b * p.M2 + ix.col0 + c >= p.L) continue;  // every output of this column is past L
      float re[Ra], im[Ra];
#pragma unroll
      for (int ka = 0; ka < Ra; ++ka) {
        const float2 v = tile[(b * Ra + ka) * C + c];
        re[ka] = v.x;
        im[ka] = v.y;
      }
      small_dft<Ra, true>(re, im);
      write_column(re, im, b, c);
    }
  }
  __syncthreads();
  Seg::store(seg, static_cast<T*>(p.out), ix, p);
}

template <typename T, int Ra, int Rb>
cudaError_t launch_outer(const OuterParams& p, bool inverse, cudaStream_t stream) {
  constexpr int C = columns_per_block<Ra * Rb>();
  if (p.M2 % C != 0 || p.hs > 65535 || p.pairs > 65535) return cudaErrorInvalidValue;
  const auto kernel = inverse ? outer_inverse_kernel<T, Ra, Rb> : outer_forward_kernel<T, Ra, Rb>;
  const int smem = outer_smem_bytes<Ra, Rb>(p.gate != nullptr);  // <= 48 KB (+16 KB with a gate); 96 KB at M1 = 512
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  kernel<<<dim3(p.M2 / C, p.hs, p.pairs), kOuterThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_outer_pass(const OuterParams& p, DType dtype, bool inverse, cudaStream_t stream) {
  if (p.M1 * static_cast<int64_t>(p.M2) != p.N) return cudaErrorInvalidValue;
  // M1 = Ra * Rb with the first stage as large as possible (ops/fftconv/long.py outer_radices)
  return dispatch<2, 4, 8, 16, 32, 64, 128, 256, 512>(p.M1, [&](auto m1) {
    constexpr int M1 = decltype(m1)::value, Ra = M1 < 16 ? M1 : 16;
    return dispatch<DType::kBF16, DType::kFP16>(dtype, [&](auto d) {
      return launch_outer<element_t<decltype(d)::value>, Ra, M1 / Ra>(p, inverse, stream);
    });
  });
}

}  // namespace longconv::fftconv
