/* LD_PRELOAD shim for the SurroundOcc label generator's run on a machine with fewer than 8 CPUs.
 *
 * The generator calls open3d's TriangleMesh.create_from_point_cloud_poisson(..., n_threads=8) (8 is
 * written in the script). open3d's PoissonRecon (0.18, 0.19 and 0.20 alike) crashes with a
 * segmentation fault when n_threads exceeds the CPUs the process sees ("elements bigger than
 * block-size: 8 > 1", Allocator.h: its per-thread allocators are sized by the CPU count). This shim
 * makes get_nprocs / get_nprocs_conf / sysconf(_SC_NPROCESSORS_*) report $SHIM_NPROCS (default 8)
 * CPUs, so the 8 threads get their allocators; the threads still share the real cores.
 * Built by run_generator.sh: cc -shared -fPIC -O2 -o libnprocs.so nprocs_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static int nprocs(void) {
  const char *s = getenv("SHIM_NPROCS");
  int n = s ? atoi(s) : 0;
  return n > 0 ? n : 8;
}

int get_nprocs(void) { return nprocs(); }
int get_nprocs_conf(void) { return nprocs(); }

long sysconf(int name) {
  static long (*real)(int) = 0;
  if (!real) real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
  if (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF) return nprocs();
  return real(name);
}
