// The copy engine behind replicate(): diff enumeration → bounded in-flight aio
// reads on the source → aio writes / write_zeroes on the target (an object's small
// writes after its first: one RADOS op, object_writes.h), on a thread of its own
// (a copy lasts minutes; the libuv pool is for short jobs).
// Completions are collected inside the job (mutex/condvar), never via JS; JS
// only sees progress (≤ 10/s) and the end. Memory: inflightBytes of data, including what librbd still
// references after its chunk is done (source data is read into and written from librados' buffers,
// uncopied: shared_buffer.h); verify also keeps its target-read buffers for reuse, up to that bound.
// Besides: at most 64 blocks of 4 KiB copied ahead into a target this copy created (pre-touch).
//
// The same pipeline verifies: read both sides, xxh3 per chunk, compare.
//
// This header is what native/copy/binding.cc needs: the options, the job it starts and
// settles, and Run (the job thread's body).
#pragma once

#include <atomic>
#include <condition_variable>
#include <thread>

#include "common.h"

namespace rbdstream {
namespace copy {

constexpr uint64_t kBlock = 4096;  // zero-run granularity (aligned)

using Ext = DiffExtent;

// kFlush, kRecord: the two steps of a periodic checkpoint (not ops of a slot). kPilotRead,
// kPilotWrite: an object's first block copied ahead of its chunks (engine.cc: pre-touch).
// kFirstWrite: a write through librbd that is its object's first (object writes, object_writes.h);
// kObjectWrite: one RADOS op carrying an object's other small writes (its event's slot is the op's).
// kQuiesce, kUnquiesce: librbd's quiesce of the target around a snapshot (object writes pause).
enum Kind { kSrcRead, kDstRead, kWrite, kZero, kFlush, kRecord, kPilotRead, kPilotWrite, kFirstWrite, kObjectWrite, kQuiesce, kUnquiesce };

struct Event {
  int slot;
  Kind kind;
  ssize_t rc;
};

struct Options {
  bool verify = false;
  DiffFrom from;  // by name or (diff_iterate3) by id
  uint64_t toSnapId = 0;
  uint64_t size = 0, startOffset = 0, chunk = 4 << 20;
  // In flight: at most `concurrency` reads/writes (ops) and `inflightBytes` of data buffers, bounded
  // separately: a far target needs many small writes in flight, but large chunks must not multiply
  // memory. Each chunk (one source read, then its writes) holds one slot of `concurrency`.
  int concurrency = 4096;
  uint64_t inflightBytes = 80 << 20;
  // Cap on data bytes sent to the target per second (writes; verify: target reads). 0: none.
  uint64_t bandwidth = 0;
  bool targetZeroed = false, fillGaps = false;
  int enumeration = 0;  // 0 auto (object map, then refine), 1 fine only, 2 whole objects
  std::string checkpointPrefix;
  int checkpointMs = 2000;
  // No checkpoint exists yet and none is needed until the target changes: the first one is written
  // just before the first write or zeroing (a copy that changes nothing writes none).
  bool checkpointBeforeFirstWrite = false;
  // Small changed extents separated by at most this many unchanged bytes share one source read
  // (writes stay exact). 0 (the default): never. A shared read holds its whole span in memory until
  // the last of its writes completes, so the byte bound, not `concurrency`, then caps the small
  // writes in flight: 16k scattered 4 KiB changes 25 ms away copied ~1.5× slower with 128 KiB.
  uint64_t readGap = 0;
  // Small changed extents separated by at most this many unchanged bytes (none of them a zero
  // block) are written as one op, the gap rewritten with the identical source data (so they share
  // one source read too, whatever readGap). 0: exact writes.
  uint64_t writeGap = 0;
  // Copy each object's first data block ahead of its chunks when targetZeroed (engine.cc: pre-touch).
  bool pretouch = false;
  // Small writes to an object after its first go out together, one RADOS op (object_writes.h).
  bool objectWrites = true;
  // Ranges to copy besides the diff (force: undo the target's own changes).
  std::vector<Ext> extra;
};

struct Job {
  std::shared_ptr<Image> src, dst;
  Options o;
  std::atomic<bool> cancel{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> events;
  std::thread th;
  Napi::ThreadSafeFunction tsfn;
  Napi::Promise::Deferred deferred;
  // Results (job thread writes; JS reads after the thread ended).
  std::vector<Ext> exts;
  uint64_t total = 0, doneBytes = 0, bytesRead = 0, bytesWritten = 0, bytesZeroed = 0, extentsDone = 0;
  uint64_t doneOffset = 0;
  uint64_t peakBytesInFlight = 0;  // the most buffer bytes held by chunks in flight at once
  double enumerateMs = 0, copyMs = 0;
  bool usedObjectMap = false;
  uint64_t pretouched = 0;  // objects whose first block was written ahead of their chunks
  // Object writes: RADOS ops sent, the writes they carried, and those sent again through librbd (EOLDSNAPC).
  uint64_t objectWriteOps = 0, objectWrites = 0, objectWritesRedone = 0;
  bool targetTouched = false;  // a write or zeroing was submitted to the target
  // Where the target has objects at the start (image ranges, sorted): zero runs elsewhere need no
  // write, the target reads zero there already. Unknown (every zero run is written) unless set.
  bool knowTargetAlloc = false;
  std::vector<Ext> targetAlloc;
  int64_t mismatch = -1;
  bool aborted = false;
  int err = 0;
  bool errOnTarget = false;
  std::atomic<bool> rejectedEarly{false};
  // The target's quiesce watch (object writes): while open, a quiesce is an event for the pipeline;
  // after, it is completed at once. Under mu.
  bool quiesceOpen = false;
  uint64_t quiesceHandle = 0;
  bool settled = false;  // JS thread only: the promise is settled
  Napi::Promise::Deferred ended;  // resolves once the thread is done (its images released)
  OpContext errCtx;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)), ended(Napi::Promise::Deferred::New(env)) {}
};

// The job thread's body: enumerate, then copy or verify; the results stay in *j.
void Run(Job* j);

}  // namespace copy
}  // namespace rbdstream
