//! Room and tenant names. Rooms live inside a tenant; a typo in a room name
//! would silently deliver nothing, so unknown names are rejected.

/// The fixed rooms of every tenant.
pub const ROOMS: [&str; 7] = [
    "dashboard",
    "conversations",
    "campaigns",
    "erp",
    "ai",
    "alerts",
    "presence",
];

/// Prefixes of keyed rooms: `campaign:{id}`, `conversation:{id}`, `user:{id}`.
pub const KEYED_PREFIXES: [&str; 3] = ["campaign", "conversation", "user"];

/// Longest key of a keyed room and longest tenant id.
const MAX_KEY: usize = 128;

fn key_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+')
}

/// Checks a room name; the error says what is wrong and what is accepted.
pub fn validate_room(name: &str) -> Result<(), String> {
    if ROOMS.contains(&name) {
        return Ok(());
    }
    if let Some((prefix, key)) = name.split_once(':') {
        if !KEYED_PREFIXES.contains(&prefix) {
            return Err(format!(
                "unknown keyed room `{name}`: the prefix must be one of campaign, conversation, user"
            ));
        }
        if key.is_empty() || key.len() > MAX_KEY || !key.chars().all(key_char_ok) {
            return Err(format!(
                "bad room key in `{name}`: 1 to {MAX_KEY} characters of A-Z a-z 0-9 _ - . @ +"
            ));
        }
        return Ok(());
    }
    Err(format!(
        "unknown room `{name}`: expected one of {} or campaign:ID, conversation:ID, user:ID",
        ROOMS.join(", ")
    ))
}

/// Checks a tenant id.
pub fn validate_tenant(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_KEY || !id.chars().all(key_char_ok) {
        return Err(format!(
            "bad tenant id `{id}`: 1 to {MAX_KEY} characters of A-Z a-z 0-9 _ - . @ +"
        ));
    }
    Ok(())
}

/// The keyed room for an id taken from event data (a string or an
/// integer); the error says what a key may hold.
pub fn keyed(prefix: &str, id: &serde_json::Value) -> Result<String, String> {
    let key = match id {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(format!(
                "expected a string or an integer to key the `{prefix}:` room, got {}",
                super::events::json_type(id)
            ))
        }
    };
    if key.is_empty() || key.len() > MAX_KEY || !key.chars().all(key_char_ok) {
        return Err(format!(
            "cannot key the `{prefix}:` room: 1 to {MAX_KEY} characters of A-Z a-z 0-9 _ - . @ +"
        ));
    }
    Ok(format!("{prefix}:{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_checked() {
        assert!(validate_room("dashboard").is_ok());
        assert!(validate_room("campaign:CAMP-123").is_ok());
        assert!(validate_room("conversation:42").is_ok());
        assert!(validate_room("dashbord")
            .unwrap_err()
            .contains("unknown room"));
        assert!(validate_room("team:1").unwrap_err().contains("prefix"));
        assert!(validate_room("user:").unwrap_err().contains("bad room key"));
        assert!(validate_room("user:a b").is_err());
    }

    #[test]
    fn keyed_rooms_take_strings_and_numbers() {
        assert_eq!(
            keyed("campaign", &serde_json::json!(7)).as_deref(),
            Ok("campaign:7")
        );
        assert_eq!(
            keyed("user", &serde_json::json!("u1")).as_deref(),
            Ok("user:u1")
        );
        assert!(keyed("user", &serde_json::json!(true)).is_err());
        assert!(keyed("user", &serde_json::json!("a'b")).is_err());
    }
}
