/*
 * numfmt.c - JavaScript-compatible number formatting and a locale-free,
 * correctly rounded decimal parser.  See numfmt.h.
 *
 * Formatting (sy_fmt_double):
 *   - integers below 2^53 are printed directly (the common case in flushes);
 *   - everything else gets its shortest round-trip digits from Grisu3
 *     (Loitsch 2010, as in double-conversion, which is what V8 itself runs),
 *     which settles about 99.5% of doubles and reports the rest;
 *   - the rest fall back to an exact method built on glibc's correctly
 *     rounded printf and strtod (shortest_exact below);
 *   - the digits are then laid out as ECMAScript's Number::toString says.
 *
 * Parsing (sy_parse_double):
 *   - one pass validates the grammar and collects up to 19 significant
 *     digits; when the mantissa is <= 2^53 and the power of ten is exact
 *     (Clinger's fast path) one IEEE multiply or divide gives the correctly
 *     rounded result;
 *   - otherwise the digits are rewritten as "DDDDe[-]X" (no radix character,
 *     at most 801 digits: more than that are cut with a sticky digit, which
 *     keeps the rounding exact) on the stack and given to strtod_l with a
 *     "C" locale.  So there is no length limit and nothing is allocated.
 *
 * Both rely on IEEE doubles evaluated in double precision (FLT_EVAL_METHOD
 * 0: x86-64 SSE2, aarch64) in the default round-to-nearest mode.
 *
 * Nothing here is mutable after initialisation except the "C" locale_t,
 * created once under pthread_once; every function is thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif
#include "util/numfmt.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__)
#error "numfmt.c needs exact IEEE arithmetic; do not build it with -ffast-math"
#endif

/* ---------------------------------------------------------------------- */
/* strtod in the "C" locale                                                */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale; /* set once by c_locale_init, read-only after */

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod_l with the "C" locale.  Our callers only ever pass "DDDDe[-]X"
 * (no radix character), which every locale reads the same way, so plain
 * strtod is a safe fallback should newlocale ever fail. */
static double strtod_c(const char *s, char **end)
{
    pthread_once(&c_locale_once, c_locale_init);
    if (c_locale != (locale_t)0)
        return strtod_l(s, end, c_locale);
    return strtod(s, end);
}

/* ---------------------------------------------------------------------- */
/* Parsing                                                                 */

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static const uint64_t pow10_u64[20] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
    1000000000000000000ULL,
    10000000000000000000ULL,
};

#define TWO_POW_53 (1ULL << 53)

/* Significant digits given to strtod; beyond them a sticky '1' stands for
 * whatever non-zero digits were cut.  A double's rounding boundaries have at
 * most 767 significant digits, so 800 decide every rounding exactly. */
#define SLOW_MAX_DIGITS 800
/* A decimal exponent beyond this gives 0 or overflow whatever the (at most
 * SLOW_MAX_DIGITS + 1) digits are, so it is clamped here. */
#define SLOW_MAX_EXP 100000
/* Exponents in the text stop growing here (beyond any input's length). */
#define EXP_SATURATE 100000000000000000LL

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/*
 * The exact path: the value is the digits of a[0..na) followed by those of
 * b[0..nb) (leading zeros allowed), times 10^e10.  They are copied, without
 * leading zeros, into a canonical "DDDDe[-]X" string for strtod.  -1 when
 * the result overflows to infinity.
 */
