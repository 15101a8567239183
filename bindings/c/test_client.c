/* C tests of the OAuth client's contract (fma_oauth_client_*): configuration errors, the default
 * private cache, discovery failures, challenges, logout and the NULL rules. The sign-in itself is
 * exercised end to end from Swift against the OAuth proxy. Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <fastmcpauth.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

/* A loopback port with nothing listening on it (bound, then closed). */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        if (fd >= 0) close(fd);
        return 9;
    }
    close(fd);
    return ntohs(address.sin_port);
}

static void test_configuration_errors(void) {
    fma_error err;
    fma_oauth_client *client = (fma_oauth_client *)&err; /* must be reset to NULL on failure */
    CHECK(fma_oauth_client_new(NULL, &client, &err) == FMA_E_INVALID_ARGUMENT && client == NULL, "NULL config");
    const char *bad[] = {
        "not json",
        "{}",
        "{\"server_url\":\"http://example.com/mcp\",\"storage\":\"memory://\",\"encryption_keys\":[\"x\"]}",
        "{\"server_url\":\"https://m.example/mcp\",\"storage\":\"memory://\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"c\",\"client_secret\":\"s\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"redirect_port\":70000}",
        "{\"server_url\":\"https://m.example/mcp\",\"unknown_key\":1}",
        /* Machine to machine: each inconsistency is refused before anything is sent. */
        "{\"server_url\":\"https://m.example/mcp\",\"grant\":\"password\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"grant\":\"client_credentials\",\"client_id\":\"svc\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"svc\",\"client_issuer\":\"https://a.example\","
        "\"client_secret\":\"s\",\"token_endpoint_auth_method\":\"private_key_jwt\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"svc\",\"client_issuer\":\"https://a.example\","
        "\"client_secret\":\"s\",\"token_endpoint_auth_method\":\"tls_client_auth\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"svc\",\"client_issuer\":\"*\",\"client_secret\":\"s\"}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"svc\",\"client_issuer\":\"https://a.example\","
        "\"private_key\":{\"kty\":\"oct\",\"k\":\"c2VjcmV0LXNlY3JldA\"}}",
        "{\"server_url\":\"https://m.example/mcp\",\"client_id\":\"svc\",\"client_issuer\":\"https://a.example\","
        "\"private_key\":\"{not json\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fma_status status = fma_oauth_client_new(bad[i], &client, &err);
        CHECK(status == FMA_E_INVALID_CONFIG && client == NULL && err.status == status, "config %zu: %d %s", i,
              (int)status, err.message);
    }
    CHECK(fma_oauth_client_new("{}", NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL out");
    /* A consistent client_credentials configuration; the secret is in no message. */
    const char *service =
        "{\"server_url\":\"https://m.example/mcp\",\"grant\":\"client_credentials\",\"client_id\":\"svc\","
        "\"client_issuer\":\"https://a.example\",\"client_secret\":\"hunter2-secret\","
        "\"token_endpoint_auth_method\":\"client_secret_post\",\"storage\":\"memory://\","
        "\"encryption_keys\":[\"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\"]}";
    CHECK(fma_oauth_client_new(service, &client, &err) == FMA_OK && client != NULL, "client_credentials: %s",
          err.message);
    fma_oauth_client_free(client);
    const char *leaky = "{\"server_url\":\"https://m.example/mcp\",\"grant\":\"client_credentials\","
                        "\"client_secret\":\"hunter2-secret\"}";
    CHECK(fma_oauth_client_new(leaky, &client, &err) == FMA_E_INVALID_CONFIG && !strstr(err.message, "hunter2"),
          "the secret stays out of the message: %s", err.message);
}

static void test_default_cache_is_private(const char *scratch) {
    fma_error err;
    char cache[512], path[600];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    setenv("XDG_CACHE_HOME", cache, 1);
    fma_oauth_client *client = NULL;
    CHECK(fma_oauth_client_new("{\"server_url\":\"https://m.example/mcp\"}", &client, &err) == FMA_OK, "new: %s",
          err.message);
    struct stat info;
    const char *files[] = {"/fastmcpauth/key", "/fastmcpauth/tokens.db"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", cache, files[i]);
        CHECK(stat(path, &info) == 0 && (info.st_mode & 0777) == 0600, "%s is 0600", files[i]);
    }
    snprintf(path, sizeof path, "%s/fastmcpauth", cache);
    CHECK(stat(path, &info) == 0 && (info.st_mode & 0777) == 0700, "the cache directory is 0700");
    CHECK(fma_oauth_client_logout(client, &err) == FMA_OK, "logout of nothing");
    fma_oauth_client_free(client);
    unsetenv("XDG_CACHE_HOME");
}

static int browser_calls;
static void count_browser(const char *url, void *ctx) {
    (void)url;
    (*(int *)ctx)++;
}

static void test_calls_and_discovery_failure(void) {
    fma_error err;
    char config[512];
    snprintf(config, sizeof config,
             "{\"server_url\":\"http://127.0.0.1:%d/mcp\",\"storage\":\"memory://\","
             "\"encryption_keys\":[\"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\"],\"timeout\":2}",
             closed_port());
    fma_oauth_client *client = NULL;
    CHECK(fma_oauth_client_new(config, &client, &err) == FMA_OK, "new: %s", err.message);
    if (!client) return;
    CHECK(fma_oauth_client_set_browser(client, count_browser, &browser_calls, &err) == FMA_OK, "set_browser");
    char *token = (char *)config;
    /* Nothing listens: discovery fails, no browser is opened, *out is reset. */
    CHECK(fma_oauth_client_token(client, &token, &err) == FMA_E_DISCOVERY_FAILED && token == NULL, "token: %d %s",
          (int)err.status, err.message);
    CHECK(browser_calls == 0, "no browser for a server that cannot be discovered");
    CHECK(fma_oauth_client_challenge(client, 401, "Bearer error=\"invalid_token\"", &err) == FMA_OK, "401");
    CHECK(fma_oauth_client_challenge(client, 403, NULL, &err) == FMA_OK, "403 without a header");
    CHECK(fma_oauth_client_challenge(client, 500, NULL, &err) == FMA_E_INVALID_ARGUMENT, "500 is not a challenge");
    CHECK(fma_oauth_client_set_browser(client, NULL, NULL, &err) == FMA_OK, "restore the default browser");
    CHECK(fma_oauth_client_token(client, NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL out");
    fma_oauth_client_cancel(client);
    fma_oauth_client_free(client);
    /* NULL handles. */
    CHECK(fma_oauth_client_token(NULL, &token, &err) == FMA_E_INVALID_ARGUMENT, "NULL client");
    CHECK(fma_oauth_client_set_browser(NULL, NULL, NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL client");
    CHECK(fma_oauth_client_challenge(NULL, 401, NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL client");
    CHECK(fma_oauth_client_logout(NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL client");
    fma_oauth_client_cancel(NULL);
    fma_oauth_client_free(NULL);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "/tmp";
    test_configuration_errors();
    test_default_cache_is_private(scratch);
    test_calls_and_discovery_failure();
    printf("test_client: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
