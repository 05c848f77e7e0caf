/* io/spm_shim.h - a small C interface over Debian's SentencePiece library (libsentencepiece).
 *
 * Loading and encoding with a .model file (the umT5 tokenizer's spiece.model), and training a unigram
 * model (make-tiny-model's tiny tokenizer). The implementation (spm_shim.cc) is the only C++ in
 * reelfarm's product code; errors come back as recoverable err_codes with SentencePiece's own message.
 */
#ifndef REELFARM_IO_SPM_SHIM_H
#define REELFARM_IO_SPM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/cdefs.h"

RF_BEGIN_DECLS

struct spm_proc;

int spm_load(struct spm_proc **out, const char *model_path);
void spm_free(struct spm_proc **p);
int64_t spm_piece_count(const struct spm_proc *p);
/* Special ids from the model's trainer spec (-1 when the model has none). */
int64_t spm_eos_id(const struct spm_proc *p);
int64_t spm_pad_id(const struct spm_proc *p);
int64_t spm_unk_id(const struct spm_proc *p);
/* Encode text (no BOS/EOS added) into a new malloc'd id array (caller frees). */
int spm_encode(const struct spm_proc *p, const char *text, int64_t **ids, size_t *count);

/* Train a unigram model from a UTF-8 corpus file (one sentence per line) into <model_prefix>.model,
 * deterministically (one thread). pad 0, eos 1, unk 2, no bos, byte fallback, nmt_nfkc. */
int spm_train_unigram(const char *corpus_path, const char *model_prefix, int vocab_size);

RF_END_DECLS

#endif /* REELFARM_IO_SPM_SHIM_H */
