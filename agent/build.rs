//! Bakes the build time into the agent (`SKOLEBRO_BUILD_UNIX`): the first floor of its clock
//! (DESIGN decision 8), so a Pi that boots without network time never trusts a time from
//! before the software on it existed. `SOURCE_DATE_EPOCH` wins when set, for reproducible
//! builds (Debian sets it).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=SKOLEBRO_BUILD_UNIX={seconds}");
}
