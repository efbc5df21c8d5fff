// Object writes: several small writes to one data object of the target sent as one RADOS op.
//
// librbd sends one OSD op per write (its scheduler merges only adjacent writes to one object), and
// on a far target the OSD's work per op, not the link, bounds an incremental of many small changes:
// 16k scattered 4 KiB writes cost the target OSD ~4 s of CPU either way, and one op per object
// carrying its 64 extents is 5-7x cheaper (docs/benchmarks.md, benchmarks/rados-write-ops.c).
// rbd-mirror's image sync writes objects the same way, from inside librbd.
//
// What librbd does for a write besides sending it, and how this keeps it:
// - the object-map mark (and fast-diff's dirty state) before an object's first write, the copy-on-
//   write of clones: the engine writes each object's first data through librbd, and only once that
//   completed sends the object's other writes here, with the header's snap context and ORDERSNAP
//   (the OSD refuses an op whose context is older than the object's: EOLDSNAPC; the engine reads
//   the context again and sends those writes through librbd).
// - a snapshot taken mid-copy (through any client: librbd forwards it to the lock holder): the
//   engine watches the image's quiesce, which librbd runs before it takes a snapshot (unless asked
//   to skip it), sends no object op from then on, reports itself quiesced once those in flight are
//   done, and reads the snap context again after the unquiesce. A snapshot taken without quiesce
//   may still see object ops sent after it but before the engine learns of it; ORDERSNAP catches the
//   ones whose object librbd already wrote with the new context.
// - the exclusive lock: the engine's target is locked (replicate() acquires it), and these ops go
//   through the same RADOS client, so a client that breaks the lock blocklists them too.
// Not eligible (every write goes through librbd): format 1, journaling (writes must be journaled),
// a parent (a clone's objects copy up from it), striping that does not follow offsets, or when the
// data pool cannot be opened.
#pragma once

#include <rados/librados.h>
#include <rbd/librbd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace rbdstream {
namespace copy {

class ObjectWriter {
 public:
  // The writer for `dst`, or null when its writes must all go through librbd.
  static std::unique_ptr<ObjectWriter> Open(Image* dst);
  ~ObjectWriter();

  uint64_t objectSize() const { return objectSize_; }

  struct Part {
    uint64_t offset;  // in the object
    const char* data;
    uint64_t len;
  };
  // Sends `parts` (in one object, none overlapping) as one write op to object `objectNo`;
  // `onComplete(completion, arg)` runs on a librados thread. The data must stay valid until then.
  int Send(uint64_t objectNo, const std::vector<Part>& parts, rados_callback_t onComplete, void* arg,
           rados_completion_t* completion);
  // Reads the header's snap context (blocking: one round trip): at the first Send, and again after
  // an EOLDSNAPC.
  int RefreshSnapContext();
  // A snapshot was taken: the next Send reads the snap context first.
  void SnapContextChanged() { haveSnapContext_ = false; }

 private:
  ObjectWriter() = default;
  Image* dst_ = nullptr;
  rados_ioctx_t io_ = nullptr;
  std::string prefix_;
  uint64_t objectSize_ = 0;
  bool haveSnapContext_ = false;
};

// The OSD's answer to a write whose snap context is older than the object's (ORDERSNAP).
constexpr int kOldSnapContext = -ERESTART;

}  // namespace copy
}  // namespace rbdstream
