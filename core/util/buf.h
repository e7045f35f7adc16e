/*
 * buf.h - a growing text buffer, for replies built piece by piece (the
 * admin dumps, the console's escaping).  The functions append and keep
 * the text NUL-terminated; out of memory, they leave it as it was.
 */
#ifndef SY_BUF_H
#define SY_BUF_H

#include <stddef.h>

typedef struct sy_buf {
    char *p;
    size_t len, cap;
} sy_buf;

void sy_buf_printf(sy_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sy_buf_free(sy_buf *b);

/* Appends n bytes. */
void sy_buf_add(sy_buf *b, const char *s, size_t n);

#endif
