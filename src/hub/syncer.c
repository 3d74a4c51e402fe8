#include "hub/syncer.h"

#include <stdbool.h>
#include <stdlib.h>

struct cd_syncer {
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    uv_async_t async;
    bool wanted, quit, has_result; /* under lock */
    int rc;                        /* under lock */
    cd_syncer_fn fn;
    void *arg;
    cd_syncer_done done;
    void *user;
    void (*closed)(void *user);
};

static void run(void *p) {
    cd_syncer *s = p;
    for (;;) {
        uv_mutex_lock(&s->lock);
        while (!s->wanted && !s->quit) uv_cond_wait(&s->cond, &s->lock);
        if (!s->wanted) {
            uv_mutex_unlock(&s->lock);
            return;
        }
        s->wanted = false;
        uv_mutex_unlock(&s->lock);
        int rc = s->fn(s->arg);
        uv_mutex_lock(&s->lock);
        s->rc = rc;
        s->has_result = true;
        uv_mutex_unlock(&s->lock);
        uv_async_send(&s->async);
    }
}

static void on_async(uv_async_t *h) {
    cd_syncer *s = h->data;
    uv_mutex_lock(&s->lock);
    bool got = s->has_result;
    int rc = s->rc;
    s->has_result = false;
    uv_mutex_unlock(&s->lock);
    if (got) s->done(rc, s->user);
}

static void on_closed(uv_handle_t *h) {
    cd_syncer *s = h->data;
    void (*closed)(void *) = s->closed;
    void *user = s->user;
    uv_mutex_destroy(&s->lock);
    uv_cond_destroy(&s->cond);
    free(s);
    if (closed) closed(user);
}

cd_syncer *cd_syncer_new(uv_loop_t *loop, cd_syncer_fn fn, void *arg, cd_syncer_done done, void *user) {
    cd_syncer *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    *s = (cd_syncer){.fn = fn, .arg = arg, .done = done, .user = user};
    if (uv_mutex_init(&s->lock) < 0) {
        free(s);
        return NULL;
    }
    uv_cond_init(&s->cond);
    uv_async_init(loop, &s->async, on_async);
    s->async.data = s;
    if (uv_thread_create(&s->thread, run, s) < 0) {
        uv_close((uv_handle_t *)&s->async, on_closed); /* frees s */
        return NULL;
    }
    return s;
}

void cd_syncer_request(cd_syncer *s) {
    uv_mutex_lock(&s->lock);
    s->wanted = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->lock);
}


void cd_syncer_close(cd_syncer *s, void (*closed)(void *user)) {
    uv_mutex_lock(&s->lock);
    s->quit = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->lock);
    uv_thread_join(&s->thread);
    s->closed = closed;
    uv_close((uv_handle_t *)&s->async, on_closed);
}
