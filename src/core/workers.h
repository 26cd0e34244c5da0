/* A small fixed pool of worker threads for CPU-heavy work that must not run on a loop thread
 * (argon2 password hashing). A loop thread submits a pulse_work_t; a worker runs it; the result
 * comes back to the submitting loop through its inbox (an h2o multithread receiver) and done()
 * runs there. The queue is bounded: when it is full, submit refuses and the caller answers 503. */
#ifndef PULSE_CORE_WORKERS_H
#define PULSE_CORE_WORKERS_H

#include <stddef.h>

#include <h2o.h>
#include <h2o/multithread.h>

typedef struct pulse_workers_t pulse_workers_t;
typedef struct pulse_workers_inbox_t pulse_workers_inbox_t;

/* Embed in your own struct (H2O_STRUCT_FROM_MEMBER gets it back). The caller owns the memory;
 * it must stay valid from submit until done() was called, and done() may free it. */
typedef struct pulse_work_t {
    void (*run)(struct pulse_work_t *w);  /* on a worker thread; must not touch loop state */
    void (*done)(struct pulse_work_t *w); /* on the submitting loop's thread, exactly once */
    int cancelled;                        /* set before done() when the pool shut down before run() started */
    /* internal */
    h2o_multithread_message_t _msg; /* link in the pool queue, then the message to the inbox */
    pulse_workers_inbox_t *_inbox;
} pulse_work_t;

/* Starts `threads` workers (at least 1) with room for max_queued works waiting (at least 1).
 * Memory held by running work is bounded by `threads` (e.g. argon2 memory cost × threads). */
pulse_workers_t *pulse_workers_create(int threads, size_t max_queued);
/* Stops taking work: later submits return -1; works still queued are not run but handed back
 * to their inboxes with cancelled = 1 (done() answers 503 or frees). Running works finish and
 * come back normally. Does not wait; safe to call twice, from any thread. */
void pulse_workers_shutdown(pulse_workers_t *ws);
/* pulse_workers_shutdown, then waits for running work to finish, joins the threads and frees the
 * pool. Inboxes stay valid (they belong to their loops). Not from a worker thread. */
void pulse_workers_destroy(pulse_workers_t *ws);
/* Works queued but not yet started (for metrics). */
size_t pulse_workers_queued(pulse_workers_t *ws);

/* One per loop thread, created and destroyed on that thread. */
pulse_workers_inbox_t *pulse_workers_inbox_create(h2o_loop_t *loop);
/* Runs the loop (h2o_evloop_run, 10 ms steps) until every work submitted through this inbox came
 * back and its done() ran, then frees the inbox. Call it when the loop has drained its requests
 * (done() must cope with a vanished request); pulse_workers_shutdown first to not wait for a long
 * queue. */
void pulse_workers_inbox_destroy(pulse_workers_inbox_t *inbox);
/* Works submitted through this inbox whose done() has not run yet. */
size_t pulse_workers_inbox_pending(pulse_workers_inbox_t *inbox);

/* Queues w (run and done must be set) from the inbox's loop thread. Returns 0, or -1 when the
 * queue is full or the pool is shutting down: w is untouched and done() will not be called. */
int pulse_workers_submit(pulse_workers_t *ws, pulse_workers_inbox_t *inbox, pulse_work_t *w);

#endif
