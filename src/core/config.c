#include "config.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every key any Stowage program reads. A typo in the file is an error, not a silent default. */
static const char *const config_known_keys[] = {
	"database_url",		/* libpq connection string for the web workers' role */
	"runner_database_url",	/* ... for the runners' role, which alone claims jobs */
	"scheduler_database_url", /* ... for the scheduler's role */
	"org_concurrency",	/* jobs of one organisation running at once, across all runners */
	"database_owner_url",	/* libpq connection string for migrations (table owner) */
	"master_key_file",	/* 32-byte key that encrypts secrets at rest; mode 0600 */
	"sealing_key_file",	/* the web's: the public key it seals secrets to (stowage-keys sealing-key) */
	"fcgi_socket",		/* unix socket the web workers listen on */
	"fcgi_socket_group",	/* the group nginx's workers share with us: the socket is 0660 in it */
	"web_workers",		/* number of FastCGI worker processes */
	"templates_dir",
	"static_dir",
	"allowed_networks",	/* CIDR list user-supplied URLs must resolve into */
	"allowed_private_networks", /* ranges of the always-refused list (loopback, RFC 1918, ...) opted back in */
	"rate_limit_per_address",	/* sign-ups, invitations, reset mails an address gets an hour (x10 sign-ins) */
	"rate_limit_per_org",	/* connection tests and dry runs an organisation makes an hour */
	"rate_limit_per_client",	/* the same from one client address an hour (x10 sign-ins) */
	"site_url",		/* the console's address as people reach it: the base of mailed links */
	"smtp_url",		/* smtp://host:port or smtps://host:port; unset: mails are only logged */
	"smtp_user",		/* optional SMTP AUTH; then STARTTLS is required */
	"smtp_password",
	"mail_from",		/* the sender of Stowage's mails */
	"notification_retry_seconds",	/* a failed notification is tried again after this, then twice as long each time */
	"cookie_secure",	/* "yes" to mark cookies Secure (behind TLS) */
	"runner_jobs",		/* jobs one runner executes at once */
	"request_lanes",	/* threads of one runner answering the web's probes, reads and dry runs */
	"org_request_concurrency", /* requests of one organisation answered at once, across all runners */
	"cluster_concurrency",	/* jobs running at once against one cluster */
	"heartbeat_seconds",
	"lua_memory_limit",
	"lua_instruction_limit",
	"lua_time_limit_ms",
	"mover_path",
	"hook_path",		/* stowage-hook: each Lua hook runs in a confined process of its own */
	"mover_launch",		/* "local" (the volume's directory on this machine) or "pod" */
	"mover_image",		/* the data mover's image, for mover_launch = pod */
	"mover_single_tenant",	/* "yes": this deployment serves one tenant, so mover_launch = local may run */
	"mover_pod_host_network",	/* "yes": mover pods share their node's network (a repository on its loopback) */
	"mover_local_root",	/* directories (space or comma separated) below which local volumes lie */
	"work_dir",
	"restore_parallelism",	/* objects a restore creates at once */
	"restore_rate_limit",	/* API requests per second a restore sends one cluster */
	"metrics_database_url",	/* ... for stowage-metrics' role, which reads aggregates only */
	"metrics_listen",	/* host:port of the operator's /metrics (stowage-metrics), never nginx's */
	"web_metrics_file",	/* the web workers' request counters, shared with stowage-metrics */
	"prune_grace_seconds",	/* a prune never deletes a pack younger than this (default a day) */
	"verify_interval_days",	/* scheduled verification of each repository: every N days (default 7; 0: never) */
	"verify_share_parts",	/* ... each reading 1/N of its packs, so all are read over N runs (default 4) */
};

static int config_key_known(const char *key)
{
	for (size_t i = 0; i < sizeof config_known_keys / sizeof config_known_keys[0]; i++)
		if (strcmp(config_known_keys[i], key) == 0)
			return 1;
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int config_parse(struct config *cfg, const char *text, const char *origin, char *err, size_t errlen)
{
	char *copy = xstrdup(text), *line, *next;
	int lineno = 0, rc = 0;

	memset(cfg, 0, sizeof *cfg);
	for (line = copy; line; line = next) {
		char *eq, *key, *value;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected \"key = value\"", origin, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (!config_key_known(key)) {
			snprintf(err, errlen, "%s:%d: unknown key \"%s\"", origin, lineno, key);
			rc = -1;
			break;
		}
		if (config_get(cfg, key, NULL)) {
			snprintf(err, errlen, "%s:%d: key \"%s\" given twice", origin, lineno, key);
			rc = -1;
			break;
		}
		if (cfg->count == CONFIG_MAX_ENTRIES) {
			snprintf(err, errlen, "%s:%d: too many keys", origin, lineno);
			rc = -1;
			break;
		}
		cfg->key[cfg->count] = xstrdup(key);
		cfg->value[cfg->count] = xstrdup(value);
		cfg->count++;
	}
	free(copy);
	if (rc)
		config_free(cfg);
	return rc;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	struct strbuf sb = STRBUF_INIT;
	char chunk[4096];
	size_t n;
	int rc;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		strbuf_add(&sb, chunk, n);
	fclose(f);
	rc = config_parse(cfg, sb.buf ? sb.buf : "", path, err, errlen);
	strbuf_release(&sb);
	return rc;
}

const char *config_get(const struct config *cfg, const char *key, const char *def)
{
	for (int i = 0; i < cfg->count; i++)
		if (strcmp(cfg->key[i], key) == 0)
			return cfg->value[i];
	return def;
}

int config_get_int(const struct config *cfg, const char *key, long def, long min, long max,
		   long *out, char *err, size_t errlen)
{
	const char *v = config_get(cfg, key, NULL);
	char *end;
	long n;

	if (!v) {
		*out = def;
		return 0;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < min || n > max) {
		snprintf(err, errlen, "%s: \"%s\" is not a whole number from %ld to %ld", key, v, min, max);
		return -1;
	}
	*out = n;
	return 0;
}

void config_free(struct config *cfg)
{
	for (int i = 0; i < cfg->count; i++) {
		free(cfg->key[i]);
		free(cfg->value[i]);
	}
	cfg->count = 0;
}