static int decimal_slow(int neg, const char *a, size_t na, const char *b, size_t nb,
                        long long e10, double *out)
{
    char buf[SLOW_MAX_DIGITS + 32];
    char *p = buf;
    size_t kept = 0;
    long long dropped = 0;
    int sticky = 0;

    if (neg)
        *p++ = '-';
    for (int part = 0; part < 2; part++) {
        const char *d = part ? b : a;
        size_t n = part ? nb : na;
        for (size_t i = 0; i < n; i++) {
            if (kept == 0 && d[i] == '0')
                continue;
            if (kept < SLOW_MAX_DIGITS) {
                p[kept++] = d[i];
            } else {
                dropped++;
                sticky |= d[i] != '0';
            }
        }
    }
    if (kept == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    e10 += dropped;
    if (sticky) {
        p[kept++] = '1';
        e10--;
    }
    p += kept;
    if (e10 > SLOW_MAX_EXP)
        e10 = SLOW_MAX_EXP;
    else if (e10 < -SLOW_MAX_EXP)
        e10 = -SLOW_MAX_EXP;
    *p++ = 'e';
    if (e10 < 0) {
        *p++ = '-';
        e10 = -e10;
    }
    char tmp[8];
    int nt = 0;
    do {
        tmp[nt++] = (char)('0' + e10 % 10);
        e10 /= 10;
    } while (e10);
    while (nt)
        *p++ = tmp[--nt];
    *p = '\0';

    char *end;
    double v = strtod_c(buf, &end);
    if (end != p || isinf(v))
        return -1;
    *out = v;
    return 0;
}

/*
 * One pass over the text: grammar check plus the first 19 significant
 * digits; then Clinger's fast path when it is exact, else decimal_slow.
 */
int sy_parse_double(const char *s, size_t len, double *out)
{
    if (sy_parse_short_int(s, len, out))
        return 0;
    const char *p = s;
    const char *end = s + len;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        return -1;

    int neg = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }

    uint64_t m = 0;     /* the first 19 significant digits */
    int nsig = 0;       /* significant digits seen; 20 means "more than 19" */
    long long dexp = 0; /* minus the number of fraction digits in m */

    const char *int_p = p;
    while (p < end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (nsig || d) {
            if (nsig < 19) {
                m = m * 10 + d;
                nsig++;
            } else {
                nsig = 20;
            }
        }
        p++;
    }
    size_t int_n = (size_t)(p - int_p);

    const char *frac_p = p;
    size_t frac_n = 0;
    if (p < end && *p == '.') {
        frac_p = ++p;
        while (p < end && is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (nsig || d) {
                if (nsig < 19) {
                    m = m * 10 + d;
                    nsig++;
                    dexp--;
                } else {
                    nsig = 20;
                }
            } else {
                dexp--; /* leading zero of the fraction */
            }
            p++;
        }
        frac_n = (size_t)(p - frac_p);
    }
    if (int_n + frac_n == 0)
        return -1;

    long long ex = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p == end || !is_digit(*p))
            return -1;
        while (p < end && is_digit(*p)) {
            /* Saturate far beyond any digit count a real input can have:
             * from there on the value is 0 or infinity anyway. */
            if (ex < EXP_SATURATE)
                ex = ex * 10 + (*p - '0');
            p++;
        }
        if (eneg)
            ex = -ex;
    }
    if (p != end)
        return -1;

    if (nsig == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }

#if FLT_EVAL_METHOD == 0
    if (nsig <= 19 && m <= TWO_POW_53) {
        long long e10 = dexp + ex;
        double v;
        if (e10 >= 0 && e10 <= 22) {
            v = (double)m * pow10_exact[e10];
        } else if (e10 < 0 && e10 >= -22) {
            v = (double)m / pow10_exact[-e10];
        } else if (e10 > 22 && e10 <= 22 + 15 &&
                   m <= TWO_POW_53 / pow10_u64[e10 - 22]) {
            /* "12e30": 12e8 is still an exact integer, times exact 1e22. */
            v = (double)(m * pow10_u64[e10 - 22]) * pow10_exact[22];
        } else {
            goto slow;
        }
        *out = neg ? -v : v;
        return 0;
    }
slow:
#endif
    return decimal_slow(neg, int_p, int_n, frac_p, frac_n, ex - (long long)frac_n, out);
}

/* ---------------------------------------------------------------------- */
/* Grisu3 (shortest digits, may give up)                                   */

typedef struct {
    uint64_t f;
    int e;
} diyfp; /* f * 2^e */

/* f rounded to nearest of the 128-bit product, as double-conversion does */
static inline diyfp diy_mul(diyfp x, diyfp y)
{
    diyfp r;
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;
    u128 p = (u128)x.f * y.f;
    r.f = (uint64_t)((p + ((u128)1 << 63)) >> 64);
#else
    const uint64_t M32 = 0xFFFFFFFFu;
    uint64_t a = x.f >> 32, b = x.f & M32, c = y.f >> 32, d = y.f & M32;
    uint64_t ac = a * c, bc = b * c, ad = a * d, bd = b * d;
    uint64_t tmp = (bd >> 32) + (ad & M32) + (bc & M32) + (1ULL << 31);
    r.f = ac + (ad >> 32) + (bc >> 32) + (tmp >> 32);
#endif
    r.e = x.e + y.e + 64;
    return r;
}

