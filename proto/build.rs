//! Compiles `proto/landfall/v1/*.proto` with protox (pure Rust), so no protoc binary is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/landfall/v1/agent.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
