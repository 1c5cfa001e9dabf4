/*  qn_cli_options - the one table of the qanat CLI's options and the one
    table of its commands, and everything made from them: getopt's long
    options, the check that a command takes the options it was given,
    `qanat --help`, `qanat COMMAND --help` and the completion scripts.

    Why one table: an option declared in one place cannot be parsed but
    missing from the help, or documented but refused, or offered by the
    completion to a command that would then reject it.

    A new option is one row of s_options (qn_cli_options.c) and, when it
    keeps a value, one field of options_t (qn_cli.h).  A new command is a
    row of s_commands and its cli_cmd_NAME function.

    One of the files of the qn_cli class.
*/
#ifndef QN_CLI_OPTIONS_H_INCLUDED
#define QN_CLI_OPTIONS_H_INCLUDED

#include "qn_cli.h"

//  What an option does with its argument
typedef enum {
    CLI_OPT_FLAG,           //  bool field set to true (no argument)
    CLI_OPT_TEXT,           //  const char * field set to the argument
    CLI_OPT_COUNT,          //  uint32_t field: a whole number >= 0
    CLI_OPT_LIST,           //  zlistx_t * field: each use adds its argument
    CLI_OPT_CALL            //  set (options, argument) decides; 0 or -1
} cli_opt_kind_t;

typedef struct {
    const char *name;       //  the long name, without "--"
    char letter;            //  short letter, or 0
    const char *arg;        //  the argument's name in the help, NULL for a flag
    const char *help;       //  what it means
    const char *fallback;   //  the default, in words (NULL: none)
    const char *commands;   //  the commands that take it, space-separated;
                            //  "*": every command (a global option)
    const char *values;     //  the words it takes, for completion (NULL: any)
    cli_opt_kind_t kind;
    size_t offset;          //  of its field in options_t (not for CALL)
    int (*set) (options_t *options, const char *arg);  //  CALL only
} cli_option_t;

typedef struct {
    const char *name;
    int (*fn) (options_t *options, int argc, char **argv);
    const char *args;       //  the words after the name, for Usage:
    const char *summary;
    const char *subcommands;    //  space-separated, for completion (NULL: none)
} cli_command_t;

//  The rows, ending with a row whose name is NULL
const cli_option_t *
    cli_options_table (void);
const cli_command_t *
    cli_commands_table (void);

//  The command called name, or NULL
const cli_command_t *
    cli_command_find (const char *name);

//  True when command takes option (a global option: every command)
bool
    cli_option_applies (const cli_option_t *option, const char *command);

//  Parses the options in argv (before and after the command, GNU style)
//  into options; the index of the command's name in the permuted argv
//  (argc when none) in *command_at_p.  The options that were given are
//  checked against the command that follows.  0, or EXIT_USAGE after
//  saying why on stderr.
int
    cli_options_parse (options_t *options, int argc, char **argv, int *command_at_p);

//  `qanat --help`, `qanat COMMAND --help` (on out)
void
    cli_help_print (FILE *out);
void
    cli_help_command (FILE *out, const cli_command_t *command);

//  The exit codes' table, as --help shows it
extern const char *cli_exit_codes_text;

//  qanat completion bash|zsh (qn_cli_complete.c)
int
    cli_cmd_completion (options_t *options, int argc, char **argv);

#endif
