/*  qn_curl - libcurl, loaded when first needed.  See qn_curl.h.
*/
#include "qn_curl.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

qn_curl_api_t qn_curl_api;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static bool s_loaded;
static char s_error [256];              //  why not, when not

//  The soname Debian's libcurl4 (and every distribution since 7.16)
//  installs; the -dev package's unversioned link is not needed at run time
#define S_LIBCURL  "libcurl.so.4"

static void
s_load (void)
{
    void *library = dlopen (S_LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror ();
        snprintf (s_error, sizeof s_error, "cannot load %s (apt-get install libcurl4): %s",
                  S_LIBCURL, why? why: "unknown error");
        return;
    }
    //  Each entry by its curl name; a missing one means a libcurl too old
    struct {
        const char *name;
        void **slot;
    } symbols [] = {
        { "curl_global_init", (void **) &qn_curl_api.global_init },
        { "curl_easy_init", (void **) &qn_curl_api.easy_init },
        { "curl_easy_setopt", (void **) &qn_curl_api.easy_setopt },
        { "curl_easy_getinfo", (void **) &qn_curl_api.easy_getinfo },
        { "curl_easy_perform", (void **) &qn_curl_api.easy_perform },
        { "curl_easy_cleanup", (void **) &qn_curl_api.easy_cleanup },
        { "curl_easy_reset", (void **) &qn_curl_api.easy_reset },
        { "curl_easy_pause", (void **) &qn_curl_api.easy_pause },
        { "curl_easy_strerror", (void **) &qn_curl_api.easy_strerror },
        { "curl_slist_append", (void **) &qn_curl_api.slist_append },
        { "curl_slist_free_all", (void **) &qn_curl_api.slist_free_all },
        { "curl_multi_init", (void **) &qn_curl_api.multi_init },
        { "curl_multi_setopt", (void **) &qn_curl_api.multi_setopt },
        { "curl_multi_add_handle", (void **) &qn_curl_api.multi_add_handle },
        { "curl_multi_remove_handle", (void **) &qn_curl_api.multi_remove_handle },
        { "curl_multi_socket_action", (void **) &qn_curl_api.multi_socket_action },
        { "curl_multi_info_read", (void **) &qn_curl_api.multi_info_read },
        { "curl_multi_cleanup", (void **) &qn_curl_api.multi_cleanup },
        { "curl_multi_perform", (void **) &qn_curl_api.multi_perform },
        { "curl_multi_wait", (void **) &qn_curl_api.multi_wait },
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols [0]; i++) {
        *symbols [i].slot = dlsym (library, symbols [i].name);
        if (!*symbols [i].slot) {
            snprintf (s_error, sizeof s_error, "%s has no %s: libcurl too old", S_LIBCURL,
                      symbols [i].name);
            memset (&qn_curl_api, 0, sizeof qn_curl_api);
            dlclose (library);
            return;
        }
    }
    //  Once for the process, before any thread can use it
    if (qn_curl_api.global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf (s_error, sizeof s_error, "cannot initialise libcurl");
        memset (&qn_curl_api, 0, sizeof qn_curl_api);
        return;
    }
    s_loaded = true;
}

int
qn_curl_load (char *error, size_t error_size)
{
    pthread_once (&s_once, s_load);
    if (s_loaded)
        return 0;
    if (error)
        snprintf (error, error_size, "%s", s_error [0]? s_error: "libcurl not loaded");
    return -1;
}
