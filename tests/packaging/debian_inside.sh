#!/bin/sh
# Runs inside the clean Debian 12 tree made by test_debian.sh (chroot, own
# PID, mount and network namespaces, as root): installs the packages in
# /qanat-test/v1, starts qanatd and an agent the way their units do, as
# their service users, enrols the agent, runs a workflow; upgrades to
# /qanat-test/v2 with the store kept and runs again.  One "ok"/"not ok"
# line per step, then "N passed, N failed".
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root
passed=0; failed=0
ok () { passed=$((passed + 1)); echo "ok - $1"; }
not_ok () { failed=$((failed + 1)); echo "not ok - $1"; }
check () { what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish () {
    [ "$failed" -eq 0 ] || { for log in /tmp/qanatd.log /tmp/agent.log; do
        [ -f $log ] && { echo "---- $log"; tail -30 $log; }; done; }
    echo "$passed passed, $failed failed"; exit 0; }
ip link set lo up
KEY=/var/lib/qanat/keys/admin.key
Q () { qanat --key $KEY "$@"; }

# The command a unit runs, with its EnvironmentFile's variables
unit_exec () {
    sed -n 's/^ExecStart=//p' "/lib/systemd/system/$1"
}
start_qanatd () {
    runuser -u qanat -- $(unit_exec qanatd.service) >>/tmp/qanatd.log 2>&1 &
    QANATD_PID=$!
    i=0; while [ $i -lt 100 ]; do
        [ -f $KEY ] && Q stats >/dev/null 2>&1 && return 0
        sleep 0.1; i=$((i + 1)); done
    return 1
}
start_agent () {
    runuser -u qanat-agent -- $(unit_exec qanat-agent.service) >>/tmp/agent.log 2>&1 &
    AGENT_PID=$!
    i=0; while [ $i -lt 100 ]; do
        Q agents 2>/dev/null | grep -q "^$1 .*connected\|^$1 .*idle\|^$1 .*ready" && return 0
        Q agents -o json 2>/dev/null | grep -q '"connected": *true' && return 0
        sleep 0.1; i=$((i + 1)); done
    return 1
}
stop_all () {
    kill -TERM $AGENT_PID $QANATD_PID 2>/dev/null
    wait $AGENT_PID $QANATD_PID 2>/dev/null
}
mkdir -p /qanat-test/wf
cat > /qanat-test/wf/hello.yaml <<'YAML'
name: hello
tasks:
  greet:
    run: echo "hello from the packaged agent"
  after:
    needs: [greet]
    run: test "$(id -un)" = qanat-agent
YAML

# ---- install ----
if dpkg -i /qanat-test/v1/*.deb >/tmp/dpkg.log 2>&1; then ok "dpkg -i the packages"
else cat /tmp/dpkg.log; not_ok "dpkg -i the packages"; finish; fi
check "users qanat and qanat-agent made by sysusers" getent passwd qanat qanat-agent
check "/var/lib/qanat is qanat's, 0700" test "$(stat -c '%U %a' /var/lib/qanat)" = "qanat 700"
check "units enabled" test -L /etc/systemd/system/multi-user.target.wants/qanatd.service \
    -a -L /etc/systemd/system/multi-user.target.wants/qanat-agent.service
check "conffiles under /etc/qanat" sh -c \
    'dpkg-query -W -f="\${Conffiles}\n" qanatd qanat-agent | grep -q /etc/qanat/qanatd.yaml && \
     dpkg-query -W -f="\${Conffiles}\n" qanatd qanat-agent | grep -q /etc/qanat/agent.yaml'
check "Type=notify units with a watchdog" sh -c 'for u in qanatd qanat-agent; do
    grep -q "^Type=notify" /lib/systemd/system/$u.service && grep -q "^WatchdogSec=" /lib/systemd/system/$u.service || exit 1; done'
check "the shipped config files pass --check-config" sh -c \
    'qanatd --config /etc/qanat/qanatd.yaml --check-config >/dev/null && qanat-agent --config /etc/qanat/agent.yaml --check-config >/dev/null'
check "no hard-coded /usr/local in the units" sh -c '! grep -q /usr/local /lib/systemd/system/qanat*.service'
check "man pages and completion" test -f /usr/share/man/man1/qanatd.1.gz -a -f /usr/share/man/man1/qanat-agent.1.gz \
    -a -f /usr/share/man/man1/qanat.1.gz -a -f /usr/share/bash-completion/completions/qanat \
    -a -f /usr/share/zsh/vendor-completions/_qanat
check "no compiler came with the packages" sh -c '! command -v cc && ! command -v gcc' >/dev/null
check "the Python module imports" python3 -c 'import qanat, qanat.client'

# ---- run ----
echo "# a comment of the admin's" >> /etc/qanat/qanatd.yaml
check "qanatd starts as qanat from its unit's command" start_qanatd
TOKEN=$(Q token create --uses 5 -o json 2>/dev/null | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
check "a join token for 5 agents" test -n "$TOKEN"
check "qanat-agent enrol as root" qanat-agent enrol --token "$TOKEN" --coordinator tcp://127.0.0.1:7711 \
    --name node1 --labels site=test
check "the agent's key belongs to qanat-agent" test "$(stat -c %U /var/lib/qanat-agent/agent.key 2>/dev/null)" = qanat-agent
check "the agent starts without a token" start_agent node1
check "a workflow runs to success" timeout 60 qanat --key $KEY run /qanat-test/wf/hello.yaml --follow

# ---- the agent's container (packaging/container/Containerfile), its
# root file system at /ctr: the Containerfile's user, the package, the
# agent as that user with the image's command ----
if [ -d /ctr ]; then
    mount -t proc proc /ctr/proc
    # The Containerfile's first RUN: the user and its data directory
    user_cmd=$(awk '/^RUN groupadd/ { on = 1; sub(/^RUN /, "") }
                    on { print; if ($0 !~ /\\$/) exit }' /qanat-test/Containerfile)
    check "the Containerfile's user made in the container's tree" chroot /ctr sh -c "$user_cmd"
    check "qanat-agent installed there (dpkg -i)" sh -c 'chroot /ctr sh -c "dpkg -i /tmp/qanat-agent_*.deb" >/tmp/ctr-dpkg.log 2>&1 || { cat /tmp/ctr-dpkg.log; false; }'
    uid=$(sed -n 's/^USER \([0-9]*\):.*/\1/p' /qanat-test/Containerfile)
    check "the Containerfile runs as a non-root user ($uid)" test -n "$uid" -a "$uid" != 0
    cmd=$(sed -n 's/^CMD \["\(.*\)"\]/\1/p' /qanat-test/Containerfile)
    check "the agent enrols in the container, as $uid" chroot --userspec=$uid:$uid /ctr env HOME=/var/lib/qanat-agent \
        /usr/bin/qanat-agent enrol --token "$TOKEN" --name ctr --labels where=container \
        --coordinator tcp://127.0.0.1:7711 $cmd
    chroot --userspec=$uid:$uid /ctr env HOME=/var/lib/qanat-agent /usr/bin/qanat-agent $cmd >>/tmp/ctr-agent.log 2>&1 &
    CTR_PID=$!
    check "the container's agent connects" sh -c 'for i in $(seq 100); do
        qanat --key '$KEY' agents 2>/dev/null | grep -q "^ctr .*connected" && exit 0; sleep 0.1; done; exit 1'
    cat > /qanat-test/wf/ctr.yaml <<YAML
name: in-container
tasks:
  where:
    on: {where: container}
    run: test "\$(id -u)" = $uid && test -f /etc/debian_version && ! test -e /qanat-test
YAML
    check "a task runs in the container's tree as $uid" timeout 60 qanat --key $KEY run /qanat-test/wf/ctr.yaml --follow
    kill -TERM $CTR_PID; wait $CTR_PID
    umount /ctr/proc
fi
stop_all

# ---- upgrade, the store kept ----
if dpkg -i /qanat-test/v2/*.deb >/tmp/dpkg.log 2>&1; then ok "dpkg -i the newer packages (upgrade)"
else cat /tmp/dpkg.log; not_ok "dpkg -i the newer packages (upgrade)"; fi
check "upgraded to the newer version" sh -c 'dpkg-query -W -f="\${Version}" qanatd | grep -q "+1$"'
check "the admin's conffile change kept" grep -q "comment of the admin" /etc/qanat/qanatd.yaml
check "qanatd starts again on its store" start_qanatd
check "the agent starts again, enrolled" start_agent node1
check "a workflow runs to success after the upgrade" timeout 60 qanat --key $KEY run /qanat-test/wf/hello.yaml --follow
check "both runs listed" test "$(Q runs -o json | grep -o '"status": *"succeeded"' | wc -l)" -ge 2
stop_all
finish
