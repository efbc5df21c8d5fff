// Consistency groups: create/remove/list/rename, member images, group snapshots (create, remove,
// rename, list, rollback) and the group an image belongs to. librbd's group API is name-based: every
// call takes the group's io context and name, no handle.
#include <chrono>

#include "common.h"

namespace rbdstream {

namespace {

OpContext GroupCtx(const std::string& op, const IoCtx* io, const std::string& group, const std::string& snap = "") {
  OpContext c = OpContext::For(op, io);
  c.group = group;
  c.snap = snap;
  return c;
}

// Every group name in the pool (librbd packs them NUL-separated; answers -ERANGE with the size needed).
int ListGroupNames(rados_ioctx_t io, std::vector<std::string>* out) {
  std::vector<char> buf;
  size_t size = 1024;
  int rc = -ERANGE;
  for (int tries = 0; tries < 8 && rc == -ERANGE; tries++) {
    buf.assign(size > 0 ? size : 1, 0);
    size = buf.size();
    rc = rbd_group_list(io, buf.data(), &size);
  }
  if (rc < 0) return rc;
  // rc is the bytes used.
  for (size_t i = 0; i < static_cast<size_t>(rc) && i < buf.size();) {
    std::string name(buf.data() + i, strnlen(buf.data() + i, buf.size() - i));
    i += name.size() + 1;
    if (!name.empty()) out->push_back(std::move(name));
  }
  return 0;
}

// 0 when the group exists, -ENOENT when not. librbd's list calls answer an empty list for a missing
// group, and its remove succeeds on one: callers use this to report ENOENT instead.
int GroupExists(rados_ioctx_t io, const std::string& name) {
  std::vector<std::string> names;
  int rc = ListGroupNames(io, &names);
  if (rc < 0) return rc;
  for (const auto& n : names)
    if (n == name) return 0;
  return -ENOENT;
}

// The name of pool `id` (rados_pool_reverse_lookup answers -ERANGE when the buffer is short).
int PoolName(rados_t cluster, int64_t id, std::string* out) {
  std::vector<char> buf(128);
  for (int tries = 0; tries < 6; tries++) {
    int rc = rados_pool_reverse_lookup(cluster, id, buf.data(), buf.size());
    if (rc == -ERANGE) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (rc < 0) return rc;
    out->assign(buf.data(), strnlen(buf.data(), buf.size()));
    return 0;
  }
  return -ERANGE;
}

// (pool, group)
template <typename F>
Napi::Value ByName(const Napi::CallbackInfo& info, const char* op, F call) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  return RunBlocking<Empty>(info.Env(), GroupCtx(op, io.get(), group),
                            [io, group, call](Empty&) { return call(io->io, group.c_str()); });
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  return ByName(info, "create group", [](rados_ioctx_t io, const char* g) { return rbd_group_create(io, g); });
}

Napi::Value Remove(const Napi::CallbackInfo& info) {
  return ByName(info, "remove group", [](rados_ioctx_t io, const char* g) {
    int rc = GroupExists(io, g);
    return rc < 0 ? rc : rbd_group_remove(io, g);
  });
}

Napi::Value Exists(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  struct R {
    bool exists = false;
  };
  return RunBlocking<R>(
      info.Env(), GroupCtx("open group", io.get(), group),
      [io, group](R& r) {
        int rc = GroupExists(io->io, group);
        r.exists = rc == 0;
        return rc == -ENOENT ? 0 : rc;
      },
      [](Napi::Env env, R& r) { return Napi::Boolean::New(env, r.exists); });
}

Napi::Value List(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::vector<std::string> names;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list groups", io.get()), [io](R& r) { return ListGroupNames(io->io, &r.names); },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.names, [&](const std::string& n) { return Napi::String::New(env, n); });
      });
}

Napi::Value Rename(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string from = ArgString(info, 1, "group");
  std::string to = ArgString(info, 2, "new name");
  OpContext ctx = GroupCtx("rename group", io.get(), from);
  ctx.detail = " to '" + to + "'";
  return RunBlocking<Empty>(info.Env(), ctx,
                            [io, from, to](Empty&) { return rbd_group_rename(io->io, from.c_str(), to.c_str()); });
}

// (groupPool, group, imagePool, image)
template <typename F>
Napi::Value ImageOp(const Napi::CallbackInfo& info, const char* op, F call) {
  auto gio = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  auto iio = Unwrap<IoCtx>(info[2], "pool");
  std::string image = ArgString(info, 3, "image");
  OpContext ctx = GroupCtx(op, gio.get(), group);
  ctx.image = image;
  ctx.detail = " (image '" + iio->pool + (iio->ns.empty() ? "" : "/" + iio->ns) + "/" + image + "')";
  return RunBlocking<Empty>(info.Env(), ctx, [gio, group, iio, image, call](Empty&) {
    return call(gio->io, group.c_str(), iio->io, image.c_str());
  });
}

Napi::Value ImageAdd(const Napi::CallbackInfo& info) {
  return ImageOp(info, "add image to group", rbd_group_image_add);
}

