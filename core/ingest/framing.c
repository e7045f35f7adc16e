/*
 * framing.c - a byte stream cut into records of whole lines (framing.h).
 */
#include "ingest/framing.h"

#include <string.h>

void sy_frame_add(sy_frame *f, size_t n)
{
    char *fresh = f->buf + f->len;
    if (f->discarding) {
        /* len is 0 here, so fresh == buf. */
        char *nl = memchr(fresh, '\n', n);
        if (!nl)
            return;
        size_t skip = (size_t)(nl + 1 - fresh);
        memmove(fresh, nl + 1, n - skip);
        n -= skip;
        f->discarding = false;
    }
    char *nl = n ? memrchr(fresh, '\n', n) : NULL;
    f->len += n;
    if (nl)
        f->pending = (size_t)(nl + 1 - f->buf);
}

void sy_frame_taken(sy_frame *f)
{
    f->len -= f->pending;
    memmove(f->buf, f->buf + f->pending, f->len);
    f->pending = 0;
}

int sy_frame_overlong(sy_frame *f)
{
    if (f->len < f->cap)
        return 0;
    f->discarding = true;
    f->len = 0;
    return 1;
}
