/*  qn_cli_output - the output helpers every command uses: JSON strings,
    labels and typed params for --json (made by jansson: valid UTF-8), local times and durations for the tables.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include <string.h>
#include <time.h>

//  Through jansson, so that the output is valid UTF-8 whatever the bytes
//  (a task's log, a name): an invalid byte becomes U+FFFD
void
cli_json_string (FILE *out, const char *text, size_t len)
{
    json_t *string = qn_json_text (text, len);
    if (!string || json_dumpf (string, out, JSON_ENCODE_ANY | JSON_COMPACT))
        fputs ("\"\"", out);
    json_decref (string);
}

void
cli_json_print (json_t *value)
{
    if (value && json_dumpf (value, stdout, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
        fputc ('\n', stdout);
    json_decref (value);
}

void
cli_json_params (FILE *out, Qanat__Param **params, size_t count)
{
    json_t *object = json_object ();
    for (size_t i = 0; object && i < count; i++) {
        json_t *name = qn_json_text (params [i]->name, params [i]->name? strlen (params [i]->name): 0);
        if (name)
            json_object_set_new (object, json_string_value (name),
                                 qn_json_param_value (params [i]->value? params [i]->value: "",
                                                      params [i]->type));
        json_decref (name);
    }
    if (!object || json_dumpf (object, out, JSON_COMPACT))
        fputs ("{}", out);
    json_decref (object);
}

void
cli_json_str (FILE *out, const char *text)
{
    cli_json_string (out, text? text: "", text? strlen (text): 0);
}

void
cli_json_labels (FILE *out, Qanat__Label **labels, size_t count)
{
    fputc ('{', out);
    for (size_t i = 0; i < count; i++) {
        if (i)
            fputc (',', out);
        cli_json_str (out, labels [i]->key);
        fputc (':', out);
        cli_json_str (out, labels [i]->value);
    }
    fputc ('}', out);
}

char *
cli_time_text (int64_t us)
{
    static char text [32];
    if (us <= 0)
        return strcpy (text, "-");
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
