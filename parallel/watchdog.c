/* parallel/watchdog.c - collective deadlines, failure reports and heartbeats (see watchdog.h). */
#include "parallel/watchdog.h"

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/process.h"
#include "core/timer.h"

enum {
    HOST_CAP = 64,        /* bytes per gathered host name */
    TAG_REPORT = 7101,    /* "I am waiting too": struct wd_report */
    TAG_HEARTBEAT = 7102, /* zero bytes: "I am alive and working" */
    NAMES_MAX = 8,        /* ranks named in the error line before "and N more" */
};

static const double TIMEOUT_DEFAULT_S = 300.0;
static const double SPIN_S = 0.0005;    /* yield and poll this long before sleeping */
static const long SLEEP_MIN_NS = 50000; /* then sleep 50 us, doubling up to 1 ms */
static const long SLEEP_MAX_NS = 1000000;
static const long REPORT_POLL_NS = 2000000;

/* What a timed-out rank tells the others. */
struct wd_report {
    int rank;
    char comm[32];
    char op[24];
    long long call;
    double waited;
};

static struct {
    bool configured, ready, hosts_ok;
    double timeout, grace, heartbeat_every, heartbeat_last;
    MPI_Comm watch; /* private duplicate of MPI_COMM_WORLD (ready) */
    int rank, world;
    char *hosts;       /* [world][HOST_CAP] */
    long long entered; /* collectives started by this rank */
    int fault_rank, fault_sig;
    long long fault_at; /* 0: no test fault */
} wd;

static double clamp(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static void sleep_ns(long ns) {
    struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static void configure(void) {
    if (wd.configured) return;
    wd.configured = true;
    wd.timeout = TIMEOUT_DEFAULT_S;
    const char *e = getenv("REELFARM_COMM_TIMEOUT");
    if (e && *e) {
        char *end = NULL;
        const double v = strcmp(e, "off") == 0 ? 0.0 : strtod(e, &end);
        if (end && (end == e || *end || !(v >= 0.0) || v > 1e7))
            LOG_WARN0("REELFARM_COMM_TIMEOUT=%s: expected seconds (a number >= 0; 0 or off: no limit); using %.0f s", e,
                      TIMEOUT_DEFAULT_S);
        else
            wd.timeout = v;
    }
    wd.grace = clamp(wd.timeout / 10.0, 2.0, 20.0);
    wd.heartbeat_every = wd.timeout / 4.0;
    const char *f = getenv("REELFARM_TEST_COMM_FAULT");
    char sig[8] = "KILL";
    if (f && *f && sscanf(f, "%d:%lld:%7s", &wd.fault_rank, &wd.fault_at, sig) >= 2 && wd.fault_at > 0)
        wd.fault_sig = strcmp(sig, "STOP") == 0 ? SIGSTOP : SIGKILL;
    else
        wd.fault_at = 0;
}

double par_watchdog_timeout(void) {
    configure();
    return wd.timeout;
}

static const char *host_of(int rank) {
    return wd.hosts_ok && rank >= 0 && rank < wd.world ? wd.hosts + (size_t)rank * HOST_CAP : "?";
}

void par_watchdog_init(void) {
    configure();
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &wd.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &wd.world));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &wd.watch));
    MPI_CHECK(MPI_Comm_set_errhandler(wd.watch, MPI_ERRORS_RETURN));
    wd.hosts = calloc((size_t)wd.world, HOST_CAP);
    CHECK(wd.hosts, "out of memory for %d host names", wd.world);
    wd.ready = true; /* reports work from here on; host names once the gather is done */
    char mine[HOST_CAP] = {0};
    snprintf(mine, sizeof mine, "%s", proc_host());
    MPI_Request req;
    MPI_CHECK(MPI_Iallgather(mine, HOST_CAP, MPI_CHAR, wd.hosts, HOST_CAP, MPI_CHAR, wd.watch, &req));
    par_watchdog_wait(&req, &(struct par_wait_site){.comm = "world", .op = "host-name gather", .size = wd.world});
    for (int r = 0; r < wd.world; r++)
        wd.hosts[(size_t)r * HOST_CAP + HOST_CAP - 1] = '\0';
    wd.hosts_ok = true;
    if (wd.rank == 0)
        LOG_DEBUG("collective deadline %.1f s (REELFARM_COMM_TIMEOUT), report grace %.1f s", wd.timeout, wd.grace);
}

/* Receive and count pending zero-byte heartbeats. */
static int drain_heartbeats(void) {
    int n = 0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_HEARTBEAT, wd.watch, &flag, &st) != MPI_SUCCESS || !flag) return n;
        char none;
        MPI_Recv(&none, 0, MPI_BYTE, st.MPI_SOURCE, TAG_HEARTBEAT, wd.watch, MPI_STATUS_IGNORE);
        n++;
    }
}

