/* kiln — the Rust provider: Cargo.toml (+ Cargo.lock) → `cargo build --release`
 * with the crates.io registry, git checkouts and target dir as cache mounts;
 * the one binary (a [[bin]], src/main.rs, src/bin/NAME.rs, across workspace
 * members; default-run or KILN_RUST_BIN when there are several) is the run
 * image's only layer on kiln's minimal base.
 *
 * The toolchain is the build image's Debian rustc-web (KILN_RUSTC_VERSION): the
 * upstream toolchains cannot be downloaded by builds. rust-toolchain(.toml)
 * and package.rust-version are checked against it: the same release is honoured, an
 * older stable release is built with it (Rust keeps old code compiling; the plan and
 * the build step say so and what would provide the pin), a newer one or a nightly/beta
 * channel is an error saying what would provide it. With a build image of the user's
 * (kiln.json images.build) the pin is that image's to honour: the build step checks
 * its rustc and stops naming both when they differ. Every path the manifests name
 * must stay inside the source. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/cargo.h"
#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/words.h"
#include "kiln_rustc_version.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* The build image's rustc (images/rust-build/rustc-version, read by meson: the one place
 * that says it) */
#define RUST_MINOR KILN_RUSTC_MINOR
#define LAYERS "/opt/kiln/layers"
#define MAX_CANDIDATES 64
#define MAX_MEMBERS 64
#define TRIPLE "x86_64-unknown-linux-gnu"

/* The Rust provider's kiln.json settings ("rust": {…}). */
static const char *const settings[] = {"bin", NULL};

/* One binary the workspace can build and the package it belongs to. */
typedef struct cand {
    char *bin, *pkg;
} cand_t;

typedef struct cands {
    cand_t c[MAX_CANDIDATES];
    size_t n;
} cands_t;

static void cands_clear(cands_t *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->c[i].bin);
        free(cs->c[i].pkg);
    }
}

/* Lexically joins `dir` and `rel`; NULL when the result leaves the root. */
static char *join_inside(const char *dir, const char *rel)
{
    _cleanup_free_ char *all = NULL;
    char *parts[256];
    size_t n = 0;
    kiln_buf_t b;

    if (rel[0] == '/')
        return NULL;
    all = kiln_xasprintf("%s/%s", dir, rel);
    for (char *save = NULL, *t = strtok_r(all, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0) {
            if (n == 0)
                return NULL;
            n--;
            continue;
        }
        if (n >= sizeof(parts) / sizeof(parts[0]))
            return NULL;
        parts[n++] = t;
    }
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "%s", n ? "" : ".");
    for (size_t i = 0; i < n; i++)
        kiln_buf_appendf(&b, NULL, "%s%s", i ? "/" : "", parts[i]);
    return kiln_buf_steal(&b, NULL);
}

/* Refuses a manifest path that leaves the source. */
static int check_paths(const kiln_cargo_t *c, const char *dir, const char *file, kiln_error_t *err)
{
    for (size_t i = 0; i < c->n_paths; i++) {
        const char *tab = strchr(c->paths[i], '\t');
        _cleanup_free_ char *j = join_inside(dir, tab + 1);
        if (j == NULL)
            return kiln_error_set(err, 0,
                                  "%s: %.*s = \"%.200s\" points outside the source: only the "
                                  "source is in the build; vendor it inside, or use a crates.io "
                                  "or git dependency",
                                  file, (int)(tab - c->paths[i]), c->paths[i], tab + 1);
    }
    return 0;
}

static int add_cand(cands_t *cs, const char *bin, const char *pkg, const char *file,
                    kiln_error_t *err)
{
    if (!kiln_words_plain(bin) || !kiln_words_plain(pkg))
        return kiln_error_set(err, 0,
                              "%s: binary \"%.64s\" of package \"%.64s\" is not a plain name "
                              "([A-Za-z0-9._+-])",
                              file, bin, pkg);
    for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->c[i].bin, bin) == 0)
            return 0;
    if (cs->n >= MAX_CANDIDATES)
        return kiln_error_set(err, 0, "%s: more than %d binaries", file, MAX_CANDIDATES);
    cs->c[cs->n].bin = kiln_xstrdup(bin);
    cs->c[cs->n++].pkg = kiln_xstrdup(pkg);
    return 0;
}

/* The binaries of one package in `dir`: its [[bin]] targets, else src/main.rs
 * (named after the package), plus src/bin/NAME.rs. */
