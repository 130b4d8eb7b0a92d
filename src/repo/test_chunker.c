#include "chunker.h"
#include "check.h"

#include <stdlib.h>

#define DATA_LEN (96u * 1024 * 1024)

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n);

	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (uint8_t)(seed >> 24);
	}
	return p;
}

/* Cuts the whole buffer; returns the number of chunks and fills ends[] with cut offsets. */
static size_t cut_all(const struct chunker *c, const uint8_t *data, size_t len, size_t *ends, size_t max)
{
	size_t pos = 0, n = 0;

	while (pos < len && n < max) {
		pos += chunker_cut(c, data + pos, len - pos);
		ends[n++] = pos;
	}
	return n;
}

static void test_chunk_sizes_within_bounds_and_average_near_1mib(void)
{
	struct chunker c;
	uint8_t *data = random_bytes(DATA_LEN, 42);
	static size_t ends[1024];
	size_t n, prev = 0;
	double avg;

	chunker_init(&c, 7);
	n = cut_all(&c, data, DATA_LEN, ends, 1024);
	CHECK(n > 1);
	for (size_t i = 0; i < n; i++) {
		size_t len = ends[i] - prev;
		if (i + 1 < n)
			CHECK(len >= CHUNK_MIN);
		CHECK(len <= CHUNK_MAX);
		prev = ends[i];
	}
	CHECK_INTEQ(ends[n - 1], DATA_LEN);
	avg = (double)DATA_LEN / (double)n;
	printf("# %zu chunks, average %.0f KiB\n", n, avg / 1024);
	CHECK(avg > 0.75 * CHUNK_AVG && avg < 1.5 * CHUNK_AVG);
	free(data);
}

static void test_max_cut_on_constant_data(void)
{
	struct chunker c;
	uint8_t *zeros = calloc(1, 3 * CHUNK_MAX);

	chunker_init(&c, 7);
	/* all-zero data has no content to cut at: every chunk is the maximum */
	CHECK_INTEQ(chunker_cut(&c, zeros, 3 * CHUNK_MAX), CHUNK_MAX);
	CHECK_INTEQ(chunker_cut(&c, zeros, CHUNK_MIN - 1), CHUNK_MIN - 1);
	free(zeros);
}

static void test_insertion_at_front_moves_only_first_boundaries(void)
{
	struct chunker c;
	size_t len = 48u * 1024 * 1024, shift = 1000;
	uint8_t *orig = random_bytes(len, 99), *edited = malloc(len + shift);
	static size_t a[256], b[256];
	size_t na, nb, same = 0;

	memset(edited, 0xab, shift);
	memcpy(edited + shift, orig, len);
	chunker_init(&c, 1234);
	na = cut_all(&c, orig, len, a, 256);
	nb = cut_all(&c, edited, len + shift, b, 256);
	/* a boundary of the original that reappears, shifted, in the edited stream */
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (b[j] == a[i] + shift)
				same++;
	printf("# %zu of %zu boundaries unchanged\n", same, na);
	CHECK(same + 2 >= na);
	free(orig);
	free(edited);
}

static void test_seed_changes_boundaries(void)
{
	struct chunker c1, c2;
	uint8_t *data = random_bytes(8u * 1024 * 1024, 5);

	chunker_init(&c1, 1);
	chunker_init(&c2, 2);
	CHECK(chunker_cut(&c1, data, 8u * 1024 * 1024) != chunker_cut(&c2, data, 8u * 1024 * 1024));
	free(data);
}

int main(void)
{
	RUN(test_chunk_sizes_within_bounds_and_average_near_1mib);
	RUN(test_max_cut_on_constant_data);
	RUN(test_insertion_at_front_moves_only_first_boundaries);
	RUN(test_seed_changes_boundaries);
	return check_done();
}
