//! What user SQL may do, as Cloudflare allows it: the authorizer (no transaction statements —
//! `transactionSync` opens savepoints itself — no `ATTACH`, no names starting with `_cf_`, only
//! the harmless pragmas) and SQLite's limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;

/// Cloudflare's limits (its documentation's, where it and workerd differ), named in README.
pub const LIMITS: [(Limit, i32); 12] = [
    (Limit::SQLITE_LIMIT_LENGTH, 2_000_000),
    (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (Limit::SQLITE_LIMIT_COLUMN, 100),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 32),
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
];

const TRANSACTIONS: &str = "To execute a transaction, please use the state.storage.transaction() \
     or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT \
     statements. The JavaScript API is safer because it will automatically roll back on \
     exceptions, and because it interacts correctly with Durable Objects' automatic atomic \
     write coalescing.";

/// Pragmas user SQL may run (Cloudflare's list).
const PRAGMAS: &[&str] = &[
    "data_version",
    "page_size",
    "case_sensitive_like",
    "foreign_keys",
    "defer_foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "quick_check",
    "optimize",
    "table_list",
    "table_info",
    "table_xinfo",
];

/// Pragmas that set a property of the connection rather than of the file: what the guest set is
/// kept (see [`Settings`]) and set again whenever duro reopens the connection, as Cloudflare's
/// connection keeps them.
const SETTINGS: &[&str] = &[
    "case_sensitive_like",
    "foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
];

/// The connection settings a guest's pragmas made (name, value), last one per name; they outlive
/// the connection (the object's storage view keeps them).
pub type Settings = Arc<Mutex<Vec<(String, String)>>>;

/// The authorizer's state, shared with the connection's hook.
#[derive(Clone, Default)]
pub struct Guard {
    /// Set while duro runs its own statements (savepoints, the size pragmas).
    pub internal: Arc<AtomicBool>,
    /// Why the last refused statement was refused.
    pub refusal: Arc<Mutex<Option<String>>>,
    /// What the guest's pragmas set on the connection.
    pub settings: Settings,
}

impl Guard {
    /// Installs the authorizer and the limits on `conn`.
    pub fn install(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        for (limit, value) in LIMITS {
            conn.set_limit(limit, value)?;
        }
        let guard = self.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if guard.internal.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            match refusal(&ctx.action) {
                None => {
                    if let AuthAction::Pragma {
                        pragma_name,
                        pragma_value: Some(value),
                    } = ctx.action
                    {
                        guard.remember(pragma_name, value);
                    }
                    Authorization::Allow
                }
                Some(why) => {
                    *guard.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    Authorization::Deny
                }
            }
        }))
    }

    /// Sets on `conn` what the guest's pragmas set on the connections before it.
    pub fn restore(&self, conn: &Connection) -> rusqlite::Result<()> {
        let settings = crate::lock(&self.settings).clone();
        self.internally(|| {
            settings.iter().try_for_each(|(name, value)| {
                conn.execute_batch(&format!("PRAGMA {name} = {value}"))
            })
        })
    }

    /// Keeps a connection setting the guest made (a plain word or number as its value only:
    /// it is written into a statement again).
    fn remember(&self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain || !SETTINGS.contains(&name.as_str()) {
            return;
        }
        let mut settings = crate::lock(&self.settings);
        settings.retain(|(n, _)| *n != name);
        settings.push((name, value.to_string()));
    }

    /// Takes the reason of the last refusal, if any.
    pub fn take_refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Runs `f` with the authorizer letting everything through.
    pub fn internally<T>(&self, f: impl FnOnce() -> T) -> T {
        self.internal.store(true, Ordering::Relaxed);
        let out = f();
        self.internal.store(false, Ordering::Relaxed);
        out
    }
}

/// Why `action` is refused to user SQL, if it is.
fn refusal(action: &AuthAction<'_>) -> Option<String> {
    use AuthAction::*;
    let reserved = |name: &str| {
        name.get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("_cf_"))
            .then(|| {
                format!("access to {name}.* is prohibited: names starting with _cf_ are reserved")
            })
    };
    match *action {
        Transaction { .. } | Savepoint { .. } => Some(TRANSACTIONS.into()),
        // VACUUM runs by attaching a temporary database: it meets the same refusal.
        Attach { .. } | Detach { .. } => Some(
            "ATTACH and DETACH are not allowed (nor VACUUM, which attaches a temporary \
             database; the pages a delete frees are reused)"
                .into(),
        ),
        Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            if !PRAGMAS.contains(&name.as_str()) {
                return Some(format!("not authorized to use pragma {pragma_name}"));
            }
            // `table_info(_cf_x)` and friends would show the reserved tables.
            pragma_value.and_then(reserved)
        }
        CreateTable { table_name }
        | CreateTempTable { table_name }
        | DropTable { table_name }
        | DropTempTable { table_name }
        | Insert { table_name }
        | Delete { table_name }
        | Read { table_name, .. }
        | Update { table_name, .. }
        | Analyze { table_name }
        | CreateVtable { table_name, .. }
        | DropVtable { table_name, .. } => reserved(table_name),
        AlterTable { table_name, .. } => reserved(table_name),
        CreateIndex {
            index_name,
            table_name,
        }
        | CreateTempIndex {
            index_name,
            table_name,
        }
        | DropIndex {
            index_name,
            table_name,
        }
        | DropTempIndex {
            index_name,
            table_name,
        } => reserved(index_name).or_else(|| reserved(table_name)),
        CreateTrigger {
            trigger_name,
            table_name,
        }
        | CreateTempTrigger {
            trigger_name,
            table_name,
        }
        | DropTrigger {
            trigger_name,
            table_name,
        }
        | DropTempTrigger {
            trigger_name,
            table_name,
        } => reserved(trigger_name).or_else(|| reserved(table_name)),
        CreateView { view_name }
        | CreateTempView { view_name }
        | DropView { view_name }
        | DropTempView { view_name } => reserved(view_name),
        Reindex { index_name } => reserved(index_name),
        _ => None,
    }
}
