/* kiln — USER and --chown names: uid/gid from the stage's own /etc/passwd and /etc/group,
 * read inside their layer dir (a link to the host's file is not followed). */
#include "engine/user.h"

#include "engine/snapshot.h"

/* Finds name in an /etc/passwd- or /etc/group-style file of the stage (read
 * inside the stage's tree: a link there never leads to the host's file);
 * returns 1 and the numeric id (and the primary gid for passwd), 0 when
 * absent, -1 on failure. */
static int lookup_id(engine_t *e, stage_t *st, const char *file, const char *name, long *id,
                     long *gid, kiln_error_t *err)
{
    _cleanup_free_ char *canon = NULL;
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int rootfd = -1;
    size_t len;
    char *save = NULL;

    if (kiln_snapshot_resolve(e, st, file, KILN_PATHRES_MISSING_OK, &canon, &dir, err) < 0)
        return -1;
    if (dir == NULL || kiln_pathres_open_root(dir, &rootfd, NULL) < 0 ||
        kiln_pathres_read_file(rootfd, canon, 4u << 20, &text, &len, NULL) < 0)
        return 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        char *p = line;
        for (int k = 0; k < 4 && p; k++) {
            f[k] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = '\0';
        }
        if (f[0] && f[2] && strcmp(f[0], name) == 0) {
            *id = strtol(f[2], NULL, 10);
            if (gid)
                *gid = f[3] ? strtol(f[3], NULL, 10) : *id;
            return 1;
        }
    }
    return 0;
}

bool kiln_user_all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* "user[:group]" → ids, names resolved through the image's files. */
int kiln_user_resolve(engine_t *e, stage_t *st, const char *spec, uid_t *uid, gid_t *gid,
                      kiln_error_t *err)
{
    _cleanup_free_ char *u = kiln_xstrdup(spec && *spec ? spec : "0");
    char *g = strchr(u, ':');
    long id = 0, pg = 0;
    if (g)
        *g++ = '\0';
    if (kiln_user_all_digits(u)) {
        id = strtol(u, NULL, 10);
        pg = id;
        if (!g) { /* primary group from passwd when the uid is listed */
            pg = id;
        }
    } else {
        int r = lookup_id(e, st, "etc/passwd", u, &id, &pg, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return kiln_error_set(err, 0,
                                  "unable to find user %s: no matching entries in passwd file", u);
    }
    if (g) {
        if (kiln_user_all_digits(g)) {
            pg = strtol(g, NULL, 10);
        } else {
            long gg;
            int r = lookup_id(e, st, "etc/group", g, &gg, NULL, err);
            if (r < 0)
                return -1;
            if (r == 0)
                return kiln_error_set(
                    err, 0, "unable to find group %s: no matching entries in group file", g);
            pg = gg;
        }
    }
    *uid = (uid_t)id;
    *gid = (gid_t)pg;
    return 0;
}
