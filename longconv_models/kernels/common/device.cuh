// Device primitives shared by the kernels: tensor-core mma, ldmatrix, 16-bit packing, complex
// arithmetic and vector loads of 16-bit elements.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

namespace longconv {

// ---- 16-bit element types ---------------------------------------------------------------------
template <typename T> struct Half2;
template <> struct Half2<__nv_bfloat16> { using type = __nv_bfloat162; };
template <> struct Half2<__half> { using type = __half2; };

__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(float x) { return x; }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

// Two floats -> one 32-bit register of two 16-bit values (lo in the low half), as mma expects.
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename T> __device__ __forceinline__ float2 unpack2(uint32_t v) {
  typename Half2<T>::type h = *reinterpret_cast<typename Half2<T>::type*>(&v);
  return make_float2(to_float(h.x), to_float(h.y));
}

// Eight packed 16-bit values, checked without unpacking: a value is NaN or infinite iff its
// exponent bits are all set, i.e. iff adding the exponent's lowest bit to them carries into the
// sign bit (bf16: exponent 0x7f80, fp16: 0x7c00; two values per 32-bit word).
template <typename T>
__device__ __forceinline__ bool all_finite8(const uint4& v) {
  constexpr uint32_t exp2 = std::is_same<T, __half>::value ? 0x7c007c00u : 0x7f807f80u;
  constexpr uint32_t low2 = exp2 & ~(exp2 << 1);  // the exponent's lowest bit, per value
  const auto bad = [&](uint32_t w) { return (w & exp2) + low2; };
  return ((bad(v.x) | bad(v.y) | bad(v.z) | bad(v.w)) & 0x80008000u) == 0;
}
// Eight NaNs of type T (the value a row with a non-finite input is written as).
template <typename T>
__device__ __forceinline__ uint4 nan8() {
  constexpr uint32_t w = std::is_same<T, __half>::value ? 0x7e007e00u : 0x7fc07fc0u;
  return make_uint4(w, w, w, w);
}

// ---- tensor cores -------------------------------------------------------------------------------
// d += a * b for one m16n8k16 tile, fp32 accumulation. a: 4 regs (16x16 row-major), b: 2 regs.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                          uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// m16n8k8: A = rows g, g + 8 x columns 2t, 2t + 1 (the first two registers of a k16 A fragment),
// B = rows 2t, 2t + 1 x column g.
template <typename T>
__device__ __forceinline__ void mma_1688(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0);

template <>
__device__ __forceinline__ void mma_1688<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(b0));
}

template <>
__device__ __forceinline__ void mma_1688<__half>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(b0));
}

// Four transposed 8x8 16-bit matrices from shared memory; lane l gives the address of row l%8 of
// matrix l/8; register m receives (M_m[2t][g], M_m[2t+1][g]) with g = lane/4, t = lane%4.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// ---- asynchronous global -> shared copies (sm_80+) ------------------------------------------
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
}
// Copies src_bytes (0..16) from global memory and zero-fills the rest of the 16 shared bytes.
__device__ __forceinline__ void cp_async16_zfill(void* smem_dst, const void* gmem_src, int src_bytes) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// ---- complex helpers ----------------------------------------------------------------------------
__device__ __forceinline__ float2 scale2(float2 a, float s) { return make_float2(a.x * s, a.y * s); }
__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float2 cmul_conj(float2 a, float2 b) {  // a * conj(b)
  return make_float2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y);
}
// exp(-2*pi*i * num / den) for 0 <= num < den, with the argument reduced to [-pi, pi).
__device__ __forceinline__ float2 unit_root(int num, int den) {
  float x = -2.f * static_cast<float>(num) / static_cast<float>(den);  // in units of pi, (-2, 0]
  if (x < -1.f) x += 2.f;
  float s, c;
  __sincosf(x * 3.14159265358979f, &s, &c);
  return make_float2(c, s);
}

