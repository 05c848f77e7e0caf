/* io/fs.c - filesystem helpers: bounded reads, mkdir -p, sorted listings, atomic output.
 *
 * Atomic output follows the usual POSIX recipe: write a sibling temp file, fsync it, rename it into
 * place. "Never overwrite" is enforced by the rename itself (renameat2 RENAME_NOREPLACE, falling
 * back to link + unlink where the filesystem lacks it), not by an earlier stat() that could race.
 * Nothing here parses file contents.
 */
#include "io/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

bool fs_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}

bool fs_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool fs_is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int fs_join(char *out, size_t cap, const char *dir, const char *name) {
    if (!out || cap == 0 || !dir || !name) return err_set(ERR_INVALID_ARG, "fs_join: NULL argument");
    size_t dl = strlen(dir);
    const char *sep = (dl == 0 || dir[dl - 1] == '/') ? "" : "/";
    int n = snprintf(out, cap, "%s%s%s", dir, sep, name);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return err_set(ERR_INVALID_ARG, "path too long (%zu bytes allowed): %s%s%s", cap - 1, dir, sep, name);
    }
    return 0;
}

int fs_read_file(const char *path, char **out, size_t *len, size_t max_len) {
    int ret = 0;
    int fd = -1;
    char *buf = NULL;
    size_t n = 0;   /* bytes read so far */
    size_t cap = 0; /* bytes of content buf can hold (plus one for the NUL) */
    struct stat st;

    *out = NULL;
    if (len) *len = 0;
    /* Reading max_len + 1 bytes is how a file that is too large is recognised. */
    size_t limit = max_len < SIZE_MAX - 1 ? max_len + 1 : SIZE_MAX - 1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = err_set(ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto end;
    }
    if (fstat(fd, &st) != 0) {
        ret = err_set(ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto end;
    }
    if (S_ISDIR(st.st_mode)) {
        ret = err_set(ERR_IO, "%s: is a directory, not a file", path);
        goto end;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_len) {
        ret = err_set(ERR_FORMAT, "%s: file is %lld bytes, more than the %zu-byte limit", path, (long long)st.st_size,
                      max_len);
        goto end;
    }
    /* st_size is only a first guess for the buffer: the file may change under us. */
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    if (cap > limit) cap = limit;
    buf = malloc(cap + 1);
    if (!buf) {
        ret = err_set(ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap + 1);
        goto end;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= limit) break; /* read max_len + 1 bytes: too large */
            size_t next = cap < limit / 2 ? cap * 2 : limit;
            char *grown = realloc(buf, next + 1);
            if (!grown) {
                ret = err_set(ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, next + 1);
                goto end;
            }
            buf = grown;
            cap = next;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            ret = err_set(ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto end;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > max_len) {
        ret = err_set(ERR_FORMAT, "%s: file is more than the %zu-byte limit", path, max_len);
        goto end;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    if (len) *len = n;

end:
    if (fd >= 0) close(fd);
    free(buf);
    return ret;
}

/* mkdir one component; an existing directory is fine. */
static int fs_mkdir_one(const char *path) {
    if (mkdir(path, 0755) == 0) return 0;
    int e = errno;
    if (e == EEXIST) {
        if (fs_is_dir(path)) return 0;
        return err_set(ERR_IO, "%s: exists and is not a directory", path);
    }
    return err_set(ERR_IO, "%s: cannot create directory: %s", path, strerror(e));
}

int fs_mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (!path || !*path) return err_set(ERR_INVALID_ARG, "fs_mkdir_p: empty path");
    size_t len = strlen(path);
    if (len >= sizeof buf) return err_set(ERR_INVALID_ARG, "path too long: %s", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/') continue;
        buf[i] = '\0';
        int ret = fs_mkdir_one(buf);
        buf[i] = '/';
        if (ret < 0) return ret;
    }
    return fs_mkdir_one(buf);
}

static int fs_cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int fs_list_dir(const char *dir, const char *suffix, char ***names, size_t *count) {
    int ret = 0;
    DIR *d = NULL;
    char **list = NULL;
    size_t n = 0, cap = 0;
    size_t slen = suffix ? strlen(suffix) : 0;

    *names = NULL;
    *count = 0;
    d = opendir(dir);
    if (!d) {
        ret = err_set(ERR_IO, "%s: cannot list directory: %s", dir, strerror(errno));
        goto end;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) {
                ret = err_set(ERR_IO, "%s: cannot list directory: %s", dir, strerror(errno));
                goto end;
            }
            break;
        }
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
        size_t nl = strlen(nm);
        if (slen > 0 && (nl < slen || memcmp(nm + nl - slen, suffix, slen) != 0)) continue;
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            size_t next = cap ? cap * 2 : 16;
            char **grown = realloc(list, next * sizeof *grown);
            if (!grown) {
                ret = err_set(ERR_NOMEM, "%s: out of memory while listing", dir);
                goto end;
            }
            list = grown;
            cap = next;
        }
        list[n] = strdup(nm);
        if (!list[n]) {
            ret = err_set(ERR_NOMEM, "%s: out of memory while listing", dir);
            goto end;
        }
        n++;
    }
    if (n > 1) qsort(list, n, sizeof *list, fs_cmp_names);
    *names = list;
    *count = n;
    list = NULL;
    n = 0;

