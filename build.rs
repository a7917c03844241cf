//! Rebuilds the service when a file under `web/` is added, changed or removed: the pages
//! are embedded into the binary (see `src/pages.rs`).

fn main() {
    println!("cargo:rerun-if-changed=web");
}
