/* pace.c - see pace.h. */
#include "pace.h"

int pace_wait(pace *p, uint64_t now_ms, int connected, uint64_t sent, size_t queued,
              size_t max, size_t need)
{
    if (sent != p->sent_seen || queued == 0) {
        p->sent_seen = sent;
        p->moved_ms = now_ms;
    }
    return connected && now_ms - p->moved_ms < PACE_STALL_MS && need <= max &&
           queued > max - need;
}