static inline diyfp diy_normalize(diyfp x)
{
    int s = __builtin_clzll(x.f);
    x.f <<= s;
    x.e -= s;
    return x;
}

/* 10^k for k = -348, -340, ..., 340: 64-bit significand rounded to
 * nearest, binary exponent, k.  Generated with exact rational arithmetic. */
static const struct {
    uint64_t f;
    int16_t e;
    int16_t k;
} cached_powers[] = {
    {0xfa8fd5a0081c0288ULL, -1220, -348},
    {0xbaaee17fa23ebf76ULL, -1193, -340},
    {0x8b16fb203055ac76ULL, -1166, -332},
    {0xcf42894a5dce35eaULL, -1140, -324},
    {0x9a6bb0aa55653b2dULL, -1113, -316},
    {0xe61acf033d1a45dfULL, -1087, -308},
    {0xab70fe17c79ac6caULL, -1060, -300},
    {0xff77b1fcbebcdc4fULL, -1034, -292},
    {0xbe5691ef416bd60cULL, -1007, -284},
    {0x8dd01fad907ffc3cULL, -980, -276},
    {0xd3515c2831559a83ULL, -954, -268},
    {0x9d71ac8fada6c9b5ULL, -927, -260},
    {0xea9c227723ee8bcbULL, -901, -252},
    {0xaecc49914078536dULL, -874, -244},
    {0x823c12795db6ce57ULL, -847, -236},
    {0xc21094364dfb5637ULL, -821, -228},
    {0x9096ea6f3848984fULL, -794, -220},
    {0xd77485cb25823ac7ULL, -768, -212},
    {0xa086cfcd97bf97f4ULL, -741, -204},
    {0xef340a98172aace5ULL, -715, -196},
    {0xb23867fb2a35b28eULL, -688, -188},
    {0x84c8d4dfd2c63f3bULL, -661, -180},
    {0xc5dd44271ad3cdbaULL, -635, -172},
    {0x936b9fcebb25c996ULL, -608, -164},
    {0xdbac6c247d62a584ULL, -582, -156},
    {0xa3ab66580d5fdaf6ULL, -555, -148},
    {0xf3e2f893dec3f126ULL, -529, -140},
    {0xb5b5ada8aaff80b8ULL, -502, -132},
    {0x87625f056c7c4a8bULL, -475, -124},
    {0xc9bcff6034c13053ULL, -449, -116},
    {0x964e858c91ba2655ULL, -422, -108},
    {0xdff9772470297ebdULL, -396, -100},
    {0xa6dfbd9fb8e5b88fULL, -369, -92},
    {0xf8a95fcf88747d94ULL, -343, -84},
    {0xb94470938fa89bcfULL, -316, -76},
    {0x8a08f0f8bf0f156bULL, -289, -68},
    {0xcdb02555653131b6ULL, -263, -60},
    {0x993fe2c6d07b7facULL, -236, -52},
    {0xe45c10c42a2b3b06ULL, -210, -44},
    {0xaa242499697392d3ULL, -183, -36},
    {0xfd87b5f28300ca0eULL, -157, -28},
    {0xbce5086492111aebULL, -130, -20},
    {0x8cbccc096f5088ccULL, -103, -12},
    {0xd1b71758e219652cULL, -77, -4},
    {0x9c40000000000000ULL, -50, 4},
    {0xe8d4a51000000000ULL, -24, 12},
    {0xad78ebc5ac620000ULL, 3, 20},
    {0x813f3978f8940984ULL, 30, 28},
    {0xc097ce7bc90715b3ULL, 56, 36},
    {0x8f7e32ce7bea5c70ULL, 83, 44},
    {0xd5d238a4abe98068ULL, 109, 52},
    {0x9f4f2726179a2245ULL, 136, 60},
    {0xed63a231d4c4fb27ULL, 162, 68},
    {0xb0de65388cc8ada8ULL, 189, 76},
    {0x83c7088e1aab65dbULL, 216, 84},
    {0xc45d1df942711d9aULL, 242, 92},
    {0x924d692ca61be758ULL, 269, 100},
    {0xda01ee641a708deaULL, 295, 108},
    {0xa26da3999aef774aULL, 322, 116},
    {0xf209787bb47d6b85ULL, 348, 124},
    {0xb454e4a179dd1877ULL, 375, 132},
    {0x865b86925b9bc5c2ULL, 402, 140},
    {0xc83553c5c8965d3dULL, 428, 148},
    {0x952ab45cfa97a0b3ULL, 455, 156},
    {0xde469fbd99a05fe3ULL, 481, 164},
    {0xa59bc234db398c25ULL, 508, 172},
    {0xf6c69a72a3989f5cULL, 534, 180},
    {0xb7dcbf5354e9beceULL, 561, 188},
    {0x88fcf317f22241e2ULL, 588, 196},
    {0xcc20ce9bd35c78a5ULL, 614, 204},
    {0x98165af37b2153dfULL, 641, 212},
    {0xe2a0b5dc971f303aULL, 667, 220},
    {0xa8d9d1535ce3b396ULL, 694, 228},
    {0xfb9b7cd9a4a7443cULL, 720, 236},
    {0xbb764c4ca7a44410ULL, 747, 244},
    {0x8bab8eefb6409c1aULL, 774, 252},
    {0xd01fef10a657842cULL, 800, 260},
    {0x9b10a4e5e9913129ULL, 827, 268},
    {0xe7109bfba19c0c9dULL, 853, 276},
    {0xac2820d9623bf429ULL, 880, 284},
    {0x80444b5e7aa7cf85ULL, 907, 292},
    {0xbf21e44003acdd2dULL, 933, 300},
    {0x8e679c2f5e44ff8fULL, 960, 308},
    {0xd433179d9c8cb841ULL, 986, 316},
    {0x9e19db92b4e31ba9ULL, 1013, 324},
    {0xeb96bf6ebadf77d9ULL, 1039, 332},
    {0xaf87023b9bf0ee6bULL, 1066, 340},
};

