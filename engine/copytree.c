/* kiln — a tree walk that copies or hashes: copy mode writes a source tree into a
 * staging directory with COPY's ownership/mode rules (symlinks as symlinks, hardlinks
 * within one copy kept, special files skipped and reported, never followed or opened);
 * hash mode hashes names, modes, link targets and contents (context files through the
 * stat cache) for cache keys. Everything opened under a dirfd, O_NOFOLLOW. */
#include "engine/copytree.h"

#include "engine/cache.h"

/* What a FIFO, socket or device is called in messages. */
const char *kiln_copytree_special_kind(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "a special file";
}

void kiln_copytree_clear(kiln_copytree_t *c)
{
    for (size_t i = 0; i < c->n_links; i++)
        free(c->links[i].path);
    free(c->links);
    c->links = NULL;
    c->n_links = 0;
}

/* Copies a regular file's data between two fds (in-kernel when possible). */
static int copy_file_data(int in, int out, const char *what, kiln_error_t *err)
{
    char buf[1 << 16];
    ssize_t r;
    for (;;) {
        r = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
        if (r > 0)
            continue;
        if (r == 0)
            return 0;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return kiln_error_set(err, errno, "copy %s", what);
        break; /* fall back to read/write from where we are */
    }
    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (kiln_fs_write_all(out, buf, (size_t)r, err) < 0)
            return -1;
    if (r < 0)
        return kiln_error_set(err, errno, "read %s", what);
    return 0;
}

/* The owner COPY gives an entry whose source stat is st. */
static void copy_owner(const kiln_copytree_t *c, const struct stat *st, uid_t *u, gid_t *g)
{
    *u = c->uid >= 0 ? (uid_t)c->uid : (c->root_owned ? 0 : st->st_uid);
    *g = c->gid >= 0 ? (gid_t)c->gid : (c->root_owned ? 0 : st->st_gid);
}

/* Owner, mode and mtime onto a file or directory made by the copy. */
static void apply_meta_fd(const kiln_copytree_t *c, int fd, const struct stat *st)
{
    struct timespec ts[2] = {st->st_mtim, st->st_mtim};
    uid_t u;
    gid_t g;
    copy_owner(c, st, &u, &g);
    (void)fchown(fd, u, g);
    (void)fchmod(fd, c->mode >= 0 ? (mode_t)c->mode : st->st_mode & 07777);
    (void)futimens(fd, ts);
}

int kiln_copytree_layer_entry(kiln_copytree_t *c, const char *drel, const struct stat *st, int fd,
                              const char *target, kiln_sha256_t *tee, kiln_error_t *err)
{
    struct stat out = *st;
    uid_t u;
    gid_t g;

    copy_owner(c, st, &u, &g);
    out.st_uid = u;
    out.st_gid = g;
    if (S_ISLNK(st->st_mode))
        out.st_mode = S_IFLNK | 0777; /* as symlinkat makes it: --chmod does not apply */
    else if (c->mode >= 0)
        out.st_mode = (st->st_mode & S_IFMT) | (mode_t)c->mode;
    if (!S_ISREG(st->st_mode))
        out.st_size = 0;
    /* copy mode keeps hardlinks only among files of the source seen linked
     * more than the source tree itself links them */
    if (!S_ISREG(st->st_mode) || st->st_nlink <= 1 + c->nlink_bias)
        out.st_nlink = 1;
    return kiln_layer_writer_add_stat(c->layer, drel, &out, fd, target, tee, err);
}

/* Sorted names of the directory fd (without . and ..). */
int kiln_copytree_list_dir(int fd, const char *what, strv_t *out, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;
    if (d == NULL) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return kiln_error_set(err, e, "open directory %s", what);
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strv_add(out, kiln_xstrdup(de->d_name));
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(char *), cmp_str);
    return 0;
}

/* The directory name under dfd in the staging tree, made when missing. A
 * link or file an earlier source of the same COPY put there is replaced,
 * never followed. Returns an O_RDONLY fd or -1. */
