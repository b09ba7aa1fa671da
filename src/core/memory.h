// Giving freed heap memory back to the system.
#pragma once

namespace snug {

// glibc keeps what a thread frees in that thread's arena for reuse, and never trims the top of a
// non-main arena once large frees have raised its thresholds. A server that loads a model on one
// thread and frees it on another then keeps every freed model in some arena: measured +62 MiB RSS
// per unload/load cycle of a 64 MiB-planned model (issue 15). malloc_trim(0) returns the free
// pages of every arena. Call it after large frees (a model, a multi-MiB request body). The server
// also loads and frees every model on one thread (server::ModelPool's loader), so those
// allocations stay in one arena: 0.8 -> 0.2 MiB per cycle.
void ReturnFreedMemoryToSystem();

// For `snug serve`, before any thread starts: one heap arena for the whole process, so what one
// thread frees is reused by all (unload/load cycles: 0.2 MiB each -> flat, 28 -> 32 MiB over 95
// cycles). One arena alone looked ~3% slower on grammar-bound decoding (2 runs), so the mmap
// threshold is held at glibc's own dynamic ceiling (32 MiB: the sampler's multi-MiB temporaries
// stay on the heap, as they do by default once the threshold has adapted) and the heap is trimmed
// only when snug asks (ReturnFreedMemoryToSystem after unloads and large bodies). Measured within
// the noise of the default (bench/results/heap-settings.md).
// With these settings refused 100 MiB uploads leave RSS where it was (it grew 23 MiB once with
// glibc's defaults). Not done: low mmap thresholds (1-4 MiB, tried earlier), which cost 15% of
// grammar-bound decoding (llama.cpp's grammar sampler allocates multi-MiB copies per token).
void ConfigureHeapForServer();

}  // namespace snug