#define N_CACHED ((int)(sizeof cached_powers / sizeof cached_powers[0]))

static const uint32_t pow10_u32[10] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};

/*
 * Grisu3's weeding (double-conversion's RoundWeed): nudge the last digit
 * towards w and report whether the result is provably the closest shortest
 * representation.  Distances are in units of 'unit' of the scaled values.
 */
static int round_weed(char *buf, int len, uint64_t dist_too_high_w, uint64_t unsafe,
                      uint64_t rest, uint64_t ten_kappa, uint64_t unit)
{
    uint64_t small_dist = dist_too_high_w - unit;
    uint64_t big_dist = dist_too_high_w + unit;

    while (rest < small_dist && unsafe - rest >= ten_kappa &&
           (rest + ten_kappa < small_dist ||
            small_dist - rest >= rest + ten_kappa - small_dist)) {
        buf[len - 1]--;
        rest += ten_kappa;
    }
    if (rest < big_dist && unsafe - rest >= ten_kappa &&
        (rest + ten_kappa < big_dist || big_dist - rest > rest + ten_kappa - big_dist))
        return 0;
    return 2 * unit <= rest && rest <= unsafe - 4 * unit;
}

/*
 * Grisu3's digit generation (double-conversion's DigitGen): emit digits of
 * too_high until the remainder fits in the unsafe interval, then weed.
 * w.e is in [-60, -32], so the integral part fits 32 bits.
 */
