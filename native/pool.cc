// Pools (io contexts) and the image operations that live on a pool.
#include "common.h"

namespace rbdstream {

namespace {

Napi::Value OpenPool(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  std::string name = ArgString(info, 1, "pool");
  std::string ns;
  ArgOptString(info, 2, &ns);
  struct R {
    std::shared_ptr<IoCtx> io;
  };
  OpContext ctx{"open pool", name, ns};
  return RunBlocking<R>(
      info.Env(), ctx,
      [c, name, ns](R& r) {
        auto io = std::make_shared<IoCtx>();
        io->cluster = c;
        io->pool = name;
        io->ns = ns;
        int rc = rados_ioctx_create(c->rados, name.c_str(), &io->io);
        if (rc < 0) {
          io->io = nullptr;
          return rc;
        }
        rados_ioctx_set_namespace(io->io, ns.c_str());
        r.io = std::move(io);
        return 0;
      },
      [](Napi::Env env, R& r) { return Wrap(env, std::move(r.io)); });
}

Napi::Value ClosePool(const Napi::CallbackInfo& info) {
  Box<IoCtx>* box = UnwrapBox<IoCtx>(info[0], "pool");
  std::shared_ptr<IoCtx> io = std::move(box->ptr);
  // Moved in: a copy left on the JS thread could be the last, and destroy the pool there.
  return RunBlocking<Empty>(info.Env(), OpContext{"close pool"}, [io = std::move(io)](Empty&) mutable {
    io.reset();
    return 0;
  });
}

Napi::Value PoolId(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  return Napi::Number::New(info.Env(), static_cast<double>(rados_ioctx_get_id(io->io)));
}

struct CreateOptions {
  uint64_t features = 0;
  bool hasFeatures = false;
  uint64_t order = 0;
  bool hasOrder = false;
  std::string dataPool;
  uint64_t stripeUnit = 0, stripeCount = 0;
};

// (pool, name, size, {features?, order?, dataPool?, stripeUnit?, stripeCount?})
Napi::Value CreateImage(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string name = ArgString(info, 1, "name");
  uint64_t size = ArgU64(info, 2, "size");
  CreateOptions o;
  if (info[3].IsObject()) {
    Napi::Object opts = info[3].As<Napi::Object>();
    if (opts.Get("features").IsNumber()) {
      o.features = static_cast<uint64_t>(opts.Get("features").As<Napi::Number>().Int64Value());
      o.hasFeatures = true;
    }
    if (opts.Get("order").IsNumber()) {
      o.order = opts.Get("order").As<Napi::Number>().Uint32Value();
      o.hasOrder = true;
    }
    if (opts.Get("dataPool").IsString()) o.dataPool = opts.Get("dataPool").As<Napi::String>();
    if (opts.Get("stripeUnit").IsNumber())
      o.stripeUnit = static_cast<uint64_t>(opts.Get("stripeUnit").As<Napi::Number>().Int64Value());
    if (opts.Get("stripeCount").IsNumber())
      o.stripeCount = static_cast<uint64_t>(opts.Get("stripeCount").As<Napi::Number>().Int64Value());
  }
  OpContext ctx = OpContext::For("create image", io.get());
  ctx.image = name;
  return RunBlocking<Empty>(info.Env(), ctx, [io, name, size, o](Empty&) {
    rbd_image_options_t opts;
    rbd_image_options_create(&opts);
    int rc = 0;
    if (o.hasFeatures) rc = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, o.features);
    if (rc == 0 && o.hasOrder) rc = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, o.order);
    if (rc == 0 && !o.dataPool.empty())
      rc = rbd_image_options_set_string(opts, RBD_IMAGE_OPTION_DATA_POOL, o.dataPool.c_str());
    if (rc == 0 && o.stripeUnit) rc = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_UNIT, o.stripeUnit);
    if (rc == 0 && o.stripeCount)
      rc = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_COUNT, o.stripeCount);
    if (rc == 0) rc = rbd_create4(io->io, name.c_str(), size, opts);
    rbd_image_options_destroy(opts);
    return rc;
  });
}

