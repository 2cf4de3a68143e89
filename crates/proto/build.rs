//! Compiles the .proto files with protox (pure Rust), so building Xtreem needs
//! no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/xtreem/fabric/v1/fabric.proto",
        "proto/xtreem/vo/v1/vo.proto",
        "proto/xtreem/directory/v1/directory.proto",
        "proto/xtreem/jobs/v1/jobs.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
