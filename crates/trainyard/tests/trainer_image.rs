//! trainyard's trainer image (deploy/trainer/) against its one source of truth, python-env/.
//!
//! No Docker here, so the Dockerfile is checked statically: it builds on the pinned TFX image
//! (the version the compiled IR claims and python-env pins), copies files that exist (and that
//! the dockerignore lets through), installs python-env's requirement and constraint files with
//! the same pip arguments as python-env/install.sh (every constraints file, no pin of its own),
//! and puts the very evaluator and split executor trainyard-pipeline ships on the import path;
//! cloudbuild.yaml pushes both variants where `[gcp.images]` points by default.
//!
//! The managed env (.venv-tf) is built by install.sh from the same files; the ignored test
//! proves that link (its stamp is the hash of exactly these files, and it holds nothing but
//! their pins), then imports trainyard's evaluator, its split executor and generated
//! transform and trainer modules there: what resolves there resolves in the image. Run by
//! `make test-trainer-image` (mk/trainer-image.mk).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trainyard::core::config::GpuConfig;
use trainyard::core::model_config::{ModelConfig, ModelType, RetrievalAlgorithm};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::{RunCompiler, VertexSettings};
use trainyard_gcp::config::{default_trainer_image, TRAINING_REPOSITORY};
use trainyard_pipeline::{
    DEFAULT_TFX_IMAGE, EVALUATOR_MODULE, EVALUATOR_SOURCE, SPLIT_MODULE, SPLIT_SOURCE, TFX_VERSION,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Logical Dockerfile instructions: continuations joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
        out.push((op.to_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

/// COPY instructions: (sources, destination).
fn copies(ins: &[(String, String)]) -> Vec<(Vec<String>, String)> {
    ins.iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, rest)| {
            let mut parts: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            assert!(
                !parts[0].starts_with("--"),
                "COPY flags are not expected: {rest}"
            );
            let dest = parts.pop().unwrap();
            (parts, dest)
        })
        .collect()
}

/// The `-r`/`-c` arguments of a `pip install -r ...` command, as file names.
fn pip_files(command: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
    let install = words
        .iter()
        .position(|w| *w == "install")
        .unwrap_or_else(|| panic!("no `pip install` in {command}"));
    let start = install
        + words[install..]
            .iter()
            .position(|w| *w == "-r")
            .unwrap_or_else(|| panic!("no `pip install ... -r` in {command}"));
    words[start..]
        .chunks(2)
        .take_while(|c| c.len() == 2 && (c[0] == "-r" || c[0] == "-c"))
        .map(|c| {
            let file = c[1].trim_matches('"');
            let name = file.rsplit('/').next().unwrap().to_string();
            (c[0].to_string(), name)
        })
        .collect()
}

fn python_env_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("python-env"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n == "requirements.txt" || (n.starts_with("constraints") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_dockerfile_installs_exactly_python_envs_pins_on_the_pinned_tfx_image() {
    let docker = read("deploy/trainer/Dockerfile");
    let ins = instructions(&docker);

    // the pinned base: the TFX version the IR claims and python-env pins
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        froms,
        [DEFAULT_TFX_IMAGE],
        "one stage, on the pinned TFX image"
    );
    assert!(DEFAULT_TFX_IMAGE.ends_with(&format!(":{TFX_VERSION}")));
    let requirements = read("python-env/requirements.txt");
    assert!(
        requirements
            .lines()
            .any(|l| l.trim() == format!("tfx[kfp]=={TFX_VERSION}")),
        "python-env pins the TFX of the base image"
    );

    // every COPY source exists and gets through the dockerignore
    let ignore = read("deploy/trainer/Dockerfile.dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "context: only what is listed"
    );
    let copies = copies(&ins);
    for (sources, _) in &copies {
        for s in sources {
            assert!(repo().join(s).is_file(), "COPY {s}: no such file");
            assert!(
                allowed.contains(&s.as_str()),
                "{s} is excluded by the dockerignore"
            );
        }
    }

    // python-env: every requirement and constraints file, into one directory ...
    let (env_sources, env_dest) = copies
        .iter()
        .find(|(s, _)| s.iter().any(|f| f.starts_with("python-env/")))
        .expect("the image copies python-env's files");
    let mut copied: Vec<String> = env_sources
        .iter()
        .map(|s| {
            s.strip_prefix("python-env/")
                .expect("only python-env files")
                .to_string()
        })
        .collect();
    copied.sort();
    assert_eq!(copied, python_env_files(), "every pin file of python-env");

    // ... installed there with install.sh's pip arguments, then checked like install.sh does
    let runs: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, r)| r)
        .collect();
    let install = runs
        .iter()
        .find(|r| r.contains("pip install -r"))
        .expect("a RUN installs python-env's requirements");
    assert!(
        install.contains(&format!("cd {}", env_dest.trim_end_matches('/'))),
        "pip runs where the files were copied: {install}"
    );
    let script = read("python-env/install.sh");
    let script_install = script
        .lines()
        .skip_while(|l| !l.contains("pip install") || !l.contains("--disable-pip-version-check \\"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let ours = pip_files(install);
    assert_eq!(
        ours,
        pip_files(&script_install),
        "same files, same order as install.sh"
    );
    assert_eq!(
        ours.iter().filter(|(flag, _)| flag == "-c").count(),
        python_env_files().len() - 1,
        "every constraints file constrains the install"
    );
    assert!(install.contains("pip check") && script.contains("pip check"));

    // no second source of truth: no version pinned in the Dockerfile itself
    let body: String = ins
        .iter()
        .filter(|(op, _)| op != "FROM")
        .map(|(_, r)| r.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !body.contains("==2") && !body.contains("==1") && !body.contains("==0"),
        "a version pin in the Dockerfile: pins live in python-env/"
    );
    // the GPU variant: TensorFlow's own CUDA extra, at the TensorFlow python-env pins
    assert!(install.contains("sed -n 's/^tensorflow==//p' constraints.txt"));
    assert!(install.contains("\"tensorflow[and-cuda]==$tf_version\""));
    let constraints = read("python-env/constraints.txt");
    assert!(constraints.lines().any(|l| l.starts_with("tensorflow==")));

    // the Python the pins are for
    let py = script
        .lines()
        .find_map(|l| l.strip_prefix("PY_VERSION="))
        .expect("install.sh names its Python");
    let mut mm = py.split('.');
    let (major, minor) = (mm.next().unwrap(), mm.next().unwrap());
    assert!(
        install.contains(&format!("sys.version_info[:2] == ({major}, {minor})")),
        "the image asserts Python {major}.{minor}"
    );

    // trainyard's evaluator and split executor: the files trainyard-pipeline ships
    let (lib_sources, lib_dest) = copies
        .iter()
        .find(|(s, _)| s.iter().any(|f| f.ends_with(EVALUATOR_MODULE)))
        .expect("the image copies trainyard's evaluator");
    for (module, source) in [
        (EVALUATOR_MODULE, EVALUATOR_SOURCE),
        (SPLIT_MODULE, SPLIT_SOURCE),
    ] {
        let path = lib_sources
            .iter()
            .find(|s| s.ends_with(module))
            .unwrap_or_else(|| panic!("{module} is not copied"));
        assert_eq!(
            read(path),
            source,
            "{path} is the module trainyard-pipeline ships"
        );
    }
    assert!(
        runs.iter().any(
            |r| r.contains(&format!("echo {}", lib_dest.trim_end_matches('/')))
                && r.contains(".pth")
        ),
        "{lib_dest} is put on the import path"
    );
    assert!(runs
        .iter()
        .any(|r| r.contains("import trainyard_evaluator, trainyard_split")));
}

#[test]
fn cloudbuild_pushes_both_variants_where_the_config_defaults_point() {
    let yaml = read("deploy/trainer/cloudbuild.yaml");
    assert!(
        yaml.contains(&format!("_REPOSITORY: {TRAINING_REPOSITORY}")),
        "the default repository"
    );
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    let mut steps = Vec::new(); // (variant, dockerfile, tags)
    for (i, l) in lines.iter().enumerate() {
        if *l == "- build" {
            let args: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|a| a.starts_with("- ") && **a != "- .")
                .map(|a| a.trim_start_matches("- "))
                .collect();
            let after = |flag: &str| -> Vec<String> {
                args.windows(2)
                    .filter(|w| w[0] == flag)
                    .map(|w| w[1].to_string())
                    .collect()
            };
            steps.push((after("--build-arg"), after("-f"), after("-t")));
        }
    }
    assert_eq!(steps.len(), 2, "{steps:?}");
    for gpu in [false, true] {
        let variant = format!("VARIANT={}", if gpu { "gpu" } else { "cpu" });
        let (_, files, tags) = steps
            .iter()
            .find(|(args, _, _)| args.contains(&variant))
            .unwrap_or_else(|| panic!("no {variant} build"));
        assert_eq!(files, &["deploy/trainer/Dockerfile"]);
        let default = default_trainer_image("${_REGION}", "${PROJECT_ID}", gpu)
            .replace(TRAINING_REPOSITORY, "${_REPOSITORY}");
        assert!(
            tags.contains(&default),
            "{variant}: {tags:?} lacks {default}"
        );
        for t in tags {
            assert!(yaml.contains("images:\n") && lines.contains(&format!("- {t}").as_str()));
        }
    }
}

fn python() -> String {
    std::env::var("TRAINYARD_PYTHON")
        .expect("TRAINYARD_PYTHON must name the managed env's python (make pyenv)")
}

fn run_python(python: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .args(args)
        .env("TF_USE_LEGACY_KERAS", "1")
        .env("TF_CPP_MIN_LOG_LEVEL", "2")
        .env("CUDA_VISIBLE_DEVICES", "-1")
        .output()
        .expect("run the managed env's python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?} failed:\n{text}");
    text
}

fn run_with(model_type: ModelType, algorithm: RetrievalAlgorithm, gpu: bool) -> TrainingRun {
    let mut config = RunConfig {
        model_config: ModelConfig {
            model_type,
            retrieval_algorithm: algorithm,
            ..ModelConfig::default()
        },
        gpu_config: GpuConfig {
            gpu_enabled: gpu,
            training_region: Some("europe-west4".into()),
            ..GpuConfig::default()
        },
        ..RunConfig::default()
    };
    config.sampling_config.sample_percent = 50; // the wheel and image hold the split executor
    let mut run = TrainingRun::new(
        NewTrainingRun {
            ml_model: "shop".into(),
            name: "image-imports".into(),
            description: String::new(),
            config,
        },
        None,
        chrono::DateTime::UNIX_EPOCH,
    );
    run.id = 1;
    run
}

#[test]
#[ignore = "needs TRAINYARD_PYTHON (the managed env); run by make test-trainer-image"]
fn evaluator_split_and_generated_modules_import_with_exactly_the_images_requirements() {
    let python = python();
    let env_dir = Path::new(&python)
        .parent()
        .and_then(Path::parent)
        .expect("TRAINYARD_PYTHON is ENV/bin/python")
        .to_path_buf();

    // 1. The env was built from exactly python-env's files: install.sh's stamp over them.
    let version = run_python(
        &python,
        &["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
    );
    let mut hashed = Vec::new();
    hashed.extend(read("python-env/requirements.txt").into_bytes());
    for f in python_env_files()
        .iter()
        .filter(|f| f.starts_with("constraints"))
    {
        // the shell glob's order (constraints-lock.txt before constraints.txt)
        hashed.extend(read(&format!("python-env/{f}")).into_bytes());
    }
    hashed.extend(read("python-env/install.sh").into_bytes());
    hashed.extend(format!("python={}\n", version.trim()).into_bytes());
    let dir = tempfile::tempdir().unwrap();
    let stamp_input = dir.path().join("stamp-input");
    std::fs::write(&stamp_input, &hashed).unwrap();
    let sum = Command::new("sha256sum")
        .arg(&stamp_input)
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let stamp = std::fs::read_to_string(env_dir.join(".trainyard-env-stamp"))
        .expect("the env has install.sh's stamp (make pyenv)");
    assert_eq!(
        stamp.trim(),
        want,
        "{} was not built from python-env's current files: run `make pyenv`",
        env_dir.display()
    );

    // 2. It holds nothing but those pins: every installed distribution at its pinned version
    //    (pip itself is install.sh's own tool).
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    for f in python_env_files()
        .iter()
        .filter(|f| f.starts_with("constraints"))
    {
        for l in read(&format!("python-env/{f}")).lines() {
            if let Some((name, v)) = l.split('#').next().unwrap().trim().split_once("==") {
                pins.insert(
                    name.trim().to_lowercase().replace(['_', '.'], "-"),
                    v.trim().into(),
                );
            }
        }
    }
    let listed = run_python(
        &python,
        &[
            "-I",
            "-c",
            "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)",
        ],
    );
    let mut extra = Vec::new();
    for l in listed.lines() {
        let Some((name, v)) = l.rsplit_once(' ') else {
            continue;
        };
        let key = name.to_lowercase().replace(['_', '.'], "-");
        if key == "pip" {
            continue;
        }
        if pins.get(&key).map(String::as_str) != Some(v) {
            extra.push(format!("{name}=={v} (pinned: {:?})", pins.get(&key)));
        }
    }
    assert!(
        extra.is_empty(),
        "the env holds distributions python-env does not pin, so importing there proves \
         nothing about the image: {extra:?}"
    );

    // 3. The image's trainyard files and the user-code wheel's modules of real runs import.
    let image_lib = dir.path().join("image-lib");
    std::fs::create_dir_all(&image_lib).unwrap();
    let docker = read("deploy/trainer/Dockerfile");
    for (sources, _) in copies(&instructions(&docker)) {
        for s in sources.iter().filter(|s| s.ends_with(".py")) {
            std::fs::copy(
                repo().join(s),
                image_lib.join(s.rsplit('/').next().unwrap()),
            )
            .unwrap();
        }
    }
    let compiler = RunCompiler::vertex(VertexSettings {
        project: "p".into(),
        region: "europe-west4".into(),
        ..VertexSettings::default()
    });
    let mut wheel_dirs = Vec::new();
    for (i, (model_type, algorithm, gpu)) in [
        (ModelType::Retrieval, RetrievalAlgorithm::Scann, true),
        (ModelType::Retrieval, RetrievalAlgorithm::BruteForce, false),
        (ModelType::Ranking, RetrievalAlgorithm::BruteForce, false),
        (ModelType::Multitask, RetrievalAlgorithm::Scann, true),
    ]
    .into_iter()
    .enumerate()
    {
        let inputs = compiler
            .inputs(&run_with(model_type, algorithm, gpu), "gs://b/root")
            .unwrap();
        let wheel = dir.path().join(format!("wheel-{i}"));
        std::fs::create_dir_all(&wheel).unwrap();
        for (name, source) in inputs.all_modules() {
            if name == EVALUATOR_MODULE || name == SPLIT_MODULE {
                continue; // imported from the image's copy
            }
            let path = wheel.join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, source).unwrap();
        }
        wheel_dirs.push(wheel.display().to_string());
    }
    let script = r#"
import importlib.util, json, os, sys
image_lib, wheels = sys.argv[1], json.loads(sys.argv[2])
sys.path[:0] = [image_lib]
import trainyard_evaluator, trainyard_split
for m in (trainyard_evaluator, trainyard_split):
    assert os.path.dirname(m.__file__) == image_lib, m.__file__
import scann, tensorflow_recommenders  # the ScaNN serving layer's stack
for i, d in enumerate(wheels):
    sys.path.insert(1, d)
    for name in ("transform_module", "trainer_module"):
        spec = importlib.util.spec_from_file_location("%s_%d" % (name, i), os.path.join(d, name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    sys.path.remove(d)
    assert hasattr(sys.modules["trainer_module_%d" % i], "run_fn")
    assert hasattr(sys.modules["transform_module_%d" % i], "preprocessing_fn")
roots = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, image_lib, *wheels)]
outside = sorted({getattr(m, "__file__", None) for m in list(sys.modules.values())
                  if getattr(m, "__file__", None)
                  and not any(os.path.realpath(m.__file__).startswith(r) for r in roots)})
assert not outside, outside
print("IMPORTS_OK %d modules" % len(sys.modules))
"#;
    let out = run_python(
        &python,
        &[
            "-I",
            "-c",
            script,
            &image_lib.display().to_string(),
            &serde_json::to_string(&wheel_dirs).unwrap(),
        ],
    );
    assert!(out.contains("IMPORTS_OK"), "{out}");
}
