/*  qn_cli_output - the output helpers every command uses: JSON strings and
    labels for --json, local times and durations for the tables.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include <string.h>
#include <time.h>

void
cli_json_string (FILE *out, const char *text, size_t len)
{
    fputc ('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text [i];
        if (c == '"' || c == '\\')
            fprintf (out, "\\%c", c);
        else
        if (c == '\n')
            fputs ("\\n", out);
        else
        if (c == '\t')
            fputs ("\\t", out);
        else
        if (c == '\r')
            fputs ("\\r", out);
        else
        if (c < 0x20 || c == 0x7f)
            fprintf (out, "\\u%04x", c);
        else
            fputc (c, out);
    }
    fputc ('"', out);
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
