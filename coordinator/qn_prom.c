/*  qn_prom - a page of metrics in the Prometheus text format.  See
    qn_prom.h. */
#include "qn_prom.h"
#include "qanat.pb-c.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double qn_prom_commit_bounds [QN_PROM_COMMIT_BOUNDS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25
};

typedef struct {
    char *name;
    char *help;
    const char *type;
    char *samples;              //  the sample lines, written through stream
    size_t size;
    FILE *stream;
} s_family_t;

struct _qn_prom_t {
    s_family_t *families;       //  in the order first seen
    size_t count;
    size_t capacity;
    bool failed;                //  out of memory once: no page
};

qn_prom_t *
qn_prom_new (void)
{
    return (qn_prom_t *) calloc (1, sizeof (qn_prom_t));
}

void
qn_prom_destroy (qn_prom_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_prom_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        s_family_t *family = self->families + i;
        if (family->stream)
            fclose (family->stream);
        free (family->samples);
        free (family->name);
        free (family->help);
    }
    free (self->families);
    free (self);
    *self_p = NULL;
}

static bool
s_valid_name (const char *name, bool colon)
{
    if (!name || !*name || (*name >= '0' && *name <= '9'))
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
           || *c == '_' || (colon && *c == ':')))
            return false;
    return true;
}

//  The family name of type, made on first use; NULL when the name is
//  invalid, the type differs or memory ran out
static s_family_t *
s_family (qn_prom_t *self, const char *name, const char *help, const char *type)
{
    if (!self || self->failed || !s_valid_name (name, true))
        return NULL;
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->families [i].name, name) == 0)
            return strcmp (self->families [i].type, type) == 0? self->families + i: NULL;
    if (self->count == self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: 32;
        s_family_t *grown = (s_family_t *) realloc (self->families,
                                                    capacity * sizeof (s_family_t));
        if (!grown) {
            self->failed = true;
            return NULL;
        }
        self->families = grown;
        self->capacity = capacity;
    }
    s_family_t *family = self->families + self->count;
    memset (family, 0, sizeof *family);
    family->type = type;
    family->name = strdup (name);
    family->help = strdup (help? help: name);
    family->stream = open_memstream (&family->samples, &family->size);
    self->count++;              //  counted before the checks: destroy frees it
    if (!family->name || !family->help || !family->stream) {
        self->failed = true;
        return NULL;
    }
    return family;
}

//  A double as Prometheus reads it: integers exactly, others as the
//  shortest text that reads back the same
static void
s_number (char *text, size_t size, double value)
{
    if (isnan (value))
        snprintf (text, size, "NaN");
    else
    if (isinf (value))
        snprintf (text, size, value > 0? "+Inf": "-Inf");
    else
    if (value == floor (value) && fabs (value) < 1e15)
        snprintf (text, size, "%.0f", value);
    else
        for (int precision = 1; precision <= 17; precision++) {
            snprintf (text, size, "%.*g", precision, value);
            if (strtod (text, NULL) == value)
                break;
        }
}

//  One line: name{labels} value (suffix is _bucket, _sum... or "")
static void
s_line (qn_prom_t *self, s_family_t *family, const char *suffix, const char *label_text,
        const char *value)
{
    if (!family)
        return;
    //  A raw line end would start a line of its own
    if (label_text && strpbrk (label_text, "\r\n"))
        return;
    int rc = label_text && *label_text
        ? fprintf (family->stream, "%s%s{%s} %s\n", family->name, suffix, label_text, value)
        : fprintf (family->stream, "%s%s %s\n", family->name, suffix, value);
    if (rc < 0)
        self->failed = true;
}

static void
s_sample (qn_prom_t *self, const char *name, const char *help, const char *type,
          const char *label_text, double value)
{
    char text [64];
    s_number (text, sizeof text, value);
    s_line (self, s_family (self, name, help, type), "", label_text, text);
}

void
qn_prom_counter (qn_prom_t *self, const char *name, const char *help,
                 const char *label_text, double value)
{
    s_sample (self, name, help, "counter", label_text, value);
}

void
qn_prom_gauge (qn_prom_t *self, const char *name, const char *help,
               const char *label_text, double value)
{
    s_sample (self, name, help, "gauge", label_text, value);
}

