/* C tests of every function in fastmcpauth.h. Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <fastmcpauth.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static char vectors[1024];

static char *make_token(const char *jwk, const char *alg, long long exp_offset, const char *extra) {
    char claims[512];
    snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"azp\":\"client-1\",\"scope\":\"read write\",\"exp\":%lld%s}",
             (long long)time(NULL) + exp_offset, extra ? extra : "");
    char *token = NULL;
    fma_error err;
    if (fma_jwt_sign(claims, jwk, alg, NULL, &token, &err) != FMA_OK) {
        fprintf(stderr, "sign %s failed: %s\n", alg, err.message);
        return NULL;
    }
    return token;
}

static fma_verifier *verifier_for(const char *public_jwk, const char *alg, const char *more) {
    char *config = malloc(strlen(public_jwk) + 512);
    sprintf(config, "{\"jwks\":{\"keys\":[%s]},\"algorithms\":[\"%s\"]%s}", public_jwk, alg, more ? more : "");
    fma_verifier *v = NULL;
    fma_error err;
    fma_status st = fma_verifier_new(config, &v, &err);
    free(config);
    if (st != FMA_OK) fprintf(stderr, "verifier_new: %s\n", err.message);
    return v;
}

static void test_version_and_status(void) {
    CHECK(strcmp(fma_version_string(), FMA_VERSION_STRING) == 0, "runtime version %s != header %s", fma_version_string(), FMA_VERSION_STRING);
    CHECK(FMA_VERSION_NUM == ((FMA_VERSION_MAJOR << 16) | (FMA_VERSION_MINOR << 8) | FMA_VERSION_PATCH), "version num");
    CHECK(strcmp(fma_status_name(FMA_OK), "ok") == 0, "ok name");
    CHECK(strcmp(fma_status_name(FMA_E_BAD_SIGNATURE), "bad_signature") == 0, "bad_signature name");
    CHECK(strcmp(fma_status_name(FMA_E_JWKS_UNAVAILABLE), "jwks_unavailable") == 0, "jwks_unavailable name");
    CHECK(strcmp(fma_status_name((fma_status)9999), "unknown_status") == 0, "unknown status name");
    CHECK(fma_status_string((fma_status)-5) != NULL && strlen(fma_status_string((fma_status)-5)) > 0, "unknown status sentence");
    CHECK(strlen(fma_status_string(FMA_E_EXPIRED)) > 5, "expired sentence");
    CHECK(sizeof(fma_error) == sizeof(int) + FMA_ERROR_MESSAGE_SIZE, "fma_error layout");
}

static void test_null_handling(void) {
    fma_error err;
    fma_verifier *v = (fma_verifier *)1;
    CHECK(fma_verifier_new(NULL, &v, &err) == FMA_E_INVALID_ARGUMENT && v == NULL, "NULL config");
    CHECK(err.status == FMA_E_INVALID_ARGUMENT && strlen(err.message) > 0, "err filled");
    CHECK(fma_verifier_new("{}", NULL, NULL) == FMA_E_INVALID_ARGUMENT, "NULL out, NULL err");
    CHECK(fma_verifier_new("not json", &v, &err) == FMA_E_INVALID_CONFIG, "bad JSON config");
    CHECK(fma_verifier_new("{\"jwks_uri\":\"https://x/jwks\",\"public_key\":\"k\"}", &v, &err) == FMA_E_INVALID_CONFIG,
          "two key sources");
    CHECK(fma_verifier_new("{\"public_key\":\"short\",\"algorithms\":[\"HS256\"]}", &v, &err) == FMA_E_WEAK_KEY, "short HS secret");
    CHECK(fma_verifier_new("{\"jwks_uri\":\"https://x/jwks\",\"algorithms\":[\"HS256\"]}", &v, &err) == FMA_E_INVALID_CONFIG,
          "HS with jwks_uri");
    CHECK(fma_verifier_new("{\"jwks_uri\":\"https://x/jwks\",\"algorithm\":\"RS256\",\"algorithms\":[\"RS256\"]}", &v, &err) ==
              FMA_E_INVALID_CONFIG, "algorithm and algorithms");
    CHECK(fma_verifier_new("{\"jwks_uri\":\"https://x/jwks\",\"typo_key\":1}", &v, &err) == FMA_E_INVALID_CONFIG &&
              strstr(err.message, "typo_key") != NULL, "unknown key named");
    fma_access_token *at = (fma_access_token *)1;
    CHECK(fma_verifier_verify(NULL, "a.b.c", 5, &at, &err) == FMA_E_INVALID_ARGUMENT && at == NULL, "NULL verifier");
    char *out = (char *)1;
    CHECK(fma_jwt_sign(NULL, "{}", "HS256", NULL, &out, &err) == FMA_E_INVALID_ARGUMENT && out == NULL, "sign NULL claims");
    CHECK(fma_jwk_generate("none", NULL, &out, &err) == FMA_E_UNSUPPORTED_ALGORITHM, "generate none");
    CHECK(fma_jwk_generate("RS256", "{\"bits\":1024}", &out, &err) == FMA_E_WEAK_KEY, "generate RSA 1024");
    CHECK(fma_jwk_public("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", &out, &err) == FMA_E_KEY_TYPE_MISMATCH, "oct has no public");
    CHECK(fma_jwk_public("{\"kty\":\"RSA\"}", &out, &err) == FMA_E_INVALID_KEY, "RSA without n");
    fma_verifier_free(NULL);
    fma_access_token_free(NULL);
    fma_string_free(NULL);
    CHECK(fma_access_token_token(NULL) == NULL && fma_access_token_scope_count(NULL) == 0, "NULL accessors");
}

static const char *algorithms[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384",
                                   "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA"};

static void test_round_trip_every_algorithm(void) {
    for (size_t i = 0; i < sizeof algorithms / sizeof *algorithms; i++) {
        const char *alg = algorithms[i];
        fma_error err;
        char *jwk = NULL, *pub = NULL;
        CHECK(fma_jwk_generate(alg, NULL, &jwk, &err) == FMA_OK, "%s keygen: %s", alg, err.message);
        if (!jwk) continue;
        int symmetric = alg[0] == 'H';
        if (!symmetric) CHECK(fma_jwk_public(jwk, &pub, &err) == FMA_OK && strstr(pub, "\"d\"") == NULL, "%s public", alg);
        char *token = make_token(jwk, alg, 300, NULL);
        fma_verifier *v = verifier_for(symmetric ? jwk : pub, alg, NULL);
        CHECK(token && v, "%s token and verifier", alg);
        if (token && v) {
            fma_access_token *at = NULL;
            fma_status st = fma_verifier_verify(v, token, strlen(token), &at, &err);
            CHECK(st == FMA_OK, "%s verify: %s", alg, err.message);
            if (at) {
                CHECK(strcmp(fma_access_token_token(at), token) == 0, "%s raw token kept", alg);
                CHECK(strcmp(fma_access_token_client_id(at), "client-1") == 0, "%s client_id from azp", alg);
                CHECK(strcmp(fma_access_token_subject(at), "alice") == 0, "%s subject", alg);
                int64_t exp = 0;
                CHECK(fma_access_token_expires_at(at, &exp) == 1 && exp > (int64_t)time(NULL), "%s exp", alg);
                CHECK(fma_access_token_scope_count(at) == 2 && strcmp(fma_access_token_scope(at, 1), "write") == 0 &&
                          fma_access_token_scope(at, 2) == NULL, "%s scopes", alg);
                json_error_t jerr;
                json_t *claims = json_loads(fma_access_token_claims_json(at), JSON_REJECT_DUPLICATES, &jerr);
                CHECK(claims && strcmp(json_string_value(json_object_get(claims, "sub")), "alice") == 0, "%s claims JSON", alg);
                json_decref(claims);
                fma_access_token_free(at);
            }
            /* Flip one signature character: must be bad_signature (or malformed for non-canonical tails). */
            char *tampered = strdup(token);
            char *sig = strrchr(tampered, '.') + 1;
            sig[0] = sig[0] == 'A' ? 'B' : 'A';
            st = fma_verifier_verify(v, tampered, strlen(tampered), &at, &err);
            CHECK(st == FMA_E_BAD_SIGNATURE && at == NULL, "%s tampered: %s", alg, fma_status_name(st));
            CHECK(strstr(err.message, sig) == NULL, "%s message leaks no token bytes", alg);
            free(tampered);
        }
        fma_verifier_free(v);
        fma_string_free(token);
        fma_string_free(pub);
        fma_string_free(jwk);
    }
}

