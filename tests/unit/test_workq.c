/*
 * Unit tests for src/workq.c on a real event loop and real threads:
 * every job's work() runs once, off the loop's thread, and its done()
 * afterwards on the loop's thread; jobs run side by side on as many
 * threads as asked; workq_free() waits for the jobs still queued and runs
 * their done() before it returns.  Every wait is bounded.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "event.h"
#include "util.h"
#include "workq.h"

#define WAIT_MS		10000

struct job {
	pthread_t	 loop_thread;
	pthread_t	 work_thread;
	int		 worked;	/* times work() ran */
	int		 done;		/* times done() ran */
	bool		 done_after_work;
	bool		 done_on_loop;
	unsigned	 sleep_ms;
	struct gate	*gate;
	int		*ndone;
};

/* Jobs that wait for one another: proof that they run at once. */
struct gate {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	unsigned	 inside, want, max_inside;
};

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		;
}

static void
job_work(void *arg)
{
	struct job *j = arg;

	j->work_thread = pthread_self();
	j->worked++;
	if (j->sleep_ms > 0)
		sleep_ms(j->sleep_ms);
	if (j->gate != NULL) {
		struct gate *g = j->gate;
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		pthread_mutex_lock(&g->mu);
		g->inside++;
		if (g->inside > g->max_inside)
			g->max_inside = g->inside;
		pthread_cond_broadcast(&g->cv);
		/* Bounded: a queue with fewer threads gives up after 5 s. */
		while (g->inside < g->want &&
		    pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
			;
		pthread_mutex_unlock(&g->mu);
	}
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	j->done++;
	j->done_after_work = j->worked == 1;
	j->done_on_loop = pthread_equal(pthread_self(), j->loop_thread) != 0;
	(*j->ndone)++;
}

static void
run_until(struct ev_loop *loop, const int *ndone, int want)
{
	uint64_t end = util_now_ms() + WAIT_MS;

	while (*ndone < want) {
		assert_true(util_now_ms() < end);
		ev_run_once(loop, 100);
	}
}

static void
test_jobs_run_once_off_loop(void **state)
{
	enum { N = 200 };
	struct ev_loop *loop = ev_loop_new();
	struct workq *wq = workq_new(loop, 4);
	struct job *jobs = calloc(N, sizeof(*jobs));
	int ndone = 0;

	(void)state;
	assert_non_null(wq);
	assert_non_null(jobs);
	for (int i = 0; i < N; i++) {
		jobs[i].loop_thread = pthread_self();
		jobs[i].ndone = &ndone;
		workq_push(wq, job_work, job_done, &jobs[i]);
	}
	run_until(loop, &ndone, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].worked, 1);
		assert_int_equal(jobs[i].done, 1);
		assert_true(jobs[i].done_after_work);
		assert_true(jobs[i].done_on_loop);
		assert_false(pthread_equal(jobs[i].work_thread,
		    pthread_self()));
	}
	workq_free(wq);
	assert_int_equal(ndone, N);	/* nothing ran twice at the end */
	free(jobs);
	ev_loop_free(loop);
}

static void
test_jobs_run_side_by_side(void **state)
{
	enum { N = 4 };
	struct ev_loop *loop = ev_loop_new();
	struct workq *wq = workq_new(loop, N);
	struct gate g;
	struct job jobs[N];
	int ndone = 0;

	(void)state;
	assert_non_null(wq);
	memset(jobs, 0, sizeof(jobs));
	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	g.want = N;
	for (int i = 0; i < N; i++) {
		jobs[i].loop_thread = pthread_self();
		jobs[i].gate = &g;
		jobs[i].ndone = &ndone;
		workq_push(wq, job_work, job_done, &jobs[i]);
	}
	run_until(loop, &ndone, N);
	/* All N were inside work() at the same time. */
	assert_int_equal(g.max_inside, N);
	workq_free(wq);
	pthread_mutex_destroy(&g.mu);
	pthread_cond_destroy(&g.cv);
	ev_loop_free(loop);
}

static void
test_free_waits_for_queued(void **state)
{
	enum { N = 12 };
	struct ev_loop *loop = ev_loop_new();
	struct workq *wq = workq_new(loop, 2);
	struct job jobs[N];
	int ndone = 0;

	(void)state;
	assert_non_null(wq);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].loop_thread = pthread_self();
		jobs[i].sleep_ms = 10;
		jobs[i].ndone = &ndone;
		workq_push(wq, job_work, job_done, &jobs[i]);
	}
	/* No loop turn: workq_free itself finishes them all. */
	workq_free(wq);
	assert_int_equal(ndone, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].worked, 1);
		assert_int_equal(jobs[i].done, 1);
		assert_true(jobs[i].done_on_loop);
	}
	ev_loop_free(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_once_off_loop),
		cmocka_unit_test(test_jobs_run_side_by_side),
		cmocka_unit_test(test_free_waits_for_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