static int dest_dir(int dfd, const char *name, const char *drel, kiln_error_t *err)
{
    int fd;
    if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", drel);
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        if (unlinkat(dfd, name, 0) < 0 || mkdirat(dfd, name, 0755) < 0)
            return kiln_error_set(err, errno, "mkdir %s", drel);
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", drel);
    return fd;
}

/* Hashes an entry's path as the source was written ("./src/x" stays that,
 * though it is read as "src/x"), so cache keys do not depend on how the
 * source resolved. */
static void hash_rel(kiln_copytree_t *c, const char *rel)
{
    _cleanup_free_ char *as = NULL;
    size_t n = c->hash_from ? strlen(c->hash_from) : 0;
    if (c->hash_from == NULL || strncmp(rel, c->hash_from, n) != 0) {
        kiln_cache_hash_str(c->hash, rel);
        return;
    }
    if (n == 0 && rel[0] != '\0' && c->hash_as[0] != '\0')
        as = kiln_xasprintf("%s/%s", c->hash_as, rel);
    else
        as = kiln_xasprintf("%s%s", c->hash_as, rel + n);
    kiln_cache_hash_str(c->hash, as);
}

/* A directory's entries (source dir fd sub, path rel) into the staging
 * directory dsub (copy mode; path drel), then its metadata from st. */
int kiln_copytree_dir(kiln_copytree_t *c, int sub, const char *rel, int dsub, const char *drel,
                      const struct stat *st, kiln_error_t *err)
{
    strv_t names = {0};
    int ret = 0;
    if (kiln_copytree_list_dir(sub, rel[0] ? rel : ".", &names, err) < 0)
        return -1;
    for (size_t i = 0; i < names.n && ret == 0; i++) {
        _cleanup_free_ char *r2 =
            rel[0] ? kiln_xasprintf("%s/%s", rel, names.v[i]) : kiln_xstrdup(names.v[i]);
        _cleanup_free_ char *d2 = drel == NULL ? NULL : kiln_xasprintf("%s/%s", drel, names.v[i]);
        ret = kiln_copytree_entry(c, sub, names.v[i], r2, dsub, d2, err);
    }
    strv_clear(&names);
    if (ret == 0 && !c->hash && !c->layer)
        apply_meta_fd(c, dsub, st);
    return ret;
}

/* A file of a hash walk being hashed, in one pass with its layer entry when the
 * walk also writes a layer. */
struct one_pass {
    kiln_copytree_t *c;
    const char *drel;
    const struct stat *st;
    int in;
    int written; /* the layer entry was written */
};

/* The digest of the file alone. */
static int one_pass_digest_fd(void *ctx, kiln_digest_t *out, kiln_error_t *err)
{
    struct one_pass *op = ctx;
    return kiln_digest_fd(op->in, out, NULL, err);
}

/* The digest of the file as its layer entry is written: the data read once, hashed as it
 * streams into the tar. A hardlink to an earlier entry or an empty file carries no data:
 * the file is then hashed on its own. */
static int one_pass_digest(void *ctx, kiln_digest_t *out, kiln_error_t *err)
{
    struct one_pass *op = ctx;
    kiln_sha256_t h;
    int r;

    if (kiln_sha256_init(&h, err) < 0)
        return -1;
    r = kiln_copytree_layer_entry(op->c, op->drel, op->st, op->in, NULL, &h, err);
    if (r < 0) {
        kiln_sha256_dispose(&h);
        return -1;
    }
    op->written = 1;
    if (r == 1) {
        kiln_sha256_final(&h, out);
        return 0;
    }
    kiln_sha256_dispose(&h);
    return kiln_digest_fd(op->in, out, NULL, err);
}

/* A regular file (opened as in, stat st): hashed, or copied into dfd as the
 * last component of drel (hardlinks within one COPY kept). */
