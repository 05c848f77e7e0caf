/* cli/cmd_submit.c - `reelfarm submit`: a film file to a Slurm batch job that renders it on N nodes.
 *
 * It checks what can be checked before a job waits in the queue (the film file parses, the output's folder
 * exists, the output is not there yet, the numbers and the layout fit the job), then writes the batch
 * script and hands it to `sbatch --parsable`, printing the job id. The script is slurm/render.sbatch with
 * its #SBATCH lines and its "parameters" block replaced: that file is the one source of the job's
 * behaviour (launch with srun --mpi=pmix or mpirun, checkpoint on USR1 before the time limit, requeue,
 * resume), this file only fills it in. It does not talk to slurmctld itself, does not wait for the job
 * and does not render anything (docs/slurm.md).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "coordinator/film.h"
#include "coordinator/render_settings.h"
#include "coordinator/service.h"
#include "core/error.h"
#include "io/fs.h"

extern char **environ;

static const char submit_help[] =
    "Usage: reelfarm submit FILM.json [--out OUT.mp4] [options]\n"
    "       reelfarm submit FILM.json --to ENDPOINT [options]   (a render service: see --to X --help)\n"
    "\n"
    "Writes a Slurm batch script that renders the film with every rank of the job (one render shared by\n"
    "all ranks, rank 0 writes OUT) and submits it with sbatch; prints the job id. The job checkpoints\n"
    "--grace seconds before its time limit, requeues itself and resumes from the checkpoint; a job that\n"
    "Slurm requeues (preemption, scontrol requeue, node failure) resumes too. The script is\n"
    "slurm/render.sbatch filled in (docs/slurm.md). The film, OUT and the model must be on a filesystem\n"
    "that every node sees.\n"
    "\n"
    "What to render:\n"
    "  FILM.json                 the film file (settings and shots; see `reelfarm render --help`)\n"
    "  --out FILE                .mp4/.mkv/.webm/.h5 (default: the film's \"output\")\n"
    "  --model DIR               model directory (default: the film's \"model\", else the built-in tiny model)\n"
    "  --overwrite               replace an existing OUT (and start again over an old checkpoint)\n"
    "Job shape:\n"
    "  --nodes N                 nodes (default 1)\n"
    "  --ntasks-per-node R       ranks per node (default: --gpus-per-node, else 1)\n"
    "  --gpus-per-node G         GPUs per node (default 0: none requested)\n"
    "  --cpus-per-task C         CPU cores per rank (sets OMP_NUM_THREADS in the job)\n"
    "  --partition P  --time T   Slurm partition and time limit (minutes, H:M:S, D-H[:M[:S]])\n"
    "  --job-name NAME           (default reelfarm-<OUT's file name>)\n"
    "  --log FILE                the job's output, appended to by every run (default OUT.slurm-%j.log)\n"
    "  --grace S                 seconds before the time limit at which the job checkpoints and requeues\n"
    "                            itself (default 120; #SBATCH --signal=B:USR1@S)\n"
    "  --sbatch OPTION           one more #SBATCH line, e.g. --sbatch=--account=abc (repeatable)\n"
    "  --launcher srun|mpirun    how the ranks start (default $REELFARM_LAUNCHER, else srun --mpi=pmix)\n"
    "Passed to every run of the render:\n"
    "  --sp N  --tp N  --ulysses N  --cfg-parallel  --no-cfg-parallel  --encoder-rank\n"
    "                            parallel layout (default automatic; see `reelfarm render --help`)\n"
    "  --threads N  --checkpoint-every K\n"
    "  --progress-endpoint EP    rank 0 publishes progress events on EP: `reelfarm watch --events EP` follows\n"
    "                            the job from another shell (loopback/ipc, or with --curve-secret FILE\n"
    "                            --allow-dir DIR; docs/protocol.md)\n"
    "Script:\n"
    "  --dry-run                 print the batch script, submit nothing\n"
    "  --script-out FILE         also keep the script in FILE (replaced if it exists); `sbatch FILE`\n"
    "                            submits it again\n"
    "  --template FILE           the batch script to fill in (default slurm/render.sbatch, found next to\n"
    "                            the reelfarm binary's build or install tree)\n"
    "\n"
    "Environment: REELFARM_BIN (the reelfarm the job runs; default this binary), REELFARM_LAUNCHER.\n"
    "Exit status: 0 submitted (job id on stdout), 1 bad input or sbatch failed, 2 usage error.\n";

enum {
    OPT_NODES = 1000,
    OPT_NTASKS,
    OPT_GPUS,
    OPT_CPUS,
    OPT_PARTITION,
    OPT_TIME,
    OPT_JOB_NAME,
    OPT_LOG,
    OPT_GRACE,
    OPT_SBATCH,
    OPT_LAUNCHER,
    OPT_SP,
    OPT_TP,
    OPT_ULYSSES,
    OPT_CFG,
    OPT_NO_CFG,
    OPT_ENCODER_RANK,
    OPT_THREADS,
    OPT_CKPT_EVERY,
    OPT_DRY_RUN,
    OPT_SCRIPT_OUT,
    OPT_TEMPLATE,
    OPT_OVERWRITE,
    OPT_PROGRESS_EP,
    OPT_CURVE_SECRET,
    OPT_ALLOW_DIR
};

#define SUBMIT_SBATCH_MAX 32

struct submit_options {
    const char *film, *out, *model, *partition, *time, *job_name, *log, *launcher, *script_out, *template_path;
    int nodes, ntasks_per_node, gpus_per_node, cpus_per_task, grace;
    int sp, tp, ulysses, threads; /* 0: not given */
    int64_t checkpoint_every;     /* < 0: not given */
    const char *progress_ep, *curve_secret, *allow_dir; /* render --progress-endpoint (and its CURVE files) */
    bool cfg_parallel, no_cfg_parallel, encoder_rank, overwrite, dry_run;
    const char *sbatch[SUBMIT_SBATCH_MAX];
    int n_sbatch;
};