static int digit_gen(diyfp low, diyfp w, diyfp high, char *buf, int *len, int *kappa)
{
    uint64_t unit = 1;
    uint64_t too_low = low.f - unit;
    uint64_t too_high = high.f + unit;
    uint64_t unsafe = too_high - too_low;
    int shift = -w.e;
    uint64_t one = 1ULL << shift;
    uint32_t integrals = (uint32_t)(too_high >> shift);
    uint64_t fractionals = too_high & (one - 1);

    int k = 1;
    while (k < 10 && integrals >= pow10_u32[k])
        k++;
    uint32_t divisor = pow10_u32[k - 1];
    *kappa = k;
    *len = 0;

    while (*kappa > 0) {
        buf[(*len)++] = (char)('0' + integrals / divisor);
        integrals %= divisor;
        (*kappa)--;
        uint64_t rest = ((uint64_t)integrals << shift) + fractionals;
        if (rest < unsafe)
            return round_weed(buf, *len, too_high - w.f, unsafe, rest,
                              (uint64_t)divisor << shift, unit);
        divisor /= 10;
    }
    for (;;) {
        fractionals *= 10;
        unit *= 10;
        unsafe *= 10;
        buf[(*len)++] = (char)('0' + (int)(fractionals >> shift));
        fractionals &= one - 1;
        (*kappa)--;
        if (fractionals < unsafe)
            return round_weed(buf, *len, (too_high - w.f) * unit, unsafe, fractionals,
                              one, unit);
        if (*len >= 20) /* cannot happen; keeps the buffer safe regardless */
            return 0;
    }
}

/*
 * Shortest digits of v > 0 (finite) such that v == digits * 10^*dexp, or 0
 * when Grisu3 cannot prove its answer (then use shortest_exact).
 */
static int grisu3(double v, char *buf, int *len, int *dexp)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t frac = bits & ((1ULL << 52) - 1);
    int bexp = (int)((bits >> 52) & 0x7FF);

    diyfp w;
    if (bexp) {
        w.f = frac | (1ULL << 52);
        w.e = bexp - 1075;
    } else {
        w.f = frac;
        w.e = -1074;
    }

    /* Boundaries halfway to the neighbours; the lower one is closer when
     * v is a power of two above the smallest normal. */
    diyfp mp = { (w.f << 1) + 1, w.e - 1 };
    mp = diy_normalize(mp);
    diyfp mm;
    if (frac == 0 && bexp > 1) {
        mm.f = (w.f << 2) - 1;
        mm.e = w.e - 2;
    } else {
        mm.f = (w.f << 1) - 1;
        mm.e = w.e - 1;
    }
    mm.f <<= mm.e - mp.e;
    mm.e = mp.e;
    w = diy_normalize(w);

    /* A cached 10^mk that brings the scaled exponent into [-60, -32]. */
    int lo = -60 - 64 - w.e, hi = -32 - 64 - w.e;
    int i = ((lo + 1220) * 1000 + 26574) / 26575;
    if (i < 0)
        i = 0;
    if (i >= N_CACHED)
        i = N_CACHED - 1;
    while (i > 0 && cached_powers[i].e > hi)
        i--;
    while (i < N_CACHED - 1 && cached_powers[i].e < lo)
        i++;
    if (cached_powers[i].e < lo || cached_powers[i].e > hi)
        return 0; /* cannot happen for a double */
    diyfp c = { cached_powers[i].f, cached_powers[i].e };
    int mk = cached_powers[i].k;

    int kappa;
    int ok = digit_gen(diy_mul(mm, c), diy_mul(w, c), diy_mul(mp, c), buf, len, &kappa);
    *dexp = kappa - mk;
    return ok;
}

/* ---------------------------------------------------------------------- */
/* Exact fallback                                                          */

/* digits d[0..n) * 10^e10 read back as exactly v? */
static int round_trips(const char *d, int n, int e10, double v)
{
    double r;
    return decimal_slow(0, d, (size_t)n, NULL, 0, e10, &r) == 0 && r == v;
}

/*
 * Shortest round-trip digits of v > 0 without Grisu: glibc's printf rounds
 * correctly (ties to even), so "%.*e" gives the nearest p-digit decimal R.
 * If R reads back as v it is the closest p-digit candidate.  If not, only
 * R's neighbour on the other side of v can (when v is a power of two its
 * lower half-interval is narrower, so the nearest can miss while the
 * neighbour hits).  No normal double has two 15-digit decimals in its
 * interval, so p = 15 covers every shorter answer too; subnormals have
 * fewer bits and wider intervals, so they start at p = 1.  p = 17 always
 * round-trips.  The radix character of the locale's printf is skipped,
 * whatever it is.
 */
