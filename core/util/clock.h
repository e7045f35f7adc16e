/*
 * clock.h - the monotonic clock, in the units its callers count in.
 *
 * Inline: the readers and the engine read it in their loops, and a call
 * through the library would cost more than the vDSO read itself.
 * Monotonic time is immune to wall-clock steps; use it for every timeout,
 * deadline and duration.  sy_mono_coarse_ms is the kernel's tick-grained
 * clock (a few ms), cheaper still, for idle timeouts checked per read.
 */
#ifndef SY_CLOCK_H
#define SY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t sy_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t sy_mono_ns(void) { return sy_clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t sy_mono_us(void) { return sy_clock_ns(CLOCK_MONOTONIC) / 1000u; }
static inline uint64_t sy_mono_ms(void) { return sy_clock_ns(CLOCK_MONOTONIC) / 1000000u; }
/* Milliseconds with their fraction, for durations reported as such. */
static inline double sy_mono_ms_f(void) { return (double)sy_clock_ns(CLOCK_MONOTONIC) / 1e6; }
static inline uint64_t sy_mono_coarse_ms(void)
{
    return sy_clock_ns(CLOCK_MONOTONIC_COARSE) / 1000000u;
}
/* CPU time of the calling thread: a pause's wall time less this is time
 * the scheduler gave to other threads or processes. */
static inline uint64_t sy_thread_cpu_us(void)
{
    return sy_clock_ns(CLOCK_THREAD_CPUTIME_ID) / 1000u;
}
/* Wall-clock milliseconds since the epoch (timestamps, not durations). */
static inline uint64_t sy_wall_ms(void) { return sy_clock_ns(CLOCK_REALTIME) / 1000000u; }

#endif
