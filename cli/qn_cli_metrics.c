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
        printf ("\n");
        cli_table_t *table = cli_table_new ("TASK METRIC >LAST POINTS");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            if (series->n_points)
                cli_table_add (table, series->task, series->name,
                               cli_number_text (series->points [series->n_points - 1]->value),
                               cli_plural (series->n_points, "point", "points"));
        }
        cli_table_print (table, stdout);
        cli_table_destroy (&table);
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
        json_t *list = json_array ();
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            json_t *points = json_array ();
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                json_t *item = json_pack ("{s:f,s:I}", "value", point->value,
                                          "time_us", (json_int_t) point->time_us);
                if (point->has_step)
                    json_object_set_new (item, "step", json_integer (point->step));
                json_array_append_new (points, item);
            }
            json_array_append_new (list, json_pack ("{s:I,s:o,s:o,s:o}",
                "run_id", (json_int_t) series->run_id, "task", cli_json_text (series->task),
                "name", cli_json_text (series->name), "points", points));
        }
        cli_json_print (list);
    }
    else
    if (history) {
        cli_table_t *table = cli_table_new ("RUN TASK METRIC >VALUE");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            char run [24];
            snprintf (run, sizeof run, "%llu", (unsigned long long) series->run_id);
            if (series->n_points)
                cli_table_add (table, run, series->task, series->name,
                               cli_number_text (series->points [0]->value));
        }
        cli_table_print (table, stdout);
        cli_table_destroy (&table);
    }
    else {
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            printf ("%s %s (%s)\n", series->task, series->name,
                    cli_plural (series->n_points, "point", "points"));
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                if (point->has_step)
                    printf ("  step %-6lld %s\n", (long long) point->step,
                            cli_number_text (point->value));
                else
                    printf ("  %s\n", cli_number_text (point->value));
            }
        }
    }
    if (!options->json && report->n_series == 0)
        printf ("no metrics%s%s\n", argc > 1? " named ": "", argc > 1? argv [1]: "");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}
