//! Builds (or finds still valid) the shared trained project and prints where it is, so that
//! `make test` can build it in the background, outside cargo, while other suites run.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let project = testkit::shared::trained_project().await;
    println!("{}", project.root.display());
}
