// The copy engine: see engine.h.
// Over ~400 lines: one pipeline whose steps share its slots, queue and watermark state;
// split up, each piece would need all of that passed in.
// Header-only xxhash (its functions compiled in here): the addon, and so a prebuilt binary, needs no
// libxxhash.so at run time, only the headers (libxxhash-dev) to build.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>

#include "copy/engine.h"
#include "copy/object_writes.h"
#include "copy/shared_buffer.h"

namespace rbdstream {
namespace copy {

namespace {

using Clock = std::chrono::steady_clock;

const char kZeroPage[kBlock] = {0};
constexpr int kReadFlags = LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL | LIBRADOS_OP_FLAG_FADVISE_NOCACHE;
// FUA: librbd's write-around cache (on by default once a flush was seen) would ack writes
// before the OSD does, adding its own 24 MiB in flight beyond `concurrency` and deferring any
// error to the next flush, after every queued write has waited out the op timeout in turn.
constexpr int kWriteFlags = LIBRADOS_OP_FLAG_FADVISE_NOCACHE | LIBRADOS_OP_FLAG_FADVISE_FUA;

// Object writes: a write this large goes through librbd even after its object's first (it is one
// op either way, and waiting for the first would hold its buffer for a round trip).
constexpr uint64_t kObjectWriteMax = 256 << 10;

struct Slot {
  uint64_t off = 0, len = 0, seq = 0;
  int64_t object = -1;  // object writes: the target object its writes go to; -1: through librbd
  bool exists = false, failed = false;
  int extentsEnded = 0;
  std::vector<std::pair<uint64_t, uint64_t>> parts;  // data ranges to write out of the read span
  int pending = 0;
  SharedBuffer buf;           // source data, in librados' buffer; written to the target by reference
  std::vector<char> buf2;     // verify: the target's data
};

struct Comp {
  Job* job;
  int slot;
  Kind kind;
  uint64_t off;
};

const char* OpName(Kind k) {
  switch (k) {
    case kSrcRead:
    case kPilotRead: return "replicate: read source";
    case kDstRead: return "replicate: read target";
    case kZero: return "replicate: write_zeroes target";
    case kFlush:
    case kRecord: return "replicate: checkpoint on target";
    default: return "replicate: write target";
  }
}

struct EarlyFailure {
  Job* job;
  int rc;
  OpContext ctx;
};

// A target op failed: reject the copy now rather than when the job ends. On an unreachable
// target the ops still in flight can take several more op timeouts to fail (librbd retries
// them behind its lock); the job thread keeps the images, and so the connection, open until
// they are done, and `ended` tells when.
void RejectEarly(Job* j, int rc, const std::string& op, uint64_t off) {
  if (j->rejectedEarly.exchange(true)) return;
  auto* f = new EarlyFailure{j, rc, OpContext::For(op + " at offset " + std::to_string(off), j->dst.get())};
  if (j->tsfn.NonBlockingCall(f, [](Napi::Env env, Napi::Function, EarlyFailure* f) {
        if (env != nullptr && !f->job->settled) {
          f->job->settled = true;
          f->job->deferred.Reject(ErrnoError(env, f->rc, f->ctx).Value());
        }
        delete f;
      }) != napi_ok)
    delete f;
}

void Push(Job* j, Event e) {
  std::lock_guard<std::mutex> lk(j->mu);
  j->events.push_back(e);
  // Notify under the lock: once the job sees its last event it may end.
  j->cv.notify_one();
}

void OnComplete(rbd_completion_t c, void* arg) {
  auto* cp = static_cast<Comp*>(arg);
  ssize_t rc = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  Job* j = cp->job;
  Event e{cp->slot, cp->kind, rc};
  if (rc < 0 && cp->kind != kSrcRead && cp->kind != kPilotRead) RejectEarly(j, int(rc), OpName(cp->kind), cp->off);
  delete cp;
  Push(j, e);
}

// An object write's RADOS op ended (`slot` names the op). An EOLDSNAPC is retried, not an error yet.
void OnObjectWriteComplete(rados_completion_t c, void* arg) {
  auto* cp = static_cast<Comp*>(arg);
  int rc = rados_aio_get_return_value(c);
  rados_aio_release(c);
  if (rc < 0 && rc != kOldSnapContext) RejectEarly(cp->job, rc, OpName(kObjectWrite), cp->off);
  Job* j = cp->job;
  Event e{cp->slot, kObjectWrite, rc};
  delete cp;
  Push(j, e);
}

// librbd's quiesce callbacks (on its work queue). Every quiesce must be completed exactly once, or
// the snapshot waiting for it never proceeds.
void OnQuiesce(void* arg) {
  Job* j = static_cast<Job*>(arg);
  uint64_t handle = 0;
  {
    std::lock_guard<std::mutex> lk(j->mu);
    if (j->quiesceOpen) {
      j->events.push_back({-1, kQuiesce, 0});
      j->cv.notify_one();
      return;
    }
    handle = j->quiesceHandle;
  }
  rbd_quiesce_complete(j->dst->image, handle, 0);
}

void OnUnquiesce(void* arg) { Push(static_cast<Job*>(arg), {-1, kUnquiesce, 0}); }

// Starts one aio op; a synchronous failure is delivered as a completion.
template <typename F>
void Submit(Job* j, int slot, Kind kind, uint64_t off, F start) {
  auto* cp = new Comp{j, slot, kind, off};
  rbd_completion_t c = nullptr;
  int rc = rbd_aio_create_completion(cp, OnComplete, &c);
  if (rc < 0) {
    delete cp;
    Push(j, {slot, kind, rc});
    return;
  }
  rc = start(c);
  if (rc < 0) {
    rbd_aio_release(c);
    delete cp;
    Push(j, {slot, kind, rc});
  }
}

int Diff(Job* j, uint64_t off, uint64_t len, bool whole, std::vector<Ext>* out) {
  return DiffExtents(j->src->image, j->o.from, off, len, true, whole, out);
}

// Is the fast-diff object map trustworthy for both ends of the diff?
bool FastDiffUsable(Job* j) {
  rbd_image_t im = j->src->image;
  uint64_t features = 0, flags = 0;
  if (rbd_get_features(im, &features) < 0 || !(features & RBD_FEATURE_FAST_DIFF)) return false;
  if (rbd_get_flags(im, &flags) < 0 || (flags & RBD_FLAG_FAST_DIFF_INVALID)) return false;
  if (!j->o.from.has) return true;
  int set = j->o.from.byId ? rbd_snap_set_by_id(im, j->o.from.id) : rbd_snap_set(im, j->o.from.name.c_str());
  bool ok = set == 0 && rbd_get_flags(im, &flags) == 0 &&
            !(flags & RBD_FLAG_FAST_DIFF_INVALID);
  if (rbd_snap_set_by_id(im, j->o.toSnapId) < 0) return false;
  return ok;
}

// Which ranges of the target are backed by objects, from its fast-diff object map (no per-object
// round trips). Only when that map is valid and the target has no parent (a missing object of a
// clone reads the parent's data, not zeroes). A target this copy created has none at all.
void LearnTargetAllocation(Job* j) {
  if (j->o.targetZeroed) {
    j->knowTargetAlloc = true;
    return;
  }
  rbd_image_t im = j->dst->image;
  uint64_t features = 0, flags = 0;
  if (rbd_get_features(im, &features) < 0 || !(features & RBD_FEATURE_FAST_DIFF)) return;
  if (rbd_get_flags(im, &flags) < 0 || (flags & (RBD_FLAG_FAST_DIFF_INVALID | RBD_FLAG_OBJECT_MAP_INVALID))) return;
  rbd_linked_image_spec_t parent{};
  rbd_snap_spec_t parentSnap{};
  int rc = rbd_get_parent(im, &parent, &parentSnap);
  if (rc != -ENOENT) {
    if (rc == 0) {
      rbd_linked_image_spec_cleanup(&parent);
      rbd_snap_spec_cleanup(&parentSnap);
    }
    return;
  }
  std::vector<Ext> alloc;
  if (DiffExtents(im, DiffFrom{}, 0, j->o.size, false, true, &alloc) < 0) return;
  std::sort(alloc.begin(), alloc.end(), [](const Ext& a, const Ext& b) { return a.off < b.off; });
  for (const Ext& e : alloc) {
    if (!e.exists) continue;
    if (!j->targetAlloc.empty() && e.off <= j->targetAlloc.back().off + j->targetAlloc.back().len) {
      Ext& last = j->targetAlloc.back();
      last.len = std::max(last.off + last.len, e.off + e.len) - last.off;
    } else {
      j->targetAlloc.push_back(e);
    }
  }
  j->knowTargetAlloc = true;
}

// Pre-touch: librbd marks an object in the target's object map (one round trip) before the first
// write to it, and every chunk of that object waits for the mark. On a target this copy created,
// no object exists yet, so on a far link each chunk would wait two round trips. The engine copies
// each object's first data block ahead of its chunks instead (a local 4 KiB read, a 4 KiB write of
// the same bytes), so the mark is made while earlier objects are still being copied. Only where
// the image's objects follow its offsets (no fancy striping), the target has an object map, and
// objects are large enough for one block per object to be a small share of the writes (256 KiB:
// at most 1/64 written twice; with 4 KiB objects every block would be).
// Returns the target's object size, or 0 when pre-touch does not apply.
uint64_t PretouchObjectSize(Job* j) {
  if (!j->o.targetZeroed || j->o.verify || !j->o.pretouch) return 0;
  rbd_image_t im = j->dst->image;
  uint64_t features = 0, unit = 0, count = 0;
  rbd_image_info_t info{};
  if (rbd_get_features(im, &features) < 0 || !(features & RBD_FEATURE_OBJECT_MAP)) return 0;
  if (rbd_stat(im, &info, sizeof(info)) < 0 || info.obj_size < 64 * kBlock) return 0;
  if (rbd_get_stripe_unit(im, &unit) < 0 || rbd_get_stripe_count(im, &count) < 0) return 0;
  if (count > 1 && unit != info.obj_size) return 0;
  return info.obj_size;
}

// Fills j->exts with the extents to process in [startOffset, size), sorted.
int Enumerate(Job* j, OpContext* ctx) {
  rbd_image_info_t info{};
  int rc = rbd_stat(j->src->image, &info, sizeof(info));
  if (rc < 0) return rc;
  uint64_t objSize = info.obj_size ? info.obj_size : (4 << 20);
  int mode = j->o.enumeration;
  bool fast = mode != 1 && FastDiffUsable(j);
  j->usedObjectMap = fast;
  uint64_t step = objSize * 256;
  std::vector<Ext> all;
  for (uint64_t off = j->o.startOffset - j->o.startOffset % objSize; off < j->o.size; off += step) {
    if (j->cancel) break;
    uint64_t len = std::min(step, j->o.size - off);
    std::vector<Ext> coarse;
    if (!fast) {
      rc = Diff(j, off, len, false, &all);
    } else if (mode == 2) {
      rc = Diff(j, off, len, true, &all);
    } else {
      // Object map says which objects changed (no per-object round trips);
      // refine only those, in runs of adjacent objects.
      rc = Diff(j, off, len, true, &coarse);
      for (size_t i = 0; rc >= 0 && i < coarse.size();) {
        uint64_t s = coarse[i].off, e = coarse[i].off + coarse[i].len;
        size_t k = i + 1;
        while (k < coarse.size() && coarse[k].off <= e) {
          e = std::max(e, coarse[k].off + coarse[k].len);
          k++;
        }
        rc = Diff(j, s, e - s, false, &all);
        i = k;
      }
    }
    if (rc < 0) {
      ctx->op = "replicate: diff";
      return rc;
    }
  }
  for (const Ext& e : j->o.extra) all.push_back(e);
  std::stable_sort(all.begin(), all.end(), [](const Ext& a, const Ext& b) { return a.off < b.off; });
  // Clip to [startOffset, size) and fill gaps with zero extents when asked.
  // Overlaps are trimmed: whatever the diff says, the copy is of source@to.
  uint64_t lo = j->o.startOffset, hi = j->o.size, cur = lo;
  for (const Ext& e0 : all) {
    Ext e = e0;
    uint64_t s = std::max(e.off, lo), t = std::min(e.off + e.len, hi);
    if (t <= s) continue;
    if (s < cur) s = cur;  // overlaps (defensive)
    if (t <= s) continue;
    if (j->o.fillGaps && s > cur) j->exts.push_back({cur, s - cur, false});
    j->exts.push_back({s, t - s, e.exists});
    cur = t;
  }
  if (j->o.fillGaps && cur < hi) j->exts.push_back({cur, hi - cur, false});
  for (const Ext& e : j->exts) j->total += e.len;
  return 0;
}

bool IsZero(const char* p) { return std::memcmp(p, kZeroPage, kBlock) == 0; }

void Fail(Job* j, int rc, const std::string& op, bool onSrc, uint64_t off) {
  if (j->err) return;
  j->err = rc;
  j->errOnTarget = !onSrc;
  j->errCtx = OpContext::For(op + " at offset " + std::to_string(off), onSrc ? j->src.get() : j->dst.get());
  if (!onSrc) RejectEarly(j, rc, op, off);
}

// The checkpoint record itself: prefix + the completed low-watermark (sent only, with `started`).
int RecordCheckpoint(Job* j, uint64_t done, HeaderMetadataWrite* started = nullptr,
                     rados_callback_t onComplete = nullptr) {
  std::string v = j->o.checkpointPrefix + std::to_string(done) + "}";
  return UpdateHeaderMetadata(j->dst.get(), {"rbd-stream.checkpoint"}, {v}, {}, started, onComplete, j);
}

// Nothing changed on the target yet and no checkpoint is wanted before that: the next run may
// check it as untouched.
bool CheckpointNotYet(const Job* j) { return j->o.checkpointBeforeFirstWrite && !j->targetTouched; }

// Returns the flush's or the metadata write's error: either means the target is failing
// (an unreachable one would otherwise make every later write and checkpoint wait out the
// op timeout in turn before the copy gives up).
int WriteCheckpoint(Job* j) {
  if (j->o.checkpointPrefix.empty() || CheckpointNotYet(j)) return 0;
  uint64_t done = j->doneOffset;
  // Flush first: the checkpoint must never claim data that is not durable.
  int rc = rbd_flush(j->dst->image);
  if (rc < 0) return rc;
  return RecordCheckpoint(j, done);
}

struct Progress {
  uint64_t done, total, extents;
};

void EmitProgress(Job* j) {
  auto* p = new Progress{j->doneBytes, j->total, j->extentsDone};
  if (j->tsfn.NonBlockingCall(p, [](Napi::Env env, Napi::Function cb, Progress* p) {
        if (env != nullptr && cb != nullptr) {
          try {
            cb.Call({Napi::Number::New(env, double(p->done)), Napi::Number::New(env, double(p->total)),
                     Napi::Number::New(env, double(p->extents))});
          } catch (...) {
          }
        }
        delete p;
      }) != napi_ok)
    delete p;
}

// Bytes per second on the target, as a token bucket: a chunk is admitted when what was sent plus
// what admitted chunks may still send fits in rate × elapsed (+ one chunk of burst).
struct Throttle {
  uint64_t rate = 0, burst = 0, sent = 0, reserved = 0;
  Clock::time_point t0 = Clock::now();
  // How long until `len` more bytes may be admitted (zero: now).
  std::chrono::microseconds Wait(uint64_t len) const {
    if (rate == 0) return std::chrono::microseconds(0);
    double need = double(sent + reserved + len) - double(burst);
    double at = need / double(rate);  // seconds after t0
    double el = std::chrono::duration<double>(Clock::now() - t0).count();
    return std::chrono::microseconds(at <= el ? 0 : int64_t((at - el) * 1e6) + 1);
  }
};

void Pipeline(Job* j) {
  const Options& o = j->o;
  rbd_image_t src = j->src->image, dst = j->dst->image;
  std::vector<Slot> slots(o.concurrency);
  std::vector<int> freeSlots;  // LIFO: recently used slots (and their buffers) go first
  for (int i = o.concurrency - 1; i >= 0; i--) freeSlots.push_back(i);
  int opsInFlight = 0;          // reads/writes submitted, not yet completed
  uint64_t bytesInFlight = 0;   // buffer bytes of the chunks in flight
  uint64_t bytesRetained = 0;   // verify: target-read buffer capacity kept by all slots
  // Source data of finished chunks that librbd still references (a write is complete before the last
  // reference drops): it counts against inflightBytes until librbd lets go.
  std::vector<SharedBuffer> held;
  uint64_t bytesHeld = 0;
  Throttle throttle;
  throttle.rate = o.bandwidth;
  throttle.burst = o.chunk;
  std::chrono::microseconds throttled(0);
  // Buffers grow to the chunk they hold and are kept for reuse, unless that would keep more than
  // inflightBytes (then an idle slot's buffers are freed).
  auto ensure = [&](std::vector<char>& v, uint64_t n) {
    if (v.size() >= n) return;
    bytesRetained -= v.capacity();
    v.resize(n);
    bytesRetained += v.capacity();
  };
  auto releaseBuffers = [&](Slot& s) {
    bytesRetained -= s.buf2.capacity();
    std::vector<char>().swap(s.buf2);
  };
  // Frees the held data librbd let go of.
  auto reapHeld = [&]() {
    for (size_t i = 0; i < held.size();) {
      if (held[i].Shared()) {
        i++;
        continue;
      }
      bytesHeld -= held[i].size();
      held[i] = std::move(held.back());
      held.pop_back();
    }
  };
  auto slotBytes = [&](const Slot& s) -> uint64_t { return o.verify ? s.len * 2 : (s.exists ? s.len : 0); };
  auto beforeChange = [&](uint64_t off) {
    if (j->targetTouched) return;
    // The first change to the target: the checkpoint goes first (nothing to flush yet), so a
    // crash from here on is recognisably this copy's.
    if (o.checkpointBeforeFirstWrite) {
      int rc = RecordCheckpoint(j, j->doneOffset);
      if (rc < 0) Fail(j, rc, "replicate: checkpoint on target", false, off);
    }
    j->targetTouched = true;
  };
  // Starts one op of slot si, counted against the slot and against `concurrency`.
  auto submit = [&](int si, Kind kind, uint64_t off, auto start) {
    if (kind == kWrite || kind == kZero || kind == kFirstWrite) beforeChange(off);
    slots[si].pending++;
    opsInFlight++;
    Submit(j, si, kind, off, start);
  };
  // A librbd write of [off, off + len) from slot si's source data, by reference.
  auto writeFromSlot = [&](int si, Kind kind, uint64_t off, uint64_t len) {
    const Slot& s = slots[si];
    submit(si, kind, off, [&](rbd_completion_t c) { return s.buf.AioWrite(dst, off, off - s.off, len, c, kWriteFlags); });
  };
  // In-flight chunks in issue (= offset) order, for the completed low-watermark.
  struct Mark {
    uint64_t off;
    bool done;
  };
  std::deque<Mark> order;
  uint64_t frontSeq = 0, nextSeq = 0;
  size_t ei = 0;
  uint64_t epos = 0;
  int inflight = 0;

  auto normalize = [&]() {
    while (ei < j->exts.size()) {
      const Ext& e = j->exts[ei];
      if (epos < e.off) epos = e.off;
      if (epos < e.off + e.len) return;
      ei++;
    }
  };
  auto nextOffset = [&]() -> uint64_t {
    normalize();
    return ei < j->exts.size() ? epos : o.size;
  };
  auto updateWatermark = [&]() {
    while (!order.empty() && order.front().done) {
      order.pop_front();
      frontSeq++;
    }
    j->doneOffset = order.empty() ? nextOffset() : order.front().off;
  };
  auto finishSlot = [&](int si) {
    Slot& s = slots[si];
    if (!s.failed) {
      order[s.seq - frontSeq].done = true;
      j->doneBytes += s.len;
      j->extentsDone += s.extentsEnded;
    }
    inflight--;
    bytesInFlight -= slotBytes(s);
    if (s.buf.Shared()) {
      bytesHeld += s.buf.size();
      held.push_back(std::move(s.buf));
    }
    s.buf.Release();
    if (bytesRetained > o.inflightBytes) releaseBuffers(s);
    freeSlots.push_back(si);
    updateWatermark();
  };

  // Zeroes [a, b) on the target where it has objects (all of it when that is unknown). Where the
  // target has objects is learnt at the first zero run: a copy without any pays no round trips.
  bool allocLearnt = false;
  auto zeroOut = [&](int si, uint64_t a, uint64_t b) {
    if (!allocLearnt) {
      allocLearnt = true;
      LearnTargetAllocation(j);
    }
    auto zero = [&](uint64_t x, uint64_t y) {
      j->bytesZeroed += y - x;
      submit(si, kZero, x, [&](rbd_completion_t c) { return rbd_aio_write_zeroes(dst, x, y - x, c, 0, kWriteFlags); });
    };
    if (!j->knowTargetAlloc) return zero(a, b);
    const std::vector<Ext>& al = j->targetAlloc;
    auto it = std::upper_bound(al.begin(), al.end(), a, [](uint64_t v, const Ext& e) { return v < e.off; });
    if (it != al.begin()) --it;
    for (; it != al.end() && it->off < b; ++it) {
      uint64_t x = std::max(a, it->off), y = std::min(b, it->off + it->len);
      if (x < y) zero(x, y);
    }
  };

  // Pre-touch (PretouchObjectSize): each object's first data block, copied while the chunks are
  // still up to four windows (4 × inflightBytes) before it: the mark takes a round trip, and the
  // chunks of one window complete in about one. The block's bytes are the source's, as its chunk
  // writes them again, so the two writes may land in either order. Not counted in bytesWritten;
  // its buffers (at most kMaxPilots × 4 KiB) are outside inflightBytes.
  struct Pilot {
    uint64_t off = 0, len = 0;
    std::vector<char> buf;
  };
  constexpr int kMaxPilots = 64;
  const uint64_t objSize = PretouchObjectSize(j);
  std::vector<Pilot> pilots(objSize ? kMaxPilots : 0);
  std::vector<int> freePilots;
  for (int i = int(pilots.size()) - 1; i >= 0; i--) freePilots.push_back(i);
  size_t pilotExt = 0;        // first extent that may still hold an object to pre-touch
  uint64_t pilotObject = 0;   // objects below this one are pre-touched or left to their chunks
  auto issuePilots = [&](uint64_t chunkAt) {
    // The object the next chunk starts in marks itself; pre-touch the ones after it.
    pilotObject = std::max(pilotObject, chunkAt / objSize + 1);
    const uint64_t horizon = chunkAt + 4 * o.inflightBytes;
    while (!freePilots.empty() && pilotExt < j->exts.size()) {
      const Ext& e = j->exts[pilotExt];
      const uint64_t end = e.off + e.len;
      if (!e.exists || end <= pilotObject * objSize) {
        pilotExt++;
        continue;
      }
      const uint64_t at = std::max(e.off, pilotObject * objSize);
      if (at >= horizon) break;
      pilotObject = at / objSize + 1;
      int pi = freePilots.back();
      freePilots.pop_back();
      Pilot& p = pilots[pi];
      p.off = at;
      p.len = std::min({kBlock, end - at, pilotObject * objSize - at});
      p.buf.resize(p.len);
      Submit(j, pi, kPilotRead, at, [&](rbd_completion_t c) { return rbd_aio_read2(src, p.off, p.len, p.buf.data(), c, kReadFlags); });
    }
  };
  auto pilotDone = [&](const Event& ev) {
    Pilot& p = pilots[ev.slot];
    if (ev.rc < 0) {
      Fail(j, int(ev.rc), OpName(ev.kind), ev.kind == kPilotRead, p.off);
    } else if (ev.kind == kPilotRead && !j->err && !j->cancel && !(p.len == kBlock && IsZero(p.buf.data()))) {
      // (an all-zero block stays unwritten: its chunk writes no data there either)
      beforeChange(p.off);
      throttle.sent += p.len;
      j->pretouched++;
      Submit(j, ev.slot, kPilotWrite, p.off, [&](rbd_completion_t c) { return rbd_aio_write2(dst, p.off, p.len, p.buf.data(), c, kWriteFlags); });
      return;
    }
    freePilots.push_back(ev.slot);
  };
  auto pilotsInFlight = [&]() { return pilots.size() - freePilots.size(); };

  // Object writes (object_writes.h): an object's first write goes through librbd; the small writes
  // after it wait until it is done and no source read for the object is in flight, then go out as
  // one RADOS op. They hold their slots (and count against `concurrency`) meanwhile.
  std::unique_ptr<ObjectWriter> objectWriter = o.objectWrites && !o.verify ? ObjectWriter::Open(j->dst.get()) : nullptr;
  // A snapshot of the target mid-copy (object_writes.h): between quiesce and unquiesce no object op
  // is sent, and the quiesce is completed once those in flight are done.
  uint64_t quiesceHandle = 0;
  bool quiesced = false;
  int quiescesOwed = 0;
  if (objectWriter) {
    if (rbd_quiesce_watch(dst, OnQuiesce, OnUnquiesce, j, &quiesceHandle) == 0) {
      std::lock_guard<std::mutex> lk(j->mu);
      j->quiesceHandle = quiesceHandle;
      j->quiesceOpen = true;
    } else {
      objectWriter.reset();
    }
  }
  const uint64_t owSize = objectWriter ? objectWriter->objectSize() : 0;
  struct QueuedWrite {
    int slot;
    uint64_t off, len;
  };
  struct ObjectState {
    int reads = 0;                   // source reads in flight whose data goes to this object
    int first = 0;                   // its first write: 0 not yet, 1 in flight (librbd), 2 done
    std::vector<QueuedWrite> queue;  // writes waiting for one op
  };
  std::unordered_map<uint64_t, ObjectState> objects;  // objects not done with (see flushObjects)
  struct ObjectOp {
    uint64_t object;
    std::vector<QueuedWrite> writes;
  };
  std::unordered_map<int, ObjectOp> objectOps;  // in flight, by id
  int nextObjectOp = 0;
  std::vector<uint64_t> touchedObjects;  // objects whose state changed since the last flushObjects
  // One queued write ended (a slot `skip` is finished by the caller, not here).
  auto endQueued = [&](int si, ssize_t rc, int skip) {
    Slot& s = slots[si];
    s.pending--;
    opsInFlight--;
    if (rc < 0) {
      s.failed = true;
      Fail(j, int(rc), OpName(kObjectWrite), false, s.off);
    }
    if (s.pending == 0 && si != skip) finishSlot(si);
  };
  auto issueObjectOp = [&](int id) {
    ObjectOp& op = objectOps[id];
    std::vector<ObjectWriter::Part> parts;
    for (const QueuedWrite& q : op.writes) {
      const Slot& s = slots[q.slot];
      parts.push_back({q.off - op.object * owSize, s.buf.data() + (q.off - s.off), q.len});
    }
    auto* cp = new Comp{j, id, kObjectWrite, op.writes.front().off};
    rados_completion_t c = nullptr;
    int rc = objectWriter->Send(op.object, parts, OnObjectWriteComplete, cp, &c);
    if (rc < 0) {
      delete cp;
      Push(j, {id, kObjectWrite, rc});
      return;
    }
    j->objectWriteOps++;
  };
  auto flushObjects = [&]() {
    if (quiesced) {  // the unquiesce touches every object with writes queued
      touchedObjects.clear();
      return;
    }
    for (uint64_t obj : touchedObjects) {
      auto it = objects.find(obj);
      if (it == objects.end()) continue;
      ObjectState& st = it->second;
      if (st.first == 2 && st.reads == 0 && !st.queue.empty()) {
        std::vector<QueuedWrite> writes;
        writes.swap(st.queue);
        if (j->err) {  // the copy is failing: send the target nothing more
          for (const QueuedWrite& q : writes) endQueued(q.slot, -ECANCELED, -1);
        } else {
          int id = nextObjectOp++;
          objectOps[id] = ObjectOp{obj, std::move(writes)};
          issueObjectOp(id);
        }
      }
      // Reads are issued in offset order: once the next one is past this object, nothing more
      // comes for it.
      if (st.first != 1 && st.reads == 0 && st.queue.empty() && (obj + 1) * owSize <= nextOffset()) objects.erase(it);
    }
    touchedObjects.clear();
  };
  // A write of [a, b) from slot si's data, whose object takes object writes.
  auto objectWrite = [&](int si, uint64_t a, uint64_t b) {
    Slot& s = slots[si];
    ObjectState& st = objects[uint64_t(s.object)];
    if (st.first == 0 || b - a >= kObjectWriteMax) {
      const Kind kind = st.first == 0 ? kFirstWrite : kWrite;
      if (st.first == 0) st.first = 1;
      writeFromSlot(si, kind, a, b - a);
      return;
    }
    beforeChange(a);
    s.pending++;
    opsInFlight++;
    st.queue.push_back({si, a, b - a});
    touchedObjects.push_back(uint64_t(s.object));
  };
  // librbd wrote the object (its map marked, any clone of a snapshot made): the rest may follow. If
  // it failed, so do the writes queued behind it.
  auto firstWriteDone = [&](int si, ssize_t rc) {
    ObjectState& st = objects[uint64_t(slots[si].object)];
    st.first = 2;
    touchedObjects.push_back(uint64_t(slots[si].object));
    if (rc >= 0) return;
    Fail(j, int(rc), OpName(kFirstWrite), false, slots[si].off);  // its error, not the queued writes'
    std::vector<QueuedWrite> writes;
    writes.swap(st.queue);
    for (const QueuedWrite& q : writes) endQueued(q.slot, -ECANCELED, si);
  };
  // An object op ended. EOLDSNAPC: a snapshot was taken since the snap context was read; read it
  // again for later ops, and send these writes through librbd, which has the new one.
  auto objectOpDone = [&](int id, ssize_t rc) {
    auto it = objectOps.find(id);
    std::vector<QueuedWrite> writes = std::move(it->second.writes);
    objectOps.erase(it);
    if (rc == kOldSnapContext && !j->err) {
      rc = objectWriter->RefreshSnapContext();
      if (rc >= 0) {
        j->objectWritesRedone += writes.size();
        for (const QueuedWrite& q : writes) {
          slots[q.slot].pending--;
          opsInFlight--;
          writeFromSlot(q.slot, kWrite, q.off, q.len);
        }
        return;
      }
    }
    if (rc >= 0) j->objectWrites += writes.size();
    for (const QueuedWrite& q : writes) endQueued(q.slot, rc, -1);
  };

  std::function<void(int, uint64_t, uint64_t)> writePart;
  auto issue = [&](int si) {
    Slot& s = slots[si];
    s.failed = false;
    s.object = -1;
    s.pending = 0;
    s.seq = nextSeq++;
    order.push_back({s.off, false});
    inflight++;
    bytesInFlight += slotBytes(s);
    j->peakBytesInFlight = std::max(j->peakBytesInFlight, bytesInFlight);
    if (o.verify) {
      throttle.sent += s.len;  // target reads
      ensure(s.buf2, s.len);
      submit(si, kDstRead, s.off, [&](rbd_completion_t c) { return rbd_aio_read2(dst, s.off, s.len, s.buf2.data(), c, kReadFlags); });
      if (s.exists) {
        submit(si, kSrcRead, s.off, [&](rbd_completion_t c) { return s.buf.AioRead(src, s.off, s.len, c, kReadFlags); });
      }
      return;
    }
    if (!s.exists) {
      zeroOut(si, s.off, s.off + s.len);
      if (s.pending == 0) finishSlot(si);  // nothing to do: the target reads zero there
      return;
    }
    // A read inside one target object: its writes may be object writes.
    if (owSize && s.off / owSize == (s.off + s.len - 1) / owSize) {
      s.object = int64_t(s.off / owSize);
      objects[uint64_t(s.object)].reads++;
    }
    throttle.reserved += s.len;  // at most this much is written once it is read
    submit(si, kSrcRead, s.off, [&](rbd_completion_t c) { return s.buf.AioRead(src, s.off, s.len, c, kReadFlags); });
  };

  // After a source read: per data part, zero runs (aligned 4 KiB blocks) → write_zeroes, the rest → writes.
  auto gapHasZeroBlock = [&](const Slot& s, uint64_t from, uint64_t to) {
    for (uint64_t b = (from + kBlock - 1) / kBlock * kBlock; b + kBlock <= to; b += kBlock) {
      if (IsZero(s.buf.data() + (b - s.off))) return true;
    }
    return false;
  };
  auto writeOut = [&](int si) {
    Slot& s = slots[si];
    uint64_t runA = 0, runB = 0;
    bool have = false;
    for (const auto& part : s.parts) {
      uint64_t a = part.first, b = part.first + part.second;
      if (have && a >= runB && a - runB <= o.writeGap && !gapHasZeroBlock(s, runB, a)) {
        runB = b;
        continue;
      }
      if (have) writePart(si, runA, runB);
      runA = a;
      runB = b;
      have = true;
    }
    if (have) writePart(si, runA, runB);
  };
  writePart = [&](int si, uint64_t pbeg, uint64_t end) {
    Slot& s = slots[si];
    uint64_t runStart = pbeg, cur = pbeg;
    bool runZero = false;
    auto emit = [&](uint64_t a, uint64_t b, bool zero) {
      if (b <= a) return;
      if (zero) {
        zeroOut(si, a, b);
      } else {
        j->bytesWritten += b - a;
        if (s.object >= 0) return objectWrite(si, a, b);
        writeFromSlot(si, kWrite, a, b - a);
      }
    };
    while (cur < end) {
      uint64_t bend = std::min(end, (cur / kBlock + 1) * kBlock);
      bool z = bend - cur == kBlock && IsZero(s.buf.data() + (cur - s.off));
      if (cur == pbeg) {
        runZero = z;
      } else if (z != runZero) {
        emit(runStart, cur, runZero);
        runStart = cur;
        runZero = z;
      }
      cur = bend;
    }
    emit(runStart, end, runZero);
  };

  // The periodic checkpoint runs beside the copy, one at a time: an aio flush of what was written
  // when it started, then the record (aio). Waited for on this thread, each would drain the
  // pipeline: a far target's round trips with nothing in flight, every checkpointMs.
  enum { kCkIdle, kCkFlushing, kCkRecording } ck = kCkIdle;
  uint64_t ckDone = 0;
  std::unique_ptr<HeaderMetadataWrite> ckWrite;
  auto startCheckpoint = [&]() {
    if (CheckpointNotYet(j)) return;
    ckDone = j->doneOffset;  // every write below it has completed: the flush makes them durable
    ck = kCkFlushing;
    Submit(j, -1, kFlush, ckDone, [&](rbd_completion_t c) { return rbd_aio_flush(dst, c); });
  };
  auto recordCheckpoint = [&]() {
    ckWrite = std::make_unique<HeaderMetadataWrite>();
    int rc = RecordCheckpoint(j, ckDone, ckWrite.get(),
                              [](rados_completion_t, void* arg) { Push(static_cast<Job*>(arg), {-1, kRecord, 0}); });
    if (rc < 0) {
      ckWrite.reset();
      ck = kCkIdle;
      Fail(j, rc, OpName(kRecord), false, ckDone);
      return;
    }
    ck = kCkRecording;
  };
  auto lastProgress = Clock::now();
  auto lastCheckpoint = Clock::now();
  std::vector<Event> batch;
  std::vector<char> zeros;  // verify: the source side of never-written extents
  j->doneOffset = nextOffset();
  // Extents that share a read: within readGap, or within writeGap (a bridged gap's data is written).
  const uint64_t mergeGap = std::max(o.readGap, o.writeGap);
  for (;;) {
    bool stop = j->cancel || j->err || j->mismatch >= 0;
    throttled = std::chrono::microseconds(0);
    reapHeld();
    bool heldBlocks = false;
    if (objSize && !stop) issuePilots(nextOffset());
    while (!stop && !freeSlots.empty() && opsInFlight < o.concurrency && nextOffset() < o.size && ei < j->exts.size()) {
      const Ext& e = j->exts[ei];
      int si = freeSlots.back();
      Slot& s = slots[si];
      const size_t ei0 = ei;
      const uint64_t epos0 = epos;
      uint64_t eend = e.off + e.len;
      uint64_t cend = std::min(eend, (epos / o.chunk + 1) * o.chunk);
      s.off = epos;
      s.exists = e.exists;
      s.extentsEnded = cend == eend ? 1 : 0;
      s.parts.clear();
      s.parts.push_back({epos, cend - epos});
      epos = cend;
      // Following small data extents close by join this read (one op instead of one each).
      uint64_t spanEnd = cend;
      if (s.exists && cend == eend && mergeGap > 0) {
        for (;;) {
          normalize();  // may move epos forward to the next extent's start
          if (ei >= j->exts.size()) break;
          const Ext& nx = j->exts[ei];
          if (!nx.exists || nx.off < spanEnd || nx.off - spanEnd > mergeGap || nx.off + nx.len - s.off > o.chunk) break;
          s.parts.push_back({nx.off, nx.len});
          s.extentsEnded++;
          spanEnd = epos = nx.off + nx.len;
        }
      }
      s.len = spanEnd - s.off;
      // Over the byte bound (one chunk always goes, so buffers librbd never lets go of cannot stall
      // the copy) or the bandwidth: put it back and wait.
      bool overBytes = inflight > 0 && bytesInFlight + bytesHeld + slotBytes(s) > o.inflightBytes;
      if (!overBytes && throttle.rate > 0 && (o.verify || s.exists)) throttled = throttle.Wait(s.len);
      if (overBytes || throttled.count() > 0) {
        heldBlocks = overBytes && bytesHeld > 0;
        ei = ei0;
        epos = epos0;
        break;
      }
      freeSlots.pop_back();
      issue(si);
    }
    if (inflight == 0 && ck == kCkIdle && pilotsInFlight() == 0 && (stop || nextOffset() >= o.size || ei >= j->exts.size())) break;
    {
      std::unique_lock<std::mutex> lk(j->mu);
      auto wait = std::chrono::microseconds(50000);
      if (throttled.count() > 0) wait = std::min(wait, throttled);
      // No event says librbd let go of a buffer: look again soon.
      if (heldBlocks) wait = std::min(wait, std::chrono::microseconds(1000));
      if (j->events.empty()) j->cv.wait_for(lk, wait, [&] { return !j->events.empty() || j->cancel; });
      batch.swap(j->events);
    }
    for (const Event& ev : batch) {
      if (ev.kind == kPilotRead || ev.kind == kPilotWrite) {
        pilotDone(ev);
        continue;
      }
      if (ev.kind == kFlush) {
        if (ev.rc < 0) {
          ck = kCkIdle;
          Fail(j, int(ev.rc), OpName(kFlush), false, ckDone);
        } else {
          recordCheckpoint();
        }
        continue;
      }
      if (ev.kind == kObjectWrite) {
        objectOpDone(ev.slot, ev.rc);
        continue;
      }
      if (ev.kind == kQuiesce) {
        quiesced = true;
        quiescesOwed++;
        continue;
      }
      if (ev.kind == kUnquiesce) {
        // (an unquiesce without our quiesce, e.g. of a watch just opened, changes nothing but this)
        quiesced = false;
        objectWriter->SnapContextChanged();
        for (const auto& kv : objects) {
          if (!kv.second.queue.empty()) touchedObjects.push_back(kv.first);
        }
        continue;
      }
      if (ev.kind == kRecord) {
        int rc = ckWrite->Wait();
        ckWrite.reset();
        ck = kCkIdle;
        if (rc < 0) Fail(j, rc, OpName(kRecord), false, ckDone);
        continue;
      }
      Slot& s = slots[ev.slot];
      s.pending--;
      opsInFlight--;
      if (ev.rc >= 0 && ev.kind == kSrcRead) s.buf.Settle();
      if (ev.kind == kSrcRead && s.object >= 0) {
        objects[uint64_t(s.object)].reads--;
        touchedObjects.push_back(uint64_t(s.object));
      }
      if (ev.kind == kFirstWrite) firstWriteDone(ev.slot, ev.rc);
      if (ev.rc < 0) {
        if (ev.kind == kSrcRead && !o.verify) throttle.reserved -= s.len;
        s.failed = true;
        Fail(j, int(ev.rc), OpName(ev.kind), ev.kind == kSrcRead, s.off);
      } else if (ev.kind == kSrcRead && !o.verify) {
        j->bytesRead += s.len;
        throttle.reserved -= s.len;
        uint64_t before = j->bytesWritten;
        if (!s.failed && !j->err) writeOut(ev.slot);
        throttle.sent += j->bytesWritten - before;
      } else if (ev.kind == kSrcRead || ev.kind == kDstRead) {
        j->bytesRead += s.len;
      }
      if (s.pending == 0) {
        if (o.verify && !s.failed) {
          const char* a = s.exists ? s.buf.data() : nullptr;
          const char* b = s.buf2.data();
          XXH64_hash_t hb = XXH3_64bits(b, s.len);
          XXH64_hash_t ha = 0;
          if (a) {
            ha = XXH3_64bits(a, s.len);
          } else {
            if (zeros.size() < s.len) zeros.assign(o.chunk, 0);
            ha = XXH3_64bits(zeros.data(), s.len);
          }
          if (ha != hb) {
            uint64_t k = 0;
            while (k < s.len && (a ? a[k] : 0) == b[k]) k++;
            int64_t at = int64_t(s.off + k);
            if (j->mismatch < 0 || at < j->mismatch) j->mismatch = at;
          }
        }
        finishSlot(ev.slot);
      }
    }
    batch.clear();
    flushObjects();
    for (; quiescesOwed > 0 && objectOps.empty(); quiescesOwed--) rbd_quiesce_complete(dst, quiesceHandle, 0);
    auto now = Clock::now();
    if (now - lastProgress >= std::chrono::milliseconds(100)) {
      lastProgress = now;
      EmitProgress(j);
    }
    if (!o.verify && !o.checkpointPrefix.empty() && ck == kCkIdle && !j->err &&
        now - lastCheckpoint >= std::chrono::milliseconds(o.checkpointMs)) {
      startCheckpoint();
      lastCheckpoint = now;
    }
  }
  j->aborted = j->cancel && !j->err;
  updateWatermark();
  if (objectWriter) {
    // No object op is in flight now. Quiesces not yet completed (owed, or still queued as events)
    // are completed here, later ones by OnQuiesce; then the watch goes (waiting out a snapshot
    // under way: its unquiesce).
    {
      std::lock_guard<std::mutex> lk(j->mu);
      j->quiesceOpen = false;
      for (const Event& ev : j->events) quiescesOwed += ev.kind == kQuiesce;
    }
    for (; quiescesOwed > 0; quiescesOwed--) rbd_quiesce_complete(dst, quiesceHandle, 0);
    rbd_quiesce_unwatch(dst, quiesceHandle);
  }
}

}  // namespace

void Run(Job* j) {
  OpContext ctx = OpContext::For("replicate", j->src.get());
  auto t0 = Clock::now();
  int rc = Enumerate(j, &ctx);
  auto t1 = Clock::now();
  j->enumerateMs = std::chrono::duration<double, std::milli>(t1 - t0).count();
  if (rc < 0) {
    j->err = rc;
    j->errCtx = ctx;
  } else if (j->cancel) {
    j->aborted = true;
    j->doneOffset = j->o.startOffset;
  } else {
    Pipeline(j);
    EmitProgress(j);
  }
  j->copyMs = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  // Interrupted copy: leave a durable checkpoint so a re-run resumes here. Not after a
  // target failure: the flush and metadata write would each wait out the op timeout on
  // an unreachable target, delaying the error; the last periodic checkpoint stays valid.
  if (!j->o.verify && (j->aborted || (j->err && !j->errOnTarget))) WriteCheckpoint(j);
}

}  // namespace copy
}  // namespace rbdstream
