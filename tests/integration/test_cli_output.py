"""The CLI's output people read and scripts parse (docs/cli.md): help made
from the option table, the bash and zsh completion made from it too, the
config file's contexts and their precedence, colour and relative times
only on a terminal, plurals, columns that fit, numbers that keep their
digits, the real wait before a retry and a countdown to it, and -o yaml
with the same content as --json."""
import json
import os
import pty
import re
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import QANAT, check

ESC = "\x1b["


def _table_options():
    """command -> its own options, from the generated bash script (the
    table's rows as the shell sees them), and the global options"""
    script = subprocess.run([QANAT, "completion", "bash"], capture_output=True, text=True,
                            check=True).stdout
    globals_ = re.search(r'local opts="([^"]*)"', script).group(1).split()
    own = {m.group(1): m.group(2).split()
           for m in re.finditer(r'^\s+([a-z]+)\) opts="\$opts ([^"]*)" ;;$', script, re.M)}
    return script, globals_, own


def _commands():
    out = subprocess.run([QANAT, "--help"], capture_output=True, text=True).stdout
    section = out.split("Commands:\n")[1].split("\n\n")[0]
    return [l.split()[0] for l in section.splitlines() if l.startswith("  ") and l[2] != " "]


def test_help_and_completion_come_from_the_table(c):
    script, globals_, own = _table_options()
    commands = _commands()
    check(set(own) <= set(commands), "options for unknown commands: %s" % own)
    check({"--coordinator", "--key", "--context", "--output", "--color", "--json"} <= set(globals_),
          "globals %s" % globals_)
    check(own.get("run") == ["--follow", "--param", "--no-cache", "--code-max"], "run %s" % own.get("run"))
    for command in commands:
        out = subprocess.run([QANAT, command, "--help"], capture_output=True, text=True).stdout
        for option in own.get(command, []) + globals_:
            check(re.search(r"^  (-., |    )%s\b" % re.escape(option), out, re.M),
                  "%s --help lacks %s:\n%s" % (command, option, out))
    with open(os.path.join(harness.SRC, "docs", "cli.md")) as f:
        doc = f.read()
    for command in commands:
        check("`qanat %s" % command in doc, "docs/cli.md lacks qanat %s" % command)
    for option in set(globals_ + sum(own.values(), [])):
        check("`%s" % option in doc or ", %s" % option in doc, "docs/cli.md lacks %s" % option)
    runs = subprocess.run([QANAT, "runs", "--help"], capture_output=True, text=True).stdout
    check(re.search(r"--limit N\s+list at most N \(default: 50\)", runs), "runs --help: no default:\n" + runs)
    # bash: source the script and call its function as bash would
    path = c.write("qanat.bash", script)

    def complete(*words):
        line = " ".join("'%s'" % w for w in words)
        out = subprocess.run(["bash", "-c", 'source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _qanat; '
                              'printf "%%s\\n" "${COMPREPLY[@]}"' % (path, line, len(words) - 1)],
                             capture_output=True, text=True, check=True).stdout
        return sorted(w for w in out.splitlines() if w)

    check(complete("qanat", "ru") == ["run", "runs"], "commands: %s" % complete("qanat", "ru"))
    check(complete("qanat", "run", "x.yaml", "--f") == ["--follow"], "run --f")
    check("--follow" not in complete("qanat", "runs", "--"), "runs offers --follow")
    check("--limit" in complete("qanat", "--json", "runs", "--"), "runs --: no --limit")
    check(complete("qanat", "workflow", "") == ["diff", "publish", "show"], "workflow subcommands")
    check(complete("qanat", "--coordinator", "tcp://x", "con") == ["context"], "after an option's value")
    check(complete("qanat", "status", "1", "-o", "") == ["json", "table", "wide", "yaml"], "-o values")
    check(complete("qanat", "completion", "") == ["bash", "zsh"], "completion shells")
    zsh = subprocess.run([QANAT, "completion", "zsh"], capture_output=True, text=True).stdout
    check(zsh.startswith("#compdef qanat\n") and "compdef _qanat qanat" in zsh, "zsh header")
    for command in commands:
        check("'%s:" % command in zsh, "zsh lacks %s" % command)
    check("run) opts+=( '--follow:" in zsh, "zsh: run's options")
    if shutil.which("zsh"):
        zpath = c.write("_qanat", zsh)
        r = subprocess.run(["zsh", "-n", zpath], capture_output=True, text=True)
        check(r.returncode == 0, "zsh -n: " + r.stderr)
        # the function with zsh's completion builtins stubbed: what it offers
        stubs = ('compdef() { :; }; source "%s"; compadd() { shift; print -rl -- "$@"; }; '
                 '_describe() { local n=$4 x; for x in "${(@P)n}"; do print -r -- "${x%%%%:*}"; done; }; '
                 '_files() { print FILES; }; words=(%s); CURRENT=$#words; _qanat')

        def zcomplete(*words):
            out = subprocess.run(["zsh", "-f", "-c", stubs % (zpath, " ".join("'%s'" % w for w in words))],
                                 capture_output=True, text=True).stdout
            return sorted(out.split())

        check("runs" in zcomplete("qanat", "ru") and "context" in zcomplete("qanat", ""), "zsh commands")
        check("--follow" in zcomplete("qanat", "run", "x", "--f")
              and "--follow" not in zcomplete("qanat", "runs", "--"), "zsh options per command")
        check(zcomplete("qanat", "context", "") == ["add", "list", "remove", "show", "use"], "zsh subcommands")
        check(zcomplete("qanat", "-o", "") == ["json", "table", "wide", "yaml"], "zsh -o values")
    r = subprocess.run([QANAT, "completion", "fish"], capture_output=True, text=True)
    check(r.returncode == 2 and "Usage: qanat completion" in r.stderr, "completion fish: %r" % r.stderr)


