//! The one error type of the CLI and its exit classes: 0 success, 1 failure, 2 bad input (one
//! line on stderr), 130 interrupted, 141 closed stdout (see `main`).

use trainyard::Error;

/// A command's failure, by exit class.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, input files or requests the domain refuses: exit 2.
    BadInput(String),
    /// Anything else (storage, backends, IO): exit 1.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
        }
    }

    /// The first line of the message (stderr gets one line).
    pub fn message(&self) -> String {
        let (CliError::BadInput(m) | CliError::Failed(m)) = self;
        m.lines().next().unwrap_or_default().to_string()
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(_) | Error::Backend(_) => CliError::Failed(e.to_string()),
            _ => CliError::BadInput(e.to_string()),
        }
    }
}

impl From<trainyard_codegen::CodegenError> for CliError {
    fn from(e: trainyard_codegen::CodegenError) -> Self {
        Error::from(e).into()
    }
}
