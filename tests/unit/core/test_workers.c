/* Unit tests for src/core/workers.c: work runs off the loop thread and comes back to it, the
 * queue is bounded, and shutting down with work queued and running loses nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/workers.h"

typedef struct job_t {
    pulse_work_t work;
    pthread_t loop_thread;
    pthread_t ran_on;
    int input, output;
    int sleep_ms;
    int *done_count, *cancelled_count, *wrong_thread;
} job_t;

static atomic_int running_now;

/* h2o 2.2.5 leaks its own: destroy_queue does not free the queue struct, and each thread that
 * read from a socket keeps a recycled buffer when it exits. Not ours; the suppressions keep the
 * leak check (scripts/test.sh) meaningful for what is. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_multithread_create_queue\nleak:h2o_mem_alloc_recycle\n";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void job_run(pulse_work_t *w)
{
    job_t *j = H2O_STRUCT_FROM_MEMBER(job_t, work, w);
    atomic_fetch_add(&running_now, 1);
    j->ran_on = pthread_self();
    if (j->sleep_ms > 0)
        sleep_ms(j->sleep_ms);
    j->output = j->input * 2;
    atomic_fetch_sub(&running_now, 1);
}

static void job_done(pulse_work_t *w)
{
    job_t *j = H2O_STRUCT_FROM_MEMBER(job_t, work, w);
    if (!pthread_equal(pthread_self(), j->loop_thread))
        (*j->wrong_thread)++;
    if (w->cancelled)
        (*j->cancelled_count)++;
    else
        (*j->done_count)++;
}

static void job_init(job_t *j, int input, int sleep, int *done_count, int *cancelled_count, int *wrong_thread)
{
    memset(j, 0, sizeof(*j));
    j->work.run = job_run;
    j->work.done = job_done;
    j->loop_thread = pthread_self();
    j->input = input;
    j->sleep_ms = sleep;
    j->done_count = done_count;
    j->cancelled_count = cancelled_count;
    j->wrong_thread = wrong_thread;
}

static void run_until(h2o_evloop_t *loop, const int *count, int target)
{
    for (int i = 0; i < 5000 && *count < target; i++)
        h2o_evloop_run(loop, 10);
}

static void finish_loop(h2o_evloop_t *loop)
{
    h2o_evloop_run(loop, 0); /* frees the sockets closed by the queue */
    h2o_evloop_destroy(loop);
}

static void test_thousand_jobs_come_back_on_loop_thread(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    pulse_workers_inbox_t *inbox = pulse_workers_inbox_create(loop);
    pulse_workers_t *ws = pulse_workers_create(3, 1000);
    int done = 0, cancelled = 0, wrong = 0;
    job_t *jobs = calloc(1000, sizeof(job_t));
    for (int i = 0; i < 1000; i++) {
        job_init(&jobs[i], i, 0, &done, &cancelled, &wrong);
        assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[i].work), 0);
    }
    assert_int_equal(pulse_workers_inbox_pending(inbox), 1000);
    run_until(loop, &done, 1000);
    assert_int_equal(done, 1000);
    assert_int_equal(cancelled, 0);
    assert_int_equal(wrong, 0);
    assert_int_equal(pulse_workers_inbox_pending(inbox), 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(jobs[i].output, 2 * i);
        assert_false(pthread_equal(jobs[i].ran_on, jobs[i].loop_thread));
    }
    pulse_workers_destroy(ws);
    pulse_workers_inbox_destroy(inbox);
    finish_loop(loop);
    free(jobs);
}

static void test_queue_full_refuses(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    pulse_workers_inbox_t *inbox = pulse_workers_inbox_create(loop);
    pulse_workers_t *ws = pulse_workers_create(1, 4);
    int done = 0, cancelled = 0, wrong = 0;
    job_t jobs[6];
    /* the first job occupies the only worker; then four fit in the queue, the sixth does not */
    job_init(&jobs[0], 0, 100, &done, &cancelled, &wrong);
    assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[0].work), 0);
    for (int i = 0; i < 200 && atomic_load(&running_now) == 0; i++)
        sleep_ms(1);
    for (int i = 1; i <= 4; i++) {
        job_init(&jobs[i], i, 0, &done, &cancelled, &wrong);
        assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[i].work), 0);
    }
    assert_int_equal(pulse_workers_queued(ws), 4);
    job_init(&jobs[5], 5, 0, &done, &cancelled, &wrong);
    assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[5].work), -1);
    assert_int_equal(pulse_workers_inbox_pending(inbox), 5);
    run_until(loop, &done, 5);
    assert_int_equal(done, 5);
    assert_int_equal(wrong, 0);
    /* room again once the queue drained */
    assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[5].work), 0);
    run_until(loop, &done, 6);
    assert_int_equal(done, 6);
    assert_int_equal(jobs[5].output, 10);
    pulse_workers_destroy(ws);
    pulse_workers_inbox_destroy(inbox);
    finish_loop(loop);
}

