//! `PgServer`: a throwaway PostgreSQL server on 127.0.0.1 for the tests of
//! the PostgreSQL state backend.
//!
//! * binaries: `GLEANER_PG_BINDIR`, else `initdb` on `PATH`, else the newest
//!   `/usr/lib/postgresql/*/bin`. Without them `start()` returns `None` and
//!   the test skips, unless `GLEANER_REQUIRE_PG=1` (CI sets it once it has
//!   installed PostgreSQL, so a broken install cannot pass as a skip);
//! * `initdb` runs once per test process into a template data directory and
//!   every server starts from a copy of it: initdb takes ~0.7 s, a copy
//!   ~0.1 s (a whole start ~0.15 s);
//! * one role, `gleaner` (superuser), whose random per-process password TCP
//!   connections must give (scram-sha-256), so a backend that forgets to
//!   send its password fails here as it would in production. No Unix socket
//!   is created, so nothing collides in /tmp or /run;
//! * durability is off (`fsync`, `synchronous_commit`, `full_page_writes`):
//!   the data dies with the server;
//! * initdb and postgres refuse to run as root, so as root they run as the
//!   `postgres` system user (else `nobody`);
//! * dropping a `PgServer` (also while a failing test unwinds) stops the
//!   server and removes its data directory; a server also dies with the test
//!   process if that is killed (see `spawn_from_keeper`). Do not keep one in
//!   a `static`: statics are never dropped, so its directory would be left.

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// Bound on a server becoming ready to answer queries.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// initdb is slow on a loaded two-core CI machine; it runs only once.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on an immediate shutdown before the server is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A port picked by binding `127.0.0.1:0` is free only until it is
/// released; another process may take it before postgres binds it.
const START_ATTEMPTS: usize = 5;
const ROLE: &str = "gleaner";
/// In the data directory, so it goes with it; read when startup fails.
const LOG_FILE: &str = "server.log";

pub struct PgServer {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
    template: &'static Template,
}

impl PgServer {
    /// Starts a fresh server, or returns `None` after printing one line to
    /// stderr when no PostgreSQL is installed. With `GLEANER_REQUIRE_PG=1` a
    /// missing install panics instead.
    pub fn start() -> Option<PgServer> {
        let template = match SETUP.get_or_init(setup) {
            Setup::Ready(template) => template,
            Setup::Missing(looked_in) => {
                let msg = format!(
                    "PostgreSQL server binaries not found (looked in {looked_in}); \
                     install the `postgresql` package"
                );
                if std::env::var_os("GLEANER_REQUIRE_PG").is_some_and(|v| v == "1") {
                    panic!("GLEANER_REQUIRE_PG=1: {msg}");
                }
                eprintln!("SKIPPED: {msg}");
                return None;
            }
            Setup::Failed(why) => panic!("{why}"),
        };
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match PgServer::launch(template) {
                Ok(server) => return Some(server),
                Err(PortTaken(log)) => last_log = log,
            }
        }
        panic!(
            "postgres found its port taken {START_ATTEMPTS} times in a row; last server log:\n{last_log}"
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Removed when the server is dropped.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.data.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// Creates database `name` (owned by `gleaner`) and returns its URL
    /// without the password: `postgres://gleaner@127.0.0.1:PORT/NAME`.
    pub fn create_db(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &format!(
                "CREATE DATABASE \"{}\" OWNER {ROLE}",
                name.replace('"', "\"\"")
            ),
        );
        format!(
            "postgres://{ROLE}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(name)
        )
    }

    /// The password of role `gleaner`.
    pub fn password(&self) -> &str {
        &self.template.password
    }

