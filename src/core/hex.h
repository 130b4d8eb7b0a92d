/* Hex digits, the one encoder and decoder: keys, ids, digests, bytea values, %XX escapes. */
#ifndef STOWAGE_HEX_H
#define STOWAGE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2n lowercase hex digits and a NUL to out (2n + 1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);
/* Decodes exactly 2n digits of hex into n bytes; -1 at the first character that is not a hex
 * digit (out is then partly written). */
int hex_decode(const char *hex, size_t n, uint8_t *out);

#endif
