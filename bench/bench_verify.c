/* Single-thread verify throughput through the C ABI: bench_verify ALG SECONDS -> "ALG ops_per_second". */
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

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *alg = argv[1];
    double seconds = atof(argv[2]);
    const char *cache = argc > 3 ? argv[3] : "0";
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