// Radix-R DFT of R complex values in registers (R = 1, 2, 4, .., 32), unnormalised, natural
// order in and out; kInv: conjugate twiddles. Radix-2 decimation in time by template recursion,
// so every index and twiddle is a compile-time constant.
template <int R, bool kInv>
__device__ __forceinline__ void small_dft(float (&re)[R], float (&im)[R]) {
  static_assert(R >= 1 && R <= 32 && (R & (R - 1)) == 0, "radix must be a power of two <= 32");
  if constexpr (R > 1) {
    constexpr int H = R / 2;
    float er[H], ei[H], odr[H], odi[H];
#pragma unroll
    for (int i = 0; i < H; ++i) {
      er[i] = re[2 * i];
      ei[i] = im[2 * i];
      odr[i] = re[2 * i + 1];
      odi[i] = im[2 * i + 1];
    }
    small_dft<H, kInv>(er, ei);
    small_dft<H, kInv>(odr, odi);
    // cos and sin of 2 pi e / 32, e = 0..15
    constexpr float kCos[16] = {1.f, 0.98078528f, 0.923879533f, 0.831469612f, 0.707106781f, 0.555570233f, 0.382683432f, 0.195090322f,
                               0.f, -0.195090322f, -0.382683432f, -0.555570233f, -0.707106781f, -0.831469612f, -0.923879533f, -0.98078528f};
    constexpr float kSin[16] = {0.f, 0.195090322f, 0.382683432f, 0.555570233f, 0.707106781f, 0.831469612f, 0.923879533f, 0.98078528f,
                               1.f, 0.98078528f, 0.923879533f, 0.831469612f, 0.707106781f, 0.555570233f, 0.382683432f, 0.195090322f};
#pragma unroll
    for (int k = 0; k < H; ++k) {
      const int e = k * (32 / R);  // twiddle exp(-+2 pi i e / 32)
      float tr = odr[k], ti = odi[k];
      if (e == 8) {  // -+i
        tr = kInv ? -odi[k] : odi[k];
        ti = kInv ? odr[k] : -odr[k];
      } else if (e != 0) {
        const float wr = kCos[e], wi = kInv ? kSin[e] : -kSin[e];
        tr = odr[k] * wr - odi[k] * wi;
        ti = odr[k] * wi + odi[k] * wr;
      }
      re[k] = er[k] + tr;
      im[k] = ei[k] + ti;
      re[k + H] = er[k] - tr;
      im[k + H] = ei[k] - ti;
    }
  }
}

// ---- vector accesses of V consecutive elements --------------------------------------------
// A register type of `Bytes` bytes (one access up to 16 bytes, two for 32).
struct alignas(16) Bits32 { uint4 lo, hi; };
template <int Bytes> struct VecBytes;
template <> struct VecBytes<4> { using type = uint32_t; };
template <> struct VecBytes<8> { using type = uint2; };
template <> struct VecBytes<16> { using type = uint4; };
template <> struct VecBytes<32> { using type = Bits32; };
template <typename T, int V> using Vec = typename VecBytes<V * static_cast<int>(sizeof(T))>::type;

// Loads elements [pos, pos+V) of a row of length L as floats; out-of-range elements read as 0.
// `vec_ok`: the row start is aligned so that a full in-range vector can be loaded in one access.
template <typename T, int V>
__device__ __forceinline__ void load_row(float (&out)[V], const T* __restrict__ row, int pos, int L, bool vec_ok) {
  if (vec_ok && pos + V <= L) {
    const Vec<T, V> bits = *reinterpret_cast<const Vec<T, V>*>(row + pos);
    const T* e = reinterpret_cast<const T*>(&bits);
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = to_float(e[v]);
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = (pos + v < L) ? to_float(row[pos + v]) : 0.f;
  }
}

template <typename T, int V>
__device__ __forceinline__ void store_row(T* __restrict__ row, const float (&in)[V], int pos, int L, bool vec_ok) {
  if (vec_ok && pos + V <= L) {
    Vec<T, V> bits;
    T* e = reinterpret_cast<T*>(&bits);
#pragma unroll
    for (int v = 0; v < V; ++v) e[v] = from_float<T>(in[v]);
    *reinterpret_cast<Vec<T, V>*>(row + pos) = bits;
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v)
      if (pos + v < L) row[pos + v] = from_float<T>(in[v]);
  }
}

}  // namespace longconv
