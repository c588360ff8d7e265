//! Group commit of story files: many stories made durable by one sync.
//!
//! A pass writes its new stories' temp files without an fsync each, syncs
//! the file system once, renames them into place, syncs once more, and
//! only then has the store mark them finished. A name so never points at
//! a file whose content could be lost, and a story the store calls
//! finished survives a power cut; until then it is a pending write, which
//! recovery undoes. Three fsyncs per story (two files and their directory)
//! were 14% of a cold pass's CPU and most of its kernel time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::OutputError;

/// Syncs of one file system, shared by every writer of a pass.
pub struct GroupSync {
    dir: PathBuf,
    /// The device of `dir`, once it could be read (the directory may be
    /// created after this).
    dev: std::sync::OnceLock<u64>,
    state: Mutex<State>,
    done: Notify,
}

#[derive(Default)]
struct State {
    /// Syncs started and finished; sync `n` covers every file renamed
    /// into place before it started.
    started: u64,
    finished: u64,
    running: bool,
    /// The last finished sync's error, if it failed.
    error: Option<String>,
}

impl GroupSync {
    /// Group commit for the file system holding `output_dir`.
    pub fn new(output_dir: &Path) -> Arc<Self> {
        Arc::new(GroupSync {
            dir: output_dir.to_path_buf(),
            dev: std::sync::OnceLock::new(),
            state: Mutex::new(State::default()),
            done: Notify::new(),
        })
    }

    /// Whether a story directory is on `output_dir`'s file system, which
    /// `sync` flushes. One elsewhere (a symlinked feed) is fsynced file by
    /// file.
    pub fn covers(&self, story_dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dev = match self.dev.get() {
            Some(d) => *d,
            None => match std::fs::metadata(&self.dir) {
                Ok(m) => *self.dev.get_or_init(|| m.dev()),
                Err(_) => return false,
            },
        };
        std::fs::metadata(story_dir).is_ok_and(|m| m.dev() == dev)
    }

    /// Returns once everything written to the file system before the call
    /// is on disk, with one sync for all the callers waiting meanwhile.
    pub async fn sync(self: &Arc<Self>) -> Result<(), OutputError> {
        self.sync_all().await
    }

    /// Waits for a whole-file-system sync that starts after this call.
    async fn sync_all(self: &Arc<Self>) -> Result<(), OutputError> {
        let target = self.lock().started + 1;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.finished >= target {
                    return match &st.error {
                        None => Ok(()),
                        Some(e) => Err(self.error(e.clone())),
                    };
                }
                if !st.running {
                    st.running = true;
                    st.started += 1;
                    let number = st.started;
                    // Its own task: a writer cancelled mid-wait (a daemon
                    // stopping) must not leave the sync marked running.
                    let this = self.clone();
                    tokio::spawn(async move {
                        let dir = this.dir.clone();
                        let r = tokio::task::spawn_blocking(move || sync_file_system(&dir))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                        let mut st = this.lock();
                        st.finished = number;
                        st.running = false;
                        st.error = r.err();
                        drop(st);
                        this.done.notify_waiters();
                    });
                }
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, message: String) -> OutputError {
        OutputError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(message),
        }
    }
}

/// Flushes everything written to the file system holding `dir`.
#[cfg(target_os = "linux")]
fn sync_file_system(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    // SAFETY: syncfs takes a descriptor, which `d` keeps open across the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &Path) -> std::io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::StoryMeta;

    fn story(dir: &Path, n: usize) -> PathBuf {
        let stem = PathBuf::from(format!("f/2026/11/26/s-{n}"));
        let meta = StoryMeta {
            id: n.to_string(),
            url: format!("http://a/{n}"),
            canonical_url: format!("http://a/{n}"),
            feed: "f".into(),
            title: "T".into(),
            author: None,
            published: None,
            fetched_at: chrono::Utc::now(),
            words: 2,
            lang: None,
            duplicates: vec![],
        };
        let group = GroupSync::new(dir);
        crate::output::write_story_for(&group, dir, &stem, "T\n\nhello there\n", &meta)
            .unwrap()
            .expect("staged on the output directory's own file system")
            .publish()
            .unwrap();
        stem
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupSync::new(dir.path());
        let mut tasks = Vec::new();
        for n in 0..40 {
            let (group, dir) = (group.clone(), dir.path().to_path_buf());
            tasks.push(tokio::spawn(async move {
                let stem = story(&dir, n);
                assert!(group.covers(dir.join(stem).parent().unwrap()));
                group.sync().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let st = group.lock();
        assert!(!st.running && st.error.is_none());
        assert!(st.finished >= 1 && st.started == st.finished);
        // Each writer waits for at most the sync after the running one.
        assert!(st.started <= 40, "{}", st.started);
        drop(st);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f/2026/11/26/s-7.txt")).unwrap(),
            "T\n\nhello there\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_writer_does_not_wedge_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupSync::new(dir.path());
        story(dir.path(), 1);
        // Dropped at its first wait, while its sync may still be running.
        let _ = tokio::time::timeout(std::time::Duration::ZERO, group.sync()).await;
        tokio::time::timeout(std::time::Duration::from_secs(30), group.sync())
            .await
            .expect("a later sync still completes")
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_sync_is_every_waiter_s_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let group = GroupSync::new(&gone);
        assert!(!group.covers(dir.path()));
        let err = group.sync().await.unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        // The next caller gets its own try, and the same answer.
        assert!(group.sync().await.is_err());
    }
}
