#include "engine/queue.h"

#include <errno.h>
#include <time.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cd_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cd_queue_item **heap;
    size_t n, cap;
    cd_queue_item *running;
    bool closed, woken;
};

cd_queue *cd_queue_new(void) {
    cd_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_mutex_init(&q->lock, NULL);
    /* timed waits measure on the monotonic clock: a change of the wall clock must not stretch them */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    return q;
}

void cd_queue_item_free(cd_queue_item *it) {
    if (!it) return;
    free(it->prompt_id);
    json_decref(it->prompt);
    json_decref(it->extra_data);
    json_decref(it->outputs);
    free(it);
}

void cd_queue_free(cd_queue *q) {
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) cd_queue_item_free(q->heap[i]);
    cd_queue_item_free(q->running);
    free(q->heap);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}

/* What GET /queue shows of a prompt's extra_data: the Comfy.org credentials a client sent stay
 * out of it, as in ComfyUI 0.8 (anyone who can read the queue could otherwise take them). */
static json_t *public_extra_data(json_t *extra) {
    if (!json_object_get(extra, "auth_token_comfy_org") && !json_object_get(extra, "api_key_comfy_org"))
        return json_incref(extra);
    json_t *copy = json_copy(extra);
    json_object_del(copy, "auth_token_comfy_org");
    json_object_del(copy, "api_key_comfy_org");
    return copy;
}

json_t *cd_queue_item_json(const cd_queue_item *it) {
    json_t *num = it->number_is_float ? json_real(it->number) : json_integer((json_int_t)it->number);
    return json_pack("[o, s, O, o, O]", num, it->prompt_id, it->prompt, public_extra_data(it->extra_data),
                     it->outputs);
}

static bool less(const cd_queue_item *a, const cd_queue_item *b) {
    if (a->number != b->number) return a->number < b->number;
    return strcmp(a->prompt_id, b->prompt_id) < 0;
}

static void sift_up(cd_queue *q, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(q->heap[i], q->heap[p])) break;
        cd_queue_item *t = q->heap[i];
        q->heap[i] = q->heap[p];
        q->heap[p] = t;
        i = p;
    }
}

static void sift_down(cd_queue *q, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && less(q->heap[l], q->heap[m])) m = l;
        if (r < q->n && less(q->heap[r], q->heap[m])) m = r;
        if (m == i) break;
        cd_queue_item *t = q->heap[i];
        q->heap[i] = q->heap[m];
        q->heap[m] = t;
        i = m;
    }
}

void cd_queue_put(cd_queue *q, cd_queue_item *it) {
    pthread_mutex_lock(&q->lock);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        cd_queue_item **h = realloc(q->heap, cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&q->lock);
            cd_queue_item_free(it);
            return;
        }
        q->heap = h;
        q->cap = cap;
    }
    q->heap[q->n++] = it;
    sift_up(q, q->n - 1);
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static cd_queue_item *pop_locked(cd_queue *q) {
    cd_queue_item *top = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    if (q->n) sift_down(q, 0);
    return top;
}

int cd_queue_take(cd_queue *q, cd_queue_item **out, int timeout_ms) {
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&q->lock);
    while (!q->closed && q->n == 0 && !q->woken) {
        if (timeout_ms < 0) pthread_cond_wait(&q->cond, &q->lock);
        else if (pthread_cond_timedwait(&q->cond, &q->lock, &until) == ETIMEDOUT) break;
    }
    q->woken = false;
    int rc = q->closed ? -1 : 0;
    *out = NULL;
    if (!q->closed && q->n > 0) {
        *out = pop_locked(q);
        q->running = *out;
        rc = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void cd_queue_done(cd_queue *q) {
    pthread_mutex_lock(&q->lock);
    cd_queue_item *it = q->running;
    q->running = NULL;
    pthread_mutex_unlock(&q->lock);
    cd_queue_item_free(it);
}

void cd_queue_close(cd_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void cd_queue_wake(cd_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->woken = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

int cd_queue_remaining(cd_queue *q) {
    pthread_mutex_lock(&q->lock);
    int n = (int)q->n + (q->running ? 1 : 0);
    pthread_mutex_unlock(&q->lock);
    return n;
}

json_t *cd_queue_snapshot(cd_queue *q) {
    json_t *running = json_array(), *pending = json_array();
    pthread_mutex_lock(&q->lock);
    if (q->running) json_array_append_new(running, cd_queue_item_json(q->running));
    for (size_t i = 0; i < q->n; i++) json_array_append_new(pending, cd_queue_item_json(q->heap[i]));
    pthread_mutex_unlock(&q->lock);
    return json_pack("{s:o, s:o}", "queue_running", running, "queue_pending", pending);
}

void cd_queue_clear(cd_queue *q) {
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n; i++) cd_queue_item_free(q->heap[i]);
    q->n = 0;
    pthread_mutex_unlock(&q->lock);
}

bool cd_queue_delete(cd_queue *q, const char *prompt_id) {
    bool removed = false;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->heap[i]->prompt_id, prompt_id) != 0) continue;
        cd_queue_item_free(q->heap[i]);
        q->heap[i] = q->heap[--q->n];
        /* Re-heapify: the moved item may go either way. */
        for (size_t k = q->n / 2 + 1; k-- > 0;) sift_down(q, k);
        removed = true;
        break;
    }
    pthread_mutex_unlock(&q->lock);
    return removed;
}

bool cd_queue_is_running(cd_queue *q, const char *prompt_id) {
    pthread_mutex_lock(&q->lock);
    bool yes = q->running && strcmp(q->running->prompt_id, prompt_id) == 0;
    pthread_mutex_unlock(&q->lock);
    return yes;
}
