// Handle lifetimes: destruction order, off-thread release, teardown.
#include <chrono>
#include <condition_variable>
#include <thread>

#include "common.h"

namespace rbdstream {

Cluster::~Cluster() {
  if (rados) rados_shutdown(rados);
}
IoCtx::~IoCtx() {
  if (io) rados_ioctx_destroy(io);
}
Image::~Image() {
  if (image) rbd_close(image);
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
