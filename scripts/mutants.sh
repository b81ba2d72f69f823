#!/usr/bin/env bash
# Mutation testing of the modules where a silent regression would hurt most: cargo-mutants
# changes one thing in the code at a time (a `<` to `<=`, a body to `Default::default()`)
# and runs the owning crate's unit tests; a mutant the tests still pass on is a behaviour
# nothing checks. Not run in CI (a run takes hours on two cores); docs/TESTING.md records
# the scores and the surviving mutants that are equivalent.
#
# Usage: scripts/mutants.sh [module...]   (no module: all of them, in the order below)
# Modules: national-id safety diff validate envelope outbox apply
#
# Each module is mutated in place in this checkout (so the warm target/ is used; the files
# are restored after every mutant), one mutant at a time (in place allows no more), and only the crate's `--lib` tests run.
# The report of each lands in target/mutants/<module>/mutants.out.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null; then
    cargo install --locked cargo-mutants
fi

# module → crate, the unit tests run (the test binary's arguments, comma-separated: name
# filters and `--skip=…`; the module's own tests, so a mutant costs seconds, not the
# crate's slowest tests; a mutant only another module's tests would catch counts as missed,
# so the scores are lower bounds) and the files mutated.
modules() {
    cat <<'EOF'
national-id skolebro-protocol national_id:: protocol/src/national_id.rs
safety skolebro-roster safety:: roster/src/safety.rs
diff skolebro-roster diff:: roster/src/diff.rs
validate skolebro-roster validate:: roster/src/validate.rs
envelope skolebro-protocol envelope:: protocol/src/envelope/mod.rs protocol/src/envelope/ids.rs protocol/src/envelope/keys.rs protocol/src/envelope/payload.rs
outbox skolebro-agent outbox:: agent/src/outbox/mod.rs agent/src/outbox/recovery.rs agent/src/outbox/segment.rs agent/src/outbox/storage.rs
apply skolebro-central store::records::tests,store::sqlite::records::tests,store::sqlite::tests::,--skip=tests::sealed:: central/src/store/records.rs central/src/store/sqlite/records.rs
EOF
}

# The functions mutated, where a module's files hold more than the module (a cargo-mutants
# `--re` on the mutant's name). apply is central's apply path: the chain checks, the
# transaction that writes a batch with its head and its transfer, and the transfer's counts,
# not the readers and consumer-page SQL in the same files. Its tests are the records unit
# tests and the store suite on SQLite; the suite's sealed copy is left out (the same cases
# at twice the time).
functions() {
    case "$1" in
    apply) echo 'check_batch|apply_prepared|changes_to_db|bytes_to_db|into_transfer|from_opened|apply_batch|read_current|read_renamed|for SqliteStore>::apply ' ;;
    esac
}

if ! git diff --quiet; then
    echo "the checkout has uncommitted changes; commit them first (mutants run in place)" >&2
    exit 1
fi

wanted=("$@")
status=0
while read -r name crate filters files; do
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " ${name} " ]]; then
        continue
    fi
    args=()
    for file in $files; do
        args+=(--file "$file")
    done
    re=$(functions "$name")
    if [ -n "$re" ]; then
        args+=(--re "$re")
    fi
    IFS=, read -r -a test_args <<<"$filters"
    echo "== $name ($crate: $files)"
    mkdir -p "target/mutants/$name"
    # cargo-mutants exits non-zero when a mutant survives; go on to the next module.
    seeds_before=$(git ls-files --others --exclude-standard -- '*proptest-regressions*')
    # `--cargo-arg=--lib` reaches the build as well as the test run, so no integration test
    # is built for nothing.
    cargo mutants --in-place --package "$crate" "${args[@]}" --cargo-arg=--lib \
        --output "target/mutants/$name" -- -- "${test_args[@]}" || status=$?
    # A mutant that fails a property test leaves proptest's seed of the failure behind; it
    # is a seed of broken code, not of a regression, so it goes.
    for seeds in $(git ls-files --others --exclude-standard -- '*proptest-regressions*'); do
        if ! grep -qxF "$seeds" <<<"$seeds_before"; then
            rm -- "$seeds"
        fi
    done
    jq -r '[.outcomes[] | select(.scenario != "Baseline") | .summary]
           | group_by(.) | map("\(.[0]): \(length)") | join(", ")' \
        "target/mutants/$name/mutants.out/outcomes.json"
done < <(modules)
exit "$status"