Napi::Value ListImages(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::vector<std::pair<std::string, std::string>> images;  // id, name
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list images", io.get()),
      [io](R& r) {
        size_t n = 64;
        std::vector<rbd_image_spec_t> specs;
        int rc;
        for (;;) {
          specs.resize(n);
          rc = rbd_list2(io->io, specs.data(), &n);
          if (rc != -ERANGE) break;
        }
        if (rc < 0) return rc;
        for (size_t i = 0; i < n; i++) r.images.emplace_back(specs[i].id, specs[i].name);
        rbd_image_spec_list_cleanup(specs.data(), n);
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.images, [&](const std::pair<std::string, std::string>& im) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", im.first);
          o.Set("name", im.second);
          return o;
        });
      });
}

Napi::Value RemoveImage(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string name = ArgString(info, 1, "name");
  OpContext ctx = OpContext::For("remove image", io.get());
  ctx.image = name;
  return RunBlocking<Empty>(info.Env(), ctx, [io, name](Empty&) { return rbd_remove(io->io, name.c_str()); });
}

Napi::Value RenameImage(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string from = ArgString(info, 1, "from");
  std::string to = ArgString(info, 2, "to");
  OpContext ctx = OpContext::For("rename image to '" + to + "'", io.get());
  ctx.image = from;
  return RunBlocking<Empty>(info.Env(), ctx,
                            [io, from, to](Empty&) { return rbd_rename(io->io, from.c_str(), to.c_str()); });
}

// (pool, name, { readOnly?, snapName?, snapId?, byId? })
Napi::Value OpenImage(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string name = ArgString(info, 1, "name");
  bool readOnly = false, hasSnapId = false, byId = false;
  std::string snapName;
  uint64_t snapId = 0;
  if (info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    readOnly = o.Get("readOnly").ToBoolean();
    byId = o.Get("byId").ToBoolean();
    if (o.Get("snapName").IsString()) snapName = o.Get("snapName").As<Napi::String>();
    if (o.Get("snapId").IsNumber()) {
      snapId = static_cast<uint64_t>(o.Get("snapId").As<Napi::Number>().Int64Value());
      hasSnapId = true;
    }
  }
  struct R {
    std::shared_ptr<Image> img;
  };
  OpContext ctx = OpContext::For("open image", io.get());
  ctx.image = name;
  ctx.snap = hasSnapId ? "#" + std::to_string(snapId) : snapName;
  return RunBlocking<R>(
      info.Env(), ctx,
      [io, name, readOnly, snapName, hasSnapId, snapId, byId](R& r) {
        auto img = std::make_shared<Image>();
        img->ioctx = io;
        img->name = name;
        const char* snap = snapName.empty() ? nullptr : snapName.c_str();
        int rc;
        if (byId) {
          rc = readOnly ? rbd_open_by_id_read_only(io->io, name.c_str(), &img->image, snap)
                        : rbd_open_by_id(io->io, name.c_str(), &img->image, snap);
        } else {
          rc = readOnly ? rbd_open_read_only(io->io, name.c_str(), &img->image, snap)
                        : rbd_open(io->io, name.c_str(), &img->image, snap);
        }
        if (rc < 0) {
          img->image = nullptr;
          return rc;
        }
        img->snap = snapName;
        if (hasSnapId) {
          rc = rbd_snap_set_by_id(img->image, snapId);
          if (rc < 0) return rc;  // img's destructor closes it
          img->snap = "#" + std::to_string(snapId);
        }
        r.img = std::move(img);
        return 0;
      },
      [](Napi::Env env, R& r) { return Wrap(env, std::move(r.img)); });
}

}  // namespace

void InitPool(Napi::Env env, Napi::Object exports) {
  exports.Set("openPool", Napi::Function::New(env, OpenPool));
  exports.Set("closePool", Napi::Function::New(env, ClosePool));
  exports.Set("getPoolId", Napi::Function::New(env, PoolId));
  exports.Set("createImage", Napi::Function::New(env, CreateImage));
  exports.Set("listImages", Napi::Function::New(env, ListImages));
  exports.Set("removeImage", Napi::Function::New(env, RemoveImage));
  exports.Set("renameImage", Napi::Function::New(env, RenameImage));
  exports.Set("openImage", Napi::Function::New(env, OpenImage));
}

}  // namespace rbdstream
