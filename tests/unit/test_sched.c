/*
 * test_sched: the queue index of src/scheduler.c (struct sched) as
 * scripts.  Each script is a table of steps, and each step names the rule
 * it checks: add a message (its recipients and their next_try), ask for
 * the next job at a time, report a group back, flush.  Then two bulk
 * checks: 1000 groups for a stuck destination beside one for another
 * (no head-of-line blocking), and many messages coming out oldest due
 * first, ties by id, against a sorted model.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "envelope.h"
#include "mock_log.h"
#include "scheduler.h"
#include "util.h"

#define T0	1700000000	/* seconds; step times are offsets from it */
/* cmocka's FAIL() text does not always reach the log. */
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
	fail(); } while (0)
#define MS(t)	(((int64_t)T0 + (t)) * 1000)

/*
 * ops:
 *  'a' add message id, due at once, envelope read: arg is
 *      "addr=next_try,addr=next_try" (offsets from T0; "!" after the
 *      address: already delivered), arrival T0 + t
 *  'l' add message id unread (a SCHED_LOAD job due at t)
 *  's' set message id from arg as 'a' does (after a load)
 *  'n' next job at t: want "RUN id dest[ probe][ force]", "LOAD id",
 *      "NONE t" (wake at offset t) or "NONE -" (no wake)
 *  'd' group of id for destination arg back at t: want "down", "reach",
 *      "pending=T" or "" (comma separated); events in want2
 *  'f' flush id (NULL: all)
 *  'x' abort the group of id for arg, due again at t
 */
struct step {
	const char	*rule;
	char		 op;
	const char	*id;
	const char	*arg;
	int64_t		 t;
	const char	*want;
};

struct script {
	const char		*name;
	struct sched_conf	 conf;
	const struct step	*steps;
	size_t			 nsteps;
};

#define DAEMON(limit, window) \
	{ 60000, 3600000, 86400000, false, limit, window, true }
#define ONESHOT(limit, window) \
	{ 60000, 3600000, 86400000, false, limit, window, false }

struct running {
	char			 id[32];
	char			 dest[64];
	struct sched_group	*g;
};

static struct running runs[64];
static size_t nruns;

static void
env_from(struct envelope *env, const char *id, const char *spec, time_t arrival)
{
	char *copy = xstrdup(spec), *tok, *save = NULL;

	envelope_init(env);
	util_strlcpy(env->id, id, sizeof(env->id));
	env->arrival = arrival;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		bool done = false;

		assert_non_null(eq);
		*eq = '\0';
		if (eq > tok && eq[-1] == '!') {
			eq[-1] = '\0';
			done = true;
		}
		envelope_add_rcpt(env, tok, NULL);
		env->rcpt[env->nrcpt - 1].next_try = T0 + atol(eq + 1);
		if (done)
			env->rcpt[env->nrcpt - 1].state = RCPT_DELIVERED;
	}
	free(copy);
}

static void
set_msg(struct sched *s, struct sched_msg *m, const char *spec, int64_t t)
{
	struct envelope env;

	env_from(&env, m->id, spec, T0 + (time_t)t);
	sched_msg_set(s, m, &env, MS(t));
	envelope_free(&env);
}

static void
pick_text(enum sched_job j, const struct sched_pick *p, int64_t wake,
    char *buf, size_t len)
{
	switch (j) {
	case SCHED_RUN:
		snprintf(buf, len, "RUN %s %s%s%s", p->msg->id, p->dest,
		    p->probe ? " probe" : "", p->force ? " force" : "");
		break;
	case SCHED_LOAD:
		snprintf(buf, len, "LOAD %s", p->msg->id);
		break;
	default:
		if (wake == -1)
			snprintf(buf, len, "NONE -");
		else
			snprintf(buf, len, "NONE %lld",
			    (long long)(wake / 1000 - T0));
		break;
	}
}

static void
events_text(unsigned f, const struct sched_event *ev, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", f & SCHED_EV_HOLD_START ? "hold " : "",
	    f & SCHED_EV_HOLD_END ? "end " : "",
	    f & SCHED_EV_CLOSED ? "closed" : "");
	if (f & SCHED_EV_HOLD_START)
		snprintf(buf + strlen(buf), len - strlen(buf), " %llds/%u",
		    (long long)(ev->delay / 1000), ev->failures);
}