void par_watchdog_free(void) {
    if (!wd.ready) return;
    LOG_DEBUG("%lld collectives (REELFARM_TEST_COMM_FAULT counts these)", wd.entered);
    drain_heartbeats();
    MPI_Comm_free(&wd.watch);
    free(wd.hosts);
    wd.hosts = NULL;
    wd.ready = wd.hosts_ok = false;
}

void par_watchdog_heartbeat(void) {
    if (!wd.ready || wd.world < 2 || wd.timeout <= 0.0) return;
    const double t = time_now();
    if (t - wd.heartbeat_last < wd.heartbeat_every) return;
    wd.heartbeat_last = t;
    static char none;
    for (int r = 0; r < wd.world; r++) {
        if (r == wd.rank) continue;
        MPI_Request rq;
        if (MPI_Isend(&none, 0, MPI_BYTE, r, TAG_HEARTBEAT, wd.watch, &rq) == MPI_SUCCESS) MPI_Request_free(&rq);
    }
}

void par_watchdog_enter(void) {
    configure();
    ++wd.entered;
    if (!wd.fault_at || wd.entered != wd.fault_at || proc_rank() != wd.fault_rank) return;
    LOG_WARN("test hook REELFARM_TEST_COMM_FAULT: rank %d raises %s on itself at its collective %lld", wd.fault_rank,
             wd.fault_sig == SIGSTOP ? "SIGSTOP" : "SIGKILL", wd.fault_at);
    fflush(stderr);
    raise(wd.fault_sig);
}

/* "rank 1 (host a), rank 3 (host b)" for up to NAMES_MAX ranks with pick[r]; returns how many. */
static int name_ranks(char *buf, size_t cap, const bool *pick) {
    size_t used = 0;
    int n = 0;
    buf[0] = '\0';
    for (int r = 0; r < wd.world; r++) {
        if (!pick[r]) continue;
        if (n < NAMES_MAX && used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "%srank %d (host %s)", n ? ", " : "", r, host_of(r));
        n++;
    }
    if (n > NAMES_MAX && used < cap) snprintf(buf + used, cap - used, " and %d more", n - NAMES_MAX);
    return n;
}

