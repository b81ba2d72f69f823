//! The poison-pill rule (issue 17) with real processes: an agent that dies while reading an
//! export (here it aborts, as a debug build does with `SKOLEBRO_TEST_ABORT_AT=read`, right
//! after recording which file it reads; the OOM killer or a power cut would leave the same
//! state) must, when started again, set that file aside in `rejected/` with a note instead of
//! reading it again and dying in a loop, and go on to take in the next export.

use skolebro_tests::appliance::{sample, Agent, Cadence};
use skolebro_tests::harness::one_at_a_time;

#[test]
fn an_export_the_agent_died_reading_is_set_aside_at_the_next_start_and_the_next_one_is_taken_in() {
    let _one = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-poison-")
        .tempdir()
        .expect("temp dir");
    let mut agent = Agent::by_config(dir.path(), Cadence::BUSY);
    let drop_dir = agent.drop_dir();
    let marker = dir.path().join("state").join("reading");

    agent.start_with(&[("SKOLEBRO_TEST_ABORT_AT", "read")]);
    agent.drop_export("elever.csv", &sample());
    agent.wait_for_exit("it aborts while reading elever.csv");
    assert!(marker.exists(), "the read was recorded before it began");
    assert!(drop_dir.join("elever.csv").exists());

    agent.start();
    let rejected = drop_dir.join("rejected");
    agent.wait_for("the export to be set aside", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped while reading export elever.csv"))
    });
    assert!(rejected.join("elever.csv").exists());
    assert!(!drop_dir.join("elever.csv").exists());
    let note = std::fs::read_to_string(rejected.join("elever.csv.error.txt")).expect("the note");
    assert!(
        note.contains("stopped while it was reading this export"),
        "{note}"
    );
    assert!(!marker.exists(), "the record is cleared");
    assert_eq!(agent.status().expect("status")["outbox_depth"], 0);

    agent.drop_export("elever-2.csv", &sample());
    agent.wait_for("the next export to be taken in", |s| {
        s["outbox_depth"] == 1 && s["last_export_file"] == "elever-2.csv"
    });
    assert!(!marker.exists(), "a read that ended leaves no record");
}