    /// Runs `sql` (any number of statements, stopping at the first error)
    /// against database `db` as `gleaner`; returns psql's unaligned,
    /// tuples-only stdout (`a|b` rows, one per line). Panics with psql's
    /// stderr on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, self.password(), sql)
            .unwrap_or_else(|e| panic!("psql on database {db} failed: {e}\n--- sql ---\n{sql}"))
    }

    /// `psql` with any password; `Err` holds the exit status and stderr.
    pub fn try_psql(&self, db: &str, password: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(&self.template.install.psql);
        without_pg_env(&mut cmd);
        // -w: a missing password must fail, never wait on a prompt.
        cmd.args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE])
            .args(["-d", db, "-f", "-"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            // The server has no TLS; skip the offer.
            .env("PGSSLMODE", "disable");
        let ran = run_bounded(&mut cmd, sql.as_bytes(), PSQL_TIMEOUT)
            .unwrap_or_else(|e| panic!("run {}: {e}", self.template.install.psql.display()));
        match ran.status {
            Some(status) if status.success() => Ok(ran.stdout),
            Some(status) => Err(format!("psql {status}: {}", ran.stderr.trim_end())),
            None => Err(format!(
                "psql did not finish within {PSQL_TIMEOUT:?}; killed. stderr: {}",
                ran.stderr.trim_end()
            )),
        }
    }

    fn launch(template: &'static Template) -> Result<PgServer, PortTaken> {
        let data = tempfile::Builder::new()
            .prefix("gleaner-pg-")
            .tempdir()
            .expect("create the server's data dir");
        if let Some(user) = template.run_as {
            chown(data.path(), Some(user.uid), Some(user.gid)).expect("chown the data dir");
        }
        // `-a` keeps the owner (the unprivileged user) and initdb's modes,
        // which postgres checks.
        let ran = run_bounded(
            Command::new("cp")
                .arg("-a")
                .arg(template.dir.join("."))
                .arg(data.path()),
            b"",
            START_TIMEOUT,
        )
        .expect("run cp");
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "copying the template data dir failed ({:?}): {}",
            ran.status,
            ran.stderr
        );

        let port = free_port();
        let log = File::options()
            .create(true)
            .append(true)
            .open(data.path().join(LOG_FILE))
            .expect("create the server log");
        let mut cmd = Command::new(&template.install.postgres);
        without_pg_env(&mut cmd);
        cmd.arg("-D")
            .arg(data.path())
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=100"])
            .current_dir(data.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the server log"))
            .stderr(log);
        child_setup(&mut cmd, template.run_as, true);
        let child = spawn_from_keeper(cmd)
            .unwrap_or_else(|e| panic!("spawn {}: {e}", template.install.postgres.display()));
        // From here on a panic drops the server, which stops it and removes
        // the data dir.
        let mut server = PgServer {
            child,
            port,
            data,
            template,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), PortTaken> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut last_error = String::from("(the port never accepted a connection)");
        loop {
            if let Some(status) = self.child.try_wait().expect("poll postgres") {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(PortTaken(log));
                }
                panic!(
                    "postgres on port {} exited during startup ({status}); server log:\n{log}",
                    self.port
                );
            }
            // A listening postmaster may still be recovering or starting;
            // only an answered query means ready, and our password proves
            // the answer came from our server, not whoever else has the port.
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                match self.try_psql("postgres", self.password(), "select 1") {
                    Ok(out) if out.trim() == "1" => return Ok(()),
                    Ok(out) => last_error = format!("select 1 answered {out:?}"),
                    Err(e) => last_error = e,
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "postgres on port {} not ready within {START_TIMEOUT:?}; last error: {last_error}\n\
                     --- server log ---\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGQUIT is the immediate shutdown: no checkpoint, since the
            // data is about to be deleted. The postmaster reaps its backends
            // before it exits, so once it is gone so is the port.
            // SAFETY: kill(2) has no memory effects; the child is not yet
            // reaped, so its pid cannot have been reused.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // `self.data` is removed when the fields drop, after this.
    }
}

/// postgres exited because its port had been taken; holds the server log.
struct PortTaken(String);

// ------------------------------------------------------------------ setup

struct Install {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

/// An unprivileged user for initdb and postgres when the tests run as root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

struct Template {
    install: Install,
    /// initdb's output, copied by every server; removed at process exit.
    dir: PathBuf,
    password: String,
    run_as: Option<RunAs>,
}

enum Setup {
    /// Where the binaries were looked for.
    Missing(String),
    /// PostgreSQL is installed but initdb failed: a real failure, not a skip.
    Failed(String),
    Ready(Template),
}

/// A failed setup is stored rather than panicked inside `get_or_init`, so
/// that every test reports it instead of each one running initdb again.
static SETUP: OnceLock<Setup> = OnceLock::new();

fn setup() -> Setup {
    let install = match find_install() {
        Ok(install) => install,
        Err(looked_in) => return Setup::Missing(looked_in),
    };
    match make_template(install) {
        Ok(template) => Setup::Ready(template),
        Err(why) => Setup::Failed(why),
    }
}

fn find_install() -> Result<Install, String> {
    if let Some(dir) = std::env::var_os("GLEANER_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return install_in(&dir).ok_or_else(|| format!("GLEANER_PG_BINDIR={}", dir.display()));
    }
    // Resolved, because the initdb on PATH may be a lone symlink (Debian
    // puts none there, so it is likely hand-made, e.g. /usr/local/bin/initdb
    // -> /usr/lib/postgresql/15/bin/initdb) and postgres lives next to the
    // real one.
    let from_path = find_on_path("initdb")
        .and_then(|initdb| fs::canonicalize(initdb).ok())
        .and_then(|initdb| install_in(initdb.parent()?));
    if let Some(install) = from_path {
        return Ok(install);
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .iter()
        .rev()
        .find_map(|(_, bindir)| install_in(bindir))
        .ok_or_else(|| "PATH and /usr/lib/postgresql/*/bin; GLEANER_PG_BINDIR is unset".to_string())
}

fn install_in(bindir: &Path) -> Option<Install> {
    let initdb = bindir.join("initdb");
    let postgres = bindir.join("postgres");
    if !is_executable(&initdb) || !is_executable(&postgres) {
        return None;
    }
    // The bindir's own psql skips Debian's /usr/bin/psql wrapper (a Perl
    // script picking a cluster), which costs time on every query.
    let psql = Some(bindir.join("psql"))
        .filter(|psql| is_executable(psql))
        .or_else(|| find_on_path("psql"))?;
    Some(Install {
        initdb,
        postgres,
        psql,
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

fn make_template(install: Install) -> Result<Template, String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let run_as = if unsafe { libc::geteuid() } == 0 {
        Some(
            system_user("postgres")
                .or_else(|| system_user("nobody"))
                .ok_or("running as root, and neither user `postgres` nor `nobody` exists to run PostgreSQL as")?,
        )
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("gleaner-pg-template-")
        .tempdir()
        .map_err(|e| format!("create the template data dir: {e}"))?;
    let password: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(32)
        .collect();
    let mut pwfile =
        tempfile::NamedTempFile::new().map_err(|e| format!("create the password file: {e}"))?;
    writeln!(pwfile, "{password}").map_err(|e| format!("write the password file: {e}"))?;
    if let Some(user) = run_as {
        for path in [dir.path(), pwfile.path()] {
            chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
    }
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(pwfile.path());
    let mut cmd = Command::new(&install.initdb);
    without_pg_env(&mut cmd);
    cmd.arg("-D")
        .arg(dir.path())
        .arg(pwfile_arg)
        .arg(format!("--username={ROLE}"))
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        // C locale: the same collation everywhere, and English messages,
        // which `wait_ready` matches on.
        .args(["--encoding=UTF8", "--no-locale"])
        .arg("--no-sync")
        // The unprivileged user may not be allowed into the cwd.
        .current_dir("/");
    child_setup(&mut cmd, run_as, false);
    let ran = run_bounded(&mut cmd, b"", INITDB_TIMEOUT)
        .map_err(|e| format!("run {}: {e}", install.initdb.display()))?;
    if !ran.status.is_some_and(|s| s.success()) {
        return Err(format!(
            "{} failed ({}); is {} reachable by the user it runs as?\n--- stdout ---\n{}\n--- stderr ---\n{}",
            install.initdb.display(),
            ran.status.map_or("timed out".to_string(), |s| s.to_string()),
            std::env::temp_dir().display(),
            ran.stdout,
            ran.stderr
        ));
    }
    let dir = dir.keep();
    // The template lives in a static, which is never dropped.
    // SAFETY: registers a plain function; atexit has no other effects.
    unsafe { libc::atexit(remove_template) };
    Ok(Template {
        install,
        dir,
        password,
        run_as,
    })
}

extern "C" fn remove_template() {
    if let Some(Setup::Ready(template)) = SETUP.get() {
        let _ = fs::remove_dir_all(&template.dir);
    }
}

fn system_user(name: &str) -> Option<RunAs> {
    let name = CString::new(name).ok()?;
    // SAFETY: passwd is plain old data; getpwnam_r fills it and points its
    // strings into `buf`, which outlives the call; only the ids are kept.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some(RunAs {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        })
    }
}

/// Between fork and exec: drops root for `run_as`, and with
/// `die_with_parent` has the kernel SIGQUIT the child (postgres's immediate
/// shutdown) when the test process dies without dropping the server (a
/// SIGKILL from a CI timeout, an abort).
fn child_setup(cmd: &mut Command, run_as: Option<RunAs>, die_with_parent: bool) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe system calls and
    // allocates nothing (`last_os_error` and `from_raw_os_error` do not
    // allocate).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(user) = run_as {
                if libc::setgroups(1, &user.gid) != 0
                    || libc::setgid(user.gid) != 0
                    || libc::setuid(user.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if die_with_parent {
                // After the setuid: a credential change clears the setting.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died before the prctl: the signal will never
                // come.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            Ok(())
        });
    }
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the test process.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits,
/// not the process. Each test runs on its own thread, which ends with the
/// test, and a server may be handed to another thread; spawned from the
/// test's thread, a server could be killed under a test that still uses
/// it. The keeper thread only ends with the process, which is exactly when
/// the signal should come.
fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("pg-spawner".into())
            .spawn(move || {
                // Never ends: the sender is in a static.
                for (mut cmd, reply) in queue {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the pg-spawner thread");
        jobs
    });
    let (reply, answer) = mpsc::channel();
    keeper
        .send((cmd, reply))
        .expect("the pg-spawner thread is gone");
    answer.recv().expect("the pg-spawner thread is gone")
}

/// PG* variables (PGDATA, PGPORT, PGHOST, PGSERVICE, ...) would redirect
/// initdb, postgres or psql away from the server under test.
fn without_pg_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"PG") {
            cmd.env_remove(name);
        }
    }
}

struct Ran {
    /// `None`: killed after the time limit.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdin`, killing it after `limit`. Output goes to
/// unnamed temp files, which need no reader threads to avoid a full pipe.
fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> io::Result<Ran> {
    let mut input = tempfile::tempfile()?;
    input.write_all(stdin)?;
    input.rewind()?;
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    let mut child = cmd
        .stdin(input)
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .spawn()?;
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let read = |file: &mut File| -> io::Result<String> {
        let mut bytes = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(Ran {
        status,
        stdout: read(&mut out)?,
        stderr: read(&mut err)?,
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A database name as a URL path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
