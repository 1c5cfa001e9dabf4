/*  qn_cli_code - the workflow's code for `qanat run`: the folder holding
    the file (or its `code:`), less .git and what .qanatignore leaves
    out, put as a directory artifact (content already stored is not sent
    again), after a size guard that names the biggest files.
*/
#include "qn_cli.h"
#include "qn_ignore.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_BIGGEST 5                 //  files named when the guard refuses

typedef struct {
    qn_ignore_t *ignore;            //  NULL without a .qanatignore
    uint64_t total;
    size_t files;
    struct { uint64_t size; char path [512]; } biggest [S_BIGGEST];
} s_pack_t;

//  What the packed tree keeps: never .git, nor what the rules leave out
static bool
s_keep (void *arg, const char *path, bool is_dir)
{
    s_pack_t *pack = (s_pack_t *) arg;
    const char *slash = strrchr (path, '/');
    const char *name = slash? slash + 1: path;
    if (streq (name, ".git"))
        return false;
    return !(pack->ignore && qn_ignore_match (pack->ignore, path, is_dir));
}

static void
s_count (s_pack_t *pack, const char *path, uint64_t size)
{
    pack->total += size;
    pack->files++;
    int at = S_BIGGEST;
    while (at > 0 && pack->biggest [at - 1].size < size)
        at--;
    if (at == S_BIGGEST)
        return;
    memmove (&pack->biggest [at + 1], &pack->biggest [at],
             (S_BIGGEST - at - 1) * sizeof pack->biggest [0]);
    pack->biggest [at].size = size;
    size_t length = strnlen (path, sizeof pack->biggest [at].path - 1);
    memcpy (pack->biggest [at].path, path, length);
    pack->biggest [at].path [length] = 0;
}

//  Sizes only (lstat, no reading), so that an accidental $HOME is
//  refused before a byte of it is hashed.  Stops early past the limit
//  only to bound the time; the biggest files seen are named.
static void
s_measure (s_pack_t *pack, const char *root, const char *relative, int depth, uint64_t max)
{
    char dir_path [PATH_MAX];
    snprintf (dir_path, sizeof dir_path, "%s%s%s", root, *relative? "/": "", relative);
    DIR *dir = depth < 64? opendir (dir_path): NULL;
    struct dirent *entry;
    while (dir && (entry = readdir (dir)) && pack->total <= 64 * max) {
        if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
            continue;
        char path [PATH_MAX], full [PATH_MAX];
        if (snprintf (path, sizeof path, "%s%s%s", relative, *relative? "/": "",
                      entry->d_name) >= (int) sizeof path
        ||  snprintf (full, sizeof full, "%s/%s", root, path) >= (int) sizeof full)
            continue;       //  too long: the scan says so
        struct stat st;
        if (lstat (full, &st) == -1)
            continue;
        bool link = S_ISLNK (st.st_mode);
        if (!s_keep (pack, path, S_ISDIR (st.st_mode)))
            continue;
        if (link && stat (full, &st) == -1)
            continue;       //  a dangling link: the scan says so
        //  A linked directory is not measured: it may lead anywhere (the
        //  scan takes it only if it stays inside the folder)
        if (S_ISDIR (st.st_mode) && !link)
            s_measure (pack, root, path, depth + 1, max);
        else
        if (S_ISREG (st.st_mode))
            s_count (pack, path, (uint64_t) st.st_size);
    }
    if (dir)
        closedir (dir);
}

static void
s_print_size (FILE *out, uint64_t bytes)
{
    if (bytes >= 1024 * 1024)
        fprintf (out, "%.1f MiB", (double) bytes / (1024.0 * 1024.0));
    else
        fprintf (out, "%.1f KiB", (double) bytes / 1024.0);
}

//  "100M", "1G", "512K", "2048": bytes (binary suffixes); 0 when invalid
static uint64_t
s_parse_size (const char *text)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = text && *text >= '0' && *text <= '9'? strtoull (text, &end, 10): 0;
    if (!end || errno)
        return 0;
    uint64_t unit = 1;
    switch (*end) {
        case 'K': case 'k': unit = 1024; end++; break;
        case 'M': case 'm': unit = 1024 * 1024; end++; break;
        case 'G': case 'g': unit = 1024ull * 1024 * 1024; end++; break;
        case 0: break;
        default: return 0;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end || value > UINT64_MAX / unit)
        return 0;
    return value * unit;
}

