/* kiln version — the version of kiln and of the libraries it is linked with. */
#include <archive.h>
#include <curl/curl.h>
#include <getopt.h>
#include <git2.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <zstd.h>

#include "sandbox/seccomp_bpf.h"
#include "src/commands.h"

int kiln_cmd_version(int argc, char **argv)
{
    int major = 0, minor = 0, rev = 0;
    int c;
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("Usage: kiln version\n\nPrints kiln's version and its libraries' versions.\n");
            return KILN_EXIT_OK;
        }
        return KILN_EXIT_USAGE;
    }
    if (optind < argc)
        return kiln_cli_usage_error("version", "unexpected argument '%s'", argv[optind]);

    printf("kiln %s\n", KILN_VERSION);
    if (git_libgit2_version(&major, &minor, &rev) < 0) /* loaded on first use: missing */
        printf("libgit2: %s\n", git_error_last()->message);
    else
        printf("libgit2 %d.%d.%d\n", major, minor, rev);
    printf("%s\n", archive_version_details());
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("%s\n", curl_version());
    printf("jansson %s\n", jansson_version_str());
    printf("libseccomp %s (the step filter, compiled at build time)\n",
           kiln_seccomp_bpf_libseccomp);
    printf("libmicrohttpd %s\n", MHD_get_version());
    printf("sqlite %s\n", sqlite3_libversion());
    printf("zstd %s\n", ZSTD_versionString());
    printf("isa-l %s\n", KILN_ISAL_VERSION);
    return KILN_EXIT_OK;
}
