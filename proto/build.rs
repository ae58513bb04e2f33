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
        // The messages double as the JSON data model (`inventory --json`).
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".", "#[serde(default)]")
        .compile_fds(fds)?;
    Ok(())
}
