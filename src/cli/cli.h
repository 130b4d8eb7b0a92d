/* The `stowage` command: a client of the console's JSON API with an API token. */
#ifndef STOWAGE_CLI_H
#define STOWAGE_CLI_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

/* ---- cli_config.c: where `stowage login` keeps the server and the token ---- */

struct cli_config {
	char *url;	/* https://stowage.example.com, no trailing slash */
	char *token;	/* stw_... */
};

/* $XDG_CONFIG_HOME/stowage/config, else ~/.config/stowage/config; 0 or -1 with err. */
int cli_config_path(struct strbuf *out, char *err, size_t errlen);
/* Reads the file at path ("url = ...", "token = ..." lines; '#' comments). A missing file is
 * no error (the fields stay NULL); a file others may read is refused. 0 or -1 with err. */
int cli_config_load(const char *path, struct cli_config *c, char *err, size_t errlen);
/* Parses the text of a config file into c. 0 or -1 with err naming the line. */
int cli_config_parse(const char *text, size_t len, struct cli_config *c, char *err, size_t errlen);
/* Writes c to path with mode 0600 (its directory 0700), replacing the file atomically. */
int cli_config_save(const char *path, const struct cli_config *c, char *err, size_t errlen);
void cli_config_free(struct cli_config *c);

/* ---- cli_http.c: one request to the API ---- */

struct cli_reply {
	long status;
	struct strbuf body;
	char *content_type;
};

/* method GET or POST to url + path with the bearer token; a POST sends body (a JSON object, may
 * be NULL: {}). No redirects followed, TLS verified, the reply capped. 0 (any HTTP status) or -1
 * with err (the connection failed). */
int cli_request(const struct cli_config *c, const char *method, const char *path, const cJSON *body,
		struct cli_reply *reply, char *err, size_t errlen);
void cli_reply_free(struct cli_reply *reply);

/* ---- cli_table.c: printing what the server said ---- */

struct cli_column {
	const char *header;	/* NAME */
	const char *key;	/* the item's member: string, number or boolean */
};

/* One line per item of items (an array of objects), columns aligned, every value made safe for
 * a terminal (control characters escaped, cut at 60 characters). Non-objects are skipped. */
void cli_table_print(FILE *out, const cJSON *items, const struct cli_column *cols, size_t ncols);
/* The value of item's member key as text for a cell: strings made printable, numbers without
 * a fraction when whole, true/false, "" when absent. Caller frees. */
char *cli_cell_text(const cJSON *item, const char *key);
/* Appends s to out with every control character (C0, DEL, C1, and invalid UTF-8) escaped. */
void cli_escape_terminal(struct strbuf *out, const char *s, size_t max_chars);

#endif
