/*
 * fastmcpauth.h - the C API of libfastmcpauth, the authentication layer for MCP servers.
 *
 * Conventions (the same for every object the library has or will have):
 *  - Names are fma_<object>_<verb>; macros and enum values are FMA_*.
 *  - Handles are opaque. Each has a _new and a _free; _free(NULL) does nothing.
 *  - Every call that can fail returns an fma_status (FMA_OK is 0) and takes an optional last
 *    argument `fma_error *err` (may be NULL) that receives the status and a message. Messages
 *    never contain token, key or secret bytes.
 *  - Memory the library returns is released only with the library's own functions
 *    (fma_string_free, fma_*_free), never with free().
 *  - Strings are NUL-terminated UTF-8 unless a length is passed beside them.
 *  - Configuration is immutable after _new. Unless a comment says otherwise, handles may be
 *    shared by any number of threads.
 *  - The fma_status numbers are append-only: never renumbered, never reused.
 */
#ifndef FASTMCPAUTH_H
#define FASTMCPAUTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FMA_WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#else
#define FMA_WARN_UNUSED_RESULT
#endif

/* ---- Version ------------------------------------------------------------------------------ */

#define FMA_VERSION_MAJOR 0
#define FMA_VERSION_MINOR 1
#define FMA_VERSION_PATCH 0
#define FMA_VERSION_STRING "0.1.0"
/* 0xMMmmpp: compare with >= to require a version at compile time. */
#define FMA_VERSION_NUM ((FMA_VERSION_MAJOR << 16) | (FMA_VERSION_MINOR << 8) | FMA_VERSION_PATCH)

/* The version of the loaded library ("0.1.0"): static storage, never NULL, never freed.
 * Thread-safe. */
const char *fma_version_string(void);

/* The version of the loaded library as FMA_VERSION_NUM encodes it (0xMMmmpp), to compare with
 * the header the caller was compiled against. Thread-safe. */
unsigned int fma_version_number(void);

/* ---- Status and errors -------------------------------------------------------------------- */