static int copy_reg(kiln_copytree_t *c, int in, const char *rel, int dfd, const char *dname,
                    const char *drel, const struct stat *st, kiln_error_t *err)
{
    _cleanup_close_ int out = -1;
    if (c->hash) {
        struct one_pass op = {c, drel, st, in, 0};
        kiln_digest_t d;
        char ds[KILN_DIGEST_STR_MAX];
        int (*digest)(void *, kiln_digest_t *, kiln_error_t *) =
            c->layer ? one_pass_digest : one_pass_digest_fd;
        if (c->statcache) {
            if (kiln_statcache_hash_with(c->statcache, rel, st, digest, &op, &d, err) < 0)
                return -1;
        } else if (digest(&op, &d, err) < 0) {
            return kiln_error_prefix(err, "hashing %s", rel);
        }
        kiln_cache_hash_str(c->hash, kiln_digest_str(&d, ds));
        /* the stat cache knew it: its data still goes into the layer */
        if (c->layer && !op.written &&
            kiln_copytree_layer_entry(c, drel, st, in, NULL, NULL, err) < 0)
            return -1;
        return 0;
    }
    if (c->layer)
        return kiln_copytree_layer_entry(c, drel, st, in, NULL, NULL, err) < 0 ? -1 : 0;
    (void)unlinkat(dfd, dname, 0);
    if (st->st_nlink > 1 + c->nlink_bias) {
        /* hardlinks within one COPY stay hardlinks */
        for (size_t i = 0; i < c->n_links; i++) {
            if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino) {
                _cleanup_close_ int first = -1;
                if (kiln_pathres_open(c->dest_root, c->links[i].path, O_PATH, 0,
                                      KILN_PATHRES_NOFOLLOW, &first, NULL) == 0 &&
                    linkat(first, "", dfd, dname, AT_EMPTY_PATH) == 0)
                    return 0;
                break;
            }
        }
        if (c->n_links < MAX_COPY_LINKS) {
            c->links = kiln_xrealloc(c->links, (c->n_links + 1) * sizeof(*c->links));
            c->links[c->n_links].dev = st->st_dev;
            c->links[c->n_links].ino = st->st_ino;
            c->links[c->n_links++].path = kiln_xstrdup(drel);
        }
    }
    out = openat(dfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 st->st_mode & 07777);
    if (out < 0)
        return kiln_error_set(err, errno, "create %s", drel);
    if (copy_file_data(in, out, rel, err) < 0)
        return -1;
    apply_meta_fd(c, out, st);
    return 0;
}

/* Walks the entry name of the source directory sfd (rel: its path from the
 * source root) honouring the ignore rules for context paths, never following
 * a link: symlinks are copied as symlinks; FIFOs, sockets and devices are
 * skipped with a message and never opened. Hash mode (c->hash): hashes names,
 * modes, link targets and file contents. Copy mode: copies it into the
 * staging directory dfd (drel: its path there) with the COPY ownership and
 * mode rules. */
