/* The worker pool (see workers.h): a mutex/condvar queue of pulse_work_t, N threads, and one h2o
 * multithread receiver per loop that takes finished work back. */
#include "core/workers.h"
#include "core/buf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pulse_workers_t {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    h2o_linklist_t queue; /* pulse_work_t._msg.link, oldest first */
    size_t queued, max_queued;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

struct pulse_workers_inbox_t {
    h2o_loop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    size_t pending; /* touched on the loop thread only: submit adds, on_back subtracts */
};

static void send_back(pulse_work_t *w)
{
    h2o_multithread_send_message(&w->_inbox->receiver, &w->_msg);
}

static void *worker_main(void *arg)
{
    pulse_workers_t *ws = arg;
    pthread_mutex_lock(&ws->mutex);
    for (;;) {
        while (!ws->stopping && h2o_linklist_is_empty(&ws->queue))
            pthread_cond_wait(&ws->cond, &ws->mutex);
        if (ws->stopping) /* pulse_workers_shutdown hands the queue back */
            break;
        pulse_work_t *w = H2O_STRUCT_FROM_MEMBER(pulse_work_t, _msg.link, ws->queue.next);
        h2o_linklist_unlink(&w->_msg.link);
        ws->queued--;
        pthread_mutex_unlock(&ws->mutex);
        w->run(w);
        send_back(w);
        pthread_mutex_lock(&ws->mutex);
    }
    pthread_mutex_unlock(&ws->mutex);
    return NULL;
}

pulse_workers_t *pulse_workers_create(int threads, size_t max_queued)
{
    pulse_workers_t *ws = pulse_xmalloc(sizeof(*ws));
    memset(ws, 0, sizeof(*ws));
    pthread_mutex_init(&ws->mutex, NULL);
    pthread_cond_init(&ws->cond, NULL);
    h2o_linklist_init_anchor(&ws->queue);
    ws->max_queued = max_queued < 1 ? 1 : max_queued;
    ws->nthreads = threads < 1 ? 1 : threads;
    ws->threads = pulse_xmalloc(sizeof(pthread_t) * (size_t)ws->nthreads);
    for (int i = 0; i < ws->nthreads; i++) {
        int rc = pthread_create(&ws->threads[i], NULL, worker_main, ws);
        if (rc != 0) {
            fprintf(stderr, "pulse: cannot start worker thread: %s\n", strerror(rc));
            abort();
        }
    }
    return ws;
}

void pulse_workers_shutdown(pulse_workers_t *ws)
{
    h2o_linklist_t cancelled;
    h2o_linklist_init_anchor(&cancelled);
    pthread_mutex_lock(&ws->mutex);
    ws->stopping = 1;
    h2o_linklist_insert_list(&cancelled, &ws->queue);
    ws->queued = 0;
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->mutex);
    /* outside the lock: sending takes the inbox queue's mutex */
    while (!h2o_linklist_is_empty(&cancelled)) {
        pulse_work_t *w = H2O_STRUCT_FROM_MEMBER(pulse_work_t, _msg.link, cancelled.next);
        h2o_linklist_unlink(&w->_msg.link);
        w->cancelled = 1;
        send_back(w);
    }
}

void pulse_workers_destroy(pulse_workers_t *ws)
{
    if (ws == NULL)
        return;
    pulse_workers_shutdown(ws);
    for (int i = 0; i < ws->nthreads; i++)
        pthread_join(ws->threads[i], NULL);
    pthread_cond_destroy(&ws->cond);
    pthread_mutex_destroy(&ws->mutex);
    free(ws->threads);
    free(ws);
}

size_t pulse_workers_queued(pulse_workers_t *ws)
{
    pthread_mutex_lock(&ws->mutex);
    size_t n = ws->queued;
    pthread_mutex_unlock(&ws->mutex);
    return n;
}

int pulse_workers_submit(pulse_workers_t *ws, pulse_workers_inbox_t *inbox, pulse_work_t *w)
{
    pthread_mutex_lock(&ws->mutex);
    if (ws->stopping || ws->queued >= ws->max_queued) {
        pthread_mutex_unlock(&ws->mutex);
        return -1;
    }
    w->cancelled = 0;
    w->_inbox = inbox;
    memset(&w->_msg, 0, sizeof(w->_msg));
    h2o_linklist_insert(&ws->queue, &w->_msg.link);
    ws->queued++;
    inbox->pending++;
    pthread_cond_signal(&ws->cond);
    pthread_mutex_unlock(&ws->mutex);
    return 0;
}

static void on_back(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    pulse_workers_inbox_t *inbox = H2O_STRUCT_FROM_MEMBER(pulse_workers_inbox_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        pulse_work_t *w = H2O_STRUCT_FROM_MEMBER(pulse_work_t, _msg.link, messages->next);
        h2o_linklist_unlink(&w->_msg.link); /* before done(): it may free w or submit it again */
        inbox->pending--;
        w->done(w);
    }
}

pulse_workers_inbox_t *pulse_workers_inbox_create(h2o_loop_t *loop)
{
    pulse_workers_inbox_t *inbox = pulse_xmalloc(sizeof(*inbox));
    memset(inbox, 0, sizeof(*inbox));
    inbox->loop = loop;
    inbox->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(inbox->queue, &inbox->receiver, on_back);
    return inbox;
}

void pulse_workers_inbox_destroy(pulse_workers_inbox_t *inbox)
{
    if (inbox == NULL)
        return;
    /* h2o asserts that a receiver has no undelivered messages when it is unregistered, and a
     * worker may still hold a work addressed here: let every one come back first. */
    while (inbox->pending > 0)
        h2o_evloop_run(inbox->loop, 10);
    h2o_multithread_unregister_receiver(inbox->queue, &inbox->receiver);
    h2o_multithread_destroy_queue(inbox->queue);
    free(inbox);
}

size_t pulse_workers_inbox_pending(pulse_workers_inbox_t *inbox)
{
    return inbox->pending;
}
