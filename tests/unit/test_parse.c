/*
 * test_parse.c - the StatsD line parser (core/ingest/parse.c) against Etsy statsd
 * 0.9 (stats.js handlePacket, lib/helpers.js is_valid_packet,
 * sanitizeKeyName).
 *
 * Every table row says where its expectation comes from:
 *
 *   SD     statsd's own answer.  Each of these rows was run through statsd's
 *          code in node (the packet decoded with Buffer.toString() as the UDP
 *          server does, then handlePacket's split/tag/sanitise steps and
 *          is_valid_packet verbatim) and gave exactly this key, these values
 *          and these rates.
 *   DELIB  a deliberate difference listed at the top of parse.c (or, for the
 *          key length, in parse.h); `why` names the rule and what statsd does.
 *   UNDOC  parse.c differs from statsd and no comment lists it; the row keeps
 *          parse.c's stricter (or brief-specified) answer.  Reported.
 *   BUG    parse.c differs from statsd, no comment lists it, and parse.c is
 *          the lenient/wrong side: the row holds STATSD'S answer, so it FAILS
 *          with the current parse.c until the parser is fixed (or the
 *          difference is documented and the row moved to DELIB).
 *
 * The table runner reports every mismatching row (not only the first), so
 * one run shows all of them.
 *
 * A randomized case pushes 1,000,000 random byte strings through
 * sy_parse_begin/sy_parse_next and checks the invariants (no crash, keys
 * NUL-terminated and shorter than SY_KEY_MAX, made only of kept bytes when
 * sanitising, samples well formed).  Each string sits in its own malloc'd
 * block of exactly its length, so ASan catches any read past the end.
 * SY_PARSE_SEED=n picks another seed.
 *
 * Defining SY_TEST_PARSE_NO_MAIN leaves out main(), so a small driver can
 * #include this file, walk groups[] and print every row for a re-check of
 * the SD rows against statsd in node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "ingest/parse.h"

enum { SD, DELIB, UNDOC, BUG };
static const char *const kind_name[] = { "SD", "DELIB", "UNDOC", "BUG" };

typedef struct vexp {
    int rc;            /* 1 good, -1 bad (0 ends the list) */
    char type;         /* SY_SAMPLE_* */
    double value;
    double rate;
    int delta;
    const char *text;  /* checked when set (always for sets) */
    size_t text_len;
} vexp;

typedef struct pcase {
    const char *line;
    size_t len;
    int raw;           /* 1: sanitize off */
    int kind;
    int begin;         /* expected sy_parse_begin result: key length, -1, -2 */
    const char *key;
    size_t key_len;
    vexp v[6];
    const char *why;
} pcase;

#define L(s) .line = (s), .len = sizeof(s) - 1
#define K(s) .key = (s), .key_len = sizeof(s) - 1, .begin = (int)(sizeof(s) - 1)
#define LINE_BAD .begin = -1
#define LINE_EMPTY .begin = -2
#define V(t, val, r) { .rc = 1, .type = (t), .value = (val), .rate = (r) }
#define VT(t, val, r, txt) { .rc = 1, .type = (t), .value = (val), .rate = (r), \
                             .text = (txt), .text_len = sizeof(txt) - 1 }
#define VD(val, r, txt) { .rc = 1, .type = 'g', .value = (val), .rate = (r), .delta = 1, \
                          .text = (txt), .text_len = sizeof(txt) - 1 }
#define VS(txt, r) { .rc = 1, .type = 's', .rate = (r), .text = (txt), .text_len = sizeof(txt) - 1 }
#define BADV { .rc = -1 }

/* ---------------------------------------------------------------------- */
/* The tables                                                              */

static const pcase types_cases[] = {
    { L("k:1|c"), K("k"), .kind = SD, .v = { VT('c', 1, 1, "1") } },
    { L("k:1|g"), K("k"), .kind = SD, .v = { VT('g', 1, 1, "1") } },
    { L("k:1|ms"), K("k"), .kind = SD, .v = { VT('t', 1, 1, "1") } },
    { L("k:abc|s"), K("k"), .kind = SD, .v = { VS("abc", 1) } },
    { L("k:1|h"), K("k"), .kind = DELIB, .v = { V('t', 1, 1) },
      .why = "h is a timer, as in DogStatsD (statsd: a counter)" },
    { L("k:1|d"), K("k"), .kind = DELIB, .v = { V('t', 1, 1) },
      .why = "d is a timer, as in DogStatsD (statsd: a counter)" },
    /* signs, fractions, exponents */
    { L("k:+1.5|c"), K("k"), .kind = SD, .v = { VT('c', 1.5, 1, "+1.5") } },
    { L("k:-2|c"), K("k"), .kind = SD, .v = { V('c', -2, 1) } },
    { L("k:.5|c"), K("k"), .kind = SD, .v = { V('c', 0.5, 1) } },
    { L("k:5.|c"), K("k"), .kind = SD, .v = { V('c', 5, 1) } },
    { L("k:1e3|c"), K("k"), .kind = SD, .v = { V('c', 1000, 1) } },
    { L("k:1.5E-3|ms"), K("k"), .kind = SD, .v = { V('t', 0.0015, 1) } },
    { L("k:+1e+2|g"), K("k"), .kind = SD, .v = { VD(100, 1, "+1e+2") } },
    { L("k:0.1|c"), K("k"), .kind = SD, .v = { V('c', 0.1, 1) } },
    { L("k:1e-999|c"), K("k"), .kind = SD, .v = { V('c', 0, 1) } },
    { L("k:123456789012345678901234567890|c"), K("k"), .kind = SD,
      .v = { V('c', 123456789012345678901234567890.0, 1) } },
    /* spaces around the type (statsd trims fields[1]) and the value
     * (statsd's Number() trims) */
    { L("k:1| c"), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c "), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|\tms\t"), K("k"), .kind = SD, .v = { V('t', 1, 1) } },
    { L("k:1| g "), K("k"), .kind = SD, .v = { V('g', 1, 1) } },
    { L("k:5| s"), K("k"), .kind = SD, .v = { VS("5", 1) } },
    { L("k: 1 |c"), K("k"), .kind = SD, .v = { VT('c', 1, 1, " 1 ") } },
    { L("k:\t2\t|ms"), K("k"), .kind = SD, .v = { V('t', 2, 1) } },
    /* CRLF: the CR is trimmed from the type like any whitespace */
    { L("k:1|c\r"), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|ms\r"), K("k"), .kind = SD, .v = { V('t', 1, 1) } },
    { L("k:1|s\r"), K("k"), .kind = SD, .v = { VS("1", 1) } },
    { L("k:5|c|@0.5\r"), K("k"), .kind = SD, .v = { V('c', 5, 0.5) } },
    { L("k:1|c:2|g\r"), K("k"), .kind = SD, .v = { V('c', 1, 1), V('g', 2, 1) } },
};

