// Target writes that hand librbd a reference to our buffer instead of a copy.
//
// librbd's C write functions copy every buffer whenever its cache is on (the default): the C API
// cannot tell when librbd is done with the caller's memory, so it takes a copy — or, with the copy
// disabled, holds the write's completion until the messenger lets go, which never happens for an
// op queued to a dead OSD (no ETIMEDOUT). The C++ aio_write2 takes a reference-counted bufferlist:
// the write completes on time, and the memory is freed (or reused) once the last reference drops.
#pragma once

#include <rados/buffer.h>
#include <rbd/librbd.h>

#include <cstdint>

namespace rbdstream {
namespace copy {

// A page-aligned buffer that librbd may still reference after the write that used it completed.
class SharedBuffer {
 public:
  char* data() { return ptr_.have_raw() ? ptr_.c_str() : nullptr; }
  const char* data() const { return ptr_.have_raw() ? ptr_.c_str() : nullptr; }
  uint64_t size() const { return ptr_.have_raw() ? ptr_.length() : 0; }
  // Allocates `n` bytes (contents undefined), dropping our reference to the previous memory.
  void Allocate(uint64_t n);
  void Release() { ptr_ = ceph::bufferptr(); }
  // Before the memory is rewritten: the messenger caches data crcs in the buffer, per range, and
  // would send a reused buffer's new bytes with the old bytes' crc (the OSD then drops the
  // connection, again on every resend, until the op times out).
  void ForgetCrc();
  // Does anyone besides us (librbd, its messenger) still hold this memory?
  bool Shared() const { return ptr_.have_raw() && ptr_.raw_nref() > 1; }
  // aio_write2 of [off, off + len) of the target image from buffer bytes [at, at + len), by reference.
  int AioWrite(rbd_image_t image, uint64_t off, uint64_t at, uint64_t len, rbd_completion_t c, int opFlags) const;

 private:
  ceph::bufferptr ptr_;
};

}  // namespace copy
}  // namespace rbdstream
