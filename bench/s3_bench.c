/* Stowage's S3 client moving data, for bench/s3_bench.py (which times boto3 in the same run).
 *
 *   s3_bench put-file KEY FILE        one object from a file (parallel multipart above 8 MiB)
 *   s3_bench get-file KEY FILE        one object into a file (parallel ranged GETs above 16 MiB)
 *   s3_bench put-many PREFIX N SIZE THREADS   N objects of SIZE bytes, THREADS clients at once
 *   s3_bench get-many PREFIX N THREADS        read them back
 *
 * Reads S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY and BUCKET. Prints the seconds
 * the transfer took on its last line. Exit status 1 on any failure, named. */
#include "s3_client.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct s3_conf conf;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct s3_client *client(void)
{
	char err[256];
	struct s3_client *c = s3_client_new(&conf, NULL, err, sizeof err);

	if (!c) {
		fprintf(stderr, "s3_bench: %s\n", err);
		exit(1);
	}
	return c;
}

static void fail(const char *what, const struct s3_error *e)
{
	char words[700];

	s3_error_describe(e, words, sizeof words);
	fprintf(stderr, "s3_bench: %s: %s\n", what, words);
	exit(1);
}

static long file_read(void *buf, size_t len, void *ud)
{
	size_t n = fread(buf, 1, len, ud);

	return ferror((FILE *)ud) ? -1 : (long)n;
}

static int file_write(const void *data, size_t len, void *ud)
{
	return fwrite(data, 1, len, ud) == len ? 0 : 1;
}

struct many {
	const char *prefix;
	long n, size;
	int threads, put;
	long next;
	pthread_mutex_t mu;
	int failed;
};

static void *many_worker(void *arg)
{
	struct many *m = arg;
	struct s3_client *c = client();
	struct strbuf data = STRBUF_INIT, got = STRBUF_INIT;
	char key[256];

	for (long i = 0; i < m->size; i++)
		strbuf_addch(&data, (char)('a' + i % 26));
	for (;;) {
		struct s3_error e;
		long i;
		pthread_mutex_lock(&m->mu);
		i = m->failed ? m->n : m->next++;
		pthread_mutex_unlock(&m->mu);
		if (i >= m->n)
			break;
		snprintf(key, sizeof key, "%s/%06ld", m->prefix, i);
		if ((m->put ? s3_put_mem(c, key, data.buf, data.len, &e) : s3_get_mem(c, key, 1 << 26, &got, &e)) < 0) {
			char words[700];
			s3_error_describe(&e, words, sizeof words);
			fprintf(stderr, "s3_bench: %s: %s\n", key, words);
			pthread_mutex_lock(&m->mu);
			m->failed = 1;
			pthread_mutex_unlock(&m->mu);
		}
	}
	strbuf_release(&data);
	strbuf_release(&got);
	s3_client_free(c);
	return NULL;
}

static double run_many(struct many *m)
{
	pthread_t tid[64];
	double t0 = now();

	pthread_mutex_init(&m->mu, NULL);
	for (int i = 0; i < m->threads; i++)
		pthread_create(&tid[i], NULL, many_worker, m);
	for (int i = 0; i < m->threads; i++)
		pthread_join(tid[i], NULL);
	if (m->failed)
		exit(1);
	return now() - t0;
}

int main(int argc, char **argv)
{
	struct s3_error e;
	double t0, secs;

	conf.endpoint = getenv("S3_ENDPOINT");
	conf.region = getenv("S3_REGION");
	conf.access_key = getenv("S3_ACCESS_KEY");
	conf.secret_key = getenv("S3_SECRET_KEY");
	conf.bucket = getenv("BUCKET");
	conf.path_style = 1;
	if (!conf.endpoint || !conf.access_key || !conf.secret_key || !conf.bucket || argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of bench/s3_bench.c\n");
		return 2;
	}
	if (strcmp(argv[1], "put-file") == 0 || strcmp(argv[1], "get-file") == 0) {
		int put = argv[1][0] == 'p';
		struct s3_client *c = client();
		FILE *f = fopen(argv[3], put ? "rb" : "wb");
		if (!f) {
			perror(argv[3]);
			return 1;
		}
		t0 = now();
		if (put && s3_put_stream(c, argv[2], file_read, f, -1, &e) < 0)
			fail(argv[2], &e);
		if (!put && s3_get_stream(c, argv[2], 0, -1, file_write, f, &e) < 0)
			fail(argv[2], &e);
		if (fclose(f) != 0) {
			perror(argv[3]);
			return 1;
		}
		secs = now() - t0;
		s3_client_free(c);
	} else if (strcmp(argv[1], "put-many") == 0 && argc == 6) {
		struct many m = { .prefix = argv[2], .n = atol(argv[3]), .size = atol(argv[4]), .threads = atoi(argv[5]),
				  .put = 1 };
		if (m.threads < 1 || m.threads > 64)
			return 2;
		secs = run_many(&m);
	} else if (strcmp(argv[1], "get-many") == 0 && argc == 5) {
		struct many m = { .prefix = argv[2], .n = atol(argv[3]), .threads = atoi(argv[4]) };
		if (m.threads < 1 || m.threads > 64)
			return 2;
		secs = run_many(&m);
	} else {
		fprintf(stderr, "usage: see the comment at the top of bench/s3_bench.c\n");
		return 2;
	}
	printf("%.3f\n", secs);
	return 0;
}
