/* kiln — the image store's index file as text and back (see imagestore.h), and the names it
 * holds: full normalised references with a tag. */
#include "oci/imagestore.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "oci/reference.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define CREATED_MAX 64 /* an RFC 3339 time; anything longer is not one */

int kiln_imagestore_normalize(const char *name, char **full, kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    char *f;

    if (name == NULL || *name == '\0')
        return kiln_error_set(err, EINVAL, "an image name is empty");
    if (kiln_reference_parse(name, &ref, err) < 0)
        return -1;
    if (ref.digest != NULL) {
        kiln_reference_free(&ref);
        return kiln_error_set(err, EINVAL,
                              "image name '%s': a digest reference cannot name an image "
                              "(use NAME[:TAG])",
                              name);
    }
    f = kiln_reference_format(&ref);
    kiln_reference_free(&ref);
    *full = f;
    return 0;
}

void kiln_imagestore_familiar(const char *full, char **repository, char **tag)
{
    const char *slash = strrchr(full, '/');
    const char *colon = strrchr(slash ? slash : full, ':');
    size_t repo_len = colon ? (size_t)(colon - full) : strlen(full);
    const char *repo = full;

    /* docker's familiar form: its own registry and library/ are not shown */
    if (repo_len > 19 && strncmp(repo, "docker.io/library/", 18) == 0) {
        repo += 18;
        repo_len -= 18;
    } else if (repo_len > 10 && strncmp(repo, "docker.io/", 10) == 0) {
        repo += 10;
        repo_len -= 10;
    }
    *repository = kiln_xstrndup(repo, repo_len);
    *tag = kiln_xstrdup(colon ? colon + 1 : "latest");
}

/* 0 when name is a full normalised tagged reference (what the index keys are). */
static int check_name(const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *full = NULL;

    if (kiln_imagestore_normalize(name, &full, err) < 0)
        return -1;
    if (strcmp(full, name) != 0)
        return kiln_error_set(err, EINVAL, "image name '%s' is not in its full form (%s)", name,
                              full);
    return 0;
}

void kiln_imagestore_entry_clear(kiln_imagestore_entry_t *e)
{
    free(e->name);
    free(e->created);
    memset(e, 0, sizeof(*e));
}

void kiln_imagestore_index_clear(kiln_imagestore_index_t *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        kiln_imagestore_entry_clear(&ix->entries[i]);
    free(ix->entries);
    ix->entries = NULL;
    ix->n = 0;
}

/* The position of name in the sorted entries, or where it would go (*found says which). */
static size_t find_pos(const kiln_imagestore_index_t *ix, const char *name, int *found)
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->entries[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

const kiln_imagestore_entry_t *kiln_imagestore_index_find(const kiln_imagestore_index_t *ix,
                                                          const char *name)
{
    int found;
    size_t i = find_pos(ix, name, &found);
    return found ? &ix->entries[i] : NULL;
}

int kiln_imagestore_index_set(kiln_imagestore_index_t *ix, const kiln_imagestore_entry_t *e,
                              kiln_error_t *err)
{
    int found;
    size_t i = find_pos(ix, e->name, &found);
    kiln_imagestore_entry_t copy = {.name = kiln_xstrdup(e->name),
                                    .digest = e->digest,
                                    .size = e->size,
                                    .size_unknown = e->size_unknown,
                                    .created = e->created ? kiln_xstrdup(e->created) : NULL,
                                    .tagged = e->tagged};

    if (found) {
        kiln_imagestore_entry_clear(&ix->entries[i]);
        ix->entries[i] = copy;
        return 0;
    }
    if (ix->n >= KILN_IMAGESTORE_MAX_NAMES) {
        kiln_imagestore_entry_clear(&copy);
        return kiln_error_set(err, E2BIG,
                              "the image store holds %d names already: remove some "
                              "with kiln rmi",
                              KILN_IMAGESTORE_MAX_NAMES);
    }
    ix->entries = kiln_xrealloc(ix->entries, (ix->n + 1) * sizeof(*ix->entries));
    memmove(&ix->entries[i + 1], &ix->entries[i], (ix->n - i) * sizeof(*ix->entries));
    ix->entries[i] = copy;
    ix->n++;
    return 0;
}

int kiln_imagestore_index_remove(kiln_imagestore_index_t *ix, const char *name)
{
    int found;
    size_t i = find_pos(ix, name, &found);

    if (!found)
        return 0;
    kiln_imagestore_entry_clear(&ix->entries[i]);
    memmove(&ix->entries[i], &ix->entries[i + 1], (ix->n - i - 1) * sizeof(*ix->entries));
    ix->n--;
    return 1;
}

/* One entry of the "images" object: fills e (name borrowed until copied by _set). */
static int parse_entry(const char *name, json_t *v, kiln_imagestore_entry_t *e, kiln_error_t *err)
{
    json_t *size = json_object_get(v, "size"), *created = json_object_get(v, "created"),
           *tagged = json_object_get(v, "tagged");

    if (check_name(name, err) < 0)
        return -1;
    if (!json_is_object(v))
        return kiln_error_set(err, EINVAL, "image %s: not an object", name);
    if (kiln_digest_parse(kiln_json_get_string(v, "digest"), &e->digest, err) < 0)
        return kiln_error_prefix(err, "image %s: digest", name);
    if (size != NULL && (!json_is_integer(size) || json_integer_value(size) < 0))
        return kiln_error_set(err, EINVAL, "image %s: size is not a byte count", name);
    if (tagged != NULL && !json_is_integer(tagged))
        return kiln_error_set(err, EINVAL, "image %s: tagged is not a time", name);
    if (created != NULL &&
        (!json_is_string(created) || json_string_length(created) > CREATED_MAX ||
         strspn(json_string_value(created), "0123456789-:.TZ+") != json_string_length(created)))
        return kiln_error_set(err, EINVAL, "image %s: created is not an RFC 3339 time", name);
    e->name = (char *)name;
    e->size = size ? (uint64_t)json_integer_value(size) : 0;
    e->size_unknown = size == NULL;
    e->tagged = tagged ? (int64_t)json_integer_value(tagged) : 0;
    e->created = created ? (char *)json_string_value(created) : NULL;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const kiln_imagestore_entry_t *)a)->name,
                  ((const kiln_imagestore_entry_t *)b)->name);
}

