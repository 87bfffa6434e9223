// The Postprocessor object JS sees: built once from validated params, holding one backend engine
// (with its workspace and threads) for its lifetime. run() returns a Promise from an AsyncWorker
// that reads the caller's TypedArrays in place and writes into output arrays allocated before it
// starts; runSync() does the same on the calling thread for small inputs.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "rk/engine.h"
#include "rk/params.h"

namespace rkjs {

class Postprocessor : public Napi::ObjectWrap<Postprocessor> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Postprocessor(const Napi::CallbackInfo& info);

  rk::Engine* engine() { return engine_.get(); }
  const rk::PostprocessParams& params() const { return params_; }
  void set_busy(bool busy) { busy_ = busy; }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunSync(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value Threads(const Napi::CallbackInfo& info);
  Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  void CheckUsable(Napi::Env env) const;

  rk::PostprocessParams params_;
  std::vector<float> class_thresh_;  // what params_.select.class_thresh points into
  std::unique_ptr<rk::Engine> engine_;
  int threads_ = 1;
  bool busy_ = false;
};

}  // namespace rkjs