/* ---- a growing string ---- */

struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct strbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *b, const char *fmt, ...) {
    char tmp[PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = true; /* only short, bounded lines go through here */
        return;
    }
    sb_add(b, tmp, (size_t)n);
}

/* One shell word, single-quoted: ' inside becomes '\''. */
static void sb_quoted(struct strbuf *b, const char *s) {
    sb_str(b, "'");
    for (const char *q = s; *q; q++) {
        if (*q == '\'')
            sb_str(b, "'\\''");
        else
            sb_add(b, q, 1);
    }
    sb_str(b, "'");
}

/* " 'word'": the next word of a command line. */
static void sb_shell_word(struct strbuf *b, const char *s) {
    sb_str(b, " ");
    sb_quoted(b, s);
}

/* ---- checks ---- */

/* Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; "UNLIMITED"/"INFINITE" give -1. */
static int parse_slurm_time(const char *v, long *seconds) {
    if (!strcmp(v, "UNLIMITED") || !strcmp(v, "INFINITE") || !strcmp(v, "unlimited") || !strcmp(v, "infinite")) {
        *seconds = -1;
        return ERR_OK;
    }
    long days = 0, f[3] = {0, 0, 0};
    int nf = 0;
    const char *p = v;
    const char *dash = strchr(v, '-');
    char *end = NULL;
    if (dash) {
        errno = 0;
        days = strtol(v, &end, 10);
        if (errno || end != dash || dash == v || days < 0) goto bad;
        p = dash + 1;
    }
    for (;;) {
        if (nf == 3 || *p < '0' || *p > '9') goto bad;
        errno = 0;
        f[nf++] = strtol(p, &end, 10);
        if (errno || f[nf - 1] < 0 || f[nf - 1] > 100000000L) goto bad;
        if (*end == '\0') break;
        if (*end != ':') goto bad;
        p = end + 1;
    }
    long s;
    if (dash) /* D-H, D-H:M, D-H:M:S */
        s = days * 86400 + f[0] * 3600 + (nf > 1 ? f[1] * 60 : 0) + (nf > 2 ? f[2] : 0);
    else if (nf == 1) /* M */
        s = f[0] * 60;
    else if (nf == 2) /* M:S */
        s = f[0] * 60 + f[1];
    else /* H:M:S */
        s = f[0] * 3600 + f[1] * 60 + f[2];
    if (s <= 0) goto bad;
    *seconds = s;
    return ERR_OK;
bad:
    return err_set(ERR_INVALID_ARG,
                   "--time: expected minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED (more than 0), got '%s'", v);
}

