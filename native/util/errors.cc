// The one errno→Error helper.
#include <cstring>

#include "common.h"

namespace rbdstream {

OpContext OpContext::For(const std::string& op, const IoCtx* io) {
  OpContext c;
  c.op = op;
  if (io) {
    c.pool = io->pool;
    c.ns = io->ns;
  }
  return c;
}

OpContext OpContext::For(const std::string& op, const Image* img) {
  OpContext c = For(op, img ? img->ioctx.get() : nullptr);
  if (img) {
    c.image = img->name;
    c.snap = img->snap;
  }
  return c;
}

static std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : ("E" + std::to_string(err));
}

Napi::Error ErrnoError(Napi::Env env, int rc, const OpContext& ctx) {
  int err = rc < 0 ? -rc : rc;
  std::string code = ErrnoName(err);
  std::string target;
  if (!ctx.pool.empty()) {
    target = ctx.pool;
    if (!ctx.ns.empty()) target += "/" + ctx.ns;
  }
  if (!ctx.image.empty()) target += (target.empty() ? "" : "/") + ctx.image;
  if (!ctx.snap.empty()) target += "@" + ctx.snap;
  std::string msg = code + ": " + ctx.op;
  if (!target.empty()) msg += " '" + target + "'";
  msg += " failed: ";
  msg += strerror(err);
  // Full pools, pools over quota and hung OSDs all surface as a timeout: say so.
  if (err == ETIMEDOUT) msg += " (no reply within the operation timeout: OSD down or hung, or pool full/over quota)";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("operation", Napi::String::New(env, ctx.op));
  if (!ctx.pool.empty()) e.Set("pool", Napi::String::New(env, ctx.pool));
  if (!ctx.ns.empty()) e.Set("namespace", Napi::String::New(env, ctx.ns));
  if (!ctx.image.empty()) e.Set("image", Napi::String::New(env, ctx.image));
  if (!ctx.snap.empty()) e.Set("snapshot", Napi::String::New(env, ctx.snap));
  return e;
}

// Lets JS build the same errors for failures it detects itself.
static Napi::Value MakeError(const Napi::CallbackInfo& info) {
  OpContext ctx;
  int rc = info[0].As<Napi::Number>().Int32Value();
  ctx.op = info[1].As<Napi::String>();
  if (info[2].IsString()) ctx.pool = info[2].As<Napi::String>();
  if (info[3].IsString()) ctx.image = info[3].As<Napi::String>();
  if (info[4].IsString()) ctx.snap = info[4].As<Napi::String>();
  return ErrnoError(info.Env(), rc, ctx).Value();
}

static Napi::Value ErrnoCode(const Napi::CallbackInfo& info) {
  int err = info[0].As<Napi::Number>().Int32Value();
  return Napi::String::New(info.Env(), ErrnoName(err < 0 ? -err : err));
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(name) + " out of range");
    return r;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  std::string s = info[i].As<Napi::String>();
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must not contain NUL");
  return s;
}

bool ArgOptString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return false;
  *out = ArgString(info, i, "argument");
  return true;
}

Napi::Value U64(Napi::Env env, uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("makeError", Napi::Function::New(env, MakeError));
  exports.Set("errnoCode", Napi::Function::New(env, ErrnoCode));
}

}  // namespace rbdstream
