#!/bin/bash
# Slurm on one node on loopback: trivial-job throughput and chain latency,
# once with Slurm's defaults and once tuned for high throughput.
# See bench/peers/README.md.  Prints "peer: slurm.MODE.KEY = VALUE UNIT".
#
#   SLURM_PEERS_JOBS   jobs for the tuned throughput run (default 1000)
#   SLURM_PEERS_DEFAULT_JOBS  jobs for the run with defaults (default 200:
#                      Slurm's defaults start about 2 jobs every 3 s on a
#                      2-CPU node, so 1,000 would take some 25 minutes; the
#                      rate is steady, so fewer jobs give the same figure)
#   SLURM_PEERS_CHAIN  jobs in the dependency chain (default 20)
#   SLURM_PEERS_MODES  configurations to run (default "default tuned")
#   SLURM_PEERS_DEADLINE  seconds any one wait may take (default 900)
#
# Exit 0 when every mode ran, 2 when Slurm cannot be installed or started
# here (the reason is printed; no numbers are made up), 1 on other errors.
# bash, also when started as `sh run.sh` (make runs $(SHELL), often dash).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
TUNED_JOBS=${SLURM_PEERS_JOBS:-1000}
DEFAULT_JOBS=${SLURM_PEERS_DEFAULT_JOBS:-200}
CHAIN=${SLURM_PEERS_CHAIN:-20}
MODES=${SLURM_PEERS_MODES:-default tuned}
DEADLINE=${SLURM_PEERS_DEADLINE:-900}

say () { printf '%s\n' "$*"; }
now () { date +%s.%N; }
# elapsed START END, in seconds with three decimals
elapsed () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---- install ---------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        say "slurm: not installed and not root, cannot apt-get install slurm-wlm munge"
        exit 2
    fi
    say "slurm: installing slurm-wlm munge with apt-get"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; } \
            >/tmp/qanat-peers-apt-slurm.log 2>&1; then
        say "slurm: apt-get failed (log in /tmp/qanat-peers-apt-slurm.log)"
        tail -5 /tmp/qanat-peers-apt-slurm.log
        exit 2
    fi
fi
if [ ! -x "$PY" ]; then
    say "slurm: $PY is missing"
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    say "slurm: this single-node setup runs slurmd as root (SlurmUser=root); run as root"
    exit 2
fi
version=$(slurmctld -V 2>/dev/null)
say "slurm: $version, $(munged -V 2>&1 | head -1)"

