/* tests/io/test_h5io.c - HDF5 tensor files: round trips, strict reads, atomic writes. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "tests/common/test_util.h"

int main(void) {
    const char *tmp = t_tmpdir("h5io");
    char path[1100], other[1100];
    snprintf(path, sizeof path, "%s/a.h5", tmp);
    float lat[2 * 3 * 4];
    for (int i = 0; i < 24; i++) lat[i] = 0.25f * (float)i - 1.0f;
    int64_t ids[5] = {0, -1, 1LL << 40, 7, 9};
    uint8_t mask[5] = {1, 1, 0, 0, 1};

    struct h5_file *f = NULL;
    T_REQUIRE(h5_create(&f, path, false) == ERR_OK, "create: %s", err_message());
    T_CHECK(!fs_exists(path), "nothing at the final path before commit");
    T_CHECK(h5_write_f32(f, "latents", lat, 3, (int64_t[]){2, 3, 4}) == ERR_OK, "write f32");
    T_CHECK(h5_write_i64(f, "input_ids", ids, 1, (int64_t[]){5}) == ERR_OK, "write i64");
    T_CHECK(h5_write_u8(f, "attention_mask", mask, 1, (int64_t[]){5}) == ERR_OK, "write u8");
    T_CHECK(h5_write_i64(f, "fps", (int64_t[]){1}, 0, NULL) == ERR_OK, "write scalar");
    T_CHECK(h5_attr_set_str(f, "reelfarm_format", "test") == ERR_OK, "attr str");
    T_CHECK(h5_attr_set_i64(f, "version", 3) == ERR_OK, "attr i64");
    T_CHECK(h5_attr_set_f64(f, "shift", 8.0) == ERR_OK, "attr f64");
    T_REQUIRE(h5_commit(&f) == ERR_OK && f == NULL, "commit: %s", err_message());
    T_CHECK(fs_exists(path), "committed file exists");

    T_REQUIRE(h5_open_read(&f, path) == ERR_OK, "open: %s", err_message());
    struct tensor t;
    T_REQUIRE(h5_read_f32(f, "latents", &t) == ERR_OK, "read f32: %s", err_message());
    T_CHECK(t.ndim == 3 && t.shape[0] == 2 && t.shape[2] == 4 && !memcmp(t.data, lat, sizeof lat), "f32 round trip");
    free(t.data);
    int64_t v = 0;
    T_CHECK(h5_read_i64_scalar(f, "fps", &v) == ERR_OK && v == 1, "scalar int");
    T_CHECK(h5_read_f32(f, "input_ids", &t) == ERR_FORMAT, "integers are not read as floats");
    T_CHECK(strstr(err_message(), "input_ids") != NULL, "message names the dataset: %s", err_message());
    T_CHECK(h5_read_f32(f, "nope", &t) == ERR_MISSING && strstr(err_message(), "no dataset 'nope'"), "missing: %s",
            err_message());
    T_CHECK(h5_read_i64_scalar(f, "input_ids", &v) == ERR_FORMAT, "five integers are not one");
    char s[64];
    T_CHECK(h5_attr_get_str(f, "reelfarm_format", s, sizeof s) == ERR_OK && !strcmp(s, "test"), "attr str back");
    T_CHECK(h5_attr_get_i64(f, "version", &v) == ERR_OK && v == 3, "attr i64 back");
    T_CHECK(h5_attr_get_i64(f, "reelfarm_format", &v) == ERR_FORMAT, "string attr is not an integer");
    struct h5_entry *e = NULL;
    size_t n = 0;
    T_CHECK(h5_list(f, &e, &n) == ERR_OK && n == 7, "list: %zu entries", n);
    T_CHECK(n == 7 && e[0].is_attribute && !strcmp(e[3].name, "attention_mask") && e[3].dtype == DTYPE_U8,
            "listing order and types");
    free(e);
    h5_close(&f);

    /* refusing to overwrite; an uncommitted file leaves nothing behind */
    T_CHECK(h5_create(&f, path, false) == ERR_EXISTS && strstr(err_message(), "refusing to overwrite"), "overwrite refused");
    snprintf(other, sizeof other, "%s/b.h5", tmp);
    T_REQUIRE(h5_create(&f, other, false) == ERR_OK, "create b");
    h5_write_f32(f, "x", lat, 1, (int64_t[]){4});
    h5_close(&f);
    char **names = NULL;
    size_t count = 0;
    fs_list_dir(tmp, NULL, &names, &count);
    T_CHECK(count == 1 && !strcmp(names[0], "a.h5"), "abandoned write left %zu files", count);
    fs_free_list(&names, &count);

    /* not an HDF5 file */
    FILE *txt = fopen(other, "w");
    fputs("hello", txt);
    fclose(txt);
    T_CHECK(h5_open_read(&f, other) == ERR_FORMAT && strstr(err_message(), "not an HDF5 file"), "text file: %s",
            err_message());
    snprintf(other, sizeof other, "%s/missing.h5", tmp);
    T_CHECK(h5_open_read(&f, other) == ERR_IO && strstr(err_message(), "no such file"), "missing file");
    t_rmtree(tmp);
    return t_summary(__FILE__);
}
