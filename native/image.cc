// Images: stat, resize, aio data path, flush, features, metadata, locks and watchers, close.
// Over 450 lines: one Image handle's calls, each a short wrapper over librbd; split they would share nothing.
#include <cstring>

#include "common.h"

namespace rbdstream {

namespace {

// librbd calls progress callbacks unconditionally: never pass NULL.
int NoProgress(uint64_t, uint64_t, void*) { return 0; }

// One aio op: keeps the JS handle and any buffer referenced until librbd is
// done with them, then settles its promise on the JS thread.
struct ImageAio : AioOp {
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::Value> handleRef;
  Napi::Reference<Napi::Value> bufferRef;
  // The error context is built only on failure (strings per op cost the data path);
  // handleRef keeps the image alive meanwhile.
  const Image* img;
  const char* opName;
  size_t expected = 0;
  bool isRead = false;
  bool resolveCount = false;  // read: resolve with the byte count, not the buffer

  ImageAio(Napi::Env env, Napi::Value handle, const Image* image, const char* op)
      : deferred(Napi::Promise::Deferred::New(env)), handleRef(Napi::Persistent(handle)), img(image), opName(op) {}

  Napi::Value Failure(Napi::Env env, int rc) const { return ErrnoError(env, rc, OpContext::For(opName, img)).Value(); }

  void Complete(Napi::Env env, ssize_t rc) override {
    if (rc < 0) {
      deferred.Reject(Failure(env, static_cast<int>(rc)));
      return;
    }
    if (isRead) {
      // A read that ends past the image end comes back short.
      if (resolveCount) {
        deferred.Resolve(Napi::Number::New(env, static_cast<double>(rc)));
        return;
      }
      auto buf = bufferRef.Value().As<Napi::Buffer<uint8_t>>();
      if (static_cast<size_t>(rc) < expected) {
        deferred.Resolve(Napi::Buffer<uint8_t>::Copy(env, buf.Data(), static_cast<size_t>(rc)));
        return;
      }
      deferred.Resolve(buf);
      return;
    }
    // librbd reports 0 for a successful write; callers want the byte count.
    deferred.Resolve(Napi::Number::New(env, static_cast<double>(rc > 0 ? rc : expected)));
  }
};

// Issue an aio call; synchronous failures reject like asynchronous ones.
template <typename F>
Napi::Value Submit(Napi::Env env, ImageAio* op, F call) {
  Napi::Promise p = op->deferred.Promise();
  rbd_completion_t c = AioBegin(env, op);
  int rc = call(c);
  if (rc < 0) {
    op->deferred.Reject(op->Failure(env, rc));
    AioAbort(env, op);
  }
  return p;
}

// (handle, offset, target Buffer, resolveCount): reads target.length bytes into
// target. JS allocates the target (small reads come from a shared slab, which
// is much cheaper than a Buffer per read made here).
Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto img = Unwrap<Image>(info[0], "image");
  uint64_t off = ArgU64(info, 1, "offset");
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "target must be a Buffer");
  auto buf = info[2].As<Napi::Buffer<uint8_t>>();
  bool resolveCount = info[3].ToBoolean();
  size_t len = buf.Length();
  if (len == 0) {
    // librbd asserts on a zero-length read (Striper::assemble_result gets a null buffer).
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(resolveCount ? Napi::Number::New(env, 0).As<Napi::Value>() : buf.As<Napi::Value>());
    return d.Promise();
  }
  auto* op = new ImageAio(env, info[0], img.get(), "read");
  op->bufferRef = Napi::Persistent(info[2]);
  op->isRead = true;
  op->resolveCount = resolveCount;
  op->expected = len;
  uint8_t* data = buf.Data();
  rbd_image_t image = img->image;
  return Submit(env, op, [&](rbd_completion_t c) { return rbd_aio_read2(image, off, len, (char*)data, c, 0); });
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto img = Unwrap<Image>(info[0], "image");
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "data must be a Buffer");
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  uint64_t off = ArgU64(info, 2, "offset");
  auto* op = new ImageAio(env, info[0], img.get(), "write");
  op->bufferRef = Napi::Persistent(info[1]);
  op->expected = buf.Length();
  rbd_image_t image = img->image;
  // librbd clips a write crossing the end and reports 0: report the bytes it kept.
  // (rbd_get_size reads the cached size, no I/O.)
  uint64_t size = 0;
  if (rbd_get_size(image, &size) == 0 && off < size && size - off < op->expected) op->expected = size - off;
  return Submit(env, op, [&](rbd_completion_t c) {
    return rbd_aio_write2(image, off, buf.Length(), (const char*)buf.Data(), c, 0);
  });
}

