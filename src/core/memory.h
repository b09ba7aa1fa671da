// Giving freed heap memory back to the system.
#pragma once

namespace snug {

// glibc keeps what a thread frees in that thread's arena for reuse, and never trims the top of a
// non-main arena once large frees have raised its thresholds. A server that loads a model on one
// thread and frees it on another then keeps every freed model in some arena: measured +62 MiB RSS
// per unload/load cycle of a 64 MiB-planned model (issue 15). malloc_trim(0) returns the free
// pages of every arena. Call it after large frees (a model, a multi-MiB request body).
void ReturnFreedMemoryToSystem();

// For long-running processes (snug serve): allocations of 1 MiB and more are mapped on their own
// and unmapped when freed, instead of glibc raising its thresholds after the first such free and
// keeping later ones in an arena's top, which malloc_trim cannot return. Measured: a refused
// chunked upload left +23 MiB without this, +0 with it. Smaller blocks are unaffected.
void ReturnLargeFreesAtOnce();

}  // namespace snug