int kiln_copytree_entry(kiln_copytree_t *c, int sfd, const char *name, const char *rel, int dfd,
                        const char *drel, kiln_error_t *err)
{
    const char *dname = drel ? (strrchr(drel, '/') ? strrchr(drel, '/') + 1 : drel) : NULL;
    struct stat st, st2;
    bool excluded;

    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", rel[0] ? rel : ".");
    excluded = c->ignore && rel[0] && kiln_dockerignore_excluded(c->ignore, rel);
    if (excluded && kiln_dockerignore_overrun(c->ignore))
        return kiln_error_set(err, 0,
                              ".dockerignore: its patterns take too long to match %s (simplify "
                              "the runs of ** and *)",
                              rel);
    if (excluded && !(S_ISDIR(st.st_mode) && kiln_dockerignore_may_reinclude(c->ignore, rel)))
        return 0;
    if (c->hash) {
        char meta[64];
        hash_rel(c, rel);
        snprintf(meta, sizeof(meta), "%o", (unsigned)st.st_mode);
        kiln_cache_hash_str(c->hash, meta);
    }
    if (S_ISDIR(st.st_mode)) {
        _cleanup_close_ int sub =
            openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int dsub = -1;
        if (sub < 0)
            return kiln_error_set(err, errno, "open directory %s", rel[0] ? rel : ".");
        if (c->layer) {
            /* "": the layer's root (COPY dir /), which has no entry */
            if (drel[0] != '\0' && kiln_copytree_layer_entry(c, drel, &st, -1, NULL, NULL, err) < 0)
                return -1;
        } else if (!c->hash && (dsub = dest_dir(dfd, dname, drel, err)) < 0) {
            return -1;
        }
        return kiln_copytree_dir(c, sub, rel, dsub, drel, &st, err);
    }
    if (excluded)
        return 0;
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        struct timespec ts[2] = {st.st_mtim, st.st_mtim};
        uid_t u;
        gid_t g;
        ssize_t l = readlinkat(sfd, name, target, sizeof(target) - 1);
        if (l < 0)
            return kiln_error_set(err, errno, "readlink %s", rel);
        target[l] = '\0';
        if (c->hash)
            kiln_cache_hash_str(c->hash, target);
        if (c->layer)
            return kiln_copytree_layer_entry(c, drel, &st, -1, target, NULL, err) < 0 ? -1 : 0;
        if (c->hash)
            return 0;
        (void)unlinkat(dfd, dname, 0);
        if (symlinkat(target, dfd, dname) < 0)
            return kiln_error_set(err, errno, "symlink %s", drel);
        copy_owner(c, &st, &u, &g);
        (void)fchownat(dfd, dname, u, g, AT_SYMLINK_NOFOLLOW);
        (void)utimensat(dfd, dname, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    if (S_ISREG(st.st_mode)) {
        /* O_NONBLOCK: had it become a FIFO since the stat, the open does not wait */
        _cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (in < 0)
            return kiln_error_set(err, errno, "open %s", rel);
        if (fstat(in, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino)
            return kiln_error_set(err, EAGAIN, "%s changed while being copied", rel);
        return copy_reg(c, in, rel, dfd, dname, drel, &st, err);
    }
    if (!c->quiet) {
        _cleanup_free_ char *msg =
            kiln_xasprintf("skipping %s: %s is not copied (only files, directories and symlinks)",
                           rel, kiln_copytree_special_kind(st.st_mode));
        if (c->note != NULL)
            c->note(c->note_ctx, c->step, msg);
    }
    return 0;
}

/* Opens the directory holding the in-root canonical path canon ("/" the
 * root itself) under rootfd: *dirfd and *name (borrowed from canon, "." for
 * the root). -1 with err. */
int kiln_copytree_source_at(int rootfd, const char *canon, int *dirfd, const char **name,
                            kiln_error_t *err)
{
    const char *slash = strrchr(canon, '/');
    _cleanup_free_ char *parent = NULL;
    if (canon[0] == '\0' || strcmp(canon, "/") == 0 || strcmp(canon, ".") == 0) {
        *name = ".";
        return kiln_pathres_open(rootfd, "/", O_RDONLY | O_DIRECTORY, 0, 0, dirfd, err);
    }
    parent = slash ? kiln_xstrndup(canon, (size_t)(slash - canon)) : kiln_xstrdup("");
    *name = slash ? slash + 1 : canon;
    return kiln_pathres_open(rootfd, parent, O_RDONLY | O_DIRECTORY, 0, 0, dirfd, err);
}

/* Hashes the source at canon (canonical, inside rootfd; written: as the
 * Dockerfile wrote it) into c->hash. */
int kiln_copytree_hash_source(kiln_copytree_t *c, int rootfd, const char *canon,
                              const char *written, kiln_error_t *err)
{
    _cleanup_close_ int dfd = -1;
    const char *name;
    const char *rel = canon[0] == '/' ? canon + 1 : canon;
    int r;
    if (kiln_copytree_source_at(rootfd, canon, &dfd, &name, err) < 0)
        return -1;
    c->hash_from = rel;
    c->hash_as = written;
    r = kiln_copytree_entry(c, dfd, name, rel, -1, c->layer ? c->layer_as : NULL, err);
    c->hash_from = c->hash_as = NULL;
    if (r == 0 && c->statcache) /* walked whole: entries of vanished files under it go */
        kiln_statcache_scanned(c->statcache, rel);
    return r;
}
