/*
 * edit.h - how far apart two short names are, for "did you mean" hints
 * (a misspelt setting, a plugin that is not there).
 */
#ifndef SY_EDIT_H
#define SY_EDIT_H

#include <stddef.h>

/* The Levenshtein distance of a and b; (size_t)-1 when either is over
 * 64 bytes (long names are never close). */
size_t sy_edit_distance(const char *a, const char *b);

#endif
