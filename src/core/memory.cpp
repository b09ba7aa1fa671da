#include "core/memory.h"

#include <malloc.h>

namespace snug {

void ReturnFreedMemoryToSystem() {
  malloc_trim(0);
}

void ConfigureHeapForServer() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

}  // namespace snug