static struct running *
run_find(const char *id, const char *dest)
{
	for (size_t i = 0; i < nruns; i++)
		if (strcmp(runs[i].id, id) == 0 && strcmp(runs[i].dest, dest) == 0)
			return &runs[i];
	return NULL;
}

static void
run_drop(struct running *r)
{
	*r = runs[--nruns];
}

static void
step_done(struct sched *s, const struct step *st, char *got, size_t len)
{
	struct running *r = run_find(st->id, st->arg);
	struct sched_result res = { false, false, false, 0 };
	struct sched_event ev;
	const char *w = strchr(st->want, '|');
	const char *p;
	unsigned f;

	if (r == NULL)
		FAIL("%s: %s/%s is not running", st->rule, st->id, st->arg);
	res.dest_down = strstr(st->want, "down") != NULL;
	res.reached = strstr(st->want, "reach") != NULL;
	if ((p = strstr(st->want, "pending=")) != NULL) {
		res.pending = true;
		res.next_try = T0 + atol(p + 8);
	}
	f = sched_group_done(s, r->g, &res, MS(st->t), &ev);
	run_drop(r);
	events_text(f, &ev, got, len);
	if (w == NULL || strcmp(w + 1, got) != 0)
		FAIL("%s: events \"%s\", want \"%s\"", st->rule, got,
		    w != NULL ? w + 1 : "");
}

static void
run_script(const struct script *sc)
{
	struct sched *s = sched_new(&sc->conf);
	char got[256];

	nruns = 0;
	for (size_t i = 0; i < sc->nsteps; i++) {
		const struct step *st = &sc->steps[i];
		struct sched_msg *m;
		struct sched_pick p;
		enum sched_job j;
		int64_t wake;

		switch (st->op) {
		case 'a':
			m = sched_msg_add(s, st->id, MS(st->t), false);
			set_msg(s, m, st->arg, st->t);
			break;
		case 'l':
			sched_msg_add(s, st->id, MS(st->t), false);
			break;
		case 's':
			assert_non_null(m = sched_msg_find(s, st->id));
			set_msg(s, m, st->arg, st->t);
			break;
		case 'n':
			j = sched_next(s, MS(st->t), &p, &wake);
			pick_text(j, &p, wake, got, sizeof(got));
			if (strcmp(got, st->want) != 0)
				FAIL("%s: %s: got \"%s\", want \"%s\"",
				    sc->name, st->rule, got, st->want);
			if (j == SCHED_RUN) {
				assert_true(nruns < 64);
				util_strlcpy(runs[nruns].id, p.msg->id,
				    sizeof(runs[nruns].id));
				util_strlcpy(runs[nruns].dest, p.dest,
				    sizeof(runs[nruns].dest));
				runs[nruns++].g = p.group;
			}
			break;
		case 'd':
			step_done(s, st, got, sizeof(got));
			break;
		case 'f':
			sched_flush(s, st->id != NULL ?
			    sched_msg_find(s, st->id) : NULL);
			break;
		case 'x': {
			struct running *r = run_find(st->id, st->arg);

			assert_non_null(r);
			sched_group_abort(s, r->g, MS(st->t));
			run_drop(r);
			break;
		}
		}
	}
	sched_free(s);
}

#define SCRIPT(name, conf, steps) \
	{ name, conf, steps, sizeof(steps) / sizeof(steps[0]) }

static const struct step ordering[] = {
	{ "an empty index has nothing to do", 'n', NULL, NULL, 0, "NONE -" },
	{ "a message due later", 'a', "m2", "u@b.org=50", 0, NULL },
	{ "a message due sooner", 'a', "m3", "u@c.org=20", 0, NULL },
	{ "due at the same time as m3, smaller id", 'a', "m1", "u@a.org=20", 0, NULL },
	{ "before anything is due, wake at the earliest", 'n', NULL, NULL, 10, "NONE 20" },
	{ "ties by queue id", 'n', NULL, NULL, 20, "RUN m1 a.org" },
	{ "then the other of that time", 'n', NULL, NULL, 20, "RUN m3 c.org" },
	{ "the later one waits", 'n', NULL, NULL, 20, "NONE 50" },
	{ "and goes when due", 'n', NULL, NULL, 50, "RUN m2 b.org" },
};