def test_versions_and_one_usage_wording(c):
    for program in (QANAT, harness.QANATD, harness.AGENT):
        name = os.path.basename(program)
        r = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and re.match(r"%s \d+\.\d+" % re.escape(name), r.stdout),
              "%s --version: %r" % (name, r))
        r = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=10)
        check(r.stdout.startswith("Usage: %s [OPTION]..." % name), "%s --help: %r" % (name, r.stdout[:80]))
    r = subprocess.run([QANAT, "logs"], capture_output=True, text=True)
    check(r.returncode == 2 and r.stderr.startswith("Usage: qanat logs RUN [TASK] [OPTION]..."),
          "qanat logs: %r" % r.stderr)


def _env(c, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QANAT_")}
    env["HOME"] = c.dir               # no ~/.qanat/client.key of the machine's
    env["XDG_CONFIG_HOME"] = os.path.join(c.dir, "xdg")
    env.update(extra)
    return env


def _q(env, *args, timeout=30):
    return subprocess.run([QANAT, "--timeout", "1", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_contexts_and_their_precedence(c):
    c.start_coordinator()
    env = _env(c)
    dead = "tcp://127.0.0.1:%d" % harness.free_port()
    r = _q(env, "context", "add", "good", "--coordinator", c.client_endpoint, "--key", c.key,
           "--url", "http://127.0.0.1:1", "--token", 'qat_"x"')
    check(r.returncode == 0 and "(current)" in r.stdout, "add good: %r" % (r,))
    check(_q(env, "context", "add", "bad", "--coordinator", dead, "--key", c.key).returncode == 0, "add bad")
    r = _q(env, "context", "add", "bad", "--coordinator", dead)
    check(r.returncode == 6 and "exists" in r.stderr, "add twice: %r" % (r,))
    r = _q(env, "context", "add", "nokey", "--key", os.path.join(c.dir, "nosuch.key"))
    check(r.returncode == 2 and "does not exist" in r.stderr, "missing key: %r" % (r,))
    path = os.path.join(c.dir, "xdg", "qanat", "config.yaml")
    check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "mode %o" % os.stat(path).st_mode)
    with open(path) as f:
        text = f.read()
    want = ('current-context: "good"\ncontexts:\n  "good":\n    coordinator: "%s"\n    key: "%s"\n'
            '    url: "http://127.0.0.1:1"\n    token: "qat_\\"x\\""\n  "bad":\n    coordinator: "%s"\n'
            '    key: "%s"\n' % (c.client_endpoint, c.key, dead, c.key))
    check(text == want, "config file:\n%s\nwanted:\n%s" % (text, want))
    listed = json.loads(_q(env, "context", "list", "--json").stdout)
    check([(x["name"], x["current"], x["token_set"]) for x in listed]
          == [("good", True, True), ("bad", False, False)], "list %r" % listed)
    check("qat_" not in _q(env, "context", "show").stdout, "show prints the token")
    # the current context; another by --context or QANAT_CONTEXT; env and flags win
    check(_q(env, "runs").returncode == 0, "runs with the current context")
    r = _q(env, "--context", "bad", "runs")
    check(r.returncode == 5 and dead in r.stderr, "--context bad: %r" % (r,))
    check(_q(_env(c, QANAT_CONTEXT="bad"), "runs").returncode == 5, "QANAT_CONTEXT=bad")
    check(_q(_env(c, QANAT_CONTEXT="bad"), "--context", "good", "runs").returncode == 0,
          "--context wins over QANAT_CONTEXT")
    check(_q(env, "context", "use", "bad").returncode == 0, "use bad")
    check(_q(env, "runs").returncode == 5, "current bad")
    check(_q(_env(c, QANAT_COORDINATOR=c.client_endpoint), "runs").returncode == 0,
          "QANAT_COORDINATOR wins over the context")
    check(_q(_env(c, QANAT_COORDINATOR=dead), "--coordinator", c.client_endpoint, "runs").returncode == 0,
          "--coordinator wins over QANAT_COORDINATOR")
    r = _q(env, "--context", "nosuch", "runs")
    check(r.returncode == 3 and "no context 'nosuch'" in r.stderr, "--context nosuch: %r" % (r,))
    check(_q(env, "context", "remove", "bad").returncode == 0, "remove bad")
    with open(path) as f:
        check('"bad"' not in f.read() and "current-context" not in open(path).read(), "bad stays")
    # a malformed file is an error at file:line:col
    with open(path, "w") as f:
        f.write('current-context: "good"\ncontexts:\n  "good":\n    coordinatr: "x"\n')
    r = _q(env, "runs")
    check(r.returncode == 2 and "%s:4:5: unknown key 'coordinatr'" % path in r.stderr, "typo: %r" % (r,))
    with open(path, "w") as f:
        f.write('contexts: [\n')
    r = _q(env, "runs")
    check(r.returncode == 2 and path + ":" in r.stderr, "broken YAML: %r" % (r,))


OUTPUT = """\
name: output
tasks:
  a_task_with_a_name_longer_than_the_columns_were:
    run: |
      echo "big 1" >> "$QANAT_METRICS"
      echo "big 519264360000" >> "$QANAT_METRICS"
      echo "small 0.1" >> "$QANAT_METRICS"
      printf 'ok\\n\\377\\n'
  flaky:
    retries: 1
    retry_delay: 3s
    run: |
      if [ ! -f "$QANAT_TMP_MARK" ]; then touch "$QANAT_TMP_MARK"; echo first; exit 3; fi
      echo second
"""


def _pty_run(argv, env):
    """argv's stdout on a terminal: what a person sees"""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    proc.wait(timeout=30)
    os.close(master)
    return out.decode("utf-8", "replace")


def _yaml_as_json(text):
    """YAML parsed by perl's CPAN::Meta::YAML (a YAML::Tiny), printed as
    JSON; None when perl cannot"""
    perl = ("use CPAN::Meta::YAML; use JSON::PP; local $/; my $y = CPAN::Meta::YAML->read_string(<STDIN>)"
            " or die CPAN::Meta::YAML->errstr; print JSON::PP->new->canonical->encode([@$y]);")
    if not shutil.which("perl"):
        return None
    r = subprocess.run(["perl", "-e", perl], input=text, capture_output=True, text=True)
    if "Can't locate" in r.stderr:
        return None
    check(r.returncode == 0, "YAML did not parse: %s\n%s" % (r.stderr, text))
    return json.loads(r.stdout)


def _strings(value):
    """JSON with every scalar as YAML::Tiny reads it: a string"""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def test_output_people_read(c):
    c.start_coordinator()
    mark = os.path.join(c.dir, "mark")
    c.start_agent("a1", extra=())
    wf = c.write("output.yaml", OUTPUT.replace("$QANAT_TMP_MARK", mark))
    follow = subprocess.run([QANAT, "--coordinator", c.client_endpoint, "--key", c.key, "run", wf,
                             "--follow"], capture_output=True, timeout=60)
    follow.stdout = follow.stdout.decode("utf-8", "replace")     # the task's raw bytes
    check(follow.returncode == 0, "run --follow: %s%r" % (follow.stdout, follow.stderr))
    # the retry line says the real wait and which attempt comes, not how long the attempt ran
    m = re.search(r"==> flaky failed in [0-9.]+s: .*; retrying in ([0-9.]+)s \(attempt 2 of 2\)",
                  follow.stdout)
    check(m and 2.5 <= float(m.group(1)) <= 8, "retry line:\n" + follow.stdout)
    check("==> flaky started on a1 (attempt 2)\n" in follow.stdout
          and "==> flaky succeeded" in follow.stdout, "after the retry:\n" + follow.stdout)
    run_id = int(follow.stdout.split()[1])
    status = c.qanat("status", run_id).stdout
    # numbers keep their digits; columns fit the long name; no colour when piped
    metrics = c.qanat("metrics", run_id).stdout
    check("519264360000" in metrics and "e+11" not in metrics and "  0.1\n" in metrics,
          "metrics:\n" + metrics)
    check(ESC not in status and ESC not in metrics, "escape codes in piped output")
    lines = status.splitlines()
    header = next(l for l in lines if l.startswith("TASK "))
    row = next(l for l in lines if l.startswith("a_task_with_a_name_longer"))
    check(header.index("STATUS") == row.index("succeeded"), "columns:\n" + status)
    check("big (2 points)" in metrics and "small (1 point)" in metrics, "plurals:\n" + metrics)
    # plurals
    one = c.write("one.yaml", "name: one\ntasks:\n  a:\n    run: echo\n")
    check("with 1 task\n" in c.qanat("validate", one).stdout, "1 task")
    check("with 2 tasks\n" in c.qanat("validate", wf).stdout, "2 tasks")
    # colour: --color always, a terminal; never with NO_COLOR or --color never
    check(ESC + "32msucceeded" in c.qanat("status", run_id, "--color", "always").stdout, "--color always")
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    argv = [QANAT, "--coordinator", c.client_endpoint, "--key", c.key, "runs"]
    on_tty = _pty_run(argv, env)
    check(ESC in on_tty and re.search(r"just now|\d+ s ago", on_tty), "terminal:\n%r" % on_tty)
    check(ESC not in _pty_run(argv, dict(env, NO_COLOR="1")), "NO_COLOR on a terminal")
    check(ESC not in _pty_run(argv + ["--color", "never"], env), "--color never on a terminal")
    check(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", c.qanat("runs").stdout), "absolute times piped")
    # -o yaml: the same content as --json
    for args in (["status", run_id], ["runs"], ["metrics", run_id], ["agents"]):
        got = c.qanat(*args, "-o", "yaml").stdout
        check(got.strip() and not got.lstrip().startswith(("{", "[")), "not YAML: %r" % got)
        parsed = _yaml_as_json(got)
        want = _strings(c.qanat_json(*args))
        if args[0] == "agents" and parsed is not None:
            for a in parsed[0] + want:
                a.pop("last_seen_us", None)
        if parsed is not None:
            check(parsed == [want], "qanat %s -o yaml differs from --json:\n%s" % (args[0], got))
    metrics_yaml = c.qanat("metrics", run_id, "-o", "yaml").stdout
    check("value: 519264360000.0\n" in metrics_yaml and "value: 0.1\n" in metrics_yaml,
          "yaml numbers:\n" + metrics_yaml)
    check("params: {}\n" in c.qanat("status", run_id, "-o", "yaml").stdout, "empty mapping")
    logs = c.qanat("logs", run_id, "a_task_with_a_name_longer_than_the_columns_were", "-o", "yaml").stdout
    check("\ufffd" in logs, "logs yaml without U+FFFD:\n" + logs)
    check("ok" in logs and logs.count("\n---") == len(c.logs_json(
        run_id, "a_task_with_a_name_longer_than_the_columns_were")) - 1, "one document a line:\n" + logs)


def test_retry_counts_down(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("slow.yaml", "name: slow\ntasks:\n  t:\n    retries: 1\n    retry_delay: 20s\n"
                 "    run: exit 1\n")
    run_id = c.start_run(wf)

    def waiting():
        task = c.qanat_json("status", run_id)["tasks"][0]
        return task["status"] == "queued" and len(task["attempts"]) == 1
    c.wait_for(waiting, "the retry to be planned")
    seen = []
    for _ in range(2):
        m = re.search(r"retry 1 of 1 in ([0-9.]+)s, after: ", c.qanat("status", run_id).stdout)
        check(m, "status shows no countdown")
        seen.append(float(m.group(1)))
        time.sleep(1.2)
    check(25 >= seen[0] > seen[1] >= seen[0] - 3, "no countdown: %s" % seen)
    c.qanat("cancel", run_id)


if __name__ == "__main__":
    harness.main(globals())
