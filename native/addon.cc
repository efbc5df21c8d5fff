// Module entry: one init per concern.
#include "common.h"

namespace rbdstream {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitErrors(env, exports);
  InitAio(env, exports);
  InitConnection(env, exports);
  InitPool(env, exports);
  InitImage(env, exports);
  InitSnapshot(env, exports);
  InitDiff(env, exports);
  InitObjectMap(env, exports);
  InitMirrorPool(env, exports);
  InitMirrorImage(env, exports);
  InitCopy(env, exports);
  InitGroup(env, exports);
  int major = 0, minor = 0, extra = 0;
  rbd_version(&major, &minor, &extra);
  exports.Set("librbdVersion", Napi::String::New(env, std::to_string(major) + "." + std::to_string(minor) + "." +
                                                          std::to_string(extra)));
  return exports;
}

}  // namespace rbdstream

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return rbdstream::Init(env, exports); }

NODE_API_MODULE(rbd_stream, InitModule)
