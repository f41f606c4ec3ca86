//! Running the managed Python: static checks of generated modules and `doctor`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::CodegenError;

/// The result of the static checks of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    /// `python -m py_compile` passed.
    pub compiles: bool,
    /// `python -m pyflakes` reported nothing (undefined names, unused imports, ...).
    pub lint_clean: bool,
    /// `python -m ruff format --check` would leave the file as it is ([`RUFF_FORMAT_ARGS`]).
    pub formatted: bool,
    /// What the failing tools printed.
    pub messages: String,
}

/// The static checks of a directory of modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub files: Vec<FileCheck>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.files.iter().all(FileCheck::passed)
    }
}

impl FileCheck {
    pub fn passed(&self) -> bool {
        self.compiles && self.lint_clean && self.formatted
    }
}

/// How generated modules are formatted: `ruff format` with these settings (the template's
/// 120-column style), checked by [`check_modules`].
pub const RUFF_FORMAT_ARGS: &[&str] = &["format", "--isolated", "--line-length", "120"];

fn run(python: &Path, args: &[&str]) -> Result<(bool, String), CodegenError> {
    let out = Command::new(python)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .map_err(|source| CodegenError::PythonUnavailable {
            python: python.to_path_buf(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn run_tool(python: &Path, tool: &[&str], files: &[&str]) -> Result<(bool, String), CodegenError> {
    let mut args = tool.to_vec();
    args.extend_from_slice(files);
    run(python, &args)
}

/// Compiles each file to memory only (no __pycache__ next to the modules); fails if any fails.
fn compile_check(python: &Path, files: &[&str]) -> Result<(bool, String), CodegenError> {
    run_tool(
        python,
        &[
            "-c",
            "import sys\nfor p in sys.argv[1:]:\n    compile(open(p).read(), p, 'exec')",
        ],
        files,
    )
}

/// `ruff format --check` with [`RUFF_FORMAT_ARGS`]; fails if any file would change.
fn ruff_check(python: &Path, files: &[&str]) -> Result<(bool, String), CodegenError> {
    let mut fmt = vec!["-m", "ruff"];
    fmt.extend_from_slice(RUFF_FORMAT_ARGS);
    fmt.extend_from_slice(&["--check", "--diff", "--no-cache"]);
    run_tool(python, &fmt, files)
}

/// Runs py_compile, pyflakes and `ruff format --check` (from `python`'s env) on every `*.py` in
/// `dir`. Returns the
/// report when everything passes, [`CodegenError::CheckFailed`] with the tools' messages when
/// anything fails.
pub fn check_modules(dir: &Path, python: &Path) -> Result<CheckReport, CodegenError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CodegenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(CodegenError::NothingToCheck(dir.to_path_buf()));
    }
    // pyflakes must be importable, or every file would "pass" a lint that never ran
    let (has_pyflakes, msg) = run(python, &["-c", "import pyflakes"])?;
    if !has_pyflakes {
        return Err(CodegenError::CheckFailed(format!(
            "pyflakes is not installed in {} (run `make pyenv`): {msg}",
            python.display()
        )));
    }
    // so must ruff, or no file would be held to the format
    let (has_ruff, msg) = run(python, &["-m", "ruff", "--version"])?;
    if !has_ruff {
        return Err(CodegenError::CheckFailed(format!(
            "ruff is not installed in {} (run `make pyenv`): {msg}",
            python.display()
        )));
    }
    // each tool once over all the files: when all pass, so does every file (the usual case);
    // otherwise each file is checked on its own, for its own messages
    let all: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let all_pass = {
        let (compiles, _) = compile_check(python, &all)?;
        compiles && run_tool(python, &["-m", "pyflakes"], &all)?.0 && ruff_check(python, &all)?.0
    };
    let mut files = Vec::new();
    for path in paths {
        if all_pass {
            files.push(FileCheck {
                path,
                compiles: true,
                lint_clean: true,
                formatted: true,
                messages: String::new(),
            });
            continue;
        }
        let p = path.to_string_lossy().into_owned();
        let (compiles, c_msg) = compile_check(python, &[&p])?;
        let (lint_clean, l_msg) = run_tool(python, &["-m", "pyflakes"], &[&p])?;
        let (formatted, f_msg) = ruff_check(python, &[&p])?;
        let mut messages = String::new();
        if !compiles {
            messages.push_str(&c_msg);
        }
        if !lint_clean {
            messages.push_str(&l_msg);
        }
        if !formatted {
            messages.push_str("not formatted as `ruff format` would (diff):\n");
            messages.push_str(&f_msg);
        }
        files.push(FileCheck {
            path,
            compiles,
            lint_clean,
            formatted,
            messages,
        });
    }
    let report = CheckReport { files };
    if report.passed() {
        Ok(report)
    } else {
        let text = report
            .files
            .iter()
            .filter(|f| !f.passed())
            .map(|f| format!("{}:\n{}", f.path.display(), f.messages.trim_end()))
            .collect::<Vec<_>>()
            .join("\n");
        Err(CodegenError::CheckFailed(text))
    }
}

/// One component of the Python ML runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// What `trainyard doctor` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    pub python: PathBuf,
    pub components: Vec<ComponentStatus>,
}

impl DoctorReport {
    pub fn ok(&self) -> bool {
        !self.components.is_empty() && self.components.iter().all(|c| c.error.is_none())
    }

    /// One line per component: `name version` or `name MISSING: why`.
    pub fn render(&self) -> String {
        let mut s = format!("python env: {}\n", self.python.display());
        for c in &self.components {
            match (&c.version, &c.error) {
                (_, Some(e)) => s.push_str(&format!("  {:<26} MISSING: {e}\n", c.name)),
                (Some(v), None) => s.push_str(&format!("  {:<26} {v}\n", c.name)),
                (None, None) => s.push_str(&format!("  {:<26} ok\n", c.name)),
            }
        }
        s
    }
}

const DOCTOR_SCRIPT: &str = r#"
import importlib, json, os, platform, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
out = [{"name": "python", "version": platform.python_version(), "error": None}]
mods = [("tensorflow", "tensorflow"), ("tf-keras", "tf_keras"),
        ("tensorflow-recommenders", "tensorflow_recommenders"),
        ("tensorflow-transform", "tensorflow_transform"), ("tfx", "tfx"),
        ("tfx-bsl", "tfx_bsl"), ("apache-beam", "apache_beam"), ("scann", "scann"),
        ("numpy", "numpy"), ("pyflakes", "pyflakes"), ("ruff", "ruff")]
for name, mod in mods:
    try:
        m = importlib.import_module(mod)
        v = getattr(m, "__version__", None)
        if v is None:
            from importlib import metadata
            v = metadata.version(name)
        out.append({"name": name, "version": str(v), "error": None})
    except Exception as e:
        out.append({"name": name, "version": None, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")})
try:
    import tensorflow as tf
    keras_mod = tf.keras.__name__
    err = None if keras_mod.startswith("tf_keras") else "tf.keras is %s, not tf_keras (Keras 2)" % keras_mod
    out.append({"name": "keras 2 (TF_USE_LEGACY_KERAS=1)", "version": keras_mod if err is None else None, "error": err})
    from scann.scann_ops.py import scann_ops  # noqa: F401  the TF op library ScaNN models need
    out.append({"name": "scann TF ops", "version": "loaded", "error": None})
except Exception as e:
    out.append({"name": "scann TF ops", "version": None, "error": "%s: %s" % (type(e).__name__, e)})
print("TRAINYARD_DOCTOR " + json.dumps(out))
"#;

/// Reports the version of each component of the Python ML runtime in `python`'s env, or why
/// it is missing. Errors only when `python` cannot be run at all.
pub fn doctor(python: &Path) -> Result<DoctorReport, CodegenError> {
    let (_, text) = run(python, &["-c", DOCTOR_SCRIPT])?;
    let components = text
        .lines()
        .find_map(|l| l.strip_prefix("TRAINYARD_DOCTOR "))
        .and_then(|j| serde_json::from_str::<Vec<ComponentStatus>>(j).ok())
        .unwrap_or_else(|| {
            vec![ComponentStatus {
                name: "python".into(),
                version: None,
                error: Some(format!(
                    "the doctor script did not run: {}",
                    text.lines().last().unwrap_or("no output")
                )),
            }]
        });
    Ok(DoctorReport {
        python: python.to_path_buf(),
        components,
    })
}

/// The interpreter to use: `$TRAINYARD_PYTHON`, else `<dir>/.venv-tf/bin/python` for `dir`
/// or its ancestors, else `python3`.
pub fn default_python(start: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("TRAINYARD_PYTHON") {
        return PathBuf::from(p);
    }
    for dir in start.ancestors() {
        let candidate = dir.join(".venv-tf/bin/python");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("python3")
}
