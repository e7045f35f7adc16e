/*
 * test_ring.c - the SPSC record ring (core/ingest/ring.c) and the consumer
 * wake-ups (core/ingest/notify.c).
 *
 * Single-threaded: order and origins, peek/release, empty and full rings,
 * the largest record, capacity rounding, reserve/commit, and many laps of
 * records of varied sizes so the skip marker at the end of the buffer is
 * crossed hundreds of times (every payload byte checked).
 *
 * Two threads: a producer pushes 2,000,000 records (lengths 1..300, a
 * sequence number in the origin and a pattern derived from it in the
 * payload) through a 64 KiB ring, retrying when it is full; the consumer
 * checks every record in order and sleeps with sy_notify (prepare, check
 * again, wait with a timeout) when the ring is empty.  SY_RING_STRESS_N
 * overrides the count (e.g. for slow sanitizer builds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingest/notify.h"
#include "ingest/ring.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The payload byte i of record seq, and the origin of record seq. */
static inline uint8_t pat(uint64_t seq, size_t i)
{
    return (uint8_t)((seq * 131u) ^ (i * 29u) ^ (seq >> 8) ^ (i >> 3));
}

static void fill(uint8_t *p, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pat(seq, i);
}

static int check_payload(const uint8_t *p, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pat(seq, i))
            return 0;
    return 1;
}

static sy_origin origin_of(uint64_t seq)
{
    sy_origin o;
    memset(&o, 0, sizeof o);
    o.listener = (uint16_t)(seq % 7);
    o.family = (uint8_t)(seq % 3 == 0 ? 2 : 10); /* AF_INET / AF_INET6 */
    o.flags = (uint8_t)(seq % 5 == 0 ? SY_ORIGIN_EOF : 0);
    o.port = (uint16_t)(seq * 7u);
    memcpy(o.addr, &seq, sizeof seq);
    for (int i = 8; i < 16; i++)
        o.addr[i] = (uint8_t)(seq >> (i - 8)) ^ 0x5a;
    return o;
}

static int same_origin(const sy_origin *a, const sy_origin *b)
{
    return a->listener == b->listener && a->family == b->family && a->flags == b->flags &&
           a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* Pop one record and check it is record `seq` of length `len`. */
static void expect_record(sy_ring *r, uint64_t seq, size_t len)
{
    const sy_origin *o = NULL;
    size_t got = (size_t)-1;
    const uint8_t *p = sy_ring_peek(r, &o, &got);
    assert_non_null(p);
    assert_int_equal(got, len);
    assert_non_null(o);
    sy_origin want = origin_of(seq);
    assert_true(same_origin(o, &want));
    assert_true(check_payload(p, seq, len));
    assert_int_equal(((uintptr_t)p) % 8, 0);
    sy_ring_release(r);
}

static int push_seq(sy_ring *r, uint64_t seq, size_t len)
{
    uint8_t buf[65536];
    fill(buf, seq, len);
    sy_origin o = origin_of(seq);
    return sy_ring_push(r, &o, buf, len);
}

/* ------------------------------------------------------------------ */

static void ring_capacity_rounding(void **state)
{
    (void)state;
    static const size_t req[] = { 4096, 4097, 5000, 65536, 65537, 100000, 1 << 20, 3000000 };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        sy_ring *r = sy_ring_new(req[i], NULL);
        assert_non_null(r);
        size_t cap = sy_ring_capacity(r);
        assert_int_equal(cap % 64, 0);
        assert_true(cap >= req[i] && cap < req[i] + 64);
        /* a record may take at most half the ring, header included */
        size_t mr = sy_ring_max_record(r);
        assert_true(mr < cap / 2 && mr + 64 >= cap / 2);
        assert_int_equal(sy_ring_used(r), 0);
        sy_ring_free(r);
    }
    /* tiny requests still give a usable ring */
    static const size_t small[] = { 0, 1, 63, 64, 100, 1000 };
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        sy_ring *r = sy_ring_new(small[i], NULL);
        assert_non_null(r);
        assert_int_equal(sy_ring_capacity(r) % 64, 0);
        assert_true(sy_ring_capacity(r) >= small[i]);
        assert_true(sy_ring_max_record(r) >= 512);
        assert_int_equal(push_seq(r, 1, 100), 0);
        expect_record(r, 1, 100);
        sy_ring_free(r);
    }
    sy_ring_free(NULL);
}

