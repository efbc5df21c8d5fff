// Shared plumbing for the native layer: handle ownership, the errno→Error
// helper and the one async pattern (blocking work on the libuv pool, aio
// completions delivered back to JS in batches).
#pragma once

#include <napi.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace rbdstream {

// ---------------------------------------------------------------------------
// Handles. Each native object is owned by a shared_ptr; children hold their
// parent, so a connection is shut down only after its last pool and image are
// gone, whatever order JS closes or collects them in.

struct Cluster {
  rados_t rados = nullptr;
  Cluster();
  ~Cluster();
};

// Called after a connection is made: from then on, exit() with a connection still open ends the
// process before libceph-common's static destructors run under its threads (util/handles.cc).
void ArmExitGuard();

struct IoCtx {
  std::shared_ptr<Cluster> cluster;
  rados_ioctx_t io = nullptr;
  std::string pool;
  std::string ns;
  ~IoCtx();
};

// Header records sent ahead of a header op (image.cc SendMetadata): the op waits until those
// sent before it was called are on the wire, so the header's OSD applies them first.
struct UnsentRecords {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t last = 0;             // ticket of the latest send
  std::set<uint64_t> unsent;     // tickets not yet handed to librados
  uint64_t Add();                // on the JS thread, when a send is called: its ticket
  uint64_t Last();               // on the JS thread, when a header op is called
  void Sent(uint64_t ticket);
  void WaitSent(uint64_t upTo);  // until every send with a ticket <= upTo is on the wire
};

struct Image {
  std::shared_ptr<IoCtx> ioctx;
  rbd_image_t image = nullptr;
  std::string name;
  std::string snap;  // snapshot the image was opened at ("" = head)
  std::shared_ptr<UnsentRecords> unsent = std::make_shared<UnsentRecords>();
  ~Image();
};

// The image's header object name (rbd_header.<id>, format 2), in img->ioctx.
int HeaderOid(Image* img, std::string* oid);

// The header's snap context: seq (may be null) and the snapshot ids, newest first (snapshot.cc).
int HeaderSnapContext(Image* img, uint64_t* seq, std::vector<uint64_t>* ids);
// Decodes cls_rbd get_snapcontext's reply (u64 seq, u32 count, u64 ids); -EIO when malformed.
int DecodeSnapContext(const char* out, size_t len, uint64_t* seq, std::vector<uint64_t>* ids);

// Little-endian integers in Ceph's encodings.
inline uint32_t LoadLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | uint8_t(p[i]);
  return v;
}
inline uint64_t LoadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | uint8_t(p[i]);
  return v;
}

// An UpdateHeaderMetadata sent without waiting; Wait() returns its result (the destructor waits).
struct HeaderMetadataWrite {
  rados_write_op_t op = nullptr;
  rados_completion_t completion = nullptr;
  int Wait();
  ~HeaderMetadataWrite();
};

// Sets and removes image metadata keys in one atomic op on the header object, without librbd's
// header-update notify (native/image.cc says why). The caller holds the exclusive lock. With
// `started`, the op is only sent: RADOS applies one client's ops on one object in the order sent,
// so a later op on the header lands after it; `onComplete(completion, arg)`, if given, runs when
// its reply arrives (on a librados thread). Keys in `absent` must be unset (or empty) for the op to
// apply; otherwise nothing is written and it fails with ECANCELED (an OSD omap_cmp guard).
int UpdateHeaderMetadata(Image* img, const std::vector<std::string>& keys, const std::vector<std::string>& vals,
                         const std::vector<std::string>& removes, HeaderMetadataWrite* started = nullptr,
                         rados_callback_t onComplete = nullptr, void* arg = nullptr,
                         const std::vector<std::string>& absent = {});

// What an operation was doing, for error messages.
struct OpContext {
  std::string op;
  std::string pool;
  std::string ns;
  std::string image;
  std::string snap;
  std::string group;   // consistency group (native/group.cc); the target becomes pool/group@snap
  std::string detail;  // appended to the target in the message, e.g. " (image 'rbd/x')"
  static OpContext For(const std::string& op, const IoCtx* io);
  static OpContext For(const std::string& op, const Image* img);
};

