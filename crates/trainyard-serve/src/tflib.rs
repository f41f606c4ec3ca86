//! Finding and loading the TensorFlow C API shipped in the pip wheel.
//!
//! The `tensorflow` crate (feature `tensorflow_runtime_linking`) dlopens `libtensorflow.so` from
//! `$TENSORFLOW_DIR`. The pip wheel ships the C API inside `libtensorflow_cc.so.2`, so we build a
//! shim folder of symlinks (`libtensorflow.so -> libtensorflow_cc.so.2`, plus
//! `libtensorflow_framework.so.2`, which libtensorflow_cc finds through `$ORIGIN` = the shim) in
//! a cache dir, and point the loader at it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::error::{Result, ServeError};

/// Environment variable naming a tensorflow package dir (…/site-packages/tensorflow).
pub const ENV_TF_LIB_DIR: &str = "TRAINYARD_TF_LIB_DIR";
/// Environment variable naming a Python interpreter that has tensorflow installed.
pub const ENV_PYTHON: &str = "TRAINYARD_PYTHON";
/// Used when neither is given and it exists (relative to the current dir).
pub const DEFAULT_PYTHON: &str = ".venv-tf/bin/python";

const TF_CC: &str = "libtensorflow_cc.so.2";
const TF_FRAMEWORK: &str = "libtensorflow_framework.so.2";
const SCANN_OPS: &str = "scann/scann_ops/cc/_scann_ops.so";

/// Where to look for TensorFlow; `None` fields fall back to the environment.
#[derive(Debug, Clone, Default)]
pub struct TfOptions {
    pub tf_lib_dir: Option<PathBuf>,
    pub python: Option<PathBuf>,
}

/// The TensorFlow the process has loaded.
#[derive(Debug, Clone)]
pub struct TfRuntime {
    /// The tensorflow package dir of the pip wheel.
    pub package_dir: PathBuf,
    /// The symlink folder the C API was loaded from.
    pub shim_dir: PathBuf,
    pub version: String,
}

impl TfRuntime {
    /// scann's op library in the same site-packages as tensorflow (it must match TF's minor).
    pub fn scann_ops_path(&self) -> PathBuf {
        self.package_dir
            .parent()
            .unwrap_or(Path::new("/"))
            .join(SCANN_OPS)
    }
}

static RUNTIME: OnceLock<TfRuntime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads the TensorFlow C API once per process; later calls return the loaded runtime (the
/// C API cannot be swapped once loaded, whatever options they pass).
pub fn init(opts: &TfOptions) -> Result<&'static TfRuntime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let package_dir = resolve_package_dir(opts)?;
    let shim_dir = ensure_shim(&package_dir, &cache_root())?;
    // The crate's loader reads TENSORFLOW_DIR; set under the init lock, before any TF thread.
    std::env::set_var("TENSORFLOW_DIR", &shim_dir);
    tensorflow::library::load().map_err(|reason| ServeError::TfLoad {
        path: shim_dir.join("libtensorflow.so"),
        reason,
    })?;
    let version = tensorflow::version().map_err(|e| ServeError::TfLoad {
        path: shim_dir.join("libtensorflow.so"),
        reason: format!("TF_Version failed: {e}"),
    })?;
    tracing::info!(package_dir = %package_dir.display(), %version, "loaded the TensorFlow C API");
    Ok(RUNTIME.get_or_init(|| TfRuntime {
        package_dir,
        shim_dir,
        version,
    }))
}

/// The runtime, if [`init`] has succeeded.
pub fn runtime() -> Option<&'static TfRuntime> {
    RUNTIME.get()
}

/// Resolution order: explicit dir, `TRAINYARD_TF_LIB_DIR`, then a Python (explicit,
/// `TRAINYARD_PYTHON`, or `.venv-tf/bin/python` if it exists) asked where tensorflow is.
pub fn resolve_package_dir(opts: &TfOptions) -> Result<PathBuf> {
    let env_dir = std::env::var_os(ENV_TF_LIB_DIR).filter(|v| !v.is_empty());
    if let Some(dir) = opts.tf_lib_dir.clone().or(env_dir.map(PathBuf::from)) {
        return check_package_dir(&dir, "the TensorFlow lib dir");
    }
    let env_py = std::env::var_os(ENV_PYTHON).filter(|v| !v.is_empty());
    let python = match opts.python.clone().or(env_py.map(PathBuf::from)) {
        Some(p) => p,
        None if Path::new(DEFAULT_PYTHON).exists() => PathBuf::from(DEFAULT_PYTHON),
        None => {
            return Err(ServeError::TfNotFound {
                reason: format!("no TensorFlow dir given and no {DEFAULT_PYTHON} here"),
            })
        }
    };
    let dir = python_tf_dir(&python)?;
    check_package_dir(
        &dir,
        &format!("the tensorflow package of {}", python.display()),
    )
}

