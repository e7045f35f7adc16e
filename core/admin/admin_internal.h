/*
 * admin_internal.h - the admin's state, shared by admin.c (the loop, the
 * console, /health and /metrics) and traces_page.c (/traces, made on
 * worker threads).  Not for other modules: they use admin.h.
 */
#ifndef SY_ADMIN_INTERNAL_H
#define SY_ADMIN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "admin/admin.h"
#include "util/buf.h"

struct evhttp_request;
struct bufferevent;
struct sy_shadow_job;
struct sy_tapstream;
struct http_top;

struct evhttp_request;

#define MAX_COMMAND 8192
#define MAX_PENDING_OUT (4u << 20) /* replies a console client has not read yet */
/* HTTP: no endpoint takes a body, and a request line or header section
 * longer than this is no admin client's.  Without these limits libevent
 * buffers a body of any Content-Length, and rescans an ever longer header
 * line on every read. */
#define HTTP_MAX_HEADERS 8192
/* evhttp's own limit, above the head guard's (httphead.c), which answers
 * 414/431 first: evhttp's bare 400 is left for malformed requests. */
#define HTTP_EVHTTP_HEADERS (2 * HTTP_MAX_HEADERS)
#define HTTP_MAX_BODY 0
#define TRACES_MAX_JOBS 2 /* /traces pages being made at once; more get a 503 */

typedef struct traces_job traces_job;
/* A walk's reply waits (the engine writes no more of it) while this much
 * of it is not yet written to the client; it goes on once half is. */
#define WALK_PENDING_OUT (1u << 20)
/* A console client that reads nothing of a pending reply for this long
 * is closed (it would otherwise hold a walk, of SY_WALK_MAX, for ever). */
#define WRITE_TIMEOUT_S 30

/* One console connection. */
typedef struct conn {
    sy_admin *a;
    struct bufferevent *bev;
    struct conn *prev, *next; /* every open one, to close them at the end */
    sy_walk *walk;            /* a reply being streamed; no commands meanwhile */
    int walk_end;             /* "END" after it (the dumps) */
    int waiting;              /* the walk waits for the client to read */
    int eof;                  /* the client has said all it will */
    int discarding;           /* the rest of an over-long line, up to its newline, is skipped */
    struct sy_shadow_job *shadow; /* a shadow reload whose report it waits for */
    struct sy_tapstream *tap;     /* `tap` streaming; a line stops it */
} conn;

struct sy_admin {
    sy_admin_deps d;
    struct event_base *base;
    struct evconnlistener *mgmt;
    struct evhttp *http;
    struct evhttp_bound_socket *http_sock;
    struct event *stop_ev;
    int stop_fd;            /* eventfd: another thread asks the loop to end */
    struct event *resume_ev;
    pthread_t thread;
    int started;
    int mgmt_port, http_port;
    atomic_int health_up;
    time_t start;
    pthread_mutex_t conf_lock;
    sy_buf conf_text; /* the `config` reply for the config running now */
    /* Refusals, for /metrics; only the admin thread touches them. */
    uint64_t console_too_long;       /* console lines over MAX_COMMAND */
    uint64_t http_refused[101];      /* HTTP refusals: 400..499 by code, then 501 (refused_slot) */

    /* /traces pages are made on worker threads (see http_traces): `jobs`
     * is every page begun and not yet answered, linked and unlinked on
     * the loop only; a worker sets its job's `done` under jobs_lock and
     * then writes jobs_fd, which wakes the loop to answer it. */
    pthread_mutex_t jobs_lock;
    traces_job *jobs;
    size_t njobs;
    int jobs_fd;             /* eventfd: a page is ready */
    int cancel_fd;           /* eventfd: written at stop, pages give up */
    struct event *jobs_ev;
    atomic_ullong traces_busy; /* /traces refused: TRACES_MAX_JOBS being made */
    atomic_ullong traces_cut;  /* /traces pages cut to their bounds */
    conn *conns;
    int walk_fd;            /* eventfd: the engine has written a slice */
    struct event *walk_ev;
    _Atomic uint64_t walk_waits;    /* walks held for a slow reader */
    _Atomic uint64_t write_timeouts; /* console clients closed for not reading */
    struct http_top *tops;  /* /top requests whose walk is in progress */
};

/* A /traces page being made on a worker thread (traces_page.c). */
struct traces_job {
    traces_job *next;
    sy_admin *a;
    struct evhttp_request *req; /* touched on the loop only */
    char *uri, *memcached, *prefix;
    struct evbuffer *out;
    struct evkeyvalq headers;
    int code, cut, done;
    pthread_t thread;
};

/* GET and HEAD pass; another method is answered 405.  0 when refused. */
int sy_admin_http_method_ok(struct evhttp_request *req);

/* traces_page.c: the /traces handler, the loop's callback for jobs_fd
 * (pages made), and freeing a job (at stop). */
void sy_admin_http_traces(struct evhttp_request *req, void *arg);
void sy_admin_on_jobs_done(evutil_socket_t fd, short what, void *arg);
void sy_admin_traces_job_free(traces_job *j);

/* evhttp_send_reply, with HEAD answered as GET without the body. */
void sy_admin_http_reply(struct evhttp_request *req, int code, const char *reason,
                         struct evbuffer *body);
/* The slot of http_refused for an HTTP status, or -1 if not a refusal. */
int sy_admin_refused_slot(int code);
/* Watches an evhttp connection's input: a request line over
 * HTTP_MAX_HEADERS is answered 414 and a header section over it 431, and
 * the connection closed; refused(fd, code) counts it (httphead.c).  The
 * admin thread only; _free at its end. */
void sy_admin_head_guard(struct bufferevent *bev, void (*refused)(int fd, int code));
void sy_admin_head_guard_free(void);
/* GET /metrics (metrics.c). */
void sy_admin_http_metrics(struct evhttp_request *req, void *arg);

/* A plain-text reply with the code's reason phrase (traces_page.c). */
void sy_admin_reply_text(struct evhttp_request *req, int code, const char *text);

#endif
