#ifndef FMA_CJANSSON_SHIM_H
#define FMA_CJANSSON_SHIM_H
#include <jansson.h>

/* json_typeof is a macro. */
static inline json_type fma_json_type(const json_t *j) { return json_typeof(j); }
#endif
