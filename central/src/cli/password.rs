//! Reads an operator's new password for `add-user` and `reset-password`: asked for twice
//! without echo when stdin is a terminal, so it is neither shown nor left on the screen;
//! the first line of stdin otherwise, so scripts and provisioning tools can pipe it in.

use std::io::{BufRead as _, Write as _};

use rustix::termios::{self, LocalModes, OptionalActions, Termios};

/// Why no password was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasswordError {
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the password: stdin ended before a line")]
    Empty,
    #[error("the two passwords differ; nothing was changed")]
    Mismatch,
}

/// The password, without its line ending. `prompt` names whose password it is.
pub(crate) fn read(prompt: &str) -> Result<String, PasswordError> {
    let stdin = std::io::stdin();
    if !termios::isatty(&stdin) {
        return read_line();
    }
    let first = read_hidden(&format!("{prompt}: "))?;
    let again = read_hidden("Again: ")?;
    if first != again {
        return Err(PasswordError::Mismatch);
    }
    Ok(first)
}

fn read_line() -> Result<String, PasswordError> {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Err(PasswordError::Empty);
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Prints `prompt` on stderr and reads a line from the terminal with echo off (the newline
/// still echoes, so the next output starts on its own line).
fn read_hidden(prompt: &str) -> Result<String, PasswordError> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo off before the prompt shows: whoever sees the prompt may type at once.
    termios::tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(std::io::Error::from)?;
    let restore = Restore(saved);
    let mut stderr = std::io::stderr();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let line = read_line();
    drop(restore);
    line
}

/// Puts the terminal's echo back however reading ended.
struct Restore(Termios);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}
