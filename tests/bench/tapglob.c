/*
 * tapglob.c - the tap's glob matcher on the hostile case, for callgrind:
 * the 256-byte glob `*a` x 128 against keys of 7990 'a's, a 'b' and a
 * number (the keys of test_badinput's tap_abuse), matched N times.
 *
 *   make -f tests/bench/Makefile build/bench/tapglob
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out build/bench/tapglob 100
 *   callgrind_annotate /tmp/cg.out | grep sy_glob_match
 *
 * The instructions of sy_glob_match divided by N are one tap's cost a
 * line; four taps pay four times that.  A second argument picks another
 * case: "tail" (keys that end like the glob), "short" (a plain glob,
 * api.*.latency, on an ordinary key) or "thrash" (a glob and keys made to
 * need more sets of states than the matcher caches: its worst case).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/tap.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    const char *what = argc > 2 ? argv[2] : "hostile";
    char glob[SY_TAP_GLOB_MAX + 1], key[8100];
    size_t gl, kl;
    if (strcmp(what, "thrash") == 0) {
        /* `**` and 254 bytes of ~200 kinds (the cache holds ~160 sets of
         * it); keys that walk all of it again and again, with a space
         * between: each byte a new set of states (a new place in the
         * literal), more than the cache holds */
        glob[0] = glob[1] = '*';
        for (gl = 2; gl < SY_TAP_GLOB_MAX; gl++) {
            glob[gl] = (char)(0x21 + (gl * 7) % 200);
            if (glob[gl] == '*' || glob[gl] == '.')
                glob[gl] = '-';
        }
        for (kl = 0; kl + 255 <= 8000; kl += 255) {
            memcpy(key + kl, glob + 2, 254);
            key[kl + 254] = ' ';
        }
    } else if (strcmp(what, "short") == 0) {
        gl = (size_t)snprintf(glob, sizeof glob, "api.*.latency");
        kl = (size_t)snprintf(key, sizeof key, "api.eu-west-1.latency");
    } else {
        for (gl = 0; gl < SY_TAP_GLOB_MAX; gl += 2)
            glob[gl] = '*', glob[gl + 1] = 'a';
        memset(key, 'a', 7990);
        kl = 7990;
        key[kl++] = 'b';
        if (strcmp(what, "tail") == 0)
            key[kl++] = 'a';
    }
    sy_glob *g = sy_glob_new(glob, gl);
    if (!g)
        return 1;
    int matched = 0;
    for (int i = 0; i < n; i++) {
        size_t l = kl;
        if (strcmp(what, "hostile") == 0)
            l += (size_t)snprintf(key + kl, 16, "%d", i);
        matched += sy_glob_match(g, key, l);
    }
    printf("%s: %d of %d matched\n", what, matched, n);
    sy_glob_free(g);
    return 0;
}
