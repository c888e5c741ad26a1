// Host side of the fused FFT convolution (256 .. 32K points): parameters, the forward and backward
// launches, the filter transforms into the kernel's slot order, and the taps route's autograd node.
#include <cmath>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/custom_function.h>

#include "../common/torch_checks.h"
#include "fftconv_host.h"

namespace longconv::fftconv {

DType kernel_dtype(const at::Tensor& u) {
  if (u.scalar_type() == at::kBFloat16) return DType::kBF16;
  CHECK_ARG(u.scalar_type() == at::kHalf, "fftconv kernel takes bf16 or fp16 inputs, got ", u.scalar_type());
  return DType::kFP16;
}

// Checks the twiddle tables (on `device`) and points the kernel parameters at them.
void attach_twiddles(Params& p, const at::Tensor& tw_stage, const at::Tensor& tw_core,
                     const c10::Device& device) {
  for (const auto* tw : {&tw_stage, &tw_core}) {
    CHECK_CUDA_TENSOR(*tw, "twiddle table");
    CHECK_ARG(tw->scalar_type() == at::kFloat && tw->numel() == 16 * 32 * 8 * 2 && tw->device() == device,
                "bad twiddle table");
  }
  p.tw_stage = reinterpret_cast<const float2*>(tw_stage.data_ptr<float>());
  p.tw_core = reinterpret_cast<const float2*>(tw_core.data_ptr<float>());
}

void check_split(int64_t fft_size, int64_t outer) {
  CHECK_ARG(outer >= 1 && outer <= kMaxOuter && (outer & (outer - 1)) == 0, "outer must be a power of two <= ", kMaxOuter, ", got ",
              outer);
  const int64_t inner = fft_size / outer;
  CHECK_ARG((fft_size & (fft_size - 1)) == 0 && inner >= (outer > 1 ? kMinInner : kMinFFTSize) && inner <= kMaxFusedFFTSize,
              "bad fft_size ", fft_size, " for outer=", outer);
}

const float* optional_channel_vector(const c10::optional<at::Tensor>& t, int64_t n, const c10::Device& device,
                                     const char* name) {
  if (!t) return nullptr;
  CHECK_ARG(t->is_cuda() && t->is_contiguous(), name, " must be a contiguous CUDA tensor");
  CHECK_ARG(t->scalar_type() == at::kFloat && t->dim() == 1 && t->size(0) == n && t->device() == device, name,
              " must be (", n, ",) float32 on the filter's device, got ", t->sizes(), " ", t->scalar_type());
  return t->data_ptr<float>();
}

namespace {

Params make_params(const at::Tensor& u, const at::Tensor& k_slots, const c10::optional<at::Tensor>& pre,
                   const c10::optional<at::Tensor>& post, const at::Tensor& tw_stage,
                   const at::Tensor& tw_core, int64_t fft_size) {
  CHECK_CUDA_TENSOR(u, "u");
  CHECK_ARG(u.dim() == 3, "u must be (B, H, L), got ", u.sizes());
  kernel_dtype(u);
  const int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  CHECK_ARG(B > 0 && H > 0 && L > 0, "u is empty: ", u.sizes());
  CHECK_ARG(fft_size >= kMinFFTSize && fft_size <= kMaxFusedFFTSize && (fft_size & (fft_size - 1)) == 0,
              "fft_size must be a power of two in [", kMinFFTSize, ", ", kMaxFusedFFTSize, "], got ", fft_size);
  CHECK_ARG(L <= fft_size, "L=", L, " exceeds fft_size=", fft_size);
  CHECK_ARG(H <= 65535 * 1024 && B < (int64_t(1) << 31), "tensor too large");
  CHECK_CUDA_TENSOR(k_slots, "k_slots");
  const bool bf16_slots = k_slots.scalar_type() == at::kBFloat16;
  CHECK_ARG((bf16_slots || k_slots.scalar_type() == at::kFloat) && k_slots.dim() == 3 &&
                  k_slots.size(0) == H && k_slots.size(1) == fft_size && k_slots.size(2) == 2,
              "k_slots must be (H, fft_size, 2) float32 or bfloat16, got ", k_slots.sizes(), " ",
              k_slots.scalar_type());
  CHECK_ARG(k_slots.device() == u.device(), "k_slots must be on u's device");
  if (pre) check_like(*pre, u, "pre_gate");
  if (post) check_like(*post, u, "post_gate");

  Params p{};
  p.B = static_cast<int>(B);
  p.H = static_cast<int>(H);
  p.L = static_cast<int>(L);
  p.N = static_cast<int>(fft_size);
  p.u = u.data_ptr();
  p.pre = pre ? pre->data_ptr() : nullptr;
  p.post = post ? post->data_ptr() : nullptr;
  if (bf16_slots)
    p.k_slots_bf16 = reinterpret_cast<const uint32_t*>(k_slots.data_ptr());
  else
    p.k_slots = reinterpret_cast<const float2*>(k_slots.data_ptr<float>());
  attach_twiddles(p, tw_stage, tw_core, u.device());
  return p;
}

void finish_vec_ok(Params& p, std::initializer_list<const void*> ptrs) {
  bool ok = p.L % 8 == 0;
  for (const void* ptr : ptrs) ok = ok && aligned16(ptr);
  p.vec_ok = ok;
}

at::Tensor run_forward(Params& p, const at::Tensor& u) {
  const c10::cuda::CUDAGuard guard(u.device());
  auto y = at::empty_like(u);
  p.y = y.data_ptr();
  finish_vec_ok(p, {p.u, p.pre, p.post, p.y});
  const cudaError_t err = launch_forward(p, kernel_dtype(u), c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "fftconv forward");
  return y;
}

}  // namespace

at::Tensor fftconv_fwd(const at::Tensor& u, const at::Tensor& k_slots,
                          const c10::optional<at::Tensor>& pre, const c10::optional<at::Tensor>& post,
                          const at::Tensor& tw_stage, const at::Tensor& tw_core, int64_t fft_size,
                          const c10::optional<at::Tensor>& lowband_dft) {
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  if (lowband_dft) {  // k_slots is then in the low-band slot order (the caller's contract)
    CHECK_ARG(p.k_slots != nullptr, "the low-band kernels take float32 k_slots");
    CHECK_CUDA_TENSOR(*lowband_dft, "lowband_dft");
    CHECK_ARG(lowband_dft->scalar_type() == at::kInt && lowband_dft->numel() == 32 * 12 &&
                    lowband_dft->device() == u.device(),
                "lowband_dft must be a (32, 12) int32 table on u's device");
    p.lowband_dft = reinterpret_cast<const uint32_t*>(lowband_dft->data_ptr<int32_t>());
  }
  return run_forward(p, u);
}

namespace {

// The fused backward kernel over (dy, u): du and the gates' gradients, and the per-block
// accumulators of the filter gradient (what the filter-gradient paths below reduce).
struct BackwardPass {
  at::Tensor du, dpre, dpost;  // dpre / dpost undefined without their gate
  at::Tensor s_partial;        // (chunks, H, P, N, 2) fp32
  Geometry geo;
  int H, N;
};

BackwardPass run_backward(const at::Tensor& dy, const at::Tensor& u, const at::Tensor& k_slots,
                          const c10::optional<at::Tensor>& pre, const c10::optional<at::Tensor>& post,
                          const at::Tensor& tw_stage, const at::Tensor& tw_core, int64_t fft_size) {
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  check_like(dy, u, "dy");
  const c10::cuda::CUDAGuard guard(u.device());
  const DType dtype = kernel_dtype(u);
  BackwardPass r;
  r.du = at::empty_like(u);
  if (pre) r.dpre = at::empty_like(u);
  if (post) r.dpost = at::empty_like(u);
  p.dy = dy.data_ptr();
  p.du = r.du.data_ptr();
  p.dpre = pre ? r.dpre.data_ptr() : nullptr;
  p.dpost = post ? r.dpost.data_ptr() : nullptr;
  finish_vec_ok(p, {p.u, p.pre, p.post, p.dy, p.du, p.dpre, p.dpost});
  r.geo = geometry(p, /*backward=*/true, dtype);
  r.H = p.H;
  r.N = p.N;
  // Per-block scratch (accumulators, then the spectra of pass 1), one allocation: fully written by
  // each block's first step, so no initialisation needed.
  const int64_t slots = int64_t(r.geo.chunks) * p.H * r.geo.pairs_per_step * p.N * 2;
  auto scratch = at::empty({2, slots}, u.options().dtype(at::kFloat));
  r.s_partial = scratch[0];
  p.s_partial = reinterpret_cast<float2*>(r.s_partial.data_ptr<float>());
  p.x_scratch = reinterpret_cast<float2*>(scratch[1].data_ptr<float>());
  const cudaError_t err = launch_backward(p, dtype, c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "fftconv backward");
  return r;
}

// Gradient of the rfft spectrum (H, N/2+1) complex64 from the accumulators.
at::Tensor spectrum_grad(const BackwardPass& r) {
  auto dk_f = at::empty({r.H, r.N / 2 + 1}, r.du.options().dtype(at::kComplexFloat));
  const cudaError_t err = launch_slots_to_spectrum_grad(
      reinterpret_cast<const float2*>(r.s_partial.data_ptr<float>()), reinterpret_cast<float2*>(dk_f.data_ptr()),
      r.geo.chunks, r.H, r.geo.pairs_per_step, r.N, 1, c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "fftconv filter-gradient");
  return dk_f;
}

}  // namespace

std::vector<at::Tensor> fftconv_bwd(const at::Tensor& dy, const at::Tensor& u,
                                       const at::Tensor& k_slots, const c10::optional<at::Tensor>& pre,
                                       const c10::optional<at::Tensor>& post, const at::Tensor& tw_stage,
                                       const at::Tensor& tw_core, int64_t fft_size, bool raw_filter_grad) {
  const BackwardPass r = run_backward(dy, u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  const auto or_empty = [&](const at::Tensor& t) { return t.defined() ? t : at::empty({0}, u.options()); };
  if (raw_filter_grad) {  // the accumulators summed over blocks, in slot order: (H, N, 2)
    const std::vector<int64_t> reduce_dims{0, 2};
    auto s = r.s_partial.view({r.geo.chunks, r.H, r.geo.pairs_per_step, r.N, 2}).sum(reduce_dims);
    return {r.du, s, or_empty(r.dpre), or_empty(r.dpost)};
  }
  return {r.du, spectrum_grad(r), or_empty(r.dpre), or_empty(r.dpost)};
}

namespace {

// The FilterSource of time-domain taps (k, k_rev, bias: float32) for an fft_size-point filter.
FilterSource taps_source(const at::Tensor& k, const c10::optional<at::Tensor>& k_rev,
                                            const c10::optional<at::Tensor>& bias, int64_t fft_size) {
  CHECK_CUDA_TENSOR(k, "k");
  CHECK_ARG(fft_size >= kMinFFTSize && fft_size <= kMaxFusedFFTSize && (fft_size & (fft_size - 1)) == 0,
              "the taps' fft_size must be a power of two in [", kMinFFTSize, ", ", kMaxFusedFFTSize, "], got ", fft_size);
  CHECK_ARG(k.scalar_type() == at::kFloat && k.dim() == 2 && k.size(1) <= fft_size && k.size(1) > 0,
              "k must be (H, Lk) float32 with 0 < Lk <= fft_size, got ", k.sizes(), " ", k.scalar_type());
  const int64_t H = k.size(0);
  CHECK_ARG(H > 0 && H <= INT32_MAX, "bad channel count ", H);
  FilterSource f{};
  f.k = k.data_ptr<float>();
  f.Lk = static_cast<int>(k.size(1));
  if (k_rev) {
    CHECK_CUDA_TENSOR((*k_rev), "k_rev");
    CHECK_ARG(k_rev->scalar_type() == at::kFloat && k_rev->dim() == 2 && k_rev->size(0) == H &&
                    k_rev->size(1) <= fft_size && k_rev->size(1) > 0 && k_rev->device() == k.device(),
                "k_rev must be (H, Lr) float32 with 0 < Lr <= fft_size on k's device, got ", k_rev->sizes());
    f.k_rev = k_rev->data_ptr<float>();
    f.Lr = static_cast<int>(k_rev->size(1));
  }
  f.bias = optional_channel_vector(bias, H, k.device(), "bias");
  f.scale = std::sqrt(static_cast<float>(fft_size));
  return f;
}

// The fp32 filter transforms' table W_N^j, j < N/2 (ops/fftconv/fused.py half_twiddles).
void check_half_twiddle(const at::Tensor& twiddle, int64_t fft_size, const c10::Device& device) {
  CHECK_CUDA_TENSOR(twiddle, "twiddle");
  CHECK_ARG(twiddle.scalar_type() == at::kFloat && twiddle.numel() == fft_size && twiddle.device() == device,
            "twiddle must hold fft_size/2 complex float32 values on k's device");
}

}  // namespace

// Filter spectrum -> kernel slot layout: (H, N, 2) for outer = 1, (H, outer, N/outer, 2) else.
at::Tensor spectrum_to_slots(const at::Tensor& k_f, int64_t fft_size, int64_t outer, bool low_band) {
  CHECK_CUDA_TENSOR(k_f, "k_f");
  CHECK_ARG(k_f.scalar_type() == at::kComplexFloat && k_f.dim() == 2 && k_f.size(1) == fft_size / 2 + 1,
              "k_f must be (H, fft_size/2+1) complex64, got ", k_f.sizes(), " ", k_f.scalar_type());
  check_split(fft_size, outer);
  CHECK_ARG(k_f.size(0) <= 65535, "too many channels");
  const c10::cuda::CUDAGuard guard(k_f.device());
  const auto f32 = k_f.options().dtype(at::kFloat);
  auto k_slots = outer == 1 ? at::empty({k_f.size(0), fft_size, 2}, f32)
                            : at::empty({k_f.size(0), outer, fft_size / outer, 2}, f32);
  const cudaError_t err = launch_spectrum_to_slots(
      reinterpret_cast<const float2*>(k_f.data_ptr()), reinterpret_cast<float2*>(k_slots.data_ptr<float>()),
      static_cast<int>(k_f.size(0)), static_cast<int>(fft_size), static_cast<int>(outer), low_band,
      c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "spectrum_to_slots");
  return k_slots;
}

// Time-domain filter (+ anti-causal taps, bias) -> the fused kernel's slot-order spectrum.
at::Tensor filter_to_slots(const at::Tensor& k, const c10::optional<at::Tensor>& k_rev,
                              const c10::optional<at::Tensor>& bias, const at::Tensor& twiddle, int64_t fft_size) {
  const FilterSource f = taps_source(k, k_rev, bias, fft_size);
  CHECK_ARG(fft_size <= kFilterTransformMaxFFTSize, "filter_to_slots: fft_size must be <= ",
            kFilterTransformMaxFFTSize, ", got ", fft_size);
  check_half_twiddle(twiddle, fft_size, k.device());
  const int64_t H = k.size(0);
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = at::empty({H, fft_size, 2}, k.options());
  const cudaError_t err = launch_filter_to_slots(
      f.k, f.Lk, f.k_rev, f.Lr, f.bias, reinterpret_cast<const float2*>(twiddle.data_ptr<float>()),
      reinterpret_cast<float2*>(k_slots.data_ptr<float>()), static_cast<int>(H), static_cast<int>(fft_size),
      c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "filter_to_slots");
  return k_slots;
}

// Time-domain filter -> slot-order spectrum with the kernel's own (bf16 tensor-core) forward FFT,
// on its own (the forward kernel runs the same code as its prologue on the taps route).
at::Tensor filter_spectrum_slots(const at::Tensor& k, const c10::optional<at::Tensor>& k_rev,
                                    const c10::optional<at::Tensor>& bias, const at::Tensor& tw_stage,
                                    const at::Tensor& tw_core, int64_t fft_size) {
  FilterSource f = taps_source(k, k_rev, bias, fft_size);
  const int64_t H = k.size(0);
  Params p{};
  p.B = 1;
  p.H = static_cast<int>(H);
  p.L = p.N = static_cast<int>(fft_size);
  attach_twiddles(p, tw_stage, tw_core, k.device());
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = at::empty({H, fft_size, 2}, k.options());
  f.out = reinterpret_cast<float2*>(k_slots.data_ptr<float>());
  const cudaError_t err = launch_filter_spectrum(p, f, c10::cuda::getCurrentCUDAStream());
  CHECK_LAUNCH(err, "filter_spectrum_slots");
  return k_slots;
}

// The taps route's forward in one host call: (y, the filter in kernel slot order, kept for the
// backward). fp32_filter (ops/fftconv/plan.py: filter_in_fp32): the filter is transformed in fp32
// first (filter_to_slots, N <= 8192: exact slots); else (bf16 calls) the forward kernel's prologue
// computes its spectrum on its own forward FFT (tensor cores, no second launch).
std::vector<at::Tensor> fftconv_fwd_taps(const at::Tensor& u, const at::Tensor& k,
                                        const c10::optional<at::Tensor>& k_rev,
                                        const c10::optional<at::Tensor>& bias, const at::Tensor& twiddle,
                                        const c10::optional<at::Tensor>& pre,
                                        const c10::optional<at::Tensor>& post, const at::Tensor& tw_stage,
                                        const at::Tensor& tw_core, int64_t fft_size, bool fp32_filter) {
  CHECK_ARG(fp32_filter || u.scalar_type() == at::kBFloat16,
            "fftconv_fwd_taps: only bf16 calls transform the filter in the kernel's prologue");
  if (fp32_filter) {
    auto k_slots = filter_to_slots(k, k_rev, bias, twiddle, fft_size);
    return {fftconv_fwd(u, k_slots, pre, post, tw_stage, tw_core, fft_size, c10::nullopt), k_slots};
  }
  FilterSource f = taps_source(k, k_rev, bias, fft_size);
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = at::empty({k.size(0), fft_size, 2}, k.options());
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  f.out = const_cast<float2*>(p.k_slots);
  p.filter = f;
  return {run_forward(p, u), k_slots};
}

namespace {

// The eager training route for time-domain taps at the fused sizes, as a C++ autograd node: the
// backward (kernel, then the taps' gradient: one kernel from the accumulators up to 8K, above an
// unscaled irfft of the spectrum gradient times the adjoint weights) runs without Python, which at
// 256-1K points is most of a training step's host time.
// y = post * conv(pre * u, circular filter of k, k_rev, bias).
struct TapsFFTConv : public torch::autograd::Function<TapsFFTConv> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u, const at::Tensor& k,
                               const c10::optional<at::Tensor>& k_rev, const c10::optional<at::Tensor>& bias,
                               const c10::optional<at::Tensor>& pre, const c10::optional<at::Tensor>& post,
                               const at::Tensor& twiddle, const at::Tensor& tw_stage,
                               const at::Tensor& tw_core, const at::Tensor& adjoint_weights, int64_t fft_size,
                               bool fp32_filter) {
    const auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat).contiguous(); };
    const auto f32_opt = [&](const c10::optional<at::Tensor>& t) -> c10::optional<at::Tensor> {
      return t ? c10::optional<at::Tensor>(f32(*t)) : c10::nullopt;
    };
    check_half_twiddle(twiddle, fft_size, u.device());  // (the backward's taps gradient uses it)
    auto r = fftconv_fwd_taps(u, f32(k), f32_opt(k_rev), f32_opt(bias), twiddle, pre, post, tw_stage, tw_core, fft_size,
                              fp32_filter);
    auto y = r[0], k_slots = r[1];
    const at::Tensor none;
    ctx->save_for_backward(
        {u, k_slots, pre ? *pre : none, post ? *post : none, tw_stage, tw_core, adjoint_weights, twiddle});
    ctx->saved_data["fft_size"] = fft_size;
    ctx->saved_data["k_len"] = k.size(1);
    ctx->saved_data["k_rev_len"] = k_rev ? k_rev->size(1) : int64_t(0);
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->saved_data["k_dtype"] = k.scalar_type();
    ctx->saved_data["k_rev_dtype"] = k_rev ? k_rev->scalar_type() : k.scalar_type();
    ctx->saved_data["bias_dtype"] = bias ? bias->scalar_type() : k.scalar_type();
    ctx->saved_data["taps_grad"] = k.requires_grad() || (k_rev && k_rev->requires_grad()) ||
                                   (bias && bias->requires_grad());
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    CHECK_ARG(!at::GradMode::is_enabled(), "fftconv: the fused kernels' backward is not differentiable "
                "(double backward / create_graph=True); use the reference path (longconv_models.reference_path())");
    const auto saved = ctx->get_saved_variables();
    const auto opt = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
    const int64_t N = ctx->saved_data["fft_size"].toInt();
    const BackwardPass r = run_backward(grads[0].contiguous(), saved[0], saved[1], opt(saved[2]), opt(saved[3]),
                                        saved[4], saved[5], N);
    at::Tensor dk, dk_rev, dbias;
    if (ctx->saved_data["taps_grad"].toBool()) {
      // d buf[t] = Re sum_f dk_f[f] e^(2 pi i f t / N) over the half spectrum dk_f (irfft counts the
      // interior bins twice): one kernel from the accumulators up to 8K, rfft-gradient + irfft above
      at::Tensor d_buf;
      if (N <= kFilterTransformMaxFFTSize) {
        d_buf = at::empty({r.H, N}, r.du.options().dtype(at::kFloat));
        const cudaError_t err = launch_partials_to_taps_grad(
            reinterpret_cast<const float2*>(r.s_partial.data_ptr<float>()), r.geo.chunks, r.H,
            r.geo.pairs_per_step, N, reinterpret_cast<const float2*>(saved[7].data_ptr<float>()),
            d_buf.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
        CHECK_LAUNCH(err, "fftconv taps-gradient");
      } else {
        d_buf = at::fft_irfft(spectrum_grad(r) * saved[6], N, -1, "forward");
      }
      dk = d_buf.narrow(1, 0, ctx->saved_data["k_len"].toInt()).to(ctx->saved_data["k_dtype"].toScalarType());
      const int64_t k_rev_len = ctx->saved_data["k_rev_len"].toInt();
      if (k_rev_len > 0)  // k_rev[j] sits at position N - 1 - j
        dk_rev = d_buf.flip({1}).narrow(1, 0, k_rev_len).to(ctx->saved_data["k_rev_dtype"].toScalarType());
      if (ctx->saved_data["has_bias"].toBool()) dbias = d_buf.select(1, 0).to(ctx->saved_data["bias_dtype"].toScalarType());
    }
    const at::Tensor none;
    return {r.du, dk, dk_rev, dbias, r.dpre, r.dpost, none, none, none, none, none, none};
  }
};

}  // namespace

at::Tensor fftconv_taps_autograd(const at::Tensor& u, const at::Tensor& k,
                                    const c10::optional<at::Tensor>& k_rev, const c10::optional<at::Tensor>& bias,
                                    const c10::optional<at::Tensor>& pre, const c10::optional<at::Tensor>& post,
                                    const at::Tensor& twiddle, const at::Tensor& tw_stage,
                                    const at::Tensor& tw_core, const at::Tensor& adjoint_weights,
                                    int64_t fft_size, bool fp32_filter) {
  return TapsFFTConv::apply(u, k, k_rev, bias, pre, post, twiddle, tw_stage, tw_core, adjoint_weights, fft_size,
                            fp32_filter);
}

}  // namespace longconv::fftconv
