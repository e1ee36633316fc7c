//! The node's side of web UI accounts: adding, listing, removing them, changing a
//! password (which ends the account's sessions), and logging in with a password under
//! the login throttle.

use super::ui_accounts::{self, AccountRecord, Role, UiAccount};
use super::ui_login::Who;
use super::{Node, Result};
use crate::machine::Error as MachineError;
use crate::peer::{PeerError, lock};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How a password login ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// Logged in: the new session id and who it is.
    LoggedIn {
        /// Session id for the cookie.
        session: String,
        /// The account and its role.
        who: Who,
    },
    /// Wrong name or password (which one is not said).
    Wrong,
    /// Too many failures from this address or for this name: try again after this long.
    Throttled(Duration),
}

fn now_ms() -> i64 {
    crate::time::now_ms()
}

impl Node {
    fn account_record(&self, name: &str) -> Result<Option<AccountRecord>> {
        let bytes = lock(&self.local.machine)
            .store()
            .ui_account(name)
            .map_err(MachineError::from)?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    fn put_account(&self, name: &str, record: &AccountRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| PeerError::Invalid(e.to_string()))?;
        lock(&self.local.machine)
            .store()
            .set_ui_account(name, Some(&bytes))
            .map_err(MachineError::from)?;
        Ok(())
    }

    /// Adds a web UI account. The password is checked for length and stored only as an
    /// argon2id hash.
    pub fn ui_user_add(&self, name: &str, role: Role, password: &str) -> Result<UiAccount> {
        ui_accounts::check_name(name).map_err(PeerError::Invalid)?;
        ui_accounts::check_password(password).map_err(PeerError::Invalid)?;
        if self.account_record(name)?.is_some() {
            return Err(PeerError::Invalid(format!(
                "an account named {name:?} exists: change its password with `leanspec-peer ui-user passwd {name}`, or remove it first"
            )));
        }
        let now = now_ms();
        let record = AccountRecord {
            role,
            phc: ui_accounts::hash_password(password).map_err(PeerError::Invalid)?,
            epoch: 0,
            created_ms: now,
            password_changed_ms: now,
        };
        self.put_account(name, &record)?;
        Ok(record.listed(name))
    }

    /// Every web UI account, by name.
    pub fn ui_users(&self) -> Result<Vec<UiAccount>> {
        let rows = lock(&self.local.machine)
            .store()
            .ui_accounts()
            .map_err(MachineError::from)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, bytes)| {
                serde_json::from_slice::<AccountRecord>(&bytes)
                    .ok()
                    .map(|r| r.listed(&name))
            })
            .collect())
    }

    /// Sets an account's password and logs it out everywhere.
    pub fn ui_user_passwd(&self, name: &str, password: &str) -> Result<UiAccount> {
        ui_accounts::check_password(password).map_err(PeerError::Invalid)?;
        let mut record = self.account_record(name)?.ok_or_else(|| unknown(name))?;
        record.phc = ui_accounts::hash_password(password).map_err(PeerError::Invalid)?;
        record.epoch += 1;
        record.password_changed_ms = now_ms();
        self.put_account(name, &record)?;
        self.ui_logins.end_sessions_of(name);
        Ok(record.listed(name))
    }

    /// Removes an account and ends its sessions.
    pub fn ui_user_remove(&self, name: &str) -> Result<()> {
        let existed = lock(&self.local.machine)
            .store()
            .set_ui_account(name, None)
            .map_err(MachineError::from)?;
        self.ui_logins.end_sessions_of(name);
        if existed { Ok(()) } else { Err(unknown(name)) }
    }

    /// Logs in to the web UI with a name and password from `from`. Takes one argon2id
    /// check (tens of milliseconds of CPU): hosts run it off their async threads and
    /// bound how many run at once. Refused without checking while throttled.
    pub fn ui_login(&self, name: &str, password: &str, from: IpAddr) -> Result<LoginOutcome> {
        let now = Instant::now();
        if let Err(wait) = self.ui_logins.throttled(from, name, now) {
            return Ok(LoginOutcome::Throttled(wait));
        }
        let record = if ui_accounts::check_name(name).is_ok()
            && password.len() <= ui_accounts::MAX_PASSWORD_BYTES
        {
            self.account_record(name)?
        } else {
            None
        };
        if !ui_accounts::password_ok(record.as_ref().map(|r| r.phc.as_str()), password) {
            self.ui_logins.login_failed(from, name, now);
            tracing::info!(account = name, %from, "web UI login refused: wrong name or password");
            return Ok(LoginOutcome::Wrong);
        }
        let Some(record) = record else {
            return Ok(LoginOutcome::Wrong);
        };
        // Successful logins are limited per account (each opens a session).
        if let Err(wait) = self.ui_logins.login_rate(name, now) {
            return Ok(LoginOutcome::Throttled(wait));
        }
        let who = Who {
            account: Some(name.to_string()),
            role: record.role,
        };
        let session = self
            .ui_logins
            .open(who.clone(), now)
            .ok_or_else(|| PeerError::Invalid("no randomness available for a session".into()))?;
        // A password change between the check and here must not leave this session.
        if self.account_record(name)?.map(|r| r.epoch) != Some(record.epoch) {
            self.ui_logins.end(&session);
            return Ok(LoginOutcome::Wrong);
        }
        self.ui_logins.login_succeeded(name, now);
        tracing::info!(account = name, %from, role = record.role.as_str(), "web UI login");
        Ok(LoginOutcome::LoggedIn { session, who })
    }
}

fn unknown(name: &str) -> PeerError {
    PeerError::Machine(MachineError::UnknownUiAccount {
        name: name.to_string(),
    })
}
