// The one errno→Error helper, and the argument helpers.
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

// Builds an error through the factory lib/binding registers (an RbdError, named and typed on
// the JS side from the errno: lib/core/errors.ts holds the only errno→name table). Without a
// factory (the addon loaded on its own) or if it fails, a plain Error with the same fields.
static Napi::Error BuildError(Napi::Env env, const std::string& message, Napi::Object props) {
  Napi::FunctionReference& factory = ErrorFactory(env);
  if (!factory.IsEmpty()) {
    napi_value argv[2] = {Napi::String::New(env, message), props};
    napi_value result = nullptr;
    if (napi_call_function(env, env.Undefined(), factory.Value(), 2, argv, &result) == napi_ok && result != nullptr)
      return Napi::Error(env, result);
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  Napi::Error e = Napi::Error::New(env, message);
  Napi::Object o = e.Value();
  Napi::Array keys = props.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) o.Set(keys.Get(i), props.Get(keys.Get(i)));
  return e;
}

Napi::Error ErrnoError(Napi::Env env, int rc, const OpContext& ctx) {
  int err = rc < 0 ? -rc : rc;
  std::string target;
  if (!ctx.pool.empty()) {
    target = ctx.pool;
    if (!ctx.ns.empty()) target += "/" + ctx.ns;
  }
  if (!ctx.group.empty()) target += (target.empty() ? "" : "/") + ctx.group;
  else if (!ctx.image.empty()) target += (target.empty() ? "" : "/") + ctx.image;
  if (!ctx.snap.empty()) target += "@" + ctx.snap;
  // The factory puts the code in front: "ENOENT: open image 'rbd/x' failed: No such file or directory".
  std::string msg = ctx.op;
  if (!target.empty()) msg += " '" + target + "'";
  msg += ctx.detail;
  msg += " failed: ";
  msg += strerror(err);
  // Full pools, pools over quota and hung OSDs all surface as a timeout: say so. So does a user
  // without OSD caps against Reef or later daemons (Pacific's answer EPERM instead).
  if (err == ETIMEDOUT) {
    msg += " (no reply within the operation timeout: OSD down or hung, pool full/over quota, "
           "or, on Ceph Reef and later, a user without OSD caps)";
  }
  Napi::Object props = Napi::Object::New(env);
  props.Set("errno", Napi::Number::New(env, -err));
  props.Set("operation", Napi::String::New(env, ctx.op));
  if (!ctx.pool.empty()) props.Set("pool", Napi::String::New(env, ctx.pool));
  if (!ctx.ns.empty()) props.Set("namespace", Napi::String::New(env, ctx.ns));
  if (!ctx.image.empty()) props.Set("image", Napi::String::New(env, ctx.image));
  if (!ctx.snap.empty()) props.Set("snapshot", Napi::String::New(env, ctx.snap));
  if (!ctx.group.empty()) props.Set("group", Napi::String::New(env, ctx.group));
  return BuildError(env, msg, props);
}

Napi::Error ClosedError(Napi::Env env, const std::string& what) {
  Napi::Object props = Napi::Object::New(env);
  props.Set("code", Napi::String::New(env, "ERR_CLOSED"));
  return BuildError(env, what + " is closed", props);
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

// (factory(message, props) → Error): registered once, by lib/binding/index.ts.
static Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "factory must be a function");
  ErrorFactory(info.Env()) = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
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

bool ArgRecords(const Napi::CallbackInfo& info, size_t i, std::vector<std::string>* keys, std::vector<std::string>* vals,
                std::vector<std::string>* removes) {
  if (info.Length() <= i + 1 || !info[i].IsArray() || !info[i + 1].IsArray()) return false;
  auto set = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k + 1 < set.Length(); k += 2) {
    keys->push_back(set.Get(k).ToString().Utf8Value());
    vals->push_back(set.Get(k + 1).ToString().Utf8Value());
  }
  auto rm = info[i + 1].As<Napi::Array>();
  for (uint32_t k = 0; k < rm.Length(); k++) removes->push_back(rm.Get(k).ToString().Utf8Value());
  return true;
}

Napi::Value U64(Napi::Env env, uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory));
  exports.Set("makeError", Napi::Function::New(env, MakeError));
}

}  // namespace rbdstream
