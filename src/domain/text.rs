//! Names people choose (roles, teams) shown to other people: they must not be able to look
//! like something they are not.

use unicode_normalization::UnicodeNormalization;

use super::permissions::BUILTIN_ROLES;

/// Invisible characters that change how text renders or compares without showing: the Unicode
/// format (Cf) characters in practical use, variation selectors and the tag block.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Letters of other scripts that render like the Latin letters of the built-in role names.
fn latin_lookalike(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'і' | 'ι' | 'ı' => 'i',
        'м' | 'μ' => 'm',
        'п' | 'η' => 'n',
        'о' | 'ο' | 'σ' | '0' => 'o',
        'г' => 'r',
        'ν' | 'ѵ' => 'v',
        'ш' | 'ԝ' | 'ω' => 'w',
        'ь' | 'в' | 'β' => 'b',
        'ⅰ' | 'l' | '1' | '|' => 'i',
        _ => c,
    }
}

/// What a name looks like, for comparing with the built-in names: NFKC, lower case, lookalikes
/// of other scripts folded to Latin, everything but letters dropped.
fn skeleton(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .map(latin_lookalike)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// A custom role name, normalised (NFKC, trimmed), or why it is refused: control and format
/// characters, and anything that reads as a built-in role name.
pub fn role_name(raw: &str, max_chars: usize) -> Result<String, String> {
    let name: String = raw.nfkc().collect::<String>().trim().to_owned();
    if name.is_empty() || name.chars().count() > max_chars {
        return Err(format!(
            "name must be 1 to {max_chars} printable characters"
        ));
    }
    if name.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err("name must not contain control or invisible characters".to_owned());
    }
    let looks_like = skeleton(&name);
    if let Some(builtin) = BUILTIN_ROLES.iter().find(|b| skeleton(b) == looks_like) {
        return Err(format!(
            "name must not look like the built-in role {builtin}"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::role_name;

    #[test]
    fn role_names_cannot_pass_for_built_in_ones() {
        for name in [
            "Owner",
            "owner",
            "OWNER",
            "Own\u{200B}er",
            "Ｏｗｎｅｒ",
            "Оwner",
            "0wner",
            "Ad min",
            "Own-er",
            "\u{202E}renwO",
        ] {
            assert!(role_name(name, 50).is_err(), "{name:?} accepted");
        }
        assert_eq!(role_name("  Deployer ", 50).unwrap(), "Deployer");
        assert_eq!(role_name("Ｄｅｐｌｏｙｅｒ", 50).unwrap(), "Deployer");
        assert!(role_name("Owners club", 50).is_ok());
    }
}
