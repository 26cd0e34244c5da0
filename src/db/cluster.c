/* The private PostgreSQL cluster under var/: placement, initdb, configuration, start and stop,
 * and the `pulse` database. Server tools run in a forked child that drops to the server user
 * when we are root; their output is captured for error messages. */
#include "db/cluster.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/conninfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

/* Debian/Ubuntu layout: one folder per major version (overridable at build time for tests). */
#ifndef PG_LIB_DIR
#define PG_LIB_DIR "/usr/lib/postgresql"
#endif
/* Root only, when the server user cannot reach var/: persistent state belongs under /var/lib
 * (FHS); /var/tmp would do, but its cleaner (30 days) may delete rarely touched table files. */
#define RELOCATE_DIR "/var/lib/pulse"
/* Only the socket moves here when var/ is too deep for a socket path; the server touches its
 * socket files hourly so tmp cleaners leave them alone, and a lost folder is recreated. */
#define SOCKET_TMP_DIR "/tmp"
#define SERVER_USER "postgres"
#define MAX_GROUPS 64
#define OUTPUT_CAP (64 * 1024)
/* sizeof(sockaddr_un.sun_path) - 1 on Linux; the server refuses longer socket paths. */
#define SOCKET_PATH_MAX 107
#define SOCKET_NAME_MAX "/.s.PGSQL.65535"

typedef struct cluster_t {
    char var_abs[PATH_MAX];
    char root[PATH_MAX]; /* holds data/, run/, log/ */
    char data[PATH_MAX], run[PATH_MAX], log[PATH_MAX], logfile[PATH_MAX];
    char bindir[PATH_MAX];
    int relocated;  /* root is under /var/lib/pulse, recorded in var_abs/pg/location */
    int run_in_tmp; /* the socket folder is /tmp/pulse-pg-<hash>: root/run was too long */
    int as_root;    /* euid 0: server tools run as the user below */
    uid_t uid;
    gid_t gid;
    gid_t groups[MAX_GROUPS];
    int ngroups;
    char user[64];
    int port;
    int fast;
    long max_fd;
} cluster_t;

static int join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reads a small text file whole; trailing whitespace removed. -1 if it cannot be read. */
static int read_text(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < outlen) {
        ssize_t n = read(fd, out + len, outlen - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' '))
        len--;
    out[len] = '\0';
    return 0;
}

