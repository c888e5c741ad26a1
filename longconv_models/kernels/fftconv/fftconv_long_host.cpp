// Host side of the long-sequence path (N = 64K .. 4M, and 32K bf16; ops/fftconv/long.py): the outer
// passes, the filter rows' transform and the filter gradient from the summed accumulators.
#include <cmath>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../common/torch_checks.h"
#include "fftconv_host.h"

namespace longconv::fftconv {

// The long path's filter rows (the outer forward pass over the bf16 taps: (2, hs*M1, M2)) -> their
// slots in out (hs, M1, M2, 2) (float32, or bfloat16: half the bytes to write and to read in the
// inner kernel), with the bias added and the channels flagged in bad_channels (hs,)
// (a non-finite tap, zeroed by the outer pass) set to NaN.
void filter_rows_to_slots(const at::Tensor& rows, const at::Tensor& bad_channels,
                          const c10::optional<at::Tensor>& bias, const at::Tensor& out,
                          const at::Tensor& tw_stage, const at::Tensor& tw_core, int64_t fft_size) {
  CHECK_CUDA_TENSOR(rows, "rows");
  CHECK_CUDA_TENSOR(out, "out");
  CHECK_CUDA_TENSOR(bad_channels, "bad_channels");
  CHECK_ARG(rows.scalar_type() == at::kBFloat16 && rows.dim() == 3 && rows.size(0) == 2,
              "rows must be (2, rows, M2) bf16, got ", rows.sizes(), " ", rows.scalar_type());
  const bool bf16_out = out.scalar_type() == at::kBFloat16;
  CHECK_ARG((bf16_out || out.scalar_type() == at::kFloat) && out.dim() == 4 && out.size(3) == 2,
              "out must be (channels, M1, M2, 2) float32 or bfloat16, got ", out.sizes(), " ", out.scalar_type());
  const int64_t channels = out.size(0), M1 = out.size(1), M2 = out.size(2);
  CHECK_ARG(M1 >= 2 && M1 * M2 == fft_size && M2 >= kMinInner && M2 <= kMaxFusedFFTSize / 2 && (M2 & (M2 - 1)) == 0 &&
                  rows.size(1) == channels * M1 && rows.size(2) == M2,
              "rows ", rows.sizes(), " and out ", out.sizes(), " do not match fft_size ", fft_size);
  CHECK_ARG(channels > 0 && channels * M1 <= INT32_MAX, "bad channel count ", channels);
  CHECK_ARG(bad_channels.scalar_type() == at::kInt && bad_channels.numel() == channels,
              "bad_channels must be (", channels, ",) int32");
  CHECK_ARG(aligned16(rows.data_ptr()), "rows must be 16-byte aligned");
  CHECK_ARG(out.device() == rows.device() && bad_channels.device() == rows.device(),
              "rows, out and bad_channels must be on one device");
  FilterSource f{};
  f.bias = optional_channel_vector(bias, channels, rows.device(), "bias");
  f.bad_channels = bad_channels.data_ptr<int>();
  f.rows_per_channel = static_cast<int>(M1);
  f.mirror_rows = true;  // the rows of a real filter: rows k1 > M1/2 are written from their mirrors
  f.scale = std::sqrt(static_cast<float>(fft_size));
  if (bf16_out)
    f.out_bf16 = reinterpret_cast<uint32_t*>(out.data_ptr());
  else
    f.out = reinterpret_cast<float2*>(out.data_ptr<float>());
  Params p{};
  p.B = 2;
  p.H = static_cast<int>(channels * M1);
  p.L = p.N = static_cast<int>(M2);
  p.vec_ok = true;
  p.u = rows.data_ptr();
  attach_twiddles(p, tw_stage, tw_core, rows.device());
  const c10::cuda::CUDAGuard guard(rows.device());
  const cudaError_t err = launch_filter_spectrum(p, f, c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "filter_rows_to_slots");
}

// Summed accumulators (H, outer, N/outer, 2) of the long path -> gradient of the rfft spectrum.
at::Tensor slots_to_spectrum_grad(const at::Tensor& s, int64_t fft_size, int64_t outer) {
  CHECK_CUDA_TENSOR(s, "s");
  check_split(fft_size, outer);
  CHECK_ARG(s.scalar_type() == at::kFloat && s.dim() == 4 && s.size(1) == outer &&
                  s.size(2) == fft_size / outer && s.size(3) == 2 && s.size(0) <= 65535,
              "s must be (H, outer, fft_size/outer, 2) float32, got ", s.sizes());
  const c10::cuda::CUDAGuard guard(s.device());
  auto dk_f = at::empty({s.size(0), fft_size / 2 + 1}, s.options().dtype(at::kComplexFloat));
  const cudaError_t err = launch_slots_to_spectrum_grad(
      reinterpret_cast<const float2*>(s.data_ptr<float>()), reinterpret_cast<float2*>(dk_f.data_ptr()), 1,
      static_cast<int>(s.size(0)), 1, static_cast<int>(fft_size), static_cast<int>(outer),
      c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "slots_to_spectrum_grad");
  return dk_f;
}

// One outer pass of the long-sequence path over a chunk of pairs x channels (fftconv_outer.cu).
// Forward: seq (B, H, L) -> inner (2*pairs, hs*M1, M2) bf16; inverse: inner -> seq.
void fftconv_outer(const at::Tensor& seq, const c10::optional<at::Tensor>& gate, const at::Tensor& inner,
                   const at::Tensor& bad_rows, int64_t fft_size, int64_t M1, int64_t pair0, int64_t h0,
                   bool inverse) {
  CHECK_CUDA_TENSOR(seq, "seq");
  CHECK_CUDA_TENSOR(inner, "inner");
  CHECK_CUDA_TENSOR(bad_rows, "bad_rows");
  CHECK_ARG(seq.dim() == 3 && inner.dim() == 3, "seq and inner must be 3-D");
  const DType dtype = kernel_dtype(seq);
  CHECK_ARG(inner.scalar_type() == at::kBFloat16, "inner rows must be bf16");
  CHECK_ARG(aligned16(inner.data_ptr()), "inner rows must be 16-byte aligned");
  CHECK_ARG(inner.device() == seq.device() && bad_rows.device() == seq.device(), "tensors on different devices");
  CHECK_ARG(M1 >= 2 && M1 <= kMaxOuter && (M1 & (M1 - 1)) == 0, "M1 must be a power of two in [2, ", kMaxOuter, "], got ", M1);
  CHECK_ARG(fft_size % M1 == 0 && fft_size / M1 >= kMinInner && fft_size <= kMaxLongFFTSize &&
                  (fft_size & (fft_size - 1)) == 0,
              "bad fft_size ", fft_size, " for M1=", M1);
  const int64_t B = seq.size(0), H = seq.size(1), L = seq.size(2), M2 = fft_size / M1;
  CHECK_ARG(L > 0 && L <= fft_size, "L=", L, " must be in [1, fft_size=", fft_size, "]");
  CHECK_ARG(inner.size(2) == M2 && inner.size(0) % 2 == 0 && inner.size(1) % M1 == 0, "inner has shape ",
              inner.sizes(), ", expected (2*pairs, hs*", M1, ", ", M2, ")");
  const int64_t pairs = inner.size(0) / 2, hs = inner.size(1) / M1;
  CHECK_ARG(pair0 >= 0 && 2 * (pair0 + pairs) - 1 <= B && h0 >= 0 && h0 + hs <= H, "chunk out of range");
  CHECK_ARG(bad_rows.scalar_type() == at::kInt && bad_rows.numel() == B * H, "bad_rows must be (B, H) int32");
  if (gate) check_like(*gate, seq, "gate");
  OuterParams p{};
  p.B = static_cast<int>(B);
  p.H = static_cast<int>(H);
  p.L = static_cast<int>(L);
  p.N = static_cast<int>(fft_size);
  p.M1 = static_cast<int>(M1);
  p.M2 = static_cast<int>(M2);
  p.pair0 = static_cast<int>(pair0);
  p.pairs = static_cast<int>(pairs);
  p.h0 = static_cast<int>(h0);
  p.hs = static_cast<int>(hs);
  p.x = inverse ? inner.data_ptr() : seq.data_ptr();
  p.out = inverse ? seq.data_ptr() : inner.data_ptr();
  p.gate = gate ? gate->data_ptr() : nullptr;
  p.bad_rows = bad_rows.data_ptr<int>();
  p.vec_ok = L % 8 == 0 && aligned16(seq.data_ptr()) && (!gate || aligned16(gate->data_ptr()));
  const c10::cuda::CUDAGuard guard(seq.device());
  const cudaError_t err =
      launch_outer_pass(p, dtype, inverse, c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "fftconv outer pass");
}

}  // namespace longconv::fftconv
