//! The throwaway PostgreSQL server (`common::pg`) that the PostgreSQL state
//! backend's tests stand on: servers side by side, SQL through psql,
//! password authentication enforced, nothing left behind. Each test skips
//! when PostgreSQL is not installed (and fails instead under
//! `GLEANER_REQUIRE_PG=1`, as in CI).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::pg::PgServer;

fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[test]
fn two_servers_at_once_keep_their_own_databases() {
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(PgServer::start);
        let b = s.spawn(PgServer::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    let (Some(a), Some(b)) = (a, b) else {
        return;
    };
    eprintln!(
        "two servers started side by side in {:?}",
        started.elapsed()
    );
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());

    let url = a.create_db("alpha");
    assert_eq!(
        url,
        format!("postgres://gleaner@127.0.0.1:{}/alpha", a.port())
    );
    assert_eq!(
        b.create_db("beta"),
        format!("postgres://gleaner@127.0.0.1:{}/beta", b.port())
    );

    a.psql(
        "alpha",
        "CREATE TABLE feeds (id integer PRIMARY KEY, url text NOT NULL);
         INSERT INTO feeds VALUES (2, 'https://b.example/feed'), (1, 'https://a.example/feed');",
    );
    b.psql(
        "beta",
        "CREATE TABLE feeds (id integer PRIMARY KEY, url text NOT NULL);
         INSERT INTO feeds VALUES (7, 'https://ünïcode.example/feed');",
    );
    assert_eq!(
        a.psql("alpha", "SELECT id, url FROM feeds ORDER BY id"),
        "1|https://a.example/feed\n2|https://b.example/feed\n"
    );
    assert_eq!(
        b.psql("beta", "SELECT id, url FROM feeds ORDER BY id"),
        "7|https://ünïcode.example/feed\n"
    );

    // Each server has only its own database, owned by the role the backend
    // connects as.
    let user_dbs = "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database \
                    WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1";
    assert_eq!(a.psql("postgres", user_dbs), "alpha:gleaner\n");
    assert_eq!(b.psql("postgres", user_dbs), "beta:gleaner\n");

    // A failing statement stops the script and is reported.
    let err = a
        .try_psql(
            "alpha",
            a.password(),
            "SELECT 1; SELECT * FROM no_such_table; SELECT 2",
        )
        .unwrap_err();
    assert!(err.contains("no_such_table"), "{err}");
}

#[test]
fn password_authentication_is_enforced() {
    let Some(pg) = PgServer::start() else {
        return;
    };
    let err = pg
        .try_psql("postgres", "not-the-password", "SELECT 1")
        .expect_err("a wrong password was accepted");
    assert!(
        err.contains("password authentication failed for user \"gleaner\""),
        "{err}"
    );
    let err = pg
        .try_psql("postgres", "", "SELECT 1")
        .expect_err("no password was accepted");
    assert!(err.contains("password"), "{err}");

    assert_eq!(
        pg.try_psql("postgres", pg.password(), "SELECT 1").unwrap(),
        "1\n"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
        ),
        "scram-sha-256\n"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'gleaner'"
        ),
        "t\n"
    );
}

#[test]
fn drop_stops_the_server_and_removes_its_data_dir() {
    let started = Instant::now();
    let Some(pg) = PgServer::start() else {
        return;
    };
    eprintln!("server started in {:?}", started.elapsed());
    let port = pg.port();
    let dir = pg.data_dir().to_path_buf();
    assert!(dir.join("PG_VERSION").is_file());
    assert!(accepts_connections(port));

    let stopping = Instant::now();
    drop(pg);
    eprintln!("server stopped in {:?}", stopping.elapsed());
    assert!(!accepts_connections(port), "port {port} still open");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn a_panicking_test_leaves_no_server_behind() {
    let (tx, rx) = std::sync::mpsc::channel::<(u16, PathBuf)>();
    let outcome = std::thread::spawn(move || {
        let Some(pg) = PgServer::start() else {
            return;
        };
        tx.send((pg.port(), pg.data_dir().to_path_buf())).unwrap();
        // Unwinds like a failing assertion, without the panic hook's
        // message and backtrace in the test output.
        std::panic::resume_unwind(Box::new("a test failing with a running server"));
    })
    .join();
    let Ok((port, dir)) = rx.recv() else {
        return;
    };
    assert!(outcome.is_err());
    assert!(!accepts_connections(port), "port {port} still open");
    assert!(!dir.exists(), "{} still exists", dir.display());
}
