// Torch entry points of the CUDA kernels: argument checks, allocation, launches.
// The Python layer (longconv_models.ops) validates user input first; the checks here guard the
// kernels themselves, so that a misuse from Python is an exception, never a CUDA fault.
#include <cmath>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include "fftconv/fftconv.h"
#include "shortconv/shortconv.h"

namespace {

// Error messages are assembled as one std::string, not streamed by TORCH_CHECK: on the device image
// (torch 2.11 + GCC 13, JIT build) c10::str's ostringstream segfaulted in any extension, a trivial
// one included, while a single string argument works.
inline std::string msg_part(const char* s) { return s; }
inline std::string msg_part(const std::string& s) { return s; }
template <typename I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
inline std::string msg_part(I v) { return std::to_string(v); }
inline std::string msg_part(c10::IntArrayRef a) {
  std::string s = "[";
  for (size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + std::to_string(a[i]);
  return s + "]";
}
inline std::string msg_part(c10::ScalarType t) { return c10::toString(t); }
inline std::string msg_part(const c10::Device& d) { return d.str(); }
template <typename... A>
std::string message(const A&... parts) {
  std::string s;
  ((s += msg_part(parts)), ...);
  return s;
}
#define CHECK_ARG(cond, ...) TORCH_CHECK(cond, message(__VA_ARGS__))

using longconv::fftconv::DType;
using longconv::fftconv::Params;

#define CHECK_CUDA_TENSOR(x, name)                                                    \
  CHECK_ARG((x).is_cuda(), name " must be a CUDA tensor");                          \
  CHECK_ARG((x).is_contiguous(), name " must be contiguous")

void check_like(const torch::Tensor& t, const torch::Tensor& ref, const char* name) {
  CHECK_CUDA_TENSOR(t, "tensor");
  CHECK_ARG(t.device() == ref.device(), name, " is on ", t.device(), " but the input is on ", ref.device());
  CHECK_ARG(t.sizes() == ref.sizes(), name, " has shape ", t.sizes(), ", expected ", ref.sizes());
  CHECK_ARG(t.scalar_type() == ref.scalar_type(), name, " has dtype ", t.scalar_type(), ", expected ",
              ref.scalar_type());
}

DType kernel_dtype(const torch::Tensor& u) {
  if (u.scalar_type() == torch::kBFloat16) return DType::kBF16;
  CHECK_ARG(u.scalar_type() == torch::kHalf, "fftconv kernel takes bf16 or fp16 inputs, got ", u.scalar_type());
  return DType::kFP16;
}

bool aligned16(const void* ptr) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Checks the twiddle tables (on `device`) and points the kernel parameters at them.
void attach_twiddles(Params& p, const torch::Tensor& tw_stage, const torch::Tensor& tw_core,
                     const torch::Device& device) {
  for (const auto* tw : {&tw_stage, &tw_core}) {
    CHECK_CUDA_TENSOR(*tw, "twiddle table");
    CHECK_ARG(tw->scalar_type() == torch::kFloat32 && tw->numel() == 16 * 32 * 8 * 2 && tw->device() == device,
                "bad twiddle table");
  }
  p.tw_stage = reinterpret_cast<const float2*>(tw_stage.data_ptr<float>());
  p.tw_core = reinterpret_cast<const float2*>(tw_core.data_ptr<float>());
}

Params make_params(const torch::Tensor& u, const torch::Tensor& k_slots, const c10::optional<torch::Tensor>& pre,
                   const c10::optional<torch::Tensor>& post, const torch::Tensor& tw_stage,
                   const torch::Tensor& tw_core, int64_t fft_size) {
  CHECK_CUDA_TENSOR(u, "u");
  CHECK_ARG(u.dim() == 3, "u must be (B, H, L), got ", u.sizes());
  kernel_dtype(u);
  const int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  CHECK_ARG(B > 0 && H > 0 && L > 0, "u is empty: ", u.sizes());
  CHECK_ARG(fft_size >= 256 && fft_size <= 32768 && (fft_size & (fft_size - 1)) == 0,
              "fft_size must be a power of two in [256, 32768], got ", fft_size);
  CHECK_ARG(L <= fft_size, "L=", L, " exceeds fft_size=", fft_size);
  CHECK_ARG(H <= 65535 * 1024 && B < (int64_t(1) << 31), "tensor too large");
  CHECK_CUDA_TENSOR(k_slots, "k_slots");
  const bool bf16_slots = k_slots.scalar_type() == torch::kBFloat16;
  CHECK_ARG((bf16_slots || k_slots.scalar_type() == torch::kFloat32) && k_slots.dim() == 3 &&
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

torch::Tensor run_forward(Params& p, const torch::Tensor& u) {
  const c10::cuda::CUDAGuard guard(u.device());
  auto y = torch::empty_like(u);
  p.y = y.data_ptr();
  finish_vec_ok(p, {p.u, p.pre, p.post, p.y});
  const cudaError_t err = longconv::fftconv::launch_forward(p, kernel_dtype(u), c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "fftconv forward launch failed: ", cudaGetErrorString(err));
  return y;
}

torch::Tensor fftconv_fwd(const torch::Tensor& u, const torch::Tensor& k_slots,
                          const c10::optional<torch::Tensor>& pre, const c10::optional<torch::Tensor>& post,
                          const torch::Tensor& tw_stage, const torch::Tensor& tw_core, int64_t fft_size,
                          const c10::optional<torch::Tensor>& lowband_dft) {
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  if (lowband_dft) {  // k_slots is then in the low-band slot order (the caller's contract)
    CHECK_ARG(p.k_slots != nullptr, "the low-band kernels take float32 k_slots");
    CHECK_CUDA_TENSOR(*lowband_dft, "lowband_dft");
    CHECK_ARG(lowband_dft->scalar_type() == torch::kInt32 && lowband_dft->numel() == 32 * 12 &&
                    lowband_dft->device() == u.device(),
                "lowband_dft must be a (32, 12) int32 table on u's device");
    p.lowband_dft = reinterpret_cast<const uint32_t*>(lowband_dft->data_ptr<int32_t>());
  }
  return run_forward(p, u);
}

// The fused backward kernel over (dy, u): du and the gates' gradients, and the per-block
// accumulators of the filter gradient (what the filter-gradient paths below reduce).
struct BackwardPass {
  torch::Tensor du, dpre, dpost;  // dpre / dpost undefined without their gate
  torch::Tensor s_partial;        // (chunks, H, P, N, 2) fp32
  longconv::fftconv::Geometry geo;
  int H, N;
};

BackwardPass run_backward(const torch::Tensor& dy, const torch::Tensor& u, const torch::Tensor& k_slots,
                          const c10::optional<torch::Tensor>& pre, const c10::optional<torch::Tensor>& post,
                          const torch::Tensor& tw_stage, const torch::Tensor& tw_core, int64_t fft_size) {
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  check_like(dy, u, "dy");
  const c10::cuda::CUDAGuard guard(u.device());
  const DType dtype = kernel_dtype(u);
  BackwardPass r;
  r.du = torch::empty_like(u);
  if (pre) r.dpre = torch::empty_like(u);
  if (post) r.dpost = torch::empty_like(u);
  p.dy = dy.data_ptr();
  p.du = r.du.data_ptr();
  p.dpre = pre ? r.dpre.data_ptr() : nullptr;
  p.dpost = post ? r.dpost.data_ptr() : nullptr;
  finish_vec_ok(p, {p.u, p.pre, p.post, p.dy, p.du, p.dpre, p.dpost});
  r.geo = longconv::fftconv::geometry(p, /*backward=*/true, dtype);
  r.H = p.H;
  r.N = p.N;
  // Per-block scratch (accumulators, then the spectra of pass 1), one allocation: fully written by
  // each block's first step, so no initialisation needed.
  const int64_t slots = int64_t(r.geo.chunks) * p.H * r.geo.pairs_per_step * p.N * 2;
  auto scratch = torch::empty({2, slots}, u.options().dtype(torch::kFloat32));
  r.s_partial = scratch[0];
  p.s_partial = reinterpret_cast<float2*>(r.s_partial.data_ptr<float>());
  p.x_scratch = reinterpret_cast<float2*>(scratch[1].data_ptr<float>());
  const cudaError_t err = longconv::fftconv::launch_backward(p, dtype, c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "fftconv backward launch failed: ", cudaGetErrorString(err));
  return r;
}

// Gradient of the rfft spectrum (H, N/2+1) complex64 from the accumulators.
torch::Tensor spectrum_grad(const BackwardPass& r) {
  auto dk_f = torch::empty({r.H, r.N / 2 + 1}, r.du.options().dtype(torch::kComplexFloat));
  const cudaError_t err = longconv::fftconv::launch_slots_to_spectrum_grad(
      reinterpret_cast<const float2*>(r.s_partial.data_ptr<float>()), reinterpret_cast<float2*>(dk_f.data_ptr()),
      r.geo.chunks, r.H, r.geo.pairs_per_step, r.N, 1, c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "fftconv filter-gradient launch failed: ", cudaGetErrorString(err));
  return dk_f;
}

std::vector<torch::Tensor> fftconv_bwd(const torch::Tensor& dy, const torch::Tensor& u,
                                       const torch::Tensor& k_slots, const c10::optional<torch::Tensor>& pre,
                                       const c10::optional<torch::Tensor>& post, const torch::Tensor& tw_stage,
                                       const torch::Tensor& tw_core, int64_t fft_size, bool raw_filter_grad) {
  const BackwardPass r = run_backward(dy, u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  const auto or_empty = [&](const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}, u.options()); };
  if (raw_filter_grad) {  // the accumulators summed over blocks, in slot order: (H, N, 2)
    const std::vector<int64_t> reduce_dims{0, 2};
    auto s = r.s_partial.view({r.geo.chunks, r.H, r.geo.pairs_per_step, r.N, 2}).sum(reduce_dims);
    return {r.du, s, or_empty(r.dpre), or_empty(r.dpost)};
  }
  return {r.du, spectrum_grad(r), or_empty(r.dpre), or_empty(r.dpost)};
}

void check_split(int64_t fft_size, int64_t outer) {
  CHECK_ARG(outer >= 1 && outer <= 512 && (outer & (outer - 1)) == 0, "outer must be a power of two <= 512, got ",
              outer);
  const int64_t inner = fft_size / outer;
  CHECK_ARG((fft_size & (fft_size - 1)) == 0 && inner >= (outer > 1 ? 4096 : 256) && inner <= 32768,
              "bad fft_size ", fft_size, " for outer=", outer);
}

// Filter spectrum -> kernel slot layout: (H, N, 2) for outer = 1, (H, outer, N/outer, 2) else.
torch::Tensor spectrum_to_slots(const torch::Tensor& k_f, int64_t fft_size, int64_t outer, bool low_band) {
  CHECK_CUDA_TENSOR(k_f, "k_f");
  CHECK_ARG(k_f.scalar_type() == torch::kComplexFloat && k_f.dim() == 2 && k_f.size(1) == fft_size / 2 + 1,
              "k_f must be (H, fft_size/2+1) complex64, got ", k_f.sizes(), " ", k_f.scalar_type());
  check_split(fft_size, outer);
  CHECK_ARG(k_f.size(0) <= 65535, "too many channels");
  const c10::cuda::CUDAGuard guard(k_f.device());
  const auto f32 = k_f.options().dtype(torch::kFloat32);
  auto k_slots = outer == 1 ? torch::empty({k_f.size(0), fft_size, 2}, f32)
                            : torch::empty({k_f.size(0), outer, fft_size / outer, 2}, f32);
  const cudaError_t err = longconv::fftconv::launch_spectrum_to_slots(
      reinterpret_cast<const float2*>(k_f.data_ptr()), reinterpret_cast<float2*>(k_slots.data_ptr<float>()),
      static_cast<int>(k_f.size(0)), static_cast<int>(fft_size), static_cast<int>(outer), low_band,
      c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "spectrum_to_slots launch failed: ", cudaGetErrorString(err));
  return k_slots;
}

const float* optional_channel_vector(const c10::optional<torch::Tensor>& t, int64_t n, const torch::Device& device,
                                     const char* name) {
  if (!t) return nullptr;
  CHECK_ARG(t->is_cuda() && t->is_contiguous(), name, " must be a contiguous CUDA tensor");
  CHECK_ARG(t->scalar_type() == torch::kFloat32 && t->dim() == 1 && t->size(0) == n && t->device() == device, name,
              " must be (", n, ",) float32 on the filter's device, got ", t->sizes(), " ", t->scalar_type());
  return t->data_ptr<float>();
}

// The FilterSource of time-domain taps (k, k_rev, bias: float32) for an fft_size-point filter.
longconv::fftconv::FilterSource taps_source(const torch::Tensor& k, const c10::optional<torch::Tensor>& k_rev,
                                            const c10::optional<torch::Tensor>& bias, int64_t fft_size) {
  CHECK_CUDA_TENSOR(k, "k");
  CHECK_ARG(fft_size >= 256 && fft_size <= 32768 && (fft_size & (fft_size - 1)) == 0,
              "the taps' fft_size must be a power of two in [256, 32768], got ", fft_size);
  CHECK_ARG(k.scalar_type() == torch::kFloat32 && k.dim() == 2 && k.size(1) <= fft_size && k.size(1) > 0,
              "k must be (H, Lk) float32 with 0 < Lk <= fft_size, got ", k.sizes(), " ", k.scalar_type());
  const int64_t H = k.size(0);
  CHECK_ARG(H > 0 && H <= INT32_MAX, "bad channel count ", H);
  longconv::fftconv::FilterSource f{};
  f.k = k.data_ptr<float>();
  f.Lk = static_cast<int>(k.size(1));
  if (k_rev) {
    CHECK_CUDA_TENSOR((*k_rev), "k_rev");
    CHECK_ARG(k_rev->scalar_type() == torch::kFloat32 && k_rev->dim() == 2 && k_rev->size(0) == H &&
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
void check_half_twiddle(const torch::Tensor& twiddle, int64_t fft_size, const torch::Device& device) {
  CHECK_CUDA_TENSOR(twiddle, "twiddle");
  CHECK_ARG(twiddle.scalar_type() == torch::kFloat32 && twiddle.numel() == fft_size && twiddle.device() == device,
            "twiddle must hold fft_size/2 complex float32 values on k's device");
}

// Time-domain filter (+ anti-causal taps, bias) -> the fused kernel's slot-order spectrum.
torch::Tensor filter_to_slots(const torch::Tensor& k, const c10::optional<torch::Tensor>& k_rev,
                              const c10::optional<torch::Tensor>& bias, const torch::Tensor& twiddle, int64_t fft_size) {
  const longconv::fftconv::FilterSource f = taps_source(k, k_rev, bias, fft_size);
  CHECK_ARG(fft_size <= longconv::fftconv::kFilterTransformMaxFFTSize, "filter_to_slots: fft_size must be <= ",
            longconv::fftconv::kFilterTransformMaxFFTSize, ", got ", fft_size);
  check_half_twiddle(twiddle, fft_size, k.device());
  const int64_t H = k.size(0);
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = torch::empty({H, fft_size, 2}, k.options());
  const cudaError_t err = longconv::fftconv::launch_filter_to_slots(
      f.k, f.Lk, f.k_rev, f.Lr, f.bias, reinterpret_cast<const float2*>(twiddle.data_ptr<float>()),
      reinterpret_cast<float2*>(k_slots.data_ptr<float>()), static_cast<int>(H), static_cast<int>(fft_size),
      c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "filter_to_slots launch failed: ", cudaGetErrorString(err));
  return k_slots;
}

// Time-domain filter -> slot-order spectrum with the kernel's own (bf16 tensor-core) forward FFT,
// on its own (the forward kernel runs the same code as its prologue on the taps route).
torch::Tensor filter_spectrum_slots(const torch::Tensor& k, const c10::optional<torch::Tensor>& k_rev,
                                    const c10::optional<torch::Tensor>& bias, const torch::Tensor& tw_stage,
                                    const torch::Tensor& tw_core, int64_t fft_size) {
  longconv::fftconv::FilterSource f = taps_source(k, k_rev, bias, fft_size);
  const int64_t H = k.size(0);
  Params p{};
  p.B = 1;
  p.H = static_cast<int>(H);
  p.L = p.N = static_cast<int>(fft_size);
  attach_twiddles(p, tw_stage, tw_core, k.device());
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = torch::empty({H, fft_size, 2}, k.options());
  f.out = reinterpret_cast<float2*>(k_slots.data_ptr<float>());
  const cudaError_t err = longconv::fftconv::launch_filter_spectrum(p, f, c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "filter_spectrum_slots launch failed: ", cudaGetErrorString(err));
  return k_slots;
}

// The long path's filter rows (the outer forward pass over the bf16 taps: (2, hs*M1, M2)) -> their
// slots in out (hs, M1, M2, 2) (float32, or bfloat16: half the bytes to write and to read in the
// inner kernel), with the bias added and the channels flagged in bad_channels (hs,)
// (a non-finite tap, zeroed by the outer pass) set to NaN.
void filter_rows_to_slots(const torch::Tensor& rows, const torch::Tensor& bad_channels,
                          const c10::optional<torch::Tensor>& bias, const torch::Tensor& out,
                          const torch::Tensor& tw_stage, const torch::Tensor& tw_core, int64_t fft_size) {
  CHECK_CUDA_TENSOR(rows, "rows");
  CHECK_CUDA_TENSOR(out, "out");
  CHECK_CUDA_TENSOR(bad_channels, "bad_channels");
  CHECK_ARG(rows.scalar_type() == torch::kBFloat16 && rows.dim() == 3 && rows.size(0) == 2,
              "rows must be (2, rows, M2) bf16, got ", rows.sizes(), " ", rows.scalar_type());
  const bool bf16_out = out.scalar_type() == torch::kBFloat16;
  CHECK_ARG((bf16_out || out.scalar_type() == torch::kFloat32) && out.dim() == 4 && out.size(3) == 2,
              "out must be (channels, M1, M2, 2) float32 or bfloat16, got ", out.sizes(), " ", out.scalar_type());
  const int64_t channels = out.size(0), M1 = out.size(1), M2 = out.size(2);
  CHECK_ARG(M1 >= 2 && M1 * M2 == fft_size && M2 >= 4096 && M2 <= 16384 && (M2 & (M2 - 1)) == 0 &&
                  rows.size(1) == channels * M1 && rows.size(2) == M2,
              "rows ", rows.sizes(), " and out ", out.sizes(), " do not match fft_size ", fft_size);
  CHECK_ARG(channels > 0 && channels * M1 <= INT32_MAX, "bad channel count ", channels);
  CHECK_ARG(bad_channels.scalar_type() == torch::kInt32 && bad_channels.numel() == channels,
              "bad_channels must be (", channels, ",) int32");
  CHECK_ARG(reinterpret_cast<uintptr_t>(rows.data_ptr()) % 16 == 0, "rows must be 16-byte aligned");
  CHECK_ARG(out.device() == rows.device() && bad_channels.device() == rows.device(),
              "rows, out and bad_channels must be on one device");
  longconv::fftconv::FilterSource f{};
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
  const cudaError_t err = longconv::fftconv::launch_filter_spectrum(p, f, c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "filter_rows_to_slots launch failed: ", cudaGetErrorString(err));
}

// The taps route's forward in one host call: (y, the filter in kernel slot order, kept for the
// backward). bf16 calls
// compute the filter's spectrum in the forward kernel's prologue (its own forward FFT on the tensor
// cores: no second launch); fp16 calls transform it in fp32 first (filter_to_slots: fp16's tighter
// accuracy, N <= 8192).
std::vector<torch::Tensor> fftconv_fwd_taps(const torch::Tensor& u, const torch::Tensor& k,
                                        const c10::optional<torch::Tensor>& k_rev,
                                        const c10::optional<torch::Tensor>& bias, const torch::Tensor& twiddle,
                                        const c10::optional<torch::Tensor>& pre,
                                        const c10::optional<torch::Tensor>& post, const torch::Tensor& tw_stage,
                                        const torch::Tensor& tw_core, int64_t fft_size) {
  if (u.scalar_type() != torch::kBFloat16) {
    auto k_slots = filter_to_slots(k, k_rev, bias, twiddle, fft_size);
    return {fftconv_fwd(u, k_slots, pre, post, tw_stage, tw_core, fft_size, c10::nullopt), k_slots};
  }
  longconv::fftconv::FilterSource f = taps_source(k, k_rev, bias, fft_size);
  const c10::cuda::CUDAGuard guard(k.device());
  auto k_slots = torch::empty({k.size(0), fft_size, 2}, k.options());
  Params p = make_params(u, k_slots, pre, post, tw_stage, tw_core, fft_size);
  f.out = const_cast<float2*>(p.k_slots);
  p.filter = f;
  return {run_forward(p, u), k_slots};
}

// The eager training route for time-domain taps at the fused sizes, as a C++ autograd node: the
// backward (kernel, then the taps' gradient: one kernel from the accumulators up to 8K, above an
// unscaled irfft of the spectrum gradient times the adjoint weights) runs without Python, which at
// 256-1K points is most of a training step's host time.
// y = post * conv(pre * u, circular filter of k, k_rev, bias).
struct TapsFFTConv : public torch::autograd::Function<TapsFFTConv> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u, const torch::Tensor& k,
                               const c10::optional<torch::Tensor>& k_rev, const c10::optional<torch::Tensor>& bias,
                               const c10::optional<torch::Tensor>& pre, const c10::optional<torch::Tensor>& post,
                               const torch::Tensor& twiddle, const torch::Tensor& tw_stage,
                               const torch::Tensor& tw_core, const torch::Tensor& adjoint_weights, int64_t fft_size) {
    const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); };
    const auto f32_opt = [&](const c10::optional<torch::Tensor>& t) -> c10::optional<torch::Tensor> {
      return t ? c10::optional<torch::Tensor>(f32(*t)) : c10::nullopt;
    };
    check_half_twiddle(twiddle, fft_size, u.device());  // (the backward's taps gradient uses it)
    auto r = fftconv_fwd_taps(u, f32(k), f32_opt(k_rev), f32_opt(bias), twiddle, pre, post, tw_stage, tw_core, fft_size);
    auto y = r[0], k_slots = r[1];
    const torch::Tensor none;
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
    const auto opt = [](const torch::Tensor& t) { return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt; };
    const int64_t N = ctx->saved_data["fft_size"].toInt();
    const BackwardPass r = run_backward(grads[0].contiguous(), saved[0], saved[1], opt(saved[2]), opt(saved[3]),
                                        saved[4], saved[5], N);
    torch::Tensor dk, dk_rev, dbias;
    if (ctx->saved_data["taps_grad"].toBool()) {
      // d buf[t] = Re sum_f dk_f[f] e^(2 pi i f t / N) over the half spectrum dk_f (irfft counts the
      // interior bins twice): one kernel from the accumulators up to 8K, rfft-gradient + irfft above
      torch::Tensor d_buf;
      if (N <= longconv::fftconv::kFilterTransformMaxFFTSize) {
        d_buf = torch::empty({r.H, N}, r.du.options().dtype(torch::kFloat32));
        const cudaError_t err = longconv::fftconv::launch_partials_to_taps_grad(
            reinterpret_cast<const float2*>(r.s_partial.data_ptr<float>()), r.geo.chunks, r.H,
            r.geo.pairs_per_step, N, reinterpret_cast<const float2*>(saved[7].data_ptr<float>()),
            d_buf.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
        CHECK_ARG(err == cudaSuccess, "fftconv taps-gradient launch failed: ", cudaGetErrorString(err));
      } else {
        d_buf = at::fft_irfft(spectrum_grad(r) * saved[6], N, -1, "forward");
      }
      dk = d_buf.narrow(1, 0, ctx->saved_data["k_len"].toInt()).to(ctx->saved_data["k_dtype"].toScalarType());
      const int64_t k_rev_len = ctx->saved_data["k_rev_len"].toInt();
      if (k_rev_len > 0)  // k_rev[j] sits at position N - 1 - j
        dk_rev = d_buf.flip({1}).narrow(1, 0, k_rev_len).to(ctx->saved_data["k_rev_dtype"].toScalarType());
      if (ctx->saved_data["has_bias"].toBool()) dbias = d_buf.select(1, 0).to(ctx->saved_data["bias_dtype"].toScalarType());
    }
    const torch::Tensor none;
    return {r.du, dk, dk_rev, dbias, r.dpre, r.dpost, none, none, none, none, none};
  }
};

torch::Tensor fftconv_taps_autograd(const torch::Tensor& u, const torch::Tensor& k,
                                    const c10::optional<torch::Tensor>& k_rev, const c10::optional<torch::Tensor>& bias,
                                    const c10::optional<torch::Tensor>& pre, const c10::optional<torch::Tensor>& post,
                                    const torch::Tensor& twiddle, const torch::Tensor& tw_stage,
                                    const torch::Tensor& tw_core, const torch::Tensor& adjoint_weights,
                                    int64_t fft_size) {
  return TapsFFTConv::apply(u, k, k_rev, bias, pre, post, twiddle, tw_stage, tw_core, adjoint_weights, fft_size);
}

// Summed accumulators (H, outer, N/outer, 2) of the long path -> gradient of the rfft spectrum.
torch::Tensor slots_to_spectrum_grad(const torch::Tensor& s, int64_t fft_size, int64_t outer) {
  CHECK_CUDA_TENSOR(s, "s");
  check_split(fft_size, outer);
  CHECK_ARG(s.scalar_type() == torch::kFloat32 && s.dim() == 4 && s.size(1) == outer &&
                  s.size(2) == fft_size / outer && s.size(3) == 2 && s.size(0) <= 65535,
              "s must be (H, outer, fft_size/outer, 2) float32, got ", s.sizes());
  const c10::cuda::CUDAGuard guard(s.device());
  auto dk_f = torch::empty({s.size(0), fft_size / 2 + 1}, s.options().dtype(torch::kComplexFloat));
  const cudaError_t err = longconv::fftconv::launch_slots_to_spectrum_grad(
      reinterpret_cast<const float2*>(s.data_ptr<float>()), reinterpret_cast<float2*>(dk_f.data_ptr()), 1,
      static_cast<int>(s.size(0)), 1, static_cast<int>(fft_size), static_cast<int>(outer),
      c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "slots_to_spectrum_grad launch failed: ", cudaGetErrorString(err));
  return dk_f;
}

// One outer pass of the long-sequence path over a chunk of pairs x channels (fftconv_outer.cu).
// Forward: seq (B, H, L) -> inner (2*pairs, hs*M1, M2) bf16; inverse: inner -> seq.
void fftconv_outer(const torch::Tensor& seq, const c10::optional<torch::Tensor>& gate, const torch::Tensor& inner,
                   const torch::Tensor& bad_rows, int64_t fft_size, int64_t M1, int64_t pair0, int64_t h0,
                   bool inverse) {
  CHECK_CUDA_TENSOR(seq, "seq");
  CHECK_CUDA_TENSOR(inner, "inner");
  CHECK_CUDA_TENSOR(bad_rows, "bad_rows");
  CHECK_ARG(seq.dim() == 3 && inner.dim() == 3, "seq and inner must be 3-D");
  const DType dtype = kernel_dtype(seq);
  CHECK_ARG(inner.scalar_type() == torch::kBFloat16, "inner rows must be bf16");
  CHECK_ARG(reinterpret_cast<uintptr_t>(inner.data_ptr()) % 16 == 0, "inner rows must be 16-byte aligned");
  CHECK_ARG(inner.device() == seq.device() && bad_rows.device() == seq.device(), "tensors on different devices");
  CHECK_ARG(M1 >= 2 && M1 <= 512 && (M1 & (M1 - 1)) == 0, "M1 must be a power of two in [2, 512], got ", M1);
  CHECK_ARG(fft_size % M1 == 0 && fft_size / M1 >= 4096 && fft_size <= (int64_t(1) << 24) &&
                  (fft_size & (fft_size - 1)) == 0,
              "bad fft_size ", fft_size, " for M1=", M1);
  const int64_t B = seq.size(0), H = seq.size(1), L = seq.size(2), M2 = fft_size / M1;
  CHECK_ARG(L > 0 && L <= fft_size, "L=", L, " must be in [1, fft_size=", fft_size, "]");
  CHECK_ARG(inner.size(2) == M2 && inner.size(0) % 2 == 0 && inner.size(1) % M1 == 0, "inner has shape ",
              inner.sizes(), ", expected (2*pairs, hs*", M1, ", ", M2, ")");
  const int64_t pairs = inner.size(0) / 2, hs = inner.size(1) / M1;
  CHECK_ARG(pair0 >= 0 && 2 * (pair0 + pairs) - 1 <= B && h0 >= 0 && h0 + hs <= H, "chunk out of range");
  CHECK_ARG(bad_rows.scalar_type() == torch::kInt32 && bad_rows.numel() == B * H, "bad_rows must be (B, H) int32");
  if (gate) check_like(*gate, seq, "gate");
  longconv::fftconv::OuterParams p{};
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
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  p.vec_ok = L % 8 == 0 && aligned(seq.data_ptr()) && (!gate || aligned(gate->data_ptr()));
  const c10::cuda::CUDAGuard guard(seq.device());
  const cudaError_t err =
      longconv::fftconv::launch_outer_pass(p, dtype, inverse, c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "fftconv outer pass launch failed: ", cudaGetErrorString(err));
}

// ---- short depthwise conv ------------------------------------------------------------------

longconv::shortconv::DType short_dtype(const torch::Tensor& x) {
  switch (x.scalar_type()) {
    case torch::kFloat32: return longconv::shortconv::DType::kF32;
    case torch::kBFloat16: return longconv::shortconv::DType::kBF16;
    case torch::kHalf: return longconv::shortconv::DType::kFP16;
    default: CHECK_ARG(false, "short conv kernel takes fp32/bf16/fp16 inputs, got ", x.scalar_type());
  }
}

longconv::shortconv::Params short_params(const torch::Tensor& x, int64_t K, int64_t pad_left, bool channels_last) {
  CHECK_CUDA_TENSOR(x, "x");
  CHECK_ARG(x.dim() == 3, "x must be 3-D, got ", x.sizes());
  CHECK_ARG(K >= 1 && K <= longconv::shortconv::kMaxWidth, "kernel size must be in [1, 8], got ", K);
  CHECK_ARG(pad_left >= 0 && pad_left < K, "pad_left must be in [0, K), got ", pad_left);
  longconv::shortconv::Params p{};
  p.B = static_cast<int>(x.size(0));
  p.H = static_cast<int>(channels_last ? x.size(2) : x.size(1));
  p.L = static_cast<int>(channels_last ? x.size(1) : x.size(2));
  CHECK_ARG(p.B > 0 && p.H > 0 && p.L > 0, "x is empty: ", x.sizes());
  p.K = static_cast<int>(K);
  p.pad_left = static_cast<int>(pad_left);
  p.channels_last = channels_last;
  p.x = x.data_ptr();
  return p;
}

torch::Tensor shortconv_fwd(const torch::Tensor& x, const torch::Tensor& w, const c10::optional<torch::Tensor>& bias,
                            int64_t pad_left, bool channels_last, bool reverse_taps) {
  CHECK_CUDA_TENSOR(w, "weight");
  CHECK_ARG(w.dim() == 2 && w.scalar_type() == torch::kFloat32, "weight must be (H, K) float32");
  auto p = short_params(x, w.size(1), pad_left, channels_last);
  CHECK_ARG(w.size(0) == p.H && w.device() == x.device(), "weight must be (H, K) on x's device");
  if (bias) {
    CHECK_CUDA_TENSOR(*bias, "bias");
    CHECK_ARG(bias->dim() == 1 && bias->size(0) == p.H && bias->scalar_type() == torch::kFloat32 &&
                    bias->device() == x.device(),
                "bias must be (H,) float32 on x's device");
  }
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty_like(x);
  p.reverse_taps = reverse_taps;
  p.w = w.data_ptr<float>();
  p.bias = bias ? bias->data_ptr<float>() : nullptr;
  p.y = y.data_ptr();
  const cudaError_t err = longconv::shortconv::launch_forward(p, short_dtype(x), c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "short conv launch failed: ", cudaGetErrorString(err));
  return y;
}

torch::Tensor shortconv_wgrad(const torch::Tensor& x, const torch::Tensor& dy, int64_t K, int64_t pad_left,
                              bool channels_last) {
  auto p = short_params(x, K, pad_left, channels_last);
  check_like(dy, x, "dy");
  const c10::cuda::CUDAGuard guard(x.device());
  auto partial = torch::empty({longconv::shortconv::weight_grad_partials(p), p.H, K + 1},
                              x.options().dtype(torch::kFloat32));
  p.dy = dy.data_ptr();
  p.dw_partial = partial.data_ptr<float>();
  const cudaError_t err = longconv::shortconv::launch_weight_grad(p, short_dtype(x), c10::cuda::getCurrentCUDAStream());
  CHECK_ARG(err == cudaSuccess, "short conv weight-grad launch failed: ", cudaGetErrorString(err));
  return partial;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "longconv_models CUDA kernels";
  m.def("fftconv_fwd", &fftconv_fwd, "fused FFT convolution, forward (lowband_dft: a low-band filter)",
        py::arg("u"), py::arg("k_slots"), py::arg("pre"), py::arg("post"), py::arg("tw_stage"), py::arg("tw_core"),
        py::arg("fft_size"), py::arg("lowband_dft") = py::none());
  m.def("fftconv_bwd", &fftconv_bwd, "fused FFT convolution, backward: (du, dk_f or raw slot accumulators, dpre, dpost)");
  m.def("fftconv_outer", &fftconv_outer, "long-sequence path: one outer FFT pass over a chunk");
  m.def("fftconv_fwd_taps", &fftconv_fwd_taps, "forward from time-domain taps in one call: (y, k_slots)");
  m.def("fftconv_taps_autograd", &fftconv_taps_autograd, "taps route with a C++ autograd node (training)");
  m.def("spectrum_to_slots", &spectrum_to_slots, "filter spectrum -> kernel slot layout", py::arg("k_f"),
        py::arg("fft_size"), py::arg("outer"), py::arg("low_band") = false);
  m.def("filter_to_slots", &filter_to_slots, "time-domain filter -> kernel slot layout, fp32 (N <= 8192)");
  m.def("filter_spectrum_slots", &filter_spectrum_slots, "time-domain filter -> kernel slot layout, bf16 tensor cores");
  m.def("filter_rows_to_slots", &filter_rows_to_slots, "long path: filter rows -> their slots, bf16 tensor cores");
  m.def("slots_to_spectrum_grad", &slots_to_spectrum_grad, "long path: filter accumulators -> spectrum gradient");
  m.def("shortconv_fwd", &shortconv_fwd, "short depthwise conv1d (reverse_taps: its input gradient)");
  m.def("shortconv_wgrad", &shortconv_wgrad, "short depthwise conv1d weight/bias gradient partial sums");
}
