// See shared_write.h.
#include "copy/shared_write.h"

#include <rbd/librbd.hpp>

#include <cstring>
#include <type_traits>

namespace rbdstream {
namespace copy {

// librbd's C handle is the ImageCtx* that librbd::Image holds as its only member (`ctx`), and an
// rbd_completion_t is the librbd::RBD::AioCompletion* that rbd_aio_create_completion allocated. The
// C++ image is viewed in place, never constructed or destroyed (its destructor would close it).
// Pacific, Reef and Tentacle's librbd.hpp all declare Image this way; the asserts catch a change.
static_assert(sizeof(librbd::Image) == sizeof(rbd_image_t), "librbd::Image is its ImageCtx pointer");
static_assert(std::is_standard_layout<librbd::Image>::value, "librbd::Image has no hidden members");

void SharedBuffer::Allocate(uint64_t n) { ptr_ = ceph::bufferptr(ceph::buffer::create_page_aligned(unsigned(n))); }

void SharedBuffer::ForgetCrc() {
  if (!ptr_.have_raw()) return;
  ceph::bufferlist bl;
  bl.append(ptr_);
  bl.invalidate_crc();
}

int SharedBuffer::AioWrite(rbd_image_t image, uint64_t off, uint64_t at, uint64_t len, rbd_completion_t c,
                           int opFlags) const {
  ceph::bufferlist bl;
  bl.append(ceph::bufferptr(ptr_, unsigned(at), unsigned(len)));
  alignas(librbd::Image) unsigned char view[sizeof(librbd::Image)];
  std::memcpy(view, &image, sizeof image);
  auto* cxx = reinterpret_cast<librbd::Image*>(view);
  return cxx->aio_write2(off, len, bl, reinterpret_cast<librbd::RBD::AioCompletion*>(c), opFlags);
}

}  // namespace copy
}  // namespace rbdstream