// Build an RbdError (through the factory lib/binding registers) with .code ('ENOENT', …),
// .errno (negative, as in Node's system errors), .operation/.pool/.image/.snapshot and a
// message naming them.
Napi::Error ErrnoError(Napi::Env env, int rc, const OpContext& ctx);
// The RbdError with code ERR_CLOSED for a handle used after close: "<what> is closed".
Napi::Error ClosedError(Napi::Env env, const std::string& what);
// This environment's error factory (empty until lib/binding registers it); kept with the
// aio state in util/aio.cc, the environment's one instance-data slot.
Napi::FunctionReference& ErrorFactory(Napi::Env env);

// ---------------------------------------------------------------------------
// Handles cross into JS as type-tagged externals holding a shared_ptr.

template <typename T>
struct Box {
  std::shared_ptr<T> ptr;
};

const napi_type_tag* TagFor(const Cluster*);
const napi_type_tag* TagFor(const IoCtx*);
const napi_type_tag* TagFor(const Image*);

// Releases a handle off the JS thread (rbd_close / rados_shutdown block).
// Pending releases are waited for at environment teardown.
void ReleaseInBackground(std::shared_ptr<void> handle);

template <typename T>
Napi::Value Wrap(Napi::Env env, std::shared_ptr<T> ptr) {
  auto* box = new Box<T>{std::move(ptr)};
  auto ext = Napi::External<Box<T>>::New(env, box, [](Napi::Env, Box<T>* b) {
    if (b->ptr) ReleaseInBackground(std::static_pointer_cast<void>(std::move(b->ptr)));
    delete b;
  });
  napi_type_tag_object(env, ext, TagFor(static_cast<T*>(nullptr)));
  return ext;
}

template <typename T>
Box<T>* UnwrapBox(const Napi::Value& v, const char* what) {
  Napi::Env env = v.Env();
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, TagFor(static_cast<T*>(nullptr)), &ok);
  if (!ok) throw Napi::TypeError::New(env, std::string("expected a native ") + what + " handle");
  return v.As<Napi::External<Box<T>>>().Data();
}

template <typename T>
std::shared_ptr<T> Unwrap(const Napi::Value& v, const char* what) {
  Box<T>* box = UnwrapBox<T>(v, what);
  if (!box->ptr) throw ClosedError(v.Env(), what);
  return box->ptr;
}

// ---------------------------------------------------------------------------
// The async pattern for blocking calls: `work` runs on the libuv thread pool
// and returns 0 or -errno; `done` builds the resolved value on the JS thread.

template <typename R>
class BlockingOp : public Napi::AsyncWorker {
 public:
  using Work = std::function<int(R&)>;
  using Done = std::function<Napi::Value(Napi::Env, R&)>;

