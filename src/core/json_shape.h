/* The shape of JSON text counted as it arrives, before anything parses it: how many values it
 * opens and how deep it nests. A parser builds a node per value and recurses per level, so a
 * reader that takes JSON from a tenant counts first and refuses what would cost too much. */
#ifndef STOWAGE_JSON_SHAPE_H
#define STOWAGE_JSON_SHAPE_H

#include <stddef.h>

struct json_shape {
	size_t values;		/* '{', '[' and ',' outside strings: each opens a value */
	int depth;		/* levels open now */
	int max_depth;		/* the most levels open at once */
	int in_string, escaped;
};

/* Counts the next len bytes of the text into s (zeroed before the first piece). Pieces may
 * split the text anywhere, inside a string or an escape too. Text that is not JSON is counted
 * all the same; the parser refuses it later. */
void json_shape_feed(struct json_shape *s, const char *data, size_t len);

#endif
