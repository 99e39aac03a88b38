/* kiln server — the access log (see accesslog.h): one JSON line per HTTP request, no query
 * string or header in it, each written whole by one write(), the file reopened on SIGHUP. */
#include "src/server/accesslog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/server/db.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/rwlock.h"

struct kiln_accesslog {
    char *path; /* NULL: stderr */
    int fd;
    /* keeps fd valid across a reopen: writers share it, a reopen takes it alone. Lines need
     * no lock against each other: each is one write() to an O_APPEND file (or stderr), which
     * the kernel places whole; a writer preempted while holding a mutex here stalled every
     * other connection thread behind it */
    pthread_rwlock_t lock;
    uint64_t dropped; /* atomic */
};

/* Appends s as a JSON string (or null): quotes, backslashes and every byte outside printable
 * ASCII escaped as \u00XX, so a hostile path can neither break the line nor smuggle a
 * terminal escape; at most max bytes of s, "..." marking a cut. */
static void put_string(kiln_buf_t *b, const char *s, size_t max)
{
    size_t n, run = 0;

    if (s == NULL) {
        kiln_buf_append(b, "null", 4, NULL);
        return;
    }
    n = strnlen(s, max + 1);
    kiln_buf_append(b, "\"", 1, NULL);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c != '"' && c != '\\' && c >= 0x20 && c < 0x7f) {
            run++; /* plain bytes go out in one append */
            continue;
        }
        kiln_buf_append(b, s + i - run, run, NULL);
        run = 0;
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof(esc), "\\%c", c);
        else
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        kiln_buf_append(b, esc, strlen(esc), NULL);
    }
    kiln_buf_append(b, s + (n < max ? n : max) - run, run, NULL);
    if (n > max)
        kiln_buf_append(b, "...", 3, NULL);
    kiln_buf_append(b, "\"", 1, NULL);
}

char *kiln_accesslog_format(const kiln_access_entry_t *e)
{
    kiln_buf_t b;
    char when[40], num[96];
    size_t route_len = 0;
    _cleanup_free_ char *route = NULL;

    /* the query (which may carry a token or a signature) never reaches the log */
    if (e->path) {
        route_len = strcspn(e->path, "?");
        route = kiln_xstrndup(e->path, route_len);
    }
    kiln_db_format_time(e->time, when, sizeof(when));
    kiln_buf_init(&b, 0);
    kiln_buf_append(&b, "{\"time\":\"", 9, NULL);
    kiln_buf_append(&b, when, strlen(when), NULL);
    kiln_buf_append(&b, "\",\"request_id\":", 15, NULL);
    put_string(&b, e->request_id, 64);
    kiln_buf_append(&b, ",\"remote\":", 10, NULL);
    put_string(&b, e->remote, 64);
    kiln_buf_append(&b, ",\"tenant\":", 10, NULL);
    put_string(&b, e->tenant, 128);
    kiln_buf_append(&b, ",\"method\":", 10, NULL);
    put_string(&b, e->method, 16);
    kiln_buf_append(&b, ",\"route\":", 9, NULL);
    put_string(&b, route, KILN_ACCESSLOG_ROUTE_MAX);
    /* the numbers formatted on the stack: no allocation per field */
    if (e->status)
        snprintf(num, sizeof(num), ",\"status\":%u", e->status);
    else
        snprintf(num, sizeof(num), ",\"status\":null");
    kiln_buf_append(&b, num, strlen(num), NULL);
    snprintf(num, sizeof(num), ",\"bytes\":%llu,\"duration_ms\":%.3f", (unsigned long long)e->bytes,
             e->duration > 0 ? e->duration * 1000.0 : 0.0);
    kiln_buf_append(&b, num, strlen(num), NULL);
    if (e->aborted)
        kiln_buf_append(&b, ",\"aborted\":true", 15, NULL);
    kiln_buf_append(&b, "}\n", 2, NULL);
    return kiln_buf_steal(&b, NULL);
}

static uint32_t id_prefix;
static uint32_t id_counter;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

/* The random half of request ids, drawn once: ids stay unique across restarts without a
 * syscall per request. */
static void id_init(void)
{
    if (getrandom(&id_prefix, sizeof(id_prefix), 0) != (ssize_t)sizeof(id_prefix))
        id_prefix = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
}

void kiln_accesslog_request_id(char out[17])
{
    pthread_once(&id_once, id_init);
    snprintf(out, 17, "%08x%08x", id_prefix, __atomic_add_fetch(&id_counter, 1, __ATOMIC_RELAXED));
}

/* Opens path for appending, 0640 (an existing file loses any bits for others). */
static int open_log(const char *path, kiln_error_t *err)
{
    struct stat sb;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        return kiln_error_set(err, errno, "access log %s", path);
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kiln_error_set(err, 0, "access log %s: not a regular file", path);
    }
    if ((sb.st_mode & 07) != 0 && fchmod(fd, sb.st_mode & 0770) < 0) {
        int e = errno;
        close(fd);
        return kiln_error_set(err, e, "access log %s: chmod", path);
    }
    return fd;
}

