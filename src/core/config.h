/* The configuration file: "key = value" lines, '#' comments. Parsed once at start-up,
 * checked (unknown and repeated keys are errors), then trusted. */
#ifndef STOWAGE_CONFIG_H
#define STOWAGE_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_ENTRIES 64

struct config {
	char *key[CONFIG_MAX_ENTRIES];
	char *value[CONFIG_MAX_ENTRIES];
	int count;
};

/* Returns 0, or -1 with a message naming the file, line and reason in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
int config_parse(struct config *cfg, const char *text, const char *origin, char *err, size_t errlen);
/* The value, or def when the key is absent. */
const char *config_get(const struct config *cfg, const char *key, const char *def);
/* The value as an integer in [min, max]; -1 with err when it is not one. */
int config_get_int(const struct config *cfg, const char *key, long def, long min, long max,
		   long *out, char *err, size_t errlen);
void config_free(struct config *cfg);

#endif
