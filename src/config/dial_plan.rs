//! How a number the browser dialed becomes the Request-URI user sent to a trunk or PBX, per
//! profile: strip an outside-line prefix, prepend a prefix, and optionally normalize to E.164
//! (`+` and country code) the way carriers want it.

use serde::Deserialize;

/// The `[dial]` table of a profile file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialPlan {
    /// Removed when the dialed number starts with it (e.g. "9" for an outside line).
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Added in front after stripping (e.g. a carrier's tech prefix).
    #[serde(default)]
    pub prepend: Option<String>,
    /// Enables E.164: "0044…" and "+44…" stay international, a national "0…" becomes "+44…",
    /// and a bare subscriber number gets "+44" too. Digits only, without "+".
    #[serde(default)]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialError(pub String);

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DialPlan {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cc) = &self.country_code {
            if cc.is_empty() || cc.len() > 3 || !cc.chars().all(|c| c.is_ascii_digit()) || cc.starts_with('0') {
                return Err(format!("country_code `{cc}` must be 1 to 3 digits without + (e.g. \"44\")"));
            }
        }
        for (name, value) in [("strip_prefix", &self.strip_prefix), ("prepend", &self.prepend)] {
            if value.as_deref().is_some_and(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_digit() || "+*#".contains(c))) {
                return Err(format!("{name} must be digits (or + * #)"));
            }
        }
        Ok(())
    }

    /// The user part to send for `dialed`. Separators people type (spaces, dashes, dots,
    /// parentheses) are dropped; anything else that is not a digit is refused.
    pub fn apply(&self, dialed: &str) -> Result<String, DialError> {
        let mut number: String = dialed.chars().filter(|c| !" -.()".contains(*c)).collect();
        let is_number = !number.is_empty() && number.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || "*#".contains(c) || (i == 0 && c == '+'));
        if !is_number {
            // SIP user names (extensions like "alice") pass through untouched.
            return Ok(dialed.to_string());
        }
        if let Some(prefix) = self.strip_prefix.as_deref().filter(|p| number.starts_with(p) && number.len() > p.len()) {
            number = number[prefix.len()..].to_string();
        }
        if let Some(cc) = &self.country_code {
            number = if let Some(rest) = number.strip_prefix("00") {
                format!("+{rest}")
            } else if number.starts_with('+') {
                number
            } else if let Some(national) = number.strip_prefix('0') {
                format!("+{cc}{national}")
            } else {
                format!("+{cc}{number}")
            };
            let digits = number.len() - 1;
            if !(8..=15).contains(&digits) {
                return Err(DialError(format!("`{dialed}` is not a valid number (E.164 allows 8 to 15 digits)")));
            }
        }
        if let Some(prepend) = &self.prepend {
            number = format!("{prepend}{number}");
        }
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(strip: Option<&str>, prepend: Option<&str>, cc: Option<&str>) -> DialPlan {
        DialPlan { strip_prefix: strip.map(Into::into), prepend: prepend.map(Into::into), country_code: cc.map(Into::into) }
    }

    #[test]
    fn e164_normalization_with_an_outside_line_prefix() {
        let uk = plan(Some("9"), None, Some("44"));
        assert_eq!(uk.apply("9 020 7946 0018"), Ok("+442079460018".into()));
        assert_eq!(uk.apply("90044 20 7946 0018"), Ok("+442079460018".into()));
        assert_eq!(uk.apply("+1 (415) 555-0100"), Ok("+14155550100".into()));
        assert_eq!(uk.apply("2079460018"), Ok("+442079460018".into()), "a bare national number");
        assert!(uk.apply("9123").is_err(), "too short for E.164");
        assert!(uk.apply("+1234567890123456").is_err(), "too long for E.164");
    }

    #[test]
    fn strip_and_prepend_without_e164() {
        let carrier = plan(Some("0"), Some("1010"), None);
        assert_eq!(carrier.apply("0612345678"), Ok("1010612345678".into()));
        assert_eq!(carrier.apply("*97"), Ok("1010*97".into()));
        assert_eq!(DialPlan::default().apply("0612345678"), Ok("0612345678".into()));
        assert_eq!(DialPlan::default().apply("alice"), Ok("alice".into()), "user names pass through");
        assert_eq!(plan(Some("9"), None, None).apply("9"), Ok("9".into()), "never strips a number to nothing");
    }

    #[test]
    fn bad_plans_are_refused_at_load() {
        assert!(plan(None, None, Some("+44")).validate().is_err());
        assert!(plan(None, None, Some("0")).validate().is_err());
        assert!(plan(Some("9a"), None, None).validate().is_err());
        assert!(plan(Some("9"), Some("+"), Some("1")).validate().is_ok());
    }
}
