//! The flag table as text: the usage line, `-h` (which the man page is made
//! from, packaging/man.py) and docs/flags.md.

use super::PASSWORD_ENV;
use super::defs::{Default, FLAGS, Flag, Section};

/// `usage: latency-logger [-h] … FILE`, every flag outside the Kafka and
/// spool sections, then `[KAFKA OPTIONS]`.
pub fn usage() -> String {
    let mut out = String::from("usage: latency-logger");
    for f in FLAGS
        .iter()
        .filter(|f| !matches!(f.section, Section::Kafka | Section::Spool) || f.short == Some('B'))
    {
        let name = match f.short {
            Some(c) => format!("-{c}"),
            None => format!("--{}", f.long),
        };
        match f.value {
            Some(v) => out.push_str(&format!(" [{name} {v}]")),
            None => out.push_str(&format!(" [{name}]")),
        }
    }
    out.push_str(" [KAFKA OPTIONS] FILE");
    out
}

/// The help text with its default, as `-h` and the docs show it.
fn help_of(f: &Flag) -> String {
    match f.default {
        Default::None => f.help.to_string(),
        Default::Value(v) | Default::Described(v) => format!("{} [default: {v}]", f.help),
    }
}

/// `-Q, --queue N` / `    --timeout S`.
fn left_of(f: &Flag) -> String {
    let mut left = match f.short {
        Some(c) => format!("-{c}, --{}", f.long),
        None => format!("    --{}", f.long),
    };
    if let Some(v) = f.value {
        left.push(' ');
        left.push_str(v);
    }
    left
}

/// The `-h` text: usage, then every flag with its help, by section.
pub fn help() -> String {
    let mut out = format!(
        "latency-logger {}\nProbes HTTP(S) URLs on their own schedules, times each request the way curl\n\
         does, and writes one report per probe: JSON lines to stdout, or Avro to Kafka.\n\n{}\n\n\
         FILE holds one target per line: `interval_seconds, URL` (# comments, blank lines ok).\n\nOptions:\n",
        env!("CARGO_PKG_VERSION"),
        usage()
    );
    for f in FLAGS {
        out.push_str(&format!("  {:<38} {}\n", left_of(f), help_of(f)));
    }
    out.push_str(&format!(
        "\nEnvironment:\n  {PASSWORD_ENV:<38} SASL password.\n\nExit status: 0 ok (also after SIGINT/SIGTERM), 1 runtime failure, 2 bad flags or targets file, 130 second signal.\n"
    ));
    out
}

/// docs/flags.md: every flag, by section, one table row each.
pub fn markdown() -> String {
    let mut out = String::from(
        "<!-- generated from src/cli/defs.rs FLAGS: do not edit; \
         `LL_UPDATE_DOCS=1 cargo test --lib cli::` rewrites it -->\n# Flags\n\n",
    );
    out.push_str(&format!("```\n{}\n```\n\n", usage()));
    out.push_str(
        "Every value is checked before anything starts: a bad one exits 2 with a message \
         naming the flag, and `--check` rejects exactly what a run rejects.\n",
    );
    for section in Section::ALL {
        out.push_str(&format!(
            "\n## {}\n\n| flag | default | meaning |\n|---|---|---|\n",
            section.title()
        ));
        for f in FLAGS.iter().filter(|f| f.section == section) {
            let mut names = match f.short {
                Some(c) => format!("`-{c}`, `--{}", f.long),
                None => format!("`--{}", f.long),
            };
            if let Some(v) = f.value {
                names.push(' ');
                names.push_str(v);
            }
            names.push('`');
            let default = match f.default {
                Default::None => String::new(),
                Default::Value(v) => format!("`{v}`"),
                Default::Described(v) => v.to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                names.replace('|', "\\|"),
                default.replace('|', "\\|"),
                f.help.replace('|', "\\|")
            ));
        }
    }
    out.push_str(&format!(
        "\n## Environment\n\n| variable | meaning |\n|---|---|\n| `{PASSWORD_ENV}` | SASL password (never a flag: argv is visible to every user of the machine). |\n"
    ));
    out
}
