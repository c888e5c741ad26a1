// Parameters of the fused FFT-convolution kernels, shared by the host binding and the device
// code (no torch headers here, so the .cu files compile quickly).
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "../common/dispatch.h"

namespace longconv::fftconv {

using longconv::DType;  // the kernels take kBF16 and kFP16

// Size limits, checked by the host code; ops/fftconv/plan.py and long.py hold the same numbers
// (tests/kernels/test_plan_constants.py reads them from here).
constexpr int kMinFFTSize = 256;          // the fused kernel: 256 .. 32768 points per block
constexpr int kMaxFusedFFTSize = 32768;
constexpr int kMaxOuter = 512;            // the long path: N = M1 * M2, M1 <= 512,
constexpr int kMinInner = 4096;           // 4096 <= M2 <= kMaxFusedFFTSize
constexpr int kMaxLongFFTSize = 1 << 22;  // 4M points

// The tensor-core DFT fragments hold c * F (F the unitary 16-point DFT): bf16 rounds
// cos(pi/8) / 4 with a 2.1e-3 relative error, the largest single term of the data path's error;
// times c = 145/128 every value of F rounds within 3.0e-4 (c has 8 significant bits, so the +-1/4
// entries stay exact). The kernels undo c in fp32 (fftconv_kernel.cuh: dft_scale). fp16's
// fragments round within 3.0e-4 unscaled. ops/fftconv/fused.py scales the low-band table alike.
constexpr float kBf16DftScale = 1.1328125f;

// Largest FFT size of the fp32 shared-memory filter transforms (filter_to_slots and the taps'
// gradient, launch_partials_to_taps_grad): an N/2-point complex FFT, 64 KB of buffers.
constexpr int kFilterTransformMaxFFTSize = 8192;

// The filter spectrum from the kernel's own forward FFT (bf16 tensor cores; bf16 calls): from
// time-domain taps (k != nullptr: the circular filter of k and k_rev, a real row, as part 0 of
// pair 0) or from the long path's filter rows (the outer pass over the taps; Params::u, B = 2: the
// rows' real and imaginary planes). out[h] = scale * F(row h) + bias[h / rows_per_channel] in slot
// order (the layout of Params::k_slots). Either its own kernel (launch_filter_spectrum, one block
// per row) or, from taps, the prologue of the forward kernel (Params::filter).
struct FilterSource {
  const float* k = nullptr;           // (H, Lk) causal taps, or nullptr: rows in Params::u
  const float* k_rev = nullptr;       // (H, Lr) anti-causal taps: k_rev[j] at position N - 1 - j
  int Lk = 0, Lr = 0;
  const float* bias = nullptr;        // (channels,): the D term, flat over frequency
  const int* bad_channels = nullptr;  // (channels,): nonzero -> the channel's slots are NaN
  int rows_per_channel = 1;           // M1 (rows source)
  // Rows source of a real filter: K[N - f] = conj K[f], so row M1 - k1 at inner frequency
  // M2 - 1 - k2 mirrors row k1 at k2. One block per row k1 <= M1 / 2 writes both.
  bool mirror_rows = false;
  float scale = 1.f;                  // sqrt(fft size): the kernel's DFTs are unitary
  float2* out = nullptr;              // (H, N) slots, fp32
  uint32_t* out_bf16 = nullptr;       // or as bf16 (re, im) pairs (Params::k_slots_bf16)
};

struct Params {
  // Sequences are (B, H, L) row-major tensors of 16-bit elements; the filter has H channels.
  int B, H, L;
  int N;                // FFT size (power of two, 256 .. 32768)
  int pairs_per_step;   // P: pairs of batch rows a block transforms at once (set by the launcher)
  bool vec_ok;          // every row start is 16-byte aligned (L % 8 == 0 and aligned bases)
  bool use_staging;     // prefetch the next pass's rows into shared memory (set by the launcher)

  // Forward: y = post * conv(pre * u). Backward pass inputs reuse u/pre/post.
  const void* u = nullptr;
  const void* pre = nullptr;   // optional
  const void* post = nullptr;  // optional
  void* y = nullptr;

  // Backward.
  const void* dy = nullptr;
  void* du = nullptr;
  void* dpre = nullptr;        // optional (with pre)
  void* dpost = nullptr;       // optional (with post)
  float2* x_scratch = nullptr; // (grid blocks, P, N): spectra of pass 1, private to each block
  float2* s_partial = nullptr; // (chunks, H, P, N): per-block filter-gradient accumulators

