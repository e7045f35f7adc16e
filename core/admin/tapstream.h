/*
 * tapstream.h - a tap (tap.h) streamed to one admin client: the console's
 * `tap GLOB [N]` and HTTP's GET /tap?glob=...&n=..., on the admin loop.
 *
 * Every TAP_POLL_MS the stream takes what the engine has queued and writes
 * it to the client, unless the client already has SY_TAP_CLIENT_BUF bytes
 * unsent: then the lines are skipped and counted, so a reader that does
 * not keep up costs a bounded buffer and never holds the engine.  The
 * stream ends after its N lines, after SY_TAP_SECONDS, or when the client
 * stops it or goes; it then writes its summary line.
 */
#ifndef SY_TAPSTREAM_H
#define SY_TAPSTREAM_H

#include <stddef.h>

struct event_base;
struct bufferevent;
struct evhttp_request;

typedef struct sy_tapstream sy_tapstream;
/* The console's tap ended by itself (N lines or the time limit): the
 * summary has been written; the stream is freed after this returns. */
typedef void sy_tapstream_done_fn(void *ctx);

/* Starts a tap for a console client; NULL with why in err (refused). */
sy_tapstream *sy_tapstream_console(struct event_base *base, struct bufferevent *bev, const char *glob,
                                   long n, sy_tapstream_done_fn *done, void *ctx, char *err,
                                   size_t errlen);
/* Ends it now: with_summary writes the summary line (the client asked to
 * stop), without it nothing more is written (the client is gone). */
void sy_tapstream_stop(sy_tapstream *t, int with_summary);

/* GET /tap?glob=GLOB&n=N: the stream as a chunked text/plain reply. */
void sy_tapstream_http(struct evhttp_request *req, void *arg);

#endif
