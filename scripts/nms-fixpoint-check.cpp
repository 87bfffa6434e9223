// A host model of the chunk resolve in native/cuda/nms.cu (BitmaskGroup): for random chunks of up to
// 32 members (random upper-triangular diagonal words of every density, random removed words), the
// fixpoint kept = allowed & ~(OR of the kept members' words), iterated from kept = allowed as the
// kernel does (one warp reduction a round there, a loop here), equals the sequential greedy walk.
// Prints the mismatches (must be 0) and the rounds taken (mean and largest).
//   g++ -O2 -std=c++17 -o /tmp/nms-fixpoint-check scripts/nms-fixpoint-check.cpp && /tmp/nms-fixpoint-check [trials]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

int main(int argc, char** argv) {
  const long trials = argc > 1 ? std::atol(argv[1]) : 2000000;
  std::mt19937 rng(7);
  long mismatches = 0, rounds = 0, most = 0;
  for (long trial = 0; trial < trials; ++trial) {
    const int live = 1 + static_cast<int>(rng() % 32);
    const double density = (rng() % 100) / 100.0;
    uint32_t d[32] = {};
    for (int i = 0; i < live; ++i) {
      for (int j = i + 1; j < live; ++j) {
        if ((rng() % 1000) / 1000.0 < density) d[i] |= 1u << j;
      }
    }
    const uint32_t live_mask = live == 32 ? ~0u : ((1u << live) - 1u);
    const uint32_t removed = rng() & rng() & live_mask;
    uint32_t walked = removed;  // the sequential walk: member t, unless removed, removes its word's members
    for (int t = 0; t < 32; ++t) {
      if (((walked >> t) & 1u) == 0) walked |= d[t];
    }
    const uint32_t expected = ~walked & live_mask;
    const uint32_t allowed = ~removed & live_mask;
    uint32_t kept = allowed;
    long r = 0;
    for (;;) {
      uint32_t hit = 0;  // the warp reduction: lane q contributes d[q] when q is kept
      for (int q = 0; q < 32; ++q) {
        if ((kept >> q) & 1u) hit |= d[q];
      }
      const uint32_t next = allowed & ~hit;
      ++r;
      if (next == kept) break;
      kept = next;
    }
    mismatches += kept != expected;
    rounds += r;
    if (r > most) most = r;
  }
  std::printf("%ld chunks: %ld mismatches; rounds per chunk: mean %.2f, largest %ld\n", trials, mismatches,
              static_cast<double>(rounds) / static_cast<double>(trials), most);
  return mismatches == 0 ? 0 : 1;
}