  const float2* k_slots = nullptr;   // (H, N) full filter spectrum in kernel slot order
  const uint32_t* k_slots_bf16 = nullptr;  // or the same as bf16 (re, im) pairs (the long path's rows)
  // Forward only. A frequency-sparse filter whose spectrum is zero at |f| >= N/4, in the low-band
  // slot order (the core's columns rotated, ops/fftconv/fused.py slot_frequencies(low_band=True)): the
  // core computes half of its last DFT stage. lowband_dft holds its DFT fragments (32 lanes x 12).
  const uint32_t* lowband_dft = nullptr;
  // Forward only (bf16): with filter.k set, each block first computes its channel's spectrum from
  // the taps into filter.out (== k_slots; read back with coherent loads).
  FilterSource filter{};
  const float2* tw_stage = nullptr;  // (16, 256) radix-16 stage twiddles, slot layout of a tile
  const float2* tw_core = nullptr;   // (16, 256) the same twiddles at the core's output slots
};

// Outer pass of the long-sequence path (N = M1 * M2, see fftconv_outer.cu) over one chunk:
// batch pairs [pair0, pair0 + pairs) x channels [h0, h0 + hs).
struct OuterParams {
  int B, H, L;       // the (B, H, L) sequence tensor
  int N, M1, M2;     // N = M1 * M2; M1 in {2, 4, .., 512}
  int pair0, pairs;
  int h0, hs;
  const void* x = nullptr;     // forward: sequences (B, H, L); inverse: inner rows (2*pairs, hs*M1, M2) bf16
  const void* gate = nullptr;  // optional (B, H, L): multiplies the input (forward) / output (inverse)
  void* out = nullptr;         // forward: inner rows; inverse: sequences
  int* bad_rows = nullptr;     // (B, H): set by the forward pass for rows with a non-finite input
  bool vec_ok = false;         // sequence (and gate) rows start 16-byte aligned: L % 8 == 0, aligned bases
};

// Launch geometry the host needs to allocate the backward's scratch buffers.
struct Geometry {
  int pairs_per_step;
  int chunks;        // grid.y: blocks per channel
  int threads;
  int smem_bytes;
  bool use_staging;
};

Geometry geometry(const Params& p, bool backward, DType dtype);
cudaError_t launch_forward(const Params& p, DType dtype, cudaStream_t stream);
cudaError_t launch_backward(const Params& p, DType dtype, cudaStream_t stream);

cudaError_t launch_outer_pass(const OuterParams& p, DType dtype, bool inverse, cudaStream_t stream);

// Filter spectrum (H, N/2+1) complex -> full Hermitian spectrum in kernel slot order: (H, N) for
// the fused kernel (M1 = 1), (H, M1, N/M1) for the long path's inner rows; low_band: the
// low-band slot order (Params::lowband_dft).
cudaError_t launch_spectrum_to_slots(const float2* k_f, float2* k_slots, int H, int N, int M1, bool low_band,
                                     cudaStream_t stream);
cudaError_t launch_filter_spectrum(const Params& p, const FilterSource& f, cudaStream_t stream);
cudaError_t launch_filter_to_slots(const float* k, int Lk, const float* k_rev, int Lr, const float* bias,
                                   const float2* twiddle, float2* k_slots, int H, int N, cudaStream_t stream);
// Backward accumulators (chunks, H, P, N) in slot order (M1 = 1; for M1 > 1 the long path's
// (H, M1, N/M1) summed accumulators, chunks = P = 1) -> gradient of the rfft spectrum
// (H, N/2+1) under PyTorch's complex-gradient convention.
// The same accumulators (M1 = 1, N <= 8192) -> the gradient of the circular filter buffer (H, N)
// fp32, d_buf[t] = Re sum_f S_f exp(2 pi i f t / N) (its taps' gradients are slices of it).
// `twiddle`: W_N^j for j < N/2.
cudaError_t launch_partials_to_taps_grad(const float2* s_partial, int chunks, int H, int P, int N,
                                         const float2* twiddle, float* d_buf, cudaStream_t stream);
cudaError_t launch_slots_to_spectrum_grad(const float2* s_partial, float2* dk_f, int chunks, int H, int P, int N,
                                          int M1, cudaStream_t stream);

}  // namespace longconv::fftconv