Napi::Value ImageRemove(const Napi::CallbackInfo& info) {
  return ImageOp(info, "remove image from group", rbd_group_image_remove);
}

Napi::Value ImageList(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  struct Entry {
    std::string name, pool;
    int64_t poolId;
    int state;
  };
  struct R {
    std::vector<Entry> images;
  };
  return RunBlocking<R>(
      info.Env(), GroupCtx("list group images", io.get(), group),
      [io, group](R& r) {
        std::vector<rbd_group_image_info_t> v;
        size_t n = 16;
        int rc = -ERANGE;
        for (int tries = 0; tries < 8 && rc == -ERANGE; tries++) {
          v.assign(n > 0 ? n : 1, rbd_group_image_info_t{});
          n = v.size();
          rc = rbd_group_image_list(io->io, group.c_str(), v.data(), sizeof(rbd_group_image_info_t), &n);
        }
        if (rc < 0) return rc;
        for (size_t i = 0; i < n; i++) r.images.push_back({v[i].name, "", v[i].pool, static_cast<int>(v[i].state)});
        rbd_group_image_list_cleanup(v.data(), sizeof(rbd_group_image_info_t), n);
        if (r.images.empty()) return GroupExists(io->io, group);  // librbd lists a missing group as empty
        for (auto& e : r.images) {
          rc = PoolName(io->cluster->rados, e.poolId, &e.pool);
          if (rc < 0) return rc;
        }
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.images, [&](const Entry& e) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", e.name);
          o.Set("pool", e.pool);
          o.Set("poolId", Napi::Number::New(env, static_cast<double>(e.poolId)));
          o.Set("state", e.state == RBD_GROUP_IMAGE_STATE_ATTACHED     ? "attached"
                         : e.state == RBD_GROUP_IMAGE_STATE_INCOMPLETE ? "incomplete"
                                                                       : "unknown");
          return o;
        });
      });
}

// (pool, group, snap, skipQuiesce, ignoreQuiesceError)
Napi::Value SnapCreate(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  std::string snap = ArgString(info, 2, "snapshot");
  uint32_t flags = 0;
  if (info[3].ToBoolean()) flags |= RBD_SNAP_CREATE_SKIP_QUIESCE;
  if (info[4].ToBoolean()) flags |= RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR;
  return RunBlocking<Empty>(info.Env(), GroupCtx("create group snapshot", io.get(), group, snap),
                            [io, group, snap, flags](Empty&) {
                              return rbd_group_snap_create2(io->io, group.c_str(), snap.c_str(), flags);
                            });
}

Napi::Value SnapRemove(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  std::string snap = ArgString(info, 2, "snapshot");
  return RunBlocking<Empty>(info.Env(), GroupCtx("remove group snapshot", io.get(), group, snap),
                            [io, group, snap](Empty&) { return rbd_group_snap_remove(io->io, group.c_str(), snap.c_str()); });
}

Napi::Value SnapRename(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  std::string from = ArgString(info, 2, "snapshot");
  std::string to = ArgString(info, 3, "new name");
  OpContext ctx = GroupCtx("rename group snapshot", io.get(), group, from);
  ctx.detail = " to '" + to + "'";
  return RunBlocking<Empty>(info.Env(), ctx, [io, group, from, to](Empty&) {
    return rbd_group_snap_rename(io->io, group.c_str(), from.c_str(), to.c_str());
  });
}

Napi::Value SnapList(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  struct Entry {
    std::string name;
    int state;
  };
  struct R {
    std::vector<Entry> snaps;
  };
  return RunBlocking<R>(
      info.Env(), GroupCtx("list group snapshots", io.get(), group),
      [io, group](R& r) {
        std::vector<rbd_group_snap_info_t> v;
        size_t n = 16;
        int rc = -ERANGE;
        for (int tries = 0; tries < 8 && rc == -ERANGE; tries++) {
          v.assign(n > 0 ? n : 1, rbd_group_snap_info_t{});
          n = v.size();
          rc = rbd_group_snap_list(io->io, group.c_str(), v.data(), sizeof(rbd_group_snap_info_t), &n);
        }
        if (rc < 0) return rc;
        for (size_t i = 0; i < n; i++) r.snaps.push_back({v[i].name, static_cast<int>(v[i].state)});
        rbd_group_snap_list_cleanup(v.data(), sizeof(rbd_group_snap_info_t), n);
        if (r.snaps.empty()) return GroupExists(io->io, group);  // librbd lists a missing group as empty
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.snaps, [&](const Entry& e) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", e.name);
          o.Set("state", e.state == RBD_GROUP_SNAP_STATE_COMPLETE     ? "complete"
                         : e.state == RBD_GROUP_SNAP_STATE_INCOMPLETE ? "incomplete"
                                                                      : "unknown");
          return o;
        });
      });
}