/* The deadline passed: exchange reports, then end the job with one line (see watchdog.h). */
RF_NORETURN static void timed_out(const struct par_wait_site *s, double waited) {
    char what[200], at_least[48] = "";
    if (s->min_timeout > wd.timeout)
        snprintf(at_least, sizeof at_least, ", at least %g s for this call", s->min_timeout);
    snprintf(what, sizeof what, "comm %s: %s (call %lld, %d ranks) waited %.1f s (REELFARM_COMM_TIMEOUT=%g%s)", s->comm,
             s->op, (long long)s->call, s->size, waited, wd.timeout, at_least);
    if (!wd.ready || wd.world < 2)
        FATAL("%s; the ranks that did not arrive are unknown (no report channel); the job ends", what);
    static struct wd_report mine; /* read by the sends until they complete */
    mine = (struct wd_report){.rank = wd.rank, .call = (long long)s->call, .waited = waited};
    snprintf(mine.comm, sizeof mine.comm, "%s", s->comm);
    snprintf(mine.op, sizeof mine.op, "%s", s->op);
    for (int r = 0; r < wd.world; r++) {
        if (r == wd.rank) continue;
        MPI_Request rq;
        if (MPI_Isend(&mine, (int)sizeof mine, MPI_BYTE, r, TAG_REPORT, wd.watch, &rq) == MPI_SUCCESS)
            MPI_Request_free(&rq);
    }
    bool *seen = calloc((size_t)wd.world, sizeof *seen);
    struct wd_report *got = calloc((size_t)wd.world, sizeof *got);
    CHECK(seen && got, "out of memory");
    seen[wd.rank] = true;
    got[wd.rank] = mine;
    int n_seen = 1;
    /* Collect reports for the grace period (or until every rank has reported). The lowest-numbered
     * reporting rank prints; the others wait one more grace period for its abort, then print their own. */
    const double t_grace = time_now() + wd.grace;
    bool awaiting_abort = false;
    double t_abort = 0.0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        while (MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPORT, wd.watch, &flag, &st) == MPI_SUCCESS && flag) {
            struct wd_report in;
            if (MPI_Recv(&in, (int)sizeof in, MPI_BYTE, st.MPI_SOURCE, TAG_REPORT, wd.watch, MPI_STATUS_IGNORE) !=
                MPI_SUCCESS)
                break;
            in.comm[sizeof in.comm - 1] = in.op[sizeof in.op - 1] = '\0';
            if (!seen[st.MPI_SOURCE]) n_seen++;
            seen[st.MPI_SOURCE] = true;
            got[st.MPI_SOURCE] = in;
        }
        drain_heartbeats(); /* too late: the deadline has passed */
        const double t = time_now();
        if (!awaiting_abort && (t >= t_grace || n_seen == wd.world)) {
            int reporter = 0;
            while (!seen[reporter])
                reporter++;
            if (reporter == wd.rank) break;
            awaiting_abort = true;
            t_abort = t + wd.grace + 1.0;
        }
        if (awaiting_abort && t >= t_abort) break;
        sleep_ns(REPORT_POLL_NS);
    }
    /* the silent members of this communicator first: those are the ones this rank waits for */
    bool *mine_silent = calloc((size_t)wd.world, sizeof *mine_silent);
    bool *other_silent = calloc((size_t)wd.world, sizeof *other_silent);
    CHECK(mine_silent && other_silent, "out of memory");
    for (int i = 0; s->members && i < s->size; i++)
        if (s->members[i] >= 0 && s->members[i] < wd.world) mine_silent[s->members[i]] = !seen[s->members[i]];
    for (int r = 0; r < wd.world; r++)
        if (!seen[r] && !mine_silent[r]) other_silent[r] = true;
    char silent[300], elsewhere[300], detail[1024];
    const int n_mine = name_ranks(silent, sizeof silent, mine_silent);
    const int n_other = name_ranks(elsewhere, sizeof elsewhere, other_silent);
    if (n_mine > 0) {
        snprintf(detail, sizeof detail,
                 "no report within %.1f s from %s of comm %s: did not arrive (stopped, stuck in computation or dead)"
                 "%s%s; %d of %d ranks are waiting in collectives",
                 wd.grace, silent, s->comm, n_other ? "; also silent: " : "", n_other ? elsewhere : "", n_seen,
                 wd.world);
    } else if (n_other > 0) {
        snprintf(detail, sizeof detail,
                 "no report within %.1f s from %s: did not arrive (stopped, stuck in computation or dead); %d of %d "
                 "ranks are waiting in collectives",
                 wd.grace, elsewhere, n_seen, wd.world);
    } else {
        /* every rank is waiting: collectives that do not match (a bug); say who waits where */
        size_t used = (size_t)snprintf(detail, sizeof detail, "every rank is waiting (mismatched collectives?):");
        for (int r = 0; r < wd.world && r < NAMES_MAX && used < sizeof detail; r++)
            used += (size_t)snprintf(detail + used, sizeof detail - used, "%s rank %d %s %s #%lld", r ? "," : "", r,
                                     got[r].comm, got[r].op, got[r].call);
        if (wd.world > NAMES_MAX && used < sizeof detail) snprintf(detail + used, sizeof detail - used, ", ...");
    }
    FATAL("%s; %s; the job ends now (resume from the last checkpoint; raise REELFARM_COMM_TIMEOUT if a rank is only "
          "slow)",
          what, detail);
}

void par_watchdog_wait_poll(par_poll_fn poll, void *user, const struct par_wait_site *site) {
    if (poll(user) == PAR_POLL_DONE) return;
    /* fast path: partners arrive within a fraction of a millisecond; yield the core meanwhile */
    const double t0 = time_now();
    double t = t0;
    while (t - t0 < SPIN_S) {
        sched_yield();
        if (poll(user) == PAR_POLL_DONE) return;
        t = time_now();
    }
    /* slow path: sleep between polls; the deadline restarts whenever a working rank sends a heartbeat
     * (or the operation reports progress) */
    configure();
    const double timeout = wd.timeout > 0.0 && site->min_timeout > wd.timeout ? site->min_timeout : wd.timeout;
    double since = t0;
    long ns = SLEEP_MIN_NS;
    for (;;) {
        sleep_ns(ns);
        ns = ns * 2 < SLEEP_MAX_NS ? ns * 2 : SLEEP_MAX_NS;
        const enum par_poll p = poll(user);
        if (p == PAR_POLL_DONE) return;
        t = time_now();
        if (p == PAR_POLL_PROGRESS) since = t;
        if (wd.ready && drain_heartbeats() > 0) since = t;
        if (timeout > 0.0 && t - since >= timeout) timed_out(site, t - t0);
    }
}

/* An MPI request as a poll. */
struct mpi_poll {
    MPI_Request *req;
    MPI_Status *status;
};

static enum par_poll poll_mpi(void *user) {
    struct mpi_poll *w = user;
    int done = 0;
    MPI_CHECK(MPI_Test(w->req, &done, w->status));
    return done ? PAR_POLL_DONE : PAR_POLL_PENDING;
}

void par_watchdog_wait_status(MPI_Request *req, MPI_Status *status, const struct par_wait_site *site) {
    struct mpi_poll w = {.req = req, .status = status};
    par_watchdog_wait_poll(poll_mpi, &w, site);
}

void par_watchdog_wait(MPI_Request *req, const struct par_wait_site *site) {
    par_watchdog_wait_status(req, MPI_STATUS_IGNORE, site);
}