static void ring_push_peek_release_order(void **state)
{
    (void)state;
    sy_ring *r = sy_ring_new(8192, NULL);
    assert_non_null(r);
    const sy_origin *o;
    size_t len;
    assert_null(sy_ring_peek(r, &o, &len));
    sy_ring_release(r); /* nothing peeked: no effect */
    assert_int_equal(sy_ring_used(r), 0);

    static const size_t lens[] = { 1, 7, 8, 9, 0, 100, 33, 255 };
    for (uint64_t s = 0; s < 8; s++)
        assert_int_equal(push_seq(r, s, lens[s]), 0);
    assert_true(sy_ring_used(r) > 0);
    /* peek twice: the same record until it is released */
    const void *p1 = sy_ring_peek(r, &o, &len);
    const void *p2 = sy_ring_peek(r, NULL, &len);
    assert_ptr_equal(p1, p2);
    assert_int_equal(len, 1);
    for (uint64_t s = 0; s < 8; s++)
        expect_record(r, s, lens[s]);
    assert_null(sy_ring_peek(r, &o, &len));
    assert_int_equal(sy_ring_used(r), 0);

    /* A NULL origin is published as a zeroed one; a zero-length record
     * (a control message) carries its flags. */
    assert_int_equal(sy_ring_push(r, NULL, "abc", 3), 0);
    sy_origin eof = { .listener = 3, .flags = SY_ORIGIN_EOF };
    /* (data NULL with len 0 would pass NULL to memcpy: UBSan objects) */
    assert_int_equal(sy_ring_push(r, &eof, "", 0), 0);
    const char *p = sy_ring_peek(r, &o, &len);
    assert_non_null(p);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "abc", 3);
    sy_origin zero;
    memset(&zero, 0, sizeof zero);
    assert_true(same_origin(o, &zero));
    sy_ring_release(r);
    assert_non_null(sy_ring_peek(r, &o, &len));
    assert_int_equal(len, 0);
    assert_int_equal(o->listener, 3);
    assert_int_equal(o->flags, SY_ORIGIN_EOF);
    sy_ring_release(r);
    assert_int_equal(sy_ring_used(r), 0);
    sy_ring_free(r);
}

/* reserve + commit, including a commit shorter than the reservation. */
static void ring_reserve_commit(void **state)
{
    (void)state;
    sy_ring *r = sy_ring_new(4096, NULL);
    for (uint64_t s = 0; s < 1000; s++) {
        size_t want = 1 + (s * 37) % 900, len = (s % 3) ? want : want / 2;
        uint8_t *p = sy_ring_reserve(r, want);
        assert_non_null(p);
        fill(p, s, len);
        sy_origin o = origin_of(s);
        sy_ring_commit(r, &o, len);
        expect_record(r, s, len);
        assert_int_equal(sy_ring_used(r), 0);
    }
    sy_ring_free(r);
}

static void ring_full_refuses_and_recovers(void **state)
{
    (void)state;
    sy_ring *r = sy_ring_new(4096, NULL);
    size_t cap = sy_ring_capacity(r);
    uint64_t pushed = 0, popped = 0;
    while (push_seq(r, pushed, 100) == 0)
        pushed++;
    assert_true(pushed >= 20 && pushed * 100 <= cap);
    assert_true(sy_ring_used(r) <= cap);
    assert_null(sy_ring_reserve(r, 100));
    assert_int_equal(push_seq(r, pushed, 100), -1);
    size_t used_full = sy_ring_used(r);
    /* refusals change nothing */
    assert_int_equal(sy_ring_used(r), used_full);
    /* one release makes room for one more, many times over (the free space
     * moves around the buffer and across its end) */
    for (int round = 0; round < 500; round++) {
        expect_record(r, popped, 100);
        popped++;
        assert_int_equal(push_seq(r, pushed, 100), 0);
        pushed++;
        assert_int_equal(push_seq(r, pushed, 100), -1);
    }
    while (popped < pushed) {
        expect_record(r, popped, 100);
        popped++;
    }
    assert_null(sy_ring_peek(r, NULL, &(size_t){ 0 }));
    assert_int_equal(sy_ring_used(r), 0);
    sy_ring_free(r);
}

