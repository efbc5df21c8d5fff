// See shared_buffer.h.
#include "copy/shared_buffer.h"

#include <rbd/librbd.hpp>

#include <cstring>
#include <type_traits>

namespace rbdstream {
namespace copy {

namespace {

// librbd's C handle is the ImageCtx* that librbd::Image holds as its only member (`ctx`), and an
// rbd_completion_t is the librbd::RBD::AioCompletion* that rbd_aio_create_completion allocated. The
// C++ image is viewed in place, never constructed or destroyed (its destructor would close it).
// Pacific, Reef and Tentacle's librbd.hpp all declare Image this way; the asserts catch a change.
static_assert(sizeof(librbd::Image) == sizeof(rbd_image_t), "librbd::Image is its ImageCtx pointer");
static_assert(std::is_standard_layout<librbd::Image>::value, "librbd::Image has no hidden members");

struct ImageView {
  explicit ImageView(rbd_image_t image) { std::memcpy(bytes, &image, sizeof image); }
  librbd::Image* operator->() { return reinterpret_cast<librbd::Image*>(bytes); }
  alignas(librbd::Image) unsigned char bytes[sizeof(librbd::Image)];
};

librbd::RBD::AioCompletion* Cxx(rbd_completion_t c) { return reinterpret_cast<librbd::RBD::AioCompletion*>(c); }

}  // namespace

int SharedBuffer::AioRead(rbd_image_t image, uint64_t off, uint64_t len, rbd_completion_t c, int opFlags) {
  Release();
  want_ = len;
  return ImageView(image)->aio_read2(off, len, bl_, Cxx(c), opFlags);
}

void SharedBuffer::Settle() {
  if (bl_.length() < want_) bl_.append_zero(unsigned(want_ - bl_.length()));
  data_ = bl_.c_str();  // rebuilds into one buffer only when the read came in pieces
}

bool SharedBuffer::Shared() const {
  for (const auto& p : bl_.buffers()) {
    if (p.raw_nref() > 1) return true;
  }
  return false;
}

int SharedBuffer::AioWrite(rbd_image_t image, uint64_t off, uint64_t at, uint64_t len, rbd_completion_t c,
                           int opFlags) const {
  ceph::bufferlist part;
  part.substr_of(bl_, unsigned(at), unsigned(len));
  return ImageView(image)->aio_write2(off, len, part, Cxx(c), opFlags);
}

}  // namespace copy
}  // namespace rbdstream