typedef enum fma_status {
    FMA_OK = 0,
    FMA_E_INVALID_ARGUMENT = 1,      /* invalid_argument: NULL or malformed argument */
    FMA_E_INVALID_CONFIG = 2,        /* invalid_config: the configuration is invalid */
    FMA_E_INTERNAL = 3,              /* internal_error: a library or system failure */
    FMA_E_MALFORMED_TOKEN = 10,      /* malformed_token: not three dot-separated parts */
    FMA_E_MALFORMED_BASE64 = 11,     /* malformed_base64: a part is not canonical unpadded base64url */
    FMA_E_MALFORMED_HEADER = 12,     /* malformed_header: the JOSE header is invalid */
    FMA_E_MALFORMED_CLAIMS = 13,     /* malformed_claims: the claims are not a JSON object */
    FMA_E_ALG_NOT_ALLOWED = 14,      /* alg_not_allowed: none, unknown, or not in the allow-list */
    FMA_E_KEY_NOT_FOUND = 15,        /* key_not_found: no key has the kid / fits the alg */
    FMA_E_KEY_TYPE_MISMATCH = 16,    /* key_type_mismatch: the key cannot be used with the alg */
    FMA_E_BAD_SIGNATURE = 17,        /* bad_signature */
    FMA_E_EXPIRED = 18,              /* expired: now >= exp + leeway */
    FMA_E_NOT_YET_VALID = 19,        /* not_yet_valid: nbf in the future, or iat in the future */
    FMA_E_INVALID_ISSUER = 20,       /* invalid_issuer */
    FMA_E_INVALID_AUDIENCE = 21,     /* invalid_audience */
    FMA_E_INVALID_TYPE = 22,         /* invalid_type: header typ is not the expected one */
    FMA_E_MISSING_CLAIM = 23,        /* missing_claim: exp, a configured iss/aud, or a required claim */
    FMA_E_INVALID_CLAIM = 24,        /* invalid_claim: a registered claim has the wrong JSON type */
    FMA_E_INSUFFICIENT_SCOPE = 25,   /* insufficient_scope */
    FMA_E_UNSUPPORTED_CRIT = 26,     /* unsupported_crit: crit names a parameter not understood */
    FMA_E_TOO_LARGE = 27,            /* too_large: input over its size cap */
    FMA_E_JWKS_UNAVAILABLE = 28,     /* jwks_unavailable: no JWKS could be fetched or cached */
    FMA_E_INVALID_KEY = 29,          /* invalid_key: a JWK/PEM is malformed or unsupported */
    FMA_E_WEAK_KEY = 30,             /* weak_key: RSA under 2048 bits, HS secret shorter than the hash */
    FMA_E_UNSUPPORTED_ALGORITHM = 31, /* unsupported_algorithm: an algorithm name we do not know */
    FMA_E_DECRYPTION_FAILED = 32,    /* decryption_failed: a MAC-valid Fernet token whose padding is wrong */
    FMA_E_STORE_UNAVAILABLE = 33,    /* store_unavailable: the store cannot be reached (Redis down, SQLite locked) */
    FMA_E_CORRUPTED_VALUE = 34,      /* corrupted_value: a stored value is not readable (truncated, bad envelope) */
    FMA_E_UNDECRYPTABLE_VALUE = 35,  /* undecryptable_value: no configured key decrypts a stored value */
    FMA_E_PLAINTEXT_VALUE = 36,      /* plaintext_value: an unencrypted value where encryption is required */
    FMA_E_TOKEN_REVOKED = 37,        /* token_revoked: a well-signed token that was revoked or is unknown to its issuer */
    FMA_E_UPSTREAM_UNAVAILABLE = 38, /* upstream_unavailable: the identity provider, introspection or userinfo
                                        endpoint cannot be reached (retry; never a reason to sign in again) */
    FMA_E_RATE_LIMITED = 39,         /* rate_limited: a per-address or per-client limit was reached (429) */
    FMA_E_OVER_CAPACITY = 40,        /* over_capacity: a collection holds as many entries as it may (503) */
    /* The client side (an MCP client signing in to a protected server): */
    FMA_E_AUTHORIZATION_DENIED = 41,  /* authorization_denied: the user or the server refused (access_denied) */
    FMA_E_AUTHORIZATION_TIMEOUT = 42, /* authorization_timeout: the browser sign-in did not complete in time */
    FMA_E_DISCOVERY_FAILED = 43,      /* discovery_failed: no acceptable resource or authorization-server metadata */
    FMA_E_REGISTRATION_FAILED = 44,   /* registration_failed: no client id configured and none could be registered */
    FMA_E_BROWSER_UNAVAILABLE = 45,   /* browser_unavailable: the browser command failed, or none and no terminal */
    FMA_E_CANCELLED = 46              /* cancelled: fma_oauth_client_cancel() ended a pending call */
} fma_status;

#define FMA_ERROR_MESSAGE_SIZE 256

/* Caller-allocated error detail. After any call that takes it, `status` equals the returned
 * status and `message` holds a NUL-terminated sentence (empty on success). */
typedef struct fma_error {
    fma_status status;
    char message[FMA_ERROR_MESSAGE_SIZE];
} fma_error;

/* The stable lowercase name of a status ("bad_signature"); "unknown_status" for numbers the
 * library does not know. Static storage: never NULL, never freed. Thread-safe. */
const char *fma_status_name(fma_status status);

/* A sentence describing a status. Static storage: never NULL, never freed. Thread-safe. */
const char *fma_status_string(fma_status status);

/* Releases a string the library returned through a `char **` out-parameter. NULL is a no-op.
 * The bytes are wiped before release (returned strings may hold keys or tokens). Thread-safe;
 * each string is released once. */
void fma_string_free(char *string);

/* ---- JWT verification --------------------------------------------------------------------- */

