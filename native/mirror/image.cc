// Per-image mirroring: enable/disable, promote/demote, resync, mirror snapshots, info,
// mode and status, over rbd_mirror_image_*. Calls take an Image handle.
#include "mirror/mirror.h"

namespace rbdstream {

namespace {

// --- image ---------------------------------------------------------------------

// (image, op, arg): op 'enable' (arg = mode), 'disable' (arg = force),
// 'promote' (arg = force), 'demote', 'resync'.
Napi::Value ImageOp(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string op = ArgString(info, 1, "op");
  int mode = 0;
  bool flag = false;
  if (op == "enable")
    mode = static_cast<int>(ArgU64(info, 2, "mode"));
  else
    flag = info.Length() > 2 && info[2].ToBoolean();
  std::string label = op == "enable"    ? "enable mirroring"
                      : op == "disable" ? "disable mirroring"
                                        : op + " mirrored image";
  return RunBlocking<Empty>(info.Env(), OpContext::For(label, img.get()), [img, op, mode, flag](Empty&) {
    rbd_image_t im = img->image;
    if (op == "enable") return rbd_mirror_image_enable2(im, static_cast<rbd_mirror_image_mode_t>(mode));
    if (op == "disable") return rbd_mirror_image_disable(im, flag);
    if (op == "promote") return rbd_mirror_image_promote(im, flag);
    if (op == "demote") return rbd_mirror_image_demote(im);
    if (op == "resync") return rbd_mirror_image_resync(im);
    return -EINVAL;
  });
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
        o.Set("state", ImageStateName(r.state));
        o.Set("primary", r.primary);
        if (r.mode >= 0) o.Set("mode", ImageModeName(r.mode));
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
      [](Napi::Env env, R& r) { return Napi::String::New(env, ImageModeName(r.mode)); });
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
  exports.Set("mirrorImageOp", Napi::Function::New(env, ImageOp));
  exports.Set("createMirrorSnapshot", Napi::Function::New(env, CreateSnapshot));
  exports.Set("getImageMirrorInfo", Napi::Function::New(env, GetInfo));
  exports.Set("getImageMirrorMode", Napi::Function::New(env, GetMode));
  exports.Set("getImageMirrorStatus", Napi::Function::New(env, GetGlobalStatus));
}

}  // namespace rbdstream
