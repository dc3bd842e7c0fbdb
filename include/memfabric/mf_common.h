/*
 * Common definitions of the MemFabric public API: the export macro and the
 * C++ guards every public header uses.
 */
#ifndef MEMFABRIC_MF_COMMON_H
#define MEMFABRIC_MF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(MF_BUILDING_LIBRARY)
#define MF_API __attribute__((visibility("default")))
#else
#define MF_API
#endif

#ifdef __cplusplus
#define MF_BEGIN_DECLS extern "C" {
#define MF_END_DECLS   }
#else
#define MF_BEGIN_DECLS
#define MF_END_DECLS
#endif

#endif /* MEMFABRIC_MF_COMMON_H */