/* A JWT verifier: keys (PEM key or HS secret, static JWKS, or remote jwks_uri), an algorithm
 * allow-list and a claims policy. Thread-safe: share one verifier across threads; its JWKS and
 * verified-token caches are synchronized. */
typedef struct fma_verifier fma_verifier;

/* A verified token. Immutable; its accessors may be called from any thread. Every string an
 * accessor returns belongs to the token and lives until fma_access_token_free. */
typedef struct fma_access_token fma_access_token;

/* Creates a verifier from a JSON configuration object whose keys are the Python keyword names:
 *   exactly one of "public_key" (PEM text, or for HS* the shared secret), "jwks" (a JWKS object
 *   or its JSON text), "jwks_uri" (https, or http on loopback);
 *   "issuer", "audience" (string or list); "algorithm" (one name) or "algorithms" (a list),
 *   default ["RS256"]; "required_scopes", "required_claims" (lists); "leeway" (seconds, 0);
 *   "require_exp" (true); "typ" (expected header typ); "understood_crit" (list);
 *   "max_token_bytes" (16384); "cache_size" (10000, 0 disables); "cache_ttl" (60 s);
 *   "jwks_timeout" (5 s); "jwks_max_bytes" (262144); "jwks_refetch_cooldown" (30 s);
 *   "jwks_cache_ttl" (3600 s without Cache-Control); "jwks_min_cache_ttl" (60 s);
 *   "jwks_max_cache_ttl" (86400 s). Unknown keys are an error.
 * On success *out receives a verifier to release with fma_verifier_free. On failure *out is
 * set to NULL and the status is FMA_E_INVALID_CONFIG, FMA_E_WEAK_KEY or FMA_E_INVALID_ARGUMENT. */
FMA_WARN_UNUSED_RESULT
fma_status fma_verifier_new(const char *config_json, fma_verifier **out, fma_error *err);

/* Releases a verifier. NULL is a no-op. No call on it may be running or follow; access tokens
 * it returned stay valid (they own their data). */
void fma_verifier_free(fma_verifier *verifier);

/* Verifies `token_len` bytes of `token` (no NUL needed). On FMA_OK *out receives an access token
 * to release with fma_access_token_free; on any failure *out is NULL and the status names the
 * reason (FMA_E_BAD_SIGNATURE, FMA_E_EXPIRED, ...). May block on the network when the verifier
 * uses a jwks_uri. Thread-safe. */
FMA_WARN_UNUSED_RESULT
fma_status fma_verifier_verify(const fma_verifier *verifier, const char *token, size_t token_len,
                               fma_access_token **out, fma_error *err);

/* The raw token, byte for byte as verified; owned by the token. Never NULL for a valid handle.
 * Thread-safe (as every accessor below). */
const char *fma_access_token_token(const fma_access_token *token);

/* client_id, else azp, else sub, else "unknown". Never NULL for a valid handle. */
const char *fma_access_token_client_id(const fma_access_token *token);

/* The sub claim, or NULL when the token has none. */
const char *fma_access_token_subject(const fma_access_token *token);

/* Stores exp (seconds since the epoch) in *out and returns 1, or returns 0 when the token has
 * no exp (only possible with "require_exp": false). */
int fma_access_token_expires_at(const fma_access_token *token, int64_t *out);

/* Number of scopes (from scope, else scp). */
size_t fma_access_token_scope_count(const fma_access_token *token);

/* Scope number `index`, or NULL when index >= the count. */
const char *fma_access_token_scope(const fma_access_token *token, size_t index);

/* All claims as JSON text: the token's decoded payload, exactly as issued (already validated as
 * a JSON object without duplicate keys). Never NULL for a valid handle. */
const char *fma_access_token_claims_json(const fma_access_token *token);

/* Releases an access token and every string it returned (the raw token's bytes are wiped).
 * NULL is a no-op. No accessor may be running on it. */
void fma_access_token_free(fma_access_token *token);

/* ---- Signing and keys --------------------------------------------------------------------- */

