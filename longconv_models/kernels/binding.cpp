// The Python module of the CUDA kernels: only the bindings. The host code of each op (argument
// checks, allocation, launches) sits beside its kernels: fftconv/fftconv_host.cpp (fused kernel,
// filter transforms, the taps route's autograd node), fftconv/fftconv_long_host.cpp (long path),
// shortconv/shortconv_host.cpp.
#include <torch/extension.h>

#include "fftconv/fftconv_host.h"
#include "shortconv/shortconv_host.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace fc = longconv::fftconv;
  namespace sc = longconv::shortconv;
  m.doc() = "longconv_models CUDA kernels";
  m.def("fftconv_fwd", &fc::fftconv_fwd, "fused FFT convolution, forward (lowband_dft: a low-band filter)",
        py::arg("u"), py::arg("k_slots"), py::arg("pre"), py::arg("post"), py::arg("tw_stage"), py::arg("tw_core"),
        py::arg("fft_size"), py::arg("lowband_dft") = py::none());
  m.def("fftconv_bwd", &fc::fftconv_bwd,
        "fused FFT convolution, backward: (du, dk_f or raw slot accumulators, dpre, dpost)");
  m.def("fftconv_outer", &fc::fftconv_outer, "long-sequence path: one outer FFT pass over a chunk");
  m.def("fftconv_fwd_taps", &fc::fftconv_fwd_taps, "forward from time-domain taps in one call: (y, k_slots)");
  m.def("fftconv_taps_autograd", &fc::fftconv_taps_autograd, "taps route with a C++ autograd node (training)");
  m.def("spectrum_to_slots", &fc::spectrum_to_slots, "filter spectrum -> kernel slot layout", py::arg("k_f"),
        py::arg("fft_size"), py::arg("outer"), py::arg("low_band") = false);
  m.def("filter_to_slots", &fc::filter_to_slots, "time-domain filter -> kernel slot layout, fp32 (N <= 8192)");
  m.def("filter_spectrum_slots", &fc::filter_spectrum_slots,
        "time-domain filter -> kernel slot layout, bf16 tensor cores");
  m.def("filter_rows_to_slots", &fc::filter_rows_to_slots, "long path: filter rows -> their slots, bf16 tensor cores");
  m.def("slots_to_spectrum_grad", &fc::slots_to_spectrum_grad, "long path: filter accumulators -> spectrum gradient");
  m.def("shortconv_fwd", &sc::shortconv_fwd, "short depthwise conv1d (reverse_taps: its input gradient)");
  m.def("shortconv_bwd", &sc::shortconv_bwd, "short depthwise conv1d backward: (dx, weight/bias gradient partial sums)");
}
