/* Tables for a terminal, kubectl-style: upper-case headers, columns padded with spaces. Every
 * value comes from a server and may hold anything: control characters are escaped so that a
 * resource name cannot move the cursor, clear the screen or forge a line. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX_CHARS 60

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, min = 0x80, cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, min = 0x800, cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, min = 0x10000, cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)	/* C1 controls: CSI and friends */
		return 0;
	return len;
}

void cli_escape_terminal(struct strbuf *out, const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), chars = 0;

	while (n && chars < max_chars) {
		size_t len = utf8_sequence(p, n);
		if (len == 1 && (*p < 0x20 || *p == 0x7f)) {
			if (*p == '\n')
				strbuf_addstr(out, "\\n");
			else if (*p == '\t')
				strbuf_addstr(out, "\\t");
			else
				strbuf_addf(out, "\\x%02x", *p);
			len = 1;
		} else if (len == 0) {
			strbuf_addf(out, "\\x%02x", *p);
			len = 1;
		} else {
			strbuf_add(out, p, len);
		}
		p += len;
		n -= len;
		chars++;
	}
	if (n)
		strbuf_addstr(out, "…");
}

char *cli_cell_text(const cJSON *item, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, key);
	struct strbuf out = STRBUF_INIT;

	if (cJSON_IsString(v) && v->valuestring)
		cli_escape_terminal(&out, v->valuestring, CELL_MAX_CHARS);
	else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
		 fabs(v->valuedouble) < 1e15)
		strbuf_addf(&out, "%lld", (long long)v->valuedouble);
	else if (cJSON_IsNumber(v))
		strbuf_addf(&out, "%g", v->valuedouble);
	else if (cJSON_IsBool(v))
		strbuf_addstr(&out, cJSON_IsTrue(v) ? "true" : "false");
	return strbuf_take(&out);
}

/* Display width of an escaped cell: its UTF-8 characters (every one counted as one column). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void cli_table_print(FILE *out, const cJSON *items, const struct cli_column *cols, size_t ncols)
{
	size_t nrows = 0, *widths = xcalloc(ncols, sizeof *widths);
	const cJSON *item;
	char ***cells;

	cJSON_ArrayForEach(item, items)
		if (cJSON_IsObject(item))
			nrows++;
	cells = xcalloc(nrows ? nrows : 1, sizeof *cells);
	for (size_t c = 0; c < ncols; c++)
		widths[c] = width(cols[c].header);
	nrows = 0;
	cJSON_ArrayForEach(item, items) {
		if (!cJSON_IsObject(item))
			continue;
		cells[nrows] = xcalloc(ncols, sizeof **cells);
		for (size_t c = 0; c < ncols; c++) {
			cells[nrows][c] = cli_cell_text(item, cols[c].key);
			if (width(cells[nrows][c]) > widths[c])
				widths[c] = width(cells[nrows][c]);
		}
		nrows++;
	}
	for (size_t c = 0; c < ncols; c++)
		fprintf(out, "%s%-*s", c ? "   " : "", c + 1 < ncols ? (int)widths[c] : 0, cols[c].header);
	fputc('\n', out);
	for (size_t r = 0; r < nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			fprintf(out, "%s%s", c ? "   " : "", cells[r][c]);
			if (c + 1 < ncols)
				for (size_t pad = width(cells[r][c]); pad < widths[c]; pad++)
					fputc(' ', out);
			free(cells[r][c]);
		}
		fputc('\n', out);
		free(cells[r]);
	}
	free(cells);
	free(widths);
}
