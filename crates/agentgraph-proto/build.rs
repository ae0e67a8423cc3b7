//! Compiles the Hubble-compatible `.proto` files in the workspace's `proto/` with protox (no system
//! protoc needed) and generates prost messages plus tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files = ["flow/flow.proto", "relay/relay.proto", "observer/observer.proto", "peer/peer.proto"];
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
