// Status codes of the post-processing core. The core never throws: every stage returns a Status,
// and only the bindings (Node, TensorRT) turn it into their own error shape.
#pragma once

#include <string>
#include <utility>

namespace rk {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,  // a parameter is out of its domain (ERR_RK_PARAM)
  kShapeMismatch,    // a buffer does not match the declared shapes (ERR_RK_SHAPE)
  kNonFinite,        // a NaN reached a decoded box (ERR_RK_NONFINITE)
  kCudaError,        // a CUDA runtime call failed (ERR_RK_CUDA)
  kUnavailable,      // the backend is not present on this machine (ERR_RK_UNAVAILABLE)
  kInternal,         // an invariant of the core broke (ERR_RK_INTERNAL)
};

// A code plus a message that names the parameter, the expected value and what was received.
class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// The error code string the bindings attach to their errors (`err.code` in JS).
inline const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "ERR_RK_PARAM";
    case Code::kShapeMismatch: return "ERR_RK_SHAPE";
    case Code::kNonFinite: return "ERR_RK_NONFINITE";
    case Code::kCudaError: return "ERR_RK_CUDA";
    case Code::kUnavailable: return "ERR_RK_UNAVAILABLE";
    case Code::kInternal: return "ERR_RK_INTERNAL";
  }
  return "ERR_RK_INTERNAL";
}

#define RK_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::rk::Status rk_status_ = (expr);     \
    if (!rk_status_.ok()) return rk_status_; \
  } while (0)

}  // namespace rk
