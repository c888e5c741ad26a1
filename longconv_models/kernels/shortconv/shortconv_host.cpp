// Host side of the short depthwise conv (shortconv.cu): argument checks, allocation, launches.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../common/torch_checks.h"
#include "shortconv.h"
#include "shortconv_host.h"

namespace longconv::shortconv {
namespace {

DType short_dtype(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat: return DType::kF32;
    case at::kBFloat16: return DType::kBF16;
    case at::kHalf: return DType::kFP16;
    default: CHECK_ARG(false, "short conv kernel takes fp32/bf16/fp16 inputs, got ", x.scalar_type());
  }
}

// The launch parameters of x (B, H, L) or (B, L, H) and the fp32 weight w (H, K).
Params short_params(const at::Tensor& x, const at::Tensor& w, int64_t pad_left, bool channels_last) {
  CHECK_CUDA_TENSOR(w, "weight");
  CHECK_ARG(w.dim() == 2 && w.scalar_type() == at::kFloat, "weight must be (H, K) float32");
  const int64_t K = w.size(1);
  CHECK_CUDA_TENSOR(x, "x");
  CHECK_ARG(x.dim() == 3, "x must be 3-D, got ", x.sizes());
  CHECK_ARG(K >= 1 && K <= kMaxWidth, "kernel size must be in [1, ", kMaxWidth, "], got ", K);
  CHECK_ARG(pad_left >= 0 && pad_left < K, "pad_left must be in [0, K), got ", pad_left);
  Params p{};
  p.B = static_cast<int>(x.size(0));
  p.H = static_cast<int>(channels_last ? x.size(2) : x.size(1));
  p.L = static_cast<int>(channels_last ? x.size(1) : x.size(2));
  CHECK_ARG(p.B > 0 && p.H > 0 && p.L > 0, "x is empty: ", x.sizes());
  p.K = static_cast<int>(K);
  p.pad_left = static_cast<int>(pad_left);
  p.channels_last = channels_last;
  CHECK_ARG(w.size(0) == p.H && w.device() == x.device(), "weight must be (H, K) on x's device");
  p.x = x.data_ptr();
  p.w = w.data_ptr<float>();
  return p;
}

}  // namespace

at::Tensor shortconv_fwd(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                            int64_t pad_left, bool channels_last, bool reverse_taps) {
  auto p = short_params(x, w, pad_left, channels_last);
  if (bias) {
    CHECK_CUDA_TENSOR(*bias, "bias");
    CHECK_ARG(bias->dim() == 1 && bias->size(0) == p.H && bias->scalar_type() == at::kFloat &&
                    bias->device() == x.device(),
                "bias must be (H,) float32 on x's device");
  }
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = at::empty_like(x);
  p.reverse_taps = reverse_taps;
  p.bias = bias ? bias->data_ptr<float>() : nullptr;
  p.y = y.data_ptr();
  const cudaError_t err = launch_forward(p, short_dtype(x), c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "short conv");
  return y;
}

std::tuple<at::Tensor, at::Tensor> shortconv_bwd(const at::Tensor& x, const at::Tensor& dy, const at::Tensor& w,
                                                int64_t pad_left, bool channels_last) {
  auto p = short_params(x, w, pad_left, channels_last);
  check_like(dy, x, "dy");
  const c10::cuda::CUDAGuard guard(x.device());
  auto dx = at::empty_like(x);
  auto partial = at::empty({weight_grad_partials(p), p.H, p.K + 1}, x.options().dtype(at::kFloat));
  p.dy = dy.data_ptr();
  p.y = dx.data_ptr();
  p.dw_partial = partial.data_ptr<float>();
  const cudaError_t err = launch_backward(p, short_dtype(x), c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "short conv backward");
  return {dx, partial};
}

}  // namespace longconv::shortconv