/* Signs a JWT. `claims_json` is a JSON object; `jwk_json` a private JWK (or an oct key for HS*);
 * `alg` one of HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, ES256K, EdDSA, and
 * the RFC 9864 names Ed25519 and Ed448;
 * `headers_json` NULL or a JSON object merged into the header (it cannot change alg). The
 * header carries typ "JWT" and the key's kid. *out_token receives the compact JWS; release it
 * with fma_string_free. Thread-safe. */
FMA_WARN_UNUSED_RESULT
fma_status fma_jwt_sign(const char *claims_json, const char *jwk_json, const char *alg,
                        const char *headers_json, char **out_token, fma_error *err);

/* Generates a private JWK for `alg` (RSA 2048 for RS/PS, the alg's curve for ES, Ed25519 for
 * EdDSA, a random secret of the hash length for HS). `options_json` is NULL or an object with
 * "crv" ("Ed448" for EdDSA), "bits" (RSA, 2048..16384) and "kid" (default: the RFC 7638
 * thumbprint). *out_jwk_json receives the JWK (with alg and kid); release it with
 * fma_string_free. Thread-safe. */
FMA_WARN_UNUSED_RESULT
fma_status fma_jwk_generate(const char *alg, const char *options_json, char **out_jwk_json, fma_error *err);

/* The public JWK of a private JWK (private members removed). Fails with FMA_E_KEY_TYPE_MISMATCH
 * for an oct key, which has no public form. Release the result with fma_string_free. */
FMA_WARN_UNUSED_RESULT
fma_status fma_jwk_public(const char *jwk_json, char **out_jwk_json, fma_error *err);

/* ---- Fernet ------------------------------------------------------------------------------ */

/* Fernet (github.com/fernet/spec), byte-compatible with Python cryptography.fernet, with
 * MultiFernet's rotation: the first key encrypts, any key decrypts. Immutable; thread-safe; the
 * key material is wiped when freed. Fernet failures use: FMA_E_MALFORMED_BASE64,
 * FMA_E_MALFORMED_TOKEN (version, length, block size), FMA_E_BAD_SIGNATURE (no key's MAC
 * matches), FMA_E_EXPIRED (older than ttl), FMA_E_NOT_YET_VALID (more than 60 s in the future,
 * with a ttl), FMA_E_DECRYPTION_FAILED (padding). */
typedef struct fma_fernet fma_fernet;

/* Pass as `at_time`/`now` for the current time. */
#define FMA_TIME_NOW INT64_MIN
/* Pass as `ttl_seconds` to skip the age check. */
#define FMA_NO_TTL (-1)

/* Creates a Fernet from `count` keys (url-safe base64 of 32 bytes each, 44 characters). Invalid
 * keys are FMA_E_INVALID_KEY. Release with fma_fernet_free. */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_new(const char *const *keys, size_t count, fma_fernet **out, fma_error *err);

/* Releases a Fernet (wiping its keys). NULL is a no-op. */
void fma_fernet_free(fma_fernet *fernet);

/* A new random key; release it with fma_string_free. Thread-safe. */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_generate_key(char **out_key, fma_error *err);

/* Encrypts `length` bytes with the first key, stamped `at_time` (FMA_TIME_NOW: now). The token
 * (url-safe base64 text) is released with fma_string_free. */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_encrypt(const fma_fernet *fernet, const uint8_t *data, size_t length, int64_t at_time,
                              char **out_token, fma_error *err);

/* Decrypts a token with any key. With ttl_seconds >= 0, refuses tokens older than that at `now`
 * (FMA_TIME_NOW: the current time) or more than 60 s in the future; FMA_NO_TTL skips both. The
 * plaintext is released with fma_bytes_free (it may be empty: *out_data is then still non-NULL). */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_decrypt(const fma_fernet *fernet, const char *token, int64_t ttl_seconds, int64_t now,
                              uint8_t **out_data, size_t *out_length, fma_error *err);

