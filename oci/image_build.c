/* kiln — image documents built (see image.h): a config (platform, created time, env, entrypoint
 * and cmd, shell, ports, volumes, labels, ONBUILD, healthcheck, diff_ids and history), a
 * manifest from its descriptors, an index; serialised canonically (sorted keys, compact) with
 * the digest of those bytes, and put into the store. Reading and checking them is image.c. */
#include "oci/image.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "utils/cleanup.h"
#include "utils/json.h"

json_t *kiln_image_config_new(const char *arch, const char *os)
{
    json_t *cfg = json_object();
    json_t *rootfs = json_object();

    json_object_set_new(cfg, "architecture", json_string(arch));
    json_object_set_new(cfg, "os", json_string(os));
    json_object_set_new(cfg, "config", json_object());
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", json_array());
    json_object_set_new(cfg, "rootfs", rootfs);
    json_object_set_new(cfg, "history", json_array());
    return cfg;
}

json_t *kiln_image_config_obj(json_t *cfg)
{
    json_t *c = json_object_get(cfg, "config");
    if (!json_is_object(c)) {
        c = json_object();
        json_object_set_new(cfg, "config", c);
    }
    return c;
}

/* Returns member key of obj as an object/array, creating it when absent. */
static json_t *ensure_member(json_t *obj, const char *key, int array)
{
    json_t *v = json_object_get(obj, key);
    if (array ? !json_is_array(v) : !json_is_object(v)) {
        v = array ? json_array() : json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

/* Formats t as RFC 3339 UTC. */
static int format_time(time_t t, char buf[32], kiln_error_t *err)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return kiln_error_set(err, 0, "cannot format time %lld", (long long)t);
    return 0;
}

int kiln_image_config_set_created(json_t *cfg, time_t t, kiln_error_t *err)
{
    char buf[32];
    if (format_time(t, buf, err) < 0)
        return -1;
    json_object_set_new(cfg, "created", json_string(buf));
    return 0;
}

int kiln_image_config_set_env(json_t *cfg, const char *name_eq_value, kiln_error_t *err)
{
    const char *eq = strchr(name_eq_value, '=');
    json_t *env, *e;
    size_t i, n;

    if (eq == NULL || eq == name_eq_value)
        return kiln_error_set(err, 0, "environment entry '%.100s' is not NAME=value",
                              name_eq_value);
    n = (size_t)(eq - name_eq_value) + 1;
    env = ensure_member(kiln_image_config_obj(cfg), "Env", 1);
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (s != NULL && strncmp(s, name_eq_value, n) == 0) {
            json_array_set_new(env, i, json_string(name_eq_value));
            return 0;
        }
    }
    json_array_append_new(env, json_string(name_eq_value));
    return 0;
}

/* Sets config[key] to an argv array, or removes it for NULL. */
static void set_argv(json_t *cfg, const char *key, const char *const *argv)
{
    json_t *c = kiln_image_config_obj(cfg);
    json_t *a;

    if (argv == NULL) {
        json_object_del(c, key);
        return;
    }
    a = json_array();
    for (; *argv != NULL; argv++)
        json_array_append_new(a, json_string(*argv));
    json_object_set_new(c, key, a);
}

void kiln_image_config_set_entrypoint(json_t *cfg, const char *const *argv)
{
    set_argv(cfg, "Entrypoint", argv);
}

void kiln_image_config_set_cmd(json_t *cfg, const char *const *argv)
{
    set_argv(cfg, "Cmd", argv);
}

void kiln_image_config_set_shell(json_t *cfg, const char *const *argv)
{
    set_argv(cfg, "Shell", argv);
}

void kiln_image_config_set_string(json_t *cfg, const char *key, const char *value)
{
    json_t *c = kiln_image_config_obj(cfg);
    if (value == NULL)
        json_object_del(c, key);
    else
        json_object_set_new(c, key, json_string(value));
}

int kiln_image_config_add_port(json_t *cfg, const char *port, kiln_error_t *err)
{
    const char *slash = strchr(port, '/');
    const char *proto = slash ? slash + 1 : "tcp";
    size_t digits = slash ? (size_t)(slash - port) : strlen(port);
    unsigned long v = 0;
    char key[32];

    if (digits == 0 || digits > 5)
        return kiln_error_set(err, 0, "invalid port '%.40s'", port);
    for (size_t i = 0; i < digits; i++) {
        if (port[i] < '0' || port[i] > '9')
            return kiln_error_set(err, 0, "invalid port '%.40s'", port);
        v = v * 10 + (unsigned long)(port[i] - '0');
    }
    if (v < 1 || v > 65535)
        return kiln_error_set(err, 0, "port '%.40s' out of range 1..65535", port);
    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 && strcmp(proto, "sctp") != 0)
        return kiln_error_set(err, 0, "port '%.40s': protocol must be tcp, udp or sctp", port);
    snprintf(key, sizeof(key), "%lu/%s", v, proto);
    json_object_set_new(ensure_member(kiln_image_config_obj(cfg), "ExposedPorts", 0), key,
                        json_object());
    return 0;
}

