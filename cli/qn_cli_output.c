/*  qn_cli_output - the output helpers every command uses: JSON strings,
    labels and typed params for --json (made by jansson: valid UTF-8),
    printed as JSON or, with -o yaml, as YAML; tables whose columns fit
    their widest cell; colour and relative times on a terminal; plurals;
    numbers that keep every digit.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Set once by cli_output_init
bool cli_color;
bool cli_output_yaml;
static bool s_human;            //  stdout is a terminal: relative times

void
cli_output_init (options_t *options)
{
    const char *when = options->color? options->color: "auto";
    const char *no_color = getenv ("NO_COLOR");
    const char *term = getenv ("TERM");
    s_human = isatty (STDOUT_FILENO);
    cli_color = streq (when, "always")
             || (streq (when, "auto") && s_human && !(no_color && *no_color)
                 && !(term && streq (term, "dumb")));
    cli_output_yaml = options->yaml;
}

//  Results that live until a few later calls, so that several may be
//  arguments of one printf
static char *
s_slot (void)
{
    static char slots [8][128];
    static size_t next;
    return slots [next++ % 8];
}

const char *
cli_status_paint (const char *status)
{
    if (!cli_color || !status)
        return status;
    const char *code = NULL;
    if (strstr (status, "fail") || strstr (status, "lost") || strstr (status, "revoked")
    ||  strstr (status, "timed_out") || strstr (status, "error"))
        code = "31";                        //  red
    else
    if (strstr (status, "warning") || strstr (status, "retry") || strstr (status, "cancel")
    ||  strstr (status, "drain") || strstr (status, "suspect") || strstr (status, "skipped"))
        code = "33";                        //  yellow
    else
    if (strstr (status, "succeeded") || streq (status, "ok") || streq (status, "online")
    ||  streq (status, "active") || streq (status, "idle") || streq (status, "ready"))
        code = "32";                        //  green
    else
    if (strstr (status, "running") || strstr (status, "busy"))
        code = "36";                        //  cyan
    if (!code)
        return status;
    char *text = s_slot ();
    snprintf (text, 128, "\033[%sm%s\033[0m", code, status);
    return text;
}

const char *
cli_plural (uint64_t count, const char *one, const char *many)
{
    char *text = s_slot ();
    snprintf (text, 128, "%llu %s", (unsigned long long) count, count == 1? one: many);
    return text;
}

const char *
cli_number_text (double value)
{
    char *text = s_slot ();
    //  The shortest that reads back as the same double: 0.1, not
    //  0.10000000000000001; 519264360000, not 5.19264e+11
    if (value == (double) (long long) value && fabs (value) < 1e17) {
        snprintf (text, 128, "%.0f", value);
        return text;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf (text, 128, "%.*g", precision, value);
        if (strtod (text, NULL) == value)
            break;
    }
    return text;
}

//  Through jansson, so that the output is valid UTF-8 whatever the bytes
//  (a task's log, a name): an invalid byte becomes U+FFFD
json_t *
cli_json_text (const char *text)
{
    json_t *string = qn_json_text (text? text: "", text? strlen (text): 0);
    return string? string: json_string ("");
}

void
cli_json_print (json_t *value)
{
    //  With -o yaml, one YAML document each; those after the first (the
    //  lines of logs) start with "---", so that the output is one stream
    static size_t documents;
    if (value && cli_output_yaml)
        cli_yaml_print (stdout, value, documents++ > 0);
    else
    if (value && json_dumpf (value, stdout, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
        fputc ('\n', stdout);
    json_decref (value);
}

json_t *
cli_json_params (Qanat__Param **params, size_t count)
{
    json_t *object = json_object ();
    for (size_t i = 0; object && i < count; i++) {
        json_t *name = cli_json_text (params [i]->name);
        json_object_set_new (object, json_string_value (name),
                             qn_json_param_value (params [i]->value? params [i]->value: "",
                                                  params [i]->type));
        json_decref (name);
    }
    return object;
}

json_t *
cli_json_labels (Qanat__Label **labels, size_t count)
{
    json_t *object = json_object ();
    for (size_t i = 0; i < count; i++) {
        json_t *key = cli_json_text (labels [i]->key);
        json_object_set_new (object, json_string_value (key), cli_json_text (labels [i]->value));
        json_decref (key);
    }
    return object;
}

//  "3 min ago", "in 2 h": a time near now as a person reads it
static char *
s_relative (int64_t us, char *text, size_t size)
{
    int64_t delta = (qn_now_us () - us) / 1000000;
    bool future = delta < 0;
    uint64_t ago = (uint64_t) (future? -delta: delta);
    const char *unit = "s";
    uint64_t amount = ago;
    if (ago >= 2 * 86400)
        amount = ago / 86400, unit = "days";
    else
    if (ago >= 2 * 3600)
        amount = ago / 3600, unit = "h";
    else
    if (ago >= 120)
        amount = ago / 60, unit = "min";
    if (ago < 5)
        snprintf (text, size, "just now");
    else
        snprintf (text, size, future? "in %llu %s": "%llu %s ago", (unsigned long long) amount, unit);
    return text;
}

char *
cli_time_text (int64_t us)
{
    static char text [32];
    if (us <= 0)
        return strcpy (text, "-");
    if (s_human && llabs ((long long) (qn_now_us () - us)) < 7LL * 86400 * 1000000)
        return s_relative (us, text, sizeof text);
    time_t seconds = (time_t) (us / 1000000);
    struct tm tm;
    localtime_r (&seconds, &tm);
    strftime (text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return text;
}

char *
cli_duration_text (int64_t from_us, int64_t to_us)
{
    static char text [32];
    if (from_us <= 0)
        return strcpy (text, "-");
    if (to_us <= 0)
        to_us = qn_now_us ();
    double seconds = (double) (to_us - from_us) / 1e6;
    if (seconds < 60)
        snprintf (text, sizeof text, "%.1fs", seconds);
    else
    if (seconds < 3600)
        snprintf (text, sizeof text, "%dm%02ds", (int) seconds / 60, (int) seconds % 60);
    else
        snprintf (text, sizeof text, "%dh%02dm", (int) seconds / 3600, ((int) seconds % 3600) / 60);
    return text;
}

//  ---------------------------------------------------------------------
//  Tables

#define TABLE_COLUMNS_MAX 16

struct _cli_table_t {
    size_t columns;
    char *headers [TABLE_COLUMNS_MAX];
    bool right [TABLE_COLUMNS_MAX];         //  a header written ">SIZE"
    zlistx_t *rows;                         //  of char ** (columns cells, then notes)
};

static void
s_row_free (void **row_p)
{
    char **row = (char **) *row_p;
    for (size_t i = 0; row && row [i]; i++)
        free (row [i]);
    free (row);
    *row_p = NULL;
}

cli_table_t *
cli_table_new (const char *headers)
{
    cli_table_t *self = (cli_table_t *) zmalloc (sizeof (cli_table_t));
    char *copy = strdup (headers);
    char *saved = NULL;
    for (char *word = strtok_r (copy, " ", &saved); word && self->columns < TABLE_COLUMNS_MAX;
         word = strtok_r (NULL, " ", &saved)) {
        self->right [self->columns] = *word == '>';
        self->headers [self->columns++] = strdup (word + (*word == '>'));
    }
    free (copy);
    self->rows = zlistx_new ();
    zlistx_set_destructor (self->rows, s_row_free);
    return self;
}

void
cli_table_destroy (cli_table_t **self_p)
{
    cli_table_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->columns; i++)
        free (self->headers [i]);
    zlistx_destroy (&self->rows);
    free (self);
    *self_p = NULL;
}

#define TABLE_NOTES_MAX 64

void
cli_table_add (cli_table_t *self, ...)
{
    //  Room for the cells, the notes and the NULL that ends them
    char **row = (char **) zmalloc ((self->columns + TABLE_NOTES_MAX + 1) * sizeof (char *));
    va_list cells;
    va_start (cells, self);
    for (size_t i = 0; i < self->columns; i++) {
        const char *cell = va_arg (cells, const char *);
        row [i] = strdup (cell && *cell? cell: "-");
    }
    va_end (cells);
    zlistx_add_end (self->rows, row);
}

void
cli_table_note (cli_table_t *self, const char *note)
{
    char **row = (char **) zlistx_last (self->rows);
    if (!row)
        return;
    size_t at = self->columns;
    while (row [at] && at < self->columns + TABLE_NOTES_MAX)
        at++;
    if (at < self->columns + TABLE_NOTES_MAX)
        row [at] = strdup (note);
}

//  The columns text takes on a terminal: UTF-8 characters, not bytes,
//  and no colour escapes
static size_t
s_width (const char *text)
{
    size_t width = 0;
    for (const unsigned char *at = (const unsigned char *) text; *at; at++) {
        if (*at == 0x1B && at [1] == '[') {
            while (*at && *at != 'm')
                at++;
            if (!*at)
                break;
            continue;
        }
        if ((*at & 0xC0) != 0x80)
            width++;
    }
    return width;
}

static void
s_cell (FILE *out, const char *text, size_t width, bool right, bool last)
{
    size_t pad = width > s_width (text)? width - s_width (text): 0;
    if (right)
        fprintf (out, "%*s", (int) pad, "");
    fputs (text, out);
    if (!right && !last)
        fprintf (out, "%*s", (int) pad, "");
    if (!last)
        fputs ("  ", out);
}

void
cli_table_print (cli_table_t *self, FILE *out)
{
    size_t widths [TABLE_COLUMNS_MAX];
    for (size_t i = 0; i < self->columns; i++)
        widths [i] = s_width (self->headers [i]);
    for (char **row = (char **) zlistx_first (self->rows); row;
         row = (char **) zlistx_next (self->rows))
        for (size_t i = 0; i < self->columns; i++)
            if (s_width (row [i]) > widths [i])
                widths [i] = s_width (row [i]);
    for (size_t i = 0; i < self->columns; i++)
        s_cell (out, self->headers [i], widths [i], self->right [i], i + 1 == self->columns);
    fputc ('\n', out);
    for (char **row = (char **) zlistx_first (self->rows); row;
         row = (char **) zlistx_next (self->rows)) {
        for (size_t i = 0; i < self->columns; i++)
            s_cell (out, row [i], widths [i], self->right [i], i + 1 == self->columns);
        fputc ('\n', out);
        for (size_t i = self->columns; row [i]; i++)
            fprintf (out, "%s\n", row [i]);
    }
}