top=$(mktemp -d "${TMPDIR:-/tmp}/qanat-peers-slurm.XXXXXX") || exit 1
pids=""
stop_all () {
    # Stop what we started, by pid: slurmd first (it may still run jobs),
    # then slurmctld, then munged.  Each gets 10 s before SIGKILL.
    local pid tries
    for pid in $pids; do
        kill "$pid" 2>/dev/null
        tries=0
        while kill -0 "$pid" 2>/dev/null && [ $tries -lt 100 ]; do
            sleep 0.1
            tries=$((tries + 1))
        done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    pids=""
}
cleanup () {
    stop_all
    if [ -n "${QANAT_PEERS_KEEP:-}" ]; then
        say "slurm: kept $top"
    else
        rm -rf "$top"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds
# (0); give up at the deadline (1) or when COMMAND returns 2 (hopeless).
wait_for () {
    local limit=$1 rc
    shift
    local end=$(( $(date +%s) + limit ))
    while :; do
        "$@"
        rc=$?
        [ $rc -eq 0 ] && return 0
        [ $rc -eq 2 ] && return 2
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# ---- one configuration -------------------------------------------------------
#   run_mode default|tuned
run_mode () {
    local mode=$1
    local dir=$top/$mode
    local JOBS=$DEFAULT_JOBS
    [ "$mode" = tuned ] && JOBS=$TUNED_JOBS
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/work" || return 1
    chmod 700 "$dir/munge"
    local ports
    ports=$($PY "$here/peers.py" port-range 3) || return 1
    set -- $ports
    local ctld_port=$1 ctld_port2=$2 slurmd_port=$3
    local nproc mem
    nproc=$(nproc)
    mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [ -n "$mem" ] || mem=$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)

    # munge: our own daemon and key on a private socket.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    local threads=2
    [ "$mode" = tuned ] && threads=10
    munged --foreground --force --num-threads "$threads" \
        --socket "$dir/munge/munge.socket" --key-file "$dir/munge/munge.key" \
        --pid-file "$dir/munge/munged.pid" --log-file "$dir/munge/munged.log" \
        --seed-file "$dir/munge/munged.seed" >"$dir/munge/stdout" 2>&1 &
    pids="$! $pids"
    if ! wait_for 10 test -S "$dir/munge/munge.socket"; then
        say "slurm: munged did not start:"
        tail -5 "$dir/munge/munged.log" "$dir/munge/stdout" 2>/dev/null
        return 2
    fi

    local conf=$dir/slurm.conf
    {
        echo "# qanat peer benchmark ($mode), written by bench/peers/slurm.sh"
        echo "ClusterName=qanatpeers"
        echo "SlurmctldHost=localhost"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        echo "AuthInfo=socket=$dir/munge/munge.socket"
        echo "StateSaveLocation=$dir/state"
        echo "SlurmdSpoolDir=$dir/spool"
        echo "SlurmctldPidFile=$dir/slurmctld.pid"
        echo "SlurmdPidFile=$dir/slurmd.pid"
        echo "SlurmctldLogFile=$dir/slurmctld.log"
        echo "SlurmdLogFile=$dir/slurmd.log"
        echo "SlurmdPort=$slurmd_port"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "SelectType=select/cons_tres"
        # The default, CR_Core_Memory, gives a job without --mem the whole
        # node's memory, so only one job would run at a time.
        echo "SelectTypeParameters=CR_CPU"
        echo "MpiDefault=none"
        echo "ReturnToService=2"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        # Job start and end times, to the second, without slurmdbd: what
        # `sacct -c` reads.  Kept in both modes, the measurement needs it.
        echo "JobCompType=jobcomp/filetxt"
        echo "JobCompLoc=$dir/jobcomp.txt"
        echo "MaxJobCount=$((JOBS * 2 + CHAIN + 1000))"
        if [ "$mode" = tuned ]; then
            # SchedMD's High Throughput Computing guide, what applies to
            # 22.05 on one node.
            echo "SlurmctldPort=$ctld_port-$ctld_port2"
            echo "SchedulerType=sched/builtin"
            echo "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=$((JOBS + CHAIN))"
            echo "PriorityType=priority/basic"
            echo "MinJobAge=2"
            echo "MessageTimeout=30"
            echo "SlurmctldDebug=error"
            echo "SlurmdDebug=error"
            # More CPUs than the machine has, so that more trivial jobs run
            # at once; config_overrides keeps the node from being drained
            # for having fewer.
            echo "SlurmdParameters=config_overrides"
            echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$((nproc * 16)) RealMemory=$mem State=UNKNOWN"
        else
            echo "SlurmctldPort=$ctld_port"
            echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$nproc RealMemory=$mem State=UNKNOWN"
        fi
        echo "PartitionName=bench Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
    } >"$conf"
    export SLURM_CONF=$conf
    say "slurm ($mode): slurm.conf settings beyond the common ones:"
    sed -n '/^SlurmctldPort/,$p' "$conf" | grep -v '^PartitionName' | sed 's/^/   /'

    slurmctld -D -f "$conf" >"$dir/slurmctld.stdout" 2>&1 &
    local ctld=$!
    pids="$ctld $pids"
    slurmd -D -N localhost -f "$conf" >"$dir/slurmd.stdout" 2>&1 &
    local slurmd_pid=$!
    pids="$slurmd_pid $pids"
    node_idle () {
        kill -0 "$ctld" 2>/dev/null && kill -0 "$slurmd_pid" 2>/dev/null || return 2
        [ "$(sinfo -h -N -n localhost -o %t 2>/dev/null)" = idle ]
    }
    if ! wait_for 60 node_idle; then
        say "slurm ($mode): the node did not become idle within 60 s, or a daemon exited; Slurm cannot run here:"
        say "   sinfo: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -2)"
        for file in slurmctld.log slurmctld.stdout slurmd.log slurmd.stdout; do
            [ -s "$dir/$file" ] && { say "   -- $file:"; tail -6 "$dir/$file" | sed 's/^/   /'; }
        done
        return 2
    fi
    say "slurm ($mode): node localhost idle, $(sinfo -h -N -o '%c CPUs, %m MB' -n localhost)"
    cd "$dir/work" || return 1

    # ---- (a) throughput: JOBS separate `sbatch --wrap true` ----
    local done_count
    all_done () {
        done_count=$(grep -c 'JobState=' "$dir/jobcomp.txt" 2>/dev/null)
        [ "${done_count:-0}" -ge "$JOBS" ]
    }
    local t0 t_sub t1 failed=0 i
    t0=$(now)
    for ((i = 0; i < JOBS; i++)); do
        sbatch -Q --parsable -J tp -o /dev/null --wrap true >/dev/null || failed=$((failed + 1))
        [ $failed -gt 10 ] && break
    done
    t_sub=$(now)
    if [ $failed -gt 0 ]; then
        say "slurm ($mode): $failed sbatch calls failed; stopping this mode"
        return 1
    fi
    if ! wait_for "$DEADLINE" all_done; then
        say "slurm ($mode): only ${done_count:-0} of $JOBS jobs completed within $DEADLINE s"
        return 1
    fi
    t1=$(now)
    local total sub
    total=$(elapsed "$t0" "$t1")
    sub=$(elapsed "$t0" "$t_sub")
    say "slurm ($mode): $JOBS jobs (one sbatch --wrap true each, sequential submits):"
    say "   submitted in $sub s, all completed after $total s"
    $PY "$here/peers.py" jobcomp "$dir/jobcomp.txt"
    local completed
    completed=$(grep -c 'JobState=COMPLETED' "$dir/jobcomp.txt")
    if [ "$completed" -lt "$JOBS" ]; then
        say "slurm ($mode): only $completed of $JOBS jobs COMPLETED"
        return 1
    fi
    say "peer: slurm.$mode.jobs = $JOBS jobs"
    say "peer: slurm.$mode.throughput = $(awk -v n="$JOBS" -v t="$total" 'BEGIN { printf "%.6g", n / t }') jobs/s"
    say "peer: slurm.$mode.submit_rate = $(awk -v n="$JOBS" -v t="$sub" 'BEGIN { printf "%.6g", n / t }') jobs/s"

    # ---- (b) chain: CHAIN jobs, each afterok its predecessor ----
    # The first is held until all are queued, so that no dependency names a
    # job that has already left slurmctld's memory (MinJobAge).
    local ids=$dir/chain.ids stamps=$dir/chain.stamps prev first id
    : >"$ids"
    : >"$stamps"
    first=$(sbatch --parsable -H -J chain -o /dev/null \
            --wrap "echo \$SLURM_JOB_ID \$(date +%s.%N) >>$stamps") || return 1
    echo "$first" >>"$ids"
    prev=$first
    for ((i = 1; i < CHAIN; i++)); do
        id=$(sbatch --parsable -J chain -o /dev/null --dependency="afterok:$prev" \
             --wrap "echo \$SLURM_JOB_ID \$(date +%s.%N) >>$stamps") || return 1
        echo "$id" >>"$ids"
        prev=$id
    done
    chain_done () {
        grep -q "JobId=$prev " "$dir/jobcomp.txt" 2>/dev/null
    }
    t0=$(now)
    scontrol release "$first" || return 1
    if ! wait_for "$DEADLINE" chain_done; then
        say "slurm ($mode): the chain of $CHAIN did not finish within $DEADLINE s"
        return 1
    fi
    t1=$(now)
    say "slurm ($mode): chain of $CHAIN jobs (--dependency=afterok:PREV), $(elapsed "$t0" "$t1") s from release to last end"
    say "peer: slurm.$mode.chain = $CHAIN jobs"
    $PY "$here/peers.py" jobcomp "$dir/jobcomp.txt" "$ids" "slurm.$mode" || return 1
    $PY "$here/peers.py" stamps "$stamps" "slurm.$mode.stamp" || return 1
    cd "$top" || return 1
    stop_all
    return 0
}

rc=0
for mode in $MODES; do
    started=$(now)
    run_mode "$mode"
    mode_rc=$?
    stop_all
    say "slurm ($mode): done in $(elapsed "$started" "$(now)") s"
    if [ $mode_rc -eq 2 ]; then
        exit 2
    fi
    [ $mode_rc -ne 0 ] && rc=1
done
exit $rc
