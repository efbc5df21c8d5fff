// aio completions → JS thread. librbd invokes the completion callback on its
// own threads; each one is handed to a per-environment thread-safe function,
// which Node drains in batches (up to 1000 per loop wake-up) on the JS thread.
#include "common.h"

namespace rbdstream {

void WaitForReleases();

namespace {

void CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, AioOp* op);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, AioOp, CallJs>;

// Per-environment state: the aio drain function, and the error factory (util/errors.cc).
struct AddonData {
  Tsfn tsfn;
  size_t inflight = 0;  // touched on the JS thread only
  Napi::FunctionReference errorFactory;
};

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

void Finish(Napi::Env env, AioOp* op, bool run) {
  AddonData* d = Data(env);
  if (--d->inflight == 0) d->tsfn.Unref(env);
  if (run) {
    Napi::HandleScope scope(env);
    op->Complete(env, op->rc);
  }
  if (op->completion) rbd_aio_release(op->completion);
  delete op;
}

void CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, AioOp* op) {
  if (env == nullptr) {  // environment going away: just free
    if (op->completion) rbd_aio_release(op->completion);
    delete op;
    return;
  }
  Finish(env, op, true);
}

void OnComplete(rbd_completion_t c, void* arg) {
  auto* op = static_cast<AioOp*>(arg);
  op->rc = rbd_aio_get_return_value(c);
  // Unbounded queue: never blocks librbd's thread.
  napi_call_threadsafe_function(op->tsfn, op, napi_tsfn_nonblocking);
}

// Runs at environment teardown, after handle finalizers have queued their
// releases: let those finish before librados goes away.
void FinalizeAddonData(Napi::Env, AddonData* data) {
  WaitForReleases();
  delete data;
}

}  // namespace

rbd_completion_t AioBegin(Napi::Env env, AioOp* op) {
  AddonData* d = Data(env);
  if (d->inflight++ == 0) d->tsfn.Ref(env);
  op->tsfn = static_cast<napi_threadsafe_function>(d->tsfn);
  rbd_aio_create_completion(op, OnComplete, &op->completion);
  return op->completion;
}

void AioAbort(Napi::Env env, AioOp* op) { Finish(env, op, false); }

Napi::FunctionReference& ErrorFactory(Napi::Env env) { return Data(env)->errorFactory; }

void InitAio(Napi::Env env, Napi::Object) {
  auto* d = new AddonData();
  d->tsfn = Tsfn::New(env, "rbd-stream-aio", 0, 1);
  d->tsfn.Unref(env);
  env.SetInstanceData<AddonData, FinalizeAddonData>(d);
}

}  // namespace rbdstream
