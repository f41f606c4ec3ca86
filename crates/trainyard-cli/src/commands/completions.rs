//! `trainyard completions SHELL`: a completion script for bash, zsh, fish, elvish or
//! PowerShell, generated from the command tree itself so it never lags behind it.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliError;

/// Writes the script for `shell` to `out`.
pub fn generate(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "trainyard", out);
}

/// Prints the script; a closed pipe (`| head`) is not an error.
pub fn print(shell: Shell) -> Result<(), CliError> {
    // Rendered into memory first: clap_complete panics on a failed write.
    let mut buf = Vec::new();
    generate(shell, &mut buf);
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &buf) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Failed(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut buf = Vec::new();
        generate(shell, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn scripts_name_the_binary_and_its_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(shell);
            assert!(s.contains("trainyard"), "{shell}");
            for sub in ["runs", "schedule", "report", "completions"] {
                assert!(s.contains(sub), "{shell} script lacks {sub}");
            }
        }
        assert!(script(Shell::Bash).contains("complete -F"));
        assert!(script(Shell::Zsh).starts_with("#compdef trainyard"));
        assert!(script(Shell::Fish).contains("complete -c trainyard"));
    }
}
