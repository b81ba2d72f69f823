//! Man pages and shell completions for the three binaries, generated from their clap commands
//! so they never drift from `--help`. Each binary has a hidden `manual --out DIR` command that
//! calls [`write()`]; the packages run it at build time and install what it writes
//! (`man/*.1` into `/usr/share/man/man1`, `completions/` into bash's, zsh's and fish's
//! vendor folders).

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes `man/<bin>.1`, one `man/<bin>-<command>.1` per subcommand (as git does), and
/// `completions/<bin>.bash`, `completions/_<bin>` (zsh) and `completions/<bin>.fish` under
/// `out`. Returns the files written.
pub fn write(mut command: clap::Command, out: &Path) -> io::Result<Vec<PathBuf>> {
    command.build();
    let name = command.get_name().to_owned();
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut written = Vec::new();

    let source = format!("{name} {}", command.get_version().unwrap_or_default());
    written.push(man_page(&command, &name, &source, &man)?);
    // `help` is clap's own; it needs no page of its own.
    let documented = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help");
    for sub in documented {
        let page = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().display_name(page.clone());
        written.push(man_page(&sub, &page, &source, &man)?);
    }

    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut command, name.clone(), &mut bytes);
        let path = completions.join(file);
        std::fs::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

fn man_page(command: &clap::Command, page: &str, source: &str, dir: &Path) -> io::Result<PathBuf> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(page.to_uppercase())
        .section("1")
        .source(source.to_owned())
        .manual("skolebro")
        .render(&mut bytes)?;
    let path = dir.join(format!("{page}.1"));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    /// A small tool with the shapes the real binaries have.
    #[derive(Parser)]
    #[command(
        name = "skolebro-example",
        version = "1.2.3",
        about = "An example tool"
    )]
    struct Example {
        #[command(subcommand)]
        command: Commands,
    }

    #[derive(Subcommand)]
    enum Commands {
        /// Reads an export and says what is wrong with it.
        Check {
            /// The export file.
            export: PathBuf,
            /// Print JSON.
            #[arg(long)]
            json: bool,
        },
        /// Never shown to users.
        #[command(hide = true)]
        Manual,
    }

    #[test]
    fn every_visible_command_gets_a_page_and_every_shell_a_completion() {
        use clap::CommandFactory;
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write(Example::command(), dir.path()).expect("written");
        let names: Vec<String> = written
            .iter()
            .map(|path| {
                path.strip_prefix(dir.path())
                    .expect("under out")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "man/skolebro-example.1",
                "man/skolebro-example-check.1",
                "completions/skolebro-example.bash",
                "completions/_skolebro-example",
                "completions/skolebro-example.fish",
            ]
        );
        let page =
            std::fs::read_to_string(dir.path().join("man/skolebro-example-check.1")).expect("page");
        assert!(page.starts_with(".ie"), "roff: {page}");
        assert!(
            page.contains(".TH SKOLEBRO-EXAMPLE-CHECK 1  \"skolebro-example 1.2.3\" skolebro"),
            "{page}"
        );
        assert!(
            page.contains("skolebro\\-example\\-check \\- Reads"),
            "{page}"
        );
        assert!(page.contains("says what is wrong with it"), "{page}");
        assert!(page.contains("\\-\\-json"), "{page}");
        let bash = std::fs::read_to_string(dir.path().join("completions/skolebro-example.bash"))
            .expect("bash");
        assert!(bash.contains("check"), "{bash}");
        let fish = std::fs::read_to_string(dir.path().join("completions/skolebro-example.fish"))
            .expect("fish");
        assert!(fish.contains("says what is wrong with it"), "{fish}");
    }
}
