/* A small MCP client in C: prints a valid access token for a protected MCP server, as
 * `fastmcpauth token` does, through the fma_oauth_client_* calls alone.
 *
 *   oauth_token CONFIG_JSON [STATUS WWW_AUTHENTICATE]...
 *
 * Prints the token (cached, refreshed, or after a sign-in: the browser is $BROWSER, else xdg-open,
 * else the URL on stderr). Each STATUS/WWW_AUTHENTICATE pair after the configuration is a 401 or
 * 403 the server answered: it is handed to the client and the token asked for again, one line per
 * token. On failure: "error: <status> <message>" on stderr and the status as the exit code.
 * bindings/python/tests/test_c_client.py runs it against our host and an authlib server. */
#include <fastmcpauth.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const fma_error *err) {
    fprintf(stderr, "error: %d %s\n", (int)err->status, err->message);
    return (int)err->status;
}

static int print_token(fma_oauth_client *client, fma_error *err) {
    char *token = NULL;
    if (fma_oauth_client_token(client, &token, err) != FMA_OK) return 0;
    printf("%s\n", token);
    fflush(stdout);
    fma_string_free(token);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc % 2 != 0) {
        fprintf(stderr, "usage: %s CONFIG_JSON [STATUS WWW_AUTHENTICATE]...\n", argv[0]);
        return 2;
    }
    fma_error err;
    fma_oauth_client *client = NULL;
    if (fma_oauth_client_new(argv[1], &client, &err) != FMA_OK) return fail(&err);
    int status = 0;
    if (!print_token(client, &err)) status = fail(&err);
    for (int i = 2; status == 0 && i + 1 < argc; i += 2) {
        if (fma_oauth_client_challenge(client, atoi(argv[i]), argv[i + 1], &err) != FMA_OK ||
            !print_token(client, &err)) {
            status = fail(&err);
        }
    }
    fma_oauth_client_free(client);
    return status;
}
