/* A token bucket whose rate follows a schedule (rate_window.h): take(n) returns once n bytes
 * may go, sleeping as the current rate asks. Bytes are paced in steps of at most a tenth of a
 * second's worth, each at the rate the schedule gives for that moment, so a window that starts
 * or ends during a long transfer changes the rate at once. A burst of up to a tenth of a second
 * of the rate passes without waiting. Safe from several threads: they share the one rate. */
#ifndef STOWAGE_TOKEN_BUCKET_H
#define STOWAGE_TOKEN_BUCKET_H

#include "rate_window.h"

#include <pthread.h>
#include <stddef.h>

struct token_bucket {
	pthread_mutex_t mu;
	const struct rate_schedule *sched;	/* borrowed */
	double tat;				/* when the bytes taken so far will have gone, in clock seconds */
	/* the clocks, for tests: NULL means CLOCK_MONOTONIC, time(NULL) and nanosleep */
	double (*mono)(void *ud);
	time_t (*wall)(void *ud);
	void (*sleep)(double seconds, void *ud);
	void *ud;
	/* told of each change of the rate in force (the first look-up included), under the lock */
	void (*on_rate)(uint64_t bytes_per_second, time_t at, void *ud);
	void *rate_ud;
	int rate_known;
	uint64_t rate;
	double waited;				/* seconds slept in all */
};

void token_bucket_init(struct token_bucket *b, const struct rate_schedule *sched);
void token_bucket_destroy(struct token_bucket *b);
void token_bucket_take(struct token_bucket *b, size_t n);

#endif