static const struct step groups[] = {
	{ "one message, three destinations (domains fold case)", 'a', "m1",
	    "a@x.org=0,b@Y.org=0,c@y.ORG=0,d@z.org=100,e@w.org!=0", 0, NULL },
	{ "a group per destination, by name on ties", 'n', NULL, NULL, 0, "RUN m1 x.org" },
	{ "a second group of the same message", 'n', NULL, NULL, 0, "RUN m1 y.org" },
	{ "a group due later waits (delivered recipients make none)", 'n', NULL, NULL, 0, "NONE 100" },
	{ "a group back with recipients pending", 'd', "m1", "x.org", 10, "pending=60|" },
	{ "the last group back closes the message", 'd', "m1", "y.org", 10, "|closed" },
	{ "the pending group returns at its next_try", 'n', NULL, NULL, 60, "RUN m1 x.org" },
	{ "a group with nothing pending is gone", 'd', "m1", "x.org", 61, "|closed" },
	{ "the untried group is still due", 'n', NULL, NULL, 100, "RUN m1 z.org" },
};

static const struct step holds[] = {
	{ "two messages for a dead destination", 'a', "m1", "u@dead.org=0", 0, NULL },
	{ "the second", 'a', "m2", "v@dead.org=0", 0, NULL },
	{ "a third, for a live one", 'a', "m3", "w@live.org=0", 0, NULL },
	{ "first attempt", 'n', NULL, NULL, 0, "RUN m1 dead.org" },
	{ "the other goes before any hold", 'n', NULL, NULL, 0, "RUN m2 dead.org" },
	{ "dest_down starts a hold of retry_min", 'd', "m1", "dead.org", 1, "down,pending=61|hold closed 60s/1" },
	{ "the same episode: no second failure counted", 'd', "m2", "dead.org", 2, "down,pending=62|closed" },
	{ "other destinations are not held", 'n', NULL, NULL, 2, "RUN m3 live.org" },
	{ "held groups wait for the hold, not their next_try", 'n', NULL, NULL, 60, "NONE 61" },
	{ "after the hold, one goes first as the probe", 'n', NULL, NULL, 61, "RUN m1 dead.org probe" },
	{ "the others wait while the probe is out", 'n', NULL, NULL, 61, "NONE 62" },
	{ "when due, they meet the probe's wait", 'n', NULL, NULL, 62, "NONE 66" },
	{ "the probe fails: a longer hold (backoff doubles)", 'd', "m1", "dead.org", 62, "down,pending=150|hold closed 120s/2" },
	{ "the waiting one meets the new hold", 'n', NULL, NULL, 66, "NONE 150" },
	{ "the probe's own next_try meets it too", 'n', NULL, NULL, 150, "NONE 182" },
	{ "probe after the second hold", 'n', NULL, NULL, 182, "RUN m1 dead.org probe" },
	{ "an exchanger answers: the hold ends", 'd', "m1", "dead.org", 183, "reach|end closed" },
	{ "the rest follow at once, no probe", 'n', NULL, NULL, 183, "RUN m2 dead.org" },
	{ "a new episode starts again at retry_min", 'd', "m2", "dead.org", 184, "down,pending=300|hold closed 60s/1" },
};

