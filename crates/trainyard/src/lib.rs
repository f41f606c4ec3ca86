//! trainyard: the facade crate.
//!
//! Owns the services users call — [`TrainingService`], [`RegistryService`],
//! [`ScheduleService`], [`DeploymentService`], [`insights::InsightsService`] — and the [`Platform`] that
//! wires them to backends
//! picked from a project's `trainyard.toml`. Re-exports the domain types of `trainyard-core`.

pub mod codegen;
mod control;
mod deployments;
#[cfg(feature = "http")]
pub mod http;
pub mod insights;
pub mod lifecycle;
mod listing;
mod pipelines;
mod platform;
mod records;
mod registry;
mod schedules;
mod training;

pub use codegen::{generate_modules, CodegenInputs, GenerateError};
pub use control::{
    ControlPlane, ControlPlaneConfig, ControlPlaneHandle, PassReport, Until, SERVER_LEASE_PREFIX,
};
pub use deployments::{
    DeployOptions, DeploymentService, DeploymentView, EndpointView, ServingImages,
    REGISTERED_MODEL_ARTIFACT,
};
pub use lifecycle::Lifecycle;
pub use listing::{
    Page, PageRequest, Pagination, ScheduleFilter, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
pub use pipelines::{
    compile_to, handle_of, managed_python, mlflow_tracking_uri, project_python, CompileOptions,
    CompileOutput, CompileTarget, RunCompiler, Target, VertexSettings, WheelUploadingExecutor,
    MLFLOW_TRACKING_URI_ENV, PYTHON_ENV, WHEEL_FILE_PREFIX,
};
pub use platform::{
    ApiToken, ApiTokenSource, Backend, LocalSection, Platform, ProjectConfig, ServerSection,
    API_TOKEN_ENV, API_TOKEN_FILE, CONFIG_FILE, STORE_URL_ENV,
};
pub use registry::{
    registration_labels, ModelFilter, ModelListing, ModelPage, ModelSummary, ModelVersion,
    RegistryKpi, RegistryService,
};
pub use schedules::{
    NewSchedule, RunScheduleSync, ScheduleEdit, SchedulePreview, ScheduleService, WizardSchedule,
};
pub use training::{Launch, RunConfigView, TrainingService};
pub use trainyard_core as core;
pub use trainyard_core::{Error, Result};