end:
    if (d) closedir(d);
    fs_free_list(&list, &n);
    return ret;
}

void fs_free_list(char ***names, size_t *count) {
    if (names && *names) {
        for (size_t i = 0; count && i < *count; i++) free((*names)[i]);
        free(*names);
        *names = NULL;
    }
    if (count) *count = 0;
}

int fs_temp_path(char *out, size_t cap, const char *final_path) {
    static atomic_uint fs_temp_counter;
    if (!out || cap == 0 || !final_path || !*final_path) return err_set(ERR_INVALID_ARG, "fs_temp_path: empty path");
    unsigned k = atomic_fetch_add(&fs_temp_counter, 1u);
    int n = snprintf(out, cap, "%s.tmp-%ld-%u", final_path, (long)getpid(), k);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return err_set(ERR_INVALID_ARG, "path too long for a temp name: %s", final_path);
    }
    return 0;
}

static int fs_refuse(const char *tmp_path, const char *final_path) {
    fs_remove_quiet(tmp_path);
    return err_set(ERR_EXISTS, "refusing to overwrite %s: it already exists", final_path);
}

static int fs_rename_failed(const char *tmp_path, const char *final_path, int e) {
    fs_remove_quiet(tmp_path);
    return err_set(ERR_IO, "cannot move %s into place as %s: %s", tmp_path, final_path, strerror(e));
}

int fs_commit(const char *tmp_path, const char *final_path, bool overwrite) {
    if (!tmp_path || !final_path) return err_set(ERR_INVALID_ARG, "fs_commit: NULL path");
    if (overwrite) {
        if (rename(tmp_path, final_path) != 0) return fs_rename_failed(tmp_path, final_path, errno);
        return 0;
    }
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, final_path, RENAME_NOREPLACE) == 0) return 0;
    if (errno == EEXIST) return fs_refuse(tmp_path, final_path);
    /* EINVAL/ENOSYS/EOPNOTSUPP: this kernel or filesystem cannot do it; fall back to link. */
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP && errno != ENOTSUP)
        return fs_rename_failed(tmp_path, final_path, errno);
#endif
    /* link() also fails with EEXIST instead of replacing, so this is still race-free. */
    if (link(tmp_path, final_path) == 0) {
        fs_remove_quiet(tmp_path);
        return 0;
    }
    int e = errno;
    if (e == EEXIST) return fs_refuse(tmp_path, final_path);
    if (e != EPERM && e != ENOSYS && e != EOPNOTSUPP && e != ENOTSUP && e != EMLINK)
        return fs_rename_failed(tmp_path, final_path, e);
    /* A filesystem with neither (vfat, some FUSE): check, then rename. Only this path can race. */
    struct stat st;
    if (lstat(final_path, &st) == 0) return fs_refuse(tmp_path, final_path);
    if (rename(tmp_path, final_path) != 0) return fs_rename_failed(tmp_path, final_path, errno);
    return 0;
}

void fs_remove_quiet(const char *path) {
    if (path && *path) (void)unlink(path);
}

static int fs_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)type;
    (void)ftw;
    (void)remove(path); /* children first (FTW_DEPTH), so directories are empty by then */
    return 0;
}

void fs_remove_tree_quiet(const char *path) {
    if (!path || !*path || !strcmp(path, "/")) return;
    (void)nftw(path, fs_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int fs_write_all(int fd, const void *buf, size_t len, const char *path) {
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return err_set(ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        if (w == 0) return err_set(ERR_IO, "%s: write failed: no progress (disk full?)", path);
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int fs_write_file(const char *path, const void *data, size_t len, bool overwrite) {
    int ret = 0;
    int fd = -1;
    char tmp[PATH_MAX];
    tmp[0] = '\0';

    ret = fs_temp_path(tmp, sizeof tmp, path);
    if (ret < 0) goto end;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        ret = err_set(ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        tmp[0] = '\0'; /* not ours: do not remove it */
        goto end;
    }
    ret = fs_write_all(fd, data, len, tmp);
    if (ret < 0) goto end;
    if (fsync(fd) != 0) {
        ret = err_set(ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto end;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        ret = err_set(ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto end;
    }
    ret = fs_commit(tmp, path, overwrite);
    tmp[0] = '\0'; /* fs_commit removes it on failure */

end:
    if (fd >= 0) close(fd);
    if (ret < 0 && tmp[0]) fs_remove_quiet(tmp);
    return ret;
}

bool fs_has_suffix(const char *path, const char *suffix) {
    const size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcasecmp(path + n - k, suffix) == 0;
}
