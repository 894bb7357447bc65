//! The emails the service sends, rendered when queued and stored in the durable outbox.

use super::ports::OutgoingEmail;
use super::{Auth, Result};

pub const TEMPLATE_EMAIL_VERIFICATION: &str = "email-verification";
pub const TEMPLATE_ALREADY_REGISTERED: &str = "already-registered";
pub const TEMPLATE_LOGIN_CODE: &str = "device-approval-code";
pub const TEMPLATE_CONCURRENT_LOGIN: &str = "device-approval-concurrent-login";
pub const TEMPLATE_PASSWORD_RESET: &str = "password-reset";
pub const TEMPLATE_TEAM_INVITE: &str = "team-invite";
pub const TEMPLATE_NEW_DEVICE: &str = "new-device-sign-in";

/// The longest team or role name put into an email, in characters.
const MAX_NAME_IN_EMAIL: usize = 40;

/// A name chosen by a user, fit for a subject line: no control or invisible format characters,
/// whitespace collapsed, at most `MAX_NAME_IN_EMAIL` characters.
pub fn name_for_email(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !crate::domain::text::is_format_char(*c))
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.chars().count() > MAX_NAME_IN_EMAIL {
        let cut: String = joined.chars().take(MAX_NAME_IN_EMAIL - 1).collect();
        format!("{}…", cut.trim_end())
    } else {
        joined
    }
}

pub fn team_invite(to: &str, team: &str, role: &str, link: &str) -> OutgoingEmail {
    let team = name_for_email(team);
    let role = name_for_email(role);
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_TEAM_INVITE.to_owned(),
        subject: format!("You are invited to join {team} on mbpanel"),
        text: format!(
            "Hello,\n\nyou are invited to join the team {team} on mbpanel as {role}.\n\n\
             Sign in (or create an account with this email address), then open:\n\n{link}\n\n\
             The invitation works once and expires in 7 days.\n"
        ),
        model: serde_json::json!({ "team": team, "role": role, "action_url": link }),
    }
}

pub fn concurrent_login(
    to: &str,
    name: &str,
    device: &str,
    ip: &str,
    approve_url: &str,
    deny_url: &str,
    ttl_minutes: u64,
) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_CONCURRENT_LOGIN.to_owned(),
        subject: "Approve a new sign-in to mbpanel".to_owned(),
        text: format!(
            "Hello {name},\n\nsomeone is signing in to your mbpanel account while you are signed in elsewhere.\n\n\
             Device: {device}\nIP address: {ip}\n\nApprove: {approve_url}\nDeny: {deny_url}\n\n\
             The request expires in {ttl_minutes} minutes. If this was not you, deny it and change your password.\n"
        ),
        model: serde_json::json!({
            "name": name, "device": device, "ip": ip, "approve_url": approve_url, "deny_url": deny_url,
            "ttl_minutes": ttl_minutes, "kind": "concurrent_login",
        }),
    }
}

pub fn password_reset(to: &str, name: &str, link: &str, ttl_minutes: u64) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_PASSWORD_RESET.to_owned(),
        subject: "Reset your mbpanel password".to_owned(),
        text: format!(
            "Hello {name},\n\nto choose a new password, open this link:\n\n{link}\n\n\
             It works once and expires in {ttl_minutes} minutes. Resetting signs you out everywhere. \
             If you did not ask for this, ignore this email.\n"
        ),
        model: serde_json::json!({ "name": name, "action_url": link, "ttl_minutes": ttl_minutes }),
    }
}

pub fn email_verification(to: &str, name: &str, link: &str, ttl_hours: u64) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_EMAIL_VERIFICATION.to_owned(),
        subject: "Verify your email address".to_owned(),
        text: format!(
            "Hello {name},\n\nconfirm your email address for mbpanel by opening this link:\n\n{link}\n\n\
             The link works once and expires in {ttl_hours} hours. If you did not sign up, ignore this email.\n"
        ),
        model: serde_json::json!({ "name": name, "action_url": link, "ttl_hours": ttl_hours }),
    }
}

pub fn already_registered(to: &str, login_url: &str) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_ALREADY_REGISTERED.to_owned(),
        subject: "Someone tried to sign up with your email".to_owned(),
        text: format!(
            "Hello,\n\nsomeone (perhaps you) tried to create an mbpanel account with this address, \
             which already has one. Sign in at {login_url}. If it was not you, you can ignore this email.\n"
        ),
        model: serde_json::json!({ "login_url": login_url }),
    }
}

pub fn login_code(
    to: &str,
    name: &str,
    code: &str,
    device: &str,
    ip: &str,
    ttl_minutes: u64,
) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_LOGIN_CODE.to_owned(),
        subject: format!("Your mbpanel sign-in code: {code}"),
        text: format!(
            "Hello {name},\n\na sign-in from a new device needs your approval.\n\n\
             Device: {device}\nIP address: {ip}\n\nYour verification code: {code}\n\n\
             It expires in {ttl_minutes} minutes. If this was not you, change your password.\n"
        ),
        model: serde_json::json!({
            "name": name, "code": code, "device": device, "ip": ip, "ttl_minutes": ttl_minutes, "kind": "login_code",
        }),
    }
}

pub struct NewDeviceAlert<'a> {
    pub device: &'a str,
    pub ip: &'a str,
    /// RFC 3339, UTC.
    pub at: &'a str,
    pub not_me_url: &'a str,
    pub ttl_hours: u64,
}

pub fn new_device(to: &str, name: &str, a: &NewDeviceAlert<'_>) -> OutgoingEmail {
    let NewDeviceAlert {
        device,
        ip,
        at,
        not_me_url,
        ttl_hours,
    } = a;
    OutgoingEmail {
        to: to.to_owned(),
        template: TEMPLATE_NEW_DEVICE.to_owned(),
        subject: "New sign-in to your mbpanel account".to_owned(),
        text: format!(
            "Hello {name},\n\nyour mbpanel account was signed in to from a new device.\n\n\
             Device: {device}\nIP address: {ip}\nTime: {at}\n\n\
             If this was you, there is nothing to do. If this wasn't you, open this link: it signs \
             you out everywhere, forgets your trusted devices and sends you a password reset link.\n\n\
             {not_me_url}\n\nThe link works once and expires in {ttl_hours} hours.\n"
        ),
        model: serde_json::json!({
            "name": name, "device": device, "ip": ip, "time": at, "action_url": not_me_url,
            "ttl_hours": ttl_hours, "kind": "new_device",
        }),
    }
}

impl Auth {
    /// Stores the message in the outbox before the request returns; the worker sends it.
    pub(crate) async fn queue_email(&self, email: OutgoingEmail) -> Result<()> {
        let payload = serde_json::json!({
            "template": email.template,
            "subject": email.subject,
            "text": email.text,
            "model": email.model,
        });
        self.repo
            .enqueue_email(
                &email.to,
                &email.template,
                &payload.to_string(),
                self.now_ms(),
            )
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }
}

/// Rebuilds an outgoing email from its outbox row.
pub fn from_outbox(to: &str, payload: &str) -> Option<OutgoingEmail> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some(OutgoingEmail {
        to: to.to_owned(),
        template: v.get("template")?.as_str()?.to_owned(),
        subject: v.get("subject")?.as_str()?.to_owned(),
        text: v.get("text")?.as_str()?.to_owned(),
        model: v.get("model").cloned().unwrap_or_default(),
    })
}
