/*
 * inspect.h - Node's util.inspect, for the objects statsd's console prints.
 *
 * statsd answers `counters`, `timers` and `gauges` with util.inspect(obj),
 * where each value of obj is a number or an array of numbers.  This writes
 * the same bytes as Node 20 with the default options (breakLength 80,
 * compact 3, maxArrayLength 100), so that scripts reading statsd's console
 * read switchyard's too.
 */
#ifndef SY_INSPECT_H
#define SY_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* One property: a key (any bytes, read as UTF-8) and a number, or an
 * array of numbers when is_array. */
typedef struct sy_inspect_prop {
    const char *key;
    size_t key_len;
    int is_array;
    double value;
    const double *v;  /* is_array: n numbers (v may be NULL when n is 0) */
    size_t n;
} sy_inspect_prop;

/* Fills *p with property i (0 <= i < n) of the object, numbered in the
 * order the keys were created. */
typedef void sy_inspect_get_fn(void *ctx, size_t i, sy_inspect_prop *p);

/* Appends util.inspect of an object of n properties (no newline after it).
 * They are written in JavaScript's property order: array-index keys such
 * as "17" first, in numeric order, then the others in creation order.
 * Memory: a few words per property, only when some key is an array index.
 * -1 when out of memory (nothing written). */
int sy_inspect_object(sy_buf *out, size_t n, sy_inspect_get_fn *get, void *ctx);

/*
 * Client text (a key, a set member) as util.inspect writes it inside a
 * string literal, which is how `counters` shows keys: \b \t \n \f \r and
 * \\ escaped, other control characters, DEL and C1 as \xHH, and the rest
 * as it is.  One place for it, so that no reply or sink shows a client's
 * raw CR (a fake reply line) or terminal escape.  Flags:
 *   SY_ESC_QUOTE  ' as \' (inside single quotes)
 *   SY_ESC_BYTES  each byte of malformed UTF-8 as \xHH, where Node writes
 *                 U+FFFD: listings (`keys`, the console sink) then keep
 *                 apart keys that differ only in such bytes
 *
 * sy_inspect_escape writes whole characters while at least
 * SY_INSPECT_ESCAPE_MAX_CHAR bytes of dst are left (so cap must be at least
 * that), sets *used to the bytes of s it consumed, adds the text's length
 * in UTF-16 units to *units (when not NULL), and returns the bytes written.
 * sy_inspect_escape_buf appends all of s to out and returns its UTF-16
 * length.
 */
#define SY_INSPECT_ESCAPE_MAX_CHAR 4
enum { SY_ESC_QUOTE = 1, SY_ESC_BYTES = 2 };
size_t sy_inspect_escape(char *dst, size_t cap, const char *s, size_t len, int flags, size_t *used,
                         size_t *units);
size_t sy_inspect_escape_buf(sy_buf *out, const char *s, size_t len, int flags);

/* An object of more than this many properties is never on one line. */
#define SY_INSPECT_ONE_LINE_MAX 23

/* The same text for such an object, written a property at a time by a
 * caller that orders them itself (array indices first): *n counts the
 * properties written so far (start at 0); _end closes the object ("{}"
 * when none was written). */
void sy_inspect_stream_prop(sy_buf *out, size_t *n, const sy_inspect_prop *p);
void sy_inspect_stream_end(sy_buf *out, size_t n);

/* 1 when a key is a canonical array index ("0", "17"; not "017"), which
 * JavaScript lists first; its value in *idx. */
int sy_inspect_array_index(const char *k, size_t len, uint32_t *idx);

#endif
