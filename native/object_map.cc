// Whether an image's head changed since a snapshot, from the fast-diff object maps of both, read in
// parallel with the header's snapshot ids and flags: one round trip. diff_iterate answers the same
// question from the same maps, but loads them one after another (several round trips on a far
// target). Only the unambiguous cases are answered; anything else (a snapshot newer than the base,
// a map flagged invalid, no fast-diff, a pending object) is left to diff_iterate.
#include <cinttypes>
#include <cstdio>

#include "common.h"

namespace rbdstream {

namespace {

// Object states (librbd/ObjectMap: OBJECT_NONEXISTENT, _EXISTS, _PENDING, _EXISTS_CLEAN).
constexpr uint8_t kNonexistent = 0;
constexpr uint8_t kExists = 1;
constexpr uint8_t kPending = 2;
constexpr uint64_t kNoSnap = uint64_t(-2);  // CEPH_NOSNAP: the head, for cls_rbd get_flags
constexpr uint64_t kInvalid = RBD_FLAG_OBJECT_MAP_INVALID | RBD_FLAG_FAST_DIFF_INVALID;

enum Answer : int { kUnknown = 0, kUnchanged = 1, kChanged = 2 };

// One class-method call inside a read op; the output is allocated by librados.
struct Exec {
  char* out = nullptr;
  size_t len = 0;
  int prval = 0;
  ~Exec() { if (out != nullptr) rados_buffer_free(out); }
};

// A read op sent without waiting; Wait() returns its result.
struct SentRead {
  rados_read_op_t op = rados_create_read_op();
  rados_completion_t c = nullptr;
  int rc = -EINVAL;
  bool sent = false;
  void Send(rados_ioctx_t io, const std::string& oid) {
    rc = rados_aio_create_completion2(nullptr, nullptr, &c);
    if (rc >= 0) rc = rados_aio_read_op_operate(op, io, c, oid.c_str(), 0);
    sent = rc >= 0;
  }
  int Wait() {
    if (!sent) return rc;
    rados_aio_wait_for_complete(c);
    return rados_aio_get_return_value(c);
  }
  ~SentRead() {
    if (sent) rados_aio_wait_for_complete(c);  // the op writes into its Exec until then
    if (c != nullptr) rados_aio_release(c);
    rados_release_read_op(op);
  }
};

// An encoded BitVector<2> (common/bit_vector.hpp, as object_map_load returns it): a u32 length (14)
// of the header, the header's ENCODE_START (version 1, compat 1, u32 length 8) and its u64 element
// count; then the elements, four per byte, the first in the top two bits; then crcs (the class
// method checked them).
bool DecodeMap(const Exec& e, uint64_t* count, const uint8_t** data) {
  if (e.out == nullptr || e.len < 18 || LoadLe32(e.out) != 14 || e.out[4] != 1 || LoadLe32(e.out + 6) != 8) return false;
  *count = LoadLe64(e.out + 10);
  if ((*count + 3) / 4 > e.len - 18) return false;
  *data = reinterpret_cast<const uint8_t*>(e.out + 18);
  return true;
}

uint8_t State(const uint8_t* data, uint64_t i) { return (data[i / 4] >> ((3 - i % 4) * 2)) & 3; }

std::string MapOid(const char* id, uint64_t snapId) {
  std::string oid = std::string("rbd_object_map.") + id;
  if (snapId == kNoSnap) return oid;
  char suffix[24];
  std::snprintf(suffix, sizeof(suffix), ".%016" PRIx64, snapId);
  return oid + suffix;
}

// Errors that mean "these maps cannot answer" rather than "the target failed".
bool Inconclusive(int rc) { return rc == -ENOENT || rc == -EOPNOTSUPP || rc == -EINVAL || rc == -EIO; }

int Compare(Image* img, const std::string& snapName, int* answer) {
  *answer = kUnknown;
  uint64_t features = 0;
  int rc = rbd_get_features(img->image, &features);
  if (rc < 0) return rc;
  if (!(features & RBD_FEATURE_FAST_DIFF)) return 0;
  uint64_t snapId = 0;
  if (rbd_snap_get_id(img->image, snapName.c_str(), &snapId) < 0) return 0;  // diff_iterate explains
  char id[64];
  rc = rbd_get_id(img->image, id, sizeof(id));
  if (rc < 0) return rc;
  rados_ioctx_t io = img->ioctx->io;

  char snapArg[8], headArg[8];
  for (int i = 0; i < 8; i++) {
    snapArg[i] = char(snapId >> (8 * i));
    headArg[i] = char(kNoSnap >> (8 * i));
  }
  Exec snapContext, snapFlags, headFlags, baseMap, headMap;
  SentRead header, base, head;
  rados_read_op_exec(header.op, "rbd", "get_snapcontext", nullptr, 0, &snapContext.out, &snapContext.len, &snapContext.prval);
  rados_read_op_exec(header.op, "rbd", "get_flags", snapArg, 8, &snapFlags.out, &snapFlags.len, &snapFlags.prval);
  rados_read_op_exec(header.op, "rbd", "get_flags", headArg, 8, &headFlags.out, &headFlags.len, &headFlags.prval);
  rados_read_op_exec(base.op, "rbd", "object_map_load", nullptr, 0, &baseMap.out, &baseMap.len, &baseMap.prval);
  rados_read_op_exec(head.op, "rbd", "object_map_load", nullptr, 0, &headMap.out, &headMap.len, &headMap.prval);
  std::string headerOid;
  rc = HeaderOid(img, &headerOid);
  if (rc < 0) return rc;
  header.Send(io, headerOid);
  base.Send(io, MapOid(id, snapId));
  head.Send(io, MapOid(id, kNoSnap));
  for (SentRead* r : {&header, &base, &head}) {
    int w = r->Wait();
    if (w < 0 && rc >= 0) rc = w;
  }
  for (const Exec* e : {&snapContext, &snapFlags, &headFlags, &baseMap, &headMap}) {
    if (e->prval < 0 && rc >= 0) rc = e->prval;
  }
  if (rc < 0) return Inconclusive(rc) ? 0 : rc;

  // The base must be the newest snapshot (any namespace): with one between, the maps in between
  // count too. And neither map may be flagged invalid.
  std::vector<uint64_t> ids;
  if (DecodeSnapContext(snapContext.out, snapContext.len, nullptr, &ids) < 0) return 0;
  for (uint64_t x : ids) {
    if (x > snapId) return 0;
  }
  if (snapFlags.len < 8 || headFlags.len < 8) return 0;
  if ((LoadLe64(snapFlags.out) | LoadLe64(headFlags.out)) & kInvalid) return 0;

  uint64_t baseCount = 0, headCount = 0;
  const uint8_t *baseData = nullptr, *headData = nullptr;
  if (!DecodeMap(baseMap, &baseCount, &baseData) || !DecodeMap(headMap, &headCount, &headData)) return 0;
  if (baseCount != headCount) return 0;
  // Written since the base: EXISTS (a snapshot turns the head's EXISTS into EXISTS_CLEAN), or
  // removed (there at the base, gone now).
  bool changed = false;
  for (uint64_t i = 0; i < headCount; i++) {
    uint8_t h = State(headData, i);
    if (h == kPending) return 0;
    if (h == kExists || (h == kNonexistent && State(baseData, i) != kNonexistent)) changed = true;
  }
  *answer = changed ? kChanged : kUnchanged;
  return 0;
}

// (image, snapshot name) → 1 unchanged since that snapshot, 2 changed, 0 unknown (ask diff_iterate).
Napi::Value HeadChangedSince(const Napi::CallbackInfo& info) {
  auto img = Unwrap<Image>(info[0], "image");
  std::string snap = ArgString(info, 1, "snapshot");
  OpContext ctx = OpContext::For("compare object maps with snapshot '" + snap + "'", img.get());
  return RunBlocking<int>(
      info.Env(), ctx, [img, snap](int& answer) { return Compare(img.get(), snap, &answer); },
      [](Napi::Env env, int& answer) { return Napi::Number::New(env, answer); });
}

}  // namespace

void InitObjectMap(Napi::Env env, Napi::Object exports) {
  exports.Set("headChangedSince", Napi::Function::New(env, HeadChangedSince));
}

}  // namespace rbdstream
