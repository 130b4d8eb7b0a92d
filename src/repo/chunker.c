#include "chunker.h"

/* Before the average size a cut needs 22 zero bits, after it 18: chunk sizes gather around
 * the average instead of spreading geometrically (FastCDC, normalisation level 2). The
 * mask bits are the high ones, which depend on the last 64 bytes rather than the last few. */
#define MASK_STRICT (((UINT64_C(1) << 22) - 1) << 42)
#define MASK_LOOSE (((UINT64_C(1) << 18) - 1) << 46)

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void chunker_init(struct chunker *c, uint64_t seed)
{
	for (int i = 0; i < 256; i++)
		c->gear[i] = splitmix64(&seed);
}

size_t chunker_cut(const struct chunker *c, const uint8_t *data, size_t len)
{
	size_t i, normal = CHUNK_AVG;
	uint64_t h = 0;

	if (len <= CHUNK_MIN)
		return len;
	if (len > CHUNK_MAX)
		len = CHUNK_MAX;
	if (normal > len)
		normal = len;
	/* Warm the hash over the 64 bytes before the minimum so the first candidate cut depends
	 * only on content, not on where the chunk started. */
	for (i = CHUNK_MIN - 64; i < CHUNK_MIN; i++)
		h = (h << 1) + c->gear[data[i]];
	for (; i < normal; i++) {
		h = (h << 1) + c->gear[data[i]];
		if (!(h & MASK_STRICT))
			return i + 1;
	}
	for (; i < len; i++) {
		h = (h << 1) + c->gear[data[i]];
		if (!(h & MASK_LOOSE))
			return i + 1;
	}
	return len;
}
