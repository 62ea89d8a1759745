/*
 * rbd_loop: the floor the benchmarks compare against. The same snapshot, image and read loops the
 * Node benchmarks run, calling librbd directly from one process (one rados connection, one pool
 * context, one thread per concurrent worker), and printing every operation's latency as JSON.
 *
 * Built and run by bench/run.ts:
 *   cc -O2 -o bench/results/rbd_loop bench/rbd_loop.c -lrbd -lrados -lpthread
 *
 *   rbd_loop --conf PATH [--id admin] --pool POOL --mode snap|image|read
 *            [--workers N] [--count K] [--prefix NAME] [--size BYTES] [--features MASK]
 *            [--remove rbd_remove|trash] [--keep-open] [--pause-ms MS]
 *   rbd_loop --conf PATH [--id admin] --pool POOL --mode serve [--size BYTES] [--features MASK]
 *   rbd_loop --version      prints {"librbd":"MAJOR.MINOR.EXTRA"}
 *
 * --mode snap   worker w uses the existing image PREFIX-w: phase snap_create makes K snapshots on
 *               it, phase snap_remove removes them. Each operation opens the image, does the call and
 *               closes it (what a stateless API call costs); --keep-open opens once per worker.
 * --mode image  worker w creates K images PREFIX-w-i (phase image_create, rbd_create4, thin), then
 *               removes them (phase image_remove: rbd_remove, or with --remove trash rbd_trash_move
 *               as the user-visible step and rbd_trash_remove as a separate phase trash_purge).
 * --mode read   worker w reads the existing image PREFIX-w: phase image_info (open read-only, stat,
 *               features, parent, snapshot count, close: what `rbd info` shows) and phase
 *               image_list (rbd_list2 of the pool, with room for 64 names on the first call).
 * --mode serve  one operation per line of stdin, answered on stdout once it is done, so that a
 *               driver can alternate them with its own (the benchmarks pair the addon's calls with
 *               these one by one, so both see the same machine load): "image_create NAME",
 *               "image_remove NAME", "snap_create IMAGE SNAP", "snap_remove IMAGE SNAP" (open,
 *               call, close, as --mode snap does). Prints "ready" once connected; each answer is
 *               "ok MS" (the call's wall time in ms) or "err CALL ERRNO".
 * --pause-ms    sleep before each phase while every worker waits at the start line (not timed):
 *               on a cluster with a long paxos interval this gives every phase, and every program
 *               compared, the same monitor state to start from (no commit in the last MS ms).
 *
 * Output (stdout): {"librbd":"1.16.0","connect_ms":..,"phases":[{"op":..,"workers":N,"ops":..,
 * "wall_ms":..,"lat_ms":[..]}]}. Errors go to stderr with the call that failed; exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORKERS 256
#define MAX_PHASES 4

enum mode { MODE_SNAP, MODE_IMAGE, MODE_READ, MODE_SERVE };

struct options {
  const char *conf;
  const char *id;
  const char *pool;
  const char *prefix;
  enum mode mode;
  int workers;
  int count;
  uint64_t size;
  uint64_t features;
  bool trash;
  bool keep_open;
  int pause_ms;
};

struct phase {
  const char *op;
  double wall_ms;
  double *lat_ms; /* workers * count, worker-major */
};

struct worker {
  int index;
  pthread_t thread;
};

static struct options opt = {
    .id = "admin",
    .prefix = "bench",
    .workers = 1,
    .count = 10,
    .size = 10ULL << 30,
    /* layering + exclusive-lock: what krbd of any age maps; the plugin's default. */
    .features = RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK,
};
static rados_t cluster;
static rados_ioctx_t ioctx;
static pthread_barrier_t barrier;
static struct phase phases[MAX_PHASES];
static int nphases;
/* Trash ids of removed images, for the trash_purge phase. */
static char **trash_ids;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void fail(const char *call, const char *what, int r) {
  fprintf(stderr, "rbd_loop: %s %s: %s (%d)\n", call, what ? what : "", strerror(-r), r);
  exit(1);
}

static void check(int r, const char *call, const char *what) {
  if (r < 0) fail(call, what, r);
}

