/* kiln — in-toto SLSA v1 provenance of an image (see provenance.h). */
#include "export/provenance.h"

#include <string.h>
#include <strings.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

int kiln_provenance_arg_is_secret(const char *name)
{
    static const char *const words[] = {"TOKEN",      "SECRET", "PASSWORD", "PASSWD", "KEY",
                                        "CREDENTIAL", "AUTH",   "PRIVATE",  "PASS"};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(name, words[i]) != NULL)
            return 1;
    return 0;
}

/* externalParameters.args: each build arg; a credential-looking one by name only (its value
 * could be a token passed the wrong way: it must not leave the build). */
static json_t *build_args(const kiln_provenance_in_t *in, json_t **redacted)
{
    json_t *args = json_object();

    *redacted = json_array();
    for (size_t i = 0; i < in->n_build_args; i++) {
        const char *kv = in->build_args[i], *eq = strchr(kv, '=');
        _cleanup_free_ char *k = eq ? kiln_xstrndup(kv, (size_t)(eq - kv)) : kiln_xstrdup(kv);
        if (kiln_provenance_arg_is_secret(k))
            json_array_append_new(*redacted, json_string(k));
        else if (eq)
            json_object_set_new(args, k, json_string(eq + 1));
    }
    return args;
}

/* A base image "REF@sha256:HEX" as a resolvedDependencies entry, as BuildKit writes it:
 * a registry image's uri a purl pkg:docker/NAME@TAG?platform=linux%2Famd64 (Docker Hub names
 * in their short form), an oci: layout's uri the reference as written; digest {"sha256": HEX}. */
static json_t *base_dep(const char *image)
{
    const char *at = strrchr(image, '@');
    _cleanup_free_ char *ref =
        at ? kiln_xstrndup(image, (size_t)(at - image)) : kiln_xstrdup(image);
    _cleanup_free_ char *uri = NULL;
    json_t *d;

    if (strncmp(ref, "oci:", 4) == 0) {
        uri = kiln_xstrdup(ref);
    } else {
        const char *name = ref, *colon, *slash = strrchr(ref, '/');
        _cleanup_free_ char *repo = NULL;
        if (strncmp(name, "docker.io/", 10) == 0)
            name += strncmp(name, "docker.io/library/", 18) == 0 ? 18 : 10;
        colon = strrchr(name, ':');
        if (colon && slash && colon < slash) /* a registry's port, not a tag */
            colon = NULL;
        repo = colon ? kiln_xstrndup(name, (size_t)(colon - name)) : kiln_xstrdup(name);
        uri = kiln_xasprintf("pkg:docker/%s%s%s?platform=linux%%2Famd64", repo, colon ? "@" : "",
                             colon ? colon + 1 : "");
    }
    d = json_pack("{s:s}", "uri", uri);
    if (at && strncmp(at + 1, "sha256:", 7) == 0)
        json_object_set_new(d, "digest", json_pack("{s:s}", "sha256", at + 8));
    return d;
}

json_t *kiln_provenance_statement(const kiln_provenance_in_t *in)
{
    json_t *redacted, *args = build_args(in, &redacted);
    json_t *ext = json_object(), *deps = json_array(), *secrets = json_array(), *meta;
    const char *hex = in->digest && strchr(in->digest, ':') ? strchr(in->digest, ':') + 1 : "";

    json_object_set_new(ext, "source", json_string(in->repo ? in->repo : in->source));
    if (in->dockerfile)
        json_object_set_new(ext, "dockerfile", json_string(in->dockerfile));
    if (in->target)
        json_object_set_new(ext, "target", json_string(in->target));
    json_object_set_new(ext, "args", args);
    if (json_array_size(redacted))
        json_object_set(ext, "argsRedacted", redacted);
    json_decref(redacted);
    for (size_t i = 0; i < in->n_secret_ids; i++)
        json_array_append_new(secrets, json_pack("{s:s}", "id", in->secret_ids[i]));
    if (json_array_size(secrets))
        json_object_set(ext, "secrets", secrets);
    json_decref(secrets);
    if (in->repo || in->commit) {
        _cleanup_free_ char *uri =
            kiln_xasprintf("git+%s%s%s", in->repo ? in->repo : in->source, in->commit ? "@" : "",
                           in->commit ? in->commit : "");
        json_t *d = json_pack("{s:s}", "uri", uri);
        if (in->commit)
            json_object_set_new(d, "digest", json_pack("{s:s}", "gitCommit", in->commit));
        json_array_append_new(deps, d);
    }
    for (size_t i = 0; i < in->n_base_images; i++)
        json_array_append_new(deps, base_dep(in->base_images[i]));
    meta = json_object();
    if (in->invocation_id)
        json_object_set_new(meta, "invocationId", json_string(in->invocation_id));
    if (in->started)
        json_object_set_new(meta, "startedOn", json_string(in->started));
    if (in->finished)
        json_object_set_new(meta, "finishedOn", json_string(in->finished));
    return json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:{s:{s:s, s:o, s:{}, s:o}, s:{s:{s:s, "
                     "s:{s:s}}, s:o}}}",
                     "_type", "https://in-toto.io/Statement/v1", "subject", "name",
                     in->name ? in->name : "image", "digest", "sha256", hex, "predicateType",
                     "https://slsa.dev/provenance/v1", "predicate", "buildDefinition", "buildType",
                     KILN_PROVENANCE_BUILD_TYPE, "externalParameters", ext, "internalParameters",
                     "resolvedDependencies", deps, "runDetails", "builder", "id",
                     KILN_PROVENANCE_BUILDER, "version", "kiln", KILN_VERSION, "metadata", meta);
}