static const pcase unknown_type_cases[] = {
    { L("k:1|x"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|msx"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|cc"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|C"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|m s"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "an empty type is unknown, so bad (statsd: a counter)" },
    { L("k:1|c#x"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "unknown types are bad (statsd: a counter)" },
    { L("k:1|c\xc2\xa0"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd's trim() also strips Unicode spaces (U+00A0 here) and counts 1" },
    /* no type at all: bad in statsd too */
    { L("k:1"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c:2"), K("k"), .kind = SD, .v = { V('c', 1, 1), BADV } },
};

static const pcase rate_cases[] = {
    { L("k:1|c|@0.1"), K("k"), .kind = SD, .v = { V('c', 1, 0.1) } },
    { L("k:1|c|@1"), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|@2"), K("k"), .kind = SD, .v = { V('c', 1, 2) } },
    { L("k:1|c|@.5"), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    { L("k:1|c|@5."), K("k"), .kind = SD, .v = { V('c', 1, 5) } },
    { L("k:1|c|@00.5"), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    /* statsd validates the whole text, then uses only /^@([\d\.]+)/ */
    { L("k:1|c|@0.5e1"), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    { L("k:1|c|@1e-5"), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|@0.5 "), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    { L("k:1|ms|@0.25"), K("k"), .kind = SD, .v = { V('t', 1, 0.25) } },
    { L("k:1|g|@0.5"), K("k"), .kind = SD, .v = { V('g', 1, 0.5) } },
    { L("k:x|s|@0.5"), K("k"), .kind = SD, .v = { VS("x", 0.5) } },
    /* fields beyond the third are ignored */
    { L("k:1|c|@0.5|junk"), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    { L("k:1|c|@0.5|@x|"), K("k"), .kind = SD, .v = { V('c', 1, 0.5) } },
    /* bad rates */
    { L("k:1|c|@"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@x"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@-0.5"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@-0"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@."), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@1.2.3"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@NaN"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|0.5"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:x|s|@x"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|@0"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be positive (statsd divides by 0)" },
    { L("k:1|c|@0.0"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be positive (statsd divides by 0)" },
    { L("k:1|c|@0e5"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be positive (statsd: rate 0, divides by 0)" },
    { L("k:1|c|@0x10"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be a positive decimal (statsd: rate 0)" },
    { L("k:1|c|@+0.5"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be a positive decimal (statsd crashes: match() is null)" },
    { L("k:1|c|@ 0.5"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be a positive decimal (statsd crashes: match() is null)" },
    { L("k:1|c|@Infinity"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a rate must be a positive decimal (statsd crashes: match() is null)" },
    { L("k:1|c|@1e999"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd: Number('1e999') is Infinity, valid, then rate 1 from the digit run" },
};

static const pcase multi_cases[] = {
    { L("k:1|c:2|c:x|c"), K("k"), .kind = SD, .v = { V('c', 1, 1), V('c', 2, 1), BADV } },
    { L("k:1|c:2|g:3|ms:a|s"), K("k"), .kind = SD,
      .v = { V('c', 1, 1), V('g', 2, 1), V('t', 3, 1), VS("a", 1) } },
    { L("k:1|c::2|c"), K("k"), .kind = SD, .v = { V('c', 1, 1), BADV, V('c', 2, 1) } },
    { L("k:1|c:"), K("k"), .kind = SD, .v = { V('c', 1, 1), BADV } },
    { L("k:"), K("k"), .kind = SD, .v = { BADV } },
    { L("k::"), K("k"), .kind = SD, .v = { BADV, BADV } },
    { L("k:1|c:|s"), K("k"), .kind = SD, .v = { V('c', 1, 1), VS("0", 1) } },
    { L("k:1|c|@0.5:2|c|@x:3|ms|@0.1"), K("k"), .kind = SD,
      .v = { V('c', 1, 0.5), BADV, V('t', 3, 0.1) } },
    { L("k:x|c:1|c"), K("k"), .kind = SD, .v = { BADV, V('c', 1, 1) } },
};

/* DogStatsD's extensions (protocol 1.1-1.3), read only where statsd
 * counts a bad line (parse.c's header). */
#define DD "DogStatsD: statsd counts a bad line here"
static const pcase dogstatsd_cases[] = {
    /* several values in one message share the type and rate after them */
    { L("k:1:2:3|ms"), K("k"), .kind = DELIB, .why = DD,
      .v = { V('t', 1, 1), V('t', 2, 1), V('t', 3, 1) } },
    { L("k:1:2|c|@0.5"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 0.5), V('c', 2, 0.5) } },
    { L("k:a:b:a|s"), K("k"), .kind = DELIB, .why = DD,
      .v = { VS("a", 1), VS("b", 1), VS("a", 1) } },
    { L("k:1:2|g:3|c"), K("k"), .kind = DELIB, .why = DD,
      .v = { V('g', 1, 1), V('g', 2, 1), V('c', 3, 1) } },
    { L("k:1:x:3|ms"), K("k"), .kind = DELIB, .why = DD, .v = { V('t', 1, 1), BADV, V('t', 3, 1) } },
    { L("k:1:2|ms|#env:prod"), K("k;env=prod"), .kind = DELIB, .why = DD,
      .v = { V('t', 1, 1), V('t', 2, 1) } },
    /* a typeless value with nothing typed after it stays bad */
    { L("k:1"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c:2"), K("k"), .kind = SD, .v = { V('c', 1, 1), BADV } },
    /* container IDs and timestamps after the type, in any order */
    { L("k:1|c|c:83bd3ea1"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 1) } },
    { L("k:1|c|T1700000000"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 1) } },
    { L("k:1|c|@0.5|c:abc|T1700000000"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 0.5) } },
    { L("k:1|c|T1700000000|@0.25"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 0.25) } },
    { L("k:1|c|c:abc|@0.25"), K("k"), .kind = DELIB, .why = DD, .v = { V('c', 1, 0.25) } },
    { L("k:1|c|#a:b|c:abc|T1700000000"), K("k;a=b"), .kind = DELIB, .why = DD, .v = { V('c', 1, 1) } },
    { L("k:1|c|c:abc|#a:b"), K("k;a=b"), .kind = DELIB, .why = DD, .v = { V('c', 1, 1) } },
    { L("k:1:2|ms|c:abc"), K("k"), .kind = DELIB, .why = DD, .v = { V('t', 1, 1), V('t', 2, 1) } },
    /* never the type's field: statsd's "a:1|c:2|c" is two values */
    { L("k:1|c:2|c"), K("k"), .kind = SD, .v = { V('c', 1, 1), V('c', 2, 1) } },
    /* "T" needs digits; the rate field stays statsd's */
    { L("k:1|c|Tx"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1|c|T"), K("k"), .kind = SD, .v = { BADV } },
    /* distributions are timers */
    { L("k:5|d"), K("k"), .kind = DELIB, .why = "DogStatsD distribution", .v = { V('t', 5, 1) } },
    /* events and service checks: their own answers, checked for form */
    { L("_e{5,4}:title|text"), .begin = SY_PARSE_EVENT, .kind = DELIB, .why = DD },
    { L("_e{5,4}:title|text|d:1700000000|p:low|#a:b"), .begin = SY_PARSE_EVENT, .kind = DELIB, .why = DD },
    { L("_e{5,0}:title|"), .begin = SY_PARSE_EVENT, .kind = DELIB, .why = DD },
    { L("_sc|db.up|0"), .begin = SY_PARSE_SERVICE_CHECK, .kind = DELIB, .why = DD },
    { L("_sc|db.up|2|#env:prod|m:down"), .begin = SY_PARSE_SERVICE_CHECK, .kind = DELIB, .why = DD },
    /* malformed ones are read as metric lines, as statsd reads them */
    { L("_e{9,4}:title|text"), K("_e94"), .kind = SD, .v = { BADV } },
    { L("_e{5,4}:titlextext"), K("_e54"), .kind = SD, .v = { BADV } },
    { L("_sc|db.up|7"), LINE_BAD, .kind = SD },
    { L("_sc||0"), LINE_BAD, .kind = SD },
};

static const pcase tag_cases[] = {
    { L("k:1|c|#env:prod,role:web"), K("k;env=prod;role=web"), .kind = SD, .v = { V('c', 1, 1) } },
    /* only the first ':' (and first ';') of a tag is replaced; the rest of
     * the ':' go to the sanitiser */
    { L("k:1|c|#a:b:c"), K("k;a=bc"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a;b;c:d:e"), K("k;a_b;c=de"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a:b;c:d"), K("k;a=b_cd"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a,,b"), K("k;a;;b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a,"), K("k;a;"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#,"), K("k;;"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#"), K("k"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a:b|#c:d"), K("k;a=b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a:b|#"), K("k;a=b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a|b"), K("k;ab"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#|"), K("k;"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a/b"), K("k;a-b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|# a : b "), K("k;_a_=_b_"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|@0.5|#t:v"), K("k;t=v"), .kind = SD, .v = { V('c', 1, 0.5) } },
    { L("k:1|c:2|g|#t"), K("k;t"), .kind = SD, .v = { V('c', 1, 1), V('g', 2, 1) } },
    { L("k:1|c||#t"), K("k;t"), .kind = SD, .v = { BADV } },
    { L("k:1|c|#a:1|c"), K("k;a=1c"), .kind = SD, .v = { V('c', 1, 1) } },
    /* graphite tags in the name */
    { L("name;k=v:1|c"), K("name;k=v"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("name;k=v:1|c|#t:x"), K("name;k=v;t=x"), .kind = SD, .v = { V('c', 1, 1) } },
    /* "|#" before any ':' - statsd's key becomes "k;t=1c" but the only value
     * is its default "1" with no type: one bad line either way */
    { L("k|#t:1|c"), LINE_BAD, .kind = SD },
    /* the tags are not sanitised away when sanitising is off */
    { L("k:1|c|#a:b c;d"), K("k;a=b c_d"), .raw = 1, .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a:b\r"), K("k;a=b"), .kind = DELIB, .v = { V('c', 1, 1) },
      .why = "a trailing CR is ignored (statsd: key k;a=b_)" },
    /* statsd: "k:1|c|#|#a:b".split('|#') is ["k:1|c", "", "a:b"]; bits[1] is
     * empty, so there are no tags and the key is "k".  parse.c looks past
     * the empty first segment's end only for the second "|#" and appends an
     * empty tag: "k;". */
    { L("k:1|c|#|#a:b"), K("k"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "empty first |# segment followed by another |#: statsd has no tags" },
    { L("k:1|c|#|#"), K("k"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "empty first |# segment followed by another |#: statsd has no tags" },
};

static const pcase sanitize_cases[] = {
    { L("a b:1|c"), K("a_b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a \t b:1|c"), K("a_b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\t\tb:1|c"), K("a_b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\vb\fc\rd\ne:1|c"), K("a_b_c_d_e"), .kind = SD, .v = { V('c', 1, 1) } },
    { L(" a :1|c"), K("_a_"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a/b/c:1|c"), K("a-b-c"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a$b%c!d(e)f*g|h,i#j@k:1|c"), K("abcdefghijk"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a.b-c_d;e=f:1|c"), K("a.b-c_d;e=f"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("AZaz09:1|c"), K("AZaz09"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\0b:1|c"), K("ab"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\x01\x1f\x7f" "b:1|c"), K("ab"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("caf\xc3\xa9:1|c"), K("caf"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\xe2\x82\xac" "b:1|c"), K("ab"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\xff" "b\x80:1|c"), K("ab"), .kind = SD, .v = { V('c', 1, 1) } },
    /* statsd replaces whitespace runs before it removes bytes, so a removed
     * byte splits a run into two */
    { L("a \x01 b:1|c"), K("a__b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a \xff b:1|c"), K("a__b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("a / b:1|c"), K("a_-_b"), .kind = SD, .v = { V('c', 1, 1) } },
    /* runs in the name and the tags, and around the ';' that joins them */
    { L("k :1|c|# a"), K("k_;_a"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k \t:1|c|#\t a , b"), K("k_;_a_;_b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a \t: \tb"), K("k;a_=_b"), .kind = SD, .v = { V('c', 1, 1) } },
    { L("k:1|c|#a\t\xc3\xa9\tb"), K("k;a__b"), .kind = SD, .v = { V('c', 1, 1) } },
    /* sanitize off: the key is kept byte for byte */
    { L("a b/c$\x01:1|c"), K("a b/c$\x01"), .raw = 1, .kind = SD, .v = { V('c', 1, 1) } },
    { L("caf\xc3\xa9:1|c"), K("caf\xc3\xa9"), .raw = 1, .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\0b:1|c"), K("a\0b"), .raw = 1, .kind = SD, .v = { V('c', 1, 1) } },
    { L("a\xff" "b:1|c"), K("a\xff" "b"), .raw = 1, .kind = UNDOC, .v = { V('c', 1, 1) },
      .why = "statsd decodes the packet as UTF-8, so its unsanitised key holds U+FFFD (ef bf bd)" },
    /* JavaScript's \s also matches Unicode spaces: statsd turns U+00A0,
     * U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 and
     * U+FEFF into "_" (after decoding the UTF-8), parse.c deletes their
     * bytes. */
    { L("a\xc2\xa0" "b:1|c"), K("a_b"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+00A0 is whitespace to statsd's /\\s+/: a_b (parse.c: ab)" },
    { L("a \xc2\xa0 b:1|c"), K("a_b"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+00A0 joins the whitespace run in statsd: a_b (parse.c: a__b)" },
    { L("a\xe3\x80\x80" "b:1|c"), K("a_b"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+3000 is whitespace to statsd's /\\s+/" },
    { L("a\xe2\x80\xa8" "b:1|c"), K("a_b"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+2028 is whitespace to statsd's /\\s+/" },
    { L("\xef\xbb\xbf" "k:1|c"), K("_k"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+FEFF (a BOM) is whitespace to statsd's /\\s+/" },
    { L("k:1|c|#a:\xc2\xa0" "b"), K("k;a=_b"), .kind = BUG, .v = { V('c', 1, 1) },
      .why = "U+00A0 in a tag is whitespace to statsd's /\\s+/" },
};

static const pcase set_cases[] = {
    { L("k:abc|s"), K("k"), .kind = SD, .v = { VS("abc", 1) } },
    { L("k:a b|s"), K("k"), .kind = SD, .v = { VS("a b", 1) } },
    { L("k:NaN|s"), K("k"), .kind = SD, .v = { VS("NaN", 1) } },
    { L("k:-1|s"), K("k"), .kind = SD, .v = { VS("-1", 1) } },
    { L("k:a#b@c,d|s"), K("k"), .kind = SD, .v = { VS("a#b@c,d", 1) } },
    { L("k:caf\xc3\xa9|s"), K("k"), .kind = SD, .v = { VS("caf\xc3\xa9", 1) } },
    { L("k:|s"), K("k"), .kind = SD, .v = { VS("0", 1) } },
    { L("k:|s|@0.5"), K("k"), .kind = SD, .v = { VS("0", 0.5) } },
    { L("k:a|s:|s:b|s"), K("k"), .kind = SD, .v = { VS("a", 1), VS("0", 1), VS("b", 1) } },
    { L("k:\xff|s"), K("k"), .kind = UNDOC, .v = { VS("\xff", 1) },
      .why = "statsd decodes UTF-8: the member is U+FFFD, so \\xff and \\xfe are one member; "
             "parse.c hands out the bytes as sent" },
    { L("k:x|s\r"), K("k"), .kind = DELIB, .v = { VS("x", 1) },
      .why = "a trailing CR is ignored (statsd: fields[1] is \"s\\r\", not \"s\", so x must "
             "be a number: bad)" },
    /* is_valid_packet switches on the UNTRIMMED type: " s", "s " and "s\t"
     * are not 's', so statsd's default branch wants a number and counts a
     * bad line for anything else (only afterwards is the type trimmed). */
    { L("k:x| s"), K("k"), .kind = BUG, .v = { BADV },
      .why = "statsd: \" s\" takes the default branch of is_valid_packet: x is not a number" },
    { L("k:x|s "), K("k"), .kind = BUG, .v = { BADV },
      .why = "statsd: \"s \" takes the default branch of is_valid_packet: x is not a number" },
    { L("k:x|s\t"), K("k"), .kind = BUG, .v = { BADV },
      .why = "statsd: \"s\\t\" takes the default branch of is_valid_packet: x is not a number" },
    { L("k:| s"), K("k"), .kind = BUG, .v = { BADV },
      .why = "statsd: \" s\" takes the default branch: \"\" is not a number (parse.c: member \"0\")" },
};

static const pcase gauge_cases[] = {
    { L("k:+5|g"), K("k"), .kind = SD, .v = { VD(5, 1, "+5") } },
    { L("k:-5|g"), K("k"), .kind = SD, .v = { VD(-5, 1, "-5") } },
    { L("k:5|g"), K("k"), .kind = SD, .v = { VT('g', 5, 1, "5") } },
    { L("k:+0|g"), K("k"), .kind = SD, .v = { VD(0, 1, "+0") } },
    { L("k:-0.5|g"), K("k"), .kind = SD, .v = { VD(-0.5, 1, "-0.5") } },
    { L("k:+.5e1|g"), K("k"), .kind = SD, .v = { VD(5, 1, "+.5e1") } },
    /* statsd tests /^[-+]/ on the untrimmed text: " +5" is not a delta */
    { L("k: +5|g"), K("k"), .kind = SD, .v = { VT('g', 5, 1, " +5") } },
    { L("k:5| g"), K("k"), .kind = SD, .v = { V('g', 5, 1) } },
    { L("k:-5|g|@0.5"), K("k"), .kind = SD, .v = { VD(-5, 0.5, "-5") } },
    { L("k:x|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:+|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:--5|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:+-5|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:x| g"), K("k"), .kind = SD, .v = { BADV } },
};

static const pcase timer_cases[] = {
    { L("k:0|ms"), K("k"), .kind = SD, .v = { V('t', 0, 1) } },
    { L("k:-0|ms"), K("k"), .kind = SD, .v = { V('t', -0.0, 1) } },
    { L("k:-0.0|ms"), K("k"), .kind = SD, .v = { V('t', -0.0, 1) } },
    { L("k:-1e-400|ms"), K("k"), .kind = SD, .v = { V('t', -0.0, 1) } },
    { L("k:320|ms|@0.1"), K("k"), .kind = SD, .v = { V('t', 320, 0.1) } },
    { L("k:-1|ms"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:-0.001|ms"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:|ms"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:x|ms"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:-1|h"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "h is a timer (statsd: a counter of -1)" },
    { L("k:-1|d"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "d is a timer (statsd: a counter of -1)" },
    /* is_valid_packet only checks >= 0 when the untrimmed type is "ms" */
    { L("k:-1| ms"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd accepts a timer of -1 when the type is \" ms\" (untrimmed switch)" },
    { L("k:-1|ms\r"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "a trailing CR is ignored (statsd: \"ms\\r\" skips the >= 0 check, timer -1)" },
};

static const pcase number_cases[] = {
    { L("k:x|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:NaN|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:NaN|g"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:NaN|ms"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1.2.3|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1e|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:e5|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:.|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:-|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1_000|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1,5|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:0x|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:1 2|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:inf|c"), K("k"), .kind = SD, .v = { BADV } },
    { L("k:Infinity|c"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd accepts Infinity)" },
    { L("k:-Infinity|g"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd accepts -Infinity)" },
    { L("k:Infinity|ms"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd accepts Infinity)" },
    { L("k:0x10|c"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd: 16)" },
    { L("k:0b1|c"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd: 1)" },
    { L("k:0o7|c"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals (statsd: 7)" },
    { L("k:1e999|c"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals, finite (statsd: Infinity)" },
    { L("k:-1e999|g"), K("k"), .kind = DELIB, .v = { BADV },
      .why = "values are plain decimals, finite (statsd: -Infinity)" },
    /* Number() trims all JS whitespace and reads "" as 0; numfmt.h takes
     * only spaces and tabs around a number and needs a digit. */
    { L("k: |c"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd: Number(' ') is 0 and ' ' is truthy, so a counter of 0" },
    { L("k:\t|ms"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd: a timer of 0" },
    { L("k:\v1|c"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd: Number('\\v1') is 1" },
    { L("k:1\r|c"), K("k"), .kind = UNDOC, .v = { BADV },
      .why = "statsd: Number('1\\r') is 1" },
};

static const pcase line_cases[] = {
    { L(""), LINE_EMPTY, .kind = SD },
    { L("\r"), LINE_EMPTY, .kind = DELIB,
      .why = "a trailing CR is ignored (statsd: key \"_\", one bad line)" },
    { L("k"), LINE_BAD, .kind = SD },   /* statsd: one bad line */
    { L("kkk|c"), LINE_BAD, .kind = SD },
    { L("k\r"), LINE_BAD, .kind = SD },
    { L(" :1|c"), K("_"), .kind = SD, .v = { V('c', 1, 1) } },
    { L(":1|c"), LINE_BAD, .kind = DELIB,
      .why = "an empty key is bad (statsd: key \"\")" },
    { L("$$$:1|c"), LINE_BAD, .kind = DELIB,
      .why = "a key that sanitises to nothing is an empty key (statsd: key \"\")" },
    { L(":1|c|#a"), LINE_BAD, .kind = DELIB,
      .why = "an empty name is an empty key even with tags (statsd: key \";a\")" },
    { L(":1|c"), LINE_BAD, .raw = 1, .kind = DELIB,
      .why = "an empty key is bad (statsd: key \"\")" },
    { L("$$$:1|c"), K("$$$"), .raw = 1, .kind = SD, .v = { V('c', 1, 1) } },
};

static const struct group {
    const char *name;
    const pcase *cases;
    size_t n;
} groups[] = {
#define G(a) { #a, a, sizeof(a) / sizeof(a[0]) }
    G(types_cases), G(unknown_type_cases), G(rate_cases), G(multi_cases),
    G(dogstatsd_cases), G(tag_cases), G(sanitize_cases), G(set_cases), G(gauge_cases),
    G(timer_cases), G(number_cases), G(line_cases),
#undef G
};

/* ---------------------------------------------------------------------- */
/* Running a table                                                         */

static void escape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int same_double(double a, double b)
{
    return a == b && signbit(a) == signbit(b);
}

/* Returns 1 when the row holds, 0 (after printing why) when not. */
static int run_case(const pcase *c)
{
    char key[SY_KEY_MAX];
    char esc[512], esc2[512];
    memset(key, 0x5a, sizeof key);
    escape(c->line, c->len, esc, sizeof esc);

    /* the line in a block of its own exact size: ASan sees overreads */
    char *line = malloc(c->len ? c->len : 1);
    assert_non_null(line);
    memcpy(line, c->line, c->len);

    sy_line it;
    int rc = sy_parse_begin(&it, line, c->len, key, !c->raw);
    int ok = 1;
#define FAIL(...) do { \
        print_message("  [%s] \"%s\"%s: ", kind_name[c->kind], esc, c->raw ? " (sanitize off)" : ""); \
        print_message(__VA_ARGS__); \
        if (c->why) print_message("      (%s)\n", c->why); \
        ok = 0; goto out; \
    } while (0)

    if (rc != c->begin) {
        if (rc >= 0)
            escape(key, (size_t)rc, esc2, sizeof esc2);
        else
            esc2[0] = '\0';
        FAIL("sy_parse_begin = %d \"%s\", expected %d\n", rc, esc2, c->begin);
    }
    if (rc < 0)
        goto out;
    if (key[rc] != '\0')
        FAIL("key not NUL-terminated\n");
    if (memcmp(key, c->key, c->key_len) != 0) {
        escape(key, (size_t)rc, esc2, sizeof esc2);
        char esc3[512];
        escape(c->key, c->key_len, esc3, sizeof esc3);
        FAIL("key \"%s\", expected \"%s\"\n", esc2, esc3);
    }
    for (int i = 0;; i++) {
        const vexp *e = i < 6 ? &c->v[i] : NULL;
        sy_sample s;
        memset(&s, 0, sizeof s);
        s.name = "untouched";
        int r = sy_parse_next(&it, &s);
        int want = e ? e->rc : 0;
        if (r != want)
            FAIL("value %d: sy_parse_next = %d, expected %d\n", i, r, want);
        if (r == 0)
            break;
        if (strcmp(s.name, "untouched") != 0)
            FAIL("value %d: out->name was written\n", i);
        if (r < 0)
            continue;
        if (s.type != (uint8_t)e->type)
            FAIL("value %d: type '%c', expected '%c'\n", i, s.type, e->type);
        if (!same_double(s.rate, e->rate))
            FAIL("value %d: rate %.17g, expected %.17g\n", i, s.rate, e->rate);
        if (s.is_delta != e->delta)
            FAIL("value %d: is_delta %d, expected %d\n", i, s.is_delta, e->delta);
        if (e->type != 's' && !same_double(s.value, e->value))
            FAIL("value %d: value %.17g, expected %.17g\n", i, s.value, e->value);
        if (e->text && (s.text_len != e->text_len || memcmp(s.text, e->text, e->text_len) != 0)) {
            escape(s.text, s.text_len, esc2, sizeof esc2);
            FAIL("value %d: text \"%s\"\n", i, esc2);
        }
        /* the text is borrowed from the line (or the static "0") */
        if (s.text_len && !(s.text >= line && s.text + s.text_len <= line + c->len) &&
            !(s.text_len == 1 && s.text[0] == '0'))
            FAIL("value %d: text points outside the line\n", i);
    }
    {
        sy_sample s;
        if (sy_parse_next(&it, &s) != 0)
            FAIL("sy_parse_next after the end is not 0\n");
    }
out:
#undef FAIL
    free(line);
    return ok;
}

static void run_group(const pcase *cases, size_t n, int kinds_mask)
{
    size_t failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(kinds_mask & (1 << cases[i].kind)))
            continue;
        ran++;
        if (!run_case(&cases[i]))
            failed++;
    }
    if (failed)
        print_message("  %zu of %zu rows failed\n", failed, ran);
    assert_int_equal(failed, 0);
}

#define NOT_BUG ((1 << SD) | (1 << DELIB) | (1 << UNDOC))
#define TABLE_TEST(name)                                                 \
    static void test_##name(void **state)                                \
    {                                                                    \
        (void)state;                                                     \
        run_group(name##_cases, sizeof name##_cases / sizeof name##_cases[0], NOT_BUG); \
    }

TABLE_TEST(types)
TABLE_TEST(unknown_type)
TABLE_TEST(rate)
TABLE_TEST(multi)
TABLE_TEST(dogstatsd)
TABLE_TEST(tag)
TABLE_TEST(sanitize)
TABLE_TEST(set)
TABLE_TEST(gauge)
TABLE_TEST(timer)
TABLE_TEST(number)
TABLE_TEST(line)

/*
 * The BUG rows of every table: statsd's answer where parse.c currently
 * disagrees without documenting it.  THIS TEST FAILS with the current
 * parse.c; each failing row is printed with its reason.
 */
static void test_statsd_disagreements(void **state)
{
    (void)state;
    size_t failed = 0, ran = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (size_t i = 0; i < groups[g].n; i++) {
            if (groups[g].cases[i].kind != BUG)
                continue;
            ran++;
            if (!run_case(&groups[g].cases[i]))
                failed++;
        }
    if (failed)
        print_message("  %zu of %zu statsd-disagreement rows fail (bugs in parse.c, see the "
                      "BUG rows in test_parse.c)\n", failed, ran);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------- */
/* Keys at and past SY_KEY_MAX                                             */

static int begin_str(const char *line, size_t len, char *key, int sanitize)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, line, len);
    sy_line it;
    int rc = sy_parse_begin(&it, copy, len, key, sanitize);
    if (rc >= 0) {
        sy_sample s;
        assert_int_equal(sy_parse_next(&it, &s), 1);
        assert_int_equal(s.type, SY_SAMPLE_COUNTER);
        assert_int_equal(sy_parse_next(&it, &s), 0);
    }
    free(copy);
    return rc;
}

/* DELIB (parse.h): the longest key is SY_KEY_MAX - 1 bytes, tags included,
 * counted after sanitising; statsd has no limit. */
static void test_key_limit(void **state)
{
    (void)state;
    enum { MAX = SY_KEY_MAX - 1 };
    char line[4 * SY_KEY_MAX];
    char key[SY_KEY_MAX];

    for (int sanitize = 0; sanitize <= 1; sanitize++) {
        /* exactly at the limit */
        memset(line, 'a', MAX);
        memcpy(line + MAX, ":1|c", 4);
        memset(key, 0x5a, sizeof key);
        assert_int_equal(begin_str(line, MAX + 4, key, sanitize), MAX);
        assert_int_equal(key[MAX], '\0');
        assert_int_equal(strlen(key), MAX);

        /* one past */
        memset(line, 'a', MAX + 1);
        memcpy(line + MAX + 1, ":1|c", 4);
        assert_int_equal(begin_str(line, MAX + 1 + 4, key, sanitize), SY_PARSE_TOO_LONG);

        /* far past */
        memset(line, 'a', 3 * SY_KEY_MAX);
        memcpy(line + 3 * SY_KEY_MAX, ":1|c", 4);
        assert_int_equal(begin_str(line, 3 * SY_KEY_MAX + 4, key, sanitize), SY_PARSE_TOO_LONG);

        /* tags count: name + ";" + tag */
        size_t name = 1000, tag = MAX - name - 1;
        memset(line, 'a', name);
        memcpy(line + name, ":1|c|#", 6);
        memset(line + name + 6, 't', tag);
        assert_int_equal(begin_str(line, name + 6 + tag, key, sanitize), MAX);
        assert_int_equal(key[name], ';');
        line[name + 6 + tag] = 't';
        assert_int_equal(begin_str(line, name + 6 + tag + 1, key, sanitize), SY_PARSE_TOO_LONG);

        /* two tags, the second pushes it over by one */
        memset(line, 'a', name);
        memcpy(line + name, ":1|c|#x,", 8);
        tag = MAX - name - 3; /* ";x" ";" then the tag */
        memset(line + name + 8, 't', tag);
        assert_int_equal(begin_str(line, name + 8 + tag, key, sanitize), MAX);
        line[name + 8 + tag] = 't';
        assert_int_equal(begin_str(line, name + 8 + tag + 1, key, sanitize), SY_PARSE_TOO_LONG);
    }

    /* the limit applies to the sanitised key: removed bytes do not count */
    memset(line, 'a', MAX);
    memset(line + MAX, '$', 2 * SY_KEY_MAX);
    memcpy(line + MAX + 2 * SY_KEY_MAX, ":1|c", 4);
    assert_int_equal(begin_str(line, MAX + 2 * SY_KEY_MAX + 4, key, 1), MAX);
    /* and a whitespace run of any length is one byte */
    memset(line, 'a', MAX - 1);
    memset(line + MAX - 1, ' ', 2 * SY_KEY_MAX);
    memcpy(line + MAX - 1 + 2 * SY_KEY_MAX, ":1|c", 4);
    assert_int_equal(begin_str(line, MAX - 1 + 2 * SY_KEY_MAX + 4, key, 1), MAX);
    assert_int_equal(key[MAX - 1], '_');
    /* unsanitised, the same bytes are too many */
    assert_int_equal(begin_str(line, MAX - 1 + 2 * SY_KEY_MAX + 4, key, 0), SY_PARSE_TOO_LONG);
}

/* ---------------------------------------------------------------------- */
/* sy_split_lines                                                          */

typedef struct split_rec {
    size_t n;
    const char *p[16];
    size_t len[16];
} split_rec;

static void split_cb(void *ctx, const char *line, size_t len)
{
    split_rec *r = ctx;
    assert_true(r->n < 16);
    r->p[r->n] = line;
    r->len[r->n] = len;
    r->n++;
}

static void expect_split(const char *buf, size_t len, size_t n, const char *const *want)
{
    split_rec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(sy_split_lines(buf, len, split_cb, &r), n);
    assert_int_equal(r.n, n);
    const char *p = buf;
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(r.p[i], p); /* in place, in order */
        assert_int_equal(r.len[i], strlen(want[i]));
        assert_memory_equal(r.p[i], want[i], r.len[i]);
        p += r.len[i] + 1;
    }
}

#define SPLIT(buf, ...) do { \
        static const char *const w_[] = { __VA_ARGS__ }; \
        expect_split(buf, sizeof(buf) - 1, sizeof w_ / sizeof w_[0], w_); \
    } while (0)

/*
 * statsd: packet.split("\n") then `continue` on empty lines.  Its split
 * also yields a trailing "" for a packet ending in "\n" (and one "" for an
 * empty packet), which sy_split_lines does not report; since statsd skips
 * empty lines without counting them, nothing observable differs.
 */
/* The container IDs and timestamps a line held, as its caller counts
 * them. */
static void test_dogstatsd_counts(void **state)
{
    (void)state;
    static const struct { const char *line; unsigned containers, timestamps; } rows[] = {
        { "k:1|c", 0, 0 },
        { "k:1|c|c:abc", 1, 0 },
        { "k:1|c|T1700000000", 0, 1 },
        { "k:1|c|#a:b|c:abc|T1700000000", 1, 1 },
        { "k:1|c|c:abc|T1:2|c|T2", 1, 2 },
        { "k:1:2:3|ms|c:abc", 1, 0 },
        { "k:1|c:2|c", 0, 0 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char key[SY_KEY_MAX];
        sy_line it;
        sy_sample sm;
        assert_true(sy_parse_begin(&it, rows[i].line, strlen(rows[i].line), key, 1) > 0);
        while (sy_parse_next(&it, &sm) != 0)
            ;
        if (it.containers != rows[i].containers || it.timestamps != rows[i].timestamps)
            fail_msg("%s: %u containers, %u timestamps; expected %u, %u", rows[i].line, it.containers,
                     it.timestamps, rows[i].containers, rows[i].timestamps);
    }
}

/* The DogStatsD time each value of a line gets (sy_parse_time): its own
 * part's "T" field, the typed part's for values that borrow its type, the
 * tags' part's for the whole line; 0 without one. */
static void test_dogstatsd_times(void **state)
{
    (void)state;
    static const struct { const char *line; int n; int64_t ts[4]; } rows[] = {
        { "k:1|c", 1, { 0 } },
        { "k:1|c|T1700000000", 1, { 1700000000 } },
        { "k:1|c|@0.5|c:abc|T1700000001", 1, { 1700000001 } },
        { "k:1|c|#a:b|T1700000002", 1, { 1700000002 } },
        { "k:1|c|#a:b|c:x|T1700000003", 1, { 1700000003 } },
        { "k:1:2:3|ms|T1700000004", 3, { 1700000004, 1700000004, 1700000004 } },
        { "k:1:2|ms|#a:b|T1700000005", 2, { 1700000005, 1700000005 } },
        { "k:1|c:2|c|T6", 2, { 0, 6 } },
        { "k:1|c|T5:2|c|T6", 2, { 5, 6 } },
        { "k:1|c:2|g", 2, { 0, 0 } },
        { "k:1|c|T0", 1, { SY_PARSE_TS_BAD } },
        { "k:1|c|T1234567890123", 1, { SY_PARSE_TS_BAD } },
        { "k:1|c|T999999999999", 1, { 999999999999 } },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char key[SY_KEY_MAX];
        sy_line it;
        sy_sample sm;
        int n = 0, rc;
        assert_true(sy_parse_begin(&it, rows[i].line, strlen(rows[i].line), key, 1) > 0);
        while ((rc = sy_parse_next(&it, &sm)) != 0) {
            assert_int_equal(rc, 1);
            int64_t ts = sy_parse_may_have_time(&it) ? sy_parse_time(&it) : 0;
            if (n >= rows[i].n || ts != rows[i].ts[n])
                fail_msg("%s: value %d has time %lld", rows[i].line, n, (long long)ts);
            n++;
        }
        if (n != rows[i].n)
            fail_msg("%s: %d values", rows[i].line, n);
    }
}

/* A message of 200,000 values takes one pass: each typeless value finds
 * the type once (a search per value would take 2e10 steps here). */
static void test_many_values(void **state)
{
    (void)state;
    enum { N = 200000 };
    size_t cap = 4 + (size_t)N * 3 + 8;
    char *line = malloc(cap);
    assert_non_null(line);
    size_t n = (size_t)snprintf(line, cap, "k");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(line + n, cap - n, ":%d", i % 10);
    n += (size_t)snprintf(line + n, cap - n, "|c");
    char key[SY_KEY_MAX];
    sy_line it;
    sy_sample sm;
    assert_int_equal(sy_parse_begin(&it, line, n, key, 1), 1);
    size_t good = 0;
    double sum = 0;
    int rc;
    while ((rc = sy_parse_next(&it, &sm)) != 0) {
        assert_int_equal(rc, 1);
        assert_int_equal(sm.type, 'c');
        good++;
        sum += sm.value;
    }
    assert_int_equal(good, N);
    assert_true(sum == 4.5 * N);
    free(line);
}

static void test_split_lines(void **state)
{
    (void)state;
    split_rec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(sy_split_lines("", 0, split_cb, &r), 0);
    assert_int_equal(r.n, 0);

    SPLIT("a:1|c", "a:1|c");
    SPLIT("a:1|c\n", "a:1|c");
    SPLIT("a:1|c\nb:2|g", "a:1|c", "b:2|g");
    SPLIT("a:1|c\nb:2|g\n", "a:1|c", "b:2|g");
    SPLIT("a\n\nb\n", "a", "", "b");
    SPLIT("\n", "");
    SPLIT("\n\n", "", "");
    SPLIT("\nx", "", "x");
    SPLIT("a\r\nb\r\n", "a\r", "b\r");
    SPLIT("a\rb", "a\rb");

    /* a buffer with a NUL in it is split by length, not by C string */
    static const char nul[] = "a\0b\nc";
    memset(&r, 0, sizeof r);
    assert_int_equal(sy_split_lines(nul, sizeof nul - 1, split_cb, &r), 2);
    assert_int_equal(r.len[0], 3);
    assert_int_equal(r.len[1], 1);
}

/* A whole packet: split, then parse each line (CRLF endings, an empty line,
 * a bad line), the way the listener uses the two. */
typedef struct packet_rec {
    int empty, bad_lines, bad_values, good;
    char keys[8][64];
    double values[8];
} packet_rec;

static void packet_cb(void *ctx, const char *line, size_t len)
{
    packet_rec *r = ctx;
    char key[SY_KEY_MAX];
    sy_line it;
    int rc = sy_parse_begin(&it, line, len, key, 1);
    if (rc == -2) {
        r->empty++;
        return;
    }
    if (rc < 0) {
        r->bad_lines++;
        return;
    }
    sy_sample s;
    int k;
    while ((k = sy_parse_next(&it, &s)) != 0) {
        if (k < 0) {
            r->bad_values++;
            continue;
        }
        assert_true(r->good < 8);
        assert_true((size_t)rc < sizeof r->keys[0]);
        memcpy(r->keys[r->good], key, (size_t)rc + 1);
        r->values[r->good] = s.value;
        r->good++;
    }
}

static void test_packet(void **state)
{
    (void)state;
    static const char pkt[] = "a:1|c\r\nb b:2|g\r\n\r\n\nc:x|c\nd\ne:3|ms:4|ms|#t:v\n";
    packet_rec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(sy_split_lines(pkt, sizeof pkt - 1, packet_cb, &r), 7);
    assert_int_equal(r.empty, 2);       /* "\r" (DELIB: statsd key "_", bad) and "" */
    assert_int_equal(r.bad_lines, 1);   /* "d" */
    assert_int_equal(r.bad_values, 1);  /* "c:x|c" */
    assert_int_equal(r.good, 4);
    assert_string_equal(r.keys[0], "a");
    assert_string_equal(r.keys[1], "b_b");
    assert_string_equal(r.keys[2], "e;t=v");
    assert_string_equal(r.keys[3], "e;t=v");
    assert_true(r.values[0] == 1 && r.values[1] == 2 && r.values[2] == 3 && r.values[3] == 4);
}

/* sy_parse_next on a line whose values are exhausted keeps returning 0. */
static void test_next_after_end(void **state)
{
    (void)state;
    char key[SY_KEY_MAX];
    sy_line it;
    sy_sample s;
    static const char l1[] = "k:1|c";
    assert_int_equal(sy_parse_begin(&it, l1, sizeof l1 - 1, key, 1), 1);
    assert_int_equal(sy_parse_next(&it, &s), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sy_parse_next(&it, &s), 0);
    static const char l2[] = "k:x|c";
    assert_int_equal(sy_parse_begin(&it, l2, sizeof l2 - 1, key, 1), 1);
    assert_int_equal(sy_parse_next(&it, &s), -1);
    assert_int_equal(sy_parse_next(&it, &s), 0);
    assert_int_equal(sy_parse_next(&it, &s), 0);
}

/* ---------------------------------------------------------------------- */
/* Randomized robustness                                                   */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

static const char *const tokens[] = {
    "|c", "|g", "|ms", "|s", "|h", "|d", "|@0.5", "|@", "|#", "|#a:b,c:d", ":1|c",
    "NaN", "Infinity", "0x10", "1e999", "-0", "+5", ".5", "5.", "e-3", "\r", "\xc2\xa0",
    "\xc3\xa9", "/", "  ", "\t", ";k=v", "::", "||", ",,",
};

/* Noise: random bytes, biased toward StatsD bytes. */
static size_t random_bytes(char *buf, size_t len)
{
    static const char statsd_bytes[] = ":|@#,;=.-+eE ";
    static const char digits[] = "0123456789";
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCZcgmshd";
    size_t n = 0;
    while (n < len) {
        unsigned pick = (unsigned)rng_below(100);
        if (pick < 30) {
            buf[n++] = statsd_bytes[rng_below(sizeof statsd_bytes - 1)];
        } else if (pick < 50) {
            buf[n++] = digits[rng_below(10)];
        } else if (pick < 75) {
            buf[n++] = letters[rng_below(sizeof letters - 1)];
        } else if (pick < 90) {
            const char *t = tokens[rng_below(sizeof tokens / sizeof tokens[0])];
            size_t tl = strlen(t);
            if (tl > len - n)
                tl = len - n;
            memcpy(buf + n, t, tl);
            n += tl;
        } else {
            buf[n++] = (char)(rng() & 0xff); /* anything, NUL included */
        }
    }
    return n;
}

static const char *pick(const char *const *list, size_t n)
{
    return list[rng_below(n)];
}
#define PICK(list) pick(list, sizeof list / sizeof list[0])

static void put(char *buf, size_t *n, size_t cap, const char *s)
{
    size_t l = strlen(s);
    if (l > cap - *n)
        l = cap - *n;
    memcpy(buf + *n, s, l);
    *n += l;
}

/* A line built from the grammar (key, values, types, rates, tags) with
 * pieces of noise, then a few bytes mutated. */
static size_t grammar_line(char *buf, size_t cap)
{
    static const char *const keys[] = {
        "k", "a.b.c", "api.req-count_total", "name;k=v", " sp ace ", "a/b", "$$$", "",
        "caf\xc3\xa9", "x\xc2\xa0y", "t\tab", "UPPER.lower",
    };
    static const char *const values[] = {
        "1", "0", "-0", "+5", "-5", "1.5", ".5", "5.", "1e3", "-1e-3", "1e999", "NaN",
        "Infinity", "0x10", "", " 1 ", "abc", "-", "+", "1.2.3", "123456789012345678901234",
        "0.1", "-17", "+0.25e2",
    };
    static const char *const types[] = {
        "c", "g", "ms", "s", "h", "d", " c", "g ", "x", "", "msx", "C", "s\t",
    };
    static const char *const rates[] = {
        "0.5", "1", "2", ".5", "5.", "0.5e1", "0", "-0.5", "+0.5", "", "x", "0.1", "1e-5",
    };
    static const char *const tags[] = {
        "env:prod", "role:web", "a:b:c", "a;b", "", " t ", "x", "k:v|#y", "n:1",
    };
    size_t n = 0;
    if (rng_below(8) == 0) {
        char noise[64];
        size_t l = random_bytes(noise, rng_below(20));
        if (l > cap - n) l = cap - n;
        memcpy(buf + n, noise, l);
        n += l;
    } else {
        put(buf, &n, cap, PICK(keys));
    }
    int nv = 1 + (int)rng_below(4);
    for (int v = 0; v < nv; v++) {
        put(buf, &n, cap, ":");
        put(buf, &n, cap, PICK(values));
        if (rng_below(10))
            put(buf, &n, cap, "|"), put(buf, &n, cap, PICK(types));
        if (rng_below(4) == 0)
            put(buf, &n, cap, "|@"), put(buf, &n, cap, PICK(rates));
    }
    if (rng_below(3) == 0) {
        put(buf, &n, cap, "|#");
        int nt = (int)rng_below(4);
        for (int t = 0; t < nt; t++) {
            if (t)
                put(buf, &n, cap, ",");
            put(buf, &n, cap, PICK(tags));
        }
    }
    if (rng_below(10) == 0)
        put(buf, &n, cap, "\r");
    int muts = rng_below(2) ? 0 : (int)rng_below(4);
    for (int m = 0; m < muts && n; m++) {
        size_t at = rng_below(n);
        switch (rng_below(3)) {
        case 0: /* replace */
            random_bytes(buf + at, 1);
            break;
        case 1: /* delete */
            memmove(buf + at, buf + at + 1, n - at - 1);
            n--;
            break;
        default: /* insert */
            if (n < cap) {
                memmove(buf + at + 1, buf + at, n - at);
                random_bytes(buf + at, 1);
                n++;
            }
        }
    }
    return n;
}

/* One random line of at most len bytes: half from the grammar, half noise. */
static size_t random_line(char *buf, size_t len)
{
    if (rng_below(2))
        return grammar_line(buf, len);
    return random_bytes(buf, len);
}

static int kept_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ';' || c == '=';
}

typedef struct fuzz_stats {
    size_t lines, empty, bad_lines, keys, good, bad_values, sets, deltas, rated, tagged, maxkey;
} fuzz_stats;

static void fuzz_one(const char *line, size_t len, int sanitize, fuzz_stats *st)
{
    char key[SY_KEY_MAX + 16];
    memset(key, 0xa5, sizeof key);
    sy_line it;
    st->lines++;
    int rc = sy_parse_begin(&it, line, len, key, sanitize);
    if (rc == -2) {
        /* only an empty line (or a lone CR) is empty */
        assert_true(len == 0 || (len == 1 && line[0] == '\r'));
        st->empty++;
        return;
    }
    if (rc == -1) {
        st->bad_lines++;
        return;
    }
    assert_true(rc > 0);
    assert_true(rc < SY_KEY_MAX);
    assert_int_equal(key[rc], '\0');
    /* nothing written past the terminator */
    for (size_t i = (size_t)rc + 1; i < sizeof key; i++)
        assert_int_equal((unsigned char)key[i], 0xa5);
    if (sanitize) {
        for (int i = 0; i < rc; i++)
            if (!kept_byte((unsigned char)key[i]))
                fail_msg("key byte 0x%02x at %d is not one the sanitiser keeps",
                         (unsigned char)key[i], i);
    }
    st->keys++;
    if ((size_t)rc > st->maxkey)
        st->maxkey = (size_t)rc;
    if (memchr(key, ';', (size_t)rc))
        st->tagged++;

    size_t colons = 0;
    for (size_t i = 0; i < len; i++)
        colons += line[i] == ':';
    size_t calls = 0;
    for (;;) {
        sy_sample s;
        memset(&s, 0x5a, sizeof s);
        s.name = "untouched";
        int r = sy_parse_next(&it, &s);
        assert_true(r >= -1 && r <= 1);
        if (r == 0)
            break;
        calls++;
        assert_true(calls <= colons); /* one value per ':' at most */
        assert_string_equal(s.name, "untouched");
        if (r < 0) {
            st->bad_values++;
            continue;
        }
        st->good++;
        assert_true(s.type == SY_SAMPLE_COUNTER || s.type == SY_SAMPLE_GAUGE ||
                    s.type == SY_SAMPLE_TIMER || s.type == SY_SAMPLE_SET);
        assert_true(isfinite(s.rate) && s.rate > 0);
        if (s.rate != 1)
            st->rated++;
        assert_true(s.is_delta == 0 || s.is_delta == 1);
        if (s.is_delta) {
            assert_int_equal(s.type, SY_SAMPLE_GAUGE);
            st->deltas++;
        }
        assert_true(s.text_len <= len);
        assert_true((s.text >= line && s.text + s.text_len <= line + len) ||
                    (s.type == SY_SAMPLE_SET && s.text_len == 1 && s.text[0] == '0'));
        if (s.type == SY_SAMPLE_SET) {
            st->sets++;
            assert_true(s.text_len > 0);
            assert_null(memchr(s.text, ':', s.text_len));
            assert_null(memchr(s.text, '|', s.text_len));
        } else {
            assert_true(isfinite(s.value));
            if (s.type == SY_SAMPLE_TIMER)
                assert_true(s.value >= 0);
        }
    }
    sy_sample s;
    assert_int_equal(sy_parse_next(&it, &s), 0);
}

static void test_random_lines(void **state)
{
    (void)state;
    const char *seed_env = getenv("SY_PARSE_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed5eed5eedULL;
    rng_state = seed ? seed : 1;
    print_message("  seed 0x%llx (set SY_PARSE_SEED to change)\n", (unsigned long long)seed);

    fuzz_stats st;
    memset(&st, 0, sizeof st);
    char buf[2200];
    for (long i = 0; i < 1000000; i++) {
        size_t want = rng_below(301); /* 0..300 */
        size_t n = random_line(buf, want);
        /* exactly n bytes, unterminated: ASan catches a read past the end */
        char *line = malloc(n ? n : 1);
        assert_non_null(line);
        memcpy(line, buf, n);
        fuzz_one(line, n, (int)(i & 1) || (i % 7 == 0), &st);
        free(line);
    }
    /* and some long ones, to reach the key limit */
    for (long i = 0; i < 20000; i++) {
        size_t n = 900 + rng_below(sizeof buf - 900);
        /* mostly key bytes, then the rest random */
        size_t k = n - rng_below(64);
        memset(buf, 'k', k);
        for (size_t j = 0; j < k; j += 1 + rng_below(50))
            buf[j] = (char)(rng() & 0xff);
        random_bytes(buf + k, n - k);
        char *line = malloc(n);
        assert_non_null(line);
        memcpy(line, buf, n);
        fuzz_one(line, n, (int)(i & 1), &st);
        free(line);
    }
    print_message("  %zu lines: %zu empty, %zu bad lines, %zu keys (%zu tagged, longest %zu), "
                  "%zu good values (%zu sets, %zu gauge deltas, %zu with a rate), %zu bad values\n",
                  st.lines, st.empty, st.bad_lines, st.keys, st.tagged, st.maxkey, st.good,
                  st.sets, st.deltas, st.rated, st.bad_values);
    /* the generator must actually reach the interesting paths */
    assert_true(st.keys > 100000);
    assert_true(st.good > 10000);
    assert_true(st.bad_values > 10000);
    assert_true(st.sets > 1000 && st.deltas > 100 && st.rated > 100 && st.tagged > 10000);
    assert_true(st.maxkey > 900 && st.maxkey < SY_KEY_MAX);
}

/* Random splitting: the callback sees every byte exactly once, in order. */
typedef struct split_check {
    const char *buf;
    size_t pos, lines;
} split_check;

static void split_check_cb(void *ctx, const char *line, size_t len)
{
    split_check *c = ctx;
    assert_ptr_equal(line, c->buf + c->pos);
    assert_null(memchr(line, '\n', len));
    c->pos += len + 1;
    c->lines++;
}

static void test_random_split(void **state)
{
    (void)state;
    rng_state = 0x51177;
    char buf[300];
    for (int i = 0; i < 100000; i++) {
        size_t n = rng_below(sizeof buf + 1);
        size_t nl = 0;
        for (size_t j = 0; j < n; j++) {
            unsigned r = (unsigned)rng_below(8);
            buf[j] = r == 0 ? '\n' : r == 1 ? '\r' : (char)('a' + r);
            nl += buf[j] == '\n';
        }
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        split_check c = { copy, 0, 0 };
        size_t got = sy_split_lines(copy, n, split_check_cb, &c);
        size_t want = nl + (n && copy[n - 1] != '\n' ? 1 : 0);
        assert_int_equal(got, want);
        assert_int_equal(c.lines, want);
        assert_int_equal(c.pos, n + (n && copy[n - 1] != '\n' ? 1 : 0));
        free(copy);
    }
}

/* ---------------------------------------------------------------------- */
/* Keys against a reference built the way statsd's handlePacket builds them:
 * the name, then for each tag (split on ',') ";" and the tag with its first
 * ';' made '_' and then its first ':' made '=', and the whole key
 * sanitised as statsd's three regexes do it, one after the other
 * (/\s+/g -> '_', '/' -> '-', then every byte outside [a-zA-Z_\-0-9.;=]
 * removed).  parse.c builds the key in one pass with no such steps; this
 * holds it to them over random names and tag lists made mostly of the
 * bytes where the rules meet: whitespace (ASCII and UTF-8), '/', ';', ':',
 * ',', '=', dropped bytes and long clean runs. */

static int ref_kept(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ';' || c == '=';
}

static int ref_space(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
        return 1;
    return (int)sy_utf8_space(p, left);
}

/* statsd's key for name and tags (tags NULL: none); -1 when it is empty
 * or would not fit. */
static int ref_key(const char *name, size_t nlen, const char *tags, size_t tlen, int sanitize,
                   char *out)
{
    static char raw[4 * SY_KEY_MAX], pass1[4 * SY_KEY_MAX];
    size_t n = 0;
    memcpy(raw, name, nlen);
    n = nlen;
    if (tags && tlen) {
        const char *t = tags, *end = tags + tlen;
        for (;;) {
            const char *comma = memchr(t, ',', (size_t)(end - t));
            const char *stop = comma ? comma : end;
            raw[n++] = ';';
            size_t at = n;
            memcpy(raw + n, t, (size_t)(stop - t));
            n += (size_t)(stop - t);
            char *semi = memchr(raw + at, ';', n - at);
            if (semi)
                *semi = '_';
            char *colon = memchr(raw + at, ':', n - at);
            if (colon)
                *colon = '=';
            if (!comma)
                break;
            t = comma + 1;
        }
    }
    if (!sanitize) {
        if (n >= SY_KEY_MAX)
            return -1;
        memcpy(out, raw, n);
        return (int)n;
    }
    /* /\s+/g -> '_' */
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        int u = ref_space((const unsigned char *)raw + i, n - i);
        if (!u) {
            pass1[m++] = raw[i++];
            continue;
        }
        pass1[m++] = '_';
        while (i < n && (u = ref_space((const unsigned char *)raw + i, n - i)) != 0)
            i += (size_t)u;
    }
    /* '/' -> '-', then the bytes outside the kept set go */
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)(pass1[i] == '/' ? '-' : pass1[i]);
        if (ref_kept(c)) {
            if (k >= SY_KEY_MAX - 1)
                return -1;
            out[k++] = (char)c;
        }
    }
    return (int)k;
}

/* Random bytes of a name (no ':') or a tag list (no '|' or '#'). */
static size_t key_bytes(char *buf, size_t want, int tags)
{
    static const char *const pieces[] = {
        " ", "  ", "\t", "/", ";", "=", "_", "-", ".", "!", "@", "\xc2\xa0", "\xe2\x80\x80",
        "\xe3\x80\x80", "\xc2", "\xe2\x80", "\xff", "caf\xc3\xa9", "api", "v3", "latency",
        "ABCDEFGHIJKLMNOP", "abcdefgh12345678", "x",
    };
    size_t n = 0;
    while (n < want) {
        if (tags && rng_below(6) == 0) {
            buf[n++] = rng_below(2) ? ',' : ':';
            continue;
        }
        const char *p = pieces[rng_below(sizeof pieces / sizeof *pieces)];
        size_t l = strlen(p);
        if (n + l > want)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    return n;
}

static void test_keys_against_reference(void **state)
{
    (void)state;
    rng_state = 0x7a65c0de;
    static char line[4 * SY_KEY_MAX], key[SY_KEY_MAX], want[SY_KEY_MAX];
    size_t compared = 0, tagged = 0, long_keys = 0;
    for (long i = 0; i < 300000; i++) {
        int sanitize = i % 5 != 0;
        /* mostly short, now and then near or past the key limit */
        size_t big = i % 97 == 0 ? SY_KEY_MAX - 40 + rng_below(200) : 0;
        size_t nlen = key_bytes(line, big ? big / 2 : 1 + rng_below(40), 0);
        size_t n = nlen;
        memcpy(line + n, ":1|c", 4);
        n += 4;
        const char *tags = NULL;
        size_t tlen = 0;
        if (rng_below(4)) {
            memcpy(line + n, "|#", 2);
            n += 2;
            tags = line + n;
            tlen = key_bytes(line + n, big ? big / 2 : rng_below(60), 1);
            n += tlen;
        }
        /* with a ':' in a tag, statsd's split(':') finds it in the tags,
         * not in the name: the line is "name:1|c|#...", whose first ':'
         * is the value's; no '\r' at the end (parse.c drops it first) */
        if (n && line[n - 1] == '\r')
            continue;
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, line, n);
        sy_line it;
        int got = sy_parse_begin(&it, copy, n, key, sanitize);
        free(copy);
        char name_only[SY_KEY_MAX];
        int name_len = ref_key(line, nlen, NULL, 0, sanitize, name_only);
        int exp = ref_key(line, nlen, tags, tlen, sanitize, want);
        if (name_len == 0) {
            assert_int_equal(got, -1); /* an empty name is an empty key */
            continue;
        }
        if (name_len < 0 || exp < 0) {
            if (got != SY_PARSE_TOO_LONG)
                fail_msg("line %ld: expected SY_PARSE_TOO_LONG, got %d", i, got);
            long_keys++;
            continue;
        }
        if (got != exp || memcmp(key, want, (size_t)exp) != 0 || key[got] != '\0') {
            fail_msg("line %ld (sanitize %d): key %d bytes \"%.*s\", reference %d bytes \"%.*s\"",
                     i, sanitize, got, got > 0 ? got : 0, key, exp, exp, want);
        }
        compared++;
        tagged += tags && tlen;
    }
    print_message("  %zu keys equal to the reference (%zu with tags), %zu too long on both sides\n",
                  compared, tagged, long_keys);
    assert_true(compared > 200000 && tagged > 100000 && long_keys > 50);
}

/* ---------------------------------------------------------------------- */

#ifndef SY_TEST_PARSE_NO_MAIN
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_dogstatsd),
        cmocka_unit_test(test_dogstatsd_counts),
        cmocka_unit_test(test_dogstatsd_times),
        cmocka_unit_test(test_many_values),
        cmocka_unit_test(test_tag),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_number),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_key_limit),
        cmocka_unit_test(test_split_lines),
        cmocka_unit_test(test_packet),
        cmocka_unit_test(test_next_after_end),
        cmocka_unit_test(test_random_lines),
        cmocka_unit_test(test_random_split),
        cmocka_unit_test(test_statsd_disagreements),
        cmocka_unit_test(test_keys_against_reference),
    };
    return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
#endif
