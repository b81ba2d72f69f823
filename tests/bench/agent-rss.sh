#!/usr/bin/env bash
# The agent daemon's memory: RSS when idle, and peak RSS while it processes one export of
# N students (default 100,000) into its outbox. Central is left unreachable on purpose, so
# the measurement is the agent's alone. Uses the demo to make a configured agent folder.
# Run from the repo root after `cargo build --release -p skolebro-agent -p skolebro-tests`.
#
# An ARM agent runs under qemu-user: AGENT names its binary and RUNNER the emulator, e.g.
#   AGENT=target/aarch64-unknown-linux-gnu/pi/skolebro-agent \
#   RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" tests/bench/agent-rss.sh
# The RSS read is then the qemu process's: the agent's memory plus the emulator's own (its
# translated-code cache grows with the code the agent runs). The script also prints the
# emulator's floor, the peak RSS of `AGENT --version` under the same RUNNER.
set -euo pipefail
students=${1:-100000}
bin=target/release
agent_bin=${AGENT:-$bin/skolebro-agent}
read -r -a runner <<<"${RUNNER:-}"
demo=$("$bin/skolebro-demo" --json 2>/dev/null | tail -n 1 | sed -E 's/.*"dir":"([^"]+)".*/\1/')
work=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$demo"/{agent.toml,central-ca.pem,device.pem,device.key,signing.key,site.secret} "$work/"
sed -i 's#^url = .*#url = "https://127.0.0.1:9"#' "$work/agent.toml"
"$bin/skolebro-rostergen" --students "$students" --out "$work/export.csv" >/dev/null

"${runner[@]}" "$agent_bin" run --config "$work/agent.toml" 2>"$work/agent.log" &
agent=$!
sleep "${IDLE_SECONDS:-3}"
idle=$(awk '/VmRSS/ {print $2}' "/proc/$agent/status")
mkdir -p "$work/drop"
cp "$work/export.csv" "$work/.export.part" && mv "$work/.export.part" "$work/drop/export.csv"
for _ in $(seq 1 "${WAIT_STEPS:-120}"); do
  sleep 0.5
  grep -q '"outbox_depth": *[1-9]' "$work/state/status.json" 2>/dev/null && break
done
peak=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
printf 'agent idle RSS: %.1f MiB\n' "$(echo "$idle / 1024" | bc -l)"
printf 'agent peak RSS processing %d students: %.1f MiB\n' "$students" "$(echo "$peak / 1024" | bc -l)"
if [ -n "${RUNNER:-}" ]; then
  floor=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "${runner[@]}" "$agent_bin" --version)
  printf 'emulator floor (peak RSS of --version under %s): %.1f MiB\n' "${runner[0]}" "$(echo "$floor / 1024" | bc -l)"
fi