/* Re-encrypts a token under the first key, keeping its timestamp (MultiFernet.rotate). */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_rotate(const fma_fernet *fernet, const char *token, char **out_token, fma_error *err);

/* The token's timestamp, after its MAC is verified with one of the keys. */
FMA_WARN_UNUSED_RESULT
fma_status fma_fernet_extract_timestamp(const fma_fernet *fernet, const char *token, int64_t *out_timestamp, fma_error *err);

/* Wipes and releases bytes the library returned through a `uint8_t **`. NULL is a no-op. */
void fma_bytes_free(uint8_t *data, size_t length);

/* ---- Token store --------------------------------------------------------------------------- */

/* A collection-scoped key-value store of JSON objects, encrypted at rest as py-key-value's
 * FernetEncryptionWrapper does it. URLs: "memory://", "sqlite:///relative.db" or
 * "sqlite:////absolute.db", "redis://[[user]:password@]host[:port][/db]". Thread-safe; every
 * operation is atomic per entry (across processes for SQLite and Redis). Values are JSON
 * objects, passed and returned as JSON text (returned text is released with fma_string_free).
 * Collections and keys are 1 to 1024 bytes without NUL. */
typedef struct fma_store fma_store;

/* Opens a store. `options_json` is NULL or an object with "encryption_keys" (list of Fernet
 * keys; first encrypts), "on_plaintext" and "on_undecryptable" ("error", the default, or
 * "miss"), "max_value_bytes" (1048576), "max_entries_per_collection" (memory, 100000),
 * "timeout" (seconds, 5). Bad URLs and options are FMA_E_INVALID_CONFIG; an unreachable SQLite
 * file FMA_E_STORE_UNAVAILABLE (Redis connects on first use). */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_new(const char *url, const char *options_json, fma_store **out, fma_error *err);

/* Closes the store and releases it. NULL is a no-op. No call on it may be running or follow. */
void fma_store_free(fma_store *store);

/* Stores `value_json` (a JSON object). `ttl_seconds` is NULL for no expiry, else above 0 and at
 * most 10 years (315360000 s); any other TTL is FMA_E_INVALID_ARGUMENT, in every call. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_put(fma_store *store, const char *collection, const char *key, const char *value_json,
                         const double *ttl_seconds, fma_error *err);

/* Stores only when no live entry exists; *out_stored is 1 when it stored, 0 when one existed. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_put_if_absent(fma_store *store, const char *collection, const char *key, const char *value_json,
                                   const double *ttl_seconds, int *out_stored, fma_error *err);

/* *out_value_json receives the value, or NULL when there is no live entry (or a "miss" mode
 * applies). */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_get(fma_store *store, const char *collection, const char *key, char **out_value_json, fma_error *err);

/* Get and delete in one atomic step: of concurrent takers, exactly one receives the value. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_take(fma_store *store, const char *collection, const char *key, char **out_value_json, fma_error *err);

/* *out_deleted is 1 when an entry was deleted. `out_deleted` may be NULL. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_delete(fma_store *store, const char *collection, const char *key, int *out_deleted, fma_error *err);

/* Deletes only while the entry still holds `expected_json` (compared as JSON values);
 * *out_deleted is 1 when it did. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_compare_and_delete(fma_store *store, const char *collection, const char *key,
                                        const char *expected_json, int *out_deleted, fma_error *err);

/* Replaces the entry with `new_json` only while it still holds `expected_json` (compared as
 * JSON values, as read before), in one atomic step; `expected_json` NULL means "only while no
 * live entry exists". `ttl_seconds` as for fma_store_put. *out_swapped (may be NULL) is 1 when
 * it replaced the entry, 0 when the entry had changed (read it again and retry). */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_compare_and_swap(fma_store *store, const char *collection, const char *key,
                                      const char *expected_json, const char *new_json, const double *ttl_seconds,
                                      int *out_swapped, fma_error *err);