// (handle, offset, length): discard or write_zeroes over a range.
template <typename F>
Napi::Value RangeOp(const Napi::CallbackInfo& info, const char* opName, F call) {
  Napi::Env env = info.Env();
  auto img = Unwrap<Image>(info[0], "image");
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  auto* op = new ImageAio(env, info[0], img.get(), opName);
  rbd_image_t image = img->image;
  return Submit(env, op, [&](rbd_completion_t c) { return call(image, off, len, c); });
}

Napi::Value Discard(const Napi::CallbackInfo& info) {
  return RangeOp(info, "discard", [](rbd_image_t image, uint64_t off, uint64_t len, rbd_completion_t c) {
    return rbd_aio_discard(image, off, len, c);
  });
}

Napi::Value WriteZeroes(const Napi::CallbackInfo& info) {
  return RangeOp(info, "write zeroes", [](rbd_image_t image, uint64_t off, uint64_t len, rbd_completion_t c) {
    return rbd_aio_write_zeroes(image, off, len, c, 0, 0);
  });
}

Napi::Value Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto img = Unwrap<Image>(info[0], "image");
  auto* op = new ImageAio(env, info[0], img.get(), "flush");
  rbd_image_t image = img->image;
  return Submit(env, op, [&](rbd_completion_t c) { return rbd_aio_flush(image, c); });
}

struct StatResult {
  rbd_image_info_t info{};
  std::string id;
  std::string prefix;
  uint64_t features = 0, flags = 0, stripeUnit = 0, stripeCount = 0;
  int64_t dataPoolId = -1;
  uint64_t snapId = 0;
};

Napi::Value Stat(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  return RunBlocking<StatResult>(
      info.Env(), OpContext::For("stat image", img.get()),
      [img](StatResult& r) {
        int rc = rbd_stat(img->image, &r.info, sizeof(r.info));
        if (rc < 0) return rc;
        char buf[128];
        rc = rbd_get_id(img->image, buf, sizeof(buf));
        if (rc < 0) return rc;
        r.id = buf;
        rc = rbd_get_block_name_prefix(img->image, buf, sizeof(buf));
        if (rc < 0) return rc;
        r.prefix = buf;
        if ((rc = rbd_get_features(img->image, &r.features)) < 0) return rc;
        if ((rc = rbd_get_flags(img->image, &r.flags)) < 0) return rc;
        if ((rc = rbd_get_stripe_unit(img->image, &r.stripeUnit)) < 0) return rc;
        if ((rc = rbd_get_stripe_count(img->image, &r.stripeCount)) < 0) return rc;
        r.dataPoolId = rbd_get_data_pool_id(img->image);
        return 0;
      },
      [](Napi::Env env, StatResult& r) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("size", U64(env, r.info.size));
        o.Set("objectSize", U64(env, r.info.obj_size));
        o.Set("objectCount", U64(env, r.info.num_objs));
        o.Set("order", r.info.order);
        o.Set("id", r.id);
        o.Set("blockNamePrefix", r.prefix);
        o.Set("features", U64(env, r.features));
        o.Set("flags", U64(env, r.flags));
        o.Set("stripeUnit", U64(env, r.stripeUnit));
        o.Set("stripeCount", U64(env, r.stripeCount));
        o.Set("dataPoolId", Napi::Number::New(env, static_cast<double>(r.dataPoolId)));
        return o;
      });
}

Napi::Value Resize(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  uint64_t size = ArgU64(info, 1, "size");
  bool allowShrink = info[2].ToBoolean();
  return RunBlocking<Empty>(info.Env(), OpContext::For("resize image", img.get()), [img, size, allowShrink](Empty&) {
    return rbd_resize2(img->image, size, allowShrink, NoProgress, nullptr);
  });
}

Napi::Value UpdateFeatures(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  uint64_t features = ArgU64(info, 1, "features");
  bool enabled = info[2].ToBoolean();
  return RunBlocking<Empty>(info.Env(), OpContext::For("update image features", img.get()),
                            [img, features, enabled](Empty&) {
                              return rbd_update_features(img->image, features, enabled ? 1 : 0);
                            });
}

Napi::Value MetadataGet(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string key = ArgString(info, 1, "key");
  struct R {
    std::string value;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get image metadata '" + key + "'", img.get()),
      [img, key](R& r) {
        return GetString(256, &r.value,
                         [&](char* buf, size_t* len) { return rbd_metadata_get(img->image, key.c_str(), buf, len); });
      },
      [](Napi::Env env, R& r) { return Napi::String::New(env, r.value); });
}

