#ifndef FMA_CHIREDIS_SHIM_H
#define FMA_CHIREDIS_SHIM_H
#include <sys/time.h>
#include <hiredis/hiredis.h>
#endif