/* Adds `delta` to the counter `key` in one atomic step and stores the new count in *out_value
 * (may be NULL). A missing or expired counter starts at `delta` and expires `ttl_seconds` later
 * (NULL: never); increments keep that expiry, so a counter counts one fixed window. Counters
 * hold only a number and are stored unencrypted as {"count": n}: read one with a delta of 0.
 * An entry that is not a counter is FMA_E_CORRUPTED_VALUE. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_increment(fma_store *store, const char *collection, const char *key, int64_t delta,
                               const double *ttl_seconds, int64_t *out_value, fma_error *err);

/* *out_found is 0 when there is no live entry; else *out_seconds is the time left, or -1 when
 * the entry never expires. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_ttl(fma_store *store, const char *collection, const char *key, int *out_found, double *out_seconds,
                         fma_error *err);

/* The live keys of a collection, as a sorted JSON array of strings. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_keys(fma_store *store, const char *collection, char **out_keys_json, fma_error *err);

/* Deletes a whole collection; *out_count (may be NULL) receives how many entries went. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_delete_collection(fma_store *store, const char *collection, size_t *out_count, fma_error *err);

/* Acquires the lease `name` for ttl_seconds (> 0): *out_holder receives the holder token, or
 * NULL while another holder has it. Leases expire on their own. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_acquire_lease(fma_store *store, const char *name, double ttl_seconds, char **out_holder, fma_error *err);

/* Releases the lease if `holder` still holds it; *out_released is 1 when it did. */
FMA_WARN_UNUSED_RESULT
fma_status fma_store_release_lease(fma_store *store, const char *name, const char *holder, int *out_released, fma_error *err);

/* ---- Resource server: the auth facade ----------------------------------------------------- */

/* One auth object per MCP server in resource-server mode: it answers the discovery routes
 * (/.well-known/oauth-protected-resource{mcp_path} with RFC 9728 path insertion, and the root
 * form; for AuthKit, /.well-known/oauth-authorization-server) and turns an Authorization header
 * into an access token or the 401/403 challenge the MCP spec requires. Immutable; thread-safe.
 * May block on the network (JWKS, AuthKit metadata): call it off event loops. */
typedef struct fma_auth fma_auth;

/* An HTTP response (a route's answer or a challenge). Immutable; strings and bytes belong to it
 * and live until fma_response_free. */
typedef struct fma_response fma_response;

/* Creates the facade from a JSON configuration: {"provider": "jwt" | "remote" | "authkit" |
 * "static" | "introspection" | "workos-userinfo" | "oauth_proxy" | "oidc_proxy" | "workos",
 * "base_url" (required when the provider names authorization servers), "mcp_path" ("/mcp"),
 * "required_scopes", "resource_name", ...}; jwt takes the verifier keys of fma_verifier_new,
 * remote "token_verifier" (a verifier configuration) and "authorization_servers", authkit
 * "authkit_domain", static "tokens" ({token: {client_id, scopes, expires_at}}), introspection
 * "introspection_url", "client_id", "client_secret"; the OAuth proxies the upstream's endpoints
 * (oauth_proxy), its discovery URL (oidc_proxy) or "authkit_domain" (workos), "client_id",
 * "client_secret" and the options the README lists. Release with fma_auth_free. */
FMA_WARN_UNUSED_RESULT
fma_status fma_auth_new(const char *config_json, fma_auth **out, fma_error *err);

/* Creates the facade from FastMCP's environment (FASTMCP_SERVER_AUTH and its
 * FASTMCP_SERVER_AUTH_* variables). `overrides_json` (explicit arguments; they win) and
 * `defaults_json` (they lose) are NULL or JSON objects of configuration keys. When no provider
 * is named anywhere, returns FMA_OK with *out NULL: the server runs without auth. A bad value is
 * FMA_E_INVALID_CONFIG naming its variable. */
FMA_WARN_UNUSED_RESULT
fma_status fma_auth_new_from_env(const char *overrides_json, const char *defaults_json, fma_auth **out, fma_error *err);