static const struct step bypass[] = {
	{ "a message for a held destination", 'a', "m1", "u@dead.org=0", 0, NULL },
	{ "a message past its lifetime, same destination", 'a', "m9", "v@dead.org=0", -86400, NULL },
	{ "first try", 'n', NULL, NULL, 0, "RUN m1 dead.org" },
	{ "hold starts", 'd', "m1", "dead.org", 0, "down,pending=60|hold closed 60s/1" },
	{ "an expired message ignores the hold (it must expire on time)", 'n', NULL, NULL, 1, "RUN m9 dead.org" },
	{ "expired done", 'd', "m9", "dead.org", 1, "|closed" },
	{ "the other still waits for the hold", 'n', NULL, NULL, 2, "NONE 60" },
	{ "flush one message", 'f', "m1", NULL, 0, NULL },
	{ "a flushed group bypasses the hold and its next_try", 'n', NULL, NULL, 2, "RUN m1 dead.org force" },
	{ "back, pending", 'd', "m1", "dead.org", 3, "pending=100|closed" },
	{ "not forced any more: its next_try", 'n', NULL, NULL, 3, "NONE 100" },
	{ "flush all", 'f', NULL, NULL, 0, NULL },
	{ "flush all forces it again", 'n', NULL, NULL, 3, "RUN m1 dead.org force" },
};

static const struct step limits[] = {
	{ "three messages for one destination", 'a', "m1", "a@x.org=0", 0, NULL },
	{ "two", 'a', "m2", "b@x.org=0", 0, NULL },
	{ "three", 'a', "m3", "c@x.org=0", 0, NULL },
	{ "one for another", 'a', "m4", "d@y.org=0", 5, NULL },
	{ "first of x", 'n', NULL, NULL, 0, "RUN m1 x.org" },
	{ "second of x (limit 2)", 'n', NULL, NULL, 0, "RUN m2 x.org" },
	{ "x at its limit: its third is parked, y goes", 'n', NULL, NULL, 5, "RUN m4 y.org" },
	{ "nothing else", 'n', NULL, NULL, 5, "NONE -" },
	{ "a slot of x frees", 'd', "m1", "x.org", 6, "|closed" },
	{ "the parked group goes", 'n', NULL, NULL, 6, "RUN m3 x.org" },
};

static const struct step window[] = {
	{ "a two-destination message", 'a', "m1", "a@x.org=0,b@y.org=0", 0, NULL },
	{ "another message", 'a', "m2", "c@z.org=0", 0, NULL },
	{ "m1 opens the only window slot", 'n', NULL, NULL, 0, "RUN m1 x.org" },
	{ "an open message's other group needs no slot", 'n', NULL, NULL, 0, "RUN m1 y.org" },
	{ "the window is full", 'n', NULL, NULL, 0, "NONE -" },
	{ "one group back: m1 still open", 'd', "m1", "x.org", 1, "|" },
	{ "still full", 'n', NULL, NULL, 1, "NONE -" },
	{ "m1 closes", 'd', "m1", "y.org", 1, "|closed" },
	{ "the slot is free", 'n', NULL, NULL, 1, "RUN m2 z.org" },
};

static const struct step loads[] = {
	{ "a new message, envelope unread", 'l', "m1", NULL, 0, NULL },
	{ "its envelope is read first", 'n', NULL, NULL, 0, "LOAD m1" },
	{ "then its groups", 's', "m1", "a@x.org=0", 0, NULL },
	{ "which run", 'n', NULL, NULL, 0, "RUN m1 x.org" },
	{ "a locked message", 'x', "m1", "x.org", 5, NULL },
	{ "comes back at the given time", 'n', NULL, NULL, 1, "NONE 5" },
	{ "and runs then", 'n', NULL, NULL, 5, "RUN m1 x.org" },
};

static const struct step oneshot[] = {
	{ "one-shot: a group not due is not kept", 'a', "m1", "a@x.org=0,b@y.org=100", 0, NULL },
	{ "the due group runs", 'n', NULL, NULL, 0, "RUN m1 x.org" },
	{ "nothing else in the run", 'n', NULL, NULL, 0, "NONE -" },
	{ "one-shot: no hold, no requeue", 'd', "m1", "x.org", 1, "down,pending=60|closed" },
	{ "the run is over", 'n', NULL, NULL, 61, "NONE -" },
	{ "two destinations, both due", 'a', "m2", "c@x.org=0,d@y.org=0", 70, NULL },
	{ "the first runs", 'n', NULL, NULL, 70, "RUN m2 x.org" },
	{ "and the second", 'n', NULL, NULL, 70, "RUN m2 y.org" },
	{ "x.org deferred for 10 s", 'd', "m2", "x.org", 71, "pending=81|" },
	{ "y.org hangs past that and comes back", 'd', "m2", "y.org", 90, "|closed" },
	{ "one-shot: the closed message is indexed again, x.org due by now",
	    's', "m2", "c@x.org=81", 90, NULL },
	{ "one-shot: a destination is tried once per message and run", 'n',
	    NULL, NULL, 90, "NONE -" },
};

