/*
 * numfmt.h - numbers in and out, the way statsd (JavaScript) sees them.
 *
 * sy_fmt_double writes what JavaScript's String(v) writes: the shortest
 * decimal that reads back as the same double, in JS's choice of plain or
 * exponent notation ("0.1", "1e+21", "1.5e-7", "-0" is "0", "NaN",
 * "Infinity").  Graphite therefore receives the same text from switchyard
 * as from statsd.
 *
 * sy_parse_double reads a decimal number without the C locale (a comma
 * locale can never turn "0.5" into 0) and without allocating.  Accepted:
 * optional spaces/tabs around, an optional sign, digits with an optional
 * fraction (".5" and "5." too), an optional exponent.  Not accepted: hex,
 * "inf", "nan", "Infinity", an empty string.  The result is correctly
 * rounded (the same double as JavaScript's Number(s) and strtod).
 */
#ifndef SY_NUMFMT_H
#define SY_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#define SY_FMT_DOUBLE_MAX 32

/* Writes at most SY_FMT_DOUBLE_MAX bytes including the NUL; returns the
 * length without the NUL. */
size_t sy_fmt_double(double v, char *buf);

/* 0 and *out set when the whole of s[0..len) is a number; -1 otherwise. */
int sy_parse_double(const char *s, size_t len, double *out);

/* sy_parse_double's first step, inline for the parser's hot path: most
 * values are short integers ("1", "-42", "1500"), whose digits need none
 * of the rest (the conversion of the integer is correctly rounded).
 * 1 and *out set when s[0..len) is one, else 0: sy_parse_double decides. */
static inline int sy_parse_short_int(const char *s, size_t len, double *out)
{
    if (!len || len > 16)
        return 0;
    size_t i = s[0] == '-' || s[0] == '+';
    uint64_t m = 0;
    size_t j = i;
    while (j < len && (unsigned char)(s[j] - '0') < 10)
        m = m * 10 + (uint64_t)(s[j++] - '0');
    if (j != len || j == i)
        return 0;
    *out = s[0] == '-' ? -(double)m : (double)m;
    return 1;
}

#endif