/* Releases the facade. NULL is a no-op. */
void fma_auth_free(fma_auth *auth);

/* The facade's configuration as a JSON object, with no secret in it: {"provider",
 * "required_scopes", "authorization_servers", "routes" (the paths fma_auth_handle answers, for
 * routers that need them up front), "resource" and "resource_metadata" (absent without a
 * base_url)}. Release *out_json with fma_string_free. */
FMA_WARN_UNUSED_RESULT
fma_status fma_auth_describe(const fma_auth *auth, char **out_json, fma_error *err);

/* Answers one of the facade's routes (discovery; with an OAuth proxy also /register, /authorize,
 * /consent, the upstream callback, /token and /revoke): *out receives the response to send as it
 * is, or NULL when the request is not one of the facade's. `target` is the path plus query;
 * `headers_json` is NULL or a JSON object of header names to values; `body` may be NULL when
 * body_length is 0 (at most 1 MiB); `client_address` is NULL or the peer's IP address, which
 * registration rate limits key on. May block on the store and the upstream provider. */
FMA_WARN_UNUSED_RESULT
fma_status fma_auth_handle(const fma_auth *auth, const char *method, const char *target, const char *headers_json,
                           const uint8_t *body, size_t body_length, const char *client_address, fma_response **out,
                           fma_error *err);

/* Authenticates one request. `authorization` is the Authorization header value or NULL;
 * `required_scopes` NULL or space-separated scopes the operation needs beyond the configured
 * ones; `target` NULL or the request target (a token in its query is refused). On FMA_OK exactly
 * one of *out_token (release with fma_access_token_free) and *out_challenge (the 401/403 to
 * send; release with fma_response_free) is set. */
FMA_WARN_UNUSED_RESULT
fma_status fma_auth_authenticate(const fma_auth *auth, const char *authorization, const char *required_scopes, const char *target,
                                 fma_access_token **out_token, fma_response **out_challenge, fma_error *err);

/* The HTTP status code. 0 for NULL. */
int fma_response_status(const fma_response *response);

/* Number of headers, and each one's name and value (NULL when index is out of range). */
size_t fma_response_header_count(const fma_response *response);
const char *fma_response_header_name(const fma_response *response, size_t index);
const char *fma_response_header_value(const fma_response *response, size_t index);

/* The value of the named header (case-insensitive), or NULL. */
const char *fma_response_header(const fma_response *response, const char *name);

/* The body (never NULL for a valid handle; NUL-terminated for convenience) and its length. */
const uint8_t *fma_response_body(const fma_response *response, size_t *out_length);

/* Releases a response. NULL is a no-op. */
void fma_response_free(fma_response *response);

/* ---- Client side: signing in to a protected MCP server ------------------------------------ */

/* An MCP client's OAuth (MCP authorization spec, client side): discovery from the server's 401 or
 * its RFC 9728 metadata, the authorization server's metadata (its issuer must match exactly; PKCE
 * S256 is required), registration (a configured client id, else a Client ID Metadata Document,
 * else dynamic registration), a browser sign-in on a 127.0.0.1 redirect, tokens cached encrypted
 * and refreshed before expiry, one refresh at a time across processes sharing the store. With
 * the client_credentials grant (machine to machine) there is no browser, listener or
 * registration: the configured confidential client asks the token endpoint itself.
 * Thread-safe; sign-ins are serialised. */
typedef struct fma_oauth_client fma_oauth_client;

