/* The client's configuration file: the server's URL and the API token, readable by its owner
 * only, written atomically so that a crash never leaves half a token behind. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES 65536

int cli_config_path(struct strbuf *out, char *err, size_t errlen)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	strbuf_reset(out);
	if (xdg && xdg[0] == '/') {
		strbuf_addf(out, "%s/stowage/config", xdg);
		return 0;
	}
	if (!home || home[0] != '/') {
		snprintf(err, errlen, "neither XDG_CONFIG_HOME nor HOME is an absolute directory");
		return -1;
	}
	strbuf_addf(out, "%s/.config/stowage/config", home);
	return 0;
}

void cli_config_free(struct cli_config *c)
{
	free(c->url);
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	c->url = c->token = NULL;
}

static char *trimmed(const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		len--;
	return xstrndup(s, len);
}

int cli_config_parse(const char *text, size_t len, struct cli_config *c, char *err, size_t errlen)
{
	size_t pos = 0;
	int line = 0;

	while (pos < len) {
		const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		const char *eq = memchr(start, '=', n);
		char *key, *value, **slot;

		pos += n + (nl ? 1 : 0);
		line++;
		key = trimmed(start, eq ? (size_t)(eq - start) : n);
		if (!*key || key[0] == '#') {
			free(key);
			continue;
		}
		if (!eq) {
			snprintf(err, errlen, "line %d: expected key = value", line);
			free(key);
			return -1;
		}
		slot = strcmp(key, "url") == 0 ? &c->url : strcmp(key, "token") == 0 ? &c->token : NULL;
		if (!slot) {
			snprintf(err, errlen, "line %d: unknown key (url, token)", line);
			free(key);
			return -1;
		}
		free(key);
		value = trimmed(eq + 1, n - (size_t)(eq + 1 - start));
		if (memchr(eq + 1, '\0', n - (size_t)(eq + 1 - start))) {
			snprintf(err, errlen, "line %d: a NUL byte", line);
			free(value);
			return -1;
		}
		free(*slot);
		*slot = value;
	}
	return 0;
}

int cli_config_load(const char *path, struct cli_config *c, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	struct strbuf text = STRBUF_INIT;
	char chunk[4096];
	ssize_t n;
	int rc;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: must be a regular file of yours with mode 0600 (it holds a token); "
			 "run chmod 600 on it or `stowage login` again", path);
		close(fd);
		return -1;
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0 && text.len <= CONFIG_MAX_BYTES)
		strbuf_add(&text, chunk, (size_t)n);
	close(fd);
	if (n < 0 || text.len > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "larger than 64 KiB");
		strbuf_release(&text);
		return -1;
	}
	rc = cli_config_parse(text.buf ? text.buf : "", text.len, c, err, errlen);
	if (text.buf)
		memset(text.buf, 0, text.len);
	strbuf_release(&text);
	return rc;
}

/* mkdir -p of path's directories, each new one 0700. */
static int make_parents(const char *path, char *err, size_t errlen)
{
	char *dir = xstrdup(path);

	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			free(dir);
			return -1;
		}
		*p = '/';
	}
	free(dir);
	return 0;
}

int cli_config_save(const char *path, const struct cli_config *c, char *err, size_t errlen)
{
	struct strbuf tmp = STRBUF_INIT, text = STRBUF_INIT;
	int fd, rc = -1;

	if (make_parents(path, err, errlen) < 0)
		return -1;
	strbuf_addf(&tmp, "%s.%ld.tmp", path, (long)getpid());
	strbuf_addf(&text, "# written by `stowage login`; the token is a secret\nurl = %s\ntoken = %s\n",
		    c->url ? c->url : "", c->token ? c->token : "");
	unlink(tmp.buf);
	fd = open(tmp.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp.buf, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write(fd, text.buf, text.len) != (ssize_t)text.len || fsync(fd) < 0) {
		snprintf(err, errlen, "%s: %s", tmp.buf, strerror(errno));
		close(fd);
		unlink(tmp.buf);
		goto out;
	}
	close(fd);
	if (rename(tmp.buf, path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp.buf);
		goto out;
	}
	rc = 0;
out:
	memset(text.buf, 0, text.len);
	strbuf_release(&text);
	strbuf_release(&tmp);
	return rc;
}
