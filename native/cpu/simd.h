// The CPU core's SIMD paths: SSE2 where the compiler targets it, AVX2 chosen at run time on x86-64.
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RK_HAVE_AVX2_PATH 1
#endif

namespace rk {

#if defined(RK_HAVE_AVX2_PATH)
// Whether the AVX2 paths run: the CPU has AVX2 and the environment does not set RK_CPU_SIMD=sse2
// (how the tests run the SSE2 paths on an AVX2 machine). Decided once per process.
inline bool Avx2Enabled() {
  static const bool on = __builtin_cpu_supports("avx2") && !(std::getenv("RK_CPU_SIMD") && std::strcmp(std::getenv("RK_CPU_SIMD"), "sse2") == 0);
  return on;
}
#endif

}  // namespace rk