Napi::Value MetadataSet(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string key = ArgString(info, 1, "key");
  std::string value = ArgString(info, 2, "value");
  return RunBlocking<Empty>(info.Env(), OpContext::For("set image metadata '" + key + "'", img.get()),
                            [img, key, value](Empty&) { return rbd_metadata_set(img->image, key.c_str(), value.c_str()); });
}

Napi::Value MetadataRemove(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string key = ArgString(info, 1, "key");
  return RunBlocking<Empty>(info.Env(), OpContext::For("remove image metadata '" + key + "'", img.get()),
                            [img, key](Empty&) { return rbd_metadata_remove(img->image, key.c_str()); });
}

}  // namespace

int HeaderOid(Image* img, std::string* oid) {
  char id[64];
  int rc = rbd_get_id(img->image, id, sizeof(id));
  if (rc < 0) return rc;
  *oid = std::string("rbd_header.") + id;
  return 0;
}

int UpdateHeaderMetadata(Image* img, const std::vector<std::string>& keys, const std::vector<std::string>& vals,
                         const std::vector<std::string>& removes, HeaderMetadataWrite* started,
                         rados_callback_t onComplete, void* arg, const std::vector<std::string>& absent) {
  std::string oid;
  int rc = HeaderOid(img, &oid);
  if (rc < 0) return rc;
  std::vector<std::string> k, r;
  for (const auto& x : keys) k.push_back("metadata_" + x);
  for (const auto& x : removes) r.push_back("metadata_" + x);
  std::vector<const char*> kp, vp, rp;
  std::vector<size_t> vl;
  for (size_t i = 0; i < k.size(); i++) {
    kp.push_back(k[i].c_str());
    vp.push_back(vals[i].data());
    vl.push_back(vals[i].size());
  }
  for (const auto& x : r) rp.push_back(x.c_str());
  rados_write_op_t op = rados_create_write_op();
  rados_write_op_assert_exists(op);
  // An absent omap key compares equal to an empty value; no record is ever empty.
  for (const auto& x : absent) rados_write_op_omap_cmp(op, ("metadata_" + x).c_str(), LIBRADOS_CMPXATTR_OP_EQ, "", 0, nullptr);
  if (!kp.empty()) rados_write_op_omap_set(op, kp.data(), vp.data(), vl.data(), kp.size());
  if (!rp.empty()) rados_write_op_omap_rm_keys(op, rp.data(), rp.size());
  if (started == nullptr) {
    rc = rados_write_op_operate(op, img->ioctx->io, oid.c_str(), nullptr, 0);
    rados_release_write_op(op);
    return rc;
  }
  rados_completion_t c = nullptr;
  rc = rados_aio_create_completion2(arg, onComplete, &c);
  if (rc >= 0) rc = rados_aio_write_op_operate(op, img->ioctx->io, c, oid.c_str(), nullptr, 0);
  if (rc < 0) {
    if (c != nullptr) rados_aio_release(c);
    rados_release_write_op(op);
    return rc;
  }
  started->op = op;
  started->completion = c;
  return 0;
}

int HeaderMetadataWrite::Wait() {
  if (completion == nullptr) return 0;
  rados_aio_wait_for_complete(completion);
  int rc = rados_aio_get_return_value(completion);
  rados_aio_release(completion);
  rados_release_write_op(op);
  completion = nullptr;
  op = nullptr;
  return rc;
}

HeaderMetadataWrite::~HeaderMetadataWrite() { Wait(); }

namespace {

// Several metadata keys set and removed in one atomic OSD op on the image header, without
// librbd's header-update notify: on a far target each rbd_metadata_set costs a notify (four
// delayed messages) and then a refresh of every open handle (several round trips more), and
// replicate() writes four records per copy. The keys are the header's "metadata_<key>" omap
// entries, the layout rbd_metadata_get/list read (cls_rbd); no other client caches them.
// The caller holds the image's exclusive lock. (image, [key, value, ...], [key, ...][, [absent key, ...]]):
// with absent keys, ECANCELED when one of them is set (nothing written).
Napi::Value UpdateMetadata(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  Napi::Env env = info.Env();
  std::vector<std::string> keys, vals, removes, absent;
  if (!ArgRecords(info, 1, &keys, &vals, &removes)) throw Napi::TypeError::New(env, "updateMetadata(image, [key, value, ...], [key, ...][, [key, ...]])");
  if (info.Length() > 3 && info[3].IsArray()) {
    auto a = info[3].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) absent.push_back(a.Get(k).ToString().Utf8Value());
  }
  return RunBlocking<Empty>(env, OpContext::For("update image metadata", img.get()), [img, keys, vals, removes, absent](Empty&) {
    return UpdateHeaderMetadata(img.get(), keys, vals, removes, nullptr, nullptr, nullptr, absent);
  });
}

