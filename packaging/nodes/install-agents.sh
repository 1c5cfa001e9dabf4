#!/bin/sh
# Installs and enrols qanat-agent on many nodes over ssh, a few at a time,
# with one join token (qanat token create --uses N): each node enrols
# under its own host name.  Two ways (docs/install.md):
#   --deb FILE     the qanat-agent package, as root (sudo) on the node:
#                  installed, enrolled (key owned by qanat-agent), the
#                  service started
#   --bundle FILE  the agent bundle (make agent-bundle), as the ssh user,
#                  no root: unpacked into ~/.local/lib/qanat-agent,
#                  enrolled into ~/.qanat/agent, then a systemd --user
#                  service where there is one, else --daemon (pid file)
# Usage: install-agents.sh --token TOKEN (--deb FILE | --bundle FILE)
#            [--labels K=V,...] [--parallel N] HOST...
# Hosts may also come on stdin, one a line (e.g. from a Slurm node list:
# scontrol show hostnames | install-agents.sh ... -).  SSH and SCP name
# the commands used (default ssh, scp; e.g. SSH="ssh -o BatchMode=yes").
# Run again, it upgrades and restarts the agents; a node enrolled already
# keeps its identity (no token use).
# A line per host says "HOST ok" or "HOST failed: why"; the exit status
# is the number of hosts that failed (at most 100).
set -u
SSH=${SSH:-ssh}; SCP=${SCP:-scp}
token=""; deb=""; bundle=""; labels=""; parallel=8
usage () { sed -n '2,20s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --token) token=$2; shift 2;;
        --deb) deb=$2; shift 2;;
        --bundle) bundle=$2; shift 2;;
        --labels) labels=$2; shift 2;;
        --parallel) parallel=$2; shift 2;;
        -h|--help) usage;;
        --) shift; break;;
        -*) echo "install-agents.sh: unknown option $1" >&2; usage;;
        *) break;;
    esac
done
[ -n "$token" ] || { echo "install-agents.sh: --token TOKEN is needed (qanat token create --uses N)" >&2; exit 2; }
[ -n "$deb$bundle" ] && [ -z "$deb" -o -z "$bundle" ] \
    || { echo "install-agents.sh: give one of --deb FILE and --bundle FILE" >&2; exit 2; }
file=${deb:-$bundle}
[ -r "$file" ] || { echo "install-agents.sh: cannot read $file" >&2; exit 2; }
case "$parallel" in ''|*[!0-9]*|0) echo "install-agents.sh: --parallel wants a number" >&2; exit 2;; esac
[ $# -gt 0 ] || usage

# What runs on a node: $1 = the copied file, $2 = token, $3 = labels.
# The token travels on stdin, never on a command line (ps).
REMOTE_DEB='set -e; f=$1; read -r t; l=$2
sudo apt-get install -y -q "$f" >/dev/null
sudo test -f /var/lib/qanat-agent/agent.key \
    || sudo qanat-agent enrol --token "$t" ${l:+--labels "$l"}
sudo systemctl restart qanat-agent
rm -f "$f"'
REMOTE_BUNDLE='set -e; f=$1; read -r t; l=$2; d=$HOME/.local/lib/qanat-agent
mkdir -p "$d"; tar -xzf "$f" --strip-components=1 -C "$d"; rm -f "$f"
test -f "$HOME/.qanat/agent/agent.key" || "$d/bin/qanat-agent" enrol --token "$t" ${l:+--labels "$l"}
if systemctl --user show-environment >/dev/null 2>&1; then
    mkdir -p "$HOME/.config/systemd/user"
    cp "$d/share/qanat-agent.service" "$HOME/.config/systemd/user/"
    systemctl --user daemon-reload; systemctl --user enable --now qanat-agent
    systemctl --user restart qanat-agent
else
    p=$HOME/.qanat/agent/agent.pid
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null && sleep 2
    "$d/bin/qanat-agent" --daemon
fi'

one_host () {
    host=$1
    remote=/tmp/qanat-agent-install-$$-$host-$(basename "$file")
    script=$REMOTE_BUNDLE; [ -n "$deb" ] && script=$REMOTE_DEB
    if ! err=$($SCP -q "$file" "$host:$remote" 2>&1); then
        echo "$host failed: copy: $err"; return 1; fi
    if err=$(echo "$token" | $SSH "$host" sh -c "'$script'" - "$remote" "'$labels'" 2>&1 >/dev/null); then
        echo "$host ok"
    else
        echo "$host failed: $(echo "$err" | tail -1)"; return 1
    fi
}

[ "$1" = - ] && set -- $(cat)
failed=0; running=0
results=$(mktemp); trap 'rm -f "$results"' EXIT
for host in "$@"; do
    one_host "$host" >>"$results" &
    running=$((running + 1))
    if [ $running -ge "$parallel" ]; then wait; running=0; fi
done
wait
cat "$results"
failed=$(grep -c ' failed: ' "$results")
[ "$failed" -gt 100 ] && failed=100
exit "$failed"
