//! Several instances on one PostgreSQL state store (issue 7), against a
//! real server started for each test (`common::pg`): feed leases, stories
//! claimed exactly once, abandoned writes undone by the survivors, request
//! spacing shared across instances, and `migrate-state`.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use gleaner::config::{Backend, StateConfig};
use gleaner::dedupe::Signature;
use gleaner::store::{Claim, Lease, NearCheck, NewStory, PgStore, StateStore};

use crate::common::pg::PgServer;
use crate::common::testdir::{self, BIN};
use crate::common::*;
use crate::crash::{assert_output, farm, new_count, prose, write_config, Farm};

/// Bound on any wait in these tests.
const WAIT: Duration = Duration::from_secs(60);

/// A server and a database for one test; None (skipped) without PostgreSQL.
fn database(name: &str) -> Option<(PgServer, String)> {
    let pg = PgServer::start()?;
    let url = pg.create_db(name);
    Some((pg, url))
}

/// The `[state]` table for `url`, the password in `conf/pgpass`.
fn state_toml(td: &TestDir, pg: &PgServer, url: &str, extra: &str) -> String {
    td.write_file("conf/pgpass", format!("{}\n", pg.password()));
    format!(
        "\n[state]\nbackend = \"postgres\"\nurl = {}\npassword_file = \"pgpass\"\n{extra}",
        testdir::toml_str(url)
    )
}

