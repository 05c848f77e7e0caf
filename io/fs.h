/* io/fs.h - small filesystem helpers for the io/ layer: existence tests, path joining, bounded
 * whole-file reads, mkdir -p, sorted directory listings and atomic output (temp file + rename).
 *
 * Atomic output is the only way reelfarm writes a result file: write everything to a sibling
 * temp name from fs_temp_path(), then fs_commit() renames it over the final name. A reader never
 * sees a half-written file, and without `overwrite` an existing output is never replaced (the
 * rename itself refuses, so two writers racing for one name cannot both win).
 *
 * It does not parse anything, does not follow or resolve paths beyond what the kernel does, and
 * is not a general I/O library: large tensor data is written by the format writers through
 * fs_write_all(). All errors are recoverable: a negative enum err_code with one err_set() line
 * that names the path and, where there is one, the errno text.
 */
#ifndef REELFARM_IO_FS_H
#define REELFARM_IO_FS_H

#include <stdbool.h>
#include <stddef.h>

/* stat() succeeds (a dangling symlink does not exist). */
bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
/* A regular file (after following symlinks). */
bool fs_is_file(const char *path);
/* True if path ends in suffix, ignoring ASCII case (".mp4" matches "A.MP4"). */
bool fs_has_suffix(const char *path, const char *suffix);

/* out = dir + "/" + name (no doubled '/'; an empty dir gives name). ERR_INVALID_ARG if it does
 * not fit in cap bytes including the NUL. */
int fs_join(char *out, size_t cap, const char *dir, const char *name);

/* Read a whole file into a fresh NUL-terminated buffer (*out, free() it; *len excludes the NUL).
 * ERR_IO if it cannot be opened or read (message: path and errno text), ERR_FORMAT if it holds
 * more than max_len bytes. Works on non-regular files (pipes) too; never trusts st_size. */
int fs_read_file(const char *path, char **out, size_t *len, size_t max_len);

/* mkdir -p with mode 0755; existing directories are fine, an existing non-directory is ERR_IO. */
int fs_mkdir_p(const char *path);

/* Sorted (strcmp order) names of the regular files in dir whose name ends in suffix (NULL or ""
 * for all). Free with fs_free_list(). */
int fs_list_dir(const char *dir, const char *suffix, char ***names, size_t *count);

/* Free a list from fs_list_dir, then set *names = NULL and *count = 0; NULL-tolerant. */
void fs_free_list(char ***names, size_t *count);

/* ---- atomic output ---- */

/* A sibling temp name in the same directory: "<final_path>.tmp-<pid>-<n>", n counting up per
 * process (thread-safe). ERR_INVALID_ARG if it does not fit. */
int fs_temp_path(char *out, size_t cap, const char *final_path);

/* Move tmp_path to final_path. With overwrite the rename replaces any existing file. Without it an
 * existing final_path is refused with ERR_EXISTS ("refusing to overwrite <path>: it already
 * exists"); the check and the rename are one step (renameat2 RENAME_NOREPLACE, or link + unlink
 * on filesystems without it). On every failure tmp_path is removed: after fs_commit returns, the
 * temp file is gone either way. */
int fs_commit(const char *tmp_path, const char *final_path, bool overwrite);

/* unlink() ignoring errors; NULL-tolerant. */
void fs_remove_quiet(const char *path);
/* rm -r ignoring errors (a temp directory after a failed write); never follows symlinks, refuses
 * "" and "/". NULL-tolerant. */
void fs_remove_tree_quiet(const char *path);

/* write() all len bytes (retrying short writes and EINTR); path is only for the message. */
int fs_write_all(int fd, const void *buf, size_t len, const char *path);

/* Atomically write a whole file: temp file, fsync, fs_commit(). */
int fs_write_file(const char *path, const void *data, size_t len, bool overwrite);

#endif /* REELFARM_IO_FS_H */
