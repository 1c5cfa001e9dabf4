/*  qn_config - a daemon's options as one table that gives both the
    command line and the YAML config file.

    Each daemon (qanatd, qanat-agent) describes its options once, as rows
    of qn_config_option_t: the long option name ("heartbeat-ms"), which is
    also the config key with '_' for '-' ("heartbeat_ms"), its type and
    range.  From the table come getopt_long's option array, the reading
    of the config file, with "file:line:col: unknown key 'slot' (did you
    mean 'slots'?)" and range errors, and --check-config's listing of the
    effective settings.  Adding an option is adding one row.

    The file's settings become "--name=value" arguments placed before the
    real command line, so that the daemon's own parsing (and its checks
    that tie options together) sees them, and a flag given on the command
    line overrides the file's.  Private to qanat's own programs.
*/
#ifndef QN_CONFIG_H_INCLUDED
#define QN_CONFIG_H_INCLUDED

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

typedef enum {
    QN_CONFIG_STRING,           //  any non-empty text
    QN_CONFIG_NUMBER,           //  a whole number from min to max
    QN_CONFIG_FLAG,             //  no argument; true/false in the file
    QN_CONFIG_SIZE,             //  bytes, with an optional K, M or G suffix
    QN_CONFIG_CHOICE,           //  one of choices ("lan|wan")
    QN_CONFIG_LIST              //  repeatable; a sequence in the file
} qn_config_type_t;

//  Row flags
#define QN_CONFIG_CLI_ONLY  1   //  no config key (--help, --config...)
#define QN_CONFIG_SECRET    2   //  --check-config does not print the value

typedef struct {
    const char *name;           //  long option; the key is it with '_' for '-'
    int val;                    //  getopt_long's value for it
    qn_config_type_t type;
    long long min, max;         //  NUMBER and SIZE
    const char *choices;        //  CHOICE: "a|b|c"
    const char *fallback;       //  the default, as --check-config shows it
    int flags;
} qn_config_option_t;

//  A table ends with a row whose name is NULL.

//  getopt_long's option array for the table (malloc'd; free it)
struct option *
    qn_config_getopt (const qn_config_option_t *table);

//  The row of a long option or config key ('-' and '_' alike), or NULL
const qn_config_option_t *
    qn_config_find (const qn_config_option_t *table, const char *name);

//  Checks text as a value of row.  0, or -1 with a malloc'd "wants ..."
//  message in *error.
int
    qn_config_check (const qn_config_option_t *row, const char *text, char **error);

//  The command line with the config file's settings in front: finds
//  --config FILE (or --config=FILE) in argv, reads it and builds a new
//  argv (argv [0], the file's "--name=value"s, then argv [1..]).  Without
//  --config, a copy of argv.  0, or -1 with a malloc'd message in *error
//  ("FILE:LINE:COL: ..." lines).  Free the result with qn_config_argv_free.
int
    qn_config_argv (const qn_config_option_t *table, int argc, char *argv [],
                    int *argc_p, char ***argv_p, char **error);

void
    qn_config_argv_free (int argc, char **argv);

//  Prints the effective settings as YAML (a valid config file): the last
//  value each option got in argv (a merged one), else its default.
//  Resets getopt (optind) before and after.
void
    qn_config_print (FILE *out, const qn_config_option_t *table, const char *shortopts,
                     int argc, char *argv []);

#endif
