//! Help texts (the examples under each command's `--help`), and what is
//! generated from the clap definition so it cannot drift from it: shell
//! completions (`gleaner completions SHELL`) and man pages (the hidden
//! `gleaner man`). `packaging/build-deb.sh` writes both into
//! `target/assets/` before `cargo deb` packs them.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory;

use super::Cli;

pub(super) const TOP_HELP: &str = "\
Quick start:
  gleaner init ~/news                          # starter config + directories
  $EDITOR ~/news/gleaner.toml                  # add a [[feed]] at the end
  gleaner check --config ~/news/gleaner.toml   # validate, print it resolved
  gleaner fetch --config ~/news/gleaner.toml   # one pass; stories in ~/news/articles/
  gleaner run --config ~/news/gleaner.toml     # keep polling (what the service runs)

`gleaner help COMMAND` shows a command's options and examples. Logs go to
stderr (warnings; `run` adds info); GLEANER_LOG=info or debug shows more; under
systemd each line carries its journal priority. Exit status: 0 done, 1 internal
error, 2 unusable config or directory (the message says what to fix).";

pub(super) const RUN_HELP: &str = "\
Examples:
  gleaner run --config ~/news/gleaner.toml
  GLEANER_LOG=debug gleaner run --config ~/news/gleaner.toml   # also every poll and 304
  systemctl reload gleaner      # the packaged service: re-read the config (SIGHUP)
  journalctl -u gleaner -f      # the packaged service's log";

pub(super) const STATUS_HELP: &str = "\
Examples:
  gleaner status --config /etc/gleaner/gleaner.toml
  gleaner status --config ~/news/gleaner.toml";

pub(super) const FETCH_HELP: &str = "\
Examples:
  gleaner fetch --config ~/news/gleaner.toml
  gleaner fetch --config config/demo.toml     # the bundled offline demo
  GLEANER_LOG=info gleaner fetch --config ~/news/gleaner.toml 2>fetch.log";

