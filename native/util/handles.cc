// Handle lifetimes: destruction order, off-thread release, teardown.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>

#include "common.h"

namespace rbdstream {

// Connections not yet shut down: their librados (messenger, timer) and librbd threads may be running.
static std::atomic<int> g_live_clusters{0};

Cluster::Cluster() { g_live_clusters.fetch_add(1); }
Cluster::~Cluster() {
  if (rados) rados_shutdown(rados);
  g_live_clusters.fetch_sub(1);
}

// exit() runs the static destructors of libceph-common (its option table, ...) while the threads of a
// connection that was never shut down keep using them: process.exit() skips Node's environment teardown,
// which would have closed it. On Tentacle a messenger thread then died in ceph::buffer code (SIGSEGV in
// about 1 exit in 9). This handler is registered after the first connection (so after libceph-common's
// and its plugins' destructors, and runs before them: exit handlers run in reverse order). With a
// connection still live, it ends the process there with exit()'s status; the handlers registered
// before it (those destructors, and Node's own, e.g. its stdio reset) do not run.
static void ExitWithLiveClusters(int status, void*) {
  if (g_live_clusters.load() == 0) return;  // all shut down: a normal exit is safe
  fflush(nullptr);
  _exit(status);
}

void ArmExitGuard() {
#ifdef __GLIBC__
  static std::once_flag once;
  std::call_once(once, [] { on_exit(ExitWithLiveClusters, nullptr); });
#endif
}
IoCtx::~IoCtx() {
  if (io) rados_ioctx_destroy(io);
}
Image::~Image() {
  if (image) rbd_close(image);
}

uint64_t UnsentRecords::Add() {
  std::lock_guard<std::mutex> lk(mu);
  unsent.insert(++last);
  return last;
}
uint64_t UnsentRecords::Last() {
  std::lock_guard<std::mutex> lk(mu);
  return last;
}
void UnsentRecords::Sent(uint64_t ticket) {
  std::lock_guard<std::mutex> lk(mu);
  unsent.erase(ticket);
  cv.notify_all();
}
// Never waits long: the sends waited for were queued on the libuv pool before this op (FIFO), so
// they run first, and each only hands its op to librados.
void UnsentRecords::WaitSent(uint64_t upTo) {
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [this, upTo] { return unsent.empty() || *unsent.begin() > upTo; });
}

static const napi_type_tag kClusterTag = {0x7264622d73747265ULL, 0x616d2d636c757374ULL};
static const napi_type_tag kIoCtxTag = {0x7264622d73747265ULL, 0x616d2d696f637478ULL};
static const napi_type_tag kImageTag = {0x7264622d73747265ULL, 0x616d2d696d616765ULL};
const napi_type_tag* TagFor(const Cluster*) { return &kClusterTag; }
const napi_type_tag* TagFor(const IoCtx*) { return &kIoCtxTag; }
const napi_type_tag* TagFor(const Image*) { return &kImageTag; }

// Count of releases still running, so process exit can wait for them rather
// than tear librados down under a thread that is using it.
static std::mutex g_release_mu;
static std::condition_variable g_release_cv;
static int g_releases = 0;

void ReleaseInBackground(std::shared_ptr<void> handle) {
  {
    std::lock_guard<std::mutex> lk(g_release_mu);
    ++g_releases;
  }
  std::thread([h = std::move(handle)]() mutable {
    h.reset();
    std::lock_guard<std::mutex> lk(g_release_mu);
    if (--g_releases == 0) g_release_cv.notify_all();
  }).detach();
}

void WaitForReleases() {
  std::unique_lock<std::mutex> lk(g_release_mu);
  g_release_cv.wait_for(lk, std::chrono::seconds(10), [] { return g_releases == 0; });
}

}  // namespace rbdstream