/* A value that goes on an #SBATCH line: no newline, no double quote or backslash (sbatch's own quoting). */
static int check_sbatch_value(const char *flag, const char *v) {
    if (!*v) return err_set(ERR_INVALID_ARG, "%s: empty value", flag);
    for (const char *q = v; *q; q++)
        if (*q == '\n' || *q == '\r' || *q == '"' || *q == '\\')
            return err_set(ERR_INVALID_ARG,
                           "%s: '%s' holds a newline, a double quote or a backslash, which an #SBATCH "
                           "line cannot carry",
                           flag, v);
    return ERR_OK;
}

/* Absolute path of p (which need not exist) into a fresh string. */
static int absolute_path(const char *p, char **out) {
    char cwd[PATH_MAX];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd)) {
        *out = strdup(p);
    } else {
        const size_t n = strlen(cwd) + strlen(p) + 2;
        *out = malloc(n);
        if (*out) snprintf(*out, n, "%s/%s", cwd, p);
    }
    return *out ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
}

/* `what`: "--out" or "the film's output", for the message. */
static int check_output(const struct submit_options *o, const char *what, const char *out) {
    if (!fs_has_suffix(out, ".mp4") && !fs_has_suffix(out, ".mkv") && !fs_has_suffix(out, ".webm") &&
        !fs_has_suffix(out, ".h5"))
        return err_set(ERR_INVALID_ARG, "%s %s: expected a .mp4, .mkv, .webm or .h5 file", what, out);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    const char *d = dirname(dir);
    if (!fs_is_dir(d)) return err_set(ERR_IO, "%s %s: the folder %s does not exist", what, out, d);
    if (fs_exists(out) && !o->overwrite)
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --overwrite)", out);
    return ERR_OK;
}

/* The layout flags given must fit the job's ranks (the render checks the rest on every rank). */
static int check_layout(const struct submit_options *o) {
    const long ranks = (long)o->nodes * o->ntasks_per_node;
    const long compute = ranks - (o->encoder_rank ? 1 : 0);
    if (compute < 1) return err_set(ERR_INVALID_ARG, "--encoder-rank needs at least 2 ranks; the job has %ld", ranks);
    if (o->sp && o->ulysses && o->sp % o->ulysses)
        return err_set(ERR_INVALID_ARG, "--ulysses %d does not divide --sp %d", o->ulysses, o->sp);
    const long need = (long)(o->sp ? o->sp : 1) * (o->tp ? o->tp : 1) * (o->cfg_parallel ? 2 : 1);
    if (compute % need)
        return err_set(ERR_INVALID_ARG,
                       "the layout (--sp %d --tp %d%s) needs a multiple of %ld computing ranks, but the job has %ld "
                       "(%d node(s) x %d rank(s)%s)",
                       o->sp ? o->sp : 1, o->tp ? o->tp : 1, o->cfg_parallel ? " --cfg-parallel" : "", need, compute,
                       o->nodes, o->ntasks_per_node, o->encoder_rank ? ", less the encoder rank" : "");
    return ERR_OK;
}

/* ---- the template ---- */

/* slurm/render.sbatch: --template, else next to the binary's build tree (build/../slurm, or the source
 * folder named in the build folder's CMakeCache.txt), else an install tree (bin/../share/reelfarm). */
