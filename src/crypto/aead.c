#include "aead.h"
#include "hex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

int aead_seal(const uint8_t key[AEAD_KEY_LEN], const void *aad, size_t aadlen,
	      const void *plain, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx;
	uint8_t *nonce = out, *cipher = out + AEAD_NONCE_LEN, *tag = out + AEAD_NONCE_LEN + len;
	int n, rc = -1;

	if (len > INT32_MAX || aadlen > INT32_MAX)
		return -1;
	if (RAND_bytes(nonce, AEAD_NONCE_LEN) != 1)
		return -1;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -1;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
		goto out;
	if (aadlen && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (len && EVP_EncryptUpdate(ctx, cipher, &n, plain, (int)len) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, cipher + len, &n) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int aead_open(const uint8_t key[AEAD_KEY_LEN], const void *aad, size_t aadlen,
	      const uint8_t *in, size_t inlen, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx;
	const uint8_t *nonce = in, *cipher = in + AEAD_NONCE_LEN;
	uint8_t tag[AEAD_TAG_LEN];
	size_t len;
	int n, rc = -1;

	if (inlen < AEAD_OVERHEAD || inlen - AEAD_OVERHEAD > INT32_MAX || aadlen > INT32_MAX)
		return -1;
	len = inlen - AEAD_OVERHEAD;
	memcpy(tag, cipher + len, AEAD_TAG_LEN);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -1;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
		goto out;
	if (aadlen && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (len && EVP_DecryptUpdate(ctx, out, &n, cipher, (int)len) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, out + len, &n) != 1) {
		OPENSSL_cleanse(out, len);
		goto out;
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int aead_derive_key(const uint8_t master[AEAD_KEY_LEN], const char *purpose,
		    uint8_t out[AEAD_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[4];
	int rc;

	if (!kdf)
		return -1;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!ctx)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)master, AEAD_KEY_LEN);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)purpose, strlen(purpose));
	params[3] = OSSL_PARAM_construct_end();
	rc = EVP_KDF_derive(ctx, out, AEAD_KEY_LEN, params) == 1 ? 0 : -1;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

int master_key_load(const char *path, uint8_t key[AEAD_KEY_LEN], char *err, size_t errlen)
{
	uint8_t buf[80];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "master key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "master key %s: must not be readable by group or others (chmod 600)", path);
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof buf);
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == AEAD_KEY_LEN * 2) {
		if (hex_decode((const char *)buf, AEAD_KEY_LEN, key) < 0)
			goto bad;
		OPENSSL_cleanse(buf, sizeof buf);
		return 0;
	}
	if (n == AEAD_KEY_LEN) {
		memcpy(key, buf, AEAD_KEY_LEN);
		OPENSSL_cleanse(buf, sizeof buf);
		return 0;
	}
bad:
	OPENSSL_cleanse(buf, sizeof buf);
	snprintf(err, errlen, "master key %s: must hold 32 bytes or 64 hex digits", path);
	return -1;
}
