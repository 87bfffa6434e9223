#include "postprocessor.h"

#include <string>
#include <thread>
#include <vector>

#include "convert.h"
#include "rk/stages.h"
#if defined(RK_WITH_CUDA)
#include "rk/cuda_engine.h"
#endif

namespace rkjs {
namespace {

// Output arrays of one run, allocated on the main thread before the work starts.
struct Outputs {
  Napi::Int32Array counts;
  Napi::Float32Array boxes;
  Napi::Float32Array scores;
  Napi::Int32Array labels;
  rk::Detections view;

  Outputs(Napi::Env env, int32_t batch, int32_t max_detections) {
    const size_t n = static_cast<size_t>(batch), d = static_cast<size_t>(max_detections);
    counts = Napi::Int32Array::New(env, n);
    boxes = Napi::Float32Array::New(env, n * d * 4);
    scores = Napi::Float32Array::New(env, n * d);
    labels = Napi::Int32Array::New(env, n * d);
    view.max_detections = max_detections;
    view.counts = counts.Data();
    view.boxes = boxes.Data();
    view.scores = scores.Data();
    view.labels = labels.Data();
  }
};

// [counts, boxes, scores, labels] as live handles of the current scope.
Napi::Object ResultObject(Napi::Env env, const Napi::Value (&arrays)[4], int32_t max_detections,
                          const rk::RunTimings& timings) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("counts", arrays[0]);
  result.Set("boxes", arrays[1]);
  result.Set("scores", arrays[2]);
  result.Set("labels", arrays[3]);
  result.Set("maxDetections", Napi::Number::New(env, max_detections));
  Napi::Object t = Napi::Object::New(env);
  t.Set("uploadMs", Napi::Number::New(env, timings.upload_ms));
  t.Set("computeMs", Napi::Number::New(env, timings.compute_ms));
  t.Set("downloadMs", Napi::Number::New(env, timings.download_ms));
  t.Set("selectMs", Napi::Number::New(env, timings.select_ms));
  t.Set("decodeNmsMs", Napi::Number::New(env, timings.decode_nms_ms));
  t.Set("graphReplayed", Napi::Boolean::New(env, timings.graph_replayed));
  result.Set("timings", t);
  return result;
}

// One run of the engine on head tensors or on candidate lists.
rk::Status RunEngine(rk::Engine* engine, const RunInputs& in, rk::Detections* out, rk::RunTimings* timings) {
  if (in.from_candidates) {
    return engine->RunCandidates(in.shapes, in.candidates, in.tensors.image_sizes, in.tensors.output_sizes, out, timings);
  }
  return engine->Run(in.shapes, in.tensors, in.residency, out, timings);
}

// Runs the engine on a libuv worker thread. Execute touches no V8 state: it reads the pointers
// captured in the constructor, whose buffers stay referenced until OnOK / OnError.
class RunWorker final : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Postprocessor* owner, Napi::Object owner_object, RunInputs inputs)
      : Napi::AsyncWorker(env, "retinanet-kernel:run"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        inputs_(std::move(inputs)) {
    owner_ref_ = Napi::Persistent(owner_object);
    for (Napi::Value& v : inputs_.buffers) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    inputs_.buffers.clear();
    // Outputs are allocated here, on the main thread; Execute writes through `view_`.
    Outputs outputs(env, inputs_.shapes.batch, owner->params().output.detections_per_img);
    view_ = outputs.view;
    out_refs_.push_back(Napi::Persistent(outputs.counts.As<Napi::Object>()));
    out_refs_.push_back(Napi::Persistent(outputs.boxes.As<Napi::Object>()));
    out_refs_.push_back(Napi::Persistent(outputs.scores.As<Napi::Object>()));
    out_refs_.push_back(Napi::Persistent(outputs.labels.As<Napi::Object>()));
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    status_ = RunEngine(owner_->engine(), inputs_, &view_, &timings_);
    if (!status_.ok()) SetError(status_.message());
  }

  void OnOK() override {
    owner_->set_busy(false);
    // The handles made in the constructor belong to its scope: read the arrays back from the references.
    const Napi::Value arrays[4] = {out_refs_[0].Value(), out_refs_[1].Value(), out_refs_[2].Value(), out_refs_[3].Value()};
    deferred_.Resolve(ResultObject(Env(), arrays, view_.max_detections, timings_));
  }

  void OnError(const Napi::Error&) override {
    owner_->set_busy(false);
    deferred_.Reject(StatusError(Env(), status_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Postprocessor* owner_;
  Napi::ObjectReference owner_ref_;
  RunInputs inputs_;
  rk::Detections view_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<Napi::ObjectReference> out_refs_;
  rk::Status status_;
  rk::RunTimings timings_;
};

}  // namespace

Napi::Function Postprocessor::Define(Napi::Env env) {
  return DefineClass(env, "Postprocessor",
                     {InstanceMethod<&Postprocessor::Run>("run"),
                      InstanceMethod<&Postprocessor::RunSync>("runSync"),
                      InstanceMethod<&Postprocessor::Dispose>("dispose"),
                      InstanceAccessor<&Postprocessor::Backend>("backend"),
                      InstanceAccessor<&Postprocessor::Threads>("threads"),
                      InstanceAccessor<&Postprocessor::WorkspaceBytes>("workspaceBytes")});
}

// new Postprocessor(params, { backend: "cpu" | "cuda", threads?: number, device?: number })
Postprocessor::Postprocessor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Postprocessor>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowTypeError(env, "Expected a params object for new Postprocessor() but received none");
  }
  params_ = ParamsFromJs(info[0].As<Napi::Object>(), &class_thresh_);
  rk::Status st = rk::ValidateParams(params_);
  if (!st.ok()) throw StatusError(env, st);
  std::string backend = "cpu";
  threads_ = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int device = 0;
  bool graph = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    Napi::Value b = opts.Get("backend");
    if (b.IsString()) backend = b.As<Napi::String>().Utf8Value();
    Napi::Value t = opts.Get("threads");
    if (t.IsNumber()) {
      const double n = t.As<Napi::Number>().DoubleValue();
      if (!(n >= 1 && n <= 1024 && static_cast<int>(n) == n)) {
        ThrowRangeError(env, "Expected an integer in [1, 1024] for threads but received " + std::to_string(n));
      }
      threads_ = static_cast<int>(n);
    }
    Napi::Value d = opts.Get("device");
    if (d.IsNumber()) device = d.As<Napi::Number>().Int32Value();
    Napi::Value g = opts.Get("graph");
    if (!g.IsUndefined()) {
      if (!g.IsBoolean()) ThrowTypeError(env, "Expected a boolean for graph but received " + Describe(g));
      graph = g.As<Napi::Boolean>().Value();
    }
  }
  if (backend == "cpu") {
    engine_ = rk::MakeCpuEngine(params_, threads_);
  } else if (backend == "cuda") {
#if defined(RK_WITH_CUDA)
    rk::Status cst;
    engine_ = rk::MakeCudaEngine(params_, device, graph, &cst);
    if (!cst.ok()) throw StatusError(env, cst);
#else
    (void)device;
    (void)graph;
    throw StatusError(env, rk::Status(rk::Code::kUnavailable,
                                      "The cuda backend is not in this build: nvcc was not found when the "
                                      "addon was built (npm run build:native on a machine with CUDA)"));
#endif
  } else {
    ThrowRangeError(env, "Expected \"cpu\" or \"cuda\" for backend but received \"" + backend + "\"");
  }
}

