/*  qn_curl - libcurl, loaded when first needed.

    Only the S3 store, the Kubernetes backend and notifications talk HTTP.  Linking
    libcurl maps it and what it pulls in (OpenSSL, GnuTLS, Kerberos, LDAP,
    libssh2, ...) into every agent, coordinator and CLI process at start:
    about 5 MiB of resident memory per agent that never uses them.  Code
    that uses libcurl includes this header instead of <curl/curl.h> and
    calls qn_curl_load () before its first curl call; the curl_* names it
    uses then go through a table that dlopen fills, once.

    Not an installed header: it belongs to libqanat and the agent.
*/
#ifndef QN_CURL_H_INCLUDED
#define QN_CURL_H_INCLUDED

//  The table replaces curl's own names, so their type-checking macros go
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    CURLcode (*global_init) (long flags);
    CURL *(*easy_init) (void);
    CURLcode (*easy_setopt) (CURL *curl, CURLoption option, ...);
    CURLcode (*easy_getinfo) (CURL *curl, CURLINFO info, ...);
    CURLcode (*easy_perform) (CURL *curl);
    void (*easy_cleanup) (CURL *curl);
    void (*easy_reset) (CURL *curl);
    CURLcode (*easy_pause) (CURL *curl, int bitmask);
    const char *(*easy_strerror) (CURLcode code);
    struct curl_slist *(*slist_append) (struct curl_slist *list, const char *text);
    void (*slist_free_all) (struct curl_slist *list);
    CURLM *(*multi_init) (void);
    CURLMcode (*multi_setopt) (CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle) (CURLM *multi, CURL *curl);
    CURLMcode (*multi_remove_handle) (CURLM *multi, CURL *curl);
    CURLMcode (*multi_socket_action) (CURLM *multi, curl_socket_t socket, int mask,
                                      int *running);
    CURLMsg *(*multi_info_read) (CURLM *multi, int *queued);
    CURLMcode (*multi_cleanup) (CURLM *multi);
    CURLMcode (*multi_perform) (CURLM *multi, int *running);
    CURLMcode (*multi_wait) (CURLM *multi, struct curl_waitfd *extra, unsigned extra_count,
                             int timeout_ms, int *ready);
} qn_curl_api_t;

extern qn_curl_api_t qn_curl_api;

//  Loads libcurl and sets up its global state for the rest of the
//  process (the first call; later ones return what it did; safe from any
//  thread).  0, or -1 with the reason in error.
int
    qn_curl_load (char *error, size_t error_size);

//  curl.h makes these three macros that count arguments; ours replace them
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_init          (*qn_curl_api.easy_init)
#define curl_easy_setopt        (*qn_curl_api.easy_setopt)
#define curl_easy_getinfo       (*qn_curl_api.easy_getinfo)
#define curl_easy_perform       (*qn_curl_api.easy_perform)
#define curl_easy_cleanup       (*qn_curl_api.easy_cleanup)
#define curl_easy_reset         (*qn_curl_api.easy_reset)
#define curl_easy_pause         (*qn_curl_api.easy_pause)
#define curl_easy_strerror      (*qn_curl_api.easy_strerror)
#define curl_slist_append       (*qn_curl_api.slist_append)
#define curl_slist_free_all     (*qn_curl_api.slist_free_all)
#define curl_multi_init         (*qn_curl_api.multi_init)
#define curl_multi_setopt       (*qn_curl_api.multi_setopt)
#define curl_multi_add_handle   (*qn_curl_api.multi_add_handle)
#define curl_multi_remove_handle (*qn_curl_api.multi_remove_handle)
#define curl_multi_socket_action (*qn_curl_api.multi_socket_action)
#define curl_multi_info_read    (*qn_curl_api.multi_info_read)
#define curl_multi_cleanup      (*qn_curl_api.multi_cleanup)
#define curl_multi_perform      (*qn_curl_api.multi_perform)
#define curl_multi_wait         (*qn_curl_api.multi_wait)

#ifdef __cplusplus
}
#endif

#endif
