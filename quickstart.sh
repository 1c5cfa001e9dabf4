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
            pid=$(cat "$STATE/$name.pid")
            if kill "$pid" 2>/dev/null; then
                # The agent's first SIGTERM drains: it waits for its tasks
                # and for the coordinator to acknowledge their events; a
                # second one stops it at once (its spool keeps the rest).
                i=0
                while [ "$name" = agent ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
                    sleep 0.2; i=$((i + 1))
                done
                kill "$pid" 2>/dev/null
                echo "stopped $name"
            fi
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
# CURVE by default: qanatd writes an admin client key on first start
# (docs/security.md); the CLI calls below use it.
export QANAT_KEY="$STATE/coordinator/keys/admin.key"
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
local_connected() {
    $QANAT agents --json 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if any(a.get("name") == "local" and a.get("connected") for a in json.load(sys.stdin)) else 1)'
}
if ! local_connected; then
    # The first start enrols with a join token; later ones use agent.key.
    set --
    if [ ! -f "$STATE/agent/agent.key" ]; then
        token=$($QANAT token create --labels env=local 2>/dev/null) || {
            echo "cannot make a join token for the local agent"; exit 1; }
        set -- --join "$token"
    fi
    ./agent/qanat-agent --coordinator "$AGENT_EP" --name local --labels env=local \
        --data-dir "$STATE/agent" "$@" >>"$STATE/agent.log" 2>&1 &
    echo $! >"$STATE/agent.pid"
    i=0
    until local_connected; do
        i=$((i + 1)); [ $i -gt 50 ] && { cat "$STATE/agent.log"; exit 1; }
        sleep 0.2
    done
    echo "qanat-agent 'local' started (log: $STATE/agent.log)"
    # A restarted qanatd takes an agent that drained itself at its last
    # stop for one an admin drained; this agent is ours: it takes work.
    $QANAT agent undrain local >/dev/null 2>&1
fi
# The CLI and the Python SDK find this coordinator through a context of
# the client config file (the first context added becomes the current one)
if ! $QANAT context show quickstart >/dev/null 2>&1; then
    api_token=$($QANAT apitoken create "quickstart-$(date +%s)" --role admin 2>/dev/null |
                grep -o 'qat_[A-Za-z0-9_-]*')
    [ -n "$api_token" ] &&
    $QANAT context add quickstart --key "$QANAT_KEY" --url http://127.0.0.1:7780 \
        --token "$api_token" >/dev/null &&
    echo "context 'quickstart' added to ${XDG_CONFIG_HOME:-$HOME/.config}/qanat/config.yaml"
fi
echo
$QANAT agents
echo
$QANAT run examples/ml-pipeline/workflow.yaml --follow
rc=$?
echo
echo "The coordinator and agent keep running. Try '$TOP/cli/qanat runs',"
echo "'cli/qanat metrics ml-pipeline accuracy', or the same pipeline in Python:"
echo "'python3 examples/ml-pipeline/flow.py run' (docs/python.md)."
echo "The web UI is on http://127.0.0.1:7780/ (docs/web-ui.md): sign in with an API"
echo "token from '$TOP/cli/qanat apitoken create me --role admin'."
echo "Stop them with: ./quickstart.sh --stop"
exit $rc
