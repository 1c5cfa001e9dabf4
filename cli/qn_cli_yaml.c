/*  qn_cli_yaml - `-o yaml`: a jansson value printed as YAML with
    libyaml's emitter, so that every query that has JSON has YAML with
    the same content, and libyaml does the escaping.

    Types survive the trip: a string that a YAML reader would take for a
    number, a boolean or null ("7", "true", "null", "") is quoted; a real
    keeps a '.' so that 5.0 stays a float; reals have the fewest digits
    that read back as the same double.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include <ctype.h>
#include <yaml.h>

#define YAML_DEPTH_MAX 64       //  jansson values are ours, but bound it

//  True when a plain scalar text would not read back as this string
static bool
s_needs_quotes (const char *text)
{
    if (!*text || isspace ((unsigned char) *text))
        return true;
    if (isdigit ((unsigned char) *text) || strchr ("+-.~", *text))
        return true;
    static const char *words [] = {
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", NULL
    };
    for (size_t i = 0; words [i]; i++)
        if (strcasecmp (text, words [i]) == 0)
            return true;
    return false;
}

static int
s_scalar (yaml_emitter_t *emitter, const char *text, size_t size, bool quoted_if_needed)
{
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
    if (quoted_if_needed && s_needs_quotes (text))
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    else
    if (quoted_if_needed && memchr (text, '\n', size))
        style = YAML_LITERAL_SCALAR_STYLE;
    yaml_event_t event;
    if (!yaml_scalar_event_initialize (&event, NULL, NULL, (yaml_char_t *) text, (int) size,
                                       1, 1, style))
        return -1;
    return yaml_emitter_emit (emitter, &event)? 0: -1;
}

static int
s_number (yaml_emitter_t *emitter, json_t *value)
{
    char text [64];
    if (json_is_integer (value))
        snprintf (text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
    else {
        snprintf (text, sizeof text, "%s", cli_number_text (json_real_value (value)));
        if (!strpbrk (text, ".eEni"))
            strcat (text, ".0");
    }
    return s_scalar (emitter, text, strlen (text), false);
}

static int
s_emit (yaml_emitter_t *emitter, json_t *value, int depth)
{
    yaml_event_t event;
    if (depth > YAML_DEPTH_MAX)
        return -1;
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            if (!yaml_mapping_start_event_initialize (&event, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)
            ||  !yaml_emitter_emit (emitter, &event))
                return -1;
            const char *key;
            json_t *member;
            json_object_foreach (value, key, member)
                if (s_scalar (emitter, key, strlen (key), true) || s_emit (emitter, member, depth + 1))
                    return -1;
            return yaml_mapping_end_event_initialize (&event)
                && yaml_emitter_emit (emitter, &event)? 0: -1;
        }
        case JSON_ARRAY: {
            if (!yaml_sequence_start_event_initialize (&event, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE)
            ||  !yaml_emitter_emit (emitter, &event))
                return -1;
            size_t index;
            json_t *item;
            json_array_foreach (value, index, item)
                if (s_emit (emitter, item, depth + 1))
                    return -1;
            return yaml_sequence_end_event_initialize (&event)
                && yaml_emitter_emit (emitter, &event)? 0: -1;
        }
        case JSON_STRING:
            return s_scalar (emitter, json_string_value (value), json_string_length (value), true);
        case JSON_INTEGER:
        case JSON_REAL:
            return s_number (emitter, value);
        case JSON_TRUE:
            return s_scalar (emitter, "true", 4, false);
        case JSON_FALSE:
            return s_scalar (emitter, "false", 5, false);
        default:
            return s_scalar (emitter, "null", 4, false);
    }
}

int
cli_yaml_print (FILE *out, json_t *value, bool explicit_start)
{
    yaml_emitter_t emitter;
    yaml_event_t event;
    if (!yaml_emitter_initialize (&emitter))
        return -1;
    yaml_emitter_set_output_file (&emitter, out);
    yaml_emitter_set_unicode (&emitter, 1);
    yaml_emitter_set_width (&emitter, -1);
    yaml_emitter_set_indent (&emitter, 2);
    int rc = yaml_stream_start_event_initialize (&event, YAML_UTF8_ENCODING)
          && yaml_emitter_emit (&emitter, &event)
          && yaml_document_start_event_initialize (&event, NULL, NULL, NULL, !explicit_start)
          && yaml_emitter_emit (&emitter, &event)? 0: -1;
    if (rc == 0)
        rc = s_emit (&emitter, value, 0);
    if (rc == 0)
        rc = yaml_document_end_event_initialize (&event, 1)
          && yaml_emitter_emit (&emitter, &event)
          && yaml_stream_end_event_initialize (&event)
          && yaml_emitter_emit (&emitter, &event)
          && yaml_emitter_flush (&emitter)? 0: -1;
    yaml_emitter_delete (&emitter);
    return rc;
}