pub(super) const EXTRACT_HELP: &str = "\
Examples:
  gleaner extract page.html
  gleaner extract https://example.org/news/story.html
  gleaner extract --url https://example.org/news/story.html saved-page.html
  curl -s https://example.org/story | gleaner extract --url https://example.org/story -
  gleaner extract --out-dir texts/ pages/*.html.gz
  gleaner extract --out-dir texts/ a/index.html b/index.html   # index.txt, index-2.txt";

pub(super) const CHECK_HELP: &str = "\
Examples:
  gleaner check --config /etc/gleaner/gleaner.toml
  gleaner check --config ~/news/gleaner.toml";

pub(super) const INIT_HELP: &str = "\
Examples:
  gleaner init ~/news     # ~/news/gleaner.toml, ~/news/articles/, ~/news/state/
  gleaner init            # the same in the current directory";

pub(super) const COMPLETIONS_HELP: &str = "\
Examples:
  gleaner completions bash > ~/.local/share/bash-completion/completions/gleaner
  gleaner completions zsh > ~/.zfunc/_gleaner   # with fpath+=(~/.zfunc) before compinit
  gleaner completions fish > ~/.config/fish/completions/gleaner.fish
The Debian package installs all three.";

/// `gleaner completions SHELL`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    // clap_complete offers hidden commands too: complete a copy without them.
    let full = Cli::command();
    let mut cmd = clap::Command::new("gleaner")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gleaner", &mut buf);
    std::io::stdout().lock().write_all(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// `gleaner man [--out-dir DIR]`: gleaner.1 on stdout, or gleaner.1 plus
/// gleaner-<command>.1 for every visible command into DIR.
pub(super) fn man(out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = out_dir else {
        std::io::stdout().lock().write_all(&page(&cmd, None)?)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
        Ok(())
    };
    write("gleaner.1", &page(&cmd, None)?)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("gleaner-{}.1", sub.get_name());
        write(&name, &page(sub, Some(&cmd))?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One man page: clap_mangen's sections, then EXAMPLES from the command's
/// `after_help` as a no-fill block (clap_mangen would run its lines together),
/// and for the top page FILES, ENVIRONMENT and EXIT STATUS.
fn page(cmd: &clap::Command, parent: Option<&clap::Command>) -> anyhow::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("gleaner {}", env!("CARGO_PKG_VERSION")))
        .manual("gleaner manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        out.extend_from_slice(b".SH EXAMPLES\n.nf\n");
        for line in after.to_string().lines() {
            // The heading clap shows is the section's name here.
            if line.trim_end().ends_with(':') && !line.starts_with(' ') {
                continue;
            }
            out.extend_from_slice(roff_line(line).as_bytes());
        }
        out.extend_from_slice(b".fi\n");
    }
    if parent.is_none() {
        out.extend_from_slice(TOP_SECTIONS.as_bytes());
    }
    let mut see_also: Vec<String> = Vec::new();
    match parent {
        None => {
            for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                see_also.push(format!("gleaner-{}(1)", s.get_name()));
            }
            see_also.push("systemctl(1)".to_string());
        }
        Some(_) => see_also.push("gleaner(1)".to_string()),
    }
    out.extend_from_slice(format!(".SH SEE ALSO\n{}", roff_line(&see_also.join(", "))).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(dedupe_preamble(&out))
}

const TOP_SECTIONS: &str = r#".SH FILES
.TP
\fI/etc/gleaner/gleaner.toml\fR
The default configuration (\fB\-\-config\fR). Every key is listed with its
default in \fI/usr/share/doc/gleaner/gleaner.example.toml\fR; \fBgleaner init\fR
writes a starter copy anywhere.
.TP
\fI/var/lib/gleaner/\fR
The packaged service's StateDirectory: \fIarticles/\fR (output_dir) and
\fIstate/\fR (state_dir, the SQLite state store and its lock).
.TP
\fI/usr/lib/systemd/system/gleaner.service\fR
The systemd unit running \fBgleaner run\fR.
.SH ENVIRONMENT
.TP
\fBGLEANER_LOG\fR
Log filter for stderr: \fBwarn\fR (the default; \fBgleaner run\fR logs
\fBinfo\fR too), \fBinfo\fR, \fBdebug\fR, or per module, e.g.
\fBgleaner::fetch=debug\fR.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd. When it names stderr's device and inode, each log line
starts with its syslog priority (\fB<4>\fR for a warning) and carries no
timestamp: the journal records both.
.SH EXIT STATUS
.TP
\fB0\fR
Done (\fBfetch\fR: the pass completed; failing feeds are reported, not fatal).
.TP
\fB1\fR
Internal error, or (\fBextract\fR) no input could be extracted (when some
could, each failing input is named on stderr and the status is 0).
.TP
\fB2\fR
The config, a directory it names or the command line is unusable; the
message says what to fix.
"#;

/// clap_mangen starts every section with roff's apostrophe preamble; one is enough.
fn dedupe_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split(PREAMBLE);
    out.push_str(parts.next().unwrap_or_default());
    out.push_str(PREAMBLE);
    for part in parts {
        out.push_str(part);
    }
    out.into_bytes()
}

/// A text line for a no-fill block: backslashes escaped, a leading `.` or
/// `'` neutralised, `-` as a real minus so options can be copied.
fn roff_line(line: &str) -> String {
    let mut s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        s.insert_str(0, "\\&");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_lines_are_safe() {
        assert_eq!(roff_line(".x"), "\\&.x\n");
        assert_eq!(roff_line("a\\b --c"), "a\\eb \\-\\-c\n");
    }

    #[test]
    fn one_preamble_per_page() {
        let page = page(&Cli::command(), None).unwrap();
        let text = String::from_utf8(page).unwrap();
        assert_eq!(text.matches(".el .ds Aq").count(), 1, "{text}");
        assert!(text.contains(".SH EXAMPLES"), "{text}");
    }
}
