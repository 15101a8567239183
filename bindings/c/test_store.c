/* C tests of the Fernet and token-store functions. Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <fastmcpauth.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* The Fernet spec's generate vector: its token decrypts and carries its timestamp. */
static void test_fernet_vectors(const char *vectors) {
    char path[1200];
    snprintf(path, sizeof path, "%s/fernet/verify.json", vectors);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    CHECK(doc != NULL, "cannot read %s", path);
    if (!doc) return;
    json_t *v = json_array_get(doc, 0);
    const char *secret = json_string_value(json_object_get(v, "secret"));
    fma_fernet *f = NULL;
    fma_error err;
    CHECK(fma_fernet_new(&secret, 1, &f, &err) == FMA_OK, "fernet_new: %s", err.message);
    uint8_t *data = NULL;
    size_t length = 0;
    /* 1985-10-26T01:20:01-07:00 = 499162801 */
    fma_status st = fma_fernet_decrypt(f, json_string_value(json_object_get(v, "token")), 60, 499162801, &data, &length, &err);
    CHECK(st == FMA_OK && length == 5 && memcmp(data, "hello", 5) == 0, "verify vector: %s", fma_status_name(st));
    fma_bytes_free(data, length);
    st = fma_fernet_decrypt(f, json_string_value(json_object_get(v, "token")), 60, 499162801 + 120, &data, &length, &err);
    CHECK(st == FMA_E_EXPIRED && data == NULL, "expired: %s", fma_status_name(st));
    int64_t stamp = 0;
    CHECK(fma_fernet_extract_timestamp(f, json_string_value(json_object_get(v, "token")), &stamp, &err) == FMA_OK && stamp == 499162800,
          "timestamp");
    fma_fernet_free(f);
    json_decref(doc);
}

static void test_fernet_round_trip_and_rotation(void) {
    char *k1 = NULL, *k2 = NULL;
    fma_error err;
    CHECK(fma_fernet_generate_key(&k1, &err) == FMA_OK && strlen(k1) == 44, "generate");
    CHECK(fma_fernet_generate_key(&k2, &err) == FMA_OK, "generate 2");
    const char *old_keys[] = {k1};
    const char *both[] = {k2, k1};
    fma_fernet *old = NULL, *multi = NULL;
    CHECK(fma_fernet_new(old_keys, 1, &old, &err) == FMA_OK, "old");
    CHECK(fma_fernet_new(both, 2, &multi, &err) == FMA_OK, "multi");
    uint8_t payload[3000];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i * 31);
    size_t sizes[] = {0, 1, 16, 17, 3000};
    for (size_t s = 0; s < 5; s++) {
        char *token = NULL;
        CHECK(fma_fernet_encrypt(old, payload, sizes[s], 1000, &token, &err) == FMA_OK, "encrypt %zu", sizes[s]);
        uint8_t *out = NULL;
        size_t length = 0;
        CHECK(fma_fernet_decrypt(multi, token, FMA_NO_TTL, FMA_TIME_NOW, &out, &length, &err) == FMA_OK && length == sizes[s] &&
                  out != NULL && memcmp(out, payload, length) == 0, "decrypt %zu", sizes[s]);
        fma_bytes_free(out, length);
        char *rotated = NULL;
        CHECK(fma_fernet_rotate(multi, token, &rotated, &err) == FMA_OK, "rotate");
        CHECK(fma_fernet_decrypt(old, rotated, FMA_NO_TTL, FMA_TIME_NOW, &out, &length, &err) == FMA_E_BAD_SIGNATURE, "old key refused");
        int64_t stamp = 0;
        CHECK(fma_fernet_extract_timestamp(multi, rotated, &stamp, &err) == FMA_OK && stamp == 1000, "rotation keeps timestamp");
        fma_string_free(rotated);
        fma_string_free(token);
    }
    const char *bad[] = {"not a key"};
    fma_fernet *nope = (fma_fernet *)1;
    CHECK(fma_fernet_new(bad, 1, &nope, &err) == FMA_E_INVALID_KEY && nope == NULL, "bad key");
    uint8_t *out = NULL;
    size_t length = 0;
    CHECK(fma_fernet_decrypt(old, "!!!", FMA_NO_TTL, FMA_TIME_NOW, &out, &length, &err) == FMA_E_MALFORMED_BASE64, "bad base64");
    fma_fernet_free(old);
    fma_fernet_free(multi);
    fma_fernet_free(NULL);
    fma_bytes_free(NULL, 0);
    fma_string_free(k1);
    fma_string_free(k2);
}

struct race { fma_store *store; int taken; int won; int errors; };

static void *race_worker(void *arg) {
    struct race *r = arg;
    for (int i = 0; i < 50; i++) {
        char key[32];
        snprintf(key, sizeof key, "code%d", i);
        char *value = NULL;
        if (fma_store_take(r->store, "codes", key, &value, NULL) != FMA_OK) r->errors++;
        if (value) r->taken++;
        fma_string_free(value);
        int stored = 0;
        if (fma_store_put_if_absent(r->store, "once", key, "{\"w\":1}", NULL, &stored, NULL) != FMA_OK) r->errors++;
        r->won += stored;
        int64_t count = 0;
        if (fma_store_increment(r->store, "limits", "shared", 1, NULL, &count, NULL) != FMA_OK || count < 1) r->errors++;
    }
    return NULL;
}

