// The kernels' one runtime -> compile-time switch (radix, outer size, element type).
#pragma once

#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace longconv {

// Element type of a tensor, as the host code passes it to the launchers.
enum class DType : int { kF32 = 0, kBF16 = 1, kFP16 = 2 };

template <DType D> struct ElementOf;
template <> struct ElementOf<DType::kF32> { using type = float; };
template <> struct ElementOf<DType::kBF16> { using type = __nv_bfloat16; };
template <> struct ElementOf<DType::kFP16> { using type = __half; };
template <DType D> using element_t = typename ElementOf<D>::type;

// Calls f(std::integral_constant<decltype(V), V>{}) for the one V of Values equal to value and
// returns its result; any other value is cudaErrorInvalidValue (the host code reports it).
//   dispatch<1, 2, 4, 8>(radix0(N), [&](auto r0) { constexpr int R0 = decltype(r0)::value; ... });
//   dispatch<DType::kBF16, DType::kFP16>(dtype, [&](auto d) { using T = element_t<decltype(d)::value>; ... });
template <auto... Values, typename V, typename F>
cudaError_t dispatch(V value, F&& f) {
  cudaError_t result = cudaErrorInvalidValue;
  (void)((value == Values && ((result = f(std::integral_constant<decltype(Values), Values>{})), true)) || ...);
  return result;
}

}  // namespace longconv
