#!/usr/bin/env bash
# The agent daemon's memory: RSS when idle, and peak RSS while it processes one export of
# N students (default 100,000) into its outbox. Central is left unreachable on purpose, so
# the measurement is the agent's alone. Uses the demo to make a configured agent folder.
# Run from the repo root after `cargo build --release -p skolebro-agent -p skolebro-tests`.
#
# An ARM agent runs under qemu-user: AGENT names its binary and RUNNER the emulator, e.g.
#   AGENT=target/aarch64-unknown-linux-gnu/pi/skolebro-agent \
#   RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" tests/bench/agent-rss.sh
# The qemu process's RSS is then the agent's memory plus the emulator's own (its code, heap
# and translated-code cache), so the script also prints the guest's alone, summed over its
# mappings by tests/bench/guest-rss.py, sampled every 100 ms for the peak.
set -euo pipefail
students=${1:-100000}
bin=target/release
agent_bin=${AGENT:-$bin/skolebro-agent}
read -r -a runner <<<"${RUNNER:-}"
guest_rss="$(dirname "$0")/guest-rss.py"
demo=$("$bin/skolebro-demo" --json --keep 2>/dev/null | tail -n 1 | sed -E 's/.*"dir":"([^"]+)".*/\1/')
work=$(mktemp -d)
agent=""
watcher=""
trap '[ -n "$agent" ] && { kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; }; [ -n "$watcher" ] && kill "$watcher" 2>/dev/null; rm -rf "$work" "$demo"' EXIT
cp "$demo"/{agent.toml,central-ca.pem,device.pem,device.key,signing.key,site.secret} "$work/"
sed -i 's#^url = .*#url = "https://127.0.0.1:9"#' "$work/agent.toml"
"$bin/skolebro-rostergen" --students "$students" --out "$work/export.csv" >/dev/null

"${runner[@]}" "$agent_bin" run --config "$work/agent.toml" 2>"$work/agent.log" &
agent=$!
sleep "${IDLE_SECONDS:-3}"
idle=$(awk '/VmRSS/ {print $2}' "/proc/$agent/status")
if [ -n "${RUNNER:-}" ]; then
  guest_idle=$(python3 "$guest_rss" "$agent" "$agent_bin")
  python3 "$guest_rss" "$agent" "$agent_bin" --watch "$work/guest-peak" &
  watcher=$!
fi
mkdir -p "$work/drop"
cp "$work/export.csv" "$work/.export.part" && mv "$work/.export.part" "$work/drop/export.csv"
for _ in $(seq 1 "${WAIT_STEPS:-120}"); do
  sleep 0.5
  grep -q '"outbox_depth": *[1-9]' "$work/state/status.json" 2>/dev/null && break
done
peak=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
mib() { echo "$1 / 1024" | bc -l; }
if [ -n "${RUNNER:-}" ]; then
  sleep 0.3
  guest_peak=$(cat "$work/guest-peak")
  printf 'qemu process RSS, idle: %.1f MiB; peak: %.1f MiB\n' "$(mib "$idle")" "$(mib "$peak")"
  printf 'agent idle RSS (guest mappings): %.1f MiB\n' "$(mib "$guest_idle")"
  printf 'agent peak RSS processing %d students (guest mappings): %.1f MiB\n' "$students" "$(mib "$guest_peak")"
else
  printf 'agent idle RSS: %.1f MiB\n' "$(mib "$idle")"
  printf 'agent peak RSS processing %d students: %.1f MiB\n' "$students" "$(mib "$peak")"
fi