Napi::Value MetadataList(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    std::vector<std::pair<std::string, std::string>> kv;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list image metadata", img.get()),
      [img](R& r) {
        std::string start;
        const uint64_t page = 256;
        for (;;) {
          size_t klen = 16384, vlen = 65536;
          std::vector<char> keys, vals;
          int rc;
          do {
            keys.resize(klen);
            vals.resize(vlen);
            rc = rbd_metadata_list(img->image, start.c_str(), page, keys.data(), &klen, vals.data(), &vlen);
          } while (rc == -ERANGE);
          if (rc < 0) return rc;
          size_t n = 0;
          const char* k = keys.data();
          const char* v = vals.data();
          while (k < keys.data() + klen && *k) {
            r.kv.emplace_back(k, v);
            start = k;
            k += strlen(k) + 1;
            v += strlen(v) + 1;
            n++;
          }
          if (n < page) return 0;
        }
      },
      [](Napi::Env env, R& r) {
        Napi::Object o = Napi::Object::New(env);
        for (auto& kv : r.kv) o.Set(kv.first, kv.second);
        return o;
      });
}

// (image): { mode, owners } of the image's exclusive lock, or null when nobody holds it. The mode
// is librbd's number: later releases added values (EXCLUSIVE_TRANSIENT, 2) that the TS side names.
Napi::Value LockOwners(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct R {
    int mode = -1;
    std::vector<std::string> owners;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get lock owners", img.get()),
      [img](R& r) {
        for (size_t max = 8;; max *= 2) {
          std::vector<char*> owners(max, nullptr);
          size_t n = max;
          rbd_lock_mode_t mode = RBD_LOCK_MODE_EXCLUSIVE;
          int rc = rbd_lock_get_owners(img->image, &mode, owners.data(), &n);
          if (rc == -ERANGE && n > max) continue;
          if (rc == -ENOENT) return 0;  // no owner
          if (rc < 0) return rc;
          r.mode = int(mode);
          for (size_t i = 0; i < n; i++) r.owners.emplace_back(owners[i] ? owners[i] : "");
          rbd_lock_get_owners_cleanup(owners.data(), n);
          return 0;
        }
      },
      [](Napi::Env env, R& r) -> Napi::Value {
        if (r.mode < 0) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("mode", Napi::Number::New(env, r.mode));
        auto a = Napi::Array::New(env, r.owners.size());
        for (uint32_t i = 0; i < r.owners.size(); i++) a.Set(i, r.owners[i]);
        o.Set("owners", a);
        return o;
      });
}

// (image): [{ address, id, cookie }] of the image header's watchers (every client with the image
// open, as `rbd status` lists them). A lock owner that is not among them is dead: its lock record
// outlives it until somebody breaks it.
Napi::Value Watchers(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  struct W {
    std::string address;
    int64_t id;
    uint64_t cookie;
  };
  return RunBlocking<std::vector<W>>(
      info.Env(), OpContext::For("list watchers", img.get()),
      [img](std::vector<W>& r) {
        for (size_t max = 8;; max *= 2) {
          std::vector<rbd_image_watcher_t> ws(max);
          size_t n = max;
          int rc = rbd_watchers_list(img->image, ws.data(), &n);
          if (rc == -ERANGE && n > max) continue;
          if (rc < 0) return rc;
          for (size_t i = 0; i < n; i++) r.push_back({ws[i].addr ? ws[i].addr : "", ws[i].id, ws[i].cookie});
          rbd_watchers_list_cleanup(ws.data(), n);
          return 0;
        }
      },
      [](Napi::Env env, std::vector<W>& r) -> Napi::Value {
        auto a = Napi::Array::New(env, r.size());
        for (uint32_t i = 0; i < r.size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("address", r[i].address);
          o.Set("id", Napi::Number::New(env, double(r[i].id)));
          // A cookie is an opaque 64-bit handle: a string keeps every bit.
          o.Set("cookie", std::to_string(r[i].cookie));
          a.Set(i, o);
        }
        return a;
      });
}