void Postprocessor::CheckUsable(Napi::Env env) const {
  if (!engine_) {
    throw StatusError(env, rk::Status(rk::Code::kInvalidArgument,
                                      "Expected a live Postprocessor but this one was disposed"));
  }
  if (busy_) {
    Napi::Error err = Napi::Error::New(
        env, "Expected one run at a time per Postprocessor but a run is still in progress; await it first");
    err.Set("code", Napi::String::New(env, "ERR_RK_BUSY"));
    throw err;
  }
}

Napi::Value Postprocessor::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env);
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "Expected an inputs object for run() but received none");
  RunInputs inputs = InputsFromJs(info[0].As<Napi::Object>(), params_);
  auto* worker = new RunWorker(env, this, info.This().As<Napi::Object>(), std::move(inputs));
  busy_ = true;
  worker->Queue();
  return worker->Promise();
}

Napi::Value Postprocessor::RunSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env);
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "Expected an inputs object for runSync() but received none");
  RunInputs inputs = InputsFromJs(info[0].As<Napi::Object>(), params_);
  Outputs outputs(env, inputs.shapes.batch, params_.output.detections_per_img);
  rk::RunTimings timings;
  rk::Status st = RunEngine(engine_.get(), inputs, &outputs.view, &timings);
  if (!st.ok()) throw StatusError(env, st);
  const Napi::Value arrays[4] = {outputs.counts, outputs.boxes, outputs.scores, outputs.labels};
  return ResultObject(env, arrays, outputs.view.max_detections, timings);
}

Napi::Value Postprocessor::Backend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), engine_ ? engine_->backend() : "disposed");
}

Napi::Value Postprocessor::Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), threads_); }

Napi::Value Postprocessor::WorkspaceBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine_ ? static_cast<double>(engine_->workspace_bytes()) : 0.0);
}

Napi::Value Postprocessor::Dispose(const Napi::CallbackInfo& info) {
  CheckUsable(info.Env());
  engine_.reset();
  return info.Env().Undefined();
}

}  // namespace rkjs
