/*  qn_cli_complete - `qanat completion bash|zsh`: shell completion
    scripts made from the option and command tables (qn_cli_options.c),
    so that what the shell offers is what the CLI takes: the commands,
    their subcommands, each command's options and the words an option
    like --output takes.

    One of the files of the qn_cli class.
*/
#include "qn_cli_options.h"

//  text inside single quotes for a shell: ' becomes '\''
static void
s_quoted (FILE *out, const char *text)
{
    for (const char *at = text; *at; at++)
        if (*at == '\'')
            fputs ("'\\''", out);
        else
            fputc (*at, out);
}

//  An option as a case pattern: --name, or --name|-x
static void
s_pattern (FILE *out, const cli_option_t *option)
{
    fprintf (out, "--%s", option->name);
    if (option->letter)
        fprintf (out, "|-%c", option->letter);
}

//  The options that take an argument, as a case pattern: --a|--b|-o
static void
s_argument_pattern (FILE *out)
{
    bool first = true;
    for (const cli_option_t *option = cli_options_table (); option->name; option++) {
        if (!option->arg)
            continue;
        if (!first)
            fputc ('|', out);
        s_pattern (out, option);
        first = false;
    }
}

//  The words of every command's options, one case arm each
static void
s_bash_options (FILE *out)
{
    fprintf (out, "        local opts=\"");
    bool first = true;
    for (const cli_option_t *option = cli_options_table (); option->name; option++)
        if (streq (option->commands, "*")) {
            fprintf (out, "%s--%s", first? "": " ", option->name);
            first = false;
        }
    fprintf (out, "\"\n        case \"$cmd\" in\n");
    for (const cli_command_t *command = cli_commands_table (); command->name; command++) {
        bool any = false;
        for (const cli_option_t *option = cli_options_table (); option->name; option++)
            if (!streq (option->commands, "*") && cli_option_applies (option, command->name)) {
                if (!any)
                    fprintf (out, "            %s) opts=\"$opts", command->name);
                fprintf (out, " --%s", option->name);
                any = true;
            }
        if (any)
            fprintf (out, "\" ;;\n");
    }
    fprintf (out, "        esac\n");
}

static void
s_bash (FILE *out)
{
    fprintf (out,
        "# bash completion for %s, made by '%s completion bash' from its option table.\n"
        "# Install: %s completion bash > ~/.local/share/bash-completion/completions/%s\n"
        "# (or: source <(%s completion bash) in ~/.bashrc)\n"
        "_qanat()\n{\n"
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\" cmd=\"\" i w npos=0\n"
        "    (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
        "    COMPREPLY=()\n"
        "    case \"$prev\" in\n",
        cli_program, cli_program, cli_program, cli_program, cli_program);
    for (const cli_option_t *option = cli_options_table (); option->name; option++)
        if (option->values) {
            fprintf (out, "        ");
            s_pattern (out, option);
            fprintf (out, ") COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return ;;\n",
                     option->values);
        }
    fprintf (out, "        ");
    s_argument_pattern (out);
    fprintf (out, ") return ;;\n    esac\n"
        "    for (( i = 1; i < COMP_CWORD; i++ )); do\n"
        "        w=\"${COMP_WORDS[i]}\"\n"
        "        case \"$w\" in\n            ");
    s_argument_pattern (out);
    fprintf (out, ") i=$((i + 1)); continue ;;\n"
        "            -*) continue ;;\n"
        "        esac\n"
        "        if [[ -z \"$cmd\" ]]; then cmd=\"$w\"; else npos=$((npos + 1)); fi\n"
        "    done\n"
        "    if [[ \"$cur\" == -* ]]; then\n");
    s_bash_options (out);
    fprintf (out,
        "        COMPREPLY=( $(compgen -W \"$opts\" -- \"$cur\") )\n"
        "        return\n"
        "    fi\n"
        "    if [[ -z \"$cmd\" ]]; then\n"
        "        COMPREPLY=( $(compgen -W \"");
    for (const cli_command_t *command = cli_commands_table (); command->name; command++)
        fprintf (out, "%s%s", command == cli_commands_table ()? "": " ", command->name);
    fprintf (out, "\" -- \"$cur\") )\n        return\n    fi\n"
        "    if (( npos == 0 )); then\n        case \"$cmd\" in\n");
    for (const cli_command_t *command = cli_commands_table (); command->name; command++)
        if (command->subcommands)
            fprintf (out, "            %s) COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ) ;;\n",
                     command->name, command->subcommands);
    fprintf (out, "        esac\n    fi\n}\ncomplete -o default -F _qanat %s\n", cli_program);
}

