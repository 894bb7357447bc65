//! SQLite binds `$N` placeholders by position of first use, PostgreSQL by number: a statement
//! whose placeholders are not numbered in order of first use binds the wrong values on SQLite.
//! This test reads every SQL string of the store's source and fails on such a statement.

/// The string literals of Rust source (plain and raw), skipping comments and char literals.
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let (mut i, mut out) = (0, Vec::new());
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"'), or a lifetime ('a): skip accordingly.
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = src[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push(src[start..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    s.push(b[i] as char);
                    i += 1;
                }
                out.push(s);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The `$N` of a statement in order of appearance.
fn placeholders(sql: &str) -> Vec<u32> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    for (i, c) in b.iter().enumerate() {
        if *c == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
    }
    out
}

/// `None` when each new placeholder is one more than the highest so far; else the first
/// out-of-order one.
fn first_out_of_order(numbers: &[u32]) -> Option<u32> {
    let mut highest = 0;
    for &n in numbers {
        if n > highest {
            if n != highest + 1 {
                return Some(n);
            }
            highest = n;
        }
    }
    None
}

#[test]
fn every_statement_numbers_its_placeholders_in_order_of_first_use() {
    let sources = [
        ("accounts.rs", include_str!("accounts.rs")),
        ("events.rs", include_str!("events.rs")),
        ("invites.rs", include_str!("invites.rs")),
        ("migrations.rs", include_str!("migrations.rs")),
        ("mod.rs", include_str!("mod.rs")),
        ("postgres.rs", include_str!("postgres.rs")),
        ("retention.rs", include_str!("retention.rs")),
        ("sessions.rs", include_str!("sessions.rs")),
        ("teams.rs", include_str!("teams.rs")),
    ];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (file, src) in sources {
        for sql in string_literals(src) {
            let numbers = placeholders(&sql);
            if numbers.is_empty() {
                continue;
            }
            checked += 1;
            if let Some(n) = first_out_of_order(&numbers) {
                wrong.push(format!("{file}: ${n} out of order in {sql:?}"));
            }
        }
    }
    assert!(
        checked >= 50,
        "only {checked} statements found: is the scan broken?"
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_check_catches_a_wrong_order() {
    let src = r##"const A: &str = "UPDATE t SET a = $2 WHERE id = $1"; // "$3 $1"
        const B: &str = r#"SELECT $1, $2, $1, $3"#; let c = '"'; fn f<'a>() {}"##;
    let literals = string_literals(src);
    assert_eq!(
        literals,
        vec!["UPDATE t SET a = $2 WHERE id = $1", "SELECT $1, $2, $1, $3"]
    );
    assert_eq!(first_out_of_order(&placeholders(&literals[0])), Some(2));
    assert_eq!(first_out_of_order(&placeholders(&literals[1])), None);
    assert_eq!(first_out_of_order(&[1, 3]), Some(3));
}