static const struct step expiry[] = {
	{ "a message for a dead destination", 'a', "m1", "u@dead.org=0", 0, NULL },
	{ "first try", 'n', NULL, NULL, 0, "RUN m1 dead.org" },
	{ "a hold of 60 s", 'd', "m1", "dead.org", 1,
	    "down,pending=2000|hold closed 60s/1" },
	{ "a second message", 'a', "m2", "v@dead.org=2", 2, NULL },
	{ "it waits for the hold", 'n', NULL, NULL, 3, "NONE 61" },
	{ "the hold is over: a probe", 'n', NULL, NULL, 61, "RUN m2 dead.org probe" },
	{ "the probe fails: a hold to 182", 'd', "m2", "dead.org", 62,
	    "down,pending=2000|hold closed 120s/2" },
	{ "a message that arrives during the hold (lifetime 100 s: it "
	    "expires at 163)", 'a', "m3", "w@dead.org=63", 63, NULL },
	{ "held, but not past its expiry: it wakes at 163, not 182", 'n',
	    NULL, NULL, 64, "NONE 163" },
	{ "and goes then, whatever the hold, to expire on time (mxrelayd(8))",
	    'n', NULL, NULL, 163, "RUN m3 dead.org" },
};

static void
test_scripts(void **state)
{
	static const struct script scripts[] = {
		SCRIPT("ordering", DAEMON(10, 10), ordering),
		SCRIPT("groups", DAEMON(10, 10), groups),
		SCRIPT("holds and probes", DAEMON(10, 10), holds),
		SCRIPT("bypass", DAEMON(10, 10), bypass),
		SCRIPT("destination limit", DAEMON(2, 10), limits),
		SCRIPT("window", DAEMON(10, 1), window),
		SCRIPT("loads", DAEMON(10, 10), loads),
		SCRIPT("one-shot", ONESHOT(10, 10), oneshot),
		SCRIPT("expiry during a hold",
		    ((struct sched_conf){ 60000, 3600000, 100000, false, 10, 10,
		    true }),
		    expiry),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		run_script(&scripts[i]);
}

/*
 * Head-of-line blocking: 1000 messages for a destination whose groups
 * never come back, then one for another destination: the other runs at
 * once, and the stuck one never holds more than its limit of the window.
 */
static void
test_no_head_of_line(void **state)
{
	struct sched_conf c = DAEMON(4, 100);
	struct sched *s = sched_new(&c);
	struct sched_pick p;
	int64_t wake;
	unsigned stuck = 0;
	bool other = false;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		char id[32], spec[64];

		snprintf(id, sizeof(id), "a%04d", i);
		snprintf(spec, sizeof(spec), "u%d@stuck.org=0", i);
		set_msg(s, sched_msg_add(s, id, MS(0), false), spec, 0);
	}
	set_msg(s, sched_msg_add(s, "z0001", MS(1), false), "v@ok.org=1", 1);
	for (int i = 0; i < 2000; i++) {
		enum sched_job j = sched_next(s, MS(1), &p, &wake);

		if (j != SCHED_RUN)
			break;
		if (strcmp(p.dest, "ok.org") == 0)
			other = true;
		else
			stuck++;
	}
	assert_true(other);
	assert_int_equal(stuck, 4);
	assert_int_equal(sched_open(s), 5);
	sched_free(s);
}

