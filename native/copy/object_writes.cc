// Object writes: see object_writes.h.
#include "copy/object_writes.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace rbdstream {
namespace copy {

std::unique_ptr<ObjectWriter> ObjectWriter::Open(Image* dst) {
  rbd_image_t im = dst->image;
  uint8_t old = 0;
  uint64_t features = 0, unit = 0, count = 0;
  rbd_image_info_t info{};
  if (rbd_get_old_format(im, &old) < 0 || old) return nullptr;
  if (rbd_get_features(im, &features) < 0 || (features & RBD_FEATURE_JOURNALING)) return nullptr;
  if (rbd_stat(im, &info, sizeof(info)) < 0 || info.obj_size == 0) return nullptr;
  if (rbd_get_stripe_unit(im, &unit) < 0 || rbd_get_stripe_count(im, &count) < 0) return nullptr;
  if (count > 1 && unit != info.obj_size) return nullptr;
  rbd_linked_image_spec_t parent{};
  rbd_snap_spec_t parentSnap{};
  int rc = rbd_get_parent(im, &parent, &parentSnap);
  if (rc == 0) {
    rbd_linked_image_spec_cleanup(&parent);
    rbd_snap_spec_cleanup(&parentSnap);
  }
  if (rc != -ENOENT) return nullptr;
  // (a data pool's prefix, rbd_data.<pool id>.<image id>, can outgrow RBD_MAX_BLOCK_NAME_SIZE)
  char prefix[128] = {0};
  if (rbd_get_block_name_prefix(im, prefix, sizeof(prefix)) < 0) return nullptr;
  int64_t pool = rbd_get_data_pool_id(im);
  if (pool < 0) return nullptr;
  std::unique_ptr<ObjectWriter> w(new ObjectWriter());
  w->dst_ = dst;
  w->prefix_ = prefix;
  w->objectSize_ = info.obj_size;
  if (rados_ioctx_create2(dst->ioctx->cluster->rados, pool, &w->io_) < 0) {
    w->io_ = nullptr;
    return nullptr;
  }
  rados_ioctx_set_namespace(w->io_, dst->ioctx->ns.c_str());
  return w;
}

ObjectWriter::~ObjectWriter() {
  if (io_ != nullptr) rados_ioctx_destroy(io_);
}

int ObjectWriter::RefreshSnapContext() {
  uint64_t seq = 0;
  std::vector<uint64_t> ids;
  int rc = HeaderSnapContext(dst_, &seq, &ids);
  if (rc < 0) return rc;
  std::sort(ids.rbegin(), ids.rend());  // RADOS wants them newest first
  std::vector<rados_snap_t> snaps(ids.begin(), ids.end());
  rc = rados_ioctx_selfmanaged_snap_set_write_ctx(io_, seq, snaps.data(), int(snaps.size()));
  haveSnapContext_ = rc >= 0;
  return rc;
}

int ObjectWriter::Send(uint64_t objectNo, const std::vector<Part>& parts, rados_callback_t onComplete, void* arg,
                       rados_completion_t* completion) {
  if (!haveSnapContext_) {
    int rc = RefreshSnapContext();
    if (rc < 0) return rc;
  }
  // Format 2 data objects: <block_name_prefix>.<object number, 16 hex digits>.
  char number[24];
  std::snprintf(number, sizeof(number), ".%016" PRIx64, objectNo);
  const std::string oid = prefix_ + number;
  int rc = rados_aio_create_completion2(arg, onComplete, completion);
  if (rc < 0) return rc;
  rados_write_op_t op = rados_create_write_op();
  for (const Part& p : parts) {
    rados_write_op_write(op, p.data, p.len, p.offset);
    rados_write_op_set_flags(op, LIBRADOS_OP_FLAG_FADVISE_NOCACHE);
  }
  rc = rados_aio_write_op_operate(op, io_, *completion, oid.c_str(), nullptr, LIBRADOS_OPERATION_ORDERSNAP);
  rados_release_write_op(op);
  if (rc < 0) {
    rados_aio_release(*completion);
    *completion = nullptr;
  }
  return rc;
}

}  // namespace copy
}  // namespace rbdstream
