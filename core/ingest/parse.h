/*
 * parse.h - the StatsD line parser.
 *
 * One line is `key:value|type[|@rate][|#tag,tag:v]`, possibly with several
 * values (`key:1|c:2|c`).  The parser reads the bytes in place, writes the
 * final key (tags appended as `;tag`, sanitised as statsd's keyNameSanitize
 * does) into a buffer the caller owns, and hands out the values one by one.
 * Nothing is allocated.  The rules follow Etsy statsd 0.9 where it is sane
 * and are stricter where statsd is not; each difference is listed in
 * parse.c.
 */
#ifndef SY_PARSE_H
#define SY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <switchyard_sink.h>

/* Longest key accepted is SY_KEY_MAX - 1 bytes, tags included (after
 * sanitising); a longer one makes the line bad, counted on its own too.
 * statsd has no limit; 8 KiB holds a long URL in a tag with room to spare,
 * and costs nothing per key (keys are stored at their own length). */
#define SY_KEY_MAX 8192

/* sy_parse_begin's answer for a key of SY_KEY_MAX bytes or more. */
#define SY_PARSE_TOO_LONG (-3)
/* ... for a DogStatsD event ("_e{5,4}:title|text|...") and service check
 * ("_sc|name|0|..."): well formed, not metrics, never bad lines. */
#define SY_PARSE_EVENT (-4)
#define SY_PARSE_SERVICE_CHECK (-5)

/* sy_line.ts for a timestamp that is no time (0, or more than 12 digits):
 * outside any window. */
#define SY_PARSE_TS_BAD INT64_MAX

typedef struct sy_line {
    const char *p;     /* next value part */
    const char *end;   /* end of the value parts (the tags start after) */
    const char *tags;  /* DogStatsD tags as sent (after "|#"), or "" */
    uint32_t tags_len;
    int sanitize;
    /* DogStatsD's optional fields seen so far in this line (protocol 1.2
     * and 1.3): container IDs ("|c:ID") and timestamps ("|T1700000000"),
     * counted by the caller.  A container is skipped; `ts` is the last
     * timestamp read so far (seconds; SY_PARSE_TS_BAD for 0 or more than
     * 12 digits), valid only once `timestamps` is non-zero: it is the time of
     * the value that found it and of the line's values after it. */
    uint32_t containers, timestamps;
    int64_t ts;          /* see sy_parse_time */
    /* Several values in one message ("k:1:2:3|ms"): the part whose type
     * the typeless values before it take, found once. */
    const char *mv_end;
    const char *mv_type, *mv_rate;
    uint32_t mv_type_len, mv_rate_len;
    int64_t mv_ts;       /* that part's timestamp, 0: none */
} sy_line;

/*
 * Start on one line (no newline; a trailing CR is ignored).  The key is
 * written to keybuf (SY_KEY_MAX bytes, NUL-terminated) and its length
 * returned.  Returns -1 when the line as a whole is malformed (no key, or
 * no value), SY_PARSE_TOO_LONG when the key does not fit SY_KEY_MAX (also a
 * bad line), SY_PARSE_EVENT or SY_PARSE_SERVICE_CHECK for a well-formed
 * DogStatsD event or service check.  An empty line returns -2 and is not a
 * bad line.
 */
int sy_parse_begin(sy_line *it, const char *line, size_t len, char *keybuf, int sanitize);

/*
 * The next value of the line: 1 when *out is filled (out->name is left for
 * the caller; out->tags is the line's raw tag text), 0 when there are no more, -1 when this value is malformed
 * (statsd counts one bad line for it; the next call goes on with the next
 * value).
 */
int sy_parse_value(sy_line *it, sy_sample *out); /* sy_parse_next, with a value left */
static inline int sy_parse_next(sy_line *it, sy_sample *out)
{
    /* Inline: every line ends with a call that finds no value left, and
     * that answer should not cost a function call. */
    return it->p ? sy_parse_value(it, out) : 0;
}

/* The DogStatsD time (seconds since the epoch; SY_PARSE_TS_BAD when too
 * long) of the value sy_parse_next just gave, or 0 when it has none.  A
 * "|T" field dates its own value part, the parts that borrow that part's
 * type ("k:1:2:3|ms|T5": all three), and the line's later values; one in
 * the tags' part dates the whole line.  Only lines where
 * sy_parse_may_have_time() holds need asking, so the common line pays one
 * test. */
int64_t sy_parse_time(const sy_line *it);
static inline int sy_parse_may_have_time(const sy_line *it)
{
    return it->timestamps != 0 || it->mv_end != NULL;
}

/* Length of a UTF-8 encoded character JavaScript's \s matches (U+00A0,
 * U+2000-U+200A, U+3000, BOM, ...), or 0: statsd treats them as spaces. */
size_t sy_utf8_space(const unsigned char *p, size_t left);

/* Sanitise src as keyNameSanitize does (when sanitize is set) into dst,
 * which holds SY_KEY_MAX bytes; returns the length, or -1 when too long. */
int sy_sanitize(char *dst, const char *src, size_t len, int sanitize);

/* Split a buffer into lines at '\n', calling fn for each (empty ones too).
 * Returns the number of lines. */
typedef void (*sy_line_fn)(void *ctx, const char *line, size_t len);
size_t sy_split_lines(const char *buf, size_t len, sy_line_fn fn, void *ctx);

#endif