static void usage(void) {
  fprintf(stderr,
          "usage: rbd_loop --conf PATH --pool POOL --mode snap|image|read [--id ID] [--workers N]\n"
          "                [--count K] [--prefix NAME] [--size BYTES] [--features MASK]\n"
          "                [--remove rbd_remove|trash] [--keep-open] [--pause-ms MS]\n"
          "       rbd_loop --conf PATH --pool POOL --mode serve [--size BYTES] [--features MASK]\n");
  exit(2);
}

static void parse(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--keep-open")) {
      opt.keep_open = true;
      continue;
    }
    if (!v) usage();
    i++;
    if (!strcmp(a, "--conf")) opt.conf = v;
    else if (!strcmp(a, "--id")) opt.id = v;
    else if (!strcmp(a, "--pool")) opt.pool = v;
    else if (!strcmp(a, "--prefix")) opt.prefix = v;
    else if (!strcmp(a, "--workers")) opt.workers = atoi(v);
    else if (!strcmp(a, "--count")) opt.count = atoi(v);
    else if (!strcmp(a, "--size")) opt.size = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--features")) opt.features = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--pause-ms")) opt.pause_ms = atoi(v);
    else if (!strcmp(a, "--remove")) {
      if (!strcmp(v, "trash")) opt.trash = true;
      else if (strcmp(v, "rbd_remove")) usage();
    } else if (!strcmp(a, "--mode")) {
      if (!strcmp(v, "snap")) opt.mode = MODE_SNAP;
      else if (!strcmp(v, "image")) opt.mode = MODE_IMAGE;
      else if (!strcmp(v, "read")) opt.mode = MODE_READ;
      else if (!strcmp(v, "serve")) opt.mode = MODE_SERVE;
      else usage();
    } else usage();
  }
  if (!opt.conf || !opt.pool || opt.workers < 1 || opt.workers > MAX_WORKERS || opt.count < 1) usage();
}

static void add_phase(const char *op) {
  struct phase *p = &phases[nphases++];
  p->op = op;
  p->lat_ms = calloc((size_t)opt.workers * opt.count, sizeof(double));
  if (!p->lat_ms) fail("calloc", NULL, -ENOMEM);
}

/* Every worker and the main thread meet here between phases; the main thread times each phase. */
static void sync_phase(void) { pthread_barrier_wait(&barrier); }

static void record(int phase, int w, int i, double started) {
  phases[phase].lat_ms[(size_t)w * opt.count + i] = now_ms() - started;
}

static void snap_name(char *buf, size_t len, int w, int i) { snprintf(buf, len, "%s-snap-%d-%d", opt.prefix, w, i); }

static void *snap_worker(int w) {
  char image_name[256], snap[256];
  snprintf(image_name, sizeof image_name, "%s-%d", opt.prefix, w);
  rbd_image_t image = NULL;
  if (opt.keep_open) check(rbd_open(ioctx, image_name, &image, NULL), "rbd_open", image_name);
  for (int ph = 0; ph < 2; ph++) {
    sync_phase();
    for (int i = 0; i < opt.count; i++) {
      snap_name(snap, sizeof snap, w, i);
      double t = now_ms();
      if (!opt.keep_open) check(rbd_open(ioctx, image_name, &image, NULL), "rbd_open", image_name);
      if (ph == 0) check(rbd_snap_create(image, snap), "rbd_snap_create", snap);
      else check(rbd_snap_remove(image, snap), "rbd_snap_remove", snap);
      if (!opt.keep_open) {
        check(rbd_close(image), "rbd_close", image_name);
        image = NULL;
      }
      record(ph, w, i, t);
    }
    sync_phase();
  }
  if (image) check(rbd_close(image), "rbd_close", image_name);
  return NULL;
}

/* One image_create as the image mode does it; returns rbd_create4's result. */
static int create_image(const char *name) {
  rbd_image_options_t o;
  rbd_image_options_create(&o);
  check(rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_FEATURES, opt.features), "rbd_image_options_set_uint64", "features");
  check(rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_ORDER, 22), "rbd_image_options_set_uint64", "order");
  int r = rbd_create4(ioctx, name, opt.size, o);
  rbd_image_options_destroy(o);
  return r;
}