static void test_destroy_with_work_in_flight(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    pulse_workers_inbox_t *inbox = pulse_workers_inbox_create(loop);
    pulse_workers_t *ws = pulse_workers_create(2, 100);
    int done = 0, cancelled = 0, wrong = 0;
    job_t jobs[50];
    for (int i = 0; i < 50; i++) {
        job_init(&jobs[i], i, 20, &done, &cancelled, &wrong);
        assert_int_equal(pulse_workers_submit(ws, inbox, &jobs[i].work), 0);
    }
    for (int i = 0; i < 200 && atomic_load(&running_now) < 2; i++)
        sleep_ms(1);
    pulse_workers_destroy(ws);             /* the two running finish; the rest come back cancelled */
    assert_int_equal(done + cancelled, 0); /* nothing is delivered before the loop runs */
    pulse_workers_inbox_destroy(inbox);    /* runs the loop until every work came back */
    assert_int_equal(done + cancelled, 50);
    assert_true(done >= 2);
    assert_true(cancelled >= 40);
    assert_int_equal(wrong, 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(jobs[i].output, jobs[i].work.cancelled ? 0 : 2 * i);
    finish_loop(loop);
}

static void test_submit_after_shutdown_refuses(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    pulse_workers_inbox_t *inbox = pulse_workers_inbox_create(loop);
    pulse_workers_t *ws = pulse_workers_create(1, 10);
    int done = 0, cancelled = 0, wrong = 0;
    job_t j;
    job_init(&j, 1, 0, &done, &cancelled, &wrong);
    pulse_workers_shutdown(ws);
    pulse_workers_shutdown(ws);
    assert_int_equal(pulse_workers_submit(ws, inbox, &j.work), -1);
    assert_int_equal(pulse_workers_inbox_pending(inbox), 0);
    pulse_workers_destroy(ws);
    pulse_workers_inbox_destroy(inbox);
    assert_int_equal(done + cancelled, 0);
    finish_loop(loop);
}

/* Two loops on two threads share one pool: each gets its own work back. */
typedef struct loop_arg_t {
    pulse_workers_t *ws;
    int done, cancelled, wrong;
} loop_arg_t;

static void *loop_thread(void *p)
{
    loop_arg_t *a = p;
    h2o_evloop_t *loop = h2o_evloop_create();
    pulse_workers_inbox_t *inbox = pulse_workers_inbox_create(loop);
    job_t *jobs = calloc(300, sizeof(job_t));
    int submitted = 0;
    for (int i = 0; i < 300; i++) {
        job_init(&jobs[i], i, 0, &a->done, &a->cancelled, &a->wrong);
        while (pulse_workers_submit(a->ws, inbox, &jobs[i].work) != 0)
            h2o_evloop_run(loop, 1); /* queue full: let work come back, then retry */
        submitted++;
    }
    run_until(loop, &a->done, submitted);
    pulse_workers_inbox_destroy(inbox);
    finish_loop(loop);
    free(jobs);
    return NULL;
}

static void test_two_loops_share_a_pool(void **state)
{
    pulse_workers_t *ws = pulse_workers_create(2, 16);
    loop_arg_t args[2];
    pthread_t tids[2];
    memset(args, 0, sizeof(args));
    for (int i = 0; i < 2; i++) {
        args[i].ws = ws;
        pthread_create(&tids[i], NULL, loop_thread, &args[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(args[i].done, 300);
        assert_int_equal(args[i].wrong, 0);
    }
    pulse_workers_destroy(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_jobs_come_back_on_loop_thread),
        cmocka_unit_test(test_queue_full_refuses),
        cmocka_unit_test(test_destroy_with_work_in_flight),
        cmocka_unit_test(test_submit_after_shutdown_refuses),
        cmocka_unit_test(test_two_loops_share_a_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
