/*
 * text.c - untrusted strings on a terminal, and times and durations as
 * text, for `switchyard traces` and its page (text.h).
 */
#include "tools/traces/text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/trace_format.h" /* plugins/lib: tm_utf8_len */

/* ------------------------------------------------------------------ */
/* text for a terminal                                                 */
/* ------------------------------------------------------------------ */

/* The length of a valid UTF-8 sequence at s (first byte >= 0x80) that is
 * not a C1 control, or 0. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
    size_t len = tm_utf8_len(s, n);
    if (len == 2 && s[0] == 0xC2 && s[1] < 0xA0)
        return 0; /* U+0080..U+009F */
    return len;
}

/* The next printable character of s[i..n): its byte length, with *subst
 * set when it is shown as '?' (a control character or invalid UTF-8). */
size_t sy_text_next_char(const unsigned char *s, size_t n, size_t i, int *subst)
{
    if (s[i] < 0x80) {
        *subst = s[i] < 0x20 || s[i] == 0x7f;
        return 1;
    }
    size_t l = utf8_printable(s + i, n - i);
    *subst = l == 0;
    return l ? l : 1;
}

/* Code point ranges, inclusive, sorted. */
typedef struct cp_range {
    unsigned lo, hi;
} cp_range;

/* Characters a terminal draws two columns wide: Unicode's East Asian Wide
 * and Fullwidth blocks (Hangul, CJK, kana, Yi, fullwidth forms) and the
 * emoji blocks drawn as pictures.  Not the whole EastAsianWidth table: a
 * scattering of single symbols is left out, so a rare symbol may still
 * shift a column, but CJK and Hangul text lines up. */
static const cp_range WIDE[] = {
    { 0x1100, 0x115F },    { 0x231A, 0x231B },    { 0x2329, 0x232A },    { 0x23E9, 0x23EC },
    { 0x23F0, 0x23F0 },    { 0x23F3, 0x23F3 },    { 0x25FD, 0x25FE },    { 0x2614, 0x2615 },
    { 0x2648, 0x2653 },    { 0x267F, 0x267F },    { 0x2693, 0x2693 },    { 0x26A1, 0x26A1 },
    { 0x26AA, 0x26AB },    { 0x26BD, 0x26BE },    { 0x26C4, 0x26C5 },    { 0x26CE, 0x26CE },
    { 0x26D4, 0x26D4 },    { 0x26EA, 0x26EA },    { 0x26F2, 0x26F3 },    { 0x26F5, 0x26F5 },
    { 0x26FA, 0x26FA },    { 0x26FD, 0x26FD },    { 0x2705, 0x2705 },    { 0x270A, 0x270B },
    { 0x2728, 0x2728 },    { 0x274C, 0x274C },    { 0x274E, 0x274E },    { 0x2753, 0x2755 },
    { 0x2757, 0x2757 },    { 0x2795, 0x2797 },    { 0x27B0, 0x27B0 },    { 0x27BF, 0x27BF },
    { 0x2B1B, 0x2B1C },    { 0x2B50, 0x2B50 },    { 0x2B55, 0x2B55 },    { 0x2E80, 0x303E },
    { 0x3041, 0x33FF },    { 0x3400, 0x4DBF },    { 0x4E00, 0x9FFF },    { 0xA000, 0xA4CF },
    { 0xA960, 0xA97F },    { 0xAC00, 0xD7A3 },    { 0xF900, 0xFAFF },    { 0xFE10, 0xFE19 },
    { 0xFE30, 0xFE6F },    { 0xFF00, 0xFF60 },    { 0xFFE0, 0xFFE6 },    { 0x16FE0, 0x16FE4 },
    { 0x17000, 0x18D08 },  { 0x1AFF0, 0x1AFFE },  { 0x1B000, 0x1B2FF },  { 0x1F004, 0x1F004 },
    { 0x1F0CF, 0x1F0CF },  { 0x1F18E, 0x1F18E },  { 0x1F191, 0x1F19A },  { 0x1F200, 0x1F2FF },
    { 0x1F300, 0x1F320 },  { 0x1F32D, 0x1F335 },  { 0x1F337, 0x1F37C },  { 0x1F37E, 0x1F393 },
    { 0x1F3A0, 0x1F3CA },  { 0x1F3CF, 0x1F3D3 },  { 0x1F3E0, 0x1F3F0 },  { 0x1F3F4, 0x1F3F4 },
    { 0x1F3F8, 0x1F43E },  { 0x1F440, 0x1F440 },  { 0x1F442, 0x1F4FC },  { 0x1F4FF, 0x1F53D },
    { 0x1F54B, 0x1F54E },  { 0x1F550, 0x1F567 },  { 0x1F57A, 0x1F57A },  { 0x1F595, 0x1F596 },
    { 0x1F5A4, 0x1F5A4 },  { 0x1F5FB, 0x1F64F },  { 0x1F680, 0x1F6C5 },  { 0x1F6CC, 0x1F6CC },
    { 0x1F6D0, 0x1F6D2 },  { 0x1F6D5, 0x1F6D7 },  { 0x1F6EB, 0x1F6EC },  { 0x1F6F4, 0x1F6FC },
    { 0x1F7E0, 0x1F7EB },  { 0x1F90C, 0x1F93A },  { 0x1F93C, 0x1F945 },  { 0x1F947, 0x1F9FF },
    { 0x1FA70, 0x1FAFF },  { 0x20000, 0x2FFFD },  { 0x30000, 0x3FFFD },
};

