//! The subset of TFDV's `DatasetFeatureStatisticsList` (tensorflow_metadata/proto/v0/
//! statistics.proto) that the summaries read, as prost messages. Field numbers and types are
//! the proto's (checked against the descriptors of the tensorflow_metadata package in the
//! managed env); fields not declared here are skipped by the decoder, as protobuf requires.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct DatasetFeatureStatisticsList {
    #[prost(message, repeated, tag = "1")]
    pub datasets: Vec<DatasetFeatureStatistics>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DatasetFeatureStatistics {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub num_examples: u64,
    #[prost(double, tag = "4")]
    pub weighted_num_examples: f64,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureNameStatistics>,
}

/// `FeatureNameStatistics.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FeatureType {
    Int = 0,
    Float = 1,
    String = 2,
    Bytes = 3,
    Struct = 4,
}

#[derive(Clone, PartialEq, Message)]
pub struct FeatureNameStatistics {
    /// `name` (1) and `path` (8) are a oneof `field_id`; TFDV writes `path`.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "8")]
    pub path: Option<Path>,
    #[prost(enumeration = "FeatureType", tag = "2")]
    pub r#type: i32,
    #[prost(message, optional, tag = "3")]
    pub num_stats: Option<NumericStatistics>,
    #[prost(message, optional, tag = "4")]
    pub string_stats: Option<StringStatistics>,
    #[prost(message, optional, tag = "5")]
    pub bytes_stats: Option<BytesStatistics>,
    #[prost(message, optional, tag = "7")]
    pub struct_stats: Option<StructStatistics>,
}

impl FeatureNameStatistics {
    /// The feature's name: `name`, else the path's steps joined with '.'.
    pub fn feature_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        self.path
            .as_ref()
            .map(|p| p.step.join("."))
            .unwrap_or_default()
    }

    /// The common statistics of whichever stats the feature has.
    pub fn common(&self) -> Option<&CommonStatistics> {
        if let Some(n) = &self.num_stats {
            return n.common_stats.as_ref();
        }
        if let Some(s) = &self.string_stats {
            return s.common_stats.as_ref();
        }
        if let Some(b) = &self.bytes_stats {
            return b.common_stats.as_ref();
        }
        self.struct_stats.as_ref()?.common_stats.as_ref()
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Path {
    #[prost(string, repeated, tag = "1")]
    pub step: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CommonStatistics {
    #[prost(uint64, tag = "1")]
    pub num_non_missing: u64,
    #[prost(uint64, tag = "2")]
    pub num_missing: u64,
    #[prost(uint64, tag = "3")]
    pub min_num_values: u64,
    #[prost(uint64, tag = "4")]
    pub max_num_values: u64,
    #[prost(float, tag = "5")]
    pub avg_num_values: f32,
    #[prost(uint64, tag = "8")]
    pub tot_num_values: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct NumericStatistics {
    #[prost(message, optional, tag = "1")]
    pub common_stats: Option<CommonStatistics>,
    #[prost(double, tag = "2")]
    pub mean: f64,
    #[prost(double, tag = "3")]
    pub std_dev: f64,
    #[prost(uint64, tag = "4")]
    pub num_zeros: u64,
    #[prost(double, tag = "5")]
    pub min: f64,
    #[prost(double, tag = "6")]
    pub median: f64,
    #[prost(double, tag = "7")]
    pub max: f64,
    #[prost(message, repeated, tag = "8")]
    pub histograms: Vec<Histogram>,
}

/// `Histogram.HistogramType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HistogramType {
    Standard = 0,
    Quantiles = 1,
}

#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub num_nan: u64,
    #[prost(uint64, tag = "2")]
    pub num_undefined: u64,
    #[prost(message, repeated, tag = "3")]
    pub buckets: Vec<Bucket>,
    #[prost(enumeration = "HistogramType", tag = "4")]
    pub r#type: i32,
    #[prost(string, tag = "5")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(double, tag = "1")]
    pub low_value: f64,
    #[prost(double, tag = "2")]
    pub high_value: f64,
    #[prost(double, tag = "4")]
    pub sample_count: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStatistics {
    #[prost(message, optional, tag = "1")]
    pub common_stats: Option<CommonStatistics>,
    #[prost(uint64, tag = "2")]
    pub unique: u64,
    #[prost(message, repeated, tag = "3")]
    pub top_values: Vec<FreqAndValue>,
    #[prost(float, tag = "4")]
    pub avg_length: f32,
}

#[derive(Clone, PartialEq, Message)]
pub struct FreqAndValue {
    #[prost(string, tag = "2")]
    pub value: String,
    #[prost(double, tag = "3")]
    pub frequency: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct BytesStatistics {
    #[prost(message, optional, tag = "1")]
    pub common_stats: Option<CommonStatistics>,
    #[prost(uint64, tag = "2")]
    pub unique: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StructStatistics {
    #[prost(message, optional, tag = "1")]
    pub common_stats: Option<CommonStatistics>,
}
