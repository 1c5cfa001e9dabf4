/*  qn_cli_config - the client's config file and its contexts, like
    kubectl's: `qanat context add|use|list|show|remove`, `--context NAME`
    and QANAT_CONTEXT.

    The file is $XDG_CONFIG_HOME/qanat/config.yaml (~/.config/qanat/ when
    XDG_CONFIG_HOME is not set), in a block-YAML subset whose values are
    double-quoted JSON strings, so that the Python SDK reads it without a
    YAML library:

        current-context: "prod"
        contexts:
          "prod":
            coordinator: "tcp://host:7710"
            key: "/home/alice/.qanat/prod.key"

    It is read with qn_yaml (positions: a malformed file is an error at
    file:line:col) and written whole, 0600, to a temporary file renamed
    over the old one, so that a crash leaves the old file or the new one.
    Precedence: a command-line flag, then the environment, then the
    context, then the built-in defaults.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_file.h"
#include "qn_yaml.h"
#include <fcntl.h>
#include <sys/stat.h>

//  The keys a context may hold, in the order they are written
typedef enum { KEY_COORDINATOR, KEY_KEY, KEY_URL, KEY_TOKEN, KEY_TOKEN_FILE, KEY_COUNT } context_key_t;
static const char *s_keys [] = { "coordinator", "key", "url", "token", "token_file", NULL };

typedef struct {
    char *name;
    char *values [KEY_COUNT];       //  NULL when not set
} context_t;

typedef struct {
    char *path;
    char *current;                  //  current-context, or NULL
    context_t *contexts;
    size_t count;
} config_t;

#define CONFIG_MAX_BYTES (1024 * 1024)

static void
s_config_destroy (config_t **self_p)
{
    config_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        free (self->contexts [i].name);
        for (int key = 0; key < KEY_COUNT; key++)
            free (self->contexts [i].values [key]);
    }
    free (self->contexts);
    free (self->current);
    free (self->path);
    free (self);
    *self_p = NULL;
}

//  The file's path, malloc'd; NULL when neither XDG_CONFIG_HOME nor HOME
//  is set
static char *
s_config_path (void)
{
    const char *xdg = getenv ("XDG_CONFIG_HOME");
    if (xdg && *xdg == '/')
        return zsys_sprintf ("%s/qanat/config.yaml", xdg);
    const char *home = getenv ("HOME");
    return home && *home? zsys_sprintf ("%s/.config/qanat/config.yaml", home): NULL;
}

static context_t *
s_find (config_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->count; i++)
        if (streq (self->contexts [i].name, name))
            return &self->contexts [i];
    return NULL;
}

static context_t *
s_add (config_t *self, const char *name)
{
    context_t *grown = (context_t *) realloc (self->contexts,
                                              (self->count + 1) * sizeof (context_t));
    assert (grown);
    self->contexts = grown;
    context_t *context = &self->contexts [self->count++];
    memset (context, 0, sizeof *context);
    context->name = strdup (name);
    return context;
}

//  Reads one context's mapping into the config; errors into ctx
static void
s_read_context (qn_yaml_ctx_t *ctx, config_t *self, qn_yaml_node_t *key, qn_yaml_node_t *value)
{
    if (!qn_yaml_name_valid (key->value)) {
        qn_yaml_node_error (ctx, key, "a context's name is letters, digits, '_', '.' and '-'");
        return;
    }
    context_t *context = s_add (self, key->value);
    if (qn_yaml_is_null (value))
        return;
    if (value->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, value, "context '%s' should be a mapping of coordinator,"
                            " key, url, token, token_file", key->value);
        return;
    }
    char where [QN_YAML_NAME_MAX + 32];
    snprintf (where, sizeof where, " in context '%s'", key->value);
    qn_yaml_check_keys (ctx, value, s_keys, where);
    for (int i = 0; i < KEY_COUNT; i++) {
        qn_yaml_node_t *field = qn_yaml_map_get (value, s_keys [i], NULL);
        if (!field || qn_yaml_is_null (field))
            continue;
        if (field->kind != QN_YAML_SCALAR)
            qn_yaml_node_error (ctx, field, "%s should be a string", s_keys [i]);
        else
            context->values [i] = strdup (field->value);
    }
}

static void
s_read (qn_yaml_ctx_t *ctx, config_t *self, qn_yaml_node_t *root)
{
    if (root->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, root, "the config file should be a mapping with"
                            " current-context and contexts");
        return;
    }
    static const char *known [] = { "current-context", "contexts", NULL };
    qn_yaml_check_keys (ctx, root, known, "");
    qn_yaml_node_t *current = qn_yaml_map_get (root, "current-context", NULL);
    if (current && !qn_yaml_is_null (current)) {
        if (current->kind != QN_YAML_SCALAR)
            qn_yaml_node_error (ctx, current, "current-context should be a context's name");
        else
        if (*current->value)
            self->current = strdup (current->value);
    }
    qn_yaml_node_t *contexts = qn_yaml_map_get (root, "contexts", NULL);
    if (contexts && !qn_yaml_is_null (contexts) && contexts->kind != QN_YAML_MAPPING)
        qn_yaml_node_error (ctx, contexts, "contexts should be a mapping of names to contexts");
    else
    if (contexts && !qn_yaml_is_null (contexts))
        for (size_t i = 0; i + 1 < contexts->count; i += 2)
            if (!contexts->items [i]->skip)
                s_read_context (ctx, self, contexts->items [i], contexts->items [i + 1]);
    if (self->current && !s_find (self, self->current))
        qn_yaml_node_error (ctx, current, "current-context '%s' is not one of the contexts",
                            self->current);
}

//  The config file, or an empty config when there is none; NULL after
//  *error_p (malloc'd) says why
static config_t *
s_config_load (char **error_p)
{
    config_t *self = (config_t *) zmalloc (sizeof (config_t));
    self->path = s_config_path ();
    if (!self->path)
        return self;
    char reason [256] = "";
    bool missing = false;
    size_t size = 0;
    char *text = qn_file_read_small (self->path, CONFIG_MAX_BYTES, &size, &missing,
                                     reason, sizeof reason);
    if (!text && missing)
        return self;
    if (!text) {
        *error_p = strdup (reason);
        s_config_destroy (&self);
        return NULL;
    }
    qn_yaml_ctx_t ctx = { .filename = self->path };
    bool fatal = false;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, size, &fatal);
    if (root && !fatal) {
        qn_yaml_mark_duplicates (&ctx, root, "contexts", "context");
        s_read (&ctx, self, root);
    }
    qn_yaml_node_free (&root);
    free (text);
    if (ctx.count || ctx.oom) {
        *error_p = ctx.count? qn_yaml_errors_take (&ctx)
                            : zsys_sprintf ("%s: out of memory", self->path);
        s_config_destroy (&self);
    }
    return self;
}

//  value as a double-quoted JSON string (valid YAML too), on file
static void
s_write_string (FILE *file, const char *value)
{
    json_t *string = cli_json_text (value);
    if (!string || json_dumpf (string, file, JSON_ENCODE_ANY))
        fputs ("\"\"", file);
    json_decref (string);
}

//  Writes the whole file: a temporary 0600 file beside it, synced, then
//  renamed over it.  0, or -1 after saying why.
static int
s_config_save (config_t *self)
{
    if (!self->path) {
        fprintf (stderr, "%s: no config file: set HOME or XDG_CONFIG_HOME\n", cli_program);
        return -1;
    }
    qn_file_make_parents (self->path);
    char *temporary = zsys_sprintf ("%s.XXXXXX", self->path);
    int fd = mkstemp (temporary);
    FILE *file = fd >= 0? fdopen (fd, "w"): NULL;
    if (!file) {
        fprintf (stderr, "%s: cannot write %s: %s\n", cli_program, self->path, strerror (errno));
        if (fd >= 0)
            close (fd);
        free (temporary);
        return -1;
    }
    fchmod (fd, 0600);
    if (self->current) {
        fputs ("current-context: ", file);
        s_write_string (file, self->current);
        fputc ('\n', file);
    }
    fputs ("contexts:\n", file);
    for (size_t i = 0; i < self->count; i++) {
        fputs ("  ", file);
        s_write_string (file, self->contexts [i].name);
        fputs (":\n", file);
        for (int key = 0; key < KEY_COUNT; key++)
            if (self->contexts [i].values [key]) {
                fprintf (file, "    %s: ", s_keys [key]);
                s_write_string (file, self->contexts [i].values [key]);
                fputc ('\n', file);
            }
    }
    bool written = fflush (file) == 0 && fsync (fd) == 0;
    written = fclose (file) == 0 && written;
    if (!written || rename (temporary, self->path)) {
        fprintf (stderr, "%s: cannot write %s: %s\n", cli_program, self->path, strerror (errno));
        unlink (temporary);
        free (temporary);
        return -1;
    }
    free (temporary);
    return 0;
}

//  ---------------------------------------------------------------------
//  Applying a context to the options

//  The context the options name (--context, QANAT_CONTEXT, the file's
//  current one), or NULL for none; *rc_p set when it cannot be had
static context_t *
s_selected (config_t *config, options_t *options, int *rc_p)
{
    const char *name = options->context;
    const char *source = "--context";
    if (!name && getenv ("QANAT_CONTEXT") && *getenv ("QANAT_CONTEXT")) {
        name = getenv ("QANAT_CONTEXT");
        source = "QANAT_CONTEXT";
    }
    if (!name)
        return s_find (config, config->current);
    context_t *context = s_find (config, name);
    if (!context) {
        fprintf (stderr, "%s: no context '%s' (%s) in %s; 'qanat context list' shows them\n",
                 cli_program, name, source, config->path? config->path: "the config file");
        *rc_p = EXIT_NOT_FOUND;
    }
    return context;
}

//  Kept for the program's life: options point into it
static config_t *s_applied;

//  The config file, or NULL after saying why it cannot be read
static config_t *
s_config_read (void)
{
    char *error = NULL;
    config_t *config = s_config_load (&error);
    if (!config)
        fprintf (stderr, "%s: %s\n", cli_program, error? error: "cannot read the config file");
    free (error);
    return config;
}

int
cli_config_apply (options_t *options)
{
    config_t *config = s_config_read ();
    if (!config)
        return EXIT_USAGE;
    int rc = 0;
    context_t *context = s_selected (config, options, &rc);
    const char *env_coordinator = getenv ("QANAT_COORDINATOR");
    const char *env_key = getenv ("QANAT_KEY");
    if (context && !options->endpoint && !(env_coordinator && *env_coordinator))
        options->endpoint = context->values [KEY_COORDINATOR];
    if (context && !options->key && !(env_key && *env_key))
        options->key = context->values [KEY_KEY];
    s_config_destroy (&s_applied);
    s_applied = config;
    return rc;
}

//  ---------------------------------------------------------------------
//  qanat context

//  A key path as the file keeps it: absolute, so that it works from
//  any directory; "none" as it is
static char *
s_absolute (const char *path)
{
    if (*path == '/' || streq (path, "none"))
        return strdup (path);
    char cwd [4096];
    if (!getcwd (cwd, sizeof cwd))
        return strdup (path);
    return zsys_sprintf ("%s/%s", cwd, strncmp (path, "./", 2) == 0? path + 2: path);
}

static int
s_context_add (config_t *config, options_t *options, const char *name)
{
    if (!qn_yaml_name_valid (name)) {
        fprintf (stderr, "%s: a context's name is letters, digits, '_', '.' and '-', not '%s'\n",
                 cli_program, name);
        return EXIT_USAGE;
    }
    if (s_find (config, name)) {
        fprintf (stderr, "%s: context '%s' exists already ('qanat context remove %s' first)\n",
                 cli_program, name, name);
        return EXIT_CONFLICT;
    }
    if (!options->endpoint && !options->key && !options->url) {
        fprintf (stderr, "%s: a context needs --coordinator, --key or --url\n", cli_program);
        return cli_usage_error ("context");
    }
    if (options->key && !streq (options->key, "none") && access (options->key, R_OK) != 0) {
        fprintf (stderr, "%s: key file %s does not exist\n", cli_program, options->key);
        return EXIT_USAGE;
    }
    context_t *context = s_add (config, name);
    const char *given [KEY_COUNT] = { options->endpoint, NULL, options->url, options->token,
                                      options->token_file };
    for (int key = 0; key < KEY_COUNT; key++)
        if (given [key])
            context->values [key] = strdup (given [key]);
    if (options->key)
        context->values [KEY_KEY] = s_absolute (options->key);
    if (options->token_file)
        context->values [KEY_TOKEN_FILE] = s_absolute (options->token_file);
    bool made_current = !config->current;
    if (made_current)
        config->current = strdup (name);
    if (s_config_save (config))
        return EXIT_USAGE;
    printf ("context %s added%s\n", name, made_current? " (current)": "");
    return 0;
}

static int
s_context_use (config_t *config, const char *name)
{
    if (!s_find (config, name)) {
        fprintf (stderr, "%s: no context '%s'; 'qanat context list' shows them\n", cli_program, name);
        return EXIT_NOT_FOUND;
    }
    free (config->current);
    config->current = strdup (name);
    if (s_config_save (config))
        return EXIT_USAGE;
    printf ("now using context %s\n", name);
    return 0;
}

static int
s_context_remove (config_t *config, const char *name)
{
    context_t *context = s_find (config, name);
    if (!context) {
        fprintf (stderr, "%s: no context '%s'\n", cli_program, name);
        return EXIT_NOT_FOUND;
    }
    free (context->name);
    for (int key = 0; key < KEY_COUNT; key++)
        free (context->values [key]);
    size_t at = (size_t) (context - config->contexts);
    memmove (context, context + 1, (config->count - at - 1) * sizeof (context_t));
    config->count--;
    if (config->current && streq (config->current, name))
        zstr_free (&config->current);
    if (s_config_save (config))
        return EXIT_USAGE;
    printf ("context %s removed\n", name);
    return 0;
}

//  A context as JSON; the token itself is never printed, only whether
//  one is set
static json_t *
s_context_json (config_t *config, context_t *context)
{
    json_t *object = json_object ();
    json_object_set_new (object, "name", cli_json_text (context->name));
    json_object_set_new (object, "current",
                         json_boolean (config->current && streq (config->current, context->name)));
    for (int key = 0; key < KEY_COUNT; key++)
        if (key != KEY_TOKEN)
            json_object_set_new (object, s_keys [key], context->values [key]
                                 ? cli_json_text (context->values [key]): json_null ());
    json_object_set_new (object, "token_set", json_boolean (context->values [KEY_TOKEN] != NULL));
    return object;
}

static int
s_context_list (config_t *config, options_t *options)
{
    if (options->json) {
        json_t *list = json_array ();
        for (size_t i = 0; i < config->count; i++)
            json_array_append_new (list, s_context_json (config, &config->contexts [i]));
        cli_json_print (list);
        return 0;
    }
    cli_table_t *table = cli_table_new ("CURRENT NAME COORDINATOR KEY URL");
    for (size_t i = 0; i < config->count; i++) {
        context_t *context = &config->contexts [i];
        cli_table_add (table, config->current && streq (config->current, context->name)? "*": "",
                       context->name, context->values [KEY_COORDINATOR],
                       context->values [KEY_KEY], context->values [KEY_URL], NULL);
    }
    cli_table_print (table, stdout);
    cli_table_destroy (&table);
    return 0;
}

static int
s_context_show (config_t *config, options_t *options, const char *name)
{
    int rc = 0;
    context_t *context = name? s_find (config, name): s_selected (config, options, &rc);
    if (!context) {
        if (!rc)
            fprintf (stderr, "%s: %s%s%s\n", cli_program, name? "no context '": "no current context",
                     name? name: "", name? "'": "");
        return EXIT_NOT_FOUND;
    }
    json_t *object = s_context_json (config, context);
    if (options->json)
        cli_json_print (object);
    else {
        printf ("%-12s %s%s\n", "name:", context->name,
                json_is_true (json_object_get (object, "current"))? " (current)": "");
        for (int key = 0; key < KEY_COUNT; key++)
            if (context->values [key]) {
                char label [32];
                snprintf (label, sizeof label, "%s:", s_keys [key]);
                printf ("%-12s %s\n", label, key == KEY_TOKEN? "(set)": context->values [key]);
            }
        printf ("%-12s %s\n", "file:", config->path? config->path: "-");
        json_decref (object);
    }
    return 0;
}

int
cli_cmd_context (options_t *options, int argc, char **argv)
{
    const char *verb = argc? argv [0]: "";
    bool named = argc == 2;
    if (!(named && (streq (verb, "add") || streq (verb, "use") || streq (verb, "remove")
                    || streq (verb, "show")))
    &&  !(argc == 1 && (streq (verb, "list") || streq (verb, "show"))))
        return cli_usage_error ("context");
    if (!streq (verb, "add") && (options->url || options->token || options->token_file)) {
        fprintf (stderr, "%s: --url, --token and --token-file go with context add\n", cli_program);
        return EXIT_USAGE;
    }
    config_t *config = s_config_read ();
    if (!config)
        return EXIT_USAGE;
    int rc = streq (verb, "add")? s_context_add (config, options, argv [1])
           : streq (verb, "use")? s_context_use (config, argv [1])
           : streq (verb, "remove")? s_context_remove (config, argv [1])
           : streq (verb, "list")? s_context_list (config, options)
           : s_context_show (config, options, named? argv [1]: NULL);
    s_config_destroy (&config);
    return rc;
}