uint64_t
cli_code_max (const char *text)
{
    return text? s_parse_size (text): 100ull * 1024 * 1024;
}

//  The folder to pack, malloc'd; NULL after saying why
static char *
s_code_dir (const char *workflow_path, const char *code)
{
    char *copy = strdup (workflow_path);
    char *folder = copy? dirname (copy): NULL;
    char *joined = NULL;
    if (folder && code && code [0] == '/')
        joined = strdup (code);
    else
    if (folder && asprintf (&joined, "%s/%s", folder, code? code: ".") < 0)
        joined = NULL;
    free (copy);
    char *real = joined? realpath (joined, NULL): NULL;
    struct stat st;
    if (!real || stat (real, &st) == -1 || !S_ISDIR (st.st_mode)) {
        fprintf (stderr, "qanat: the workflow's code folder %s: %s\n", joined? joined: code,
                 real? "not a directory": strerror (errno));
        free (real);
        real = NULL;
    }
    free (joined);
    return real;
}

//  The folder's .qanatignore, if any (NULL without one, or on error)
static qn_ignore_t *
s_load_ignore (const char *dir, bool *failed)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/.qanatignore", dir);
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = (char *) malloc (1024 * 1024 + 1);
    size_t size = text? fread (text, 1, 1024 * 1024 + 1, file): 0;
    fclose (file);
    if (!text || size > 1024 * 1024) {
        fprintf (stderr, "qanat: %s is larger than 1 MiB\n", path);
        *failed = true;
        free (text);
        return NULL;
    }
    qn_ignore_t *ignore = qn_ignore_new (text, size);
    free (text);
    return ignore;
}

int
cli_pack_code (qn_client_t *client, const char *workflow_path, qn_workflow_t *wf,
               const char *max_text, char **ref_p)
{
    *ref_p = NULL;
    uint64_t max_bytes = cli_code_max (max_text);
    if (!max_bytes) {
        fprintf (stderr, "qanat: --code-max wants a size such as 100M or 2G, not '%s'\n",
                 max_text);
        return EXIT_USAGE;
    }
    const char *code = qn_workflow_code (wf);
    if (code && streq (code, "none"))
        return 0;
    char *dir = s_code_dir (workflow_path, code);
    if (!dir)
        return EXIT_USAGE;
    s_pack_t pack;
    memset (&pack, 0, sizeof pack);
    bool failed = false;
    pack.ignore = s_load_ignore (dir, &failed);
    int rc = failed? EXIT_USAGE: 0;
    if (rc == 0)
        s_measure (&pack, dir, "", 0, max_bytes);
    if (rc == 0 && pack.total > max_bytes) {
        fprintf (stderr, "qanat: the workflow's code in %s is ", dir);
        s_print_size (stderr, pack.total);
        fprintf (stderr, "%s, over the limit of ", pack.total > 64 * max_bytes? " or more": "");
        s_print_size (stderr, max_bytes);
        fprintf (stderr, " (--code-max SIZE); leave files out in %s/.qanatignore, or set "
                 "'code: none'. The biggest files:\n", dir);
        for (int i = 0; i < S_BIGGEST && pack.biggest [i].size; i++) {
            fprintf (stderr, "  %10.1f MiB  %s\n",
                     (double) pack.biggest [i].size / (1024.0 * 1024.0), pack.biggest [i].path);
        }
        rc = EXIT_USAGE;
    }
    uint64_t bytes = 0;
    bool unreadable = false;
    if (rc == 0 && !(*ref_p = cli_put_filtered (client, dir, s_keep, &pack, &bytes,
                                                &unreadable)))
        rc = unreadable? EXIT_USAGE: EXIT_COORDINATOR;
    if (unreadable)
        fprintf (stderr, "qanat: that is in the workflow's code; leave it out in "
                 "%s/.qanatignore, or set 'code: none'\n", dir);
    qn_ignore_destroy (&pack.ignore);
    free (dir);
    return rc;
}
