/* The boundary the Swift side writes across: the layout of fma_error and the size of fma_status
 * (checked at compile time and by observing what the library writes), and the version the
 * header and the loaded library report. Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <fastmcpauth.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

/* The Swift side stores the status as an Int32 at offset 0 and the message right after it. */
_Static_assert(sizeof(fma_status) == sizeof(int32_t), "fma_status must be 32 bits");
_Static_assert(offsetof(fma_error, status) == 0, "fma_error.status must come first");
_Static_assert(offsetof(fma_error, message) == sizeof(int32_t), "fma_error.message must follow the status");
_Static_assert(sizeof(((fma_error *)0)->message) == FMA_ERROR_MESSAGE_SIZE, "message size");
_Static_assert(FMA_ERROR_MESSAGE_SIZE == 256, "the Swift side writes at most 256 bytes");
_Static_assert(sizeof(fma_error) == sizeof(int32_t) + FMA_ERROR_MESSAGE_SIZE, "no padding in fma_error");

/* fma_error with guard bytes on both sides: the library must write inside the struct only. */
struct guarded_error {
    unsigned char before[64];
    fma_error err;
    unsigned char after[64];
};

static int all_bytes(const unsigned char *bytes, size_t count, unsigned char value) {
    for (size_t i = 0; i < count; i++)
        if (bytes[i] != value) return 0;
    return 1;
}

static void test_error_is_written_inside_its_struct(void) {
    /* An unknown configuration key is named in the message: 1000 bytes of it overflow 256. */
    char config[1100];
    memset(config, 0, sizeof config);
    strcpy(config, "{\"");
    memset(config + 2, 'k', 1000);
    strcpy(config + 1002, "\":1}");
    struct guarded_error g;
    memset(&g, 0xA5, sizeof g);
    fma_verifier *verifier = (fma_verifier *)&g; /* must be overwritten with NULL */
    fma_status status = fma_verifier_new(config, &verifier, &g.err);
    CHECK(status == FMA_E_INVALID_CONFIG, "status %d", (int)status);
    CHECK(verifier == NULL, "out handle is NULL on failure");
    CHECK((int)g.err.status == (int)status, "err.status %d equals the return value", (int)g.err.status);
    size_t length = strnlen(g.err.message, FMA_ERROR_MESSAGE_SIZE);
    CHECK(length > 0 && length < FMA_ERROR_MESSAGE_SIZE, "message NUL-terminated inside the buffer (%zu)", length);
    CHECK(all_bytes(g.before, sizeof g.before, 0xA5), "nothing written before fma_error");
    CHECK(all_bytes(g.after, sizeof g.after, 0xA5), "nothing written after fma_error");

    /* Success resets the struct to FMA_OK with an empty message. */
    memset(&g, 0xA5, sizeof g);
    status = fma_verifier_new("{\"public_key\":\"0123456789abcdef0123456789abcdef\",\"algorithm\":\"HS256\"}",
                              &verifier, &g.err);
    CHECK(status == FMA_OK && g.err.status == FMA_OK && g.err.message[0] == '\0', "success clears err");
    CHECK(all_bytes(g.after, sizeof g.after, 0xA5), "nothing written after fma_error on success");
    fma_verifier_free(verifier);

    /* A NULL err is allowed everywhere. */
    verifier = NULL;
    CHECK(fma_verifier_new("not json", &verifier, NULL) == FMA_E_INVALID_CONFIG && verifier == NULL, "NULL err");
}

static void test_version_of_header_and_library_agree(const char *expected) {
    CHECK(strcmp(fma_version_string(), FMA_VERSION_STRING) == 0, "library %s, header %s", fma_version_string(),
          FMA_VERSION_STRING);
    CHECK(fma_version_number() == (unsigned)FMA_VERSION_NUM, "number 0x%06x, header 0x%06x", fma_version_number(),
          (unsigned)FMA_VERSION_NUM);
    char composed[32];
    snprintf(composed, sizeof composed, "%d.%d.%d", FMA_VERSION_MAJOR, FMA_VERSION_MINOR, FMA_VERSION_PATCH);
    CHECK(strcmp(composed, FMA_VERSION_STRING) == 0, "macros %s vs %s", composed, FMA_VERSION_STRING);
    if (expected) CHECK(strcmp(expected, FMA_VERSION_STRING) == 0, "VERSION file %s, header %s", expected,
                        FMA_VERSION_STRING);
}

static void test_status_names_never_null(void) {
    for (int status = -5; status < 200; status++) {
        CHECK(fma_status_name((fma_status)status) != NULL && fma_status_string((fma_status)status) != NULL,
              "status %d has a name and a sentence", status);
    }
    CHECK(strcmp(fma_status_name((fma_status)9999), "unknown_status") == 0, "unknown status name");
}

int main(int argc, char **argv) {
    test_error_is_written_inside_its_struct();
    test_version_of_header_and_library_agree(argc > 1 ? argv[1] : NULL);
    test_status_names_never_null();
    printf("test_abi: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
