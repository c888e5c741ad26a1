// Host side of the short depthwise conv: the torch entry points kernels/binding.cpp exposes.
#pragma once

#include <optional>
#include <tuple>

#include <ATen/ATen.h>

namespace longconv::shortconv {

// y = causal (pad_left = K - 1) or centred depthwise conv of x with w (H, K) and bias;
// reverse_taps: the correlation (the input gradient).
at::Tensor shortconv_fwd(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                         int64_t pad_left, bool channels_last, bool reverse_taps);
// (dx, partials): the input gradient and (partials, H, K + 1) float32 partial sums of the
// weight (and, last column, bias) gradient, from the forward's x and w and the output gradient dy.
std::tuple<at::Tensor, at::Tensor> shortconv_bwd(const at::Tensor& x, const at::Tensor& dy, const at::Tensor& w,
                                                int64_t pad_left, bool channels_last);

}  // namespace longconv::shortconv
