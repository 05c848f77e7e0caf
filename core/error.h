/* core/error.h - the two tiers of errors in reelfarm.
 *
 * Fatal errors (programmer errors, CUDA/cuBLAS/NCCL/MPI/HDF5/libav failures, out of memory) go
 * through one path, die_at(): it logs "rank r/N host gpu file:line func: stmt -> decoded error",
 * runs the registered abort hooks (the MPI layer registers one that calls MPI_Abort, so a fatal
 * error on one rank brings the whole job down instead of leaving the others hanging) and ends the
 * process. Every macro here is a do { } while (0) statement that evaluates its argument exactly
 * once, and none of them is compiled out in release builds.
 *
 * Recoverable errors (bad input files, impossible settings, a refused request) are returned as a
 * negative enum err_code; the function that detects the problem records one human-readable line
 * with err_set(), callers may add context in front with err_wrap(), and the CLI prints the line.
 *
 * The library-specific macros only name library symbols when they are expanded, so defining them
 * here does not make core/ depend on CUDA, MPI, HDF5 or FFmpeg: a file that uses MPI_CHECK must
 * itself include <mpi.h> (and by the layering rules that file lives in parallel/).
 */
#ifndef REELFARM_CORE_ERROR_H
#define REELFARM_CORE_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum err_code {
    ERR_OK = 0,
    ERR_IO = -1,          /* a file is missing, unreadable or cannot be written */
    ERR_FORMAT = -2,      /* malformed content: safetensors, JSON, HDF5 layout */
    ERR_SHAPE = -3,       /* a tensor has the wrong shape or dtype */
    ERR_MISSING = -4,     /* a required tensor, key or dataset is absent */
    ERR_UNEXPECTED = -5,  /* a tensor or key that nobody declared */
    ERR_INVALID_ARG = -6, /* a bad option value or an impossible setting */
    ERR_NOMEM = -7,       /* an allocation that may legitimately fail (huge input) */
    ERR_UNSUPPORTED = -8, /* valid input that this build does not handle */
    ERR_EXISTS = -9,      /* refusing to overwrite an existing output */
    ERR_INTERRUPTED = -10, /* stopped by SIGINT/SIGTERM after saving what resumes it */
};

/* Name of an error code ("format", "shape", ...). */
const char *err_code_name(int code);

/* Record the current error message (one line, no trailing newline) and return code. */
int err_set(enum err_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with context ("file.h5: " + old message); returns the current code. */
int err_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last recorded message of this thread ("" if none) and its code. */
const char *err_message(void);
int err_last_code(void);
void err_clear(void);

/* ---- fatal path ---- */

/* Log a fatal error with its location and end the job. Never returns. */
RF_NORETURN void die_at(const char *file, int line, const char *func, const char *stmt, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
RF_NORETURN void die_atv(const char *file, int line, const char *func, const char *stmt, const char *fmt, va_list ap);

/* Always-on assertion: CHECK(cond, "fmt", ...). */
#define CHECK(cond, ...)                                                                                         \
    do {                                                                                                         \
        if (!(cond)) die_at(__FILE__, __LINE__, __func__, #cond, __VA_ARGS__);                                   \
    } while (0)

/* Abort with a message at this location (unreachable states, unsupported internal combinations). */
#define FATAL(...) die_at(__FILE__, __LINE__, __func__, NULL, __VA_ARGS__)

/* CUDA runtime: stmt returns cudaError_t. */
#define CUDA_CHECK(stmt)                                                                                         \
    do {                                                                                                         \
        cudaError_t rf_cuda_err_ = (stmt);                                                                       \
        if (rf_cuda_err_ != cudaSuccess)                                                                         \
            die_at(__FILE__, __LINE__, __func__, #stmt, "%s: %s", cudaGetErrorName(rf_cuda_err_),                \
                   cudaGetErrorString(rf_cuda_err_));                                                            \
    } while (0)

/* cuBLAS / cuBLASLt: stmt returns cublasStatus_t. */
#define CUBLAS_CHECK(stmt)                                                                                       \
    do {                                                                                                         \
        cublasStatus_t rf_cublas_st_ = (stmt);                                                                   \
        if (rf_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                              \
            die_at(__FILE__, __LINE__, __func__, #stmt, "%s (%d)", cublasGetStatusString(rf_cublas_st_),         \
                   (int)rf_cublas_st_);                                                                          \
    } while (0)

/* NCCL: stmt returns ncclResult_t. */
#define NCCL_CHECK(stmt)                                                                                         \
    do {                                                                                                         \
        ncclResult_t rf_nccl_r_ = (stmt);                                                                        \
        if (rf_nccl_r_ != ncclSuccess)                                                                           \
            die_at(__FILE__, __LINE__, __func__, #stmt, "%s (%d)", ncclGetErrorString(rf_nccl_r_),               \
                   (int)rf_nccl_r_);                                                                             \
    } while (0)

/* MPI: stmt returns an MPI error code (communicators must use MPI_ERRORS_RETURN for this to see it). */
#define MPI_CHECK(stmt)                                                                                          \
    do {                                                                                                         \
        int rf_mpi_rc_ = (stmt);                                                                                 \
        if (rf_mpi_rc_ != MPI_SUCCESS) {                                                                         \
            char rf_mpi_msg_[MPI_MAX_ERROR_STRING];                                                              \
            int rf_mpi_len_ = 0;                                                                                 \
            if (MPI_Error_string(rf_mpi_rc_, rf_mpi_msg_, &rf_mpi_len_) != MPI_SUCCESS) rf_mpi_msg_[0] = '\0';   \
            die_at(__FILE__, __LINE__, __func__, #stmt, "MPI error %d: %s", rf_mpi_rc_, rf_mpi_msg_);            \
        }                                                                                                        \
    } while (0)

/* HDF5: stmt returns hid_t or herr_t; negative means failure. */
#define H5_CHECK(stmt)                                                                                           \
    do {                                                                                                         \
        long long rf_h5_rc_ = (long long)(stmt);                                                                 \
        if (rf_h5_rc_ < 0) die_at(__FILE__, __LINE__, __func__, #stmt, "HDF5 call failed (%lld)", rf_h5_rc_);    \
    } while (0)

/* FFmpeg libav*: stmt returns an int; negative is an AVERROR. */
#define AV_CHECK(stmt)                                                                                           \
    do {                                                                                                         \
        int rf_av_rc_ = (stmt);                                                                                  \
        if (rf_av_rc_ < 0) {                                                                                     \
            char rf_av_msg_[128];                                                                                \
            av_strerror(rf_av_rc_, rf_av_msg_, sizeof rf_av_msg_);                                               \
            die_at(__FILE__, __LINE__, __func__, #stmt, "%s (%d)", rf_av_msg_, rf_av_rc_);                       \
        }                                                                                                        \
    } while (0)

/* Recoverable propagation: run an int-returning call, return its negative code upward. */
#define TRY(stmt)                                                                                                \
    do {                                                                                                         \
        int rf_try_rc_ = (stmt);                                                                                 \
        if (rf_try_rc_ < 0) return rf_try_rc_;                                                                   \
    } while (0)

RF_END_DECLS

#endif /* REELFARM_CORE_ERROR_H */
