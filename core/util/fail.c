/*
 * fail.c - fill an error buffer and return -1 (fail.h).
 */
#include "util/fail.h"

#include <stdarg.h>
#include <stdio.h>

int sy_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
