/*
 * framing.h - a byte stream cut into records of whole lines.
 *
 * One stream connection (TCP, unix stream) reads into a buffer of
 * max_line + 1 bytes.  After each read the complete lines at its front are
 * one record for the ring (sy_frame_lines); the partial last line waits for
 * the next read.  A partial line that fills the whole buffer is longer
 * than max_line: it is dropped and skipped up to its next newline.  At EOF
 * the last line is a record too, newline or not (Etsy statsd loses it).
 *
 * Only the new bytes of a read are searched for newlines (the kept partial
 * line holds none), so a slow over-long line costs linear time, not
 * quadratic.  The reader (reader.c) owns the buffer, the ring and the
 * counters; the fuzz harness drives the same functions with reads of the
 * sizes it chooses.
 */
#ifndef SY_FRAMING_H
#define SY_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sy_frame {
    char *buf;       /* cap bytes, owned by the caller */
    size_t cap;      /* max line + 1 */
    size_t len;      /* bytes in buf */
    size_t pending;  /* complete lines at the front of buf, not yet taken */
    bool discarding; /* skipping the rest of an over-long line */
} sy_frame;

static inline void sy_frame_init(sy_frame *f, char *buf, size_t cap)
{
    *f = (sy_frame){ .buf = buf, .cap = cap };
}

/* Where the next read goes and how many bytes it may take. */
static inline char *sy_frame_space(sy_frame *f, size_t *room)
{
    *room = f->cap - f->len;
    return f->buf + f->len;
}

/* n bytes were read into sy_frame_space(). */
void sy_frame_add(sy_frame *f, size_t n);

/* The complete lines ready to be queued (a record), or NULL; then
 * sy_frame_taken() once they are queued. */
static inline const char *sy_frame_lines(const sy_frame *f, size_t *len)
{
    *len = f->pending;
    return f->pending ? f->buf : NULL;
}
void sy_frame_taken(sy_frame *f);

/* After the lines were taken: 1 when what is left fills the buffer with no
 * newline (a line over max_line, now being skipped: count it), else 0. */
int sy_frame_overlong(sy_frame *f);

/* At EOF: the unfinished last line, or NULL (none, or being skipped); the
 * buffer is empty afterwards once sy_frame_clear() is called. */
static inline const char *sy_frame_last(const sy_frame *f, size_t *len)
{
    *len = f->len;
    return f->len && !f->discarding ? f->buf : NULL;
}
static inline void sy_frame_clear(sy_frame *f)
{
    f->len = f->pending = 0;
}

#endif
