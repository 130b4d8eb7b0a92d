#include "json_shape.h"

void json_shape_feed(struct json_shape *s, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];

		if (s->in_string) {
			if (s->escaped)
				s->escaped = 0;
			else if (ch == '\\')
				s->escaped = 1;
			else if (ch == '"')
				s->in_string = 0;
		} else if (ch == '"') {
			s->in_string = 1;
		} else if (ch == '{' || ch == '[') {
			s->values++;
			if (++s->depth > s->max_depth)
				s->max_depth = s->depth;
		} else if (ch == ',') {
			s->values++;
		} else if (ch == '}' || ch == ']') {
			s->depth--;
		}
	}
}
