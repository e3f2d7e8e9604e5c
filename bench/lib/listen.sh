# shellcheck shell=bash
# Learning the addresses a server bound, shared by bench/run and bench/faults.
#
# Servers are started on port 0 and the kernel picks a free port. Picking one
# in advance ("is anything listening on 50162?") raced the load generator's
# and pgbench's own client sockets, whose local ports come from the same
# ephemeral range: CI once failed with "Address already in use" that way.

# await_listening LOG PID: waits (up to 30 s) for the server's first stdout
# line, "partner-contacts listening on ADDR ... [, metrics: http://ADDR/metrics]",
# and sets PORT and, when the server serves metrics, METRICS_PORT. Returns 1
# if the server exits first or says nothing in time.
await_listening() {
    local log=$1 pid=$2 line i
    PORT=""
    METRICS_PORT=""
    for ((i = 0; i < 6000; i++)); do
        line=$(grep -m1 '^partner-contacts listening on ' "$log" 2>/dev/null || true)
        if [[ -n $line ]]; then
            PORT=$(sed -n 's/^partner-contacts listening on [^ ]*:\([0-9]*\) .*/\1/p' <<<"$line")
            METRICS_PORT=$(sed -n 's|.*, metrics: http://[^ ]*:\([0-9]*\)/metrics$|\1|p' <<<"$line")
            [[ -n $PORT ]] && return 0
            echo "unreadable listening line in $log: $line" >&2
            return 1
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.005
    done
    echo "the server (pid $pid) printed no listening line; last lines of $log:" >&2
    tail -20 "$log" >&2 || true
    return 1
}
