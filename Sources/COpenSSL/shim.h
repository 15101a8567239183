#ifndef FMA_COPENSSL_SHIM_H
#define FMA_COPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* Macros Swift cannot import. */
static inline int fma_evp_selection_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int fma_evp_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }
static inline void fma_openssl_free(void *p) { OPENSSL_free(p); }
#endif