static void ring_max_record(void **state)
{
    (void)state;
    sy_ring *r = sy_ring_new(8192, NULL);
    size_t cap = sy_ring_capacity(r), mr = sy_ring_max_record(r);
    assert_true(mr >= cap / 2 - 64);
    /* too large: refused even when empty */
    assert_null(sy_ring_reserve(r, mr + 1));
    assert_int_equal(push_seq(r, 0, mr + 1), -1);
    assert_int_equal(push_seq(r, 0, cap), -1);
    assert_int_equal(sy_ring_used(r), 0);
    /* two of the largest fill the ring exactly */
    assert_int_equal(push_seq(r, 1, mr), 0);
    assert_int_equal(push_seq(r, 2, mr), 0);
    assert_int_equal(sy_ring_used(r), cap);
    assert_int_equal(push_seq(r, 3, 0), -1);
    expect_record(r, 1, mr);
    expect_record(r, 2, mr);
    /* the largest record fits an empty ring at any offset (a skip marker
     * covers the end of the buffer when needed) */
    uint64_t seq = 10;
    for (size_t shift = 0; shift < cap; shift += 8 + (shift % 200)) {
        sy_ring *q = sy_ring_new(8192, NULL);
        size_t moved = 0;
        while (moved < shift) {
            size_t l = (shift - moved > 32 + 600) ? 600 : 0;
            assert_int_equal(push_seq(q, seq, l), 0);
            expect_record(q, seq, l);
            seq++;
            moved += 32 + l; /* an upper bound of the bytes a record takes */
        }
        assert_int_equal(push_seq(q, seq, mr), 0);
        expect_record(q, seq, mr);
        seq++;
        /* and a larger one never */
        assert_int_equal(push_seq(q, seq, mr + 1), -1);
        sy_ring_free(q);
    }
    /* while one large record sits past the middle, a second one that would
     * need the wrap must wait for the first to go */
    assert_int_equal(push_seq(r, 100, 40), 0);
    expect_record(r, 100, 40);
    assert_int_equal(push_seq(r, 101, mr), 0);
    assert_int_equal(push_seq(r, 102, mr), -1);
    expect_record(r, 101, mr);
    assert_int_equal(push_seq(r, 102, mr), 0);
    expect_record(r, 102, mr);
    assert_int_equal(sy_ring_used(r), 0);
    sy_ring_free(r);
}

/* Hundreds of laps with records of many sizes, pushes and pops interleaved
 * at random: every record comes back in order, byte for byte. */
static void ring_wrap_many_laps(void **state)
{
    (void)state;
    static const size_t caps[] = { 4096, 4160, 8192 + 64, 65536 };
    uint64_t rng = 0x243F6A8885A308D3ull;
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        sy_ring *r = sy_ring_new(caps[c], NULL);
        size_t cap = sy_ring_capacity(r), mr = sy_ring_max_record(r);
        /* the queue of what is in the ring */
        enum { QMAX = 4096 };
        static size_t qlen[QMAX];
        uint64_t head = 0, tail = 0, refused = 0;
        size_t bytes = 0;
        while (bytes < 300 * cap) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            int do_push = (rng % 100) < 55;
            if (do_push && tail - head < QMAX) {
                size_t len;
                switch ((rng >> 8) % 8) {
                case 0: len = 0; break;
                case 1: len = mr; break;
                case 2: len = mr - 1 - (rng >> 20) % 8; break;
                case 3: len = (rng >> 20) % 8; break;
                default: len = (size_t)((rng >> 20) % (mr / 3 + 1)); break;
                }
                if (push_seq(r, tail, len) == 0) {
                    qlen[tail % QMAX] = len;
                    tail++;
                    bytes += len + 1;
                } else {
                    refused++;
                    assert_true(head < tail); /* only a non-empty ring refuses */
                }
            } else if (head < tail) {
                expect_record(r, head, qlen[head % QMAX]);
                head++;
            } else {
                assert_null(sy_ring_peek(r, NULL, &(size_t){ 0 }));
            }
            assert_true(sy_ring_used(r) <= cap);
        }
        while (head < tail) {
            expect_record(r, head, qlen[head % QMAX]);
            head++;
        }
        assert_int_equal(sy_ring_used(r), 0);
        assert_true(refused > 0);
        sy_ring_free(r);
    }
}

/* ------------------------------------------------------------------ */
/* Two threads                                                         */
/* ------------------------------------------------------------------ */

typedef struct stress {
    sy_ring *r;
    sy_notify n;
    uint64_t count;
    uint64_t full;       /* producer retries */
    /* consumer results */
    uint64_t got, waits, bad_len, bad_payload, bad_origin;
    uint64_t first_bad;
    int timed_out;
} stress;

static size_t stress_len(uint64_t seq)
{
    return 1 + (size_t)((seq * 7919u + (seq >> 5)) % 300);
}