//  'name:description' entries for zsh's _describe
static void
s_zsh_described (FILE *out, const char *name, const char *description)
{
    fprintf (out, " '%s:", name);
    s_quoted (out, description);
    fputc ('\'', out);
}

static void
s_zsh (FILE *out)
{
    fprintf (out,
        "#compdef %s\n"
        "# zsh completion for %s, made by '%s completion zsh' from its option table.\n"
        "# Install: %s completion zsh > \"${fpath[1]}/_%s\" (then a new shell),\n"
        "# or: source <(%s completion zsh) after compinit in ~/.zshrc\n"
        "_qanat() {\n"
        "    local -a commands opts subs\n"
        "    local cmd=\"\" w i npos=0\n"
        "    commands=(",
        cli_program, cli_program, cli_program, cli_program, cli_program, cli_program);
    for (const cli_command_t *command = cli_commands_table (); command->name; command++)
        s_zsh_described (out, command->name, command->summary);
    fprintf (out, " )\n"
        "    for (( i = 2; i < CURRENT; i++ )); do\n"
        "        w=${words[i]}\n"
        "        case $w in\n            ");
    s_argument_pattern (out);
    fprintf (out, ") i=$((i + 1)); continue ;;\n"
        "            -*) continue ;;\n"
        "        esac\n"
        "        if [[ -z $cmd ]]; then cmd=$w; else npos=$((npos + 1)); fi\n"
        "    done\n"
        "    case ${words[CURRENT-1]} in\n");
    for (const cli_option_t *option = cli_options_table (); option->name; option++)
        if (option->values) {
            fprintf (out, "        ");
            s_pattern (out, option);
            fprintf (out, ") compadd -- %s; return ;;\n", option->values);
        }
    fprintf (out, "        ");
    s_argument_pattern (out);
    fprintf (out, ") _files; return ;;\n    esac\n"
        "    if [[ ${words[CURRENT]} == -* ]]; then\n        opts=(");
    for (const cli_option_t *option = cli_options_table (); option->name; option++)
        if (streq (option->commands, "*")) {
            char name [64];
            snprintf (name, sizeof name, "--%s", option->name);
            s_zsh_described (out, name, option->help);
        }
    fprintf (out, " )\n        case $cmd in\n");
    for (const cli_command_t *command = cli_commands_table (); command->name; command++) {
        bool any = false;
        for (const cli_option_t *option = cli_options_table (); option->name; option++)
            if (!streq (option->commands, "*") && cli_option_applies (option, command->name)) {
                if (!any)
                    fprintf (out, "            %s) opts+=(", command->name);
                char name [64];
                snprintf (name, sizeof name, "--%s", option->name);
                s_zsh_described (out, name, option->help);
                any = true;
            }
        if (any)
            fprintf (out, " ) ;;\n");
    }
    fprintf (out, "        esac\n"
        "        _describe -t options 'option' opts\n"
        "        return\n"
        "    fi\n"
        "    if [[ -z $cmd ]]; then\n"
        "        _describe -t commands 'command' commands\n"
        "        return\n"
        "    fi\n"
        "    if (( npos == 0 )); then\n"
        "        case $cmd in\n");
    for (const cli_command_t *command = cli_commands_table (); command->name; command++)
        if (command->subcommands)
            fprintf (out, "            %s) subs=( %s ) ;;\n", command->name, command->subcommands);
    fprintf (out, "        esac\n"
        "        if (( ${#subs} )); then compadd -- $subs; return; fi\n"
        "    fi\n"
        "    _files\n"
        "}\n"
        "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
        "    _qanat \"$@\"\n"
        "else\n"
        "    compdef _qanat %s\n"
        "fi\n", cli_program);
}

int
cli_cmd_completion (options_t *options, int argc, char **argv)
{
    (void) options;
    if (argc != 1 || (!streq (argv [0], "bash") && !streq (argv [0], "zsh")))
        return cli_usage_error ("completion");
    if (streq (argv [0], "bash"))
        s_bash (stdout);
    else
        s_zsh (stdout);
    return 0;
}
