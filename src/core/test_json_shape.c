#include "json_shape.h"
#include "check.h"

#include <string.h>

static struct json_shape shape_of(const char *text, size_t piece)
{
	struct json_shape s = { 0 };
	size_t len = strlen(text);

	for (size_t at = 0; at < len; at += piece)
		json_shape_feed(&s, text + at, len - at < piece ? len - at : piece);
	return s;
}

static void test_counts_values_and_depth_in_any_pieces(void)
{
	const char *text = "{\"a\":[1,2,{\"b\":[[]]}],\"c\":0}";

	/* '{' '[' ',' ',' '{' '[' '[' ',': 8 openings; 5 levels at the deepest */
	for (size_t piece = 1; piece <= strlen(text); piece++) {
		struct json_shape s = shape_of(text, piece);

		CHECK_INTEQ((int)s.values, 8);
		CHECK_INTEQ(s.max_depth, 5);
		CHECK_INTEQ(s.depth, 0);
		CHECK_INTEQ(s.in_string, 0);
	}
}

static void test_strings_and_escapes_hide_brackets_and_commas(void)
{
	/* the escaped quote keeps the string open across the brackets behind it, split anywhere */
	const char *text = "[\"x\\\",[{,\\\\\",\"[\"]";

	for (size_t piece = 1; piece <= strlen(text); piece++) {
		struct json_shape s = shape_of(text, piece);

		CHECK_INTEQ((int)s.values, 2);
		CHECK_INTEQ(s.max_depth, 1);
		CHECK_INTEQ(s.depth, 0);
	}
}

static void test_padding_is_counted_as_values(void)
{
	/* the attack: a body of "0," is a value every two bytes */
	static char text[20004];

	text[0] = '[';
	for (int i = 0; i < 10000; i++)
		memcpy(text + 1 + 2 * i, "0,", 2);
	memcpy(text + 20001, "0]", 3);
	/* the '[' and 10000 commas */
	CHECK_INTEQ((int)shape_of(text, 4096).values, 10001);
}

int main(void)
{
	RUN(test_counts_values_and_depth_in_any_pieces);
	RUN(test_strings_and_escapes_hide_brackets_and_commas);
	RUN(test_padding_is_counted_as_values);
	return check_done();
}
