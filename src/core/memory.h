// Giving freed heap memory back to the system.
#pragma once

namespace snug {

// glibc keeps what a thread frees in that thread's arena for reuse, and never trims the top of a
// non-main arena once large frees have raised its thresholds. A server that loads a model on one
// thread and frees it on another then keeps every freed model in some arena: measured +62 MiB RSS
// per unload/load cycle of a 64 MiB-planned model (issue 15). malloc_trim(0) returns the free
// pages of every arena. Call it after large frees (a model, a multi-MiB request body).
void ReturnFreedMemoryToSystem();

// The server also loads and frees every model on one thread (server::ModelPool's loader), so
// those allocations stay in one arena: 0.8 -> 0.2 MiB per cycle. One arena for the whole process
// (MALLOC_ARENA_MAX=1) makes it flat (measured 0.04 MiB per cycle); its cost to concurrent
// decoding is not measured yet, so it is not set.
//
// Not done: fixing glibc's mmap/trim thresholds (mallopt). It kept a refused 8 MiB upload's
// memory from staying in an arena (+23 MiB once), but cost 15% of grammar-bound decoding speed
// (llama.cpp's grammar sampler allocates multi-MiB candidate copies per token).

}  // namespace snug
