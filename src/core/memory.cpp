#include "core/memory.h"

#include <malloc.h>

namespace snug {

void ReturnFreedMemoryToSystem() {
  malloc_trim(0);
}

void ReturnLargeFreesAtOnce() {
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

}  // namespace snug
