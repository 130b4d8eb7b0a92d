#include "hex.h"
#include "check.h"

#include <string.h>

static void test_round_trip_both_cases(void)
{
	const uint8_t in[] = { 0x00, 0x7f, 0x80, 0xab, 0xff };
	uint8_t back[5];
	char text[11];

	hex_encode(in, sizeof in, text);
	CHECK_STREQ(text, "007f80abff");
	CHECK_INTEQ(hex_decode(text, sizeof back, back), 0);
	CHECK(memcmp(in, back, sizeof in) == 0);
	CHECK_INTEQ(hex_decode("007F80ABFF", sizeof back, back), 0);
	CHECK(memcmp(in, back, sizeof in) == 0);
}

static void test_refuses_what_is_not_a_digit(void)
{
	uint8_t out[2];

	CHECK_INTEQ(hex_digit('g'), -1);
	CHECK_INTEQ(hex_digit('F'), 15);
	CHECK_INTEQ(hex_digit(0xc3), -1);
	CHECK_INTEQ(hex_decode("0g00", 2, out), -1);
	CHECK_INTEQ(hex_decode("00 0", 2, out), -1);
	CHECK_INTEQ(hex_decode("000", 2, out), -1);	/* the NUL is not a digit */
}

int main(void)
{
	RUN(test_round_trip_both_cases);
	RUN(test_refuses_what_is_not_a_digit);
	return check_done();
}
