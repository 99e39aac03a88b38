/* kiln — the job's completion event: build it up as the job runs, send it to its
 * notify targets (see event.h). Reads no environment: the caller passes ids. */
#include "job/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "utils/aws/client.h"
#include "utils/aws/notify.h"
#include "utils/mem.h"

char *kiln_event_build_id(const char *given)
{
    unsigned char r[8] = {0};
    char hex[17];

    if (given != NULL && given[0] != '\0')
        return kiln_xstrdup(given);
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* the id only has to be unique enough to tell builds apart */
        unsigned long long t =
            (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        memcpy(r, &t, sizeof(r));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    return kiln_xasprintf("b-%s", hex);
}

json_t *kiln_event_new(const char *build_id)
{
    return json_pack("{s:s, s:s, s:{}, s:{s:[], s:[], s:[], s:[]}, s:{}}", "build_id", build_id,
                     "status", "running", "source", "outputs", "images", "s3", "local", "functions",
                     "timings");
}

void kiln_event_add_output(json_t *ev, const char *kind, json_t *item)
{
    json_t *outs = json_object_get(ev, "outputs");
    json_t *list = json_object_get(outs, kind);

    if (list == NULL) {
        list = json_array();
        json_object_set_new(outs, kind, list);
    }
    json_array_append_new(list, item);
}

void kiln_event_finish(json_t *ev, const char *status, const char *error)
{
    json_object_set_new(ev, "status", json_string(status));
    if (error != NULL && error[0] != '\0')
        json_object_set_new(ev, "error", json_string(error));
    else
        json_object_del(ev, "error");
}

void kiln_event_set_timing(json_t *ev, const char *name, double seconds)
{
    json_object_set_new(json_object_get(ev, "timings"), name,
                        json_integer((json_int_t)(seconds * 1000.0 + 0.5)));
}

/* Bytes in decimal units, as registries and `docker images` show them. */
static void human(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

void kiln_event_set_image_size(json_t *ev, uint64_t compressed, uint64_t uncompressed, char *text,
                               size_t len)
{
    char c[32], u[32];

    human(compressed, c, sizeof(c));
    /* not known: a layer was not downloaded (a lazy blob, oci/store_lazy); the key left out */
    if (uncompressed == KILN_EVENT_SIZE_UNKNOWN) {
        json_object_set_new(ev, "image_size",
                            json_pack("{s:I}", "compressed", (json_int_t)compressed));
        snprintf(text, len, "%s compressed (uncompressed size not known: layers not downloaded)",
                 c);
        return;
    }
    json_object_set_new(ev, "image_size",
                        json_pack("{s:I, s:I}", "compressed", (json_int_t)compressed,
                                  "uncompressed", (json_int_t)uncompressed));
    human(uncompressed, u, sizeof(u));
    snprintf(text, len, "%s compressed, %s uncompressed", c, u);
}

void kiln_event_set_security(json_t *ev, const char *isolation, unsigned entitlements)
{
    json_t *granted = json_array();

    if (isolation == NULL || strcmp(isolation, "auto") == 0)
        isolation = "sandbox";
    json_object_set_new(ev, "isolation", json_string(isolation));
    for (unsigned bit = 1; bit < 1u << KILN_ENTITLEMENT_COUNT; bit <<= 1)
        if (entitlements & bit)
            json_array_append_new(granted, json_string(kiln_entitlement_name(bit)));
    json_object_set_new(ev, "entitlements", granted);
}

int kiln_event_notify(json_t *ev, const char *const *targets, size_t n, json_t **results,
                      kiln_error_t *err)
{
    json_t *res = json_array();
    kiln_aws_t *aws = NULL;
    char *text;
    int ret = 0;

    if (n == 0) {
        *results = res;
        return 0;
    }
    text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    aws = kiln_aws_new(NULL);
    for (size_t i = 0; i < n; i++) {
        kiln_error_t e = {0};
        char *mid = NULL;
        if (kiln_notify_send(aws, targets[i], text, &mid, &e) < 0) {
            json_array_append_new(
                res, json_pack("{s:s, s:b, s:s}", "target", targets[i], "ok", 0, "error", e.msg));
            if (ret == 0)
                ret = kiln_error_set(err, 0, "notify %s: %s", targets[i], e.msg);
        } else {
            json_array_append_new(res, json_pack("{s:s, s:b, s:s}", "target", targets[i], "ok", 1,
                                                 "message_id", mid ? mid : ""));
        }
        free(mid);
    }
    kiln_aws_free(aws);
    free(text);
    *results = res;
    return ret;
}
