/* Declarations only: the driver itself comes from libFuzzer when the fuzz build links it. */
#include "fuzz_driver.h"