void
qn_prom_histogram (qn_prom_t *self, const char *name, const char *help,
                   const double *bounds, const uint64_t *cumulative, size_t n,
                   double sum, uint64_t count)
{
    s_family_t *family = s_family (self, name, help, "histogram");
    if (!family)
        return;
    char label [80], value [32];
    uint64_t running = 0;
    double previous = -INFINITY;
    for (size_t i = 0; bounds && cumulative && i < n; i++) {
        if (cumulative [i] > running)
            running = cumulative [i];
        //  +Inf is written last with the count; bounds must increase
        if (isinf (bounds [i]) && bounds [i] > 0)
            break;
        if (!(bounds [i] > previous))
            continue;
        previous = bounds [i];
        char bound [64];
        s_number (bound, sizeof bound, bounds [i]);
        snprintf (label, sizeof label, "le=\"%s\"", bound);
        snprintf (value, sizeof value, "%llu", (unsigned long long) running);
        s_line (self, family, "_bucket", label, value);
    }
    if (count < running)
        count = running;
    snprintf (value, sizeof value, "%llu", (unsigned long long) count);
    s_line (self, family, "_bucket", "le=\"+Inf\"", value);
    char text [64];
    s_number (text, sizeof text, sum);
    s_line (self, family, "_sum", NULL, text);
    s_line (self, family, "_count", NULL, value);
}

char *
qn_prom_label_text (const char *name, const char *value)
{
    if (!s_valid_name (name, false))
        return NULL;
    if (!value)
        value = "";
    size_t length = strlen (name) + 4;
    for (const char *c = value; *c; c++)
        length += (*c == '\\' || *c == '"' || *c == '\n')? 2: 1;
    char *text = (char *) malloc (length);
    if (!text)
        return NULL;
    char *at = text + sprintf (text, "%s=\"", name);
    for (const char *c = value; *c; c++) {
        if (*c == '\\' || *c == '"' || *c == '\n')
            *at++ = '\\';
        *at++ = *c == '\n'? 'n': *c;
    }
    *at++ = '"';
    *at = 0;
    return text;
}

//  ---------------------------------------------------------------------
//  Stats

static const ProtobufCFieldDescriptor *
s_field (const ProtobufCMessageDescriptor *descriptor, const char *name)
{
    for (unsigned i = 0; i < descriptor->n_fields; i++)
        if (strcmp (descriptor->fields [i].name, name) == 0)
            return descriptor->fields + i;
    return NULL;
}

//  Counters and gauges with one label, from repeated Label fields whose
//  values are decimal counts
static const struct {
    const char *field;
    const char *family;
    const char *type;
    const char *label;
    const char *help;
} s_labelled [] = {
    { "attempts_ended", "qanat_attempts_ended_total", "counter", "reason",
      "attempts ended, by end reason" },
    { "queue_depth", "qanat_queue_depth", "gauge", "selector",
      "queued tasks, by agent selector" },
    { "agents_by_state", "qanat_agents", "gauge", "state",
      "agents, by state" },
};

static bool
s_decimal (const char *text)
{
    size_t length = text? strlen (text): 0;
    return length > 0 && length <= 20 && strspn (text, "0123456789") == length;
}

static void
s_add_labelled (qn_prom_t *self, const ProtobufCMessage *stats, size_t which)
{
    const ProtobufCFieldDescriptor *field = s_field (stats->descriptor, s_labelled [which].field);
    if (!field || field->label != PROTOBUF_C_LABEL_REPEATED
    ||  field->type != PROTOBUF_C_TYPE_MESSAGE
    ||  strcmp (((const ProtobufCMessageDescriptor *) field->descriptor)->name, "qanat.Label"))
        return;
    size_t count = *(const size_t *) ((const char *) stats + field->quantifier_offset);
    const Qanat__Label * const *labels =
        *(const Qanat__Label * const * const *) ((const char *) stats + field->offset);
    //  The family appears (HELP, TYPE) even with no samples
    s_family_t *family = s_family (self, s_labelled [which].family, s_labelled [which].help,
                                   s_labelled [which].type);
    for (size_t i = 0; family && labels && i < count; i++) {
        if (!labels [i] || !s_decimal (labels [i]->value))
            continue;
        char *label = qn_prom_label_text (s_labelled [which].label,
                                          labels [i]->key? labels [i]->key: "");
        if (!label)
            self->failed = true;
        else
            s_line (self, family, "", label, labels [i]->value);
        free (label);
    }
}

