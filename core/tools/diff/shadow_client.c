/*
 * shadow_client.c - `switchyard diff -c NEW.lua --admin HOST:PORT`: the
 * client side of a shadow reload (shadow.h).  It sends `reload --shadow
 * PATH` (NEW.lua made absolute: the daemon reads it) to the admin console
 * and prints the report up to its END.
 */
#include "engine/shadow.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REPORT_MAX (64u << 20) /* a report is a few KiB; a bound all the same */

static int diff_usage(void)
{
    fprintf(stderr, "usage: switchyard diff -c NEW.lua [--admin HOST:PORT]  (default "
                    "127.0.0.1:8126)\n");
    return 2;
}

static int connect_to(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    if (host[0] == '[') { /* [::1]:8126 */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int sy_diff_main(int argc, char **argv)
{
    const char *file = NULL, *admin = "127.0.0.1:8126";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--admin") && i + 1 < argc)
            admin = argv[++i];
        else
            return diff_usage();
    }
    if (!file)
        return diff_usage();
    char path[PATH_MAX];
    if (!realpath(file, path)) {
        fprintf(stderr, "switchyard diff: %s: %s\n", file, strerror(errno));
        return 2;
    }
    if (strpbrk(path, " \t\r\n")) {
        fprintf(stderr, "switchyard diff: %s: the console takes no blanks in a path\n", path);
        return 2;
    }
    int fd = connect_to(admin);
    if (fd < 0) {
        fprintf(stderr, "switchyard diff: cannot connect to the admin console at %s\n", admin);
        return 2;
    }
    char cmd[PATH_MAX + 32];
    int n = snprintf(cmd, sizeof cmd, "reload --shadow %s\n", path);
    if (write(fd, cmd, (size_t)n) != n) {
        fprintf(stderr, "switchyard diff: %s: %s\n", admin, strerror(errno));
        close(fd);
        return 2;
    }
    /* A report at 1M keys takes a while: wait up to the daemon's own
     * bound and a little more. */
    struct timeval tv = { 330, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    int rc = 2;
    while (buf) {
        if (len + 1 >= cap) {
            if (cap >= REPORT_MAX)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
        buf[len] = '\0';
        if (strstr(buf, "\nEND\n") || !strncmp(buf, "END\n", 4))
            break;
    }
    close(fd);
    if (!buf || !strstr(buf, "END\n")) {
        fprintf(stderr, "switchyard diff: no complete report from %s\n", admin);
        if (buf)
            fwrite(buf, 1, len, stdout);
        free(buf);
        return 2;
    }
    char *end = strstr(buf, "END\n");
    fwrite(buf, 1, (size_t)(end - buf), stdout);
    if (!strncmp(buf, "shadow: refused", 15) || !strncmp(buf, "ERROR", 5))
        rc = 2;
    else {
        const char *ch = strstr(buf, "\nchanged: ");
        const char *tk = strstr(buf, "\ntokens: ");
        const char *tw = tk ? strstr(tk, " compared (") : NULL;
        const char *tc = tw ? strstr(tw, "), ") : NULL; /* "), N would change tenant" */
        rc = (ch && strtoull(ch + 10, NULL, 10) > 0) || (tc && strtoull(tc + 3, NULL, 10) > 0) ? 1 : 0;
    }
    free(buf);
    return rc;
}