static int find_template(const char *given, char *out, size_t cap) {
    if (given) {
        if (!fs_is_file(given)) return err_set(ERR_IO, "--template %s: no such file", given);
        snprintf(out, cap, "%s", given);
        return ERR_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return err_set(ERR_IO, "cannot find slurm/render.sbatch (no /proc/self/exe); give --template FILE");
    exe[n] = '\0';
    char *dir = dirname(exe);
    char cand[3][PATH_MAX + 64];
    int nc = 0;
    snprintf(cand[nc++], sizeof cand[0], "%s/../slurm/render.sbatch", dir);
    char cache_path[PATH_MAX + 32], *cache = NULL;
    size_t len = 0;
    snprintf(cache_path, sizeof cache_path, "%s/CMakeCache.txt", dir);
    if (fs_is_file(cache_path) && fs_read_file(cache_path, &cache, &len, (size_t)64 << 20) == ERR_OK) {
        static const char key[] = "\nreelfarm_SOURCE_DIR:STATIC=";
        const char *k = strstr(cache, key);
        if (k) {
            k += strlen(key);
            const size_t kl = strcspn(k, "\r\n");
            snprintf(cand[nc++], sizeof cand[0], "%.*s/slurm/render.sbatch", (int)(kl < PATH_MAX ? kl : PATH_MAX), k);
        }
        free(cache);
    }
    err_clear();
    snprintf(cand[nc++], sizeof cand[0], "%s/../share/reelfarm/slurm/render.sbatch", dir);
    for (int i = 0; i < nc; i++) {
        if (!fs_is_file(cand[i])) continue;
        if (!realpath(cand[i], out) || strlen(out) >= cap) snprintf(out, cap, "%s", cand[i]);
        return ERR_OK;
    }
    return err_set(ERR_IO, "cannot find slurm/render.sbatch next to %s (looked in %s); give --template FILE", exe,
                   cand[0]);
}

/* The render's command line words after FILM and OUT. */
static void add_render_words(struct strbuf *b, const struct submit_options *o, const char *model) {
    char v[64];
    if (model) sb_shell_word(b, "--model"), sb_shell_word(b, model);
    if (o->overwrite) sb_shell_word(b, "--overwrite");
#define ADD_INT(flag, val)                                                                                             \
    do {                                                                                                               \
        snprintf(v, sizeof v, "%lld", (long long)(val));                                                               \
        sb_shell_word(b, flag), sb_shell_word(b, v);                                                                   \
    } while (0)
    if (o->sp) ADD_INT("--sp", o->sp);
    if (o->tp) ADD_INT("--tp", o->tp);
    if (o->ulysses) ADD_INT("--ulysses", o->ulysses);
    if (o->cfg_parallel) sb_shell_word(b, "--cfg-parallel");
    if (o->no_cfg_parallel) sb_shell_word(b, "--no-cfg-parallel");
    if (o->encoder_rank) sb_shell_word(b, "--encoder-rank");
    if (o->threads) ADD_INT("--threads", o->threads);
    if (o->checkpoint_every >= 0) ADD_INT("--checkpoint-every", o->checkpoint_every);
#undef ADD_INT
    if (o->progress_ep) sb_shell_word(b, "--progress-endpoint"), sb_shell_word(b, o->progress_ep);
    if (o->curve_secret) sb_shell_word(b, "--curve-secret"), sb_shell_word(b, o->curve_secret);
    if (o->allow_dir) sb_shell_word(b, "--allow-dir"), sb_shell_word(b, o->allow_dir);
    /* progress as JSON lines in the job's log, no progress bar */
    sb_shell_word(b, "--quiet"), sb_shell_word(b, "--progress-json");
}

/* Copy the template, replacing its #SBATCH lines and its parameters block. */
static int build_script(const char *template_path, const char *text, const struct submit_options *o, const char *film,
                        const char *out, const char *model, const char *log, const char *job_name, const char *bin,
                        const char *launcher, struct strbuf *b) {
    static const char params_begin[] = "# ---- parameters", params_end[] = "# ---- end of parameters";
    bool header_done = false, in_params = false, params_done = false;
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        const size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        if (!strncmp(line, "#SBATCH", 7)) {
            if (header_done) {
                line += n;
                continue;
            }
            header_done = true;
            time_t now = time(NULL);
            char date[32];
            strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
            sb_printf(b, "# Written by `reelfarm submit` at %s from %s.\n", date, template_path);
            sb_printf(b, "#SBATCH --job-name=\"%s\"\n", job_name);
            sb_printf(b, "#SBATCH --nodes=%d\n", o->nodes);
            sb_printf(b, "#SBATCH --ntasks-per-node=%d\n", o->ntasks_per_node);
            if (o->gpus_per_node) sb_printf(b, "#SBATCH --gpus-per-node=%d\n", o->gpus_per_node);
            if (o->cpus_per_task) sb_printf(b, "#SBATCH --cpus-per-task=%d\n", o->cpus_per_task);
            if (o->partition) sb_printf(b, "#SBATCH --partition=\"%s\"\n", o->partition);
            if (o->time) sb_printf(b, "#SBATCH --time=%s\n", o->time);
            sb_str(b, "#SBATCH --requeue\n");
            sb_printf(b, "#SBATCH --signal=B:USR1@%d\n", o->grace);
            sb_str(b, "#SBATCH --open-mode=append\n");
            sb_printf(b, "#SBATCH --output=\"%s\"\n", log);
            for (int i = 0; i < o->n_sbatch; i++)
                sb_printf(b, "#SBATCH %s\n", o->sbatch[i]);
            line += n;
            continue;
        }
        if (!in_params && !params_done && !strncmp(line, params_begin, sizeof params_begin - 1)) {
            sb_add(b, line, n);
            in_params = true;
            sb_str(b, "set --");
            sb_shell_word(b, film);
            sb_shell_word(b, out);
            add_render_words(b, o, model);
            sb_str(b, "\nbin=");
            sb_quoted(b, bin);
            sb_str(b, "\nlauncher=");
            sb_quoted(b, launcher);
            sb_str(b, "\n");
            line += n;
            continue;
        }
        if (in_params) {
            if (!strncmp(line, params_end, sizeof params_end - 1)) {
                in_params = false, params_done = true;
                sb_add(b, line, n);
            }
            line += n;
            continue;
        }
        sb_add(b, line, n);
        line += n;
    }
    if (b->oom) return err_set(ERR_NOMEM, "out of memory");
    if (!header_done || !params_done)
        return err_set(ERR_FORMAT,
                       "%s: not a reelfarm batch template (it needs #SBATCH lines and a block between "
                       "'%s' and '%s' lines)",
                       template_path, params_begin, params_end);
    return ERR_OK;
}

