/*
 * workq: a job list under one mutex, worker threads waiting on a
 * condition variable, and an eventfd that wakes the loop when jobs are
 * finished.  See workq.h.
 */
#include "config.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"
#include "workq.h"

struct job {
	workq_fn	 work;
	workq_fn	 done;
	void		*arg;
	struct job	*next;
};

struct workq {
	struct ev_loop	*loop;
	int		 efd;
	pthread_t	*threads;
	unsigned	 nthreads;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct job	*todo, **todo_tail;	/* waiting for a thread */
	struct job	*finished;		/* waiting for done() */
	bool		 stopping;
};

static void *
worker(void *arg)
{
	struct workq *wq = arg;
	struct job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&wq->mu);
	for (;;) {
		bool wake;

		while (wq->todo == NULL && !wq->stopping)
			pthread_cond_wait(&wq->cv, &wq->mu);
		if ((j = wq->todo) == NULL)
			break;		/* stopping and nothing left */
		if ((wq->todo = j->next) == NULL)
			wq->todo_tail = &wq->todo;
		pthread_mutex_unlock(&wq->mu);
		j->work(j->arg);
		pthread_mutex_lock(&wq->mu);
		/*
		 * Only the job that makes the list non-empty wakes the loop:
		 * the others are reaped with it (reap() takes the whole list
		 * after on_wake() has read the counter).  The write is made
		 * outside the lock, so the other workers and the loop do not
		 * wait on it; a wake-up that finds the list empty is harmless.
		 */
		wake = wq->finished == NULL;
		j->next = wq->finished;
		wq->finished = j;
		if (wake) {
			pthread_mutex_unlock(&wq->mu);
			/* An eventfd counter cannot overflow at our rates. */
			(void)write(wq->efd, &one, sizeof(one));
			pthread_mutex_lock(&wq->mu);
		}
	}
	pthread_mutex_unlock(&wq->mu);
	return NULL;
}

/* Run done() for every finished job (loop thread). */
static void
reap(struct workq *wq)
{
	struct job *j, *next;

	pthread_mutex_lock(&wq->mu);
	j = wq->finished;
	wq->finished = NULL;
	pthread_mutex_unlock(&wq->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->done(j->arg);
		free(j);
	}
}

static void
on_wake(int fd, int events, void *arg)
{
	uint64_t n;

	(void)events;
	(void)read(fd, &n, sizeof(n));
	reap(arg);
}

struct workq *
workq_new(struct ev_loop *loop, unsigned nthreads)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));
	int saved;

	wq->loop = loop;
	wq->efd = -1;
	wq->todo_tail = &wq->todo;
	pthread_mutex_init(&wq->mu, NULL);
	pthread_cond_init(&wq->cv, NULL);
	if ((wq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	if (ev_fd_add(loop, wq->efd, EV_READ, on_wake, wq) == -1) {
		close(wq->efd);
		wq->efd = -1;
		goto fail;
	}
	wq->threads = xcalloc(nthreads, sizeof(*wq->threads));
	for (; wq->nthreads < nthreads; wq->nthreads++) {
		int e = pthread_create(&wq->threads[wq->nthreads], NULL, worker,
		    wq);

		if (e != 0) {
			errno = e;
			goto fail;
		}
	}
	return wq;
fail:
	saved = errno;
	workq_free(wq);
	errno = saved;
	return NULL;
}

void
workq_push(struct workq *wq, workq_fn work, workq_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&wq->mu);
	*wq->todo_tail = j;
	wq->todo_tail = &j->next;
	pthread_cond_signal(&wq->cv);
	pthread_mutex_unlock(&wq->mu);
}

void
workq_free(struct workq *wq)
{
	if (wq == NULL)
		return;
	pthread_mutex_lock(&wq->mu);
	wq->stopping = true;
	pthread_cond_broadcast(&wq->cv);
	pthread_mutex_unlock(&wq->mu);
	/* Threads finish what is queued before they see "stopping". */
	for (unsigned i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	reap(wq);
	if (wq->efd != -1) {
		ev_fd_del(wq->loop, wq->efd);
		close(wq->efd);
	}
	pthread_mutex_destroy(&wq->mu);
	pthread_cond_destroy(&wq->cv);
	free(wq->threads);
	free(wq);
}
