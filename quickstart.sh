#!/bin/sh
# qanat quick start: installs what is needed (Debian 12), builds, starts a
# coordinator and one local agent on this machine (LMDB store under
# ./.qanat), runs the example ML pipeline and follows it to the end.
#
#   ./quickstart.sh          set up and run the example
#   ./quickstart.sh --stop   stop the coordinator and agent it started
set -u
cd "$(dirname "$0")"
TOP=$(pwd)
STATE="$TOP/.qanat"
CLIENT_EP="${QANAT_COORDINATOR:-tcp://127.0.0.1:7710}"
AGENT_EP="${QANAT_AGENT_ENDPOINT:-tcp://127.0.0.1:7711}"

stop() {
    for name in agent qanatd; do
        if [ -f "$STATE/$name.pid" ]; then
            kill "$(cat "$STATE/$name.pid")" 2>/dev/null && echo "stopped $name"
            rm -f "$STATE/$name.pid"
        fi
    done
}
if [ "${1:-}" = "--stop" ]; then stop; exit 0; fi

./packaging/install-deps.sh || exit 1
if [ ! -x cli/qanat ] || [ ! -f Makefile ]; then
    echo "building qanat..."
    { [ -f Makefile ] || { ./autogen.sh && ./configure -q; }; } >/dev/null || exit 1
fi
make -j"$(nproc)" >/dev/null || { make; exit 1; }
mkdir -p "$STATE"
QANAT="$TOP/cli/qanat --coordinator $CLIENT_EP"

if ! $QANAT --timeout 1 stats >/dev/null 2>&1; then
    ./coordinator/qanatd --data-dir "$STATE/coordinator" --client-endpoint "$CLIENT_EP" \
        --agent-endpoint "$AGENT_EP" >"$STATE/qanatd.log" 2>&1 &
    echo $! >"$STATE/qanatd.pid"
    i=0
    until $QANAT --timeout 1 stats >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 50 ] && { cat "$STATE/qanatd.log"; exit 1; }
        sleep 0.2
    done
    echo "qanatd started (log: $STATE/qanatd.log)"
fi
if ! $QANAT agents --json 2>/dev/null | grep -q '"name":"local","labels":{[^}]*},"backends":\[[^]]*\],"capacity":[0-9]*,"credit":[0-9]*,"running":[0-9]*,"connected":true'; then
    ./agent/qanat-agent --coordinator "$AGENT_EP" --name local --labels env=local \
        --data-dir "$STATE/agent" >"$STATE/agent.log" 2>&1 &
    echo $! >"$STATE/agent.pid"
    i=0
    until $QANAT agents --json 2>/dev/null | grep -q '"connected":true'; do
        i=$((i + 1)); [ $i -gt 50 ] && { cat "$STATE/agent.log"; exit 1; }
        sleep 0.2
    done
    echo "qanat-agent 'local' started (log: $STATE/agent.log)"
fi
echo
$QANAT agents
echo
$QANAT run examples/ml-pipeline/workflow.yaml --param code_dir="$TOP/examples/ml-pipeline" --follow
rc=$?
echo
echo "The coordinator and agent keep running: try '$TOP/cli/qanat runs', 'qanat metrics ml-pipeline accuracy'."
echo "Stop them with: ./quickstart.sh --stop"
exit $rc