int kiln_imagestore_index_parse(const char *buf, size_t len, kiln_imagestore_index_t *out,
                                kiln_error_t *err)
{
    _cleanup_json_ json_t *doc = NULL;
    kiln_imagestore_index_t ix = {0};
    json_t *images, *v, *version;
    const char *name;

    if (kiln_json_loadb(buf, len, KILN_IMAGESTORE_INDEX_MAX, "image index", &doc, err) < 0)
        return -1;
    version = json_object_get(doc, "version");
    images = json_object_get(doc, "images");
    if (!json_is_integer(version) || json_integer_value(version) != 1)
        return kiln_error_set(err, EINVAL, "image index: version is not 1");
    if (!json_is_object(images))
        return kiln_error_set(err, EINVAL, "image index: \"images\" is not an object");
    if (json_object_size(images) > KILN_IMAGESTORE_MAX_NAMES)
        return kiln_error_set(err, E2BIG, "image index: more than %d names",
                              KILN_IMAGESTORE_MAX_NAMES);
    /* appended, then sorted once (JSON object keys are unique): no insertion per entry */
    ix.entries = kiln_xzalloc((json_object_size(images) + 1) * sizeof(*ix.entries));
    json_object_foreach(images, name, v)
    {
        kiln_imagestore_entry_t e = {0};
        if (parse_entry(name, v, &e, err) < 0) {
            kiln_imagestore_index_clear(&ix);
            return kiln_error_prefix(err, "image index");
        }
        e.name = kiln_xstrdup(e.name);
        e.created = e.created ? kiln_xstrdup(e.created) : NULL;
        ix.entries[ix.n++] = e;
    }
    qsort(ix.entries, ix.n, sizeof(*ix.entries), by_name);
    *out = ix;
    return 0;
}

char *kiln_imagestore_index_dump(const kiln_imagestore_index_t *ix)
{
    json_t *doc = json_object(), *images = json_object();
    char ds[KILN_DIGEST_STR_MAX];
    char *text, *nl;

    for (size_t i = 0; i < ix->n; i++) {
        const kiln_imagestore_entry_t *e = &ix->entries[i];
        json_t *v = json_object();
        json_object_set_new(v, "digest", json_string(kiln_digest_str(&e->digest, ds)));
        if (!e->size_unknown)
            json_object_set_new(v, "size", json_integer((json_int_t)e->size));
        if (e->created)
            json_object_set_new(v, "created", json_string(e->created));
        json_object_set_new(v, "tagged", json_integer((json_int_t)e->tagged));
        json_object_set_new(images, e->name, v);
    }
    json_object_set_new(doc, "version", json_integer(1));
    json_object_set_new(doc, "images", images);
    text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(doc);
    nl = kiln_xasprintf("%s\n", text);
    free(text);
    return nl;
}
