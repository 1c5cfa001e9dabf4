/*  qn_config - a daemon's options as one table for the command line and
    the YAML config file.  See qn_config.h.
*/
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qn_config.h"
#include "qn_yaml.h"

#define S_FILE_MAX  (1024 * 1024)       //  a config file is small
#define S_KEY_MAX   64

static size_t
s_count (const qn_config_option_t *table)
{
    size_t count = 0;
    while (table [count].name)
        count++;
    return count;
}

struct option *
qn_config_getopt (const qn_config_option_t *table)
{
    size_t count = s_count (table);
    struct option *options = (struct option *) calloc (count + 1, sizeof (struct option));
    if (!options)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        options [i].name = table [i].name;
        options [i].has_arg = table [i].type == QN_CONFIG_FLAG? no_argument: required_argument;
        options [i].val = table [i].val;
    }
    return options;
}

//  name with '-' and '_' alike
static bool
s_same_name (const char *option, const char *name)
{
    for (; *option && *name; option++, name++) {
        char a = *option == '_'? '-': *option;
        char b = *name == '_'? '-': *name;
        if (a != b)
            return false;
    }
    return *option == *name;
}

const qn_config_option_t *
qn_config_find (const qn_config_option_t *table, const char *name)
{
    for (size_t i = 0; table [i].name; i++)
        if (s_same_name (table [i].name, name))
            return &table [i];
    return NULL;
}

//  Bytes with an optional K, M or G (KB, KiB...).  0, or -1.
static int
s_size (const char *text, long long *value_p)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text)
        return -1;
    unsigned long long unit = 1;
    const char *units = "KMG";
    const char *found = *end? strchr (units, *end & ~0x20): NULL;
    if (found) {
        for (const char *u = units; u <= found; u++)
            unit *= 1024;
        end++;
        if (*end == 'i' && end [1] == 'B')
            end += 2;
        else
        if (*end == 'B')
            end++;
    }
    if (*end || value > (unsigned long long) LLONG_MAX / unit)
        return -1;
    *value_p = (long long) (value * unit);
    return 0;
}

//  "true"/"false" and YAML 1.1's other spellings.  0, or -1.
static int
s_bool (const char *text, bool *value_p)
{
    static const char *yes [] = { "true", "yes", "on", "1", NULL };
    static const char *no [] = { "false", "no", "off", "0", NULL };
    for (size_t i = 0; yes [i]; i++) {
        if (strcasecmp (text, yes [i]) == 0)
            return *value_p = true, 0;
        if (strcasecmp (text, no [i]) == 0)
            return *value_p = false, 0;
    }
    return -1;
}

static bool
s_choice_ok (const char *choices, const char *text)
{
    size_t len = strlen (text);
    for (const char *cur = choices; cur && *cur; ) {
        const char *bar = strchr (cur, '|');
        size_t size = bar? (size_t) (bar - cur): strlen (cur);
        if (size == len && len && strncmp (cur, text, len) == 0)
            return true;
        cur = bar? bar + 1: NULL;
    }
    return false;
}

int
qn_config_check (const qn_config_option_t *row, const char *text, char **error)
{
    *error = NULL;
    bool bad = false;
    qn_yaml_echo_t echo;
    const char *shown = qn_yaml_echo (text, echo);
    long long value = 0;
    bool truth;
    switch (row->type) {
        case QN_CONFIG_STRING:
        case QN_CONFIG_LIST:
            if (!*text)
                (bad = true), *error = qn_yaml_format ("wants a value, not an empty text");
            break;
        case QN_CONFIG_NUMBER: {
            char *end = NULL;
            errno = 0;
            value = strtoll (text, &end, 10);
            if (errno || end == text || *end || value < row->min || value > row->max)
                (bad = true), *error = qn_yaml_format ("wants a whole number from %lld to %lld, not '%s'",
                                         row->min, row->max, shown);
            break;
        }
        case QN_CONFIG_SIZE:
            if (s_size (text, &value) == -1 || value < row->min || value > row->max)
                (bad = true), *error = qn_yaml_format ("wants a number of bytes (K, M, G suffixes) from "
                                         "%lld to %lld, not '%s'", row->min, row->max, shown);
            break;
        case QN_CONFIG_CHOICE:
            if (!s_choice_ok (row->choices, text))
                (bad = true), *error = qn_yaml_format ("wants one of %s, not '%s'", row->choices, shown);
            break;
        case QN_CONFIG_FLAG:
            if (s_bool (text, &truth) == -1)
                (bad = true), *error = qn_yaml_format ("wants true or false, not '%s'", shown);
            break;
    }
    if (!bad)
        return 0;
    if (!*error)
        *error = strdup ("out of memory");
    return -1;
}

//  ---------------------------------------------------------------------
//  The file

typedef struct {
    char **items;
    int count, cap;
} s_args_t;

static int
s_push (s_args_t *args, char *arg)
{
    if (!arg)
        return -1;
    if (args->count + 1 >= args->cap) {
        int cap = args->cap? args->cap * 2: 32;
        char **items = (char **) realloc (args->items, (size_t) cap * sizeof (char *));
        if (!items) {
            free (arg);
            return -1;
        }
        args->items = items;
        args->cap = cap;
    }
    args->items [args->count++] = arg;
    args->items [args->count] = NULL;
    return 0;
}

