/* Password hashing with scrypt (memory-hard, from OpenSSL): "scrypt$ln$r$p$salt$hash",
 * salt and hash in base64. */
#ifndef STOWAGE_PASSWORD_H
#define STOWAGE_PASSWORD_H

#include <stddef.h>

/* Returns a malloc'd encoded hash, or NULL when OpenSSL fails. */
char *password_hash(const char *password);
/* 1 when password matches encoded, 0 otherwise (also for a malformed encoding). Takes about as
 * long for an unknown user when given password_dummy_hash(), so timing does not tell. */
int password_verify(const char *password, const char *encoded);
const char *password_dummy_hash(void);

#endif