static void *image_worker(int w) {
  char name[256];
  int nph = opt.trash ? 3 : 2;
  for (int ph = 0; ph < nph; ph++) {
    sync_phase();
    for (int i = 0; i < opt.count; i++) {
      snprintf(name, sizeof name, "%s-%d-%d", opt.prefix, w, i);
      double t = now_ms();
      if (ph == 0) {
        check(create_image(name), "rbd_create4", name);
      } else if (ph == 1 && !opt.trash) {
        check(rbd_remove(ioctx, name), "rbd_remove", name);
      } else if (ph == 1) {
        /* The image id is what trash_remove takes: read it while the name still resolves. */
        rbd_image_t image;
        char id[64];
        check(rbd_open_read_only(ioctx, name, &image, NULL), "rbd_open_read_only", name);
        check(rbd_get_id(image, id, sizeof id), "rbd_get_id", name);
        check(rbd_close(image), "rbd_close", name);
        t = now_ms(); /* the id lookup is bookkeeping of this program, not part of the user-visible remove */
        check(rbd_trash_move(ioctx, name, 0), "rbd_trash_move", name);
        trash_ids[(size_t)w * opt.count + i] = strdup(id);
      } else {
        check(rbd_trash_remove(ioctx, trash_ids[(size_t)w * opt.count + i], true), "rbd_trash_remove", name);
      }
      record(ph, w, i, t);
    }
    sync_phase();
  }
  return NULL;
}

static void *read_worker(int w) {
  char image_name[256];
  snprintf(image_name, sizeof image_name, "%s-%d", opt.prefix, w);
  for (int ph = 0; ph < 2; ph++) {
    sync_phase();
    for (int i = 0; i < opt.count; i++) {
      double t = now_ms();
      if (ph == 0) {
        rbd_image_t image;
        rbd_image_info_t info;
        uint64_t features;
        int max = 0;
        check(rbd_open_read_only(ioctx, image_name, &image, NULL), "rbd_open_read_only", image_name);
        check(rbd_stat(image, &info, sizeof info), "rbd_stat", image_name);
        check(rbd_get_features(image, &features), "rbd_get_features", image_name);
        rbd_linked_image_spec_t parent;
        rbd_snap_spec_t parent_snap;
        int pr = rbd_get_parent(image, &parent, &parent_snap);
        if (pr == 0) {
          rbd_linked_image_spec_cleanup(&parent);
          rbd_snap_spec_cleanup(&parent_snap);
        } else if (pr != -ENOENT) {
          fail("rbd_get_parent", image_name, pr);
        }
        /* Size query first (ERANGE with max = 0), as a binding does to count snapshots. */
        int r = rbd_snap_list(image, NULL, &max);
        if (r < 0 && r != -ERANGE) fail("rbd_snap_list", image_name, r);
        check(rbd_close(image), "rbd_close", image_name);
      } else {
        size_t max = 64;
        rbd_image_spec_t *specs = NULL;
        int r;
        for (;;) {
          specs = realloc(specs, max * sizeof *specs);
          r = rbd_list2(ioctx, specs, &max);
          if (r != -ERANGE) break;
        }
        check(r, "rbd_list2", opt.pool);
        rbd_image_spec_list_cleanup(specs, max);
        free(specs);
      }
      record(ph, w, i, t);
    }
    sync_phase();
  }
  return NULL;
}

