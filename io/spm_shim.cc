// io/spm_shim.cc - C interface over sentencepiece::SentencePieceProcessor / SentencePieceTrainer.
#include "io/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"

struct spm_proc {
    sentencepiece::SentencePieceProcessor sp;
};

extern "C" int spm_load(struct spm_proc **out, const char *model_path) {
    *out = nullptr;
    spm_proc *p = new (std::nothrow) spm_proc;
    if (!p) return err_set(ERR_NOMEM, "out of memory");
    const auto status = p->sp.Load(model_path);
    if (!status.ok()) {
        delete p;
        return err_set(ERR_FORMAT, "%s: not a SentencePiece model (%s)", model_path, status.ToString().c_str());
    }
    *out = p;
    return ERR_OK;
}

extern "C" void spm_free(struct spm_proc **p) {
    if (!p || !*p) return;
    delete *p;
    *p = nullptr;
}

extern "C" int64_t spm_piece_count(const struct spm_proc *p) { return p->sp.GetPieceSize(); }
extern "C" int64_t spm_eos_id(const struct spm_proc *p) { return p->sp.eos_id(); }
extern "C" int64_t spm_pad_id(const struct spm_proc *p) { return p->sp.pad_id(); }
extern "C" int64_t spm_unk_id(const struct spm_proc *p) { return p->sp.unk_id(); }

extern "C" int spm_encode(const struct spm_proc *p, const char *text, int64_t **ids, size_t *count) {
    *ids = nullptr;
    *count = 0;
    std::vector<int> v;
    const auto status = p->sp.Encode(text, &v);
    if (!status.ok()) return err_set(ERR_FORMAT, "tokenizer: %s", status.ToString().c_str());
    int64_t *out = static_cast<int64_t *>(std::malloc((v.size() ? v.size() : 1) * sizeof(int64_t)));
    if (!out) return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v.size(); i++) out[i] = v[i];
    *ids = out;
    *count = v.size();
    return ERR_OK;
}

extern "C" int spm_train_unigram(const char *corpus_path, const char *model_prefix, int vocab_size) {
    // The keyword form: the string form logs the whole command line at INFO before it reads minloglevel.
    const std::unordered_map<std::string, std::string> kwargs = {
        {"input", corpus_path},          {"model_prefix", model_prefix},
        {"vocab_size", std::to_string(vocab_size)},
        {"hard_vocab_limit", "false"},   {"model_type", "unigram"},
        {"character_coverage", "1.0"},   {"byte_fallback", "true"},
        {"pad_id", "0"},                 {"eos_id", "1"},
        {"unk_id", "2"},                 {"bos_id", "-1"},
        {"normalization_rule_name", "nmt_nfkc"},
        {"num_threads", "1"},            {"minloglevel", "2"}};
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
    if (!status.ok()) return err_set(ERR_IO, "training the tiny tokenizer failed: %s", status.ToString().c_str());
    return ERR_OK;
}