static int package_bins(const kiln_detect_ctx_t *ctx, const kiln_cargo_t *c, const char *dir,
                        const char *file, cands_t *cs, kiln_error_t *err)
{
    _cleanup_free_ char *main_rs = kiln_xasprintf("%s/src/main.rs", dir);
    _cleanup_free_ char *bin_dir = kiln_xasprintf("%s/src/bin", dir);

    if (!c->has_package)
        return 0;
    if (c->name == NULL)
        return kiln_error_set(err, 0, "%s: [package] has no name", file);
    for (size_t i = 0; i < c->n_bins; i++)
        if (add_cand(cs, c->bins[i], c->name, file, err) < 0)
            return -1;
    if (c->n_bins == 0 && kiln_tree_is_file(ctx->tree, main_rs) &&
        add_cand(cs, c->name, c->name, file, err) < 0)
        return -1;
    if (kiln_tree_is_dir(ctx->tree, bin_dir)) {
        kiln_error_t e = {0};
        _cleanup_strv_ char **names = kiln_tree_list(ctx->tree, bin_dir, MAX_CANDIDATES, &e);
        for (size_t i = 0; names && names[i]; i++) {
            size_t n = strlen(names[i]);
            _cleanup_free_ char *bin = NULL;
            if (n < 4 || strcmp(names[i] + n - 3, ".rs") != 0)
                continue;
            bin = kiln_xstrndup(names[i], n - 3);
            if (add_cand(cs, bin, c->name, file, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* The member directories of a workspace: plain paths, and "dir/STAR" globs
 * expanded to the directories holding a Cargo.toml. */
static int member_dirs(const kiln_detect_ctx_t *ctx, const kiln_cargo_t *root, char ***out,
                       size_t *n_out, kiln_error_t *err)
{
    char **dirs = kiln_xzalloc((MAX_MEMBERS + 1) * sizeof(char *));
    size_t n = 0;

    for (size_t i = 0; i < root->n_members; i++) {
        const char *m = root->members[i];
        size_t len = strlen(m);
        bool glob = len >= 2 && strcmp(m + len - 2, "/*") == 0;
        _cleanup_free_ char *base = glob ? kiln_xstrndup(m, len - 2) : kiln_xstrdup(m);
        _cleanup_free_ char *inside = join_inside(".", base);
        if (inside == NULL || strchr(base, '*') || strchr(base, '?') || strchr(base, '[')) {
            kiln_strv_free(dirs);
            return kiln_error_set(err, 0, "Cargo.toml: workspace member \"%.128s\" is %s", m,
                                  inside ? "a glob other than dir/*" : "outside the source");
        }
        if (!glob) {
            if (n < MAX_MEMBERS)
                dirs[n++] = steal_pointer(&inside);
            continue;
        }
        kiln_error_t e = {0};
        _cleanup_strv_ char **names = kiln_tree_list(ctx->tree, inside, MAX_MEMBERS, &e);
        for (size_t k = 0; names && names[k] && n < MAX_MEMBERS; k++) {
            _cleanup_free_ char *d = kiln_xasprintf("%s/%s", inside, names[k]);
            _cleanup_free_ char *manifest = kiln_xasprintf("%s/Cargo.toml", d);
            if (kiln_tree_is_file(ctx->tree, manifest))
                dirs[n++] = steal_pointer(&d);
        }
    }
    *out = dirs;
    *n_out = n;
    return 0;
}

/* A "1.75" / "1.75.0" version's minor when the major is 1; -1 otherwise. */
static long rust_minor(const char *v)
{
    char *end;
    if (strtol(v, &end, 10) != 1 || *end != '.')
        return -1;
    return strtol(end + 1, NULL, 10);
}

/* What would provide a toolchain kiln's build image does not have (no quote: the build
 * step echoes it). */
#define PROVIDE                                                                                    \
    "a build image with that toolchain (kiln.json images.build, e.g. one FROM rust:%s) or a "      \
    "Dockerfile would provide it"

/* Whether the channel "1.96" / "1.96.0" is the build image's release. */
static bool is_image_release(const char *channel)
{
    size_t n = strlen(KILN_RUSTC_VERSION);
    return strncmp(channel, KILN_RUSTC_VERSION, n) == 0 &&
           (channel[n] == '\0' || (channel[n] == '.' && isdigit((unsigned char)channel[n + 1])));
}

/* The toolchain: rust-toolchain.toml / rust-toolchain, then package.rust-version,
 * each checked against the image's rustc. *check gets a shell prefix for the build
 * command (a notice, or the check of a user's build image), or stays NULL. */
static int plan_toolchain(const kiln_detect_ctx_t *ctx, const kiln_cargo_t *root, kiln_plan_t *plan,
                          char **check, kiln_error_t *err)
{
    static const struct {
        const char *file;
        int toml;
    } files[] = {{"rust-toolchain.toml", 1}, {"rust-toolchain", 0}};
    _cleanup_free_ char *channel = NULL;
    const char *from = NULL;
    bool own_image = ctx->overrides && ctx->overrides->build_image;

    kiln_plan_set(&plan->language, "rust");
    kiln_plan_set(&plan->version, KILN_RUSTC_VERSION);
    kiln_plan_set(&plan->version_source, "default");
    for (size_t i = 0; channel == NULL && i < sizeof(files) / sizeof(files[0]); i++) {
        _cleanup_free_ char *text = NULL;
        int r = kiln_tree_read(ctx->tree, files[i].file, &text, err);
        if (r < 0)
            return -1;
        if (r > 0 && kiln_cargo_toolchain(text, strlen(text), files[i].toml, files[i].file,
                                          &channel, err) < 0)
            return -1;
        if (channel)
            from = files[i].file;
    }
    if (channel && !kiln_words_plain(channel))
        return kiln_error_set(err, 0, "%s: the toolchain \"%.64s\" is not a toolchain name", from,
                              channel);
    if (channel && own_image) {
        /* the user's image is to carry it: the build step checks, naming both */
        kiln_plan_set(&plan->version, channel);
        kiln_plan_set(&plan->version_source, from);
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "%s asks for %s: the build image kiln.json images.build names is to carry "
                      "it (the build step checks rustc --version)",
                      from, channel);
        if (rust_minor(channel) >= 0)
            *check = kiln_xasprintf(
                "v=$(rustc --version | cut -d' ' -f2) && case \"$v\" in %s|%s.*) ;; *) echo "
                "\"kiln: %s asks for rustc %s but the build image's is $v: kiln.json images.build "
                "must name an image with that toolchain\" >&2; exit 1;; esac && ",
                channel, channel, from, channel);
    } else if (channel) {
        long minor = rust_minor(channel);
        if (strncmp(channel, "stable", 6) == 0) {
            kiln_plan_why(plan, KILN_WHY_VERSION,
                          "%s asks for stable: rustc %s, the newest Debian 12 has "
                          "(rustc-web from bookworm-security)",
                          from, KILN_RUSTC_VERSION);
        } else if (is_image_release(channel)) {
            kiln_plan_why(plan, KILN_WHY_VERSION,
                          "%s asks for %s: the rustc %s of kiln's rust-build image (Debian 12's "
                          "rustc-web) is "
                          "that release",
                          from, channel, KILN_RUSTC_VERSION);
        } else if (minor < 0 || minor > RUST_MINOR) {
            return kiln_error_set(err, 0,
                                  "%s asks for the Rust toolchain \"%.64s\", which kiln cannot "
                                  "get: builds cannot download upstream Rust toolchains, and the "
                                  "build image has rustc %s (Debian 12's rustc-web); ask for "
                                  "\"stable\" or %s or older, or build elsewhere: " PROVIDE,
                                  from, channel, KILN_RUSTC_VERSION, KILN_RUSTC_VERSION, channel);
        } else {
            _cleanup_free_ char *msg = kiln_xasprintf(
                "%s pins %s: built with rustc %s instead (the pinned toolchain cannot be "
                "downloaded by builds); " PROVIDE,
                from, channel, KILN_RUSTC_VERSION, channel);
            kiln_plan_why(plan, KILN_WHY_VERSION,
                          "%s asks for %s; that exact release cannot be downloaded here, so "
                          "rustc %s (Debian 12's newest) builds it: a newer stable rustc "
                          "compiles code written for an older one",
                          from, channel, KILN_RUSTC_VERSION);
            kiln_plan_add(plan->notes, &plan->n_notes, NULL, "%s", msg);
            *check = kiln_xasprintf("echo \"kiln: %s\" >&2 && ", msg);
        }
        kiln_plan_set(&plan->version_source, from);
    }
    if (root->rust_version && !own_image) {
        long minor = rust_minor(root->rust_version);
        if (minor < 0 || minor > RUST_MINOR)
            return kiln_error_set(err, 0,
                                  "Cargo.toml package.rust-version \"%.32s\" needs a newer rustc "
                                  "than the build image's %s (Debian 12's newest); lower it or "
                                  "build elsewhere: " PROVIDE,
                                  root->rust_version, KILN_RUSTC_VERSION, root->rust_version);
        if (channel == NULL) {
            kiln_plan_set(&plan->version_source, "Cargo.toml package.rust-version");
            kiln_plan_why(plan, KILN_WHY_VERSION,
                          "Cargo.toml package.rust-version %s: rustc %s (Debian 12's newest, "
                          "rustc-web) satisfies it",
                          root->rust_version, KILN_RUSTC_VERSION);
        }
    }
    if (channel == NULL && (root->rust_version == NULL || own_image))
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "nothing pins a toolchain (rust-toolchain.toml, package.rust-version): "
                      "rustc %s, the newest Debian 12 has (rustc-web)",
                      KILN_RUSTC_VERSION);
    return 0;
}

/* -sys crates that link no system library (pure Rust or another OS's). */
static const char *const pure_sys[] = {"linux-raw-sys", "windows-sys", "js-sys", "web-sys"};

/* Whether the binary can be linked statically: 0 with *why NULL when
 * Cargo.lock names no -sys crate that links a system library; else *why says
 * what prevents it (no Cargo.lock, or the first such crate). */
static int static_ok(const kiln_detect_ctx_t *ctx, char **why)
{
    kiln_error_t e = {0};
    _cleanup_free_ char *lock = NULL;
    int r = kiln_tree_read(ctx->tree, "Cargo.lock", &lock, &e);

    *why = NULL;
    if (r <= 0) {
        *why = kiln_xstrdup("there is no Cargo.lock to show which crates link system libraries");
        return 0;
    }
    for (const char *p = lock; (p = strstr(p, "name = \"")) != NULL; p++) {
        const char *n = p + 8, *q = strchr(n, '"');
        size_t len = q ? (size_t)(q - n) : 0;
        bool pure = false;
        if (len < 5 || len > 128 || strncmp(q - 4, "-sys", 4) != 0)
            continue;
        for (size_t i = 0; i < sizeof(pure_sys) / sizeof(pure_sys[0]); i++)
            pure |= len == strlen(pure_sys[i]) && strncmp(n, pure_sys[i], len) == 0;
        if (!pure) {
            *why = kiln_xasprintf("Cargo.lock has %.*s (it links a system library)", (int)len, n);
            return 0;
        }
    }
    return 0;
}

/* Picks the binary: kiln.json rust.bin (KILN_RUST_BIN), default-run, else the only one.
 * *why (src, n bytes) names what chose it. */
static int pick_bin(const kiln_detect_ctx_t *ctx, const kiln_cargo_t *root, const cands_t *cs,
                    const cand_t **out, const char **why, char *src, size_t n, kiln_error_t *err)
{
    const char *want = kiln_overrides_stack(ctx, "rust", "bin", "KILN_RUST_BIN", src, n);
    kiln_buf_t b;

    *why = NULL;
    if (want == NULL && root->default_run) {
        want = root->default_run;
        *why = "Cargo.toml package.default-run";
    } else if (want) {
        *why = src;
    }
    if (want) {
        for (size_t i = 0; i < cs->n; i++)
            if (strcmp(cs->c[i].bin, want) == 0) {
                *out = &cs->c[i];
                return 0;
            }
        return kiln_error_set(err, 0, "%s names the binary \"%.64s\", which no package builds",
                              *why, want);
    }
    if (cs->n == 1) {
        *out = &cs->c[0];
        return 0;
    }
    if (cs->n == 0)
        return kiln_error_set(err, 0,
                              "Cargo.toml: no binary to run (no [[bin]], src/main.rs or "
                              "src/bin/*.rs in the package or its workspace members)");
    kiln_buf_init(&b, 4096);
    for (size_t i = 0; i < cs->n; i++)
        kiln_buf_appendf(&b, NULL, "%s%s (package %s)", i ? ", " : "", cs->c[i].bin, cs->c[i].pkg);
    {
        _cleanup_free_ char *list = kiln_buf_steal(&b, NULL);
        return kiln_error_set(err, 0,
                              "Cargo.toml: %zu binaries could run: %s; choose one with "
                              "package.default-run or kiln.json rust.bin (KILN_RUST_BIN)",
                              cs->n, list ? list : "");
    }
}

int kiln_rust_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    kiln_cargo_t root = {0};
    cands_t cs = {0};
    char **members = NULL;
    size_t n_members = 0;
    const cand_t *bin = NULL;
    const char *bin_why = NULL;
    char bin_src[64];
    _cleanup_free_ char *sys_crate = NULL, *check = NULL;
    int r = kiln_tree_read(ctx->tree, "Cargo.toml", &text, err), ret = -1;

    if (r <= 0)
        return r;
    if (kiln_overrides_stack_check(ctx, "rust", settings, err) < 0 ||
        kiln_cargo_parse(text, strlen(text), "Cargo.toml", &root, err) < 0)
        return -1;
    if (check_paths(&root, ".", "Cargo.toml", err) < 0 ||
        package_bins(ctx, &root, ".", "Cargo.toml", &cs, err) < 0 ||
        member_dirs(ctx, &root, &members, &n_members, err) < 0)
        goto out;
    for (size_t i = 0; i < n_members; i++) {
        _cleanup_free_ char *path = kiln_xasprintf("%s/Cargo.toml", members[i]);
        _cleanup_free_ char *mt = NULL;
        kiln_cargo_t m = {0};
        r = kiln_tree_read(ctx->tree, path, &mt, err);
        if (r < 0)
            goto out;
        if (r == 0) {
            kiln_error_set(err, 0, "Cargo.toml: workspace member %s has no Cargo.toml", members[i]);
            goto out;
        }
        r = kiln_cargo_parse(mt, strlen(mt), path, &m, err) < 0 ||
                    check_paths(&m, members[i], path, err) < 0 ||
                    package_bins(ctx, &m, members[i], path, &cs, err) < 0
                ? -1
                : 0;
        kiln_cargo_clear(&m);
        if (r < 0)
            goto out;
    }
    kiln_plan_set(&plan->provider, "rust");
    kiln_plan_set(&plan->package_manager, "cargo");
    if (plan_toolchain(ctx, &root, plan, &check, err) < 0 ||
        pick_bin(ctx, &root, &cs, &bin, &bin_why, bin_src, sizeof(bin_src), err) < 0)
        goto out;
    if (plan->project == NULL)
        plan->project = kiln_detect_project_name(root.name ? root.name : bin->pkg);
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "Cargo.toml: cargo with crates.io%s",
                  kiln_tree_is_file(ctx->tree, "Cargo.lock") ? ", versions from Cargo.lock"
                                                             : " (no Cargo.lock: cargo resolves "
                                                               "the newest matching versions)");
    if (static_ok(ctx, &sys_crate) < 0)
        goto out;
    if (sys_crate == NULL) {
        /* glibc linked in (its NSS files and DNS are part of libc since 2.34): the
         * binary runs on the minimal image, which has no libc; --target keeps
         * RUSTFLAGS off build scripts and proc macros */
        plan->build = kiln_xasprintf(
            "%sRUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target " TRIPLE
            "%s%s --bin %s && rm -rf " LAYERS " && install -D -m 0755 target/" TRIPLE
            "/release/%s " LAYERS "/application/%s",
            check ? check : "", n_members ? " -p " : "", n_members ? bin->pkg : "", bin->bin,
            bin->bin, bin->bin);
        plan->run_image = kiln_detect_image(ctx, "minimal-run");
        kiln_plan_why(plan, KILN_WHY_START,
                      "the release binary %s, statically linked (Cargo.lock has no -sys crate "
                      "linking a system library), alone on kiln's minimal run image (no shell, "
                      "no libc, nonroot)",
                      bin->bin);
    } else {
        plan->build =
            kiln_xasprintf("%scargo build --release%s%s --bin %s && rm -rf " LAYERS
                           " && install -D -m 0755 target/release/%s " LAYERS "/application/%s",
                           check ? check : "", n_members ? " -p " : "", n_members ? bin->pkg : "",
                           bin->bin, bin->bin, bin->bin);
        plan->run_image = kiln_detect_image(ctx, "base");
        kiln_plan_why(plan, KILN_WHY_START,
                      "the release binary %s, dynamically linked since %s, on kiln's base image "
                      "(Debian's libc, no compiler)",
                      bin->bin, sys_crate);
    }
    plan->start = kiln_xasprintf("/app/%s", bin->bin);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "cargo build --release of the binary %s (package %s)%s%s; the registry, git "
                  "checkouts and target dir are cache mounts",
                  bin->bin, bin->pkg, bin_why ? ", chosen by " : "", bin_why ? bin_why : "");
    if (kiln_plan_add_cache(plan, "cargo-registry", "/root/.cargo/registry", err) < 0 ||
        kiln_plan_add_cache(plan, "cargo-git", "/root/.cargo/git", err) < 0 ||
        kiln_plan_add_cache(plan, "cargo-target", "/app/target", err) < 0 ||
        kiln_plan_add(plan->layers, &plan->n_layers, err, LAYERS "/application") < 0)
        goto out;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "rust-build");
    ret = 1;
out:
    kiln_strv_free(members);
    cands_clear(&cs);
    kiln_cargo_clear(&root);
    return ret;
}
