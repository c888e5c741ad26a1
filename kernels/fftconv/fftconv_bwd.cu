// Backward instantiations: 2 dtypes x 4 first-stage radices.
#include "fftconv_launch.cuh"

namespace longconv::fftconv {

template <typename T, int R0>
struct BackwardKernel {
  static auto get() { return &fftconv_backward_kernel<T, R0>; }
};

Geometry geometry_forward(const Params& p, DType dtype);

Geometry geometry(const Params& p, bool backward, DType dtype) {
  if (!backward) return geometry_forward(p, dtype);
  Geometry geo{};
  with_kernel<BackwardKernel>(p.N, dtype, [&](auto kernel) {
    geo = geometry_of(kernel, p, 2);
    return cudaSuccess;
  });
  return geo;
}

cudaError_t launch_backward(const Params& p, DType dtype, cudaStream_t stream) {
  const Geometry geo = geometry(p, true, dtype);
  return with_kernel<BackwardKernel>(p.N, dtype, [&](auto kernel) { return launch_with(kernel, p, geo, stream); });
}

}  // namespace longconv::fftconv
