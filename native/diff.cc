// diff_iterate2 over one range at a time: JS pulls ranges at its own pace,
// so memory stays bounded on huge images and no librbd thread ever waits
// for JS (callbacks may run on librados completion threads).
#include <algorithm>
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

int DiffExtents(rbd_image_t image, const char* fromSnap, uint64_t off, uint64_t len, bool includeParent,
                bool wholeObject, std::vector<DiffExtent>* out) {
  Collector c;
  int rc = rbd_diff_iterate2(image, fromSnap, off, len, includeParent ? 1 : 0, wholeObject ? 1 : 0, Collect, &c);
  if (rc < 0) return rc;
  std::sort(c.extents.begin(), c.extents.end(), [](const DiffExtent& a, const DiffExtent& b) { return a.off < b.off; });
  out->insert(out->end(), c.extents.begin(), c.extents.end());
  return 0;
}

namespace {

// (image, fromSnap|null, offset, length, wholeObject, includeParent)
//   → Float64Array [offset, length, exists(0|1), …], sorted by offset
Napi::Value DiffRange(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string from;
  bool hasFrom = ArgOptString(info, 1, &from);
  uint64_t off = ArgU64(info, 2, "offset");
  uint64_t len = ArgU64(info, 3, "length");
  bool wholeObject = info[4].ToBoolean();
  bool includeParent = info[5].ToBoolean();
  struct R {
    std::vector<DiffExtent> extents;
  };
  OpContext ctx = OpContext::For("diff", img.get());
  if (hasFrom) ctx.op = "diff from snapshot '" + from + "'";
  return RunBlocking<R>(
      info.Env(), ctx,
      [img, from, hasFrom, off, len, wholeObject, includeParent](R& r) {
        return DiffExtents(img->image, hasFrom ? from.c_str() : nullptr, off, len, includeParent, wholeObject,
                           &r.extents);
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

}  // namespace

void InitDiff(Napi::Env env, Napi::Object exports) { exports.Set("getDiffExtents", Napi::Function::New(env, DiffRange)); }

}  // namespace rbdstream
