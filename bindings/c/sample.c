/* Quick start: generate a key, sign a token, verify it, read its claims. */
#include <fastmcpauth.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(void) {
    fma_error err;
    char *jwk = NULL, *public_jwk = NULL, *token = NULL;
    if (fma_jwk_generate("ES256", NULL, &jwk, &err) != FMA_OK) {
        fprintf(stderr, "keygen: %s: %s\n", fma_status_name(err.status), err.message);
        return 1;
    }
    if (fma_jwk_public(jwk, &public_jwk, &err) != FMA_OK) return 1;

    char claims[256];
    snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"scope\":\"read write\",\"exp\":%lld}",
             (long long)time(NULL) + 300);
    if (fma_jwt_sign(claims, jwk, "ES256", NULL, &token, &err) != FMA_OK) return 1;

    char config[2048];
    snprintf(config, sizeof config, "{\"jwks\":{\"keys\":[%s]},\"algorithms\":[\"ES256\"],\"required_scopes\":[\"read\"]}",
             public_jwk);
    fma_verifier *verifier = NULL;
    if (fma_verifier_new(config, &verifier, &err) != FMA_OK) {
        fprintf(stderr, "verifier: %s: %s\n", fma_status_name(err.status), err.message);
        return 1;
    }
    fma_access_token *access = NULL;
    if (fma_verifier_verify(verifier, token, strlen(token), &access, &err) != FMA_OK) {
        fprintf(stderr, "verify: %s: %s\n", fma_status_name(err.status), err.message);
        return 1;
    }
    json_t *parsed = json_loads(fma_access_token_claims_json(access), 0, NULL);
    printf("libfastmcpauth %s: verified token of %s (client %s, %zu scopes, sub=%s)\n", fma_version_string(),
           fma_access_token_subject(access), fma_access_token_client_id(access), fma_access_token_scope_count(access),
           json_string_value(json_object_get(parsed, "sub")));
    json_decref(parsed);

    fma_access_token_free(access);
    fma_verifier_free(verifier);
    fma_string_free(token);
    fma_string_free(public_jwk);
    fma_string_free(jwk);
    return 0;
}