/* `config_json`: "server_url" (required: the MCP endpoint, https or loopback http), "client_name",
 * "client_metadata_url" (https, for servers that support metadata documents), "client_id" with
 * optional "client_secret" or "private_key" (a private JWK, as an object or its JSON text) and
 * "client_issuer" (a secret or key needs its issuer: an https URL, http only on loopback, equal
 * byte for byte to the server's metadata `issuer`; the secret or key goes nowhere else),
 * "token_endpoint_auth_method"
 * ("client_secret_basic", the default with a secret; "client_secret_post"; "private_key_jwt", the
 * default with a key; "none", the default otherwise), "grant" ("authorization_code", the default, or
 * "client_credentials": no browser, needs client_id, client_issuer and a secret or key; not with
 * client_metadata_url; the browser settings do not apply; the configured scopes are the most it
 * asks for, and without any the resource's scopes_supported and a 403's scopes are used),
 * "redirect_port" (0: ephemeral), "scopes" (list or space-separated), "no_browser" (print the URL
 * on a terminal instead), "sign_in_timeout" (300 s), "timeout" (HTTP, 10 s), "refresh_margin" (60 s),
 * "storage" (a store URL) with "encryption_keys" (required with it). Without "storage", tokens
 * go to $XDG_CACHE_HOME/fastmcpauth/tokens.db (else ~/.cache), 0600, its key generated beside it;
 * a client_credentials client's tokens are kept apart from a person's and per client id.
 * Bad settings are FMA_E_INVALID_CONFIG. */
FMA_WARN_UNUSED_RESULT
fma_status fma_oauth_client_new(const char *config_json, fma_oauth_client **out, fma_error *err);

/* Releases the client. NULL is a no-op. No call on it may be running or follow. */
void fma_oauth_client_free(fma_oauth_client *client);

/* Where sign-in URLs go: `open_url(url, ctx)` is called (from the thread calling
 * fma_oauth_client_token) and must return promptly; the sign-in then waits for the redirect.
 * NULL restores the default: $BROWSER (":"-separated commands, "%s" replaced by the URL, else
 * the URL appended), else xdg-open, else the URL on stderr. */
typedef void (*fma_open_url_fn)(const char *url, void *ctx);
FMA_WARN_UNUSED_RESULT
fma_status fma_oauth_client_set_browser(fma_oauth_client *client, fma_open_url_fn open_url, void *ctx, fma_error *err);

/* A pending fma_oauth_client_token waiting for a sign-in returns FMA_E_CANCELLED. Any thread. */
void fma_oauth_client_cancel(fma_oauth_client *client);

/* *out_access_token receives a valid access token (release with fma_string_free): cached,
 * refreshed, or after a sign-in (which can take up to sign_in_timeout); with client_credentials,
 * a new token request instead of a sign-in (a refused client is FMA_E_AUTHORIZATION_DENIED). Sign-in failures are
 * FMA_E_AUTHORIZATION_DENIED, FMA_E_AUTHORIZATION_TIMEOUT, FMA_E_BROWSER_UNAVAILABLE,
 * FMA_E_CANCELLED; metadata problems FMA_E_DISCOVERY_FAILED or FMA_E_REGISTRATION_FAILED;
 * an unreachable token endpoint FMA_E_UPSTREAM_UNAVAILABLE. */
FMA_WARN_UNUSED_RESULT
fma_status fma_oauth_client_token(fma_oauth_client *client, char **out_access_token, fma_error *err);

/* Hands the client a 401 or 403 the server answered (`www_authenticate` its header, or NULL); the
 * next fma_oauth_client_token acts on it: a 401 refreshes (or signs in; client_credentials: asks
 * anew), a 403 insufficient_scope signs in again with the union of the scopes, at most twice in a
 * row, then FMA_E_INSUFFICIENT_SCOPE (client_credentials with configured scopes: at once when the
 * server asks for more). Other statuses are FMA_E_INVALID_ARGUMENT. */
FMA_WARN_UNUSED_RESULT
fma_status fma_oauth_client_challenge(fma_oauth_client *client, int status, const char *www_authenticate, fma_error *err);

/* Forgets the cached tokens of this server (the registration is kept). */
FMA_WARN_UNUSED_RESULT
fma_status fma_oauth_client_logout(fma_oauth_client *client, fma_error *err);

#ifdef __cplusplus
}
#endif

#endif /* FASTMCPAUTH_H */