static void test_store(const char *url) {
    fma_error err;
    char *key = NULL;
    if (fma_fernet_generate_key(&key, &err) != FMA_OK) return;
    char options[256];
    snprintf(options, sizeof options, "{\"encryption_keys\":[\"%s\"]}", key);
    fma_store *store = NULL;
    CHECK(fma_store_new(url, options, &store, &err) == FMA_OK, "%s: open: %s", url, err.message);
    if (!store) return;
    double ttl = 60;
    CHECK(fma_store_put(store, "c", "k", "{\"a\":1,\"s\":\"caf\\u00e9\"}", NULL, &err) == FMA_OK, "put: %s", err.message);
    CHECK(fma_store_put(store, "c", "t", "{\"b\":2}", &ttl, &err) == FMA_OK, "put ttl");
    char *value = NULL;
    CHECK(fma_store_get(store, "c", "k", &value, &err) == FMA_OK && value != NULL, "get");
    json_t *parsed = value ? json_loads(value, 0, NULL) : NULL;
    CHECK(parsed && json_integer_value(json_object_get(parsed, "a")) == 1 &&
              strcmp(json_string_value(json_object_get(parsed, "s")), "caf\xc3\xa9") == 0, "value round-trips");
    json_decref(parsed);
    fma_string_free(value);
    CHECK(fma_store_get(store, "c", "missing", &value, &err) == FMA_OK && value == NULL, "missing is NULL");
    int found = 0;
    double seconds = 0;
    CHECK(fma_store_ttl(store, "c", "t", &found, &seconds, &err) == FMA_OK && found == 1 && seconds > 59 && seconds <= 60, "ttl");
    CHECK(fma_store_ttl(store, "c", "k", &found, &seconds, &err) == FMA_OK && found == 1 && seconds == -1, "no ttl");
    CHECK(fma_store_ttl(store, "c", "nope", &found, &seconds, &err) == FMA_OK && found == 0, "ttl missing");
    char *keys = NULL;
    CHECK(fma_store_keys(store, "c", &keys, &err) == FMA_OK && strcmp(keys, "[\"k\",\"t\"]") == 0, "keys: %s", keys ? keys : "");
    fma_string_free(keys);
    int flag = 0;
    CHECK(fma_store_put_if_absent(store, "c", "k", "{}", NULL, &flag, &err) == FMA_OK && flag == 0, "put_if_absent existing");
    CHECK(fma_store_compare_and_delete(store, "c", "k", "{\"a\":2}", &flag, &err) == FMA_OK && flag == 0, "cad mismatch");
    CHECK(fma_store_compare_and_delete(store, "c", "k", "{\"s\":\"caf\\u00e9\",\"a\":1}", &flag, &err) == FMA_OK && flag == 1, "cad match");
    CHECK(fma_store_take(store, "c", "t", &value, &err) == FMA_OK && value != NULL, "take");
    fma_string_free(value);
    CHECK(fma_store_take(store, "c", "t", &value, &err) == FMA_OK && value == NULL, "take twice");
    CHECK(fma_store_delete(store, "c", "t", &flag, &err) == FMA_OK && flag == 0, "delete missing");
    char *holder = NULL, *again = NULL;
    CHECK(fma_store_acquire_lease(store, "refresh", 30, &holder, &err) == FMA_OK && holder != NULL, "lease");
    CHECK(fma_store_acquire_lease(store, "refresh", 30, &again, &err) == FMA_OK && again == NULL, "lease held");
    CHECK(fma_store_release_lease(store, "refresh", holder, &flag, &err) == FMA_OK && flag == 1, "release");
    fma_string_free(holder);
    /* Compare-and-swap: NULL expected means absent; a stale expectation changes nothing. */
    CHECK(fma_store_compare_and_swap(store, "g", "x", NULL, "{\"s\":1}", &ttl, &flag, &err) == FMA_OK && flag == 1,
          "cas absent: %s", err.message);
    CHECK(fma_store_compare_and_swap(store, "g", "x", NULL, "{\"s\":9}", NULL, &flag, &err) == FMA_OK && flag == 0,
          "cas absent when present");
    CHECK(fma_store_compare_and_swap(store, "g", "x", "{\"s\":2}", "{\"s\":9}", NULL, &flag, &err) == FMA_OK &&
              flag == 0, "cas stale");
    CHECK(fma_store_compare_and_swap(store, "g", "x", "{\"s\":1}", "{\"s\":2}", NULL, &flag, &err) == FMA_OK &&
              flag == 1, "cas match");
    CHECK(fma_store_get(store, "g", "x", &value, &err) == FMA_OK && value && strcmp(value, "{\"s\":2}") == 0,
          "cas wrote: %s", value ? value : "(null)");
    fma_string_free(value);
    CHECK(fma_store_compare_and_swap(store, "g", "x", "{\"s\":2}", "[1]", NULL, &flag, &err) == FMA_E_INVALID_ARGUMENT,
          "cas non-object");
    CHECK(fma_store_compare_and_swap(store, "g", "x", "{\"s\":2}", "{}", NULL, NULL, &err) == FMA_OK, "cas NULL out");
    /* Counters. */
    int64_t counted = 0;
    CHECK(fma_store_increment(store, "n", "a", 2, &ttl, &counted, &err) == FMA_OK && counted == 2, "increment new");
    CHECK(fma_store_increment(store, "n", "a", 3, NULL, &counted, &err) == FMA_OK && counted == 5, "increment adds");
    CHECK(fma_store_increment(store, "g", "x", 1, NULL, &counted, &err) == FMA_E_CORRUPTED_VALUE, "not a counter");
    double huge = 1e17, nan = NAN;
    CHECK(fma_store_increment(store, "n", "b", 1, &huge, &counted, &err) == FMA_E_INVALID_ARGUMENT, "ttl 1e17");
    CHECK(fma_store_put(store, "n", "b", "{}", &huge, &err) == FMA_E_INVALID_ARGUMENT, "put ttl 1e17");
    CHECK(fma_store_put(store, "n", "b", "{}", &nan, &err) == FMA_E_INVALID_ARGUMENT, "put ttl NaN");
    double zero = 0;
    CHECK(fma_store_put(store, "c", "k", "{}", &zero, &err) == FMA_E_INVALID_ARGUMENT, "ttl 0 refused");
    CHECK(fma_store_put(store, "c", "k", "[1]", NULL, &err) == FMA_E_INVALID_ARGUMENT, "non-object refused");
    CHECK(fma_store_put(store, NULL, "k", "{}", NULL, &err) == FMA_E_INVALID_ARGUMENT, "NULL collection");
    size_t count = 0;
    CHECK(fma_store_put(store, "gone", "a", "{}", NULL, &err) == FMA_OK && fma_store_delete_collection(store, "gone", &count, &err) == FMA_OK &&
              count == 1, "delete collection");

    /* 8 threads on one handle. */
    for (int i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "code%d", i);
        if (fma_store_put(store, "codes", k, "{\"n\":1}", NULL, NULL) != FMA_OK) CHECK(0, "seed");
    }
    pthread_t threads[8];
    struct race races[8];
    for (int i = 0; i < 8; i++) {
        races[i] = (struct race){store, 0, 0, 0};
        pthread_create(&threads[i], NULL, race_worker, &races[i]);
    }
    int taken = 0, won = 0, errors = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        taken += races[i].taken;
        won += races[i].won;
        errors += races[i].errors;
    }
    CHECK(errors == 0 && taken == 50 && won == 50, "%s: race taken=%d won=%d errors=%d", url, taken, won, errors);
    int64_t total = -1;
    CHECK(fma_store_increment(store, "limits", "shared", 0, NULL, &total, &err) == FMA_OK && total == 400,
          "%s: 8 threads x 50 increments = %lld", url, (long long)total);
    fma_store_free(store);
    fma_store_free(NULL);

    /* A wrong key is undecryptable_value (only for persistent stores). */
    if (strncmp(url, "sqlite", 6) == 0) {
        fma_store *other = NULL;
        char *other_key = NULL;
        if (fma_fernet_generate_key(&other_key, &err) == FMA_OK) {
            snprintf(options, sizeof options, "{\"encryption_keys\":[\"%s\"]}", other_key);
            CHECK(fma_store_new(url, options, &other, &err) == FMA_OK, "reopen");
            CHECK(fma_store_get(other, "codes", "nothing", &value, &err) == FMA_OK && value == NULL, "miss");
            if (fma_store_put(other, "x", "y", "{}", NULL, &err) == FMA_OK) {
                fma_store *first = NULL;
                snprintf(options, sizeof options, "{\"encryption_keys\":[\"%s\"]}", key);
                if (fma_store_new(url, options, &first, &err) == FMA_OK) {
                    CHECK(fma_store_get(first, "x", "y", &value, &err) == FMA_E_UNDECRYPTABLE_VALUE, "wrong key: %s", fma_status_name(err.status));
                    fma_store_free(first);
                }
            }
            fma_store_free(other);
            fma_string_free(other_key);
        }
    }
    fma_string_free(key);
}

int main(int argc, char **argv) {
    const char *vectors = argc > 1 ? argv[1] : "Tests/vectors";
    const char *directory = argc > 2 ? argv[2] : "/tmp";
    test_fernet_vectors(vectors);
    test_fernet_round_trip_and_rotation();
    test_store("memory://");
    char url[1200];
    snprintf(url, sizeof url, "sqlite:///%s/c-test-%d.db", directory, (int)getpid());
    test_store(url);
    fma_store *bad = (fma_store *)1;
    fma_error err;
    CHECK(fma_store_new("ftp://x", NULL, &bad, &err) == FMA_E_INVALID_CONFIG && bad == NULL, "bad url");
    CHECK(fma_store_new("memory://", "{\"on_plaintext\":\"ignore\"}", &bad, &err) == FMA_E_INVALID_CONFIG, "bad option");
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
