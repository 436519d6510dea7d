//! Tests of the password-file parser, the hash schemes (against vectors
//! computed by independent implementations) and the editing operations.

use super::*;

// Computed with Python's hashlib, independently of this code:
//
//   import hashlib, base64
//   salt = bytes(range(1, 13)); pw = b"password"
//   h6 = hashlib.sha512(pw + salt).digest()
//   h7 = hashlib.pbkdf2_hmac('sha512', pw, salt, 101, 64)
//   h7b = hashlib.pbkdf2_hmac('sha512', b"correct horse", salt, 1000, 64)
//   "$6$%s$%s" % (b64encode(salt), b64encode(h6)), and so on.
const V6_PASSWORD: &str =
    "$6$AQIDBAUGBwgJCgsM$VAE4iiG4X8R0u8r7L6jZAUj8HcNCmOJkImcb96pY+1NnTcLQalDWS+60RpHU0swm8QXqKGBl65uEAilSL4tDvQ==";
const V7_PASSWORD_101: &str =
    "$7$101$AQIDBAUGBwgJCgsM$vi3gtTBBsyA0ndLJ0V/YApuRViDA9ghC166cp1AjnIEUVevnLN/JRt4mV1VV33uV0F7F5qO0R1SqlyHqKHWWdg==";
const V7_HORSE_1000: &str =
    "$7$1000$AQIDBAUGBwgJCgsM$tGLKLWHdOOVi5QYCTE/yQauJjKZT84XrUlTHmijBs37klJudr8jcrIxUoQxxYAlNJe7LFgnnMgBruKze4qSrbg==";

// Written by the real `mosquitto_passwd` 2.0.11 (`-c -b`, and `-H sha512`
// for carol): alice / "secret pw", bob / "hunter2", carol / "legacy".
const MOSQUITTO_FILE: &str = "\
alice:$7$101$tDf510OKJz//BNkp$PImF1/6TWdVBUhGqIN+lDYbgJdUzaEybR0cSOi6ZDMxV1HKvpUSALHuuFBa3RLr/9VtjdgIqnY6oH9xQkim5tg==
bob:$7$101$/wBXMU8ST+K4Ohok$UTkG4aEAol/wO3Yfqm38PuGbjzG1yhH0b7gKT/UBpQxgRHTlNTvbsLtzAZw/AEvNzgHV1ABxQZYWyAzVSv2hkg==
carol:$6$EPEi3ECZNF5959Ao$jNl4lRtb3AoExwls2ODX1QzFH9iIQfcgyUvM291KGFCwfLMXejRNxOt30Y8G6L8RFPfCQHX5uPP7AO1lyDueUQ==
";

// Computed with the reference Argon2 library's command line (Debian's
// `argon2` 0~20190702), the library Mosquitto 2.1 links:
//   echo -n password | argon2 somesaltsomesalt -id -t 2 -k 64 -p 1 -l 32 -e
//   echo -n password | argon2 somesaltsomesalt -id -t 2 -k 64 -p 2 -l 32 -e -v 10
//   echo -n mosquitto | argon2 "$(printf 'S%.0s' $(seq 64))" -id -t 1 -k 47104 -p 1 -l 64 -e
const ARGON2_SMALL: &str =
    "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Gpj7qOY5RCXJvcMzqcdQqvgR3wcPX7SleI4c9NtXk6E";
const ARGON2_V16_TWO_LANES: &str =
    "$argon2id$v=16$m=64,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$0YGmrYsZSYbI/L9sg9DpEtqjC2WqC4EPviPJo/K96RE";
const ARGON2_MOSQUITTO_21: &str = "$argon2id$v=19$m=47104,t=1,p=1$U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTUw$R6zuk4Yqz+Sjk/YEJMnCJgv3w8+iVrfJYAWmsWEgOpOQzh0pvZwi3N/zkL24iuadjVU4hwnxlq0p7DDrQ9IXRw";
// The same library's Argon2i output: not a Mosquitto hash.
const ARGON2I: &str = "$argon2i$v=19$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$pbigQcuZHII9wPBZI5URmc0Lp86D/tE0caICkLhLFTQ";