static void test_rejections(void) {
    fma_error err;
    char *jwk = NULL, *pub = NULL;
    if (fma_jwk_generate("ES256", NULL, &jwk, &err) != FMA_OK || fma_jwk_public(jwk, &pub, &err) != FMA_OK) {
        CHECK(0, "keygen");
        return;
    }
    fma_verifier *v = verifier_for(pub, "ES256", ",\"issuer\":\"https://issuer.example\",\"audience\":[\"mcp\",\"other\"],"
                                                 "\"required_scopes\":[\"read\"]");
    struct { const char *extra; long long exp; fma_status want; } cases[] = {
        {",\"iss\":\"https://issuer.example\",\"aud\":\"mcp\"", 300, FMA_OK},
        {",\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"other\"]", 300, FMA_OK},
        {",\"iss\":\"https://issuer.example\",\"aud\":\"mcp\"", -1, FMA_E_EXPIRED},
        {",\"iss\":\"https://evil.example\",\"aud\":\"mcp\"", 300, FMA_E_INVALID_ISSUER},
        {",\"iss\":\"https://issuer.example\",\"aud\":\"nope\"", 300, FMA_E_INVALID_AUDIENCE},
        {",\"aud\":\"mcp\"", 300, FMA_E_MISSING_CLAIM},
        {",\"iss\":\"https://issuer.example\",\"aud\":\"mcp\",\"nbf\":9999999999", 300, FMA_E_NOT_YET_VALID},
        {",\"iss\":\"https://issuer.example\",\"aud\":7", 300, FMA_E_INVALID_CLAIM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *token = make_token(jwk, "ES256", cases[i].exp, cases[i].extra);
        fma_access_token *at = NULL;
        fma_status st = fma_verifier_verify(v, token, strlen(token), &at, &err);
        CHECK(st == cases[i].want && err.status == st, "case %zu: got %s want %s", i, fma_status_name(st), fma_status_name(cases[i].want));
        fma_access_token_free(at);
        fma_string_free(token);
    }
    fma_access_token *at = NULL;
    CHECK(fma_verifier_verify(v, "abc", 3, &at, &err) == FMA_E_MALFORMED_TOKEN, "two dots needed");
    CHECK(fma_verifier_verify(v, "e30=.e30.AA", 11, &at, &err) == FMA_E_MALFORMED_BASE64, "padding refused");
    char big[20000];
    memset(big, 'a', sizeof big);
    CHECK(fma_verifier_verify(v, big, sizeof big, &at, &err) == FMA_E_TOO_LARGE, "oversized");
    /* A length beyond the cap is refused before a single byte is read. */
    CHECK(fma_verifier_verify(v, "x", SIZE_MAX, &at, &err) == FMA_E_TOO_LARGE && at == NULL, "SIZE_MAX length");
    CHECK(fma_verifier_verify(v, NULL, 5, &at, &err) == FMA_E_INVALID_ARGUMENT, "NULL token");
    CHECK(fma_verifier_verify(v, "", 0, &at, &err) == FMA_E_MALFORMED_TOKEN, "empty token");
    fma_verifier_free(v);
    fma_string_free(pub);
    fma_string_free(jwk);
}

/* RFC 7515 Appendix A.1-A.4 must verify (their exp is in 2011, so exp is not required here and
 * the tokens carry it: they verify only up to the expiry check) and A.5 (alg none) is refused. */
static json_t *example(json_t *examples, const char *prefix) {
    size_t i;
    json_t *e;
    json_array_foreach(examples, i, e) {
        if (strncmp(json_string_value(json_object_get(e, "name")), prefix, strlen(prefix)) == 0) return e;
    }
    return NULL;
}

static void test_rfc7515_vectors(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cookbook/rfc7515_appendixA.json", vectors);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    CHECK(doc != NULL, "cannot read %s", path);
    if (!doc) return;
    json_t *examples = json_object_get(doc, "examples");
    const char *names[] = {"A.1", "A.2", "A.3", "A.4"};
    for (int n = 0; n < 4; n++) {
        json_t *e = example(examples, names[n]);
        CHECK(e != NULL, "%s missing", names[n]);
        if (!e) continue;
        char *key = json_dumps(json_object_get(e, "key"), JSON_COMPACT);
        const char *token = json_string_value(json_object_get(e, "compact"));
        const char *alg = json_string_value(json_object_get(e, "alg"));
        char config[4096];
        snprintf(config, sizeof config, "{\"jwks\":{\"keys\":[%s]},\"algorithms\":[\"%s\"],\"require_exp\":false}", key, alg);
        fma_verifier *v = NULL;
        fma_error err;
        CHECK(fma_verifier_new(config, &v, &err) == FMA_OK, "%s verifier: %s", names[n], err.message);
        fma_access_token *at = NULL;
        fma_status st = fma_verifier_verify(v, token, strlen(token), &at, &err);
        /* A.4's payload is the text "Payload", not a claims object. */
        fma_status want = n == 3 ? FMA_E_MALFORMED_CLAIMS : FMA_E_EXPIRED;
        CHECK(st == want, "%s: got %s want %s", names[n], fma_status_name(st), fma_status_name(want));
        fma_verifier_free(v);
        free(key);
    }
    json_t *a5 = example(examples, "A.5");
    const char *none_token = a5 ? json_string_value(json_object_get(a5, "compact")) : NULL;
    CHECK(none_token != NULL, "A.5 missing");
    if (none_token) {
        fma_verifier *v = NULL;
        fma_error err;
        CHECK(fma_verifier_new("{\"public_key\":\"0123456789abcdef0123456789abcdef\",\"algorithms\":[\"HS256\"]}", &v, &err) == FMA_OK,
              "none verifier");
        fma_access_token *at = NULL;
        CHECK(fma_verifier_verify(v, none_token, strlen(none_token), &at, &err) == FMA_E_ALG_NOT_ALLOWED, "A.5 none refused");
        fma_verifier_free(v);
    }
    json_decref(doc);
}

struct thread_job { fma_verifier *v; const char *good; const char *bad; int errors; };

static void *verify_loop(void *arg) {
    struct thread_job *job = arg;
    for (int i = 0; i < 200; i++) {
        fma_access_token *at = NULL;
        if (fma_verifier_verify(job->v, job->good, strlen(job->good), &at, NULL) != FMA_OK) job->errors++;
        fma_access_token_free(at);
        if (fma_verifier_verify(job->v, job->bad, strlen(job->bad), &at, NULL) != FMA_E_BAD_SIGNATURE) job->errors++;
    }
    return NULL;
}

static void test_threads(void) {
    fma_error err;
    char *jwk = NULL, *pub = NULL;
    if (fma_jwk_generate("RS256", NULL, &jwk, &err) != FMA_OK || fma_jwk_public(jwk, &pub, &err) != FMA_OK) return;
    fma_verifier *v = verifier_for(pub, "RS256", ",\"cache_size\":0");
    char *good = make_token(jwk, "RS256", 300, NULL);
    char *bad = strdup(good);
    char *sig = strrchr(bad, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    pthread_t threads[8];
    struct thread_job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct thread_job){v, good, bad, 0};
        pthread_create(&threads[i], NULL, verify_loop, &jobs[i]);
    }
    int errors = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        errors += jobs[i].errors;
    }
    CHECK(errors == 0, "%d wrong results across 8 threads", errors);
    free(bad);
    fma_string_free(good);
    fma_verifier_free(v);
    fma_string_free(pub);
    fma_string_free(jwk);
}

int main(int argc, char **argv) {
    snprintf(vectors, sizeof vectors, "%s", argc > 1 ? argv[1] : "Tests/vectors");
    test_version_and_status();
    test_null_handling();
    test_round_trip_every_algorithm();
    test_rejections();
    test_rfc7515_vectors();
    test_threads();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
