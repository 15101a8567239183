#ifndef FMA_FUZZ_DRIVER_H
#define FMA_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>
/* libFuzzer's driver (in the fuzzer runtime of -sanitize=fuzzer builds), for an executable whose
   main SwiftPM renames. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
