//! The node's script cache: every script EVAL ran or SCRIPT LOAD loaded, by SHA-1.
//!
//! One cache per process (one process is one node), shared by every shard thread: a
//! script loaded on one connection runs by EVALSHA on any other. Each thread compiles
//! a script into its own Lua state the first time it runs it there; SCRIPT FLUSH bumps
//! a generation, which makes every thread drop its Lua state before its next script.
//!
//! Bounded: scripts that EVAL added (not SCRIPT LOAD's) are evicted oldest first past
//! [`EVAL_SCRIPTS_MAX`], as Redis 7.4 does (7.0 kept every script forever, which lets a
//! client that builds a new script per call grow the node without bound).

use super::flags::ScriptFlags;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Scripts added by EVAL kept at most.
pub const EVAL_SCRIPTS_MAX: usize = 500;

#[derive(Debug)]
pub struct Script {
    pub sha: String,
    pub body: Vec<u8>,
    pub flags: ScriptFlags,
    /// Bytes of the body that are the shebang line (kept out of the compiled code,
    /// except its line feed, so line numbers stay the user's).
    pub shebang_len: usize,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, (Arc<Script>, bool)>,
    /// EVAL-added scripts, oldest first (SCRIPT LOAD of one makes it permanent).
    eval_order: VecDeque<String>,
    bytes: usize,
}

pub struct ScriptCache {
    inner: Mutex<Inner>,
    generation: AtomicU64,
    evicted: AtomicU64,
}

/// The process's script cache.
pub fn cache() -> &'static ScriptCache {
    static CACHE: OnceLock<ScriptCache> = OnceLock::new();
    CACHE.get_or_init(|| ScriptCache {
        inner: Mutex::default(),
        generation: AtomicU64::new(0),
        evicted: AtomicU64::new(0),
    })
}

impl ScriptCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The script named `sha` (lower-case hex).
    pub fn get(&self, sha: &str) -> Option<Arc<Script>> {
        self.lock().scripts.get(sha).map(|(s, _)| s.clone())
    }

    pub fn contains(&self, sha: &[u8]) -> bool {
        let Ok(sha) = std::str::from_utf8(sha) else { return false };
        let lower = sha.to_ascii_lowercase();
        self.lock().scripts.contains_key(&lower)
    }

    /// Adds `script` (already checked to compile); `loaded` for SCRIPT LOAD, which is
    /// never evicted.
    pub fn insert(&self, script: Arc<Script>, loaded: bool) {
        let mut g = self.lock();
        if let Some(entry) = g.scripts.get_mut(&script.sha) {
            if loaded && !entry.1 {
                entry.1 = true;
                let sha = script.sha.clone();
                g.eval_order.retain(|s| *s != sha);
            }
            return;
        }
        g.bytes += script.body.len() + script.sha.len();
        if !loaded {
            g.eval_order.push_back(script.sha.clone());
        }
        g.scripts.insert(script.sha.clone(), (script, loaded));
        while g.eval_order.len() > EVAL_SCRIPTS_MAX {
            let Some(old) = g.eval_order.pop_front() else { break };
            if let Some((s, _)) = g.scripts.remove(&old) {
                g.bytes -= s.body.len() + s.sha.len();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// SCRIPT FLUSH: forgets every script; every thread's Lua state is rebuilt.
    pub fn flush(&self) {
        let mut g = self.lock();
        *g = Inner::default();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// INFO: `number_of_cached_scripts` and the bytes their bodies and names take.
    pub fn stats(&self) -> (usize, usize) {
        let g = self.lock();
        (g.scripts.len(), g.bytes)
    }

    /// Scripts evicted from the cache since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}
