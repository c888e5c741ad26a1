// Argument checks of the host code (the torch-aware translation units). The Python layer
// (longconv_models.ops) validates user input first; these guard the kernels themselves, so that a
// misuse from Python is an exception, never a CUDA fault.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <ATen/ATen.h>

namespace longconv {

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

}  // namespace longconv

#define CHECK_ARG(cond, ...) TORCH_CHECK(cond, ::longconv::message(__VA_ARGS__))

#define CHECK_CUDA_TENSOR(x, name)                         \
  CHECK_ARG((x).is_cuda(), name " must be a CUDA tensor"); \
  CHECK_ARG((x).is_contiguous(), name " must be contiguous")

#define CHECK_LAUNCH(err, what) CHECK_ARG((err) == cudaSuccess, what " launch failed: ", cudaGetErrorString(err))

namespace longconv {

// t is a contiguous CUDA tensor with ref's device, shape and dtype.
inline void check_like(const at::Tensor& t, const at::Tensor& ref, const char* name) {
  CHECK_CUDA_TENSOR(t, "tensor");
  CHECK_ARG(t.device() == ref.device(), name, " is on ", t.device(), " but the input is on ", ref.device());
  CHECK_ARG(t.sizes() == ref.sizes(), name, " has shape ", t.sizes(), ", expected ", ref.sizes());
  CHECK_ARG(t.scalar_type() == ref.scalar_type(), name, " has dtype ", t.scalar_type(), ", expected ",
            ref.scalar_type());
}

inline bool aligned16(const void* ptr) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace longconv
