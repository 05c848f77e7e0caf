/* io/tokenizer.h - the umT5 prompt tokenizer (spec 8.2).
 *
 * Reads the model directory's tokenizer: tokenizer/spiece.model (Diffusers layout) or
 * google/umt5-xxl/spiece.model (original SkyReels layout), and tokenizer_config.json when present.
 * Encoding follows the pipelines: clean the prompt (HTML-unescape twice, strip, collapse every run of
 * Unicode whitespace to one space, strip), SentencePiece-encode it, truncate so that the EOS fits, append
 * EOS, pad to text_len with the pad id; the mask is 1 for real tokens (EOS included).
 *
 * Not reproduced from upstream's cleaning: ftfy.fix_text (mojibake repair and the other fixes of the
 * ftfy library), and HTML named entities beyond the table in tokenizer.c (numeric references are all
 * handled, with Python's rules for invalid code points). Upstream tokenizes with transformers'
 * T5TokenizerFast (tokenizer.json); reelfarm uses the SentencePiece model it was converted from.
 */
#ifndef REELFARM_IO_TOKENIZER_H
#define REELFARM_IO_TOKENIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/cdefs.h"

RF_BEGIN_DECLS

struct spm_proc;

struct tokenizer {
    struct spm_proc *spm;
    int64_t text_len;   /* tokens per prompt after padding */
    int64_t vocab_size; /* SentencePiece pieces */
    int64_t eos_id, pad_id;
    char model_path[1100];
};

/* text_len_override > 0 replaces the config's bound. */
int tokenizer_open(struct tokenizer **out, const char *model_dir, int64_t text_len_override);
void tokenizer_close(struct tokenizer **t);

/* Spec 8.2 cleaning into a new malloc'd string (caller frees). Invalid UTF-8 is ERR_FORMAT naming the
 * byte offset; `what` names the text in messages ("prompt", "negative prompt"). */
int tokenizer_clean(const char *text, const char *what, char **out);

/* ids [text_len], mask [text_len]; *n_tokens = real tokens (EOS included); *truncated when the prompt
 * did not fit. */
int tokenizer_encode(const struct tokenizer *t, const char *prompt, const char *what, int64_t *ids, uint8_t *mask,
                     int64_t *n_tokens, bool *truncated);

RF_END_DECLS

#endif /* REELFARM_IO_TOKENIZER_H */
