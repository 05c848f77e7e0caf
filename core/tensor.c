/* core/tensor.c - tensor descriptor helpers. */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

struct tensor tensor_make(enum dtype dt, enum device dev, void *data, int ndim, const int64_t *shape) {
    CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "ndim %d out of range", ndim);
    struct tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    t.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        CHECK(shape[i] >= 0, "negative extent %lld in dim %d", (long long)shape[i], i);
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

struct tensor tensor_f32_1d(float *data, int64_t n0) {
    return tensor_make(DTYPE_F32, DEVICE_CPU, data, 1, (int64_t[]){n0});
}
struct tensor tensor_f32_2d(float *data, int64_t n0, int64_t n1) {
    return tensor_make(DTYPE_F32, DEVICE_CPU, data, 2, (int64_t[]){n0, n1});
}
struct tensor tensor_f32_3d(float *data, int64_t n0, int64_t n1, int64_t n2) {
    return tensor_make(DTYPE_F32, DEVICE_CPU, data, 3, (int64_t[]){n0, n1, n2});
}
struct tensor tensor_f32_4d(float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    return tensor_make(DTYPE_F32, DEVICE_CPU, data, 4, (int64_t[]){n0, n1, n2, n3});
}

int64_t tensor_numel(const struct tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const struct tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

bool tensor_is_contiguous(const struct tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool tensor_same_shape(const struct tensor *a, const struct tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

bool tensor_has_shape(const struct tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

struct tensor tensor_reshape(const struct tensor *t, int ndim, const int64_t *shape) {
    CHECK(tensor_is_contiguous(t), "reshape of a non-contiguous tensor");
    struct tensor r = tensor_make(t->dtype, t->device, t->data, ndim, shape);
    r.name = t->name;
    CHECK(tensor_numel(&r) == tensor_numel(t), "reshape changes the element count (%lld -> %lld)",
          (long long)tensor_numel(t), (long long)tensor_numel(&r));
    return r;
}

struct tensor tensor_narrow(const struct tensor *t, int dim, int64_t start, int64_t len) {
    CHECK(dim >= 0 && dim < t->ndim, "narrow: dim %d of a %d-d tensor", dim, t->ndim);
    CHECK(start >= 0 && len >= 0 && start + len <= t->shape[dim], "narrow: [%lld, %lld) outside extent %lld",
          (long long)start, (long long)(start + len), (long long)t->shape[dim]);
    struct tensor r = *t;
    r.shape[dim] = len;
    if (t->data) r.data = (char *)t->data + (size_t)(start * t->stride[dim]) * dtype_size(t->dtype);
    return r;
}

struct tensor tensor_row(const struct tensor *t, int64_t i) {
    CHECK(t->ndim >= 1, "row of a 0-d tensor");
    struct tensor r = tensor_narrow(t, 0, i, 1);
    for (int d = 1; d < t->ndim; d++) {
        r.shape[d - 1] = r.shape[d];
        r.stride[d - 1] = r.stride[d];
    }
    r.ndim = t->ndim - 1;
    return r;
}

int64_t tensor_offset(const struct tensor *t, const int64_t *index) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->stride[i];
    return off;
}

float *tensor_f32(const struct tensor *t) {
    CHECK(t->dtype == DTYPE_F32, "tensor %s is %s, expected f32", t->name ? t->name : "(unnamed)",
          dtype_name(t->dtype));
    return (float *)t->data;
}

const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, len - pos, "[");
    for (int i = 0; i < ndim && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
    return buf;
}

const char *tensor_shape_str(char *buf, size_t len, const struct tensor *t) {
    return shape_str(buf, len, t->ndim, t->shape);
}