fn store(pg: &PgServer, url: &str, instance: &str, lease: Duration) -> PgStore {
    let cfg = StateConfig {
        backend: Backend::Postgres,
        url: Some(url.replace("gleaner@", &format!("gleaner:{}@", pg.password()))),
        instance: Some(instance.into()),
        lease,
        ..StateConfig::default()
    };
    PgStore::open(&cfg).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

fn spawn(td: &TestDir, cmd: &str, log_name: &str) -> Child {
    let mut c = Command::new(BIN);
    c.arg(cmd)
        .arg("--config")
        .arg(td.config_path())
        .current_dir(&td.cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(td.root.join(format!("{log_name}.out"))).unwrap())
        .stderr(std::fs::File::create(td.root.join(format!("{log_name}.err"))).unwrap())
        .env("GLEANER_LOG", "info");
    testdir::loopback_only(&mut c);
    c.spawn().expect("spawn gleaner")
}

fn wait(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("{what} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(td: &TestDir, name: &str) -> String {
    std::fs::read_to_string(td.root.join(name)).unwrap_or_default()
}

fn count(pg: &PgServer, db: &str, sql: &str) -> usize {
    pg.psql(db, sql).trim().parse().unwrap()
}

/// `n` `gleaner fetch` processes at once on one database and one output
/// directory: every story written once, every copy listed, every feed
/// requested once in all.
fn instances_write_each_story_once(n: usize) {
    let db = format!("farm{n}");
    let Some((pg, url)) = database(&db) else {
        return;
    };
    let server = TestServer::start();
    let farm: Farm = farm(&server, 8, 3, Duration::from_millis(150));
    let td = TestDir::new();
    // Two feeds in flight per instance: the feeds spread over instances
    // (an instance leases a feed when it starts polling it).
    let extra = state_toml(&td, &pg, &url, "");
    write_config(&td, &farm, &format!("[fetch]\nconcurrency = 2\n{extra}"));
    let mut children: Vec<Child> = (0..n)
        .map(|i| spawn(&td, "fetch", &format!("fetch{i}")))
        .collect();
    let mut new = 0;
    for (i, c) in children.iter_mut().enumerate() {
        let st = wait(c, "gleaner fetch");
        let (out, err) = (
            read(&td, &format!("fetch{i}.out")),
            read(&td, &format!("fetch{i}.err")),
        );
        assert!(st.success(), "instance {i}: {st}\n{out}\n{err}");
        new += new_count(&out);
    }
    let logs: String = (0..n)
        .map(|i| read(&td, &format!("fetch{i}.out")) + &read(&td, &format!("fetch{i}.err")))
        .collect();
    assert_output(&td.out_dir(), &farm.stories);
    assert_eq!(
        new,
        farm.stories.len(),
        "new stories over all instances\n{logs}"
    );
    for (_, feed_url) in &farm.feeds {
        let path = &feed_url[server.url("").len()..];
        assert_eq!(
            server.hits(path),
            1,
            "{feed_url} polled once in all\n{logs}"
        );
    }
    // More than one instance did real work: leases spread the feeds.
    let busy = (0..n)
        .filter(|i| new_count(&read(&td, &format!("fetch{i}.out"))) > 0)
        .count();
    assert!(
        busy >= 2,
        "only {busy} of {n} instances wrote stories\n{logs}"
    );
    assert_eq!(count(&pg, &db, "SELECT count(*) FROM pending"), 0);
    assert_eq!(
        count(&pg, &db, "SELECT count(*) FROM stories"),
        farm.stories.len()
    );
    assert_eq!(
        count(
            &pg,
            &db,
            "SELECT count(*) FROM feeds WHERE lease_holder IS NOT NULL"
        ),
        0,
        "leases given back"
    );
}

#[test]
fn two_fetch_instances_write_every_story_once() {
    instances_write_each_story_once(2);
}

#[test]
fn four_fetch_instances_write_every_story_once() {
    instances_write_each_story_once(4);
}

/// One daemon killed mid-poll: its leases run out, the other daemon polls
/// its feeds, undoes its unfinished writes, and every story ends up on
/// disk exactly once.
#[test]
fn a_killed_instance_s_work_is_finished_by_another() {
    let Some((pg, url)) = database("killed") else {
        return;
    };
    let server = TestServer::start();
    let farm = farm(&server, 6, 3, Duration::from_millis(400));
    let td = TestDir::new();
    let extra = state_toml(&td, &pg, &url, "lease = \"3s\"\n");
    write_config(
        &td,
        &farm,
        &format!("[schedule]\ninterval = \"2s\"\nmin_interval = \"1s\"\nspread = \"1s\"\n{extra}"),
    );
    let mut a = spawn(&td, "run", "a");
    // Kill A once it has stories half done: pages requested, some written.
    let start = Instant::now();
    while crate::crash::page_requests(&server) < 6 {
        assert!(
            start.elapsed() < WAIT,
            "A never fetched pages\n{}",
            read(&td, "a.err")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    a.kill().unwrap();
    a.wait().unwrap();
    let leased = count(
        &pg,
        "killed",
        "SELECT count(*) FROM feeds WHERE lease_holder IS NOT NULL",
    );
    assert!(leased > 0, "A held no lease when killed");

    let mut b = spawn(&td, "run", "b");
    let start = Instant::now();
    let complete = loop {
        let done = td.output_files("txt").len() == farm.stories.len()
            && count(&pg, "killed", "SELECT count(*) FROM pending") == 0;
        if done || start.elapsed() > WAIT {
            break done;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // SIGTERM: B finishes what it is writing and stops.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    let st = wait(&mut b, "gleaner run (B)");
    let logs = format!(
        "--- A ---\n{}\n--- B ---\n{}",
        read(&td, "a.err"),
        read(&td, "b.err")
    );
    assert!(complete, "B did not finish A's work\n{logs}");
    assert!(st.success(), "{st}\n{logs}");
    // Duplicate lists are completed on B's later polls: wait for them too.
    let start = Instant::now();
    loop {
        let r = std::panic::catch_unwind(|| assert_output(&td.out_dir(), &farm.stories));
        match r {
            Ok(_) => break,
            Err(e) if start.elapsed() > WAIT => std::panic::resume_unwind(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    assert_eq!(
        count(&pg, "killed", "SELECT count(*) FROM stories"),
        farm.stories.len(),
        "{logs}"
    );
}

/// `host_delay` spaces the requests to a host across instances, not only
/// within each.
#[test]
fn host_delay_holds_across_instances() {
    let Some((pg, url)) = database("polite") else {
        return;
    };
    let server = TestServer::start();
    let mut feeds = Vec::new();
    for f in 0..4 {
        let mut items = Vec::new();
        for i in 0..2 {
            let path = format!("/p{f}/{i}.html");
            server.route_fixed(
                &path,
                Response::html(article_page(
                    &format!("Story {f}.{i}"),
                    &prose((f * 10 + i) as u64),
                    None,
                )),
            );
            items.push(Item::new(
                &format!("Story {f}.{i}"),
                &server.url(&path),
                utc("2024-03-05T08:00:00Z"),
            ));
        }
        let path = format!("/f{f}.rss");
        server.route_fixed(&path, Response::rss(rss("f", &server.url("/"), &items)));
        feeds.push((format!("f{f}"), server.url(&path)));
    }
    let farm = Farm {
        feeds,
        stories: Vec::new(),
    };
    let td = TestDir::new();
    let extra = state_toml(&td, &pg, &url, "");
    write_config(
        &td,
        &farm,
        // One feed at a time per instance: both instances poll feeds.
        &format!("[fetch]\nconcurrency = 1\nper_host = 2\nhost_delay = \"250ms\"\n{extra}"),
    );
    let mut children: Vec<Child> = (0..2)
        .map(|i| spawn(&td, "fetch", &format!("p{i}")))
        .collect();
    for c in &mut children {
        assert!(wait(c, "gleaner fetch").success());
    }
    let logs = read(&td, "p0.err") + &read(&td, "p1.err");
    assert_eq!(td.output_files("txt").len(), 8, "{logs}");
    let busy = (0..2)
        .filter(|i| new_count(&read(&td, &format!("p{i}.out"))) > 0)
        .count();
    assert_eq!(busy, 2, "both instances must fetch for this test\n{logs}");
    let mut at: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    assert_eq!(at.len(), 12, "{}", server.log_summary());
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Arrival times are the server's: a request accepted late on a busy
    // machine shortens one gap and lengthens the next. Two instances
    // spacing only their own requests would shorten many gaps and the
    // whole span by about half.
    let short = gaps
        .iter()
        .filter(|g| **g < Duration::from_millis(150))
        .count();
    let span = at[at.len() - 1] - at[0];
    assert!(
        short <= 1 && span >= Duration::from_millis(11 * 250 - 100),
        "host_delay = 250ms broken across instances: span {span:?}, gaps {gaps:?}\n{logs}"
    );
    assert!(
        count(&pg, "polite", "SELECT count(*) FROM host_slots") >= 1,
        "no shared slots recorded"
    );
}

/// The store itself: leases, the exactly-once claim by key and by text,
/// and writes of a dead process found by the living.
#[test]
fn leases_claims_and_abandoned_writes() {
    let Some((pg, url)) = database("store") else {
        return;
    };
    // Short: a dead process's writes are undone once older than a lease.
    let lease = Duration::from_secs(1);
    let a = store(&pg, &url, "a", lease);
    let b = store(&pg, &url, "b", lease);
    let now = Utc::now();

    // Leases: one holder at a time; a poll since `fresh_after` counts;
    // an expired lease is taken over.
    assert_eq!(a.lease_feed("f", None, now).unwrap(), Lease::Granted);
    assert!(matches!(
        b.lease_feed("f", None, now).unwrap(),
        Lease::Held { .. }
    ));
    let later = now + chrono::Duration::seconds(61);
    assert_eq!(b.lease_feed("f", None, later).unwrap(), Lease::Granted);
    b.release_feed("f", true, later).unwrap();
    assert!(matches!(
        a.lease_feed("f", Some(now), later).unwrap(),
        Lease::Polled { .. }
    ));
    assert_eq!(
        a.lease_feed("f", Some(later), later).unwrap(),
        Lease::Granted
    );

    // Claims: the second instance to record a key or a text loses.
    let text: String = prose(7).join("\n\n");
    let sig = Signature::of(&text).unwrap();
    let near = Some(NearCheck {
        since: now - chrono::Duration::days(1),
        threshold: 0.5,
    });
    let first = a
        .add_story(&NewStory {
            stem: "f/one",
            feed: "f",
            created: now,
            keys: &[11],
            aliases: &[12],
            signature: Some(&sig),
            near,
        })
        .unwrap();
    let Claim::New(id) = first else {
        panic!("{first:?}")
    };
    let by_url = b
        .add_story(&NewStory {
            stem: "g/one",
            feed: "g",
            created: now,
            keys: &[21, 11],
            aliases: &[],
            signature: None,
            near,
        })
        .unwrap();
    assert!(
        matches!(&by_url, Claim::Taken { story, by: "url", .. } if story.id == id),
        "{by_url:?}"
    );
    let copy = format!("LIMA (AFP) — {text}");
    let by_text = b
        .add_story(&NewStory {
            stem: "g/copy",
            feed: "g",
            created: now,
            keys: &[31],
            aliases: &[],
            signature: Some(&Signature::of(&copy).unwrap()),
            near,
        })
        .unwrap();
    assert!(
        matches!(&by_text, Claim::Taken { story, by: "text", similarity: Some(s) } if story.id == id && *s > 0.5),
        "{by_text:?}"
    );
    let other = prose(8).join("\n\n");
    let second = b
        .add_story(&NewStory {
            stem: "g/other",
            feed: "g",
            created: now,
            keys: &[41],
            aliases: &[12],
            signature: Some(&Signature::of(&other).unwrap()),
            near,
        })
        .unwrap();
    assert!(matches!(second, Claim::New(_)), "{second:?}");
    // A reused item key (alias) names the first story still.
    assert_eq!(a.story_by_key(12).unwrap().unwrap().id, id);

    // Pending writes: A's are its own while it lives, B's to undo once A
    // is gone (its connections closed) and the write is older than a lease.
    std::thread::sleep(lease + Duration::from_millis(1100));
    assert!(b.pending_writes().unwrap().is_empty(), "A is alive");
    assert!(
        a.pending_writes().unwrap().is_empty(),
        "A's own are in flight; B's are B's"
    );
    drop(a);
    let start = Instant::now();
    let orphans: BTreeSet<String> = loop {
        // The server ends A's sessions a moment after A closes them.
        let found: BTreeSet<String> = b
            .pending_writes()
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        if !found.is_empty() || start.elapsed() > Duration::from_secs(15) {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(orphans, BTreeSet::from(["f/one".to_string()]));
    assert!(b.round_trips().unwrap() > 0);
}

/// An embedded store moved to PostgreSQL: the next pass there knows every
/// story; a second migration into the now full database is refused.
#[test]
fn migrate_state_moves_an_embedded_store_to_postgres() {
    let Some((pg, url)) = database("moved") else {
        return;
    };
    let server = TestServer::start();
    let farm = farm(&server, 3, 2, Duration::ZERO);
    let td = TestDir::new();
    write_config(&td, &farm, "");
    let first = td.fetch();
    assert_eq!(first.code, Some(0), "{first}");
    assert_eq!(new_count(&first.stdout), farm.stories.len(), "{first}");
    let before = td.snapshot_output();

    write_config(&td, &farm, &state_toml(&td, &pg, &url, ""));
    let cfg = td.config_path();
    let args = [
        "migrate-state",
        "--from",
        "embedded",
        "--to",
        "postgres",
        "--config",
        cfg.to_str().unwrap(),
    ];
    let moved = td.run(&args);
    assert_eq!(moved.code, Some(0), "{moved}");
    assert!(
        moved
            .stdout
            .contains(&format!("{} stories", farm.stories.len())),
        "{moved}"
    );
    assert!(
        !moved.combined().contains(pg.password()),
        "password shown: {moved}"
    );
    assert_eq!(
        count(&pg, "moved", "SELECT count(*) FROM stories"),
        farm.stories.len()
    );

    // Every key came along: the next pass finds nothing new.
    let again = td.fetch();
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(new_count(&again.stdout), 0, "{again}");
    assert_eq!(td.snapshot_output().len(), before.len(), "{again}");

    let twice = td.run(&args);
    assert_eq!(twice.code, Some(2), "{twice}");
    assert!(twice.combined().contains("already holds state"), "{twice}");

    // `status` needs no more than reading: a role that may only SELECT.
    pg.psql(
        "moved",
        "CREATE ROLE reader LOGIN PASSWORD 'read-only';
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;",
    );
    td.write_file("conf/pgpass", "read-only\n");
    write_config(
        &td,
        &farm,
        &format!(
            "\n[state]\nbackend = \"postgres\"\nurl = {}\npassword_file = \"pgpass\"\n",
            testdir::toml_str(&url.replace("gleaner@", "reader@"))
        ),
    );
    let status = td.run(&["status", "--config", cfg.to_str().unwrap()]);
    assert_eq!(status.code, Some(0), "{status}");
    for (name, _) in &farm.feeds {
        assert!(status.stdout.contains(name.as_str()), "{status}");
    }
    assert!(status.stdout.contains("shared state store"), "{status}");
}

/// A wrong password is a clear start-up error (exit 2) that names the
/// database without its password.
#[test]
fn a_bad_password_is_a_clear_error() {
    let Some((pg, url)) = database("badpw") else {
        return;
    };
    let td = TestDir::new();
    let server = TestServer::start();
    let farm = farm(&server, 1, 1, Duration::ZERO);
    write_config(
        &td,
        &farm,
        &format!(
            "\n[state]\nbackend = \"postgres\"\nurl = {}\n",
            testdir::toml_str(&url.replace("gleaner@", "gleaner:wrong-secret@"))
        ),
    );
    let r = td.fetch();
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("password"), "{r}");
    assert!(
        !r.combined().contains("wrong-secret"),
        "password shown: {r}"
    );
    drop(pg);
}

/// `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TLS to the database: used and verified against `ca_file`; a server
/// certificate nobody vouches for is refused.
#[test]
fn tls_to_the_database_is_verified() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: no openssl command to make test certificates");
        return;
    }
    let Some((pg, url)) = database("tls") else {
        return;
    };
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=gleaner test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    // The server reads them from its data directory, as its own user.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(pg.data_dir()).unwrap();
    for f in ["server.crt", "server.key"] {
        let to = pg.data_dir().join(f);
        std::fs::copy(dir.join(f), &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();",
    );
    std::thread::sleep(Duration::from_millis(500));

    let open = |ca: Option<&std::path::Path>| {
        PgStore::open(&StateConfig {
            backend: Backend::Postgres,
            url: Some(format!(
                "{}?sslmode=require",
                url.replace("gleaner@", &format!("gleaner:{}@", pg.password()))
            )),
            ca_file: ca.map(|p| p.to_path_buf()),
            instance: Some("tls".into()),
            ..StateConfig::default()
        })
    };
    let store = open(Some(&dir.join("ca.pem"))).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    assert!(store.all_feeds().unwrap().is_empty());
    let encrypted = count(
        &pg,
        "tls",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE s.ssl AND a.application_name = 'gleaner'",
    );
    assert!(encrypted >= 1, "gleaner's connection is not encrypted");
    drop(store);
    // The system's authorities do not know this CA: refused, not downgraded.
    let e = open(None)
        .err()
        .expect("an unknown CA must be refused")
        .to_string();
    assert!(
        e.contains("certificate") || e.contains("Certificate"),
        "{e}"
    );
}

/// A poll that outlasts its lease keeps it: the lease is renewed while the
/// poll runs, so another instance does not poll the feed a second time.
#[test]
fn a_long_poll_keeps_its_lease() {
    let Some((pg, url)) = database("renew") else {
        return;
    };
    let server = TestServer::start();
    let farm = farm(&server, 1, 1, Duration::from_secs(4));
    let td = TestDir::new();
    write_config(&td, &farm, &state_toml(&td, &pg, &url, "lease = \"2s\"\n"));
    let mut a = spawn(&td, "fetch", "a");
    let start = Instant::now();
    while crate::crash::page_requests(&server) == 0 {
        assert!(start.elapsed() < WAIT, "A never fetched the page");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past the 2 s term: only a renewed lease still keeps B out.
    std::thread::sleep(Duration::from_millis(2500));
    let mut b = spawn(&td, "fetch", "b");
    for (c, name) in [(&mut a, "a"), (&mut b, "b")] {
        let st = wait(c, "gleaner fetch");
        assert!(
            st.success(),
            "{name}: {st}\n{}",
            read(&td, &format!("{name}.err"))
        );
    }
    let b_out = read(&td, "b.out");
    assert!(b_out.contains("polled by another instance"), "{b_out}");
    let feed_path = &farm.feeds[0].1[server.url("").len()..];
    assert_eq!(server.hits(feed_path), 1, "{}", server.log_summary());
    assert_output(&td.out_dir(), &farm.stories);
}

/// Many feeds (threads here; instances on PostgreSQL) failing on one page
/// at once: one try counted, one give-up, whatever the backend.
fn page_failures_count_once(store: &dyn StateStore, what: &str) {
    use gleaner::store::{PageAttempt, PageCount};
    let fail = |key: u64, seen: Option<u32>, permanent: bool| PageAttempt {
        key,
        feed: "f",
        url: "http://127.0.0.1:9/page.html",
        error: "HTTP status 500",
        now: Utc::now(),
        seen,
        max_attempts: 2,
        permanent,
    };
    let at_once = |seen: Option<u32>| -> Vec<PageCount> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| store.page_failed(&fail(7, seen, false)).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let first = at_once(None);
    assert_eq!(
        first.iter().filter(|c| c.counted).count(),
        1,
        "{what}: {first:?}"
    );
    assert!(
        first.iter().all(|c| c.attempts == 1 && !c.given_up),
        "{what}: {first:?}"
    );
    let second = at_once(Some(1));
    assert_eq!(
        second.iter().filter(|c| c.gave_up).count(),
        1,
        "{what}: given up once: {second:?}"
    );
    assert!(
        second.iter().all(|c| c.attempts == 2 && c.given_up),
        "{what}: {second:?}"
    );
    let pf = store.page_failure(7).unwrap().unwrap();
    assert_eq!((pf.attempts, pf.given_up), (2, true), "{what}");
    // A link that can never be fetched is given up at its first failure.
    let refused = store.page_failed(&fail(8, None, true)).unwrap();
    assert_eq!(
        (refused.attempts, refused.gave_up),
        (1, true),
        "{what}: {refused:?}"
    );
    let given_up: Vec<u32> = store
        .given_up_pages()
        .unwrap()
        .iter()
        .map(|p| p.attempts)
        .collect();
    assert_eq!(given_up.len(), 2, "{what}: {given_up:?}");
}

#[test]
fn a_page_s_failures_are_counted_atomically_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = gleaner::store::SqliteStore::open(dir.path()).unwrap();
    page_failures_count_once(&sqlite, "sqlite");
    let Some((pg, url)) = database("pagefail") else {
        return;
    };
    let a = store(&pg, &url, "a", Duration::from_secs(30));
    page_failures_count_once(&a, "postgres");
}
