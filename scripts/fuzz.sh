#!/usr/bin/env bash
# Fuzzing: runs each cargo-fuzz target of fuzz/ for SECONDS (default 60) and prints, per
# target, the executions, executions per second and coverage libFuzzer reports at the end,
# as a Markdown table (the one in docs/BENCHMARKS.md). Exits non-zero if any target found a
# crash; the input is then in fuzz/artifacts/<target>/ and libFuzzer's log in fuzz/logs/.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (no target: all of them)
# FUZZ_DEV=1 builds the targets unoptimised (`cargo fuzz --dev`): a cold build in about half
# the time, at fewer executions per second; CI's smoke run uses it.
# FUZZ_RUNS=N stops each target after N executions instead (SECONDS is then the cap): how
# the million-execution figures in docs/BENCHMARKS.md were made.
#
# Stable Rust only: `-s none` builds without a sanitizer, which needs no nightly (the
# targets' own assertions and the heap counter do the checking). Corpora live in
# fuzz/corpus/<target>/ (not in git) and are seeded here, every run, from tests/data,
# tests/corpus and protocol/tests/vectors, so a fresh checkout starts from real exports.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all=(elevliste oneroster_csv oneroster_zip oneroster_json ims_enterprise envelope
    stick_bundle release_manifest outbox_recovery oneroster_filter)
targets=("$@")
flags=(-s none)
[ -z "${FUZZ_DEV:-}" ] || flags+=(--dev)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi

# Copies `file` into the corpus of `target` under a name made of its path.
seed() {
    local target=$1 file=$2
    cp "$file" "fuzz/corpus/$target/seed-$(echo "$file" | tr '/' '_')"
}

# The files of a OneRoster folder as one input of the split format (`--- name` lines).
seed_folder() {
    local target=$1 folder=$2 out
    out="fuzz/corpus/$target/seed-$(echo "$folder" | tr '/' '_')"
    : >"$out"
    for file in "$folder"/*.csv; do
        printf -- '--- %s\n' "$(basename "$file")" >>"$out"
        cat "$file" >>"$out"
        [ -z "$(tail -c1 "$file")" ] || echo >>"$out"
    done
}

# `prefix` bytes (octal escapes) then `file`, or the signed part's body of a signed blob.
seed_prefixed() {
    local target=$1 prefix=$2 file=$3 name=$4
    { printf "$prefix"; cat "$file"; } >"fuzz/corpus/$target/seed-$name"
}
seed_body() {
    local target=$1 prefix=$2 file=$3 name=$4 size
    size=$(stat -c %s "$file")
    { printf "$prefix"; head -c $((size - 64)) "$file" | tail -c +10; } >"fuzz/corpus/$target/seed-$name"
}

for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
done
for target in "${targets[@]}"; do
    case $target in
    elevliste)
        for f in tests/data/*/elevliste.csv tests/data/*/*/elevliste.csv tests/corpus/wis-*/*.csv; do
            seed elevliste "$f"
        done ;;
    oneroster_csv | oneroster_zip)
        for d in tests/data/*/oneroster tests/data/*/*/oneroster tests/corpus/*/export; do
            [ -d "$d" ] && seed_folder "$target" "$d"
        done
        if [ "$target" = oneroster_zip ]; then
            for f in tests/corpus/*/export.zip; do seed oneroster_zip "$f"; done
        fi ;;
    oneroster_json)
        for f in tests/data/*/users.json tests/corpus/*/*.json; do seed oneroster_json "$f"; done ;;
    ims_enterprise)
        for f in tests/data/*/*.xml tests/data/*/*/*.xml tests/corpus/*/*.xml; do
            seed ims_enterprise "$f"
        done ;;
    envelope)
        for f in protocol/tests/vectors/envelope-*.bin; do
            n=$(basename "$f" .bin)
            seed_prefixed envelope '\000' "$f" "$n-as-received"
            seed_prefixed envelope '\001' "$f" "$n-resigned"
        done
        # Plaintexts (postcard): an empty snapshot (variant 1, four empty lists), an empty
        # delta (variant 0, four entities of two empty lists) and one with renames (variant
        # 2, three lists each).
        printf '\003\001\000\000\000\000' >fuzz/corpus/envelope/seed-snapshot-empty
        printf '\002\000\000\000\000\000\000\000\000\000' >fuzz/corpus/envelope/seed-delta-empty
        printf '\002\002\000\000\000\000\000\000\000\000\000\000\000\000' \
            >fuzz/corpus/envelope/seed-delta-renames-empty ;;
    stick_bundle)
        for v in 1 2; do
            f=protocol/tests/vectors/stick-v$v.bin
            seed_prefixed stick_bundle '\000' "$f" "v$v-as-written"
            seed_body stick_bundle "\\001\\00$v" "$f" "v$v-body"
        done ;;
    release_manifest)
        for v in 1 2; do
            f=protocol/tests/vectors/manifest-v$v.bin
            seed_prefixed release_manifest '\000' "$f" "v$v-as-written"
            seed_body release_manifest "\\001\\00$v" "$f" "v$v-body"
        done ;;
    outbox_recovery)
        # Framed (bit 3): first seq 1, frames of seq steps +1 with short payloads; then the
        # same with an ack file at 1, a repeated seq, and a cut tail.
        printf '\011\000\001\003abc\001\002de\001\004fghi' >fuzz/corpus/outbox_recovery/seed-three
        printf '\011\201\001\003abc\001\002de\001\004fghi' >fuzz/corpus/outbox_recovery/seed-acked
        printf '\011\000\001\003abc\000\002de\001\004fghi' >fuzz/corpus/outbox_recovery/seed-repeat
        printf '\131\000\001\003abc\001\002de\001\004fghi' >fuzz/corpus/outbox_recovery/seed-cut ;;
    oneroster_filter)
        printf "role='student'" >fuzz/corpus/oneroster_filter/seed-role
        printf "familyName~'nil' AND role!='teacher' OR dateLastModified>='2026-01-01T00:00:00Z'" \
            >fuzz/corpus/oneroster_filter/seed-groups
        printf "orgs.sourcedId = 'o''1' OR grades<='05'" >fuzz/corpus/oneroster_filter/seed-quote ;;
    *) echo "unknown target: $target (targets: ${all[*]})" >&2; exit 2 ;;
    esac
done

(cd fuzz && cargo fuzz build "${flags[@]}")
# The targets are run as built, not through `cargo fuzz run`, which would build again before
# each one (and pick up whatever the tree holds by then).
profile=release
[ -z "${FUZZ_DEV:-}" ] || profile=debug
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/$profile"
stop=(-max_total_time="$seconds")
[ -z "${FUZZ_RUNS:-}" ] || stop+=(-runs="$FUZZ_RUNS")
mkdir -p fuzz/logs
failed=0
echo "| target | wall s | execs | exec/s | coverage (cov) | features (ft) | corpus | peak RSS MB | result |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for target in "${targets[@]}"; do
    log="fuzz/logs/$target.log"
    result=ok
    began=$(date +%s)
    # The RSS limit is libFuzzer's; the readers' own heap bound is asserted in the targets.
    if ! (cd fuzz && "../$bin_dir/$target" "${stop[@]}" -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 -close_fd_mask=1 -artifact_prefix="artifacts/$target/" \
        "corpus/$target") >"$log" 2>&1; then
        result="FAILED (see $log)"
        failed=1
    fi
    wall=$(($(date +%s) - began))
    final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    echo "| $target | $wall | $(final_stat number_of_executed_units) | $(final_stat average_exec_per_sec) | $cov | $ft | $corp | $(final_stat peak_rss_mb) | $result |"
done
exit $failed
