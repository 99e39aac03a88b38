/* kiln — image JSON read (see image.h): OCI and Docker v2s2 manifests, indexes and configs
 * validated field by field (media types, digests, descriptors, platforms, history, the
 * runtime config) with caps, parsed into descriptors, and a platform picked from an index.
 * Building them is image_build.c. */
#include "oci/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define KILN_MT_OCI_DESCRIPTOR "application/vnd.oci.descriptor.v1+json"
#define KILN_MT_OCI_LAYOUT_HEADER "application/vnd.oci.layout.header.v1+json"

/* --- syntax checks -------------------------------------------------------- */

static int is_ascii_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One half of a media type: [A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}; returns
 * the first character after it, or NULL. */
static const char *mt_part(const char *p)
{
    size_t n = 0;

    if (!is_ascii_alnum(*p))
        return NULL;
    for (p++; *p != '\0' && (is_ascii_alnum(*p) || strchr("!#$&^_.+-", *p) != NULL); p++) {
        if (++n > 126)
            return NULL;
    }
    return p;
}

/* A media type as the descriptor schema defines it (type/subtype, RFC 6838 lengths). */
static int mt_valid(const char *s)
{
    const char *p;
    if (s == NULL)
        return 0;
    p = mt_part(s);
    if (p == NULL || *p != '/')
        return 0;
    p = mt_part(p + 1);
    return p != NULL && *p == '\0';
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* The spec's digest grammar: algorithm [+._-]-separated lowercase
 * components, ':', encoded [a-zA-Z0-9=_-]+; registered algorithms
 * (sha256, sha512) must have lowercase hex of their length. */
static int digest_syntax_valid(const char *s)
{
    const char *p = s, *colon;
    size_t n = 0;

    if (s == NULL || !is_lower_alnum(*p))
        return 0;
    while (*p && *p != ':') {
        if (strchr("+._-", *p) != NULL) {
            if (!is_lower_alnum(p[1]))
                return 0;
        } else if (!is_lower_alnum(*p)) {
            return 0;
        }
        p++;
    }
    if (*p != ':' || p[1] == '\0')
        return 0;
    colon = p;
    for (p++; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '=' || *p == '_' || *p == '-'))
            return 0;
    }
    if ((colon - s == 6 && memcmp(s, "sha256", 6) == 0) ||
        (colon - s == 6 && memcmp(s, "sha512", 6) == 0)) {
        size_t want = s[3] == '2' ? 64 : 128;
        if (n != want)
            return 0;
        for (p = colon + 1; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                return 0;
    }
    return 1;
}

/* An absolute URI: scheme ":" followed by non-space printable characters. */
static int uri_valid(const char *s)
{
    const char *p = s;
    if (s == NULL || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '.' || *p == '-')
        p++;
    if (*p != ':' || p[1] == '\0')
        return 0;
    for (p++; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>')
            return 0;
    return 1;
}

/* Standard base64 with padding (length a multiple of 4). */
static int base64_valid(const char *s)
{
    size_t n = strlen(s), pad = 0;
    if (n % 4 != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0)
            return 0;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return pad <= 2;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM). */
static int datetime_valid(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9')
                            : (shape[i] == 'T' ? (s[i] != 'T' && s[i] != 't') : s[i] != shape[i]))
            return 0;
    }
    s += i;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
        return 1;
    return (*s == '+' || *s == '-') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
           s[3] == ':' && s[4] >= '0' && s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0';
}

/* --- field helpers ---------------------------------------------------------- */

static int need_object(const json_t *j, const char *what, kiln_error_t *err)
{
    if (!json_is_object(j))
        return kiln_error_set(err, 0, "%s: must be a JSON object", what);
    return 0;
}

/* Optional string member. */
static int opt_string(const json_t *obj, const char *key, const char *what, kiln_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (v != NULL && !json_is_string(v))
        return kiln_error_set(err, 0, "%s: field \"%s\" must be a string", what, key);
    return 0;
}

