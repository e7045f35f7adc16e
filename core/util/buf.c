/*
 * buf.c - a growing text buffer (buf.h).
 */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL after them: 0, or -1 when memory ran
 * out (the buffer is then as it was). */
static int reserve(sy_buf *b, size_t n)
{
    if (b->p && b->cap - b->len > n)
        return 0;
    size_t ncap = b->cap ? b->cap * 2 : 4096;
    while (ncap <= b->len + n)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np)
        return -1;
    b->p = np;
    b->cap = ncap;
    return 0;
}

void sy_buf_printf(sy_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        if (reserve(b, (size_t)n) < 0)
            return;
    }
}

void sy_buf_free(sy_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Appends n bytes (a memcpy: the dumps write many small pieces). */
void sy_buf_add(sy_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
