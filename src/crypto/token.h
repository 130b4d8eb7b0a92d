/* Random tokens (sessions, CSRF) and their stored form. */
#ifndef STOWAGE_TOKEN_H
#define STOWAGE_TOKEN_H

#include "hex.h"

#include <stddef.h>
#include <stdint.h>

#define TOKEN_TEXT_LEN 43 /* 32 random bytes in unpadded base64url */

/* Fills out (TOKEN_TEXT_LEN + 1 bytes) with a new token. 0 or -1. */
int token_new(char out[TOKEN_TEXT_LEN + 1]);
/* SHA-256 of the token text: what the database keeps, so a leaked table opens no session. */
void token_hash(const char *token, uint8_t out[32]);
/* Constant-time comparison of two NUL-terminated strings. */
int token_equal(const char *a, const char *b);
/* Unpadded base64url of n bytes into out (at least 4 * n / 3 + 2 bytes, NUL-terminated). */
void base64url_encode(const uint8_t *in, size_t n, char *out);
/* Strict unpadded base64url of len characters into out (len * 3 / 4 + 1 bytes): the number of
 * bytes, or -1 on any other character, a padding '=' or a length no encoder writes. */
long base64url_decode(const char *in, size_t len, uint8_t *out);

#endif
