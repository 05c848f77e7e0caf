/* core/cdefs.h - what lets reelfarm's C11 headers be included from C++ (the CUDA .cu files):
 * C linkage guards and a noreturn spelling both languages accept. */
#ifndef REELFARM_CORE_CDEFS_H
#define REELFARM_CORE_CDEFS_H

#ifdef __cplusplus
#define RF_BEGIN_DECLS extern "C" {
#define RF_END_DECLS }
#define RF_NORETURN [[noreturn]]
#else
#define RF_BEGIN_DECLS
#define RF_END_DECLS
#define RF_NORETURN _Noreturn
#endif

#endif /* REELFARM_CORE_CDEFS_H */
