// Host side of the FFT convolution: the torch entry points (argument checks, allocation, launches)
// that kernels/binding.cpp exposes to Python, and the helpers the host files share.
#pragma once

#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "fftconv.h"

namespace longconv::fftconv {

using OptTensor = std::optional<at::Tensor>;

// ---- the fused kernel (fftconv_host.cpp) ----
// y = post * conv(pre * u, filter in slot order); lowband_dft: k_slots in the low-band order.
at::Tensor fftconv_fwd(const at::Tensor& u, const at::Tensor& k_slots, const OptTensor& pre, const OptTensor& post,
                       const at::Tensor& tw_stage, const at::Tensor& tw_core, int64_t fft_size,
                       const OptTensor& lowband_dft);
// (du, the spectrum gradient or raw slot accumulators, dpre, dpost)
std::vector<at::Tensor> fftconv_bwd(const at::Tensor& dy, const at::Tensor& u, const at::Tensor& k_slots,
                                    const OptTensor& pre, const OptTensor& post, const at::Tensor& tw_stage,
                                    const at::Tensor& tw_core, int64_t fft_size, bool raw_filter_grad);
// The taps route: (y, the filter in slot order) from time-domain taps in one call.
std::vector<at::Tensor> fftconv_fwd_taps(const at::Tensor& u, const at::Tensor& k, const OptTensor& k_rev,
                                         const OptTensor& bias, const at::Tensor& twiddle, const OptTensor& pre,
                                         const OptTensor& post, const at::Tensor& tw_stage, const at::Tensor& tw_core,
                                         int64_t fft_size, bool fp32_filter);
// The taps route as a C++ autograd node (the eager training route at the fused sizes).
at::Tensor fftconv_taps_autograd(const at::Tensor& u, const at::Tensor& k, const OptTensor& k_rev,
                                 const OptTensor& bias, const OptTensor& pre, const OptTensor& post,
                                 const at::Tensor& twiddle, const at::Tensor& tw_stage, const at::Tensor& tw_core,
                                 const at::Tensor& adjoint_weights, int64_t fft_size, bool fp32_filter);

// ---- filter transforms (fftconv_host.cpp) ----
at::Tensor spectrum_to_slots(const at::Tensor& k_f, int64_t fft_size, int64_t outer, bool low_band);
at::Tensor filter_to_slots(const at::Tensor& k, const OptTensor& k_rev, const OptTensor& bias,
                           const at::Tensor& twiddle, int64_t fft_size);
at::Tensor filter_spectrum_slots(const at::Tensor& k, const OptTensor& k_rev, const OptTensor& bias,
                                 const at::Tensor& tw_stage, const at::Tensor& tw_core, int64_t fft_size);

// ---- the long path (fftconv_long_host.cpp) ----
void fftconv_outer(const at::Tensor& seq, const OptTensor& gate, const at::Tensor& inner, const at::Tensor& bad_rows,
                   int64_t fft_size, int64_t M1, int64_t pair0, int64_t h0, bool inverse);
void filter_rows_to_slots(const at::Tensor& rows, const at::Tensor& bad_channels, const OptTensor& bias,
                          const at::Tensor& out, const at::Tensor& tw_stage, const at::Tensor& tw_core,
                          int64_t fft_size);
at::Tensor slots_to_spectrum_grad(const at::Tensor& s, int64_t fft_size, int64_t outer);

// ---- shared by the host files ----
DType kernel_dtype(const at::Tensor& u);
void attach_twiddles(Params& p, const at::Tensor& tw_stage, const at::Tensor& tw_core, const c10::Device& device);
void check_split(int64_t fft_size, int64_t outer);
const float* optional_channel_vector(const OptTensor& t, int64_t n, const c10::Device& device, const char* name);

}  // namespace longconv::fftconv
