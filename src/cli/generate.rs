//! `issuance-watcher generate completions|man DIR` (hidden): the shell
//! completions and man pages, written from the clap definitions themselves, so
//! they can never describe another version's options. The `.deb` ships them
//! (`.ci/run` and the README's packaging steps run this before `cargo deb`).
//!
//! Files written (names are the ones each shell and `man` look up):
//! - completions: `issuance-watcher.bash` (install as
//!   `/usr/share/bash-completion/completions/issuance-watcher`),
//!   `_issuance-watcher` (zsh) and `issuance-watcher.fish`;
//! - man: `issuance-watcher.1` and one `issuance-watcher-COMMAND.1` per visible
//!   command (`man issuance-watcher-status`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap_complete::Shell;

/// What to generate.
#[derive(Debug, clap::Subcommand)]
pub enum Generate {
    /// Shell completions for bash, zsh and fish, into DIR.
    Completions {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Man pages (section 1), into DIR.
    Man {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
}

/// The shells we write completions for.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes what `what` asks for from `cmd` (the whole command line's
/// definition) and returns the files written, for the caller to list.
pub fn run(what: &Generate, mut cmd: clap::Command) -> anyhow::Result<Vec<PathBuf>> {
    let bin = cmd.get_name().to_owned();
    match what {
        Generate::Completions { dir } => {
            create(dir)?;
            SHELLS
                .iter()
                .map(|shell| {
                    clap_complete::generate_to(*shell, &mut cmd, &bin, dir).with_context(|| {
                        format!("while writing {shell} completions into {}", dir.display())
                    })
                })
                .collect()
        }
        Generate::Man { dir } => {
            create(dir)?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("while writing man pages into {}", dir.display()))?;
            let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("while listing {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "1"))
                .collect();
            pages.sort();
            Ok(pages)
        }
    }
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("issuance-watcher")
            .version("1.2.3")
            .about("Watches")
            .subcommand(clap::Command::new("run").about("Runs"))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    /// The last path component of each written file, in order.
    fn file_names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn completions_for_three_shells_name_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let files = run(
            &Generate::Completions {
                dir: dir.path().into(),
            },
            cmd(),
        )
        .unwrap();
        let names = file_names(&files);
        assert_eq!(
            names,
            [
                "issuance-watcher.bash",
                "_issuance-watcher",
                "issuance-watcher.fish"
            ]
        );
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains("run"), "{}: no `run` in it", file.display());
        }
    }

    #[test]
    fn man_pages_for_the_command_and_each_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = run(
            &Generate::Man {
                dir: dir.path().join("man1"),
            },
            cmd(),
        )
        .unwrap();
        let names = file_names(&pages);
        assert_eq!(names, ["issuance-watcher-run.1", "issuance-watcher.1"]);
        let main = std::fs::read_to_string(&pages[1]).unwrap();
        assert!(main.contains(".TH issuance-watcher 1"), "{main}");
        assert!(main.contains("1.2.3"), "the version is on the page");
    }
}
