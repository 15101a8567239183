/* Single-thread throughput through the C ABI, one line "NAME ops_per_second":
 *   bench_c verify ALG SECONDS [CACHE_SIZE]   JWT verification
 *   bench_c fernet SECONDS                    1 KiB Fernet encrypt, then decrypt
 *   bench_c store URL SECONDS                 one put + one get per operation */
#define _POSIX_C_SOURCE 200809L
#include <fastmcpauth.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench_fernet(double seconds) {
    char *key = NULL;
    fma_error err;
    if (fma_fernet_generate_key(&key, &err) != FMA_OK) return 1;
    const char *keys[] = {key};
    fma_fernet *f = NULL;
    if (fma_fernet_new(keys, 1, &f, &err) != FMA_OK) return 1;
    uint8_t data[1024];
    memset(data, 'x', sizeof data);
    long count = 0;
    double start = now(), t = start;
    while (t < start + seconds) {
        for (int i = 0; i < 64; i++) {
            char *token = NULL;
            if (fma_fernet_encrypt(f, data, sizeof data, FMA_TIME_NOW, &token, NULL) != FMA_OK) return 1;
            fma_string_free(token);
        }
        count += 64;
        t = now();
    }
    printf("fernet_encrypt %.1f\n", count / (t - start));
    char *token = NULL;
    if (fma_fernet_encrypt(f, data, sizeof data, FMA_TIME_NOW, &token, NULL) != FMA_OK) return 1;
    count = 0;
    start = now(), t = start;
    while (t < start + seconds) {
        for (int i = 0; i < 64; i++) {
            uint8_t *out = NULL;
            size_t length = 0;
            if (fma_fernet_decrypt(f, token, FMA_NO_TTL, FMA_TIME_NOW, &out, &length, NULL) != FMA_OK) return 1;
            fma_bytes_free(out, length);
        }
        count += 64;
        t = now();
    }
    printf("fernet_decrypt %.1f\n", count / (t - start));
    fma_string_free(token);
    fma_fernet_free(f);
    fma_string_free(key);
    return 0;
}

static int bench_store(const char *url, double seconds) {
    char *key = NULL;
    fma_error err;
    if (fma_fernet_generate_key(&key, &err) != FMA_OK) return 1;
    char options[128];
    snprintf(options, sizeof options, "{\"encryption_keys\":[\"%s\"]}", key);
    fma_store *store = NULL;
    if (fma_store_new(url, options, &store, &err) != FMA_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
    const char *value = "{\"access_token\":\"0123456789abcdef0123456789abcdef\",\"expires_in\":3600,\"token_type\":\"Bearer\"}";
    double ttl = 300;
    long count = 0;
    double start = now(), t = start;
    while (t < start + seconds) {
        for (int i = 0; i < 16; i++) {
            char k[32], *out = NULL;
            snprintf(k, sizeof k, "k%ld", (count + i) % 1000);
            if (fma_store_put(store, "bench", k, value, &ttl, &err) != FMA_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
            if (fma_store_get(store, "bench", k, &out, &err) != FMA_OK || !out) return 1;
            fma_string_free(out);
        }
        count += 16;
        t = now();
    }
    printf("store %.1f\n", count / (t - start));
    fma_store_free(store);
    fma_string_free(key);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "fernet") == 0) return bench_fernet(atof(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "store") == 0) return bench_store(argv[2], atof(argv[3]));
    if (argc < 4 || strcmp(argv[1], "verify") != 0) return 2;
    const char *alg = argv[2];
    double seconds = atof(argv[3]);
    const char *cache = argc > 4 ? argv[4] : "0";
    char *jwk = NULL, *pub = NULL, *token = NULL;
    fma_error err;
    if (fma_jwk_generate(alg, NULL, &jwk, &err) != FMA_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
    int symmetric = alg[0] == 'H';
    if (!symmetric && fma_jwk_public(jwk, &pub, &err) != FMA_OK) return 1;
    char claims[128];
    snprintf(claims, sizeof claims, "{\"sub\":\"bench\",\"scope\":\"read\",\"exp\":%lld}", (long long)time(NULL) + 3600);
    if (fma_jwt_sign(claims, jwk, alg, NULL, &token, &err) != FMA_OK) return 1;
    char *config = malloc(strlen(jwk) + 256);
    sprintf(config, "{\"jwks\":{\"keys\":[%s]},\"algorithms\":[\"%s\"],\"cache_size\":%s}", symmetric ? jwk : pub, alg, cache);
    fma_verifier *v = NULL;
    if (fma_verifier_new(config, &v, &err) != FMA_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
    size_t len = strlen(token);
    long count = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            fma_access_token *at = NULL;
            if (fma_verifier_verify(v, token, len, &at, NULL) != FMA_OK) return 1;
            fma_access_token_free(at);
        }
        count += 64;
        t = now();
    }
    printf("%s %.1f\n", alg, count / (t - start));
    fma_verifier_free(v);
    free(config);
    fma_string_free(token);
    fma_string_free(pub);
    fma_string_free(jwk);
    return 0;
}
