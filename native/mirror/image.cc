// Per-image mirroring: enable/disable, promote/demote, resync, mirror snapshots, info,
// mode and status, over rbd_mirror_image_*. Calls take an Image handle.
#include "mirror/mirror.h"

namespace rbdstream {

namespace {

// --- image ---------------------------------------------------------------------

// One call on an image's mirroring that resolves to nothing.
template <typename F>
Napi::Value ImageCall(const Napi::CallbackInfo& info, std::shared_ptr<Image> img, const char* label, F call) {
  return RunBlocking<Empty>(info.Env(), OpContext::For(label, img.get()), [img, call](Empty&) { return call(img->image); });
}

// (image, mode: raw rbd_mirror_image_mode_t)
Napi::Value Enable(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  auto mode = static_cast<rbd_mirror_image_mode_t>(ArgU64(info, 1, "mode"));
  return ImageCall(info, img, "enable mirroring", [mode](rbd_image_t im) { return rbd_mirror_image_enable2(im, mode); });
}

bool ArgFlag(const Napi::CallbackInfo& info, size_t i) { return info.Length() > i && info[i].ToBoolean(); }

// (image, force)
Napi::Value Disable(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  bool force = ArgFlag(info, 1);
  return ImageCall(info, img, "disable mirroring", [force](rbd_image_t im) { return rbd_mirror_image_disable(im, force); });
}

// (image, force)
Napi::Value Promote(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  bool force = ArgFlag(info, 1);
  return ImageCall(info, img, "promote mirrored image", [force](rbd_image_t im) { return rbd_mirror_image_promote(im, force); });
}

Napi::Value Demote(const Napi::CallbackInfo& info) {
  return ImageCall(info, Unwrap<Image>(info[0], "image"), "demote mirrored image", rbd_mirror_image_demote);
}

Napi::Value Resync(const Napi::CallbackInfo& info) {
  return ImageCall(info, Unwrap<Image>(info[0], "image"), "resync mirrored image", rbd_mirror_image_resync);
}

Napi::Value CreateSnapshot(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    uint64_t id = 0;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("create mirror snapshot", img.get()),
      [img](R& r) { return rbd_mirror_image_create_snapshot2(img->image, 0, &r.id); },
      [](Napi::Env env, R& r) { return U64(env, r.id); });
}

Napi::Value GetInfo(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    std::string globalId;
    int state = 0;
    bool primary = false;
    int mode = -1;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror info", img.get()),
      [img](R& r) {
        rbd_mirror_image_info_t mi{};
        int rc = rbd_mirror_image_get_info(img->image, &mi, sizeof(mi));
        if (rc < 0) return rc;
        r.globalId = Str(mi.global_id);
        r.state = mi.state;
        r.primary = mi.primary;
        rbd_mirror_image_get_info_cleanup(&mi);
        if (r.state == RBD_MIRROR_IMAGE_ENABLED) {
          rbd_mirror_image_mode_t m;
          if (rbd_mirror_image_get_mode(img->image, &m) == 0) r.mode = m;
        }
        return 0;
      },
      [](Napi::Env env, R& r) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("globalId", r.globalId);
        o.Set("state", r.state);
        o.Set("primary", r.primary);
        o.Set("mode", r.mode);  // -1: not reported (mirroring not enabled)
        return o;
      });
}

Napi::Value GetMode(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    rbd_mirror_image_mode_t mode = RBD_MIRROR_IMAGE_MODE_JOURNAL;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror image mode", img.get()),
      [img](R& r) { return rbd_mirror_image_get_mode(img->image, &r.mode); },
      [](Napi::Env env, R& r) { return Napi::Number::New(env, r.mode); });
}

Napi::Value GetGlobalStatus(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    GlobalStatus g;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror image status", img.get()),
      [img](R& r) {
        rbd_mirror_image_global_status_t st{};
        int rc = rbd_mirror_image_get_global_status(img->image, &st, sizeof(st));
        if (rc < 0) return rc;
        CopyGlobalStatus(st, &r.g);
        rbd_mirror_image_global_status_cleanup(&st);
        return 0;
      },
      [](Napi::Env env, R& r) { return GlobalStatusToJs(env, r.g); });
}

}  // namespace

void InitMirrorImage(Napi::Env env, Napi::Object exports) {
  exports.Set("enableImageMirroring", Napi::Function::New(env, Enable));
  exports.Set("disableImageMirroring", Napi::Function::New(env, Disable));
  exports.Set("promoteImage", Napi::Function::New(env, Promote));
  exports.Set("demoteImage", Napi::Function::New(env, Demote));
  exports.Set("resyncImage", Napi::Function::New(env, Resync));
  exports.Set("createMirrorSnapshot", Napi::Function::New(env, CreateSnapshot));
  exports.Set("getImageMirrorInfo", Napi::Function::New(env, GetInfo));
  exports.Set("getImageMirrorMode", Napi::Function::New(env, GetMode));
  exports.Set("getImageMirrorStatus", Napi::Function::New(env, GetGlobalStatus));
}

}  // namespace rbdstream