/* Characters drawn on the previous one (combining marks of the general
 * blocks, Hangul vowels and finals that join a syllable) or not at all
 * (zero-width space and joiners, variation selectors, the byte order
 * mark): zero columns. */
static const cp_range ZERO[] = {
    { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x0610, 0x061A },
    { 0x064B, 0x065F }, { 0x0E31, 0x0E31 }, { 0x0E34, 0x0E3A }, { 0x0E47, 0x0E4E },
    { 0x1160, 0x11FF }, { 0x1AB0, 0x1AFF }, { 0x1DC0, 0x1DFF }, { 0x200B, 0x200F },
    { 0x2060, 0x2064 }, { 0x20D0, 0x20FF }, { 0x302A, 0x302D }, { 0x3099, 0x309A },
    { 0xD7B0, 0xD7FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F }, { 0xFEFF, 0xFEFF },
    { 0xE0100, 0xE01EF },
};

static int in_ranges(unsigned cp, const cp_range *r, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* The terminal columns of the character of l bytes at s, as next_char
 * found it (a substitute '?' takes one). */
static int char_cols(const unsigned char *s, size_t l, int subst)
{
    if (subst || l == 1)
        return 1;
    unsigned cp = s[0] & (0xFF >> (l + 1));
    for (size_t k = 1; k < l; k++)
        cp = (cp << 6) | (s[k] & 0x3F);
    /* the zero-width ranges reach into a wide one (U+302A..U+302D): look
     * them up first */
    if (in_ranges(cp, ZERO, sizeof(ZERO) / sizeof(*ZERO)))
        return 0;
    return in_ranges(cp, WIDE, sizeof(WIDE) / sizeof(*WIDE)) ? 2 : 1;
}

/* The columns client text takes on a terminal, as sy_text_put prints it. */
int sy_text_width(const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "-");
    size_t n = strlen((const char *)s);
    int w = 0, subst;
    for (size_t i = 0; i < n;) {
        size_t l = sy_text_next_char(s, n, i, &subst);
        w += char_cols(s + i, l, subst);
        i += l;
    }
    return w;
}

/* Prints client text safely: control characters and invalid UTF-8 become
 * '?'.  Pads with spaces to `width` terminal columns (0: no padding); cuts
 * at `max` columns, ending in "..." (0: no limit).  Columns, not bytes or
 * characters: a CJK character takes two, a combining accent none, so that
 * the columns after it line up.  NULL prints "-". */
void sy_text_put(FILE *f, const char *str, int width, int max)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "-");
    size_t n = strlen((const char *)s), i;
    int cols = 0, subst, total = sy_text_width(str);
    int keep = max && total > max ? (max > 3 ? max - 3 : 0) : total;
    for (i = 0; i < n;) {
        size_t l = sy_text_next_char(s, n, i, &subst);
        int c = char_cols(s + i, l, subst);
        if (cols + c > keep)
            break; /* a wide character that does not fit is left out whole */
        if (subst)
            fputc('?', f);
        else
            fwrite(s + i, 1, l, f);
        cols += c;
        i += l;
    }
    if (keep < total) {
        fputs("...", f);
        cols += 3;
    }
    for (; cols < width; cols++)
        fputc(' ', f);
}

/* ms with at most three decimals, without the C library's locale. */
void sy_text_ms(double v, char *out, size_t cap)
{
    if (!(v == v) || v > 9e15 || v < -9e15) {
        snprintf(out, cap, "?");
        return;
    }
    long long t = (long long)(v * 1000 + (v < 0 ? -0.5 : 0.5));
    const char *sign = t < 0 ? "-" : "";
    unsigned long long a = t < 0 ? (unsigned long long)-t : (unsigned long long)t;
    unsigned long long ip = a / 1000, fp = a % 1000;
    if (!fp) {
        snprintf(out, cap, "%s%llu", sign, ip);
        return;
    }
    char frac[4];
    snprintf(frac, sizeof(frac), "%03llu", fp);
    for (int i = 2; i > 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(out, cap, "%s%llu.%s", sign, ip, frac);
}

void sy_text_time(uint64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

