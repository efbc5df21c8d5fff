// JS entry points of the copy engine (native/copy/engine.cc): start, cancel, and the
// exclusive lock replicate() takes on its target.
#include <algorithm>

#include "copy/engine.h"

namespace rbdstream {

namespace {

using namespace copy;

Napi::Value U(Napi::Env env, uint64_t v) { return Napi::Number::New(env, double(v)); }

// (src, dst, opts, onProgress(done, total, extents)) → { job, promise }
Napi::Value CopyStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto src = Unwrap<Image>(info[0], "image");
  auto dst = Unwrap<Image>(info[1], "image");
  if (!info[2].IsObject() || !info[3].IsFunction()) throw Napi::TypeError::New(env, "startCopy(src, dst, opts, fn)");
  Napi::Object o = info[2].As<Napi::Object>();
  auto job = std::make_shared<Job>(env);
  job->src = src;
  job->dst = dst;
  Options& opt = job->o;
  opt.verify = o.Get("mode").ToString().Utf8Value() == "verify";
  Napi::Value from = o.Get("fromSnap");
  if (from.IsString()) {
    opt.from.has = true;
    opt.from.name = from.As<Napi::String>().Utf8Value();
  } else if (from.IsBigInt()) {
    bool lossless = false;
    opt.from.id = from.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "fromSnap id must fit in 64 bits");
    opt.from.has = opt.from.byId = true;
  }
  auto num = [&](const char* k) { return uint64_t(o.Get(k).ToNumber().DoubleValue()); };
  opt.toSnapId = num("toSnapId");
  opt.size = num("size");
  opt.startOffset = num("startOffset");
  opt.chunk = std::max<uint64_t>(kBlock, num("chunkSize"));
  opt.concurrency = int(std::max<uint64_t>(1, num("concurrency")));
  opt.inflightBytes = std::max<uint64_t>(opt.chunk, num("inflightBytes"));
  opt.bandwidth = num("bandwidth");
  opt.targetZeroed = o.Get("targetZeroed").ToBoolean();
  opt.fillGaps = o.Get("fillGaps").ToBoolean();
  opt.enumeration = int(num("enumeration"));
  if (o.Has("readGap") && o.Get("readGap").IsNumber()) opt.readGap = num("readGap");
  if (o.Has("writeGap") && o.Get("writeGap").IsNumber()) opt.writeGap = num("writeGap");
  opt.checkpointPrefix = o.Get("checkpointPrefix").ToString().Utf8Value();
  opt.checkpointMs = int(std::max<uint64_t>(10, num("checkpointMs")));
  opt.checkpointBeforeFirstWrite = o.Get("checkpointBeforeFirstWrite").ToBoolean();
  opt.pretouch = o.Get("pretouch").ToBoolean();
  opt.objectWrites = !o.Has("objectWrites") || o.Get("objectWrites").ToBoolean();
  Napi::Value extra = o.Get("extra");
  if (extra.IsTypedArray()) {
    auto a = extra.As<Napi::Float64Array>();
    for (size_t i = 0; i + 1 < a.ElementLength(); i += 2) opt.extra.push_back({uint64_t(a[i]), uint64_t(a[i + 1]), true});
  }

  auto* holder = new std::shared_ptr<Job>(job);
  job->tsfn = Napi::ThreadSafeFunction::New(
      env, info[3].As<Napi::Function>(), "rbd-stream copy", 0, 1, holder,
      [](Napi::Env env, void*, std::shared_ptr<Job>* h) {
        // Runs on the JS thread once the job thread released the function.
        Job* j = h->get();
        // Normally the thread has finished; at environment teardown (process.exit mid-copy) it has not:
        // stop it (in-flight I/O drains, a checkpoint is written) instead of waiting for the whole copy.
        j->cancel = true;
        if (j->th.joinable()) j->th.join();
        Napi::HandleScope scope(env);
        if (j->settled) {
          // Rejected early (a target op failed); the other ops have drained now.
        } else if (j->err) {
          j->deferred.Reject(ErrnoError(env, j->err, j->errCtx).Value());
        } else {
          Napi::Object r = Napi::Object::New(env);
          r.Set("bytesRead", U(env, j->bytesRead));
          r.Set("bytesWritten", U(env, j->bytesWritten));
          r.Set("bytesZeroed", U(env, j->bytesZeroed));
          r.Set("extents", U(env, j->extentsDone));
          r.Set("bytesTotal", U(env, j->total));
          r.Set("doneOffset", U(env, j->doneOffset));
          r.Set("peakInflightBytes", U(env, j->peakBytesInFlight));
          r.Set("aborted", Napi::Boolean::New(env, j->aborted));
          r.Set("mismatchOffset", Napi::Number::New(env, double(j->mismatch)));
          r.Set("enumerateMs", Napi::Number::New(env, j->enumerateMs));
          r.Set("copyMs", Napi::Number::New(env, j->copyMs));
          r.Set("usedObjectMap", Napi::Boolean::New(env, j->usedObjectMap));
          r.Set("pretouched", U(env, j->pretouched));
          r.Set("objectWriteOps", U(env, j->objectWriteOps));
          r.Set("objectWrites", U(env, j->objectWrites));
          r.Set("objectWritesRedone", U(env, j->objectWritesRedone));
          j->deferred.Resolve(r);
        }
        j->settled = true;
        j->ended.Resolve(env.Undefined());
        delete h;
      },
      (void*)nullptr);
  Job* raw = job.get();
  job->th = std::thread([raw] {
    Run(raw);
    // Drop the image references here, before JS hears of the end: a close() right after the
    // promise settles must find itself the last holder and really close the image.
    raw->src.reset();
    raw->dst.reset();
    raw->tsfn.Release();
  });
  Napi::Object ret = Napi::Object::New(env);
  auto* box = new std::shared_ptr<Job>(job);
  ret.Set("job", Napi::External<std::shared_ptr<Job>>::New(env, box, [](Napi::Env, std::shared_ptr<Job>* b) { delete b; }));
  ret.Set("promise", job->deferred.Promise());
  ret.Set("ended", job->ended.Promise());
  return ret;
}

Napi::Value CopyCancel(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "expected a copy job");
  Job* j = info[0].As<Napi::External<std::shared_ptr<Job>>>().Data()->get();
  j->cancel = true;
  {
    std::lock_guard<std::mutex> lk(j->mu);
    j->cv.notify_one();
  }
  return info.Env().Undefined();
}

Napi::Value LockAcquire(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  return RunBlocking<Empty>(info.Env(), OpContext::For("acquire exclusive lock", img.get()),
                            [img](Empty&) { return rbd_lock_acquire(img->image, RBD_LOCK_MODE_EXCLUSIVE); });
}

}  // namespace

void InitCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("startCopy", Napi::Function::New(env, CopyStart));
  exports.Set("cancelCopy", Napi::Function::New(env, CopyCancel));
  exports.Set("acquireLock", Napi::Function::New(env, LockAcquire));
}

}  // namespace rbdstream
