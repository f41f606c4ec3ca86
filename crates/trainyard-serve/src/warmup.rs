//! TF Serving's warm-up: before a version is reported AVAILABLE, the requests in
//! `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord file of PredictionLog
//! protos, as TF Serving reads them) are run once, so the first real requests do not pay for
//! TensorFlow's lazy initialization. Only predict logs are replayed; others are skipped.

use std::path::Path;

use prost::Message as _;

use crate::error::{Result, ServeError};
use crate::grpc::batch_from_protos;
use crate::grpc::pb::tensorflow::serving::{prediction_log, PredictionLog};
use crate::servable::Servable;

/// Where TF Serving looks for warm-up requests, relative to the version folder.
pub const WARMUP_FILE: &str = "assets.extra/tf_serving_warmup_requests";
/// TF Serving's cap on warm-up records.
pub const MAX_WARMUP_RECORDS: usize = 1000;

/// The records of a TFRecord file (length-prefixed; the CRCs are not checked, a truncated
/// file is an error).
pub fn tfrecords(bytes: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes
            .get(at..at + 12)
            .ok_or_else(|| format!("truncated record header at byte {at}"))?;
        let len = u64::from_le_bytes(header[..8].try_into().expect("8 bytes")) as usize;
        let start = at + 12;
        let data = bytes
            .get(start..start.saturating_add(len))
            .ok_or_else(|| format!("truncated record of {len} bytes at byte {at}"))?;
        if bytes.len() < start + len + 4 {
            return Err(format!("truncated record footer at byte {}", start + len));
        }
        out.push(data);
        at = start + len + 4;
    }
    Ok(out)
}

/// Runs the warm-up requests found under `version_dir` on `servable`'s model (a failing one
/// fails the load, as in TF Serving). Returns how many ran; 0 when there is no file.
pub fn replay(servable: &Servable, version_dir: &Path) -> Result<usize> {
    let path = version_dir.join(WARMUP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(ServeError::Io { path, source }),
    };
    let bad = |m: String| ServeError::Server(format!("warm-up file {}: {m}", path.display()));
    let records = tfrecords(&bytes).map_err(bad)?;
    if records.len() > MAX_WARMUP_RECORDS {
        return Err(bad(format!(
            "{} records, more than the {MAX_WARMUP_RECORDS} allowed",
            records.len()
        )));
    }
    let mut ran = 0;
    for (i, rec) in records.iter().enumerate() {
        let log = PredictionLog::decode(*rec).map_err(|e| bad(format!("record {i}: {e}")))?;
        let Some(prediction_log::LogType::PredictLog(p)) = log.log_type else {
            continue;
        };
        let req = p.request.unwrap_or_default();
        let sig_name = req
            .model_spec
            .as_ref()
            .map(|s| s.signature_name.as_str())
            .unwrap_or_default();
        let sig = servable
            .signature(sig_name)
            .map_err(|e| bad(format!("record {i}: {e}")))?;
        let batch =
            batch_from_protos(sig, &req.inputs).map_err(|e| bad(format!("record {i}: {e}")))?;
        servable
            .model
            .run_signature(&batch.signature, &batch.columns)
            .map_err(|e| bad(format!("record {i}: {e}")))?;
        ran += 1;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        out.extend([0; 4]);
        out.extend(data);
        out.extend([0; 4]);
        out
    }

    #[test]
    fn tfrecord_frames_split_and_truncation_is_an_error() {
        let mut file = frame(b"abc");
        file.extend(frame(b""));
        file.extend(frame(b"hello"));
        assert_eq!(
            tfrecords(&file).unwrap(),
            vec![&b"abc"[..], &b""[..], &b"hello"[..]]
        );
        assert!(tfrecords(&file[..file.len() - 1]).is_err());
        assert!(tfrecords(&file[..5]).is_err());
        assert!(tfrecords(&[]).unwrap().is_empty());
    }
}