static void shortest_exact(double v, char *out, int *len, int *dexp)
{
    char tmp[64];
    char d[24];
    int n = 0, e10 = 0;

    for (int prec = v < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        const char *q = tmp;
        n = 0;
        while (*q && *q != 'e') {
            if (is_digit(*q) && n < (int)sizeof d)
                d[n++] = *q;
            q++;
        }
        int x = 0, xneg = 0;
        if (*q == 'e')
            q++;
        if (*q == '+' || *q == '-')
            xneg = *q++ == '-';
        while (is_digit(*q))
            x = x * 10 + (*q++ - '0');
        e10 = (xneg ? -x : x) - (n - 1); /* v ~ d * 10^e10 */

        double r;
        int rc = decimal_slow(0, d, (size_t)n, NULL, 0, e10, &r);
        if (prec == 17 || (rc == 0 && r == v))
            break;

        int above = rc != 0 || r > v; /* rc != 0: R overflowed to infinity */
        char nb[24];
        int ne = e10;
        memcpy(nb, d, (size_t)n);
        if (above) { /* step down one unit in the last place */
            int j = n - 1;
            while (j >= 0 && nb[j] == '0')
                nb[j--] = '9';
            nb[j]--; /* d is not all zeros */
            if (nb[0] == '0') { /* 10..0 - 1: the grid below is 10x finer */
                memset(nb, '9', (size_t)n);
                ne--;
            }
        } else { /* step up */
            int j = n - 1;
            while (j >= 0 && nb[j] == '9')
                nb[j--] = '0';
            if (j >= 0) {
                nb[j]++;
            } else {
                nb[0] = '1';
                ne++;
            }
        }
        if (round_trips(nb, n, ne, v)) {
            memcpy(d, nb, (size_t)n);
            e10 = ne;
            break;
        }
    }
    while (n > 1 && d[n - 1] == '0') {
        n--;
        e10++;
    }
    memcpy(out, d, (size_t)n);
    *len = n;
    *dexp = e10;
}

/* ---------------------------------------------------------------------- */
/* Formatting                                                              */

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Decimal digits of u at out (no NUL); returns their number. */
static inline size_t write_u64(uint64_t u, char *out)
{
    char tmp[20];
    char *p = tmp + sizeof tmp;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * u, 2);
    } else {
        *--p = (char)('0' + u);
    }
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(out, p, n);
    return n;
}

/*
 * ECMAScript Number::toString steps 6-10: digits d[0..k), value
 * 0.d1d2..dk * 10^n.  Writes the text and a NUL, returns the length.
 */
static size_t js_layout(const char *d, int k, int n, char *out)
{
    char *p = out;
    if (k <= n && n <= 21) {
        memcpy(p, d, (size_t)k);
        p += k;
        memset(p, '0', (size_t)(n - k));
        p += n - k;
    } else if (0 < n && n <= 21) {
        memcpy(p, d, (size_t)n);
        p += n;
        *p++ = '.';
        memcpy(p, d + n, (size_t)(k - n));
        p += k - n;
    } else if (-6 < n && n <= 0) {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)-n);
        p += -n;
        memcpy(p, d, (size_t)k);
        p += k;
    } else {
        *p++ = d[0];
        if (k > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)(k - 1));
            p += k - 1;
        }
        *p++ = 'e';
        int e = n - 1;
        *p++ = e < 0 ? '-' : '+';
        p += write_u64((uint64_t)(e < 0 ? -e : e), p);
    }
    *p = '\0';
    return (size_t)(p - out);
}

size_t sy_fmt_double(double v, char *buf)
{
    if (isnan(v)) {
        memcpy(buf, "NaN", 4);
        return 3;
    }
    char *p = buf;
    if (signbit(v) && v != 0) {
        *p++ = '-';
        v = -v;
    }
    if (isinf(v)) {
        memcpy(p, "Infinity", 9);
        return (size_t)(p - buf) + 8;
    }
    if (v < 9007199254740992.0) { /* 2^53: integers here print exactly */
        uint64_t u = (uint64_t)v;
        if ((double)u == v) {
            p += write_u64(u, p);
            *p = '\0';
            return (size_t)(p - buf);
        }
    }

    char d[32];
    int k, dexp;
    if (!grisu3(v, d, &k, &dexp))
        shortest_exact(v, d, &k, &dexp);
    while (k > 1 && d[k - 1] == '0') {
        k--;
        dexp++;
    }
    return (size_t)(p - buf) + js_layout(d, k, k + dexp, p);
}
