/*
 * fail.h - the error convention of setup code: fill the caller's error
 * buffer (err may be NULL or errlen 0: nothing is written) and return -1,
 * so that a failing step reads `return sy_fail(err, errlen, "...", ...);`.
 */
#ifndef SY_FAIL_H
#define SY_FAIL_H

#include <stddef.h>

int sy_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
