/* libFuzzer target: a cluster's bandwidth windows are typed by a tenant (the Limits form). Every
 * rule that parses formats to a line that parses to the same rule, and its schedule over a week
 * in a zone with summer time is built and read back. */
#include "rate_window.h"
#include "strbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct time_zone *z;
	struct rate_rule rules[RATE_RULES_MAX], again;
	struct rate_schedule s, back;
	char err[512], line[128], *text = xstrndup((const char *)data, size), *sched;
	size_t n;

	if (!z)
		z = time_zone_load("Europe/Paris", err, sizeof err);
	if (rate_rules_parse(text, rules, RATE_RULES_MAX, &n, err, sizeof err) == 0 && z) {
		for (size_t i = 0; i < n; i++) {
			rate_rule_format(&rules[i], line, sizeof line);
			if (rate_rule_parse(line, &again, err, sizeof err) < 0 || again.directions != rules[i].directions ||
			    again.bytes_per_second != rules[i].bytes_per_second || again.days != rules[i].days ||
			    again.start_min != rules[i].start_min || again.end_min != rules[i].end_min)
				abort();
		}
		rate_schedule_build(rules, n, RATE_UPLOAD, z, 1774656000, 1774656000 + 7 * 86400, &s);
		sched = rate_schedule_format(&s);
		if (rate_schedule_parse(sched, &back, err, sizeof err) < 0 || back.n != s.n)
			abort();
		free(sched);
		rate_schedule_free(&s);
		rate_schedule_free(&back);
	}
	if (rate_schedule_parse(text, &s, err, sizeof err) == 0)
		rate_schedule_free(&s);
	free(text);
	return 0;
}
