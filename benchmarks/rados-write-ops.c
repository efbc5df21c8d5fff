/*
 * How much one OSD op per extent costs against one op per object carrying all its extents: the
 * measurement behind docs/benchmarks.md's "what bounds small incrementals". librbd sends one write op
 * per extent (both rbd-stream and `rbd import-diff` go through it); RADOS takes several writes to one
 * object in one op, as librbd's deep copy (rbd-mirror's image sync) sends them.
 *
 *   cc -O2 -o /tmp/rados-write-ops benchmarks/rados-write-ops.c -lrados -lpthread
 *   /tmp/rados-write-ops CONF POOL create|single|multi|remove [OBJECTS=256] [EXTENTS=64] [INFLIGHT=4096]
 *
 * `create` writes OBJECTS objects of 4 MiB (rados-write-ops.NNNN); `single` writes EXTENTS distinct 4 KiB
 * extents into each with one op per extent, at most INFLIGHT ops at once; `multi` writes the same
 * extents with one op per object; `remove` deletes the objects. Prints one JSON line. Give it a conf
 * with the benchmark's delay injection (test/support/delay.ts) to put the OSD "far away".
 */
#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OBJECT_BYTES (4u << 20)
#define BLOCK 4096u
#define SLOTS (OBJECT_BYTES / BLOCK)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int inflight = 0, failed = 0;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void on_done(rados_completion_t c, void *arg) {
  (void)arg;
  int rc = rados_aio_get_return_value(c);
  rados_aio_release(c);
  pthread_mutex_lock(&mu);
  if (rc < 0) failed = rc;
  inflight--;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

static void wait_below(int limit) {
  pthread_mutex_lock(&mu);
  while (inflight >= limit) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s CONF POOL create|single|multi|remove [OBJECTS] [EXTENTS] [INFLIGHT]\n", argv[0]);
    return 2;
  }
  const char *mode = argv[3];
  int objects = argc > 4 ? atoi(argv[4]) : 256;
  int extents = argc > 5 ? atoi(argv[5]) : 64;
  int maxInflight = argc > 6 ? atoi(argv[6]) : 4096;
  if (objects <= 0 || extents <= 0 || extents > (int)SLOTS || maxInflight <= 0) {
    fprintf(stderr, "bad OBJECTS / EXTENTS (1..%u) / INFLIGHT\n", SLOTS);
    return 2;
  }
  rados_t cluster;
  rados_ioctx_t io;
  int rc = rados_create2(&cluster, "ceph", "client.admin", 0);
  if (rc == 0) rc = rados_conf_read_file(cluster, argv[1]);
  if (rc == 0) rc = rados_connect(cluster);
  if (rc == 0) rc = rados_ioctx_create(cluster, argv[2], &io);
  if (rc < 0) {
    fprintf(stderr, "connect: %s\n", strerror(-rc));
    return 1;
  }

  // The same EXTENTS distinct 4 KiB slots per object in both modes (fixed seed), sorted by offset.
  unsigned *offsets = malloc(sizeof(unsigned) * (size_t)objects * extents);
  char *used = malloc(SLOTS);
  srand(42);
  for (int o = 0; o < objects; o++) {
    memset(used, 0, SLOTS);
    for (int n = 0; n < extents;) {
      int s = rand() % SLOTS;
      if (!used[s]) used[s] = 1, n++;
    }
    for (unsigned s = 0, n = 0; s < SLOTS; s++)
      if (used[s]) offsets[(size_t)o * extents + n++] = s * BLOCK;
  }
  char block[BLOCK];
  memset(block, 0x5a, sizeof block);
  char oid[64];
  int ops = 0;
  double t0 = now();
  for (int o = 0; o < objects; o++) {
    snprintf(oid, sizeof oid, "rados-write-ops.%04d", o);
    if (!strcmp(mode, "create")) {
      char *data = malloc(OBJECT_BYTES);
      memset(data, 1, OBJECT_BYTES);
      rc = rados_write_full(io, oid, data, OBJECT_BYTES);
      free(data);
      ops++;
    } else if (!strcmp(mode, "remove")) {
      rc = rados_remove(io, oid);
      if (rc == -ENOENT) rc = 0;
      ops++;
    } else if (!strcmp(mode, "multi")) {
      wait_below(maxInflight);
      rados_completion_t c;
      rados_aio_create_completion2(NULL, on_done, &c);
      rados_write_op_t op = rados_create_write_op();
      for (int k = 0; k < extents; k++) rados_write_op_write(op, block, BLOCK, offsets[(size_t)o * extents + k]);
      pthread_mutex_lock(&mu);
      inflight++;
      pthread_mutex_unlock(&mu);
      rc = rados_aio_write_op_operate(op, io, c, oid, NULL, 0);
      rados_release_write_op(op);
      ops++;
    } else if (!strcmp(mode, "single")) {
      continue;  // below: interleaved across objects, as a diff's extents arrive
    } else {
      fprintf(stderr, "unknown mode %s\n", mode);
      return 2;
    }
    if (rc < 0) {
      fprintf(stderr, "%s %s: %s\n", mode, oid, strerror(-rc));
      return 1;
    }
  }
  if (!strcmp(mode, "single")) {
    for (int k = 0; k < extents; k++) {
      for (int o = 0; o < objects; o++) {
        snprintf(oid, sizeof oid, "rados-write-ops.%04d", o);
        wait_below(maxInflight);
        rados_completion_t c;
        rados_aio_create_completion2(NULL, on_done, &c);
        pthread_mutex_lock(&mu);
        inflight++;
        pthread_mutex_unlock(&mu);
        rc = rados_aio_write(io, oid, c, block, BLOCK, offsets[(size_t)o * extents + k]);
        if (rc < 0) {
          fprintf(stderr, "write %s: %s\n", oid, strerror(-rc));
          return 1;
        }
        ops++;
      }
    }
  }
  wait_below(1);
  double secs = now() - t0;
  printf("{\"mode\":\"%s\",\"objects\":%d,\"extents\":%d,\"ops\":%d,\"inflight\":%d,\"seconds\":%.3f,\"error\":%d}\n", mode,
         objects, !strcmp(mode, "single") || !strcmp(mode, "multi") ? objects * extents : 0, ops, maxInflight, secs,
         failed);
  free(offsets);
  free(used);
  rados_ioctx_destroy(io);
  rados_shutdown(cluster);
  return failed < 0 ? 1 : 0;
}