/* Required string member. */
static int req_string(const json_t *obj, const char *key, const char *what, kiln_error_t *err)
{
    if (json_object_get(obj, key) == NULL)
        return kiln_error_set(err, 0, "%s: field \"%s\" is missing", what, key);
    return opt_string(obj, key, what, err);
}

/* Optional array of strings (null allowed when nullable). */
static int opt_strings(const json_t *obj, const char *key, int nullable, const char *what,
                       kiln_error_t *err)
{
    json_t *v = json_object_get(obj, key), *e;
    size_t i;
    if (v == NULL || (nullable && json_is_null(v)))
        return 0;
    if (!json_is_array(v))
        return kiln_error_set(err, 0, "%s: field \"%s\" must be an array of strings", what, key);
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return kiln_error_set(err, 0, "%s: %s[%zu] must be a string", what, key, i);
    }
    return 0;
}

/* Optional object whose values are all strings (or all objects when objects). */
static int opt_map(const json_t *obj, const char *key, int objects, int nullable, const char *what,
                   kiln_error_t *err)
{
    json_t *v = json_object_get(obj, key), *e;
    const char *k;
    if (v == NULL || (nullable && json_is_null(v)))
        return 0;
    if (!json_is_object(v))
        return kiln_error_set(err, 0, "%s: field \"%s\" must be an object", what, key);
    json_object_foreach(v, k, e)
    {
        if (objects ? !json_is_object(e) : !json_is_string(e))
            return kiln_error_set(err, 0, "%s: %s[\"%.100s\"] must be %s", what, key, k,
                                  objects ? "an object" : "a string");
    }
    return 0;
}

static int check_media_type(const json_t *obj, const char *key, int required, const char *what,
                            kiln_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return required ? kiln_error_set(err, 0, "%s: field \"%s\" is missing", what, key) : 0;
    if (!json_is_string(v) || !mt_valid(json_string_value(v)))
        return kiln_error_set(err, 0, "%s: %s is not a valid media type (type/subtype)", what, key);
    return 0;
}

static int check_platform(const json_t *p, const char *what, kiln_error_t *err)
{
    if (p == NULL)
        return 0;
    if (need_object(p, what, err) < 0 || req_string(p, "architecture", what, err) < 0 ||
        req_string(p, "os", what, err) < 0 || opt_string(p, "os.version", what, err) < 0 ||
        opt_string(p, "variant", what, err) < 0 || opt_strings(p, "os.features", 0, what, err) < 0)
        return -1;
    return 0;
}

/* Checks a descriptor against the spec (any registered digest algorithm). */
static int check_descriptor(const json_t *j, const char *what, kiln_error_t *err)
{
    json_t *size = json_object_get(j, "size");
    json_t *digest = json_object_get(j, "digest");
    json_t *urls = json_object_get(j, "urls");
    json_t *data = json_object_get(j, "data");
    json_t *e;
    size_t i;
    char pw[256];

    if (need_object(j, what, err) < 0 || check_media_type(j, "mediaType", 1, what, err) < 0 ||
        check_media_type(j, "artifactType", 0, what, err) < 0)
        return -1;
    if (size == NULL)
        return kiln_error_set(err, 0, "%s: field \"size\" is missing", what);
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return kiln_error_set(err, 0, "%s: size must be a non-negative integer", what);
    if (digest == NULL)
        return kiln_error_set(err, 0, "%s: field \"digest\" is missing", what);
    if (!json_is_string(digest) || !digest_syntax_valid(json_string_value(digest)))
        return kiln_error_set(err, 0, "%s: digest '%.100s' is not algorithm:encoded", what,
                              json_is_string(digest) ? json_string_value(digest)
                                                     : "(not a string)");
    if (urls != NULL) {
        if (!json_is_array(urls))
            return kiln_error_set(err, 0, "%s: urls must be an array", what);
        json_array_foreach(urls, i, e)
        {
            if (!json_is_string(e) || !uri_valid(json_string_value(e)))
                return kiln_error_set(err, 0, "%s: urls[%zu] is not an absolute URI", what, i);
        }
    }
    if (data != NULL && (!json_is_string(data) || !base64_valid(json_string_value(data))))
        return kiln_error_set(err, 0, "%s: data is not padded base64", what);
    snprintf(pw, sizeof(pw), "%s.platform", what);
    if (opt_map(j, "annotations", 0, 0, what, err) < 0 ||
        check_platform(json_object_get(j, "platform"), pw, err) < 0)
        return -1;
    return 0;
}

