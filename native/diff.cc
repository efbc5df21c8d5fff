// diff_iterate2 over one range at a time: JS pulls ranges at its own pace,
// so memory stays bounded on huge images and no librbd thread ever waits
// for JS (callbacks may run on librados completion threads).
#include <algorithm>
#include <dlfcn.h>

#include <atomic>

#include "common.h"

namespace rbdstream {

namespace {

struct Collector {
  std::mutex mu;
  std::vector<DiffExtent> extents;
};

int Collect(uint64_t off, size_t len, int exists, void* arg) {
  auto* c = static_cast<Collector*>(arg);
  std::lock_guard<std::mutex> lk(c->mu);
  c->extents.push_back({off, len, exists != 0});
  return 0;
}

}  // namespace

// Flag values from Reef's librbd.h (RBD_DIFF_ITERATE_FLAG_*), absent from Pacific's headers.
constexpr uint32_t kDiffIncludeParent = 1u << 0;
constexpr uint32_t kDiffWholeObject = 1u << 1;

DiffIterate3Fn DiffIterate3() {
  // RTLD_DEFAULT: librbd is already loaded (the addon links it); a static resolves once, thread-safely.
  static const DiffIterate3Fn fn = reinterpret_cast<DiffIterate3Fn>(dlsym(RTLD_DEFAULT, "rbd_diff_iterate3"));
  return fn;
}

int DiffExtents(rbd_image_t image, const DiffFrom& from, uint64_t off, uint64_t len, bool includeParent,
                bool wholeObject, std::vector<DiffExtent>* out) {
  Collector c;
  int rc;
  if (from.has && from.byId) {
    DiffIterate3Fn fn = DiffIterate3();
    // JS checks capabilities() first and explains; this guards direct calls.
    if (!fn) return -EOPNOTSUPP;
    uint32_t flags = (includeParent ? kDiffIncludeParent : 0) | (wholeObject ? kDiffWholeObject : 0);
    rc = fn(image, from.id, off, len, flags, Collect, &c);
  } else {
    rc = rbd_diff_iterate2(image, from.has ? from.name.c_str() : nullptr, off, len, includeParent ? 1 : 0,
                           wholeObject ? 1 : 0, Collect, &c);
  }
  if (rc < 0) return rc;
  std::sort(c.extents.begin(), c.extents.end(), [](const DiffExtent& a, const DiffExtent& b) { return a.off < b.off; });
  out->insert(out->end(), c.extents.begin(), c.extents.end());
  return 0;
}

namespace {

// (image, fromSnap: name | bigint id | null, offset, length, wholeObject, includeParent)
//   → Float64Array [offset, length, exists(0|1), …], sorted by offset
Napi::Value DiffRange(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  DiffFrom from;
  if (info[1].IsBigInt()) {
    bool lossless = false;
    from.id = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), "fromSnap id must fit in 64 bits");
    from.has = from.byId = true;
  } else {
    from.has = ArgOptString(info, 1, &from.name);
  }
  uint64_t off = ArgU64(info, 2, "offset");
  uint64_t len = ArgU64(info, 3, "length");
  bool wholeObject = info[4].ToBoolean();
  bool includeParent = info[5].ToBoolean();
  struct R {
    std::vector<DiffExtent> extents;
  };
  OpContext ctx = OpContext::For("diff", img.get());
  if (from.has) ctx.op = from.byId ? "diff from snapshot id " + std::to_string(from.id)
                                   : "diff from snapshot '" + from.name + "'";
  return RunBlocking<R>(
      info.Env(), ctx,
      [img, from, off, len, wholeObject, includeParent](R& r) {
        return DiffExtents(img->image, from, off, len, includeParent, wholeObject, &r.extents);
      },
      [](Napi::Env env, R& r) {
        auto arr = Napi::Float64Array::New(env, r.extents.size() * 3);
        for (size_t i = 0; i < r.extents.size(); i++) {
          arr[i * 3] = static_cast<double>(r.extents[i].off);
          arr[i * 3 + 1] = static_cast<double>(r.extents[i].len);
          arr[i * 3 + 2] = r.extents[i].exists ? 1 : 0;
        }
        return arr;
      });
}

// What the running librbd offers beyond Pacific's C API, by dlsym (no librbd call: safe on the JS
// thread). cephVersion comes from libceph-common (loaded with librbd), as librbd's own version
// (rbd_version: 1.16.0 on Pacific, 1.18.0 on all of Reef) cannot tell 18.2.4 from 18.2.5.
Napi::Value GetCapabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  using VersionFn = const char* (*)();
  auto ver = reinterpret_cast<VersionFn>(dlsym(RTLD_DEFAULT, "_Z19ceph_version_to_strv"));  // ceph_version_to_str()
  o.Set("cephVersion", ver ? Napi::Value(Napi::String::New(env, ver())) : env.Null());
  o.Set("diffIterate3", Napi::Boolean::New(env, DiffIterate3() != nullptr));
  return o;
}

}  // namespace

void InitDiff(Napi::Env env, Napi::Object exports) {
  exports.Set("getDiffExtents", Napi::Function::New(env, DiffRange));
  exports.Set("getCapabilities", Napi::Function::New(env, GetCapabilities));
}

}  // namespace rbdstream
