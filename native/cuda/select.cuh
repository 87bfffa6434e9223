// State of the selection pass between its kernels (device memory carved from the workspace).
#pragma once

#include <cstdint>

#include "common.cuh"

namespace rk {
namespace cuda {

// Per (image, level) slice s = n*L + l.
struct SelectState {
  float* start = nullptr;           // [S] start score from the sample estimate (-inf: none)
  float* cut = nullptr;             // [S] prefilter cut on the raw value
  uint32_t* count = nullptr;        // [S] candidates appended (may exceed capacity: overflow)
  uint64_t* keys = nullptr;         // [S, capacity] RankKey(score, order): the order says which element (FromOrder)
  uint32_t capacity = 0;
  uint32_t* need_fallback = nullptr;  // [S]
  uint32_t* hist = nullptr;           // [S, 2048] radix histograms of the exact path
  uint32_t* prefix = nullptr;         // [S]
  uint32_t* prefix_mask = nullptr;    // [S]
  uint32_t* remaining = nullptr;      // [S]
  uint32_t* taken_all = nullptr;      // [S]
  uint32_t* kth_key = nullptr;        // [S]
  uint32_t* kth_order_key = nullptr;  // [S]
};

// Tiles of the select pass (tile_elements each: a whole number of 16-byte vectors, 4096 f32 or 8192
// f16 elements by default): level l owns tiles [first[l], first[l+1]) of each image.
struct TileMap {
  int first[kMaxLevels];
  int tiles;
  int64_t tile_elements;
};

TileMap MakeTileMap(const HeadShapes& s, DType dtype);
uint32_t SelectCapacity(const SelectParams& p);
constexpr int kSelectBins = 2048;

// Threshold + prefilter + exact fallback: fills st.keys/count for every slice, with count <= capacity
// and, when count > k, the slice's top-k among them.
// Also zeroes the error record (kErrorWords words) before the top-k stage can write it.
Status LaunchSelect(const SelectParams& p, const HeadArgs& h, const TileMap& tiles, const SelectState& st, int32_t* error,
                    cudaStream_t stream);

}  // namespace cuda
}  // namespace rk