/* --mode serve: one operation per stdin line (see the top of this file). */
static void serve(void) {
  char line[1024], op[64], a[512], b[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  while (fgets(line, sizeof line, stdin)) {
    int n = sscanf(line, "%63s %511s %255s", op, a, b);
    if (n < 2) break;
    const char *call = op;
    int r;
    double t = now_ms();
    if (!strcmp(op, "image_create")) {
      call = "rbd_create4";
      r = create_image(a);
    } else if (!strcmp(op, "image_remove")) {
      call = "rbd_remove";
      r = rbd_remove(ioctx, a);
    } else if (n == 3 && (!strcmp(op, "snap_create") || !strcmp(op, "snap_remove"))) {
      rbd_image_t image;
      call = "rbd_open";
      r = rbd_open(ioctx, a, &image, NULL);
      if (r >= 0) {
        bool create = !strcmp(op, "snap_create");
        call = create ? "rbd_snap_create" : "rbd_snap_remove";
        r = create ? rbd_snap_create(image, b) : rbd_snap_remove(image, b);
        int c = rbd_close(image);
        if (r >= 0 && c < 0) {
          call = "rbd_close";
          r = c;
        }
      }
    } else {
      printf("err %s %d\n", op, -EINVAL);
      continue;
    }
    double ms = now_ms() - t;
    if (r < 0) printf("err %s %d\n", call, r);
    else printf("ok %.3f\n", ms);
  }
}

static void *worker_main(void *arg) {
  int w = ((struct worker *)arg)->index;
  switch (opt.mode) {
  case MODE_SNAP: return snap_worker(w);
  case MODE_IMAGE: return image_worker(w);
  case MODE_READ: return read_worker(w);
  case MODE_SERVE: break;
  }
  return NULL;
}

static void print_results(double connect_ms) {
  int major, minor, extra;
  rbd_version(&major, &minor, &extra);
  printf("{\"librbd\":\"%d.%d.%d\",\"connect_ms\":%.3f,\"workers\":%d,\"keep_open\":%s,\"phases\":[", major, minor, extra,
         connect_ms, opt.workers, opt.keep_open ? "true" : "false");
  for (int p = 0; p < nphases; p++) {
    printf("%s{\"op\":\"%s\",\"workers\":%d,\"ops\":%d,\"wall_ms\":%.3f,\"lat_ms\":[", p ? "," : "", phases[p].op, opt.workers,
           opt.workers * opt.count, phases[p].wall_ms);
    for (int i = 0; i < opt.workers * opt.count; i++) printf("%s%.3f", i ? "," : "", phases[p].lat_ms[i]);
    printf("]}");
  }
  printf("]}\n");
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--version")) {
    int major, minor, extra;
    rbd_version(&major, &minor, &extra);
    printf("{\"librbd\":\"%d.%d.%d\"}\n", major, minor, extra);
    return 0;
  }
  parse(argc, argv);
  double t = now_ms();
  check(rados_create(&cluster, opt.id), "rados_create", opt.id);
  check(rados_conf_read_file(cluster, opt.conf), "rados_conf_read_file", opt.conf);
  check(rados_connect(cluster), "rados_connect", opt.conf);
  check(rados_ioctx_create(cluster, opt.pool, &ioctx), "rados_ioctx_create", opt.pool);
  double connect_ms = now_ms() - t;

  if (opt.mode == MODE_SERVE) {
    serve();
    rados_ioctx_destroy(ioctx);
    rados_shutdown(cluster);
    return 0;
  }

  switch (opt.mode) {
  case MODE_SNAP:
    add_phase("snap_create");
    add_phase("snap_remove");
    break;
  case MODE_IMAGE:
    add_phase("image_create");
    add_phase("image_remove");
    if (opt.trash) {
      add_phase("trash_purge");
      trash_ids = calloc((size_t)opt.workers * opt.count, sizeof(char *));
    }
    break;
  case MODE_READ:
    add_phase("image_info");
    add_phase("image_list");
    break;
  case MODE_SERVE:
    break;
  }

  pthread_barrier_init(&barrier, NULL, (unsigned)opt.workers + 1);
  struct worker workers[MAX_WORKERS];
  for (int w = 0; w < opt.workers; w++) {
    workers[w].index = w;
    int r = pthread_create(&workers[w].thread, NULL, worker_main, &workers[w]);
    if (r) fail("pthread_create", NULL, -r);
  }
  for (int p = 0; p < nphases; p++) {
    if (opt.pause_ms > 0) {
      struct timespec pause = {opt.pause_ms / 1000, (long)(opt.pause_ms % 1000) * 1000000L};
      nanosleep(&pause, NULL);
    }
    sync_phase();
    double start = now_ms();
    sync_phase();
    phases[p].wall_ms = now_ms() - start;
  }
  for (int w = 0; w < opt.workers; w++) pthread_join(workers[w].thread, NULL);

  print_results(connect_ms);
  rados_ioctx_destroy(ioctx);
  rados_shutdown(cluster);
  return 0;
}