//  One setting of the file: its "--name=value" arguments
static void
s_setting (qn_yaml_ctx_t *ctx, const qn_config_option_t *row, qn_yaml_node_t *key,
           qn_yaml_node_t *value, s_args_t *args)
{
    qn_yaml_node_t **items = NULL;
    size_t count = 0;
    if (row->type == QN_CONFIG_LIST) {
        if (qn_yaml_scalar_list (ctx, value, "a value or a list of values", &items, &count) == -1)
            return;
    }
    else
    if (value->kind != QN_YAML_SCALAR || qn_yaml_is_null (value)) {
        qn_yaml_node_error (ctx, qn_yaml_is_null (value)? key: value,
                            "%s: expected one value", key->value);
        return;
    }
    else {
        items = (qn_yaml_node_t **) calloc (1, sizeof (qn_yaml_node_t *));
        if (!items) {
            ctx->oom = true;
            return;
        }
        items [count++] = value;
    }
    for (size_t i = 0; i < count; i++) {
        char *error = NULL;
        if (qn_config_check (row, items [i]->value, &error) == -1) {
            qn_yaml_node_error (ctx, items [i], "%s: %s", key->value, error);
            free (error);
            continue;
        }
        bool truth = false;
        if (row->type == QN_CONFIG_FLAG) {
            s_bool (items [i]->value, &truth);
            if (truth && s_push (args, qn_yaml_format ("--%s", row->name)) == -1)
                ctx->oom = true;
        }
        else
        if (s_push (args, qn_yaml_format ("--%s=%s", row->name, items [i]->value)) == -1)
            ctx->oom = true;
    }
    free (items);
}

//  The settings of a parsed file into args, errors into ctx
static void
s_settings (qn_yaml_ctx_t *ctx, const qn_config_option_t *table, qn_yaml_node_t *root,
            s_args_t *args)
{
    if (!root || qn_yaml_is_null (root))
        return;                             //  an empty file: no settings
    if (root->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, root, "expected settings, one 'key: value' a line");
        return;
    }
    qn_yaml_mark_duplicates (ctx, root, NULL, NULL);
    size_t count = s_count (table);
    const char **known = (const char **) calloc (count + 1, sizeof (char *));
    char (*keys) [S_KEY_MAX] = calloc (count + 1, S_KEY_MAX);
    if (!known || !keys) {
        ctx->oom = true;
        free (known);
        free (keys);
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (table [i].flags & QN_CONFIG_CLI_ONLY)
            continue;
        snprintf (keys [used], S_KEY_MAX, "%s", table [i].name);
        for (char *c = keys [used]; *c; c++)
            if (*c == '-')
                *c = '_';
        known [used] = keys [used];
        used++;
    }
    qn_yaml_check_keys (ctx, root, known, "");
    for (size_t i = 0; i + 1 < root->count; i += 2) {
        qn_yaml_node_t *key = root->items [i];
        if (key->skip || !qn_yaml_is_known (key->value, known))
            continue;
        s_setting (ctx, qn_config_find (table, key->value), key, root->items [i + 1], args);
    }
    free (known);
    free (keys);
}

//  The file's text (malloc'd), or NULL with *error
static char *
s_read (const char *path, size_t *len_p, char **error)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        *error = qn_yaml_format ("cannot read config file %s: %s", path, strerror (errno));
        return NULL;
    }
    char *text = (char *) malloc (S_FILE_MAX + 1);
    size_t len = text? fread (text, 1, S_FILE_MAX + 1, file): 0;
    bool failed = !text || ferror (file);
    fclose (file);
    if (failed || len > S_FILE_MAX) {
        *error = qn_yaml_format ("cannot read config file %s: %s", path,
                                 failed? "read error": "more than 1 MiB");
        free (text);
        return NULL;
    }
    text [len] = 0;
    *len_p = len;
    return text;
}

//  The old ZPL file (qanatd.cfg) is refused with how to convert it
static bool
s_old_format (const char *path, char **error)
{
    size_t len = strlen (path);
    if (len < 4 || strcmp (path + len - 4, ".cfg") != 0)
        return false;
    *error = qn_yaml_format ("%s: the ZPL config format (.cfg) is no longer read; write the "
                             "same settings as YAML in a .yaml file: each 'key = value' of "
                             "the 'qanatd' section becomes 'key: value' at the top level, "
                             "'sync = no' becomes 'no_sync: true' (see "
                             "docs/configuration.md)", path);
    return true;
}

//  Reads path into args.  0, or -1 with *error.
static int
s_load (const qn_config_option_t *table, const char *path, s_args_t *args, char **error)
{
    if (s_old_format (path, error))
        return -1;
    size_t len = 0;
    char *text = s_read (path, &len, error);
    if (!text)
        return -1;
    qn_yaml_ctx_t ctx = { .filename = path };
    bool fatal = false;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, len, &fatal);
    if (!fatal)
        s_settings (&ctx, table, root, args);
    qn_yaml_node_free (&root);
    free (text);
    if (ctx.oom)
        qn_yaml_error (&ctx, 0, 0, "out of memory");
    if (ctx.count == 0) {
        free (ctx.errors);
        return 0;
    }
    *error = qn_yaml_errors_take (&ctx);
    return -1;
}