static void
s_add_commit_latency (qn_prom_t *self, const ProtobufCMessage *stats)
{
    const ProtobufCFieldDescriptor *buckets = s_field (stats->descriptor, "commit_latency_bucket");
    const ProtobufCFieldDescriptor *sum = s_field (stats->descriptor, "commit_latency_sum_ms");
    if (!buckets || buckets->label != PROTOBUF_C_LABEL_REPEATED
    ||  buckets->type != PROTOBUF_C_TYPE_UINT64)
        return;
    const char *base = (const char *) stats;
    size_t n = *(const size_t *) (base + buckets->quantifier_offset);
    const uint64_t *counts = *(const uint64_t * const *) (base + buckets->offset);
    if (!counts)
        n = 0;
    //  One count per bound and the +Inf one; missing ones repeat the last
    uint64_t cumulative [QN_PROM_COMMIT_BOUNDS];
    uint64_t last = 0;
    for (size_t i = 0; i < QN_PROM_COMMIT_BOUNDS; i++) {
        if (i < n)
            last = counts [i];
        cumulative [i] = last;
    }
    uint64_t count = n > QN_PROM_COMMIT_BOUNDS? counts [QN_PROM_COMMIT_BOUNDS]: last;
    double sum_ms = sum && sum->label != PROTOBUF_C_LABEL_REPEATED
                 && sum->type == PROTOBUF_C_TYPE_DOUBLE? *(const double *) (base + sum->offset): 0;
    qn_prom_histogram (self, "qanat_commit_latency_seconds", "store commit latency",
                       qn_prom_commit_bounds, cumulative, QN_PROM_COMMIT_BOUNDS,
                       sum_ms / 1000.0, count);
}

void
qn_prom_add_stats (qn_prom_t *self, const ProtobufCMessage *stats)
{
    if (!self || !stats || !stats->descriptor
    ||  stats->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return;
    const ProtobufCMessageDescriptor *descriptor = stats->descriptor;
    for (unsigned i = 0; i < descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = descriptor->fields + i;
        if (field->type != PROTOBUF_C_TYPE_UINT64 || field->label == PROTOBUF_C_LABEL_REPEATED
        ||  (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        char name [160], help [160], value [32];
        snprintf (name, sizeof name, "qanat_%s_total", field->name);
        snprintf (help, sizeof help, "%s", field->name);
        for (char *c = help; *c; c++)
            if (*c == '_')
                *c = ' ';
        uint64_t number = *(const uint64_t *) ((const char *) stats + field->offset);
        snprintf (value, sizeof value, "%llu", (unsigned long long) number);
        s_line (self, s_family (self, name, help, "counter"), "", NULL, value);
    }
    for (size_t i = 0; i < sizeof s_labelled / sizeof s_labelled [0]; i++)
        s_add_labelled (self, stats, i);
    s_add_commit_latency (self, stats);
}

//  HELP text escaped: \\ and \n
static int
s_help (FILE *stream, const char *help)
{
    for (const char *c = help; *c; c++) {
        int rc = *c == '\\'? fputs ("\\\\", stream): *c == '\n'? fputs ("\\n", stream)
               : fputc (*c, stream);
        if (rc < 0)
            return -1;
    }
    return 0;
}

char *
qn_prom_text (qn_prom_t *self)
{
    if (!self || self->failed)
        return NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    if (!stream)
        return NULL;
    bool failed = false;
    for (size_t i = 0; i < self->count && !failed; i++) {
        s_family_t *family = self->families + i;
        failed = fflush (family->stream) != 0
              || fprintf (stream, "# HELP %s ", family->name) < 0
              || s_help (stream, family->help)
              || fprintf (stream, "\n# TYPE %s %s\n", family->name, family->type) < 0
              || (family->size && fwrite (family->samples, 1, family->size, stream) != family->size);
    }
    if (fclose (stream) != 0 || failed) {
        free (text);
        return NULL;
    }
    return text;
}
