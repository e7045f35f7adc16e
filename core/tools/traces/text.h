/*
 * text.h - what `switchyard traces` prints: client text from memcached
 * (untrusted: control characters and invalid UTF-8 become '?', so a record
 * cannot drive the terminal), in terminal columns; durations and times.
 */
#ifndef SY_TRACES_TEXT_H
#define SY_TRACES_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The next printable character of s[i..n): its byte length, with *subst
 * set when it is shown as '?' (a control character or invalid UTF-8). */
size_t sy_text_next_char(const unsigned char *s, size_t n, size_t i, int *subst);
/* The columns str takes on a terminal, as sy_text_put prints it. */
int sy_text_width(const char *str);
/* str, padded to `width` columns (0: none) and cut at `max` columns with
 * "..." (0: no limit); NULL prints "-". */
void sy_text_put(FILE *f, const char *str, int width, int max);
/* ms with at most three decimals, without the C library's locale. */
void sy_text_ms(double v, char *out, size_t cap);
/* ms since the epoch as ISO 8601 UTC with milliseconds. */
void sy_text_time(uint64_t ms, char *out, size_t cap);

#endif
