/* core/tensor.h - the tensor descriptor shared by every layer.
 *
 * A descriptor, not a graph node: dtype, device, shape and strides (in elements, PyTorch order,
 * outermost first) and a data pointer it does not own. All index arithmetic is 64-bit. Kernels
 * are eager calls that take descriptors (kernels/ops.h).
 */
#ifndef REELFARM_CORE_TENSOR_H
#define REELFARM_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum device { DEVICE_CPU = 0, DEVICE_CUDA = 1 };

enum { TENSOR_MAX_DIMS = 6 };

struct tensor {
    enum dtype dtype;
    enum device device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements */
    void *data;
    const char *name; /* optional, for messages */
};

/* A contiguous descriptor over data. */
struct tensor tensor_make(enum dtype dt, enum device dev, void *data, int ndim, const int64_t *shape);
/* Shorthands for contiguous CPU f32 tensors. */
struct tensor tensor_f32_1d(float *data, int64_t n0);
struct tensor tensor_f32_2d(float *data, int64_t n0, int64_t n1);
struct tensor tensor_f32_3d(float *data, int64_t n0, int64_t n1, int64_t n2);
struct tensor tensor_f32_4d(float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3);

int64_t tensor_numel(const struct tensor *t);
size_t tensor_nbytes(const struct tensor *t); /* numel * element size (contiguous extent) */
bool tensor_is_contiguous(const struct tensor *t);
bool tensor_same_shape(const struct tensor *a, const struct tensor *b);
/* True if t has exactly this shape (ndim entries). */
bool tensor_has_shape(const struct tensor *t, int ndim, const int64_t *shape);

/* View with a new shape; t must be contiguous and the element count must agree. */
struct tensor tensor_reshape(const struct tensor *t, int ndim, const int64_t *shape);
/* View of [start, start+len) along dim. */
struct tensor tensor_narrow(const struct tensor *t, int dim, int64_t start, int64_t len);
/* View of row i of the outermost dimension (drops that dimension). */
struct tensor tensor_row(const struct tensor *t, int64_t i);

/* Element offset (in elements) of a multi-index. */
int64_t tensor_offset(const struct tensor *t, const int64_t *index);
/* Typed pointer to element 0 of an f32 tensor (checks dtype). */
float *tensor_f32(const struct tensor *t);

/* "[16, 4, 8, 8]" into buf; returns buf. */
const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape);
const char *tensor_shape_str(char *buf, size_t len, const struct tensor *t);

RF_END_DECLS

#endif /* REELFARM_CORE_TENSOR_H */
