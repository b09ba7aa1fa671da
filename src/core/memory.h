// Giving freed heap memory back to the system.
#pragma once

namespace snug {

// glibc keeps what a thread frees in that thread's arena for reuse, and never trims the top of a
// non-main arena once large frees have raised its thresholds. A server that loads a model on one
// thread and frees it on another then keeps every freed model in some arena: measured +62 MiB RSS
// per unload/load cycle of a 64 MiB-planned model (issue 15). malloc_trim(0) returns the free
// pages of every arena. Call it after large frees (a model, a multi-MiB request body).
void ReturnFreedMemoryToSystem();

// For long-running processes (snug serve): allocations of 4 MiB and more are mapped on their own
// and unmapped when freed, and arenas are trimmed past 128 KiB free at their top, instead of glibc
// raising both thresholds after the first large free and keeping what later frees leave (which
// malloc_trim cannot return from a thread arena's top). Measured: a refused chunked upload left
// +23 MiB without this, +0 with it. Not lower than 4 MiB: llama.cpp's grammar sampler copies the
// candidate list (12 B x vocabulary: 1.5 MiB for 128k tokens, 3 MiB for 256k) several times per
// token, and mapping each copy made 32 grammar-bound requests take over 4x as long.
void ReturnLargeFreesAtOnce();

}  // namespace snug
