// Short depthwise conv1d (kernel size 1..8): parameters and launchers (no torch headers).
//
//   y[b, h, t] = bias[h] + sum_{j < K} w[h, j] * x[b, h, t + j - pad_left]   (zero outside [0, L))
//
// pad_left = K - 1 is the causal conv, pad_left = (K - 1) / 2 PyTorch's padding="same".
// Layouts: channels-first (B, H, L) or channels-last (B, L, H); fp32 / bf16 / fp16 data, fp32
// weights and accumulation. The input gradient is the same conv with flipped weights and
// pad_left' = K - 1 - pad_left; the weight/bias gradients are per-block partial sums.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "../common/dispatch.h"

namespace longconv::shortconv {

constexpr int kMaxWidth = 8;

using longconv::DType;

struct Params {
  int B, H, L, K, pad_left;
  bool channels_last;
  bool reverse_taps = false;    // use w[h, K-1-j] for tap j (the input gradient: a correlation)
  const void* x = nullptr;
  const float* w = nullptr;     // (H, K)
  const float* bias = nullptr;  // (H,) or null
  void* y = nullptr;            // forward: the output; backward: the input gradient
  const void* dy = nullptr;     // backward: the output gradient
  float* dw_partial = nullptr;  // backward: (partials, H, K + 1) weight-gradient sums, last column bias
};

cudaError_t launch_forward(const Params& p, DType dtype, cudaStream_t stream);
// Number of partial sums (rows of dw_partial) the backward writes.
int64_t weight_grad_partials(const Params& p);
// dx (into y) and the weight/bias-gradient partial sums from x, dy and w (reverse_taps false).
cudaError_t launch_backward(const Params& p, DType dtype, cudaStream_t stream);

}  // namespace longconv::shortconv
