#include "core/memory.h"

#include <malloc.h>

namespace snug {

void ReturnFreedMemoryToSystem() {
  malloc_trim(0);
}

}  // namespace snug
