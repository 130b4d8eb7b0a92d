/* A token bucket that follows a rate schedule: see token_bucket.h. */
#include "token_bucket.h"

#include <errno.h>
#include <time.h>

#define BURST_SECONDS 0.1

static double mono_now(const struct token_bucket *b)
{
	struct timespec ts;

	if (b->mono)
		return b->mono(b->ud);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_for(const struct token_bucket *b, double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	if (b->sleep) {
		b->sleep(s, b->ud);
		return;
	}
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void token_bucket_init(struct token_bucket *b, const struct rate_schedule *sched)
{
	pthread_mutex_init(&b->mu, NULL);
	b->sched = sched;
	b->tat = 0;
	b->mono = NULL;
	b->wall = NULL;
	b->sleep = NULL;
	b->ud = NULL;
	b->on_rate = NULL;
	b->rate_ud = NULL;
	b->rate_known = 0;
	b->rate = 0;
	b->waited = 0;
}

void token_bucket_destroy(struct token_bucket *b)
{
	pthread_mutex_destroy(&b->mu);
}

/* The lock is held while sleeping: the threads share one rate, so the next taker would only
 * wait longer behind the bytes this one reserved. */
void token_bucket_take(struct token_bucket *b, size_t n)
{
	if (!b->sched->n)
		return;		/* no schedule for this direction: nothing to pace or report */
	pthread_mutex_lock(&b->mu);
	while (n > 0) {
		double now = mono_now(b);
		time_t wall = b->wall ? b->wall(b->ud) : time(NULL);
		uint64_t rate = rate_schedule_at(b->sched, wall);
		size_t step;

		if (!b->rate_known || rate != b->rate) {
			b->rate_known = 1;
			b->rate = rate;
			if (b->on_rate)
				b->on_rate(rate, wall, b->rate_ud);
		}
		if (!rate) {
			b->tat = now;	/* unlimited: nothing owed when a window starts */
			break;
		}
		step = (size_t)(rate / 10) ? (size_t)(rate / 10) : 1;
		if (step > n)
			step = n;
		if (b->tat < now)
			b->tat = now;
		b->tat += (double)step / (double)rate;
		if (b->tat - now > BURST_SECONDS) {
			pause_for(b, b->tat - now - BURST_SECONDS);
			b->waited += b->tat - now - BURST_SECONDS;
		}
		n -= step;
	}
	pthread_mutex_unlock(&b->mu);
}