  BlockingOp(Napi::Env env, OpContext ctx, Work work, Done done)
      : Napi::AsyncWorker(env, "rbd-stream"),
        deferred_(Napi::Promise::Deferred::New(env)),
        ctx_(std::move(ctx)),
        work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    rc_ = work_(result_);
    // Drop captured handles here, off the JS thread: a last reference
    // going away runs rbd_close/rados_shutdown, which block.
    work_ = nullptr;
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (rc_ < 0) {
      deferred_.Reject(ErrnoError(env, rc_, ctx_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env, result_) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  OpContext ctx_;
  Work work_;
  Done done_;
  R result_{};
  int rc_ = 0;
};

template <typename R>
Napi::Promise RunBlocking(Napi::Env env, OpContext ctx, typename BlockingOp<R>::Work work,
                          typename BlockingOp<R>::Done done = nullptr) {
  auto* op = new BlockingOp<R>(env, std::move(ctx), std::move(work), std::move(done));
  Napi::Promise p = op->Promise();
  op->Queue();
  return p;
}

struct Empty {};

// ---------------------------------------------------------------------------
// aio: librbd completes on its own threads; completions are queued and one
// thread-safe function per environment drains them on the JS thread, so many
// completions cost one loop wake-up.

struct AioOp {
  virtual ~AioOp() = default;
  // Called on the JS thread with the completion's return value.
  virtual void Complete(Napi::Env env, ssize_t rc) = 0;
  rbd_completion_t completion = nullptr;
  napi_threadsafe_function tsfn = nullptr;  // set by AioBegin
  ssize_t rc = 0;                           // set on librbd's thread
};

// Creates a completion bound to `op`; on completion, op->Complete runs on the
// JS thread and `op` is deleted. Returns the completion to pass to rbd_aio_*.
rbd_completion_t AioBegin(Napi::Env env, AioOp* op);
// Undo AioBegin when the rbd_aio_* call itself failed synchronously.
void AioAbort(Napi::Env env, AioOp* op);

// ---------------------------------------------------------------------------
// Argument helpers (TS validates first; these only guard the native boundary).
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
// undefined/null → empty optional semantics: returns false when absent.
bool ArgOptString(const Napi::CallbackInfo& info, size_t i, std::string* out);
// Metadata records as two JS arrays at i, i+1: [key, value, ...] to set and [key, ...] to remove.
// Returns false (and leaves the vectors empty) unless both are arrays.
bool ArgRecords(const Napi::CallbackInfo& info, size_t i, std::vector<std::string>* keys, std::vector<std::string>* vals,
                std::vector<std::string>* removes);
Napi::Value U64(Napi::Env env, uint64_t v);

// A JS array of toJs(element) for each element of v.
template <typename T, typename F>
Napi::Array ToArray(Napi::Env env, const std::vector<T>& v, F toJs) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(i, toJs(v[i]));
  return a;
}

// librbd's string getters answer -ERANGE and set *len to the size needed:
// call fill(buf, &len) until the buffer is big enough.
template <typename F>
int GetString(size_t len, std::string* out, F fill) {
  std::vector<char> buf;
  int rc = -ERANGE;
  for (int tries = 0; tries < 8 && rc == -ERANGE; tries++) {
    buf.assign(len > 0 ? len : 1, 0);
    rc = fill(buf.data(), &len);
  }
  if (rc < 0) return rc;
  out->assign(buf.data(), strnlen(buf.data(), buf.size()));
  return 0;
}

// diff_iterate2 over [off, off+len): appends the extents to *out, sorted by
// offset (callbacks may come from librados threads, in any order).
struct DiffExtent {
  uint64_t off, len;
  bool exists;
};
// The snapshot a diff starts from: none (everything allocated), a name (diff_iterate2, user
// snapshots only) or an id (diff_iterate3: also mirror, trash and group snapshots).
struct DiffFrom {
  bool has = false;
  bool byId = false;
  std::string name;
  uint64_t id = 0;
};
int DiffExtents(rbd_image_t image, const DiffFrom& from, uint64_t off, uint64_t len, bool includeParent,
                bool wholeObject, std::vector<DiffExtent>* out);

// rbd_diff_iterate3 (Reef 18.2.5+, Squid 19.2.3+), looked up once at run time so one binary
// built against Pacific's headers uses it where the running librbd has it; null where it lacks it.
using DiffIterate3Fn = int (*)(rbd_image_t image, uint64_t from_snap_id, uint64_t ofs, uint64_t len, uint32_t flags,
                               int (*cb)(uint64_t, size_t, int, void*), void* arg);
DiffIterate3Fn DiffIterate3();

void InitErrors(Napi::Env env, Napi::Object exports);
void InitAio(Napi::Env env, Napi::Object exports);
void InitConnection(Napi::Env env, Napi::Object exports);
void InitPool(Napi::Env env, Napi::Object exports);
void InitImage(Napi::Env env, Napi::Object exports);
void InitSnapshot(Napi::Env env, Napi::Object exports);
void InitDiff(Napi::Env env, Napi::Object exports);
void InitObjectMap(Napi::Env env, Napi::Object exports);
void InitMirrorPool(Napi::Env env, Napi::Object exports);
void InitMirrorImage(Napi::Env env, Napi::Object exports);
void InitCopy(Napi::Env env, Napi::Object exports);
void InitGroup(Napi::Env env, Napi::Object exports);

}  // namespace rbdstream