/* Writes path atomically (temp file + rename), owned by the server user when we are root. */
static int write_file(const cluster_t *c, const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return pulse_fail(err, errlen, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return pulse_fail(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return pulse_fail(err, errlen, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    if (c != NULL && c->as_root && fchown(fd, c->uid, c->gid) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return pulse_fail(err, errlen, "cannot give %s to %s: %s", tmp, c->user, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pulse_fail(err, errlen, "cannot rename %s: %s", tmp, strerror(e));
    }
    return 0;
}

static int mkdir_p(const char *path, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
        return pulse_fail(err, errlen, "path too long: %s", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return pulse_fail(err, errlen, "cannot create folder %s: %s", p, strerror(errno));
            *s = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "pulse: SHA-256 unavailable in libcrypto\n");
        abort();
    }
    for (unsigned int i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* The last part of a tool's output, on one line, for an error message. */
static void output_tail(const char *text, size_t len, char *out, size_t outlen)
{
    size_t keep = outlen > 1 ? outlen - 1 : 0;
    if (keep > 600)
        keep = 600;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    size_t start = len > keep ? len - keep : 0;
    size_t o = 0;
    for (size_t i = start; i < len && o + 1 < outlen; i++) {
        char ch = text[i];
        if (ch == '\n') {
            if (o + 3 >= outlen)
                break;
            memcpy(out + o, " | ", 3);
            o += 3;
        } else if (ch != '\r') {
            out[o++] = ch;
        }
    }
    if (outlen > 0)
        out[o] = '\0';
}

/* The server user when we are root: the owner of an existing data folder (unless root), else
 * `postgres`. Groups are resolved here, in the parent: initgroups() is not safe after fork(). */
static int resolve_server_user(cluster_t *c, uid_t owner, char *err, size_t errlen)
{
    if (!c->as_root)
        return 0;
    struct passwd *pw = (owner != (uid_t)-1 && owner != 0) ? getpwuid(owner) : getpwnam(SERVER_USER);
    if (pw == NULL) {
        if (owner != (uid_t)-1 && owner != 0)
            return pulse_fail(err, errlen, "the database folder %s belongs to uid %u, which has no account", c->data,
                              (unsigned)owner);
        return pulse_fail(err, errlen,
                          "PostgreSQL refuses to run as root and there is no '" SERVER_USER "' system user to run it as: "
                          "install the server (apt-get install postgresql), or set PULSE_DATABASE_URL");
    }
    if (strlen(pw->pw_name) >= sizeof(c->user))
        return pulse_fail(err, errlen, "user name too long: %s", pw->pw_name);
    strcpy(c->user, pw->pw_name);
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
    int n = MAX_GROUPS;
    if (getgrouplist(pw->pw_name, pw->pw_gid, c->groups, &n) < 0) {
        n = 1;
        c->groups[0] = pw->pw_gid;
    }
    c->ngroups = n;
    return 0;
}

/* In a forked child: drops to the server user. Only async-signal-safe calls. */
static int child_drop_privileges(const cluster_t *c)
{
    if (!c->as_root)
        return 0;
    if (setgroups((size_t)c->ngroups, c->groups) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0)
        return -1;
    if (setuid(0) == 0) /* must not be able to regain root */
        return -1;
    return 0;
}

static void child_reset(const cluster_t *c)
{
    static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    if (close_range(3, ~0U, 0) != 0) {
        for (long fd = 3; fd < c->max_fd; fd++)
            close((int)fd);
    }
}

/* Runs argv[0] (absolute path) as the server user, stdin from /dev/null, stdout+stderr captured
 * into out (capped). Returns the exit status, 128+signal, or -1 if it could not run. */
static int run_tool(const cluster_t *c, const char *const argv[], pulse_buf_t *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        pulse_buf_printf(out, "pipe: %s", strerror(errno));
        return -1;
    }
    char *const envp[] = {"PATH=/usr/bin:/bin", "LANG=C", NULL};
    pid_t pid = fork();
    if (pid < 0) {
        pulse_buf_printf(out, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(126);
        child_reset(c);
        if (child_drop_privileges(c) != 0) {
            static const char m[] = "pulse: cannot switch to the database server user\n";
            (void)!write(2, m, sizeof(m) - 1);
            _exit(126);
        }
        if (chdir("/") != 0)
            _exit(126);
        execve(argv[0], (char *const *)argv, envp);
        static const char m[] = "pulse: cannot execute the PostgreSQL tool\n";
        (void)!write(2, m, sizeof(m) - 1);
        _exit(127);
    }
    close(p[1]);
    char chunk[4096];
    for (;;) {
        ssize_t n = read(p[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (out->len < OUTPUT_CAP)
            pulse_buf_append(out, chunk, (size_t)n);
    }
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            pulse_buf_printf(out, "waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* Runs a tool that must succeed; on failure err gets "<what> failed (exit N): <output tail>". */
static int run_tool_ok(const cluster_t *c, const char *what, const char *const argv[], char *err, size_t errlen)
{
    pulse_buf_t out = PULSE_BUF_INIT;
    int rc = run_tool(c, argv, &out);
    if (rc == 0) {
        pulse_buf_free(&out);
        return 0;
    }
    char tail[700];
    output_tail(out.data ? out.data : "", out.len, tail, sizeof(tail));
    pulse_fail(err, errlen, "%s failed (exit %d): %s", what, rc, tail);
    pulse_log(PULSE_LOG_ERROR, "db.cluster.tool_failed", "%s failed (exit %d): %s", what, rc, out.data ? out.data : "");
    pulse_buf_free(&out);
    return -1;
}

/* Whether the server user can traverse to path (every parent must be searchable for it). */
static int server_user_can_reach(const cluster_t *c, const char *path)
{
    if (!c->as_root)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        if (child_drop_privileges(c) != 0)
            _exit(2);
        _exit(access(path, X_OK) == 0 ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Creates (or fixes) one of data/, run/, log/: owned by the server user, with mode. */
static int prepare_dir(const cluster_t *c, const char *path, mode_t mode, char *err, size_t errlen)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return pulse_fail(err, errlen, "cannot create folder %s: %s", path, strerror(errno));
    if (c->as_root && chown(path, c->uid, c->gid) != 0)
        return pulse_fail(err, errlen, "cannot give %s to %s: %s", path, c->user, strerror(errno));
    if (chmod(path, mode) != 0)
        return pulse_fail(err, errlen, "cannot set permissions of %s: %s", path, strerror(errno));
    return 0;
}

static void var_hash(const cluster_t *c, char out[17])
{
    char hash[65];
    sha256_hex(c->var_abs, hash);
    memcpy(out, hash, 16);
    out[16] = '\0';
}

static int set_root(cluster_t *c, const char *root, char *err, size_t errlen)
{
    if (snprintf(c->root, sizeof(c->root), "%s", root) >= (int)sizeof(c->root) || join(c->data, sizeof(c->data), root, "data") ||
        join(c->run, sizeof(c->run), root, "run") || join(c->log, sizeof(c->log), root, "log") ||
        join(c->logfile, sizeof(c->logfile), c->log, "postgresql.log"))
        return pulse_fail(err, errlen, "path too long: %s", root);
    c->run_in_tmp = strlen(c->run) + strlen(SOCKET_NAME_MAX) > SOCKET_PATH_MAX;
    if (c->run_in_tmp) {
        char hash[17];
        var_hash(c, hash);
        snprintf(c->run, sizeof(c->run), SOCKET_TMP_DIR "/pulse-pg-%s", hash);
    }
    return 0;
}

/* Reads var_abs/pg/location if there is one; else the root is var_abs/pg. */
static int locate(cluster_t *c, char *err, size_t errlen)
{
    char pgdir[PATH_MAX], loc[PATH_MAX], target[PATH_MAX];
    if (join(pgdir, sizeof(pgdir), c->var_abs, "pg") || join(loc, sizeof(loc), pgdir, "location"))
        return pulse_fail(err, errlen, "path too long: %s", c->var_abs);
    c->relocated = 0;
    if (read_text(loc, target, sizeof(target)) == 0) {
        if (target[0] != '/')
            return pulse_fail(err, errlen, "%s should hold an absolute path, not '%s': delete it to start over", loc, target);
        c->relocated = 1;
        return set_root(c, target, err, errlen);
    }
    return set_root(c, pgdir, err, errlen);
}

static int init_cluster_struct(cluster_t *c, const char *var_dir, int create, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->as_root = geteuid() == 0;
    c->uid = (uid_t)-1;
    c->port = 5432;
    long m = sysconf(_SC_OPEN_MAX);
    c->max_fd = (m > 0 && m < 65536) ? m : 65536;
    const char *port = getenv("PULSE_PG_PORT");
    if (port != NULL && *port != '\0') {
        char *end;
        long p = strtol(port, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535)
            return pulse_fail(err, errlen, "PULSE_PG_PORT must be an integer from 1 to 65535, got '%s'", port);
        c->port = (int)p;
    }
    const char *fast = getenv("PULSE_PG_FAST");
    c->fast = fast != NULL && strcmp(fast, "1") == 0;
    if (var_dir == NULL || *var_dir == '\0')
        return pulse_fail(err, errlen, "no var folder given for the private database cluster");
    if (create && mkdir_p(var_dir, err, errlen) != 0)
        return -1;
    if (realpath(var_dir, c->var_abs) == NULL) {
        if (!create && errno == ENOENT)
            return 1;
        return pulse_fail(err, errlen, "cannot resolve %s: %s", var_dir, strerror(errno));
    }
    return 0;
}

/* flock on var_abs/pg.lock, held until the returned fd is closed. O_CLOEXEC matters: a server
 * started by pg_ctl must not inherit the lock and hold it for its whole life. */
static int take_lock(const cluster_t *c, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (join(path, sizeof(path), c->var_abs, "pg.lock"))
        return pulse_fail(err, errlen, "path too long: %s", c->var_abs);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return pulse_fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return pulse_fail(err, errlen, "cannot lock %s: %s", path, strerror(e));
        }
    }
    return fd;
}

static int parse_version(const char *s, long *major, long *minor)
{
    char *end;
    *major = strtol(s, &end, 10);
    *minor = 0;
    if (end == s)
        return -1;
    if (*end == '.') {
        const char *m = end + 1;
        *minor = strtol(m, &end, 10);
        if (end == m)
            return -1;
    }
    return *end == '\0' ? 0 : -1;
}

/* The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl. */
static int find_newest_bindir(cluster_t *c, char *err, size_t errlen)
{
    DIR *d = opendir(PG_LIB_DIR);
    long best_major = -1, best_minor = -1;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            long major, minor;
            char initdb[PATH_MAX], pgctl[PATH_MAX];
            if (parse_version(e->d_name, &major, &minor) != 0)
                continue;
            snprintf(initdb, sizeof(initdb), PG_LIB_DIR "/%s/bin/initdb", e->d_name);
            snprintf(pgctl, sizeof(pgctl), PG_LIB_DIR "/%s/bin/pg_ctl", e->d_name);
            if (access(initdb, X_OK) != 0 || access(pgctl, X_OK) != 0)
                continue;
            if (major > best_major || (major == best_major && minor > best_minor)) {
                best_major = major;
                best_minor = minor;
                snprintf(c->bindir, sizeof(c->bindir), PG_LIB_DIR "/%s/bin", e->d_name);
            }
        }
        closedir(d);
    }
    if (best_major < 0)
        return pulse_fail(err, errlen,
                          "PostgreSQL server programs (initdb, pg_ctl) were not found under " PG_LIB_DIR "/*/bin: install "
                          "them (apt-get install postgresql), or set PULSE_DATABASE_URL to use an existing server");
    return 0;
}

static int bindir_for_existing(cluster_t *c, char *err, size_t errlen)
{
    char vfile[PATH_MAX], version[32], pgctl[PATH_MAX + 32];
    if (join(vfile, sizeof(vfile), c->data, "PG_VERSION") || read_text(vfile, version, sizeof(version)) != 0)
        return pulse_fail(err, errlen, "cannot read %s/PG_VERSION", c->data);
    long major, minor;
    if (parse_version(version, &major, &minor) != 0)
        return pulse_fail(err, errlen, "%s/PG_VERSION holds '%s', not a version", c->data, version);
    snprintf(c->bindir, sizeof(c->bindir), PG_LIB_DIR "/%s/bin", version);
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    if (access(pgctl, X_OK) != 0)
        return pulse_fail(err, errlen,
                          "the database in %s was created by PostgreSQL %s, whose server programs are not installed: "
                          "install postgresql-%s, or delete %s to start over with an empty database",
                          c->data, version, version, c->root);
    return 0;
}

/* Creates the folder of a relocated cluster, refusing one (or a symlink) someone else made. */
static int make_relocated_root(const cluster_t *c, const char *root, char *err, size_t errlen)
{
    if (mkdir(root, 0700) != 0 && errno != EEXIST)
        return pulse_fail(err, errlen, "cannot create folder %s: %s", root, strerror(errno));
    struct stat st;
    if (lstat(root, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return pulse_fail(err, errlen, "%s exists but is not a folder owned by uid %u: remove it", root, (unsigned)geteuid());
    if (chmod(root, c->as_root ? 0755 : 0700) != 0)
        return pulse_fail(err, errlen, "cannot set permissions of %s: %s", root, strerror(errno));
    return 0;
}

/* /tmp is shared: the socket folder must be ours (or, under root, the server user's), not a
 * folder or symlink someone planted to catch our connections. */
static int make_tmp_socket_dir(const cluster_t *c, char *err, size_t errlen)
{
    if (mkdir(c->run, 0700) != 0 && errno != EEXIST)
        return pulse_fail(err, errlen, "cannot create folder %s: %s", c->run, strerror(errno));
    struct stat st;
    if (lstat(c->run, &st) != 0 || !S_ISDIR(st.st_mode) || !(st.st_uid == geteuid() || (c->as_root && st.st_uid == c->uid)))
        return pulse_fail(err, errlen, "%s exists but is not a folder owned by uid %u: remove it", c->run, (unsigned)geteuid());
    return 0;
}

/* A place the server user can reach, for a cluster var/ cannot hold (root only). */
static int relocate(cluster_t *c, const char *why, char *err, size_t errlen)
{
    char hash[17], root[PATH_MAX], loc[PATH_MAX];
    var_hash(c, hash);
    snprintf(root, sizeof(root), RELOCATE_DIR "/pg-%s", hash);
    if (mkdir_p(RELOCATE_DIR, err, errlen) != 0 || make_relocated_root(c, root, err, errlen) != 0)
        return -1;
    if (snprintf(loc, sizeof(loc), "%s/pg/location", c->var_abs) >= (int)sizeof(loc))
        return pulse_fail(err, errlen, "path too long: %s", c->var_abs);
    char text[PATH_MAX + 2];
    snprintf(text, sizeof(text), "%s\n", root);
    if (write_file(NULL, loc, text, 0644, err, errlen) != 0)
        return -1;
    c->relocated = 1;
    pulse_log(PULSE_LOG_INFO, "db.cluster.location", "private database cluster for %s placed in %s (%s)", c->var_abs, root, why);
    return set_root(c, root, err, errlen);
}

/* A value for postgresql.conf: single quotes doubled, backslashes escaped. */
static void conf_quote(pulse_buf_t *b, const char *s)
{
    pulse_buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            pulse_buf_putc(b, *s);
        pulse_buf_putc(b, *s);
    }
    pulse_buf_putc(b, '\'');
}

/* Writes data/pulse.conf (included from postgresql.conf); *changed tells whether it differs. */
static int write_settings(const cluster_t *c, int *changed, char *err, size_t errlen)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    const char *onoff = c->fast ? "off" : "on";
    pulse_buf_puts(&b, "# Written by pulse on every start (src/db/cluster.c); edits here are overwritten.\n"
                       "listen_addresses = ''\nunix_socket_directories = ");
    conf_quote(&b, c->run);
    pulse_buf_printf(&b,
                     "\nunix_socket_permissions = 0777\nport = %d\nmax_connections = 200\n"
                     "fsync = %s\nsynchronous_commit = %s\nfull_page_writes = %s\n"
                     "logging_collector = off\nlog_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
                     "log_min_duration_statement = -1\n",
                     c->port, onoff, onoff, onoff);
    char path[PATH_MAX];
    if (join(path, sizeof(path), c->data, "pulse.conf")) {
        pulse_buf_free(&b);
        return pulse_fail(err, errlen, "path too long: %s", c->data);
    }
    char old[4096];
    /* read_text drops the final newline that b ends with */
    *changed = !(read_text(path, old, sizeof(old)) == 0 && strlen(old) == b.len - 1 && memcmp(old, b.data, b.len - 1) == 0);
    int rc = *changed ? write_file(c, path, b.data, 0600, err, errlen) : 0;
    pulse_buf_free(&b);
    return rc;
}

static int append_include(const cluster_t *c, char *err, size_t errlen)
{
    char path[PATH_MAX];
    static const char line[] = "\n# Pulse: its settings live in pulse.conf, rewritten on each start.\n"
                               "include_if_exists = 'pulse.conf'\n";
    if (join(path, sizeof(path), c->data, "postgresql.conf"))
        return pulse_fail(err, errlen, "path too long: %s", c->data);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return pulse_fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    ssize_t n = write(fd, line, sizeof(line) - 1);
    close(fd);
    if (n != (ssize_t)(sizeof(line) - 1))
        return pulse_fail(err, errlen, "cannot append to %s", path);
    return 0;
}

static int run_initdb(cluster_t *c, char *err, size_t errlen)
{
    char initdb[PATH_MAX + 32], pgdata[PATH_MAX + 16];
    snprintf(initdb, sizeof(initdb), "%s/initdb", c->bindir);
    snprintf(pgdata, sizeof(pgdata), "--pgdata=%s", c->data);
    /* C.UTF-8 is built into glibc >= 2.35; fall back to C elsewhere. */
    locale_t probe = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    const char *locale = probe != (locale_t)0 ? "--locale=C.UTF-8" : "--locale=C";
    if (probe != (locale_t)0)
        freelocale(probe);
    const char *argv[] = {initdb,
                          pgdata,
                          "--auth-local=trust",
                          "--auth-host=scram-sha-256",
                          "--username=pulse",
                          "--encoding=UTF8",
                          locale,
                          c->fast ? "--no-sync" : NULL,
                          NULL};
    pulse_log(PULSE_LOG_INFO, "db.cluster.init", "creating the private database cluster in %s (with %s/initdb%s%s)", c->data,
              c->bindir, c->as_root ? ", run as user " : "", c->as_root ? c->user : "");
    if (run_tool_ok(c, "initdb", argv, err, errlen) != 0)
        return -1;
    return append_include(c, err, errlen);
}

/* pg_ctl status: 1 running, 0 not running, -1 error. */
static int server_running(const cluster_t *c, char *err, size_t errlen)
{
    char pgctl[PATH_MAX + 32];
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    const char *argv[] = {pgctl, "status", "-D", c->data, NULL};
    pulse_buf_t out = PULSE_BUF_INIT;
    int rc = run_tool(c, argv, &out);
    if (rc == 0 || rc == 3) {
        pulse_buf_free(&out);
        return rc == 0;
    }
    char tail[700];
    output_tail(out.data ? out.data : "", out.len, tail, sizeof(tail));
    pulse_buf_free(&out);
    return pulse_fail(err, errlen, "pg_ctl status failed (exit %d): %s", rc, tail);
}

/* Whether postmaster.pid names a process that died but was not reaped yet: pg_ctl status calls
 * that "running". Happens in containers whose PID 1 reaps orphans late. */
static int postmaster_is_zombie(const cluster_t *c)
{
    char path[PATH_MAX], text[64], stat_path[64], st[512];
    if (join(path, sizeof(path), c->data, "postmaster.pid") || read_text(path, text, sizeof(text)) != 0)
        return 0;
    long pid = strtol(text, NULL, 10);
    if (pid <= 0)
        return 0;
    snprintf(stat_path, sizeof(stat_path), "/proc/%ld/stat", pid);
    if (read_text(stat_path, st, sizeof(st)) != 0)
        return 0;
    const char *paren = strrchr(st, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

/* server_running, after waiting (up to 10 s) for a dead postmaster to be reaped. */
static int server_running_settled(const cluster_t *c, char *err, size_t errlen)
{
    int running = server_running(c, err, errlen);
    if (running != 1 || !postmaster_is_zombie(c))
        return running;
    for (int i = 0; i < 100 && postmaster_is_zombie(c); i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return server_running(c, err, errlen);
}

static void append_log_tail(const cluster_t *c, char *err, size_t errlen)
{
    int fd = open(c->logfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    char tail[500];
    output_tail(buf, (size_t)n, tail, sizeof(tail));
    size_t used = strlen(err);
    if (used + 1 < errlen)
        snprintf(err + used, errlen - used, "; server log %s ends with: %s", c->logfile, tail);
}

static int start_server(const cluster_t *c, char *err, size_t errlen)
{
    char pgctl[PATH_MAX + 32];
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    const char *argv[] = {pgctl, "start", "-w", "-t", "30", "-D", c->data, "-l", c->logfile, NULL};
    pulse_log(PULSE_LOG_INFO, "db.cluster.start", "starting the private database server (socket folder %s, port %d%s)", c->run,
              c->port, c->fast ? ", fsync off" : "");
    if (run_tool_ok(c, "pg_ctl start", argv, err, errlen) != 0) {
        append_log_tail(c, err, errlen);
        return -1;
    }
    return 0;
}

static int reload_server(const cluster_t *c, char *err, size_t errlen)
{
    char pgctl[PATH_MAX + 32];
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    const char *argv[] = {pgctl, "reload", "-D", c->data, NULL};
    return run_tool_ok(c, "pg_ctl reload", argv, err, errlen);
}

/* The port the running server really uses: line 4 of postmaster.pid. */
static int running_port(const cluster_t *c)
{
    char path[PATH_MAX], text[2048];
    if (join(path, sizeof(path), c->data, "postmaster.pid") || read_text(path, text, sizeof(text)) != 0)
        return c->port;
    char *line = text;
    for (int i = 0; i < 3 && line != NULL; i++) {
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    if (line == NULL)
        return c->port;
    long p = strtol(line, NULL, 10);
    return (p >= 1 && p <= 65535) ? (int)p : c->port;
}

/* A conninfo value, quoted when it holds spaces, quotes or backslashes. */
static void conninfo_value(pulse_buf_t *b, const char *v)
{
    if (*v != '\0' && strpbrk(v, " '\\\t\n") == NULL) {
        pulse_buf_puts(b, v);
        return;
    }
    pulse_buf_putc(b, '\'');
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            pulse_buf_putc(b, '\\');
        pulse_buf_putc(b, *v);
    }
    pulse_buf_putc(b, '\'');
}

static int create_database(const cluster_t *c, int port, char *err, size_t errlen)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    const char *keys[] = {"host", "port", "dbname", "user", "application_name", "connect_timeout", NULL};
    const char *vals[] = {c->run, portstr, "postgres", "pulse", "pulse", "10", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        pulse_fail(err, errlen, "cannot connect to the private database server: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    int rc = 0;
    PGresult *r = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = 'pulse'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pulse_fail(err, errlen, "cannot list databases: %s", PQerrorMessage(conn));
    } else if (PQntuples(r) == 0) {
        PQclear(r);
        r = PQexec(conn, "CREATE DATABASE pulse");
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !(state != NULL && strcmp(state, "42P04") == 0))
            rc = pulse_fail(err, errlen, "cannot create database pulse: %s", PQerrorMessage(conn));
        else
            pulse_log(PULSE_LOG_INFO, "db.cluster.createdb", "created database pulse in the private cluster");
    }
    PQclear(r);
    PQfinish(conn);
    if (rc != 0)
        pulse_db_one_line(err);
    return rc;
}

static int ensure_locked(cluster_t *c, char *conninfo, size_t conninfo_len, char *err, size_t errlen)
{
    char pgdir[PATH_MAX], version_file[PATH_MAX];
    if (join(pgdir, sizeof(pgdir), c->var_abs, "pg"))
        return pulse_fail(err, errlen, "path too long: %s", c->var_abs);
    if (mkdir(pgdir, 0755) != 0 && errno != EEXIST)
        return pulse_fail(err, errlen, "cannot create folder %s: %s", pgdir, strerror(errno));
    if (c->as_root && chmod(pgdir, 0755) != 0)
        return pulse_fail(err, errlen, "cannot set permissions of %s: %s", pgdir, strerror(errno));
    if (locate(c, err, errlen) != 0)
        return -1;
    if (join(version_file, sizeof(version_file), c->data, "PG_VERSION"))
        return pulse_fail(err, errlen, "path too long: %s", c->data);
    int have_cluster = exists(version_file);

    struct stat st;
    uid_t owner = (have_cluster && stat(c->data, &st) == 0) ? st.st_uid : (uid_t)-1;
    if (resolve_server_user(c, owner, err, errlen) != 0)
        return -1;

    /* no server programs: say so before creating anything */
    if (!have_cluster && find_newest_bindir(c, err, errlen) != 0)
        return -1;
    if (!have_cluster && !c->relocated && c->as_root) {
        if (!server_user_can_reach(c, pgdir)) {
            char why[PATH_MAX + 160];
            snprintf(why, sizeof(why), "user %s cannot reach %s", c->user, pgdir);
            if (relocate(c, why, err, errlen) != 0)
                return -1;
        }
        if (join(version_file, sizeof(version_file), c->data, "PG_VERSION"))
            return pulse_fail(err, errlen, "path too long: %s", c->data);
        have_cluster = exists(version_file); /* the hashed location may already hold one */
        if (have_cluster && stat(c->data, &st) == 0 && resolve_server_user(c, st.st_uid, err, errlen) != 0)
            return -1;
    }
    if (c->relocated && make_relocated_root(c, c->root, err, errlen) != 0)
        return -1;

    if (c->run_in_tmp && make_tmp_socket_dir(c, err, errlen) != 0)
        return -1;
    if (prepare_dir(c, c->data, 0700, err, errlen) || prepare_dir(c, c->run, c->run_in_tmp ? 0700 : 0755, err, errlen) ||
        prepare_dir(c, c->log, 0755, err, errlen))
        return -1;
    if (have_cluster ? bindir_for_existing(c, err, errlen) : find_newest_bindir(c, err, errlen))
        return -1;
    if (!have_cluster && run_initdb(c, err, errlen) != 0)
        return -1;

    int changed;
    if (write_settings(c, &changed, err, errlen) != 0)
        return -1;
    int running = server_running_settled(c, err, errlen);
    if (running < 0)
        return -1;
    if (!running && start_server(c, err, errlen) != 0)
        return -1;
    if (running && changed && reload_server(c, err, errlen) != 0)
        return -1;
    int port = running_port(c);
    if (port != c->port)
        pulse_log(PULSE_LOG_WARN, "db.cluster.port", "the private database server runs on port %d, not %d: stop it to change", port,
                  c->port);
    if (create_database(c, port, err, errlen) != 0)
        return -1;

    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, "host=");
    conninfo_value(&b, c->run);
    pulse_buf_printf(&b, " port=%d dbname=pulse user=pulse", port);
    int rc = 0;
    if (b.len + 1 > conninfo_len)
        rc = pulse_fail(err, errlen, "connection string longer than %zu bytes", conninfo_len);
    else
        memcpy(conninfo, b.data, b.len + 1);
    pulse_buf_free(&b);
    return rc;
}

int pulse_cluster_ensure(const char *var_dir, char *conninfo, size_t conninfo_len, char *err, size_t errlen)
{
    cluster_t *c = pulse_xmalloc(sizeof(*c));
    int rc = -1;
    if (init_cluster_struct(c, var_dir, 1, err, errlen) == 0) {
        int lock = take_lock(c, err, errlen);
        if (lock >= 0) {
            rc = ensure_locked(c, conninfo, conninfo_len, err, errlen);
            close(lock);
        }
    }
    free(c);
    return rc;
}

/* Sets up c for an existing cluster. 1: there is one, 0: none, -1: error. */
static int open_existing(cluster_t *c, const char *var_dir, char *err, size_t errlen)
{
    int rc = init_cluster_struct(c, var_dir, 0, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (locate(c, err, errlen) != 0)
        return -1;
    char version_file[PATH_MAX];
    struct stat st;
    if (join(version_file, sizeof(version_file), c->data, "PG_VERSION") || !exists(version_file) || stat(c->data, &st) != 0)
        return 0;
    if (resolve_server_user(c, st.st_uid, err, errlen) != 0 || bindir_for_existing(c, err, errlen) != 0)
        return -1;
    return 1;
}

static int stop_locked(cluster_t *c, const char *var_dir, char *err, size_t errlen)
{
    int have = open_existing(c, var_dir, err, errlen);
    if (have <= 0)
        return have;
    int running = server_running_settled(c, err, errlen);
    if (running <= 0)
        return running;
    char pgctl[PATH_MAX + 32];
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    const char *argv[] = {pgctl, "stop", "-m", "fast", "-w", "-t", "60", "-D", c->data, NULL};
    pulse_log(PULSE_LOG_INFO, "db.cluster.stop", "stopping the private database server in %s", c->data);
    return run_tool_ok(c, "pg_ctl stop", argv, err, errlen);
}

/* Runs fn with the cluster lock held; a var folder that does not exist has no cluster. */
static int with_lock(const char *var_dir, int (*fn)(cluster_t *, const char *, char *, size_t), char *err, size_t errlen)
{
    cluster_t *c = pulse_xmalloc(sizeof(*c));
    int rc = init_cluster_struct(c, var_dir, 0, err, errlen);
    if (rc == 0) {
        int lock = take_lock(c, err, errlen);
        rc = lock < 0 ? -1 : fn(c, var_dir, err, errlen);
        if (lock >= 0)
            close(lock);
    } else if (rc > 0) {
        rc = 0;
    }
    free(c);
    return rc < 0 ? -1 : 0;
}

int pulse_cluster_stop(const char *var_dir, char *err, size_t errlen)
{
    return with_lock(var_dir, stop_locked, err, errlen);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

static int remove_tree(const char *path, char *err, size_t errlen)
{
    if (!exists(path))
        return 0;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return pulse_fail(err, errlen, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static int destroy_locked(cluster_t *c, const char *var_dir, char *err, size_t errlen)
{
    if (stop_locked(c, var_dir, err, errlen) != 0)
        return -1;
    if (locate(c, err, errlen) != 0)
        return -1;
    if (remove_tree(c->data, err, errlen) || remove_tree(c->run, err, errlen) || remove_tree(c->log, err, errlen))
        return -1;
    if (c->relocated) {
        char loc[PATH_MAX + 32];
        if (rmdir(c->root) != 0 && errno != ENOENT)
            return pulse_fail(err, errlen, "cannot remove %s: %s", c->root, strerror(errno));
        snprintf(loc, sizeof(loc), "%s/pg/location", c->var_abs);
        unlink(loc);
    }
    pulse_log(PULSE_LOG_INFO, "db.cluster.destroy", "deleted the private database cluster in %s", c->root);
    return 0;
}

int pulse_cluster_destroy(const char *var_dir, char *err, size_t errlen)
{
    return with_lock(var_dir, destroy_locked, err, errlen);
}

int pulse_cluster_root(const char *var_dir, char *out, size_t outlen, char *err, size_t errlen)
{
    cluster_t *c = pulse_xmalloc(sizeof(*c));
    int rc = init_cluster_struct(c, var_dir, 0, err, errlen);
    if (rc > 0) {
        rc = snprintf(out, outlen, "%s/pg", var_dir) >= (int)outlen ? pulse_fail(err, errlen, "path too long") : 0;
    } else if (rc == 0 && (rc = locate(c, err, errlen)) == 0) {
        char version_file[PATH_MAX];
        if (snprintf(out, outlen, "%s", c->root) >= (int)outlen)
            rc = pulse_fail(err, errlen, "path too long: %s", c->root);
        else
            rc = join(version_file, sizeof(version_file), c->data, "PG_VERSION") == 0 && exists(version_file);
    }
    free(c);
    return rc;
}