void kiln_descriptor_clear(kiln_descriptor_t *d)
{
    if (d->annotations)
        json_decref(d->annotations);
    if (d->platform)
        json_decref(d->platform);
    d->annotations = d->platform = NULL;
}

void kiln_descriptor_copy(kiln_descriptor_t *dst, const kiln_descriptor_t *src)
{
    *dst = *src;
    dst->annotations = src->annotations ? json_deep_copy(src->annotations) : NULL;
    dst->platform = src->platform ? json_deep_copy(src->platform) : NULL;
}

int kiln_descriptor_from_json(const json_t *j, const char *what, kiln_descriptor_t *out,
                              kiln_error_t *err)
{
    kiln_descriptor_t d = {0};
    const char *mt;

    if (check_descriptor(j, what, err) < 0)
        return -1;
    if (kiln_digest_parse(kiln_json_get_string(j, "digest"), &d.digest, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    mt = kiln_json_get_string(j, "mediaType");
    snprintf(d.media_type, sizeof(d.media_type), "%s", mt);
    d.size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    if (json_object_get(j, "annotations"))
        d.annotations = json_deep_copy(json_object_get(j, "annotations"));
    if (json_object_get(j, "platform"))
        d.platform = json_deep_copy(json_object_get(j, "platform"));
    *out = d;
    return 0;
}

json_t *kiln_descriptor_to_json(const kiln_descriptor_t *d)
{
    char ds[KILN_DIGEST_STR_MAX];
    json_t *j = json_object();

    json_object_set_new(j, "mediaType", json_string(d->media_type));
    json_object_set_new(j, "digest", json_string(kiln_digest_str(&d->digest, ds)));
    json_object_set_new(j, "size", json_integer((json_int_t)d->size));
    if (d->annotations != NULL && json_object_size(d->annotations) > 0)
        json_object_set_new(j, "annotations", json_deep_copy(d->annotations));
    if (d->platform != NULL)
        json_object_set_new(j, "platform", json_deep_copy(d->platform));
    return j;
}

int kiln_image_load_json(const char *buf, size_t len, size_t cap, const char *what, json_t **out,
                         kiln_error_t *err)
{
    return kiln_json_loadb(buf, len, cap, what, out, err);
}

kiln_doc_kind_t kiln_image_doc_kind(const json_t *doc)
{
    const char *mt = kiln_json_get_string(doc, "mediaType");

    if (!json_is_object(doc))
        return KILN_DOC_UNKNOWN;
    if (mt != NULL) {
        if (strcmp(mt, KILN_MT_OCI_MANIFEST) == 0 || strcmp(mt, KILN_MT_DOCKER_MANIFEST) == 0)
            return KILN_DOC_MANIFEST;
        if (strcmp(mt, KILN_MT_OCI_INDEX) == 0 || strcmp(mt, KILN_MT_DOCKER_LIST) == 0)
            return KILN_DOC_INDEX;
    }
    if (json_object_get(doc, "manifests") != NULL)
        return KILN_DOC_INDEX;
    if (json_object_get(doc, "config") != NULL && json_object_get(doc, "layers") != NULL)
        return KILN_DOC_MANIFEST;
    if (json_object_get(doc, "rootfs") != NULL)
        return KILN_DOC_CONFIG;
    return KILN_DOC_UNKNOWN;
}

static int check_schema_version(const json_t *doc, const char *what, kiln_error_t *err)
{
    json_t *v = json_object_get(doc, "schemaVersion");
    if (v == NULL)
        return kiln_error_set(err, 0, "%s: field \"schemaVersion\" is missing", what);
    if (!json_is_integer(v) || json_integer_value(v) != 2)
        return kiln_error_set(err, 0, "%s: schemaVersion must be 2", what);
    return 0;
}

/* Checks the declared mediaType of a top-level document is one of two. */
static int check_doc_media_type(const json_t *doc, const char *oci, const char *docker,
                                const char *what, kiln_error_t *err)
{
    json_t *v = json_object_get(doc, "mediaType");
    const char *mt;
    if (v == NULL)
        return 0;
    mt = json_string_value(v);
    if (mt == NULL || (strcmp(mt, oci) != 0 && strcmp(mt, docker) != 0))
        return kiln_error_set(err, 0, "%s: mediaType '%.100s' is not %s", what,
                              mt ? mt : "(not a string)", oci);
    return 0;
}

/* Checks what manifests and indexes share: an object, schemaVersion 2, the
 * declared mediaType (one of two), artifactType. */
static int check_doc_header(const json_t *doc, const char *what, const char *oci,
                            const char *docker, kiln_error_t *err)
{
    if (need_object(doc, what, err) < 0 || check_schema_version(doc, what, err) < 0 ||
        check_doc_media_type(doc, oci, docker, what, err) < 0 ||
        check_media_type(doc, "artifactType", 0, what, err) < 0)
        return -1;
    return 0;
}

/* Checks each element of an array of descriptors, named "<what>[i]". */
static int check_descriptor_array(const json_t *arr, const char *what, kiln_error_t *err)
{
    json_t *e;
    size_t i;
    char w[64];

    json_array_foreach(arr, i, e)
    {
        snprintf(w, sizeof(w), "%s[%zu]", what, i);
        if (check_descriptor(e, w, err) < 0)
            return -1;
    }
    return 0;
}

/* Checks the optional subject and annotations of a manifest or index. */
static int check_doc_tail(const json_t *doc, const char *what, kiln_error_t *err)
{
    char w[64];

    snprintf(w, sizeof(w), "%s subject", what);
    if (json_object_get(doc, "subject") != NULL &&
        check_descriptor(json_object_get(doc, "subject"), w, err) < 0)
        return -1;
    return opt_map(doc, "annotations", 0, 0, what, err);
}

/* Validates a manifest; strict = the spec's schema (layers non-empty). */
static int check_manifest(const json_t *doc, int strict, kiln_error_t *err)
{
    const char *what = "manifest";
    json_t *layers = json_object_get(doc, "layers");

    if (check_doc_header(doc, what, KILN_MT_OCI_MANIFEST, KILN_MT_DOCKER_MANIFEST, err) < 0)
        return -1;
    if (json_object_get(doc, "config") == NULL)
        return kiln_error_set(err, 0, "manifest: field \"config\" is missing");
    if (check_descriptor(json_object_get(doc, "config"), "manifest config", err) < 0)
        return -1;
    if (!json_is_array(layers))
        return kiln_error_set(err, 0, "manifest: \"layers\" must be an array");
    if (strict && json_array_size(layers) == 0)
        return kiln_error_set(err, 0, "manifest: \"layers\" must not be empty");
    if (check_descriptor_array(layers, "manifest layers", err) < 0)
        return -1;
    return check_doc_tail(doc, what, err);
}

static int check_index(const json_t *doc, kiln_error_t *err)
{
    const char *what = "index";
    json_t *ms = json_object_get(doc, "manifests");

    if (check_doc_header(doc, what, KILN_MT_OCI_INDEX, KILN_MT_DOCKER_LIST, err) < 0)
        return -1;
    if (ms == NULL)
        return kiln_error_set(err, 0, "index: field \"manifests\" is missing");
    if (!json_is_array(ms))
        return kiln_error_set(err, 0, "index: \"manifests\" must be an array");
    if (check_descriptor_array(ms, "index manifests", err) < 0)
        return -1;
    return check_doc_tail(doc, what, err);
}

static int check_history(const json_t *h, int lenient, kiln_error_t *err)
{
    json_t *e, *v;
    size_t i;
    char w[64];

    if (h == NULL)
        return 0;
    if (!json_is_array(h))
        return kiln_error_set(err, 0, "config: \"history\" must be an array");
    json_array_foreach(h, i, e)
    {
        snprintf(w, sizeof(w), "config history[%zu]", i);
        if (need_object(e, w, err) < 0 || opt_string(e, "created", w, err) < 0 ||
            opt_string(e, "author", w, err) < 0 || opt_string(e, "created_by", w, err) < 0 ||
            opt_string(e, "comment", w, err) < 0)
            return -1;
        v = json_object_get(e, "created");
        if (v != NULL && !lenient && !datetime_valid(json_string_value(v)))
            return kiln_error_set(err, 0, "%s: created is not an RFC 3339 date-time", w);
        v = json_object_get(e, "empty_layer");
        if (v != NULL && !json_is_boolean(v))
            return kiln_error_set(err, 0, "%s: empty_layer must be a boolean", w);
    }
    return 0;
}

/* Validates the "config" object of an image config. */
static int check_exec_config(const json_t *c, int lenient, kiln_error_t *err)
{
    const char *w = "config.config";
    json_t *env, *e, *v;
    size_t i;

    if (c == NULL || json_is_null(c))
        return 0;
    if (need_object(c, w, err) < 0 || opt_string(c, "User", w, err) < 0 ||
        opt_string(c, "WorkingDir", w, err) < 0 || opt_string(c, "StopSignal", w, err) < 0 ||
        opt_strings(c, "Env", 1, w, err) < 0 || opt_strings(c, "Entrypoint", 1, w, err) < 0 ||
        opt_strings(c, "Cmd", 1, w, err) < 0 || opt_strings(c, "Shell", 1, w, err) < 0 ||
        opt_strings(c, "OnBuild", 1, w, err) < 0 || opt_map(c, "ExposedPorts", 1, 1, w, err) < 0 ||
        opt_map(c, "Volumes", 1, 1, w, err) < 0 || opt_map(c, "Labels", 0, 1, w, err) < 0)
        return -1;
    env = lenient ? NULL : json_object_get(c, "Env");
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (s[0] == '=' || strchr(s, '=') == NULL)
            return kiln_error_set(err, 0, "config.config: Env[%zu] '%.100s' is not NAME=value", i,
                                  s);
    }
    v = json_object_get(c, "ArgsEscaped");
    if (v != NULL && !json_is_boolean(v))
        return kiln_error_set(err, 0, "config.config: ArgsEscaped must be a boolean");
    v = json_object_get(c, "Healthcheck");
    if (v != NULL && !json_is_null(v) && !json_is_object(v))
        return kiln_error_set(err, 0, "config.config: Healthcheck must be an object");
    return 0;
}

/* Validates an image config. parsing (kiln reading an image to use it):
 * diff_ids must be sha256, and what Docker itself tolerates (Env entries
 * without '=', odd date strings) is let through; otherwise the spec's rules. */
static int check_config(const json_t *doc, int parsing, kiln_error_t *err)
{
    const char *w = "config";
    json_t *rootfs = json_object_get(doc, "rootfs"), *ids, *e, *v;
    const char *type;
    size_t i;

    if (need_object(doc, w, err) < 0 || req_string(doc, "architecture", w, err) < 0 ||
        req_string(doc, "os", w, err) < 0 || opt_string(doc, "variant", w, err) < 0 ||
        opt_string(doc, "os.version", w, err) < 0 || opt_string(doc, "author", w, err) < 0 ||
        opt_string(doc, "created", w, err) < 0 || opt_strings(doc, "os.features", 0, w, err) < 0)
        return -1;
    v = json_object_get(doc, "created");
    if (v != NULL && !parsing && !datetime_valid(json_string_value(v)))
        return kiln_error_set(err, 0, "config: created is not an RFC 3339 date-time");
    if (rootfs == NULL)
        return kiln_error_set(err, 0, "config: field \"rootfs\" is missing");
    if (need_object(rootfs, "config rootfs", err) < 0)
        return -1;
    type = kiln_json_get_string(rootfs, "type");
    if (type == NULL || strcmp(type, "layers") != 0)
        return kiln_error_set(err, 0, "config: rootfs.type must be \"layers\"");
    ids = json_object_get(rootfs, "diff_ids");
    if (!json_is_array(ids))
        return kiln_error_set(err, 0, "config: rootfs.diff_ids must be an array");
    json_array_foreach(ids, i, e)
    {
        kiln_digest_t d;
        const char *s = json_string_value(e);
        if (s == NULL || !digest_syntax_valid(s))
            return kiln_error_set(err, 0, "config: rootfs.diff_ids[%zu] is not a digest", i);
        if (parsing && kiln_digest_parse(s, &d, err) < 0)
            return kiln_error_prefix(err, "config: rootfs.diff_ids[%zu]", i);
    }
    if (check_exec_config(json_object_get(doc, "config"), parsing, err) < 0)
        return -1;
    return check_history(json_object_get(doc, "history"), parsing, err);
}

static int check_layout_header(const json_t *doc, kiln_error_t *err)
{
    const char *v = kiln_json_get_string(doc, "imageLayoutVersion");
    if (need_object(doc, "oci-layout", err) < 0)
        return -1;
    if (v == NULL)
        return kiln_error_set(err, 0, "oci-layout: imageLayoutVersion must be a string");
    if (strcmp(v, "1.0.0") != 0)
        return kiln_error_set(err, 0, "oci-layout: unsupported imageLayoutVersion '%.40s'", v);
    return 0;
}

int kiln_image_validate(const char *media_type, const char *buf, size_t len, kiln_error_t *err)
{
    _cleanup_json_ json_t *doc = NULL;

    if (kiln_json_loadb(buf, len, KILN_IMAGE_CONFIG_MAX, media_type, &doc, err) < 0)
        return -1;
    if (strcmp(media_type, KILN_MT_OCI_MANIFEST) == 0 ||
        strcmp(media_type, KILN_MT_DOCKER_MANIFEST) == 0)
        return check_manifest(doc, 1, err);
    if (strcmp(media_type, KILN_MT_OCI_INDEX) == 0 || strcmp(media_type, KILN_MT_DOCKER_LIST) == 0)
        return check_index(doc, err);
    if (strcmp(media_type, KILN_MT_OCI_CONFIG) == 0 ||
        strcmp(media_type, KILN_MT_DOCKER_CONFIG) == 0)
        return check_config(doc, 0, err);
    if (strcmp(media_type, KILN_MT_OCI_DESCRIPTOR) == 0)
        return check_descriptor(doc, "descriptor", err);
    if (strcmp(media_type, KILN_MT_OCI_LAYOUT_HEADER) == 0)
        return check_layout_header(doc, err);
    return kiln_error_set(err, 0, "no validator for media type '%.100s'", media_type);
}

/* Clears and frees an array of n descriptors. */
static void descriptors_free(kiln_descriptor_t *ds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kiln_descriptor_clear(&ds[i]);
    free(ds);
}

/* Parses an array of descriptors (sha256 digests) into a fresh array. */
static int parse_descriptors(const json_t *arr, const char *what, kiln_descriptor_t **out,
                             size_t *n, kiln_error_t *err)
{
    size_t count = json_array_size(arr), i;
    kiln_descriptor_t *ds = kiln_xzalloc((count ? count : 1) * sizeof(*ds));
    char w[64];

    for (i = 0; i < count; i++) {
        snprintf(w, sizeof(w), "%s[%zu]", what, i);
        if (kiln_descriptor_from_json(json_array_get(arr, i), w, &ds[i], err) < 0) {
            descriptors_free(ds, i);
            return -1;
        }
    }
    *out = ds;
    *n = count;
    return 0;
}

int kiln_image_parse_manifest(const char *buf, size_t len, kiln_manifest_t **out, kiln_error_t *err)
{
    _cleanup_json_ json_t *doc = NULL;
    kiln_manifest_t *m;
    const char *mt;

    if (kiln_json_loadb(buf, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &doc, err) < 0 ||
        check_manifest(doc, 0, err) < 0)
        return -1;
    m = kiln_xzalloc(sizeof(*m));
    mt = kiln_json_get_string(doc, "mediaType");
    snprintf(m->media_type, sizeof(m->media_type), "%s", mt ? mt : KILN_MT_OCI_MANIFEST);
    if (kiln_descriptor_from_json(json_object_get(doc, "config"), "manifest config", &m->config,
                                  err) < 0 ||
        parse_descriptors(json_object_get(doc, "layers"), "manifest layers", &m->layers,
                          &m->n_layers, err) < 0) {
        kiln_manifest_free(m);
        return -1;
    }
    m->json = steal_pointer(&doc);
    *out = m;
    return 0;
}

void kiln_manifest_free(kiln_manifest_t *m)
{
    if (m == NULL)
        return;
    kiln_descriptor_clear(&m->config);
    descriptors_free(m->layers, m->n_layers);
    if (m->json)
        json_decref(m->json);
    free(m);
}

int kiln_image_parse_index(const char *buf, size_t len, kiln_index_t **out, kiln_error_t *err)
{
    _cleanup_json_ json_t *doc = NULL;
    kiln_index_t *ix;
    const char *mt;

    if (kiln_json_loadb(buf, len, KILN_IMAGE_MANIFEST_MAX, "index", &doc, err) < 0 ||
        check_index(doc, err) < 0)
        return -1;
    ix = kiln_xzalloc(sizeof(*ix));
    mt = kiln_json_get_string(doc, "mediaType");
    snprintf(ix->media_type, sizeof(ix->media_type), "%s", mt ? mt : KILN_MT_OCI_INDEX);
    if (parse_descriptors(json_object_get(doc, "manifests"), "index manifests", &ix->manifests,
                          &ix->n_manifests, err) < 0) {
        kiln_index_free(ix);
        return -1;
    }
    ix->json = steal_pointer(&doc);
    *out = ix;
    return 0;
}

void kiln_index_free(kiln_index_t *ix)
{
    if (ix == NULL)
        return;
    descriptors_free(ix->manifests, ix->n_manifests);
    if (ix->json)
        json_decref(ix->json);
    free(ix);
}

int kiln_image_parse_config(const char *buf, size_t len, json_t **out, kiln_error_t *err)
{
    _cleanup_json_ json_t *doc = NULL;

    if (kiln_json_loadb(buf, len, KILN_IMAGE_CONFIG_MAX, "image config", &doc, err) < 0 ||
        check_config(doc, 1, err) < 0)
        return -1;
    *out = steal_pointer(&doc);
    return 0;
}

int kiln_image_index_select(const kiln_index_t *ix, const char *os, const char *arch,
                            const char *variant, kiln_error_t *err)
{
    char avail[512] = "";
    size_t used = 0;

    for (size_t i = 0; i < ix->n_manifests; i++) {
        const json_t *p = ix->manifests[i].platform;
        const char *pos = kiln_json_get_string(p, "os");
        const char *parch = kiln_json_get_string(p, "architecture");
        const char *pvar = kiln_json_get_string(p, "variant");
        if (pos == NULL || parch == NULL)
            continue;
        if (strcmp(pos, os) == 0 && strcmp(parch, arch) == 0 &&
            (variant == NULL || (pvar != NULL && strcmp(pvar, variant) == 0)))
            return (int)i;
        if (used < sizeof(avail))
            used +=
                (size_t)snprintf(avail + used, sizeof(avail) - used, "%s%s/%s%s%s",
                                 used ? ", " : "", pos, parch, pvar ? "/" : "", pvar ? pvar : "");
    }
    return kiln_error_set(err, 0, "no manifest for platform %s/%s%s%s in index (has: %s)", os, arch,
                          variant ? "/" : "", variant ? variant : "", avail[0] ? avail : "none");
}