/* ---- sbatch ---- */

/* Run `sbatch --parsable [script_file]` (the script on stdin when script_file is NULL); job id into id. */
static int run_sbatch(const char *script_file, const struct strbuf *script, char *id, size_t cap) {
    int in[2] = {-1, -1}, outp[2] = {-1, -1};
    if (pipe(in) != 0) return err_set(ERR_IO, "pipe: %s", strerror(errno));
    if (pipe(outp) != 0) {
        close(in[0]), close(in[1]);
        return err_set(ERR_IO, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    char *argv[] = {"sbatch", "--parsable", (char *)script_file, NULL};
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, "sbatch", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]), close(outp[1]);
    if (rc != 0) {
        close(in[1]), close(outp[0]);
        return err_set(ERR_IO,
                       "cannot run sbatch: %s (is Slurm installed? --dry-run --script-out FILE writes the "
                       "script only)",
                       strerror(rc));
    }
    if (!script_file) { /* an sbatch that exits without reading gives EPIPE here, not a fatal SIGPIPE */
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, &old);
        if (fs_write_all(in[1], script->p, script->len, "sbatch's standard input") < 0) err_clear();
        sigaction(SIGPIPE, &old, NULL);
    }
    close(in[1]);
    char buf[256];
    size_t got = 0;
    ssize_t r;
    while ((r = read(outp[0], buf + got, sizeof buf - 1 - got)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) got += (size_t)r;
    close(outp[0]);
    buf[got] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return err_set(ERR_IO, "sbatch failed (%s %d); its message is above",
                       WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    const size_t idn = strspn(buf, "0123456789");
    if (idn == 0 || idn >= cap) return err_set(ERR_FORMAT, "sbatch printed no job id: '%s'", buf);
    memcpy(id, buf, idn);
    id[idn] = '\0';
    return ERR_OK;
}

int cmd_submit(int argc, char **argv) {
    /* --to: a render service instead of Slurm (cli/cmd_client.c) */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--to") || !strncmp(argv[i], "--to=", 5)) return cmd_submit_to(argc, argv);
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"model", required_argument, 0, 'm'},
                                             {"nodes", required_argument, 0, OPT_NODES},
                                             {"ntasks-per-node", required_argument, 0, OPT_NTASKS},
                                             {"gpus-per-node", required_argument, 0, OPT_GPUS},
                                             {"cpus-per-task", required_argument, 0, OPT_CPUS},
                                             {"partition", required_argument, 0, OPT_PARTITION},
                                             {"time", required_argument, 0, OPT_TIME},
                                             {"job-name", required_argument, 0, OPT_JOB_NAME},
                                             {"log", required_argument, 0, OPT_LOG},
                                             {"grace", required_argument, 0, OPT_GRACE},
                                             {"sbatch", required_argument, 0, OPT_SBATCH},
                                             {"launcher", required_argument, 0, OPT_LAUNCHER},
                                             {"sp", required_argument, 0, OPT_SP},
                                             {"tp", required_argument, 0, OPT_TP},
                                             {"ulysses", required_argument, 0, OPT_ULYSSES},
                                             {"cfg-parallel", no_argument, 0, OPT_CFG},
                                             {"no-cfg-parallel", no_argument, 0, OPT_NO_CFG},
                                             {"encoder-rank", no_argument, 0, OPT_ENCODER_RANK},
                                             {"threads", required_argument, 0, OPT_THREADS},
                                             {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
                                             {"progress-endpoint", required_argument, 0, OPT_PROGRESS_EP},
                                             {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
                                             {"allow-dir", required_argument, 0, OPT_ALLOW_DIR},
                                             {"dry-run", no_argument, 0, OPT_DRY_RUN},
                                             {"script-out", required_argument, 0, OPT_SCRIPT_OUT},
                                             {"template", required_argument, 0, OPT_TEMPLATE},
                                             {"overwrite", no_argument, 0, OPT_OVERWRITE},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    static const char cmd[] = "submit";
    struct submit_options o = {.nodes = 1, .grace = 120, .checkpoint_every = -1};
    bool ntasks_given = false;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': o.out = optarg; break;
        case 'm': o.model = optarg; break;
        case OPT_NODES: rc = arg_int("--nodes", optarg, 1, 100000, &o.nodes); break;
        case OPT_NTASKS:
            rc = arg_int("--ntasks-per-node", optarg, 1, 4096, &o.ntasks_per_node), ntasks_given = true;
            break;
        case OPT_GPUS: rc = arg_int("--gpus-per-node", optarg, 0, 1024, &o.gpus_per_node); break;
        case OPT_CPUS: rc = arg_int("--cpus-per-task", optarg, 1, 4096, &o.cpus_per_task); break;
        case OPT_PARTITION: o.partition = optarg, rc = check_sbatch_value("--partition", optarg); break;
        case OPT_TIME: o.time = optarg; break;
        case OPT_JOB_NAME: o.job_name = optarg, rc = check_sbatch_value("--job-name", optarg); break;
        case OPT_LOG: o.log = optarg; break;
        case OPT_GRACE: rc = arg_int("--grace", optarg, 1, 7 * 86400, &o.grace); break;
        case OPT_SBATCH:
            if (o.n_sbatch == SUBMIT_SBATCH_MAX)
                rc = err_set(ERR_INVALID_ARG, "--sbatch: at most %d options", SUBMIT_SBATCH_MAX);
            else if (optarg[0] != '-')
                rc = err_set(ERR_INVALID_ARG, "--sbatch %s: expected an sbatch option such as --account=abc", optarg);
            else if (strchr(optarg, '\n') || strchr(optarg, '\r'))
                rc = err_set(ERR_INVALID_ARG, "--sbatch: an option cannot hold a newline");
            else
                o.sbatch[o.n_sbatch++] = optarg;
            break;
        case OPT_LAUNCHER: o.launcher = optarg; break;
        case OPT_SP: rc = arg_int("--sp", optarg, 1, 65536, &o.sp); break;
        case OPT_TP: rc = arg_int("--tp", optarg, 1, 65536, &o.tp); break;
        case OPT_ULYSSES: rc = arg_int("--ulysses", optarg, 1, 65536, &o.ulysses); break;
        case OPT_CFG: o.cfg_parallel = true; break;
        case OPT_NO_CFG: o.no_cfg_parallel = true; break;
        case OPT_ENCODER_RANK: o.encoder_rank = true; break;
        case OPT_THREADS: rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case OPT_CKPT_EVERY: rc = arg_i64("--checkpoint-every", optarg, 0, 1 << 30, &o.checkpoint_every); break;
        case OPT_PROGRESS_EP: o.progress_ep = optarg; break;
        case OPT_CURVE_SECRET: o.curve_secret = optarg; break;
        case OPT_ALLOW_DIR: o.allow_dir = optarg; break;
        case OPT_DRY_RUN: o.dry_run = true; break;
        case OPT_SCRIPT_OUT: o.script_out = optarg; break;
        case OPT_TEMPLATE: o.template_path = optarg; break;
        case OPT_OVERWRITE: o.overwrite = true; break;
        case 'h': fputs(submit_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind >= argc) return usage_error(cmd, "give the film file (FILM.json)");
    o.film = argv[optind++];
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.launcher)
        o.launcher = getenv("REELFARM_LAUNCHER") && *getenv("REELFARM_LAUNCHER") ? getenv("REELFARM_LAUNCHER") : "srun";
    if (strcmp(o.launcher, "srun") != 0 && strcmp(o.launcher, "mpirun") != 0)
        return usage_error(cmd, "--launcher %s: expected srun or mpirun", o.launcher);
    if (o.cfg_parallel && o.no_cfg_parallel)
        return usage_error(cmd, "--cfg-parallel and --no-cfg-parallel exclude each other");
    if ((o.curve_secret || o.allow_dir) && (!o.progress_ep || !o.curve_secret || !o.allow_dir))
        return usage_error(cmd, "--curve-secret FILE and --allow-dir DIR go together, with --progress-endpoint");
    if (o.progress_ep && service_check_endpoint("--progress-endpoint", o.progress_ep, o.curve_secret != NULL) < 0)
        return usage_error(cmd, "%s", err_message());
    if (!ntasks_given) o.ntasks_per_node = o.gpus_per_node ? o.gpus_per_node : 1;
    long limit = 0;
    if (o.time) {
        if (parse_slurm_time(o.time, &limit) < 0) return usage_error(cmd, "%s", err_message());
        if (limit > 0 && limit <= o.grace)
            return usage_error(cmd,
                               "--time %s (%ld s) leaves no time to render before the checkpoint warning "
                               "(--grace %d s)",
                               o.time, limit, o.grace);
    }
    if (check_layout(&o) < 0) return usage_error(cmd, "%s", err_message());

    /* inputs: the film parses, the model exists, the output can be written */
    struct render_settings s;
    render_settings_defaults(&s);
    char *film = NULL, *out = NULL, *model = NULL, *log = NULL, *script_out = NULL, *template_text = NULL;
    char *bin = NULL;
    struct strbuf script = {0};
    int ret = 0;
    char template_path[PATH_MAX], job_id[64];
    if (o.model) s.set |= RS_BIT(RS_MODEL), rc = render_settings_set_str(&s.model, o.model);
    if (rc == ERR_OK && o.out) s.set |= RS_BIT(RS_OUTPUT), rc = render_settings_set_str(&s.output, o.out);
    if (rc == ERR_OK && !fs_is_file(o.film)) rc = err_set(ERR_IO, "%s: no such film file", o.film);
    if (rc == ERR_OK) rc = film_load(o.film, &s);
    if (rc == ERR_OK) rc = absolute_path(o.film, &film);
    if (rc == ERR_OK && !s.output)
        rc = err_set(ERR_INVALID_ARG, "%s: no output: give --out FILE (.mp4, .mkv, .webm or .h5)", o.film);
    if (rc == ERR_OK) rc = absolute_path(s.output, &out);
    if (rc == ERR_OK) rc = check_output(&o, o.out ? "--out" : "the film's output", out);
    if (rc == ERR_OK && s.model && !fs_is_dir(s.model))
        rc = err_set(ERR_IO, "%s%s: the model folder does not exist", o.model ? "--model " : "model ", s.model);
    if (rc == ERR_OK && o.model) rc = absolute_path(o.model, &model); /* the film's own model: the render reads it */
    if (rc == ERR_OK && o.log) {
        rc = absolute_path(o.log, &log);
    } else if (rc == ERR_OK) { /* next to the output */
        const size_t n = strlen(out) + 32;
        log = malloc(n);
        if (log)
            snprintf(log, n, "%s.slurm-%%j.log", out);
        else
            rc = err_set(ERR_NOMEM, "out of memory");
    }
    if (rc == ERR_OK) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", log);
        if (!fs_is_dir(dirname(dir))) rc = err_set(ERR_IO, "--log %s: the folder does not exist", log);
    }
    if (rc == ERR_OK) rc = check_sbatch_value("--log", log);
    if (rc == ERR_OK && o.script_out) {
        rc = absolute_path(o.script_out, &script_out);
        char dir[PATH_MAX];
        if (rc == ERR_OK) snprintf(dir, sizeof dir, "%s", script_out);
        if (rc == ERR_OK && !fs_is_dir(dirname(dir)))
            rc = err_set(ERR_IO, "--script-out %s: the folder does not exist", script_out);
    }
    if (rc == ERR_OK) {
        const char *env_bin = getenv("REELFARM_BIN");
        if (env_bin && *env_bin) {
            rc = absolute_path(env_bin, &bin);
        } else {
            char exe[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n <= 0)
                rc = err_set(ERR_IO, "cannot tell where this reelfarm binary is; set REELFARM_BIN");
            else
                exe[n] = '\0', bin = strdup(exe);
            if (rc == ERR_OK && !bin) rc = err_set(ERR_NOMEM, "out of memory");
        }
    }
    if (rc == ERR_OK) rc = find_template(o.template_path, template_path, sizeof template_path);
    size_t template_len = 0;
    if (rc == ERR_OK) rc = fs_read_file(template_path, &template_text, &template_len, (size_t)1 << 20);

    /* the script */
    char name[256];
    if (o.job_name) {
        snprintf(name, sizeof name, "%s", o.job_name);
    } else {
        const char *base = strrchr(out ? out : "", '/');
        snprintf(name, sizeof name, "reelfarm-%s", base ? base + 1 : "render");
        for (char *q = name; *q; q++)
            if (*q == ' ' || *q == '\t' || *q == '"' || *q == '\\' || *q == '\n') *q = '_';
    }
    if (rc == ERR_OK)
        rc = build_script(template_path, template_text, &o, film, out, model, log, name, bin, o.launcher, &script);
    if (rc == ERR_OK && script_out) rc = fs_write_file(script_out, script.p, script.len, true);
    if (rc == ERR_OK && o.dry_run) {
        fwrite(script.p, 1, script.len, stdout);
        goto end;
    }
    if (rc == ERR_OK) {
        char ckpt[PATH_MAX + 16];
        snprintf(ckpt, sizeof ckpt, "%s.ckpt.h5", out);
        if (fs_exists(ckpt) && !o.overwrite)
            fprintf(stderr, "reelfarm submit: %s exists: the job resumes that render (--overwrite starts again)\n",
                    ckpt);
        rc = run_sbatch(script_out, &script, job_id, sizeof job_id);
    }
    if (rc == ERR_OK) {
        printf("%s\n", job_id);
        fprintf(stderr, "reelfarm submit: job %s: %s -> %s on %d node(s) x %d rank(s)%s; log %s\n", job_id, film, out,
                o.nodes, o.ntasks_per_node, o.gpus_per_node ? " with GPUs" : "", log);
    }
end:
    if (rc < 0) ret = run_error();
    free(film), free(out), free(model), free(log), free(script_out), free(template_text), free(bin), free(script.p);
    render_settings_free(&s);
    return ret;
}
