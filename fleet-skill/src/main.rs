//! The `fleet` CLI: placeholder until the skill issue lands; it only names itself.
fn main() {
    eprintln!("fleet: not built yet (see the fleet skill issue)");
    std::process::exit(2);
}