int kiln_accesslog_open(const char *path, kiln_accesslog_t **out, kiln_error_t *err)
{
    kiln_accesslog_t *l;
    int fd = STDERR_FILENO;

    if (path && strcmp(path, "-") != 0 && (fd = open_log(path, err)) < 0)
        return -1;
    l = kiln_xzalloc(sizeof(*l));
    l->fd = fd;
    l->path = path && strcmp(path, "-") != 0 ? kiln_xstrdup(path) : NULL;
    kiln_rwlock_init_writer_first(&l->lock);
    *out = l;
    return 0;
}

int kiln_accesslog_reopen(kiln_accesslog_t *l, kiln_error_t *err)
{
    int fd, old;

    if (l == NULL || l->path == NULL)
        return 0;
    if ((fd = open_log(l->path, err)) < 0)
        return -1;
    pthread_rwlock_wrlock(&l->lock);
    old = l->fd;
    l->fd = fd;
    pthread_rwlock_unlock(&l->lock);
    close(old);
    return 0;
}

/* The time of the first line of the file at path (epoch seconds, to the second); -1 when it
 * is empty, missing or does not start with a line of ours. */
static double first_line_time(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    char buf[64];
    struct tm tm = {0};
    ssize_t n;
    char *end;

    if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) < 9)
        return -1;
    buf[n] = '\0';
    if (memcmp(buf, "{\"time\":\"", 9) != 0 ||
        (end = strptime(buf + 9, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return -1;
    return (double)timegm(&tm);
}

/* Whether name is base + "." + a rotation stamp (YYYYmmddTHHMMSSZ): the only files the
 * sweep removes. */
static bool rotated_name(const char *name, const char *base)
{
    size_t bl = strlen(base);
    const char *st = name + bl + 1;
    if (strncmp(name, base, bl) != 0 || name[bl] != '.' || strlen(st) != 16)
        return false;
    for (size_t i = 0; i < 16; i++)
        if (i == 8 ? st[i] != 'T' : i == 15 ? st[i] != 'Z' : (st[i] < '0' || st[i] > '9'))
            return false;
    return true;
}

/* Renames the log to PATH.<stamp of now> and opens PATH afresh. */
static int rotate(kiln_accesslog_t *l, double now, kiln_error_t *err)
{
    time_t t = (time_t)now;
    struct tm tm;
    char stamp[32];
    _cleanup_free_ char *to = NULL;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    to = kiln_xasprintf("%s.%s", l->path, stamp);
    /* never over an earlier rotation's file */
    if (renameat2(AT_FDCWD, l->path, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
        return kiln_error_set(err, errno, "access log %s: rotating to %s", l->path, to);
    return kiln_accesslog_reopen(l, err);
}

int kiln_accesslog_sweep(kiln_accesslog_t *l, double now, double max_age_s, unsigned *removed,
                         kiln_error_t *err)
{
    _cleanup_free_ char *copy = NULL;
    _cleanup_closedir_ DIR *d = NULL;
    const char *base, *dir;
    double first, rotate_s;
    struct dirent *e;

    if (l == NULL || l->path == NULL || max_age_s <= 0)
        return 0;
    /* each file holds at most a day (or half the retention) of lines, so no line is kept much
     * past the retention */
    rotate_s = max_age_s / 2 < 86400 ? max_age_s / 2 : 86400;
    first = first_line_time(l->path);
    if (first >= 0 && now - first >= rotate_s && rotate(l, now, err) < 0)
        return -1;
    copy = kiln_xstrdup(l->path);
    base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
    dir = base == copy ? "." : copy;
    if (base != copy)
        copy[base - copy - 1] = '\0';
    if (*dir == '\0')
        dir = "/";
    if ((d = opendir(dir)) == NULL)
        return kiln_error_set(err, errno, "access log directory %s", dir);
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (!rotated_name(e->d_name, base) ||
            fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
            now - (double)sb.st_mtime <= max_age_s)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0)
            return kiln_error_set(err, errno, "access log %s/%s", dir, e->d_name);
        if (removed)
            (*removed)++;
    }
    return 0;
}

void kiln_accesslog_write(kiln_accesslog_t *l, const kiln_access_entry_t *e)
{
    _cleanup_free_ char *line = NULL;
    int failed;

    if (l == NULL)
        return;
    line = kiln_accesslog_format(e);
    pthread_rwlock_rdlock(&l->lock);
    failed = kiln_fs_write_all(l->fd, line, strlen(line), NULL) < 0;
    pthread_rwlock_unlock(&l->lock);
    if (failed)
        __atomic_add_fetch(&l->dropped, 1, __ATOMIC_RELAXED);
}

uint64_t kiln_accesslog_dropped(const kiln_accesslog_t *l)
{
    return l ? __atomic_load_n(&l->dropped, __ATOMIC_RELAXED) : 0;
}

void kiln_accesslog_close(kiln_accesslog_t *l)
{
    if (l == NULL)
        return;
    if (l->path)
        close(l->fd);
    pthread_rwlock_destroy(&l->lock);
    free(l->path);
    free(l);
}
