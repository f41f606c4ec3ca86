//! Generates the gRPC server for TF Serving's PredictionService and ModelService from the
//! proto subset in proto/ (tonic + prost), with the protoc binary vendored by
//! protoc-bin-vendored, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let well_known = protoc_bin_vendored::include_path()?;
    println!("cargo:rerun-if-changed=proto");
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_protos(
            &[
                "proto/tensorflow_serving/apis/prediction_service.proto",
                "proto/tensorflow_serving/apis/model_service.proto",
                "proto/tensorflow_serving/apis/prediction_log.proto",
            ],
            &[std::path::PathBuf::from("proto"), well_known],
        )?;
    Ok(())
}
