/* C tests of the resource-server facade (fma_auth_*, fma_response_*). Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <fastmcpauth.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static void test_remote_provider(void) {
    fma_error err;
    char *jwk = NULL, *pub = NULL, *token = NULL;
    if (fma_jwk_generate("ES256", NULL, &jwk, &err) != FMA_OK || fma_jwk_public(jwk, &pub, &err) != FMA_OK) {
        CHECK(0, "keygen");
        return;
    }
    char claims[256];
    snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"aud\":\"https://h.example/p/mcp\",\"scope\":\"read\",\"exp\":%lld}",
             (long long)time(NULL) + 300);
    CHECK(fma_jwt_sign(claims, jwk, "ES256", NULL, &token, &err) == FMA_OK, "sign");
    char config[2048];
    snprintf(config, sizeof config,
             "{\"provider\":\"remote\",\"base_url\":\"https://h.example/p\",\"required_scopes\":[\"read\"],"
             "\"authorization_servers\":[\"https://as.example\"],\"token_verifier\":{\"jwks\":{\"keys\":[%s]},"
             "\"algorithms\":[\"ES256\"],\"audience\":\"https://h.example/p/mcp\"}}", pub);
    fma_auth *auth = NULL;
    CHECK(fma_auth_new(config, &auth, &err) == FMA_OK, "auth_new: %s", err.message);
    if (!auth) return;

    fma_response *response = NULL;
    CHECK(fma_auth_handle(auth, "GET", "/.well-known/oauth-protected-resource/p/mcp", "{\"Accept\":\"application/json\"}", NULL, 0,
                          "127.0.0.1", &response, &err) == FMA_OK && response != NULL, "metadata route");
    if (response) {
        size_t length = 0;
        const uint8_t *body = fma_response_body(response, &length);
        json_t *doc = json_loadb((const char *)body, length, 0, NULL);
        CHECK(fma_response_status(response) == 200 && doc &&
                  strcmp(json_string_value(json_object_get(doc, "resource")), "https://h.example/p/mcp") == 0, "metadata document");
        CHECK(strcmp(fma_response_header(response, "content-type"), "application/json") == 0, "header lookup is case-insensitive");
        CHECK(fma_response_header_count(response) >= 2 && fma_response_header_name(response, 99) == NULL, "header count");
        json_decref(doc);
        fma_response_free(response);
    }
    CHECK(fma_auth_handle(auth, "POST", "/mcp", NULL, (const uint8_t *)"{}", 2, NULL, &response, &err) == FMA_OK && response == NULL,
          "not ours");

    char *description = NULL;
    CHECK(fma_auth_describe(auth, &description, &err) == FMA_OK && description, "describe");
    if (description) {
        json_t *doc = json_loads(description, 0, NULL);
        json_t *routes = json_object_get(doc, "routes");
        CHECK(doc && strcmp(json_string_value(json_object_get(doc, "provider")), "remote") == 0 &&
                  strcmp(json_string_value(json_object_get(doc, "resource_metadata")),
                         "https://h.example/.well-known/oauth-protected-resource/p/mcp") == 0 &&
                  json_array_size(routes) == 2 &&
                  strcmp(json_string_value(json_array_get(routes, 0)), "/.well-known/oauth-protected-resource/p/mcp") == 0,
              "description: %s", description);
        CHECK(strstr(description, "keys") == NULL, "the description carries no key material");
        json_decref(doc);
        fma_string_free(description);
    }
    CHECK(fma_auth_describe(NULL, &description, &err) == FMA_E_INVALID_ARGUMENT && description == NULL, "describe NULL");

    fma_access_token *at = NULL;
    fma_response *challenge = NULL;
    char header[1200];
    snprintf(header, sizeof header, "Bearer %s", token);
    CHECK(fma_auth_authenticate(auth, header, NULL, "/mcp", &at, &challenge, &err) == FMA_OK && at && !challenge, "authenticated");
    if (at) CHECK(strcmp(fma_access_token_subject(at), "alice") == 0, "subject");
    fma_access_token_free(at);
    at = NULL;
    CHECK(fma_auth_authenticate(auth, NULL, NULL, NULL, &at, &challenge, &err) == FMA_OK && !at && challenge, "no token");
    if (challenge) {
        CHECK(fma_response_status(challenge) == 401, "401");
        CHECK(strcmp(fma_response_header(challenge, "WWW-Authenticate"),
                     "Bearer resource_metadata=\"https://h.example/.well-known/oauth-protected-resource/p/mcp\", scope=\"read\"") == 0,
              "challenge: %s", fma_response_header(challenge, "WWW-Authenticate"));
        fma_response_free(challenge);
        challenge = NULL;
    }
    CHECK(fma_auth_authenticate(auth, header, "admin", NULL, &at, &challenge, &err) == FMA_OK && challenge &&
              fma_response_status(challenge) == 403, "403");
    fma_response_free(challenge);
    challenge = NULL;
    CHECK(fma_auth_authenticate(auth, "Bearer nope", NULL, NULL, &at, &challenge, &err) == FMA_OK && challenge &&
              strstr(fma_response_header(challenge, "WWW-Authenticate"), "error=\"invalid_token\"") != NULL, "invalid token");
    fma_response_free(challenge);
    fma_auth_free(auth);
    fma_auth_free(NULL);
    fma_response_free(NULL);
    CHECK(fma_response_status(NULL) == 0, "NULL response");
    fma_string_free(token);
    fma_string_free(pub);
    fma_string_free(jwk);
}

static void test_from_env(void) {
    fma_error err;
    fma_auth *auth = (fma_auth *)1;
    unsetenv("FASTMCP_SERVER_AUTH");
    CHECK(fma_auth_new_from_env(NULL, NULL, &auth, &err) == FMA_OK && auth == NULL, "no provider: no auth");
    setenv("FASTMCP_SERVER_AUTH", "static", 1);
    setenv("FASTMCP_SERVER_AUTH_STATIC_TOKENS", "{\"dev\":{\"client_id\":\"d\",\"scopes\":[\"read\"]}}", 1);
    CHECK(fma_auth_new_from_env(NULL, "{\"base_url\":\"http://127.0.0.1:8000\"}", &auth, &err) == FMA_OK && auth, "static from env: %s",
          err.message);
    fma_access_token *at = NULL;
    fma_response *challenge = NULL;
    CHECK(fma_auth_authenticate(auth, "Bearer dev", NULL, NULL, &at, &challenge, &err) == FMA_OK && at &&
              strcmp(fma_access_token_client_id(at), "d") == 0, "static token");
    fma_access_token_free(at);
    fma_auth_free(auth);
    setenv("FASTMCP_SERVER_AUTH", "fastmcp.server.auth.providers.workos.WorkOSProvider", 1);
    CHECK(fma_auth_new_from_env(NULL, NULL, &auth, &err) == FMA_E_INVALID_CONFIG && strstr(err.message, "base_url") != NULL,
          "the WorkOS proxy names what it lacks: %s", err.message);
    unsetenv("FASTMCP_SERVER_AUTH");
    CHECK(fma_auth_new("{\"provider\":\"jwt\"}", &auth, &err) == FMA_E_INVALID_CONFIG && auth == NULL, "missing base_url");
}

/* The WorkOS OAuth proxy from FastMCP's variables: metadata, registration, and an attack. */
static void test_workos_proxy_from_env(void) {
    fma_error err;
    fma_auth *auth = NULL;
    setenv("FASTMCP_SERVER_AUTH", "fastmcp.server.auth.providers.workos.WorkOSProvider", 1);
    setenv("FASTMCP_SERVER_AUTH_WORKOS_CLIENT_ID", "client_01", 1);
    setenv("FASTMCP_SERVER_AUTH_WORKOS_CLIENT_SECRET", "sk_test_secret", 1);
    setenv("FASTMCP_SERVER_AUTH_WORKOS_AUTHKIT_DOMAIN", "https://demo.authkit.app", 1);
    setenv("FASTMCP_SERVER_AUTH_WORKOS_BASE_URL", "https://mcp.example.com", 1);
    setenv("FASTMCP_SERVER_AUTH_WORKOS_REQUIRED_SCOPES", "openid,profile", 1);
    CHECK(fma_auth_new_from_env(NULL, NULL, &auth, &err) == FMA_OK && auth, "workos from env: %s", err.message);
    if (!auth) return;
    fma_response *response = NULL;
    CHECK(fma_auth_handle(auth, "GET", "/.well-known/oauth-authorization-server", NULL, NULL, 0, NULL, &response, &err) == FMA_OK &&
              response, "AS metadata");
    if (response) {
        size_t length = 0;
        const uint8_t *body = fma_response_body(response, &length);
        json_t *doc = json_loadb((const char *)body, length, 0, NULL);
        json_t *methods = json_object_get(doc, "code_challenge_methods_supported");
        CHECK(doc && strcmp(json_string_value(json_object_get(doc, "issuer")), "https://mcp.example.com/") == 0 &&
                  json_array_size(methods) == 1 && strcmp(json_string_value(json_array_get(methods, 0)), "S256") == 0 &&
                  json_is_true(json_object_get(doc, "authorization_response_iss_parameter_supported")),
              "metadata: issuer with trailing slash, S256 only");
        json_decref(doc);
        fma_response_free(response);
    }
    const char *good = "{\"redirect_uris\":[\"http://127.0.0.1:5000/callback\"],\"client_name\":\"C test\"}";
    CHECK(fma_auth_handle(auth, "POST", "/register", "{\"Content-Type\":\"application/json\"}", (const uint8_t *)good, strlen(good),
                          "203.0.113.9", &response, &err) == FMA_OK && response && fma_response_status(response) == 201, "register");
    fma_response_free(response);
    const char *evil = "{\"redirect_uris\":[\"javascript:alert(1)\"]}";
    CHECK(fma_auth_handle(auth, "POST", "/register", NULL, (const uint8_t *)evil, strlen(evil), "203.0.113.9", &response, &err) == FMA_OK &&
              response && fma_response_status(response) == 400, "javascript: refused");
    if (response) {
        size_t length = 0;
        CHECK(strstr((const char *)fma_response_body(response, &length), "invalid_redirect_uri") != NULL, "error code");
    }
    fma_response_free(response);
    /* The registered client's authorization request goes to the consent page; an unregistered
     * redirect URI is a 400 that redirects nowhere; a made-up code is invalid_grant. */
    CHECK(fma_auth_handle(auth, "POST", "/register", NULL, (const uint8_t *)good, strlen(good), "203.0.113.9", &response, &err) == FMA_OK &&
              response && fma_response_status(response) == 201, "register again");
    char client_id[128] = "";
    if (response) {
        size_t length = 0;
        const uint8_t *body = fma_response_body(response, &length);
        json_t *doc = json_loadb((const char *)body, length, 0, NULL);
        snprintf(client_id, sizeof client_id, "%s", json_string_value(json_object_get(doc, "client_id")));
        json_decref(doc);
        fma_response_free(response);
    }
    char target[512];
    snprintf(target, sizeof target, "/authorize?response_type=code&client_id=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A5000%%2Fcallback"
             "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=c1", client_id);
    CHECK(fma_auth_handle(auth, "GET", target, NULL, NULL, 0, NULL, &response, &err) == FMA_OK && response &&
              fma_response_status(response) == 302 &&
              strncmp(fma_response_header(response, "Location"), "https://mcp.example.com/consent?txn_id=", 39) == 0, "authorize -> consent");
    fma_response_free(response);
    snprintf(target, sizeof target, "/authorize?response_type=code&client_id=%s&redirect_uri=https%%3A%%2F%%2Fevil.example%%2Fcb"
             "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", client_id);
    CHECK(fma_auth_handle(auth, "GET", target, NULL, NULL, 0, NULL, &response, &err) == FMA_OK && response &&
              fma_response_status(response) == 400 && fma_response_header(response, "Location") == NULL, "unregistered redirect URI");
    fma_response_free(response);
    char form[256];
    snprintf(form, sizeof form, "grant_type=authorization_code&code=made-up&redirect_uri=x&code_verifier=y&client_id=%s", client_id);
    CHECK(fma_auth_handle(auth, "POST", "/token", "{\"Content-Type\":\"application/x-www-form-urlencoded\"}", (const uint8_t *)form,
                          strlen(form), NULL, &response, &err) == FMA_OK && response && fma_response_status(response) == 400, "made-up code");
    if (response) {
        size_t length = 0;
        CHECK(strstr((const char *)fma_response_body(response, &length), "\"invalid_grant\"") != NULL, "invalid_grant");
    }
    fma_response_free(response);

    fma_access_token *at = NULL;
    fma_response *challenge = NULL;
    CHECK(fma_auth_authenticate(auth, "Bearer not-ours", NULL, NULL, &at, &challenge, &err) == FMA_OK && !at && challenge &&
              fma_response_status(challenge) == 401, "a foreign token is refused");
    fma_response_free(challenge);
    fma_auth_free(auth);
    unsetenv("FASTMCP_SERVER_AUTH");
}

int main(void) {
    test_remote_provider();
    test_from_env();
    test_workos_proxy_from_env();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