void kiln_image_config_add_volume(json_t *cfg, const char *path)
{
    json_object_set_new(ensure_member(kiln_image_config_obj(cfg), "Volumes", 0), path,
                        json_object());
}

void kiln_image_config_set_label(json_t *cfg, const char *key, const char *value)
{
    json_object_set_new(ensure_member(kiln_image_config_obj(cfg), "Labels", 0), key,
                        json_string(value));
}

void kiln_image_config_add_onbuild(json_t *cfg, const char *instruction)
{
    json_array_append_new(ensure_member(kiln_image_config_obj(cfg), "OnBuild", 1),
                          json_string(instruction));
}

void kiln_image_config_set_healthcheck(json_t *cfg, json_t *hc)
{
    json_object_set_new(kiln_image_config_obj(cfg), "Healthcheck", hc);
}

void kiln_image_config_add_diff_id(json_t *cfg, const kiln_digest_t *diff_id)
{
    char ds[KILN_DIGEST_STR_MAX];
    json_t *rootfs = ensure_member(cfg, "rootfs", 0);

    if (json_object_get(rootfs, "type") == NULL)
        json_object_set_new(rootfs, "type", json_string("layers"));
    json_array_append_new(ensure_member(rootfs, "diff_ids", 1),
                          json_string(kiln_digest_str(diff_id, ds)));
}

int kiln_image_config_add_history(json_t *cfg, time_t created, const char *created_by,
                                  const char *comment, int empty_layer, kiln_error_t *err)
{
    json_t *h = json_object();
    char buf[32];

    if (created != 0) {
        if (format_time(created, buf, err) < 0) {
            json_decref(h);
            return -1;
        }
        json_object_set_new(h, "created", json_string(buf));
    }
    if (created_by != NULL)
        json_object_set_new(h, "created_by", json_string(created_by));
    if (comment != NULL)
        json_object_set_new(h, "comment", json_string(comment));
    if (empty_layer)
        json_object_set_new(h, "empty_layer", json_true());
    json_array_append_new(ensure_member(cfg, "history", 1), h);
    return 0;
}

json_t *kiln_image_manifest_new(const kiln_descriptor_t *config, const kiln_descriptor_t *layers,
                                size_t n_layers, const json_t *annotations)
{
    json_t *m = json_object();
    json_t *arr = json_array();

    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(KILN_MT_OCI_MANIFEST));
    json_object_set_new(m, "config", kiln_descriptor_to_json(config));
    for (size_t i = 0; i < n_layers; i++)
        json_array_append_new(arr, kiln_descriptor_to_json(&layers[i]));
    json_object_set_new(m, "layers", arr);
    if (annotations != NULL && json_object_size(annotations) > 0)
        json_object_set_new(m, "annotations", json_deep_copy(annotations));
    return m;
}

json_t *kiln_image_index_new(void)
{
    json_t *ix = json_object();
    json_object_set_new(ix, "schemaVersion", json_integer(2));
    json_object_set_new(ix, "mediaType", json_string(KILN_MT_OCI_INDEX));
    json_object_set_new(ix, "manifests", json_array());
    return ix;
}

void kiln_image_index_add(json_t *index, const kiln_descriptor_t *d)
{
    json_array_append_new(ensure_member(index, "manifests", 1), kiln_descriptor_to_json(d));
}

int kiln_image_serialize(const json_t *doc, char **out, size_t *len, kiln_digest_t *digest,
                         kiln_error_t *err)
{
    char *s;
    size_t n;

    if (kiln_json_dump_canonical(doc, &s, &n, err) < 0)
        return -1;
    if (digest != NULL)
        kiln_digest_bytes(s, n, digest);
    *out = s;
    *len = n;
    return 0;
}

int kiln_image_store_put(kiln_store_t *s, const json_t *doc, const char *media_type,
                         kiln_descriptor_t *desc, kiln_error_t *err)
{
    _cleanup_free_ char *buf = NULL;
    kiln_descriptor_t d = {0};
    size_t len;

    if (kiln_image_serialize(doc, &buf, &len, &d.digest, err) < 0)
        return -1;
    if (kiln_store_put_bytes(s, buf, len, NULL, err) < 0)
        return -1;
    snprintf(d.media_type, sizeof(d.media_type), "%s", media_type);
    d.size = len;
    *desc = d;
    return 0;
}
