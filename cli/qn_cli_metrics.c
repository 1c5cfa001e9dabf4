/*  qn_cli_metrics - `qanat metrics`: a run's metric series, or a
    workflow's history (the last value per run); and the summary that
    ends run --follow.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include <ctype.h>

void
cli_print_metric_summary (qn_client_t *client, uint64_t run_id)
{
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    read.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__MetricReport *report = reply->reply->metrics;
    if (report->n_series) {
        printf ("\nmetrics (last value, points):\n");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            if (series->n_points)
                printf ("  %-12s %-16s %-12g (%zu points)\n", series->task, series->name,
                        series->points [series->n_points - 1]->value, series->n_points);
        }
    }
    qn_msg_free (&reply);
}

int
cli_cmd_metrics (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        return cli_usage_error ("metrics");
    }
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    bool history = !isdigit ((unsigned char) argv [0][0]);
    if (history)
        read.workflow = argv [0];
    else
        read.run_id = cli_parse_run_id (argv [0]);
    read.name = argc > 1? argv [1]: "";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__MetricReport *report = reply->reply->metrics;
    if (options->json) {
        printf ("[");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            printf ("%s{\"run_id\":%llu,\"task\":", i? ",": "", (unsigned long long) series->run_id);
            cli_json_str (stdout, series->task);
            printf (",\"name\":");
            cli_json_str (stdout, series->name);
            printf (",\"points\":[");
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                printf ("%s{\"value\":%.17g,\"time_us\":%lld", p? ",": "", point->value,
                        (long long) point->time_us);
                if (point->has_step)
                    printf (",\"step\":%lld", (long long) point->step);
                printf ("}");
            }
            printf ("]}");
        }
        printf ("]\n");
    }
    else
    if (history) {
        printf ("%-6s %-16s %-20s %s\n", "RUN", "TASK", "METRIC", "VALUE");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            if (series->n_points)
                printf ("%-6llu %-16s %-20s %g\n", (unsigned long long) series->run_id,
                        series->task, series->name, series->points [0]->value);
        }
    }
    else {
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            printf ("%s %s (%zu points)\n", series->task, series->name, series->n_points);
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                if (point->has_step)
                    printf ("  step %-6lld %g\n", (long long) point->step, point->value);
                else
                    printf ("  %g\n", point->value);
            }
        }
    }
    if (!options->json && report->n_series == 0)
        printf ("no metrics%s%s\n", argc > 1? " named ": "", argc > 1? argv [1]: "");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}