/// Asks the interpreter where the tensorflow package is, without importing it (fast).
fn python_tf_dir(python: &Path) -> Result<PathBuf> {
    const PROBE: &str = "import importlib.util as u, os\n\
        s = u.find_spec('tensorflow')\n\
        print(os.path.dirname(s.origin) if s and s.origin else '')";
    let out = Command::new(python)
        .args(["-c", PROBE])
        .output()
        .map_err(|e| ServeError::TfNotFound {
            reason: format!("cannot run Python {}: {e}", python.display()),
        })?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        return Err(ServeError::TfNotFound {
            reason: format!(
                "Python {} has no tensorflow package ({})",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(PathBuf::from(dir))
}

fn check_package_dir(dir: &Path, what: &str) -> Result<PathBuf> {
    for lib in [TF_CC, TF_FRAMEWORK] {
        if !dir.join(lib).is_file() {
            return Err(ServeError::TfNotFound {
                reason: format!("{what} {} has no {lib}", dir.display()),
            });
        }
    }
    dir.canonicalize().map_err(|source| ServeError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// `$XDG_CACHE_HOME/trainyard`, else `~/.cache/trainyard`, else the temp dir.
fn cache_root() -> PathBuf {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v: &OsString| !v.is_empty());
    if let Some(x) = nonempty("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("trainyard");
    }
    if let Some(h) = nonempty("HOME") {
        return PathBuf::from(h).join(".cache").join("trainyard");
    }
    std::env::temp_dir().join("trainyard-cache")
}

/// The symlink shim for `package_dir` under `root`, created atomically (a temp folder renamed
/// into place, so concurrent processes never see a half-made shim). Reused while it points at
/// the same files; a stale one is replaced.
pub fn ensure_shim(package_dir: &Path, root: &Path) -> Result<PathBuf> {
    let hash = Sha256::digest(package_dir.as_os_str().as_encoded_bytes());
    let name: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = root.join(format!("tflib-{name}"));
    let links = [
        ("libtensorflow.so", package_dir.join(TF_CC)),
        (TF_FRAMEWORK, package_dir.join(TF_FRAMEWORK)),
        ("libtensorflow_framework.so", package_dir.join(TF_FRAMEWORK)),
    ];
    let valid = |d: &Path| {
        links
            .iter()
            .all(|(l, target)| std::fs::read_link(d.join(l)).ok().as_ref() == Some(target))
    };
    if valid(&dir) {
        return Ok(dir);
    }
    let shim_err = |source| ServeError::Shim {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(root).map_err(shim_err)?;
    let tmp = root.join(format!(
        ".tflib-{name}.tmp-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir(&tmp).map_err(shim_err)?;
    for (l, target) in &links {
        std::os::unix::fs::symlink(target, tmp.join(l)).map_err(shim_err)?;
    }
    if dir.exists() {
        // stale (the TF install moved): replace it; a racing process may do the same
        let _ = std::fs::remove_dir_all(&dir);
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if valid(&dir) => {
            // another process won the race with an equal shim
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(shim_err(e))
        }
    }
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Registers scann's op library with TensorFlow (TF_LoadLibrary), once per process.
pub fn load_scann_ops(rt: &TfRuntime) -> Result<()> {
    static LOADED: Mutex<bool> = Mutex::new(false);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if *loaded {
        return Ok(());
    }
    let path = rt.scann_ops_path();
    if !path.is_file() {
        return Err(ServeError::ScannOpsMissing { path });
    }
    let lib = tensorflow::Library::load(&path.to_string_lossy())
        .map_err(|e| ServeError::tf(format!("load the op library {}", path.display()), e))?;
    // The ops stay registered for the life of the process; the handle is not needed again.
    std::mem::forget(lib);
    *loaded = true;
    tracing::info!(path = %path.display(), "registered ScaNN's TensorFlow ops");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_links_to_the_wheel_libraries_and_is_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("site-packages/tensorflow");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(TF_CC), b"cc").unwrap();
        std::fs::write(pkg.join(TF_FRAMEWORK), b"fw").unwrap();
        let cache = tmp.path().join("cache");
        let shim = ensure_shim(&pkg, &cache).unwrap();
        assert_eq!(
            std::fs::read(shim.join("libtensorflow.so")).unwrap(),
            b"cc",
            "libtensorflow.so must resolve to libtensorflow_cc.so.2"
        );
        assert_eq!(std::fs::read(shim.join(TF_FRAMEWORK)).unwrap(), b"fw");
        assert_eq!(ensure_shim(&pkg, &cache).unwrap(), shim);
        // a stale shim (pointing elsewhere) is rebuilt
        std::fs::remove_file(shim.join("libtensorflow.so")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", shim.join("libtensorflow.so")).unwrap();
        let again = ensure_shim(&pkg, &cache).unwrap();
        assert_eq!(
            std::fs::read(again.join("libtensorflow.so")).unwrap(),
            b"cc"
        );
        // no temp folders left behind
        let names: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_dir_without_the_wheel_libraries_is_a_typed_error_naming_the_env_vars() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_package_dir(&TfOptions {
            tf_lib_dir: Some(tmp.path().to_path_buf()),
            python: None,
        })
        .unwrap_err();
        assert!(matches!(err, ServeError::TfNotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("TRAINYARD_TF_LIB_DIR") && msg.contains(TF_CC),
            "{msg}"
        );
    }

    #[test]
    fn a_python_without_tensorflow_is_a_typed_error() {
        let err = resolve_package_dir(&TfOptions {
            tf_lib_dir: None,
            python: Some(PathBuf::from("/nonexistent/python3")),
        })
        .unwrap_err();
        assert!(matches!(err, ServeError::TfNotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("TRAINYARD_PYTHON"));
    }
}