//  The --config argument in argv, or NULL
static const char *
s_config_path (int argc, char *argv [])
{
    const char *path = NULL;
    for (int i = 1; i < argc && strcmp (argv [i], "--") != 0; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            path = argv [++i];
        else
        if (strncmp (argv [i], "--config=", 9) == 0)
            path = argv [i] + 9;
    }
    return path;
}

int
qn_config_argv (const qn_config_option_t *table, int argc, char *argv [],
                int *argc_p, char ***argv_p, char **error)
{
    *error = NULL;
    s_args_t args = { NULL, 0, 0 };
    int rc = s_push (&args, strdup (argc > 0? argv [0]: "qanat"));
    const char *path = s_config_path (argc, argv);
    if (rc == 0 && path)
        rc = s_load (table, path, &args, error);
    for (int i = 1; rc == 0 && i < argc; i++)
        rc = s_push (&args, strdup (argv [i]));
    if (rc == -1) {
        if (!*error)
            *error = strdup ("out of memory");
        qn_config_argv_free (args.count, args.items);
        return -1;
    }
    *argc_p = args.count;
    *argv_p = args.items;
    return 0;
}

void
qn_config_argv_free (int argc, char **argv)
{
    if (!argv)
        return;
    for (int i = 0; i < argc; i++)
        free (argv [i]);
    free (argv);
}

//  ---------------------------------------------------------------------
//  --check-config

//  A value as a YAML scalar: quoted when plain YAML would read it otherwise
static void
s_print_scalar (FILE *out, const char *text)
{
    bool plain = *text && !strpbrk (text, ":#'\"{}[],&*!|>%@`\\\n\t")
              && *text != ' ' && *text != '-' && *text != '?' && text [strlen (text) - 1] != ' ';
    if (plain) {
        fputs (text, out);
        return;
    }
    fputc ('"', out);
    for (; *text; text++) {
        if (*text == '"' || *text == '\\')
            fputc ('\\', out);
        if (*text == '\n')
            fputs ("\\n", out);
        else
        if ((unsigned char) *text < 0x20)
            fprintf (out, "\\x%02x", (unsigned char) *text);
        else
            fputc (*text, out);
    }
    fputc ('"', out);
}

void
qn_config_print (FILE *out, const qn_config_option_t *table, const char *shortopts,
                 int argc, char *argv [])
{
    size_t count = s_count (table);
    const char **last = (const char **) calloc (count + 1, sizeof (char *));
    bool *seen = (bool *) calloc (count + 1, sizeof (bool));
    struct option *options = qn_config_getopt (table);
    if (!last || !seen || !options) {
        free (last);
        free (seen);
        free (options);
        return;
    }
    //  Lists: every value, in order
    fprintf (out, "# effective settings (the file, then the command line, then defaults)\n");
    int saved_opterr = opterr;
    opterr = 0;
    optind = 0;
    int index = -1, opt;
    while ((opt = getopt_long (argc, argv, shortopts, options, &index)) != -1) {
        for (size_t i = 0; i < count; i++)
            if (table [i].val == opt) {
                seen [i] = true;
                if (table [i].type != QN_CONFIG_LIST)
                    last [i] = table [i].type == QN_CONFIG_FLAG? "true": optarg;
            }
    }
    for (size_t i = 0; i < count; i++) {
        const qn_config_option_t *row = &table [i];
        if (row->flags & QN_CONFIG_CLI_ONLY)
            continue;
        //  Unset without a default value of its own: a comment
        if (!seen [i] && row->type != QN_CONFIG_FLAG
        &&  (!row->fallback || *row->fallback == '('))
            fputs ("# ", out);
        for (const char *c = row->name; *c; c++)
            fputc (*c == '-'? '_': *c, out);
        fputs (":", out);
        if (row->type == QN_CONFIG_LIST && seen [i]) {
            fputc ('\n', out);
            optind = 0;
            while ((opt = getopt_long (argc, argv, shortopts, options, NULL)) != -1)
                if (opt == row->val) {
                    fputs ("  - ", out);
                    s_print_scalar (out, (row->flags & QN_CONFIG_SECRET)? "(set)": optarg);
                    fputc ('\n', out);
                }
            continue;
        }
        fputc (' ', out);
        if (seen [i] && (row->flags & QN_CONFIG_SECRET))
            fputs ("\"(set)\"", out);
        else
        if (seen [i])
            s_print_scalar (out, last [i]);
        else
        if (row->type == QN_CONFIG_FLAG)
            fputs ("false", out);
        else
        if (row->fallback && *row->fallback != '(')
            fprintf (out, "%s  # default", row->fallback);
        else
            fprintf (out, "not set %s", row->fallback? row->fallback: "");
        fputc ('\n', out);
    }
    opterr = saved_opterr;
    optind = 0;
    free (last);
    free (seen);
    free (options);
}
