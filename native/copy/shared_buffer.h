// Source chunks read into librados' own buffers and written to the target by reference.
//
// librbd's C functions copy: a read from the messenger's buffer into the caller's, and every write
// whenever librbd's cache is on (the default), because the C API cannot tell when librbd is done with
// the caller's memory. (With that copy switched off, a C write completes only once the messenger lets
// go of the memory, which for an op queued to a dead OSD is never: no ETIMEDOUT.) The C++ aio_read2 and
// aio_write2 take reference-counted bufferlists: the read lands in the buffer the reply arrived in,
// the write shares it, both complete on time, and the memory is freed when the last reference drops.
#pragma once

#include <rados/buffer.h>
#include <rbd/librbd.h>

#include <cstdint>

namespace rbdstream {
namespace copy {

// One chunk's source data: filled by AioRead, then shared with the target's writes.
class SharedBuffer {
 public:
  // Reads [off, off + len) of `image`. Neither this object nor its data may be touched until `c`
  // completes; then call Settle().
  int AioRead(rbd_image_t image, uint64_t off, uint64_t len, rbd_completion_t c, int opFlags);
  // After the read completed: the data as one contiguous block of the length read (librbd leaves
  // a hole at the end out of the list: it reads as zeros).
  void Settle();
  const char* data() const { return data_; }
  uint64_t size() const { return bl_.length(); }
  void Release() {
    bl_.clear();
    data_ = nullptr;
  }
  // Does anyone besides us (librbd, its messenger) still hold this memory?
  bool Shared() const;
  // aio_write2 of [off, off + len) of the target image from buffer bytes [at, at + len), by reference.
  int AioWrite(rbd_image_t image, uint64_t off, uint64_t at, uint64_t len, rbd_completion_t c, int opFlags) const;

 private:
  ceph::bufferlist bl_;
  uint64_t want_ = 0;
  const char* data_ = nullptr;
};

}  // namespace copy
}  // namespace rbdstream