static void *producer(void *arg)
{
    stress *st = arg;
    uint8_t buf[512];
    for (uint64_t s = 0; s < st->count; s++) {
        size_t len = stress_len(s);
        sy_origin o = origin_of(s);
        if (s & 1) {
            fill(buf, s, len);
            while (sy_ring_push(st->r, &o, buf, len) != 0) {
                st->full++;
                sched_yield();
            }
        } else {
            uint8_t *p;
            while (!(p = sy_ring_reserve(st->r, len))) {
                st->full++;
                sched_yield();
            }
            fill(p, s, len);
            sy_ring_commit(st->r, &o, len);
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    stress *st = arg;
    double deadline = now_s() + 300;
    while (st->got < st->count) {
        const sy_origin *o;
        size_t len;
        const uint8_t *p = sy_ring_peek(st->r, &o, &len);
        if (!p) {
            /* sleep protocol: announce, look again, then wait */
            sy_notify_prepare(&st->n);
            p = sy_ring_peek(st->r, &o, &len);
            if (p) {
                sy_notify_cancel(&st->n);
            } else {
                sy_notify_wait(&st->n, 200);
                st->waits++;
                if (now_s() > deadline) {
                    st->timed_out = 1;
                    return NULL;
                }
                continue;
            }
        }
        uint64_t s = st->got;
        sy_origin want = origin_of(s);
        int ok = 1;
        if (len != stress_len(s)) {
            st->bad_len++;
            ok = 0;
        } else if (!check_payload(p, s, len)) {
            st->bad_payload++;
            ok = 0;
        }
        if (!same_origin(o, &want)) {
            st->bad_origin++;
            ok = 0;
        }
        if (!ok && st->first_bad == UINT64_MAX)
            st->first_bad = s;
        sy_ring_release(st->r);
        st->got++;
    }
    return NULL;
}

static void run_stress(uint64_t count, size_t cap, int consumer_naps)
{
    stress st;
    memset(&st, 0, sizeof st);
    st.count = count;
    st.first_bad = UINT64_MAX;
    assert_int_equal(sy_notify_init(&st.n), 0);
    st.r = sy_ring_new(cap, &st.n);
    assert_non_null(st.r);
    pthread_t pc, pp;
    double t0 = now_s();
    assert_int_equal(pthread_create(&pc, NULL, consumer, &st), 0);
    if (consumer_naps)
        usleep(50000); /* let the consumer go to sleep on an empty ring */
    assert_int_equal(pthread_create(&pp, NULL, producer, &st), 0);
    pthread_join(pp, NULL);
    pthread_join(pc, NULL);
    double dt = now_s() - t0;
    print_message("  %llu records through %zu bytes in %.2f s: %llu producer retries, "
                  "%llu consumer waits\n", (unsigned long long)count, sy_ring_capacity(st.r), dt,
                  (unsigned long long)st.full, (unsigned long long)st.waits);
    if (st.timed_out)
        fail_msg("consumer stuck after %llu of %llu records", (unsigned long long)st.got,
                 (unsigned long long)count);
    if (st.bad_len || st.bad_payload || st.bad_origin)
        fail_msg("bad records: %llu lengths, %llu payloads, %llu origins; first at #%llu",
                 (unsigned long long)st.bad_len, (unsigned long long)st.bad_payload,
                 (unsigned long long)st.bad_origin, (unsigned long long)st.first_bad);
    assert_int_equal(st.got, count);
    assert_int_equal(sy_ring_used(st.r), 0);
    assert_null(sy_ring_peek(st.r, NULL, &(size_t){ 0 }));
    sy_ring_free(st.r);
    sy_notify_destroy(&st.n);
}

static uint64_t stress_count(uint64_t dflt)
{
    const char *e = getenv("SY_RING_STRESS_N");
    return e && *e ? strtoull(e, NULL, 10) : dflt;
}

static void ring_stress_two_threads(void **state)
{
    (void)state;
    run_stress(stress_count(2000000), 64 * 1024, 1);
}

/* A tiny ring: the producer is refused most of the time and the consumer
 * sleeps often, so both sides of the wake-up race get exercised. */
static void ring_stress_small_ring(void **state)
{
    (void)state;
    run_stress(stress_count(2000000) / 10, 4096, 0);
}

/* ------------------------------------------------------------------ */
/* sy_notify                                                           */
/* ------------------------------------------------------------------ */

static int eventfd_pending(sy_notify *n)
{
    uint64_t v;
    ssize_t rc = read(n->fd, &v, sizeof v);
    if (rc == (ssize_t)sizeof v)
        return 1;
    assert_true(rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    return 0;
}

/* A busy consumer costs producers no syscall: wake writes the eventfd only
 * when the consumer announced it is about to sleep. */
static void notify_wakes_only_sleepers(void **state)
{
    (void)state;
    sy_notify n;
    assert_int_equal(sy_notify_init(&n), 0);
    assert_true(n.fd >= 0);
    sy_notify_wake(&n);
    assert_int_equal(eventfd_pending(&n), 0);
    sy_notify_prepare(&n);
    sy_notify_wake(&n);
    assert_int_equal(eventfd_pending(&n), 1);
    assert_int_equal(atomic_load(&n.sleeping), 0);
    sy_notify_wake(&n); /* the sleeper was woken once: no second write */
    assert_int_equal(eventfd_pending(&n), 0);
    /* cancel: found work after prepare */
    sy_notify_prepare(&n);
    sy_notify_cancel(&n);
    sy_notify_wake(&n);
    assert_int_equal(eventfd_pending(&n), 0);
    /* a ring wakes its consumer on commit */
    sy_ring *r = sy_ring_new(4096, &n);
    assert_int_equal(push_seq(r, 1, 10), 0);
    assert_int_equal(eventfd_pending(&n), 0);
    sy_notify_prepare(&n);
    assert_int_equal(push_seq(r, 2, 10), 0);
    assert_int_equal(eventfd_pending(&n), 1);
    expect_record(r, 1, 10);
    expect_record(r, 2, 10);
    sy_ring_free(r);
    sy_notify_destroy(&n);
    assert_int_equal(n.fd, -1);
}

static void notify_wait_timeout(void **state)
{
    (void)state;
    sy_notify n;
    assert_int_equal(sy_notify_init(&n), 0);
    sy_notify_prepare(&n);
    double t0 = now_s();
    sy_notify_wait(&n, 60);
    double dt = now_s() - t0;
    assert_true(dt >= 0.05 && dt < 5);
    assert_int_equal(atomic_load(&n.sleeping), 0);
    /* a pending wake-up makes the next wait return at once */
    sy_notify_prepare(&n);
    sy_notify_wake(&n);
    t0 = now_s();
    sy_notify_wait(&n, 10000);
    assert_true(now_s() - t0 < 1);
    /* and it is consumed: the next wait times out again */
    sy_notify_prepare(&n);
    t0 = now_s();
    sy_notify_wait(&n, 30);
    assert_true(now_s() - t0 >= 0.025);
    sy_notify_destroy(&n);
}

typedef struct sleeper {
    sy_notify *n;
    sy_ring *r;
    double slept;    /* until the record was seen */
    double longest;  /* longest single wait */
    int found;
} sleeper;

/* The consumer's loop: prepare, look again, wait; a wake-up may be
 * spurious (left over from a race already won), so look again after it. */
static void *sleeper_main(void *arg)
{
    sleeper *s = arg;
    size_t len;
    double t0 = now_s();
    while (!s->found && now_s() - t0 < 30) {
        sy_notify_prepare(s->n);
        if (sy_ring_peek(s->r, NULL, &len)) {
            sy_notify_cancel(s->n);
            s->found = 1;
            break;
        }
        double w = now_s();
        sy_notify_wait(s->n, 20000);
        if (now_s() - w > s->longest)
            s->longest = now_s() - w;
        s->found = sy_ring_peek(s->r, NULL, &len) != NULL;
    }
    s->slept = now_s() - t0;
    return NULL;
}

/* A push from another thread ends a long wait at once. */
static void notify_push_wakes_waiting_consumer(void **state)
{
    (void)state;
    sy_notify n;
    assert_int_equal(sy_notify_init(&n), 0);
    sy_ring *r = sy_ring_new(4096, &n);
    for (int round = 0; round < 20; round++) {
        sleeper s = { &n, r, 0, 0, 0 };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, sleeper_main, &s), 0);
        usleep(round < 10 ? 20000 : (useconds_t)(round * 100)); /* asleep, or about to be */
        assert_int_equal(push_seq(r, (uint64_t)round, 16), 0);
        pthread_join(t, NULL);
        assert_true(s.found);
        /* a lost wake-up would show as a 20 s wait */
        assert_true(s.longest < 10);
        assert_true(s.slept < 10);
        expect_record(r, (uint64_t)round, 16);
    }
    sy_ring_free(r);
    sy_notify_destroy(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_capacity_rounding),
        cmocka_unit_test(ring_push_peek_release_order),
        cmocka_unit_test(ring_reserve_commit),
        cmocka_unit_test(ring_full_refuses_and_recovers),
        cmocka_unit_test(ring_max_record),
        cmocka_unit_test(ring_wrap_many_laps),
        cmocka_unit_test(notify_wakes_only_sleepers),
        cmocka_unit_test(notify_wait_timeout),
        cmocka_unit_test(notify_push_wakes_waiting_consumer),
        cmocka_unit_test(ring_stress_two_threads),
        cmocka_unit_test(ring_stress_small_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