// (image, mode, owner): breaks that owner's lock; librbd blocklists the owner first (by default),
// so a client that is only slow, not dead, cannot write on.
Napi::Value BreakLock(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  int mode = info[1].ToNumber().Int32Value();
  std::string owner = ArgString(info, 2, "owner");
  return RunBlocking<Empty>(info.Env(), OpContext::For("break lock", img.get()), [img, mode, owner](Empty&) {
    return rbd_lock_break(img->image, rbd_lock_mode_t(mode), owner.c_str());
  });
}

// (image, [key, value, ...], [key, ...]): the same atomic header update as updateMetadata, sent
// ahead of this handle's next header op: createSnapshot and closeImage wait until it is on the
// wire, and RADOS applies one client's ops on one object in the order sent. So a lock holder's
// record costs no round trip of its own, and its own reply settles this promise: on a hung OSD its
// failure is known after one op timeout, while librbd's snapshot create or close waits out several.
Napi::Value SendMetadata(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  Napi::Env env = info.Env();
  std::vector<std::string> keys, vals, removes;
  if (!ArgRecords(info, 1, &keys, &vals, &removes)) throw Napi::TypeError::New(env, "sendMetadata(image, [key, value, ...], [key, ...])");
  std::shared_ptr<UnsentRecords> unsent = img->unsent;
  uint64_t ticket = unsent->Add();
  OpContext ctx = OpContext::For("record image metadata", img.get());
  return RunBlocking<Empty>(env, std::move(ctx),
                            [img = std::move(img), unsent, ticket, keys, vals, removes](Empty&) mutable {
                              HeaderMetadataWrite sent;
                              int rc = UpdateHeaderMetadata(img.get(), keys, vals, removes, &sent);
                              std::shared_ptr<IoCtx> pool = img->ioctx;  // the reply needs the pool only
                              // Let go of the image before a waiting close looks for other users of it.
                              img.reset();
                              unsent->Sent(ticket);
                              if (rc < 0) return rc;
                              return sent.Wait();
                            });
}

// (image): librbd's close, after any metadata sent ahead of it is on the wire (so its lock release
// comes after that on the header). Another call still using the image closes it when it ends.
Napi::Value CloseImage(const Napi::CallbackInfo& info) {
  Box<Image>* box = UnwrapBox<Image>(info[0], "image");
  std::shared_ptr<Image> img = std::move(box->ptr);
  if (!img) return RunBlocking<Empty>(info.Env(), OpContext{"close image"}, [](Empty&) { return 0; });
  uint64_t sentBefore = img->unsent->Last();
  OpContext ctx = OpContext::For("close image", img.get());
  // Moved in, not copied: a copy left here on the JS thread could be the last one, and its
  // release would run rbd_close on the JS thread (seconds on a hung OSD).
  return RunBlocking<Empty>(info.Env(), std::move(ctx), [img = std::move(img), sentBefore](Empty&) mutable {
    img->unsent->WaitSent(sentBefore);
    int rc = 0;
    if (img.use_count() == 1 && img->image) {
      rc = rbd_close(img->image);
      img->image = nullptr;
    }
    img.reset();
    return rc;
  });
}

}  // namespace

void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("write", Napi::Function::New(env, Write));
  exports.Set("discard", Napi::Function::New(env, Discard));
  exports.Set("writeZeroes", Napi::Function::New(env, WriteZeroes));
  exports.Set("flush", Napi::Function::New(env, Flush));
  exports.Set("statImage", Napi::Function::New(env, Stat));
  exports.Set("resizeImage", Napi::Function::New(env, Resize));
  exports.Set("updateFeatures", Napi::Function::New(env, UpdateFeatures));
  exports.Set("getMetadata", Napi::Function::New(env, MetadataGet));
  exports.Set("setMetadata", Napi::Function::New(env, MetadataSet));
  exports.Set("removeMetadata", Napi::Function::New(env, MetadataRemove));
  exports.Set("listMetadata", Napi::Function::New(env, MetadataList));
  exports.Set("updateMetadata", Napi::Function::New(env, UpdateMetadata));
  exports.Set("sendMetadata", Napi::Function::New(env, SendMetadata));
  exports.Set("closeImage", Napi::Function::New(env, CloseImage));
  exports.Set("getLockOwners", Napi::Function::New(env, LockOwners));
  exports.Set("breakLock", Napi::Function::New(env, BreakLock));
  exports.Set("listWatchers", Napi::Function::New(env, Watchers));
}

}  // namespace rbdstream
