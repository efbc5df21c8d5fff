// How librbd hands aio completions to the thread that consumes them: the two ways the issue names,
// measured without Node in the way. 4 KiB random reads at a fixed queue depth; one consumer thread
// (standing in for the JS thread) resubmits as completions arrive.
//
//   callback  rbd_aio_create_completion(arg, cb): librbd runs cb on one of its threads (for C API
//             completions it first queues the call to its op work queue), cb pushes the completion
//             to a mutex-protected queue and wakes the consumer (what the thread-safe function does).
//   poll      rbd_set_image_notification(eventfd) and completions without a callback: librbd writes
//             the eventfd from the completing thread; the consumer poll()s it and collects with
//             rbd_poll_io_events (what a libuv poll handle would do).
//
// Prints one JSON line: IOPS and CPU µs per op of the whole process and of each thread group.
// Build: g++ -O2 -o completion-modes completion-modes.cc -lrbd -lrados -lpthread
// Run:   completion-modes <conf> <keyring> <pool> <image> <callback|poll> <ops> <queue depth>
#include <dirent.h>
#include <poll.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Slot {
  char buf[4096];
};

std::mutex qlock;
std::condition_variable qcond;
std::deque<rbd_completion_t> ready;

void OnComplete(rbd_completion_t c, void*) {
  {
    std::lock_guard<std::mutex> l(qlock);
    ready.push_back(c);
  }
  qcond.notify_one();
}

// CPU seconds per thread name (digits stripped), from /proc/self/task/*/stat.
std::map<std::string, double> ThreadCpu() {
  std::map<std::string, double> m;
  long tck = sysconf(_SC_CLK_TCK);
  DIR* d = opendir("/proc/self/task");
  if (!d) return m;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t a = s.find('('), b = s.rfind(')');
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string comm = s.substr(a + 1, b - a - 1);
    while (!comm.empty() && (isdigit(comm.back()) || comm.back() == '-')) comm.pop_back();
    std::istringstream rest(s.substr(b + 2));
    std::string tok;
    double ut = 0, st = 0;
    for (int i = 0; i < 13 && rest >> tok; i++) {
      if (i == 11) ut = atof(tok.c_str());
      if (i == 12) st = atof(tok.c_str());
    }
    m[comm] += (ut + st) / tck;
  }
  closedir(d);
  return m;
}

int Die(const char* what, int rc) {
  fprintf(stderr, "%s: %s\n", what, strerror(-rc));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s <conf> <keyring> <pool> <image> <callback|poll> <ops> <qd>\n", argv[0]);
    return 2;
  }
  const bool poll_mode = strcmp(argv[5], "poll") == 0;
  const long ops = atol(argv[6]);
  const int qd = atoi(argv[7]);

  rados_t cluster;
  int rc = rados_create2(&cluster, "ceph", "client.admin", 0);
  if (rc < 0) return Die("rados_create2", rc);
  if ((rc = rados_conf_read_file(cluster, argv[1])) < 0) return Die("conf", rc);
  rados_conf_set(cluster, "keyring", argv[2]);
  if ((rc = rados_connect(cluster)) < 0) return Die("connect", rc);
  rados_ioctx_t io;
  if ((rc = rados_ioctx_create(cluster, argv[3], &io)) < 0) return Die("ioctx", rc);
  rbd_image_t image;
  if ((rc = rbd_open_read_only(io, argv[4], &image, nullptr)) < 0) return Die("open", rc);
  uint64_t size = 0;
  rbd_get_size(image, &size);
  const uint64_t blocks = size / 4096;

  int efd = -1;
  if (poll_mode) {
    efd = eventfd(0, EFD_NONBLOCK);
    if ((rc = rbd_set_image_notification(image, efd, EVENT_TYPE_EVENTFD)) < 0) return Die("notification", rc);
  }

  std::vector<Slot> slots(qd);
  std::mt19937_64 rng(42);
  long submitted = 0, completed = 0;
  auto submit = [&](int slot) {
    rbd_completion_t c;
    rbd_aio_create_completion(reinterpret_cast<void*>(static_cast<intptr_t>(slot)), poll_mode ? nullptr : OnComplete, &c);
    uint64_t off = (rng() % blocks) * 4096;
    int r = rbd_aio_read2(image, off, 4096, slots[slot].buf, c, 0);
    if (r < 0) {
      fprintf(stderr, "read: %s\n", strerror(-r));
      exit(1);
    }
    submitted++;
  };
  auto finish = [&](rbd_completion_t c) {
    ssize_t r = rbd_aio_get_return_value(c);
    int slot = static_cast<int>(reinterpret_cast<intptr_t>(rbd_aio_get_arg(c)));
    rbd_aio_release(c);
    if (r != 4096) {
      fprintf(stderr, "read returned %zd\n", r);
      exit(1);
    }
    completed++;
    if (submitted < ops) submit(slot);
  };

  auto cpu0 = ThreadCpu();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < qd && submitted < ops; i++) submit(i);
  std::vector<rbd_completion_t> batch(qd);
  while (completed < ops) {
    if (poll_mode) {
      pollfd p{efd, POLLIN, 0};
      ::poll(&p, 1, -1);
      uint64_t v;
      if (read(efd, &v, sizeof v) < 0 && errno != EAGAIN) return Die("eventfd read", -errno);
      for (;;) {
        int n = rbd_poll_io_events(image, batch.data(), qd);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) finish(batch[i]);
      }
    } else {
      std::deque<rbd_completion_t> got;
      {
        std::unique_lock<std::mutex> l(qlock);
        qcond.wait(l, [] { return !ready.empty(); });
        got.swap(ready);
      }
      for (auto c : got) finish(c);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto cpu1 = ThreadCpu();

  double total = 0;
  std::string per;
  for (auto& [k, v] : cpu1) {
    double d = v - cpu0[k];
    total += d;
    if (d <= 0) continue;
    char b[128];
    snprintf(b, sizeof b, "%s\"%s\":%.1f", per.empty() ? "" : ",", k.c_str(), d * 1e6 / ops);
    per += b;
  }
  printf("{\"mode\":\"%s\",\"ops\":%ld,\"qd\":%d,\"iops\":%.0f,\"cpuUsPerOp\":%.1f,\"threadsUsPerOp\":{%s}}\n",
         poll_mode ? "poll" : "callback", ops, qd, ops / secs, total * 1e6 / ops, per.c_str());

  rbd_close(image);
  if (efd >= 0) close(efd);
  rados_ioctx_destroy(io);
  rados_shutdown(cluster);
  return 0;
}