// Rollback progress. librbd rolls the members back in parallel and hands each member's
// (objects done, objects total) to the one callback, from its own threads, without saying which
// member: we forward the latest pair at most every kProgressMs, and the last one with the result.
struct RollbackProgress {
  static constexpr int kProgressMs = 100;
  std::mutex mu;
  uint64_t done = 0, total = 0;
  bool any = false;
  std::chrono::steady_clock::time_point last{};
  Napi::ThreadSafeFunction tsfn;  // empty without onProgress
  bool hasTsfn = false;

  static int Callback(uint64_t done, uint64_t total, void* arg) {
    auto* p = static_cast<RollbackProgress*>(arg);
    std::lock_guard<std::mutex> lk(p->mu);
    p->done = done;
    p->total = total;
    auto now = std::chrono::steady_clock::now();
    bool first = !p->any;
    p->any = true;
    if (!p->hasTsfn || (!first && now - p->last < std::chrono::milliseconds(kProgressMs))) return 0;
    p->last = now;
    auto* pair = new std::pair<uint64_t, uint64_t>(done, total);
    napi_status st = p->tsfn.NonBlockingCall(pair, [](Napi::Env env, Napi::Function fn, std::pair<uint64_t, uint64_t>* v) {
      double d = static_cast<double>(v->first), t = static_cast<double>(v->second);
      delete v;
      if (env != nullptr && !fn.IsEmpty()) fn.Call({Napi::Number::New(env, d), Napi::Number::New(env, t)});
    });
    if (st != napi_ok) delete pair;
    return 0;  // librbd ignores the return value: rollback cannot be cancelled mid-way
  }
};

// (pool, group, snap, onProgress?(done, total)) → { done, total } of the last report, or null
Napi::Value SnapRollback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string group = ArgString(info, 1, "group");
  std::string snap = ArgString(info, 2, "snapshot");
  auto progress = std::make_shared<RollbackProgress>();
  if (info.Length() > 3 && info[3].IsFunction()) {
    progress->tsfn = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "rbd-stream group rollback", 0, 1);
    progress->hasTsfn = true;
  }
  struct R {
    std::shared_ptr<RollbackProgress> p;
  };
  return RunBlocking<R>(
      env, GroupCtx("rollback group snapshot", io.get(), group, snap),
      [io, group, snap, progress](R& r) {
        int rc = rbd_group_snap_rollback_with_progress(io->io, group.c_str(), snap.c_str(), RollbackProgress::Callback,
                                                       progress.get());
        {
          std::lock_guard<std::mutex> lk(progress->mu);
          if (progress->hasTsfn) progress->tsfn.Release();
          progress->hasTsfn = false;
        }
        r.p = progress;
        return rc;
      },
      [](Napi::Env env, R& r) -> Napi::Value {
        if (!r.p || !r.p->any) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("done", U64(env, r.p->done));
        o.Set("total", U64(env, r.p->total));
        return o;
      });
}

// (image) → { pool, poolId, name } | null
Napi::Value ImageGetGroup(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    bool has = false;
    int64_t poolId = -1;
    std::string pool, name;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get image group", img.get()),
      [img](R& r) {
        rbd_group_info_t g{};
        int rc = rbd_get_group(img->image, &g, sizeof(g));
        if (rc < 0) return rc;
        r.poolId = g.pool;
        r.name = g.name ? g.name : "";
        rbd_group_info_cleanup(&g, sizeof(g));
        if (r.poolId < 0 || r.name.empty()) return 0;  // RBD_GROUP_INVALID_POOL: not in a group
        r.has = true;
        return PoolName(img->ioctx->cluster->rados, r.poolId, &r.pool);
      },
      [](Napi::Env env, R& r) -> Napi::Value {
        if (!r.has) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("pool", r.pool);
        o.Set("poolId", Napi::Number::New(env, static_cast<double>(r.poolId)));
        o.Set("name", r.name);
        return o;
      });
}

}  // namespace

void InitGroup(Napi::Env env, Napi::Object exports) {
  exports.Set("createGroup", Napi::Function::New(env, Create));
  exports.Set("removeGroup", Napi::Function::New(env, Remove));
  exports.Set("groupExists", Napi::Function::New(env, Exists));
  exports.Set("listGroups", Napi::Function::New(env, List));
  exports.Set("renameGroup", Napi::Function::New(env, Rename));
  exports.Set("addGroupImage", Napi::Function::New(env, ImageAdd));
  exports.Set("removeGroupImage", Napi::Function::New(env, ImageRemove));
  exports.Set("listGroupImages", Napi::Function::New(env, ImageList));
  exports.Set("createGroupSnapshot", Napi::Function::New(env, SnapCreate));
  exports.Set("removeGroupSnapshot", Napi::Function::New(env, SnapRemove));
  exports.Set("renameGroupSnapshot", Napi::Function::New(env, SnapRename));
  exports.Set("listGroupSnapshots", Napi::Function::New(env, SnapList));
  exports.Set("rollbackGroupSnapshot", Napi::Function::New(env, SnapRollback));
  exports.Set("getImageGroup", Napi::Function::New(env, ImageGetGroup));
}

}  // namespace rbdstream