fn parse_err(text: &str) -> (usize, LineProblem, String) {
    match PasswordFile::parse(text, "pw.txt") {
        Err(e @ PasswdError::Parse { .. }) => {
            let message = e.to_string();
            let PasswdError::Parse { line, problem, .. } = e else { unreachable!() };
            (line, problem, message)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn sha512_vector_verifies() {
    assert_eq!(verify_encoded(V6_PASSWORD, b"password"), Ok(true));
    assert_eq!(verify_encoded(V6_PASSWORD, b"Password"), Ok(false));
    assert_eq!(verify_encoded(V6_PASSWORD, b""), Ok(false));
}

#[test]
fn pbkdf2_vectors_verify() {
    assert_eq!(verify_encoded(V7_PASSWORD_101, b"password"), Ok(true));
    assert_eq!(verify_encoded(V7_PASSWORD_101, b"password "), Ok(false));
    assert_eq!(verify_encoded(V7_HORSE_1000, b"correct horse"), Ok(true));
    assert_eq!(verify_encoded(V7_HORSE_1000, b"password"), Ok(false));
}

#[test]
fn padding_is_optional_for_sha_hashes() {
    let unpadded = V7_PASSWORD_101.trim_end_matches('=');
    assert_eq!(verify_encoded(unpadded, b"password"), Ok(true));
}

#[test]
fn argon2id_vectors_verify() {
    assert_eq!(verify_encoded(ARGON2_SMALL, b"password"), Ok(true));
    assert_eq!(verify_encoded(ARGON2_SMALL, b"passwore"), Ok(false));
    assert_eq!(verify_encoded(ARGON2_V16_TWO_LANES, b"password"), Ok(true));
    assert_eq!(verify_encoded(ARGON2_V16_TWO_LANES, b"pass"), Ok(false));
}

#[test]
fn argon2id_with_mosquitto_21_costs_verifies() {
    assert_eq!(verify_encoded(ARGON2_MOSQUITTO_21, b"mosquitto"), Ok(true));
}

#[test]
fn argon2id_without_version_is_version_16() {
    let no_version = ARGON2_V16_TWO_LANES.replace("v=16$", "");
    assert_eq!(verify_encoded(&no_version, b"password"), Ok(true));
}

#[test]
fn real_mosquitto_passwd_output_verifies() {
    let file = PasswordFile::parse(MOSQUITTO_FILE, "mosquitto.pw").unwrap();
    assert_eq!(file.len(), 3);
    assert!(file.check("alice", b"secret pw"));
    assert!(file.check("bob", b"hunter2"));
    assert!(file.check("carol", b"legacy"));
    assert!(!file.check("alice", b"hunter2"));
    assert!(!file.check("carol", b"Legacy"));
    assert!(!file.check("dave", b"secret pw"));
    assert!(!file.check("", b""));
}

#[test]
fn every_line_form_parses() {
    let text = format!(
        "# a comment\n\n   \n  # an indented comment\nplain:{V6_PASSWORD}\n  spaced  :  {V7_PASSWORD_101}  \r\ncrlf:{ARGON2_SMALL}\r\nwith space:{V7_HORSE_1000}"
    );
    let file = PasswordFile::parse(&text, "pw.txt").unwrap();
    assert_eq!(file.users().collect::<Vec<_>>(), ["plain", "spaced", "crlf", "with space"]);
    assert!(file.check("plain", b"password"));
    assert!(file.check("spaced", b"password"));
    assert!(file.check("crlf", b"password"));
    assert!(file.check("with space", b"correct horse"));
    assert!(!file.check(" spaced", b"password"));
}

#[test]
fn empty_and_comment_only_files_have_no_users() {
    for text in ["", "\n", "# nothing\n\n"] {
        let file = PasswordFile::parse(text, "pw.txt").unwrap();
        assert!(file.is_empty());
        assert!(!file.check("anyone", b""));
    }
}

#[test]
fn line_errors_name_file_and_line() {
    let cases: &[(&str, usize, LineProblem)] = &[
        ("# c\njust-a-user\n", 2, LineProblem::MissingColon),
        (":hash\n", 1, LineProblem::EmptyUser),
        ("  :$6$x$y\n", 1, LineProblem::EmptyUser),
        ("\n\nbob:\n", 3, LineProblem::MissingHash("bob".into())),
        ("bob:   \n", 1, LineProblem::MissingHash("bob".into())),
    ];
    for (text, line, problem) in cases {
        let (got_line, got_problem, message) = parse_err(text);
        assert_eq!((got_line, &got_problem), (*line, problem), "{text:?}");
        assert!(message.starts_with(&format!("pw.txt:{line}: ")), "{message}");
    }
}

#[test]
fn duplicate_user_names_the_first_line() {
    let text = format!("a:{V6_PASSWORD}\n# c\na:{V7_PASSWORD_101}\n");
    let (line, problem, message) = parse_err(&text);
    assert_eq!(line, 3);
    assert_eq!(problem, LineProblem::DuplicateUser { user: "a".into(), first: 1 });
    assert_eq!(message, "pw.txt:3: user \"a\" is already defined on line 1");
}

#[test]
fn non_utf8_line_is_an_error() {
    let bytes = b"# ok\nb\xffd:$6$x$y\n";
    let Err(PasswdError::Parse { line, problem, .. }) = PasswordFile::parse_bytes(bytes, "pw.txt") else {
        panic!("expected a parse error");
    };
    assert_eq!((line, problem), (2, LineProblem::NotUtf8));
}

#[test]
fn overlong_user_name_is_an_error() {
    let text = format!("{}:{V6_PASSWORD}\n", "u".repeat(65536));
    assert_eq!(parse_err(&text).1, LineProblem::UserTooLong);
}

fn hash_problem(encoded: &str) -> HashProblem {
    let text = format!("u:{encoded}\n");
    match parse_err(&text).1 {
        LineProblem::Hash { user, problem } => {
            assert_eq!(user, "u");
            problem
        }
        other => panic!("expected a hash problem for {encoded:?}, got {other:?}"),
    }
}

#[test]
fn malformed_hashes_are_reported() {
    let salt = "AQIDBAUGBwgJCgsM";
    let hash = V6_PASSWORD.rsplit('$').next().unwrap();
    assert_eq!(hash_problem("plaintext"), HashProblem::UnknownScheme);
    assert_eq!(hash_problem("$5$abc$def"), HashProblem::UnknownScheme);
    assert_eq!(hash_problem(ARGON2I), HashProblem::UnknownScheme);
    assert!(matches!(hash_problem(&format!("$6${salt}")), HashProblem::Layout { .. }));
    assert!(matches!(hash_problem(&format!("$6${salt}${hash}$x")), HashProblem::Layout { .. }));
    assert!(matches!(hash_problem(&format!("$7${salt}${hash}")), HashProblem::Layout { .. }));
    assert_eq!(hash_problem(&format!("$7$0${salt}${hash}")), HashProblem::Iterations("0".into()));
    assert_eq!(hash_problem(&format!("$7$-5${salt}${hash}")), HashProblem::Iterations("-5".into()));
    assert_eq!(hash_problem(&format!("$7$+5${salt}${hash}")), HashProblem::Iterations("+5".into()));
    assert_eq!(hash_problem(&format!("$7$10x${salt}${hash}")), HashProblem::Iterations("10x".into()));
    assert_eq!(hash_problem(&format!("$7$99999999999${salt}${hash}")), HashProblem::Iterations("99999999999".into()));
    assert_eq!(hash_problem(&format!("$6$!!!!${hash}")), HashProblem::Base64 { field: "salt" });
    assert_eq!(hash_problem(&format!("$6${salt}$not*base64")), HashProblem::Base64 { field: "hash" });
    assert_eq!(hash_problem(&format!("$6$AQIDBAUG${hash}")), HashProblem::SaltLength(6));
    assert_eq!(hash_problem(&format!("$6${salt}$AQIDBAUG")), HashProblem::HashLength(6));
}

#[test]
fn sixty_four_byte_salts_of_mosquitto_21_are_read() {
    // Mosquitto 2.1 writes $7$ with a 64-byte salt; verify it with a hash
    // made here, the construction being fixed by the 12-byte vectors.
    let salt = [7u8; 64];
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(b"pw", &salt, 1000, &mut hash);
    let encoded = format!("$7$1000${}${}", STANDARD.encode(salt), STANDARD.encode(hash));
    assert_eq!(verify_encoded(&encoded, b"pw"), Ok(true));
}

#[test]
fn malformed_argon2id_hashes_are_reported() {
    let [salt, hash] = ["c29tZXNhbHRzb21lc2FsdA", "Gpj7qOY5RCXJvcMzqcdQqvgR3wcPX7SleI4c9NtXk6E"];
    let with = |version: &str, costs: &str| format!("$argon2id${version}{costs}${salt}${hash}");
    assert_eq!(hash_problem(&with("v=18$", "m=64,t=2,p=1")), HashProblem::Argon2Version("18".into()));
    assert!(matches!(hash_problem(&with("x=19$", "m=64,t=2,p=1")), HashProblem::Layout { .. }));
    assert!(matches!(hash_problem("$argon2id$v=19$m=64,t=2,p=1"), HashProblem::Layout { .. }));
    for costs in ["t=2,m=64,p=1", "m=64,t=2", "m=64,t=2,p=1,x=1", "m=,t=2,p=1", "m=6a,t=2,p=1", "m=+64,t=2,p=1"] {
        assert_eq!(hash_problem(&with("v=19$", costs)), HashProblem::Argon2Syntax(costs.into()), "{costs}");
    }
    assert_eq!(hash_problem(&with("v=19$", "m=4294967295,t=1,p=1")), HashProblem::Argon2Memory(4294967295));
    assert!(matches!(hash_problem(&with("v=19$", "m=64,t=0,p=1")), HashProblem::Argon2(_)));
    assert!(matches!(hash_problem(&with("v=19$", "m=1,t=1,p=1")), HashProblem::Argon2(_)));
    assert_eq!(
        hash_problem(&format!("$argon2id$v=19$m=64,t=2,p=1${salt}=${hash}")),
        HashProblem::Base64 { field: "salt" }
    );
    assert!(matches!(hash_problem(&format!("$argon2id$v=19$m=64,t=2,p=1$c2FsdA${hash}")), HashProblem::Argon2(_)));
}

#[test]
fn written_hashes_verify_and_have_mosquittos_layout() {
    let h7 = hash_password_7(b"pw", DEFAULT_PBKDF2_ITERATIONS).unwrap();
    let fields: Vec<&str> = h7.split('$').collect();
    assert_eq!(fields[..3], ["", "7", "101"]);
    assert_eq!((fields[3].len(), fields[4].len()), (16, 88), "12-byte salt, 64-byte hash, padded base64");
    assert_eq!(verify_encoded(&h7, b"pw"), Ok(true));
    assert_eq!(verify_encoded(&h7, b"pW"), Ok(false));
    assert_ne!(h7, hash_password_7(b"pw", 101).unwrap(), "fresh salt each time");

    let h6 = hash_password_6(b"pw").unwrap();
    assert!(h6.starts_with("$6$"));
    assert_eq!(verify_encoded(&h6, b"pw"), Ok(true));

    let small = Argon2Params { memory_kib: 64, passes: 2, lanes: 1 };
    let ha = hash_password_argon2id(b"pw", small).unwrap();
    let fields: Vec<&str> = ha.split('$').collect();
    assert_eq!(fields[..4], ["", "argon2id", "v=19", "m=64,t=2,p=1"]);
    assert_eq!((fields[4].len(), fields[5].len()), (86, 86), "64-byte salt and hash, unpadded base64");
    assert_eq!(verify_encoded(&ha, b"pw"), Ok(true));
    assert_eq!(verify_encoded(&ha, b"wp"), Ok(false));
}

#[test]
fn bad_hashing_parameters_are_refused() {
    assert!(matches!(hash_password_7(b"pw", 0), Err(PasswdError::Params(_))));
    let no_passes = Argon2Params { memory_kib: 64, passes: 0, lanes: 1 };
    assert!(matches!(hash_password_argon2id(b"pw", no_passes), Err(PasswdError::Params(_))));
    let huge = Argon2Params { memory_kib: u32::MAX, passes: 1, lanes: 1 };
    assert!(matches!(hash_password_argon2id(b"pw", huge), Err(PasswdError::Params(_))));
}

#[test]
fn default_scheme_is_mosquitto_20s() {
    assert_eq!(HashScheme::default(), HashScheme::Pbkdf2Sha512 { iterations: 101 });
    assert_eq!(Argon2Params::default(), Argon2Params { memory_kib: 47104, passes: 1, lanes: 1 });
}

#[test]
fn unknown_users_cost_a_typical_entrys_work() {
    let empty = PasswordFile::empty("pw.txt");
    assert_eq!(empty.dummy_cost(), CostKey::Pbkdf2 { iterations: 101, salt_len: 12 });

    // Two $7$ of 101 iterations against one $6$: the dummy is a $7$ of 101.
    let file = PasswordFile::parse(MOSQUITTO_FILE, "pw.txt").unwrap();
    assert_eq!(file.dummy_cost(), CostKey::Pbkdf2 { iterations: 101, salt_len: 12 });

    let text = format!("a:{V6_PASSWORD}\nb:{V7_HORSE_1000}\nc:{ARGON2_SMALL}\nd:{ARGON2_SMALL}\n");
    let file = PasswordFile::parse(&text, "pw.txt").unwrap();
    assert_eq!(file.dummy_cost(), CostKey::Argon2id { version: 0x13, m: 64, t: 2, p: 1, salt_len: 16, hash_len: 32 });
    // A tie goes to the first in file order.
    let text = format!("a:{V7_HORSE_1000}\nb:{V6_PASSWORD}\n");
    let file = PasswordFile::parse(&text, "pw.txt").unwrap();
    assert_eq!(file.dummy_cost(), CostKey::Pbkdf2 { iterations: 1000, salt_len: 12 });
}

#[test]
fn the_dummy_never_verifies() {
    let file = PasswordFile::parse(&format!("a:{ARGON2_SMALL}\n"), "pw.txt").unwrap();
    for password in [&b""[..], b"password", &[0u8; 64]] {
        assert!(!file.dummy.verify(password));
        assert!(!file.check("nobody", password));
    }
}

#[test]
fn edits_preserve_other_lines() {
    let text = format!("# users\nalice:{V6_PASSWORD}\n\n# the admin\nbob:{V7_PASSWORD_101}\n");
    let mut file = PasswordFile::parse(&text, "pw.txt").unwrap();

    let scheme = HashScheme::Pbkdf2Sha512 { iterations: 5 };
    assert!(file.set_password("alice", b"new", scheme).unwrap(), "alice existed");
    assert!(!file.set_password("carol", b"c", HashScheme::Sha512).unwrap(), "carol is new");
    assert!(file.check("alice", b"new"));
    assert!(!file.check("alice", b"password"));
    assert!(file.check("carol", b"c"));

    assert!(file.remove("bob"));
    assert!(!file.remove("bob"));
    assert!(!file.check("bob", b"password"));
    assert!(file.check("carol", b"c"), "indexes follow a removal");

    let out = file.to_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "# users");
    assert!(lines[1].starts_with("alice:$7$5$"));
    assert_eq!(lines[2..4], ["", "# the admin"]);
    assert!(lines[4].starts_with("carol:$6$"));
    assert_eq!(lines.len(), 5);

    let again = PasswordFile::parse(&out, "pw.txt").unwrap();
    assert!(again.check("alice", b"new"));
    assert!(again.check("carol", b"c"));
    assert_eq!(again.to_text(), out);
}

#[test]
fn unchanged_file_serializes_as_read() {
    let text = format!("# c\n\nalice:{V6_PASSWORD}\n");
    assert_eq!(PasswordFile::parse(&text, "pw.txt").unwrap().to_text(), text);
    assert_eq!(PasswordFile::parse(MOSQUITTO_FILE, "pw.txt").unwrap().to_text(), MOSQUITTO_FILE);
}

#[test]
fn set_hash_checks_the_encoding() {
    let mut file = PasswordFile::empty("pw.txt");
    assert!(!file.set_hash("x", V7_HORSE_1000).unwrap());
    assert!(file.check("x", b"correct horse"));
    assert_eq!(file.dummy_cost(), CostKey::Pbkdf2 { iterations: 1000, salt_len: 12 });
    assert!(matches!(file.set_hash("x", "$6$nope"), Err(PasswdError::InvalidHash(HashProblem::Layout { .. }))));
    assert!(file.check("x", b"correct horse"), "a refused edit changes nothing");
}

#[test]
fn user_names_that_cannot_be_written_are_refused() {
    let mut file = PasswordFile::empty("pw.txt");
    for user in ["", "a:b", "#admin", " lead", "trail ", "new\nline", "tab\there"] {
        let got = file.set_hash(user, V6_PASSWORD);
        assert!(matches!(got, Err(PasswdError::InvalidUser { .. })), "{user:?}: {got:?}");
    }
    assert!(file.is_empty());
    let err = file.set_hash("a:b", V6_PASSWORD).unwrap_err();
    assert_eq!(err.to_string(), "invalid user name \"a:b\": it contains `:`");
}

#[test]
fn load_and_save_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let mut file = PasswordFile::empty(path.display().to_string());
    file.set_password("u", b"p", HashScheme::Pbkdf2Sha512 { iterations: 3 }).unwrap();
    file.save(&path).unwrap();
    let loaded = PasswordFile::load(&path).unwrap();
    assert!(loaded.check("u", b"p"));
    assert!(!dir.path().join("passwd.tmp").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let err = PasswordFile::load(&missing).unwrap_err();
    assert!(matches!(err, PasswdError::Io { .. }));
    assert!(err.to_string().starts_with(&missing.display().to_string()), "{err}");

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "# one\nno colon here\n").unwrap();
    let err = PasswordFile::load(&bad).unwrap_err();
    assert_eq!(err.to_string(), format!("{}:2: expected `user:hash`, found no `:`", bad.display()));
}

/// Creates a file with the real `mosquitto_passwd` and checks it verifies.
/// Skipped (with a note) when the tool is absent, unless
/// `EDGEMQ_REQUIRE_INTEROP=1`.
#[test]
fn interop_with_mosquitto_passwd() {
    let required = std::env::var("EDGEMQ_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let run = |args: &[&str]| std::process::Command::new("mosquitto_passwd").args(args).output();
    let path_s = path.to_str().unwrap();
    match run(&["-c", "-b", path_s, "alice", "s3cret: with spaces"]) {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("mosquitto_passwd failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            assert!(!required, "EDGEMQ_REQUIRE_INTEROP=1 but mosquitto_passwd cannot run: {e}");
            eprintln!("note: skipping the mosquitto_passwd interop test: {e}");
            return;
        }
    }
    let out = run(&["-b", path_s, "bob", "b"]).unwrap();
    assert!(out.status.success());
    // `-H sha512` writes a $6$ hash (Mosquitto 2.0; 2.1 may refuse it).
    let sha512 = run(&["-H", "sha512", "-b", path_s, "carol", "c"]).unwrap().status.success();

    let file = PasswordFile::load(&path).unwrap();
    assert!(file.check("alice", b"s3cret: with spaces"));
    assert!(!file.check("alice", b"s3cret"));
    assert!(file.check("bob", b"b"));
    if sha512 {
        assert!(file.check("carol", b"c"));
    }

    // A file written here, edited by the tool (`-D` copies the other lines
    // as they are), still verifies.
    let mut mine = file.clone();
    mine.set_password("dave", b"d", HashScheme::default()).unwrap();
    mine.save(&path).unwrap();
    let out = run(&["-D", path_s, "bob"]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = PasswordFile::load(&path).unwrap();
    assert!(!after.contains("bob"));
    assert!(after.check("dave", b"d"));
    assert!(after.check("alice", b"s3cret: with spaces"));
}

/// A Mosquitto broker started for one test, ended (by its handle) on drop.
struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CONNECT (MQTT 3.1.1) with a user name and password; the CONNACK code.
fn connect_code(port: u16, user: &str, password: &[u8]) -> std::io::Result<u8> {
    use std::io::{Read as _, Write as _};
    let field = |bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    field(b"edgemq-interop", &mut body);
    field(user.as_bytes(), &mut body);
    field(password, &mut body);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(&packet)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    assert_eq!(connack[..2], [0x20, 2], "a CONNACK");
    Ok(connack[3])
}

/// The other direction: a file written here is accepted by the real
/// Mosquitto 2.0 broker (`$7$` and `$6$`; 2.0 cannot read `$argon2id$`).
/// Skipped (with a note) when `mosquitto` is absent, unless
/// `EDGEMQ_REQUIRE_INTEROP=1`.
#[test]
fn interop_with_the_mosquitto_broker() {
    let required = std::env::var("EDGEMQ_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let mut file = PasswordFile::empty("passwd");
    file.set_password("seven", b"pw 7", HashScheme::default()).unwrap();
    file.set_password("many", b"pw 7k", HashScheme::Pbkdf2Sha512 { iterations: 7000 }).unwrap();
    file.set_password("six", b"pw 6", HashScheme::Sha512).unwrap();
    file.save(&passwd).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.path().join("mosquitto.conf");
    let conf_text = format!(
        "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
        passwd.display()
    );
    std::fs::write(&conf, conf_text).unwrap();
    let child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let _broker = match child {
        Ok(child) => Broker(child),
        Err(e) => {
            assert!(!required, "EDGEMQ_REQUIRE_INTEROP=1 but mosquitto cannot run: {e}");
            eprintln!("note: skipping the Mosquitto broker interop test: {e}");
            return;
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        match connect_code(port, "seven", b"pw 7") {
            Ok(code) => break code,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the broker did not answer on port {port}: {e}"),
        }
    };
    assert_eq!(first, 0, "$7$ of 101 iterations accepted");
    assert_eq!(connect_code(port, "many", b"pw 7k").unwrap(), 0, "$7$ of 7000 iterations accepted");
    assert_eq!(connect_code(port, "six", b"pw 6").unwrap(), 0, "$6$ accepted");
    assert_ne!(connect_code(port, "seven", b"pw 6").unwrap(), 0, "a wrong password refused");
    assert_ne!(connect_code(port, "nobody", b"pw 7").unwrap(), 0, "an unknown user refused");
}
