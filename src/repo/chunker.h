/* Content-defined chunking: a gear rolling hash (FastCDC with normalised chunking) picks cut
 * points from the bytes themselves, so inserting or deleting bytes moves only the chunk
 * boundaries near the edit and the rest of a file deduplicates against its earlier version.
 * The gear table is seeded per repository, so boundaries do not reveal content across
 * repositories. */
#ifndef STOWAGE_CHUNKER_H
#define STOWAGE_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_MIN (256u * 1024)
#define CHUNK_AVG (1024u * 1024)
#define CHUNK_MAX (4u * 1024 * 1024)

struct chunker {
	uint64_t gear[256];
};

void chunker_init(struct chunker *c, uint64_t seed);
/* Length of the chunk that starts at data. Give it at least CHUNK_MAX bytes unless the stream
 * ends within them; at the end of a stream it may return all len bytes. */
size_t chunker_cut(const struct chunker *c, const uint8_t *data, size_t len);

#endif
