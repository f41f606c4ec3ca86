//! Every backend operation against an in-process stand-in for Google's APIs (behaviour only;
//! tests/contract.rs additionally checks the recorded traffic against Google's schemas).

mod common;

use common::{flows, FakeGoogle};

#[tokio::test]
async fn pipelines() {
    flows::pipeline_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn registry() {
    flows::registry_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn endpoints() {
    flows::endpoints_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn vertex_endpoint_deploys() {
    flows::vertex_deploy_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn cloud_run() {
    flows::deploy_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn scheduler() {
    flows::scheduler_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn artifacts() {
    flows::artifact_flow(&FakeGoogle::start().await).await;
}

#[tokio::test]
async fn pipeline_logs() {
    flows::logs_flow(&FakeGoogle::start().await).await;
}
