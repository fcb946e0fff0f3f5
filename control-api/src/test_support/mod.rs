//! Test support shared by both crates' tests and the benchmark (feature `test-support`):
//! in-memory fakes of the four ports (`fakes`), and the loopback GitHub double
//! (`github`, a wiremock server that keeps runs like GitHub does), and the local fleet
//! that `serve --local-fleet` seeds into an emulator (`local_fleet`).

pub mod fakes;
pub mod github;
pub mod local_fleet;
