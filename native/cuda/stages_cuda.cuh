// The CUDA stages between select and the outputs: arguments and launchers (internal to native/cuda).
#pragma once

#include <cstdint>

#include "common.cuh"
#include "rk/stages.h"
#include "select.cuh"

namespace rk {
namespace cuda {

// Everything top-k + decode needs, passed by value (the grid is ~8 KB of kernel parameters).
struct DecodeArgs {
  HeadArgs heads;
  AnchorGrid grid;
  DecodeParams decode;
  const float* anchors;  // device, optional
  bool anchors_per_image;
  const int32_t* image_sizes;  // device [N, 2]
};

// Shared memory of the top-k kernel for k candidates per slice.
size_t TopkSharedBytes(int32_t k);
// Largest topk_candidates the CUDA backend takes (its top-k is ranked in shared memory).
constexpr int32_t kMaxCudaTopk = 16384;

Status LaunchTopkDecode(const DecodeArgs& args, const SelectState& st, const DeviceCandidates& out, int32_t* error,
                        cudaStream_t stream);

// NMS scratch for a batch of N images with `slots` candidate slots each and K classes.
struct NmsScratch {
  int32_t* rank_of_slot = nullptr;  // [N, slots] score rank of each valid slot
  int32_t* by_rank = nullptr;       // [N, slots] slot of each score rank
  int32_t* grouped = nullptr;       // [N, slots] members of large groups, at the group's offset
  int32_t* rank_label = nullptr;    // [N, slots] label (clamped to [0, K)) of each score rank
  uint32_t* range_part = nullptr;   // [N, rank_blocks, 2] coordinate range of each rank block's boxes
  int32_t rank_blocks = 0;          // blocks of the rank stage per image
  float4* member_box = nullptr;     // [N, slots] boxes of large groups in member order
  float* member_area = nullptr;     // [N, slots]
  uint8_t* suppressed = nullptr;    // [N, slots] of large groups in member order
  uint8_t* kept = nullptr;          // [N, slots] by score rank
  int32_t* info = nullptr;          // [N, 4]: valid candidates
};

size_t NmsScratchBytes(int32_t batch, int32_t slots);
NmsScratch CarveNmsScratch(void* base, int32_t batch, int32_t slots);

}  // namespace cuda
}  // namespace rk
