// Snapshots: create, remove, rollback, protect, unprotect, set (point reads at one), list (all namespaces,
// with the group, mirror and trash namespace details).
#include <algorithm>
#include <ctime>

#include "common.h"

namespace rbdstream {

namespace {

// librbd calls progress callbacks unconditionally: never pass NULL.
int NoProgress(uint64_t, uint64_t, void*) { return 0; }

struct SnapRef {
  bool byId = false;
  uint64_t id = 0;
  std::string name;
  std::string Label() const { return byId ? "#" + std::to_string(id) : name; }
};

SnapRef ArgSnap(const Napi::CallbackInfo& info, size_t i) {
  SnapRef s;
  if (info[i].IsNumber()) {
    s.byId = true;
    s.id = ArgU64(info, i, "snapshot id");
  } else {
    s.name = ArgString(info, i, "snapshot");
  }
  return s;
}

OpContext SnapCtx(const std::string& op, const Image* img, const SnapRef& s) {
  OpContext c = OpContext::For(op, img);
  c.snap = s.Label();
  return c;
}

}  // namespace

// The image header's snap context (cls_rbd get_snapcontext: u64 seq, then a u32 count of u64 ids,
// newest first), read straight from the header object: one round trip. `seq` may be null.
int HeaderSnapContext(Image* img, uint64_t* seq, std::vector<uint64_t>* ids) {
  std::string oid;
  int rc = HeaderOid(img, &oid);
  if (rc < 0) return rc;
  rados_read_op_t op = rados_create_read_op();
  char* out = nullptr;
  size_t outLen = 0;
  int prval = 0;
  rados_read_op_exec(op, "rbd", "get_snapcontext", nullptr, 0, &out, &outLen, &prval);
  rc = rados_read_op_operate(op, img->ioctx->io, oid.c_str(), 0);
  rados_release_read_op(op);
  if (rc >= 0) rc = prval;
  if (rc >= 0) rc = DecodeSnapContext(out, outLen, seq, ids);
  if (out != nullptr) rados_buffer_free(out);
  return rc;
}

int DecodeSnapContext(const char* out, size_t len, uint64_t* seq, std::vector<uint64_t>* ids) {
  if (out == nullptr || len < 12 || len < 12 + size_t(LoadLe32(out + 8)) * 8) return -EIO;
  if (seq != nullptr) *seq = LoadLe64(out);
  for (uint32_t i = 0, n = LoadLe32(out + 8); i < n; i++) ids->push_back(LoadLe64(out + 12 + size_t(i) * 8));
  return 0;
}

namespace {

int HeaderSnapIds(Image* img, std::vector<uint64_t>* ids) { return HeaderSnapContext(img, nullptr, ids); }

// (image, name[, knownIds[, flags]]): resolves to the new snapshot's id. librbd's own lookup
// (rbd_snap_get_id) would first refresh the image (the create marked it stale): several round
// trips on a far target. Instead the header's snapshot ids are read after the create, and before it
// unless the caller knows every id (all namespaces) listed since: one new id is ours. When more
// appeared (others created snapshots meanwhile) or a read fails, librbd's lookup decides.
// flags: RBD_SNAP_CREATE_*. Metadata sent ahead (sendMetadata) is on the wire before the create.
Napi::Value Create(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  SnapRef s = ArgSnap(info, 1);
  bool haveKnown = info.Length() > 2 && info[2].IsArray();
  std::vector<uint64_t> knownIds;
  if (haveKnown) {
    auto a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) knownIds.push_back(uint64_t(a.Get(i).ToNumber().DoubleValue()));
  }
  uint32_t flags = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0;
  uint64_t sentBefore = img->unsent->Last();
  return RunBlocking<uint64_t>(
      info.Env(), SnapCtx("create snapshot", img.get(), s),
      [img, s, haveKnown, knownIds, flags, sentBefore](uint64_t& newId) {
        std::vector<uint64_t> before = knownIds, after;
        bool known = haveKnown || HeaderSnapIds(img.get(), &before) >= 0;
        img->unsent->WaitSent(sentBefore);
        int rc = rbd_snap_create2(img->image, s.name.c_str(), int(flags), NoProgress, nullptr);
        if (rc < 0) return rc;
        if (known && HeaderSnapIds(img.get(), &after) >= 0) {
          std::vector<uint64_t> added;
          for (uint64_t x : after) {
            if (std::find(before.begin(), before.end(), x) == before.end()) added.push_back(x);
          }
          if (added.size() == 1) {
            newId = added[0];
            return 0;
          }
        }
        return rbd_snap_get_id(img->image, s.name.c_str(), &newId);
      },
      [](Napi::Env env, uint64_t& newId) -> Napi::Value { return Napi::Number::New(env, double(newId)); });
}

// (image): the ids in the header's snap context, read now (librbd's list may predate a removal by
// another client until its next refresh).
Napi::Value HeaderIds(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  return RunBlocking<std::vector<uint64_t>>(
      info.Env(), OpContext::For("read snapshot ids", img.get()),
      [img](std::vector<uint64_t>& ids) { return HeaderSnapIds(img.get(), &ids); },
      [](Napi::Env env, std::vector<uint64_t>& ids) -> Napi::Value {
        auto a = Napi::Array::New(env, ids.size());
        for (uint32_t i = 0; i < ids.size(); i++) a.Set(i, Napi::Number::New(env, double(ids[i])));
        return a;
      });
}

Napi::Value Remove(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  SnapRef s = ArgSnap(info, 1);
  bool force = info.Length() > 2 && info[2].ToBoolean();
  return RunBlocking<Empty>(info.Env(), SnapCtx("remove snapshot", img.get(), s), [img, s, force](Empty&) {
    if (s.byId) return rbd_snap_remove_by_id(img->image, s.id);
    return rbd_snap_remove2(img->image, s.name.c_str(), force ? RBD_SNAP_REMOVE_UNPROTECT : 0,
                            NoProgress, nullptr);
  });
}

// (image, name): rollback, protect and unprotect; librbd offers these by name only.
template <typename F>
Napi::Value ByName(const Napi::CallbackInfo& info, const char* label, F call) {
  auto img = Unwrap<Image>(info[0], "image");
  SnapRef s = ArgSnap(info, 1);
  return RunBlocking<Empty>(info.Env(), SnapCtx(label, img.get(), s), [img, s, call](Empty&) {
    if (s.byId) return -EINVAL;
    return call(img->image, s.name.c_str());
  });
}

Napi::Value Rollback(const Napi::CallbackInfo& info) {
  return ByName(info, "rollback snapshot", [](rbd_image_t im, const char* name) {
    return rbd_snap_rollback_with_progress(im, name, NoProgress, nullptr);
  });
}

Napi::Value Protect(const Napi::CallbackInfo& info) {
  return ByName(info, "protect snapshot", [](rbd_image_t im, const char* name) { return rbd_snap_protect(im, name); });
}

Napi::Value Unprotect(const Napi::CallbackInfo& info) {
  return ByName(info, "unprotect snapshot", [](rbd_image_t im, const char* name) { return rbd_snap_unprotect(im, name); });
}

// (image, name | id | null): null points reads back at the head.
Napi::Value Set(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  bool head = info[1].IsNull() || info[1].IsUndefined();
  SnapRef s;
  if (!head) s = ArgSnap(info, 1);
  return RunBlocking<Empty>(info.Env(), SnapCtx("set snapshot", img.get(), s), [img, s, head](Empty&) {
    rbd_image_t im = img->image;
    if (head) return rbd_snap_set(im, nullptr);
    return s.byId ? rbd_snap_set_by_id(im, s.id) : rbd_snap_set(im, s.name.c_str());
  });
}

struct SnapEntry {
  uint64_t id = 0, size = 0;
  std::string name;
  double timestamp = 0;
  int ns = 0;
  bool isProtected = false;
  // mirror namespace
  int mirrorState = -1;
  bool mirrorComplete = false;
  std::string mirrorPrimaryUuid;
  uint64_t mirrorPrimarySnapId = 0;
  uint64_t mirrorLastCopied = 0;
  std::vector<std::string> mirrorPeers;
  // trash namespace
  std::string trashOriginalName;
  // group namespace
  bool hasGroup = false;
  int64_t groupPool = -1;
  std::string groupName, groupSnap;
};

constexpr int kListAttempts = 5;

// Reads the details of snapshot e.id. Returns -ENOENT if it is gone.
int SnapDetails(rbd_image_t image, SnapEntry& e) {
  // The namespace type comes first: it refreshes the image and looks the id up under librbd's lock.
  // rbd_snap_get_timestamp does neither, and asserts (aborting the process) on an id a refresh dropped,
  // so it is asked only for a snapshot that was there a moment ago. (Only a refresh started by I/O on
  // this same handle, between the two calls, could still drop it: librbd offers no locked timestamp.)
  rbd_snap_namespace_type_t type = RBD_SNAP_NAMESPACE_TYPE_USER;
  int rc = rbd_snap_get_namespace_type(image, e.id, &type);
  if (rc < 0) return rc;
  e.ns = type;
  struct timespec ts {};
  if (rbd_snap_get_timestamp(image, e.id, &ts) == 0) e.timestamp = ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
  if (type == RBD_SNAP_NAMESPACE_TYPE_USER) {
    int prot = 0;
    rc = rbd_snap_is_protected(image, e.name.c_str(), &prot);
    if (rc == 0) e.isProtected = prot != 0;
  } else if (type == RBD_SNAP_NAMESPACE_TYPE_MIRROR) {
    rbd_snap_mirror_namespace_t m{};
    rc = rbd_snap_get_mirror_namespace(image, e.id, &m, sizeof(m));
    if (rc == 0) {
      e.mirrorState = m.state;
      e.mirrorComplete = m.complete;
      e.mirrorPrimaryUuid = m.primary_mirror_uuid ? m.primary_mirror_uuid : "";
      e.mirrorPrimarySnapId = m.primary_snap_id;
      e.mirrorLastCopied = m.last_copied_object_number;
      const char* p = m.mirror_peer_uuids;
      for (size_t k = 0; p && k < m.mirror_peer_uuids_count; k++) {
        e.mirrorPeers.emplace_back(p);
        p += e.mirrorPeers.back().size() + 1;
      }
      rbd_snap_mirror_namespace_cleanup(&m, sizeof(m));
    }
  } else if (type == RBD_SNAP_NAMESPACE_TYPE_GROUP) {
    rbd_snap_group_namespace_t g{};
    rc = rbd_snap_get_group_namespace(image, e.id, &g, sizeof(g));
    if (rc == 0) {
      e.hasGroup = true;
      e.groupPool = g.group_pool;
      e.groupName = g.group_name ? g.group_name : "";
      e.groupSnap = g.group_snap_name ? g.group_snap_name : "";
      rbd_snap_group_namespace_cleanup(&g, sizeof(g));
    }
  } else if (type == RBD_SNAP_NAMESPACE_TYPE_TRASH) {
    char orig[512] = {0};
    rc = rbd_snap_get_trash_namespace(image, e.id, orig, sizeof(orig));
    if (rc == 0) e.trashOriginalName = orig;
  }
  // A detail that failed leaves its fields unset (a group snapshot whose group was removed has no group
  // name, for one), unless the failure is that the snapshot itself just went away.
  if (rc < 0 && rbd_snap_get_namespace_type(image, e.id, &type) == -ENOENT) return -ENOENT;
  return 0;
}

// One pass: the list, then each snapshot's details. Returns -EAGAIN if a snapshot vanished and
// `retryOnVanished`; otherwise a vanished snapshot is left out.
int ListSnapshotsOnce(rbd_image_t image, std::vector<SnapEntry>& out, bool retryOnVanished) {
  out.clear();
  int max = 16;
  std::vector<rbd_snap_info_t> infos;
  int n;
  for (;;) {
    infos.resize(max);
    n = rbd_snap_list(image, infos.data(), &max);
    if (n != -ERANGE) break;
  }
  if (n < 0) return n;
  int rc = 0;
  for (int i = 0; i < n; i++) {
    SnapEntry e;
    e.id = infos[i].id;
    e.size = infos[i].size;
    e.name = infos[i].name;
    int d = SnapDetails(image, e);
    if (d == -ENOENT) {
      if (retryOnVanished) {
        rc = -EAGAIN;
        break;
      }
      continue;
    }
    if (d < 0) {
      rc = d;
      break;
    }
    out.push_back(std::move(e));
  }
  rbd_snap_list_end(infos.data());
  return rc;
}

Napi::Value List(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    std::vector<SnapEntry> snaps;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list snapshots", img.get()),
      [img](R& r) {
        // A snapshot removed by another client while we walk the list (rbd-mirror prunes mirror snapshots
        // all the time) shows up as ENOENT on its details: list again, so the result is one state of the
        // image. After a few tries, leave out what vanished.
        int n = 0;
        for (int attempt = 0; attempt < kListAttempts; attempt++) {
          n = ListSnapshotsOnce(img->image, r.snaps, attempt + 1 < kListAttempts);
          if (n != -EAGAIN) break;
        }
        return n;
      },
      [](Napi::Env env, R& r) {
        static const char* kNs[] = {"user", "group", "trash", "mirror"};
        static const char* kMirrorState[] = {"primary", "primary-demoted", "non-primary", "non-primary-demoted"};
        Napi::Array a = Napi::Array::New(env, r.snaps.size());
        for (size_t i = 0; i < r.snaps.size(); i++) {
          const SnapEntry& e = r.snaps[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", U64(env, e.id));
          o.Set("name", e.name);
          o.Set("size", U64(env, e.size));
          o.Set("timestamp", Napi::Number::New(env, e.timestamp));
          o.Set("namespace", e.ns >= 0 && e.ns <= 3 ? kNs[e.ns] : "unknown");
          o.Set("protected", e.isProtected);
          if (e.mirrorState >= 0) {
            Napi::Object m = Napi::Object::New(env);
            m.Set("state", e.mirrorState <= 3 ? kMirrorState[e.mirrorState] : "unknown");
            m.Set("complete", e.mirrorComplete);
            m.Set("primaryMirrorUuid", e.mirrorPrimaryUuid);
            m.Set("primarySnapId", U64(env, e.mirrorPrimarySnapId));
            m.Set("lastCopiedObjectNumber", U64(env, e.mirrorLastCopied));
            Napi::Array peers = Napi::Array::New(env, e.mirrorPeers.size());
            for (size_t k = 0; k < e.mirrorPeers.size(); k++) peers.Set(k, e.mirrorPeers[k]);
            m.Set("peerUuids", peers);
            o.Set("mirror", m);
          }
          if (!e.trashOriginalName.empty()) o.Set("trashOriginalName", e.trashOriginalName);
          if (e.hasGroup) {
            Napi::Object g = Napi::Object::New(env);
            g.Set("pool", Napi::Number::New(env, static_cast<double>(e.groupPool)));
            g.Set("name", e.groupName);
            g.Set("snapshot", e.groupSnap);
            o.Set("group", g);
          }
          a.Set(i, o);
        }
        return a;
      });
}

}  // namespace

void InitSnapshot(Napi::Env env, Napi::Object exports) {
  exports.Set("createSnapshot", Napi::Function::New(env, Create));
  exports.Set("removeSnapshot", Napi::Function::New(env, Remove));
  exports.Set("rollbackSnapshot", Napi::Function::New(env, Rollback));
  exports.Set("protectSnapshot", Napi::Function::New(env, Protect));
  exports.Set("unprotectSnapshot", Napi::Function::New(env, Unprotect));
  exports.Set("setSnapshot", Napi::Function::New(env, Set));
  exports.Set("listSnapshots", Napi::Function::New(env, List));
  exports.Set("snapshotIds", Napi::Function::New(env, HeaderIds));
}

}  // namespace rbdstream