/* Many messages, random due times: oldest due first, ties by id. */
static int
cmp_due(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

static void
test_many_ordered(void **state)
{
	enum { N = 3000 };
	struct sched_conf c = DAEMON(N, N);
	struct sched *s = sched_new(&c);
	int64_t (*model)[2] = xcalloc(N, sizeof(*model));
	struct sched_pick p;
	int64_t wake;

	(void)state;
	srandom(777);
	for (int i = 0; i < N; i++) {
		char id[32], spec[64];
		int t = (int)(random() % 500);

		snprintf(id, sizeof(id), "m%05d", i);
		snprintf(spec, sizeof(spec), "u@d%d.org=%d", i, t);
		set_msg(s, sched_msg_add(s, id, MS(0), false), spec, 0);
		model[i][0] = t;
		model[i][1] = i;
	}
	qsort(model, N, sizeof(*model), cmp_due);
	for (int i = 0; i < N; i++) {
		char want[32];

		assert_int_equal(sched_next(s, MS(1000), &p, &wake), SCHED_RUN);
		snprintf(want, sizeof(want), "m%05d", (int)model[i][1]);
		assert_string_equal(p.msg->id, want);
	}
	assert_int_equal(sched_next(s, MS(1000), &p, &wake), SCHED_NONE);
	free(model);
	sched_free(s);
}

/* Holds can be saved and restored (the spool keeps them). */
static void
test_hold_state(void **state)
{
	struct sched_conf c = DAEMON(10, 10);
	struct sched *s = sched_new(&c);
	const struct sched_dest *it = NULL;
	const char *name;
	int64_t until;
	unsigned failures, n = 0;

	(void)state;
	sched_hold_set(s, "dead.org", MS(100), 3);
	sched_hold_set(s, "gone.org", 0, 0);	/* nothing: forgotten */
	while ((it = sched_hold_next(s, it, &name, &until, &failures)) != NULL) {
		assert_string_equal(name, "dead.org");
		assert_int_equal(until, MS(100));
		assert_int_equal(failures, 3);
		n++;
	}
	assert_int_equal(n, 1);
	/* A restored hold keeps a new message back, then the next backoff. */
	set_msg(s, sched_msg_add(s, "m1", MS(0), false), "u@dead.org=0", 0);
	{
		struct sched_pick p;
		struct sched_event ev;
		struct sched_result r = { true, false, true, T0 + 500 };
		int64_t wake;

		assert_int_equal(sched_next(s, MS(0), &p, &wake), SCHED_NONE);
		assert_int_equal(wake, MS(100));
		assert_int_equal(sched_next(s, MS(100), &p, &wake), SCHED_RUN);
		assert_true(p.probe);
		sched_group_done(s, p.group, &r, MS(101), &ev);
		assert_int_equal(ev.failures, 4);
		assert_int_equal(ev.delay, 480 * 1000);
	}
	assert_int_equal(sched_hold_until(s, "dead.org", &failures), MS(581));
	sched_free(s);
}

/*
 * A message on hold (ENVELOPE_F_HOLD) gets no groups, in either mode,
 * and a flush does not name it; released, its groups come back.
 */
static void
test_held(void **state)
{
	struct sched_conf confs[] = { DAEMON(10, 10), ONESHOT(10, 10) };

	(void)state;
	for (size_t i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
		struct sched *s = sched_new(&confs[i]);
		struct sched_msg *m = sched_msg_add(s, "m1", MS(0), false);
		struct envelope env;
		struct sched_pick p;
		int64_t wake;

		env_from(&env, "m1", "u@a.org=0,v@b.org=0", T0);
		env.flags = ENVELOPE_F_HOLD;
		assert_int_equal(sched_msg_set(s, m, &env, MS(0)), 0);
		assert_int_equal(sched_flush(s, m), 0);
		assert_int_equal(sched_flush(s, NULL), 0);
		assert_int_equal(sched_next(s, MS(0), &p, &wake), SCHED_NONE);
		assert_int_equal(wake, -1);
		env.flags = 0;
		assert_int_equal(sched_msg_set(s, m, &env, MS(0)), 2);
		assert_int_equal(sched_flush(s, m), 1);
		assert_int_equal(sched_next(s, MS(0), &p, &wake), SCHED_RUN);
		envelope_free(&env);
		sched_free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_no_head_of_line),
		cmocka_unit_test(test_many_ordered),
		cmocka_unit_test(test_hold_state),
		cmocka_unit_test(test_held),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
