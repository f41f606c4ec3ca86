//! Which interpreter `trainyard doctor` examines: TRAINYARD_PYTHON, else the project's
//! `[local] python`. This test sets the process environment, so it is alone in its file.

use trainyard::{project_python, Platform, CONFIG_FILE};

#[tokio::test]
async fn doctor_reads_the_projects_local_python_unless_the_environment_names_one() {
    std::env::remove_var("TRAINYARD_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    Platform::init(dir.path()).await.unwrap();
    let toml = dir.path().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&toml).unwrap();
    let mut text = text;
    assert!(!text.contains("python ="), "{text}");
    text = text.replacen(
        "[local]\n",
        "[local]\npython = \"/opt/envs/tf/bin/python\"\n",
        1,
    );
    std::fs::write(&toml, text).unwrap();
    assert_eq!(
        project_python(dir.path()),
        std::path::Path::new("/opt/envs/tf/bin/python")
    );

    std::env::set_var("TRAINYARD_PYTHON", "/elsewhere/bin/python");
    assert_eq!(
        project_python(dir.path()),
        std::path::Path::new("/elsewhere/bin/python")
    );
    std::env::remove_var("TRAINYARD_PYTHON");
}
