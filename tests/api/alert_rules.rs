//! The Prometheus alert rules that ship in config/prometheus: valid for `promtool check rules`,
//! their unit tests pass under `promtool test rules` (each alert fires on a bad series and stays
//! quiet on a healthy one), and every alert carries a summary, a description and a runbook
//! anchor that docs/RUNBOOK.md really has.

use std::path::PathBuf;
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules_dir() -> PathBuf {
    repo().join("config/prometheus")
}

/// Runs `promtool` with `args` in config/prometheus. Panics saying how to install it when it is
/// missing, so a machine without it fails instead of skipping the check.
fn promtool(args: &[&str]) -> Output {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the alert rule tests need promtool ({e}): install Debian's `prometheus` package \
                 (`apt-get install -y --no-install-recommends prometheus`, which ships \
                 /usr/bin/promtool; .ci/setup does it when missing) or put a promtool from \
                 https://prometheus.io/download/ on PATH"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    out
}

#[test]
fn the_rules_pass_promtool_check() {
    let out = promtool(&["check", "rules", "ads-stats.rules.yml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");
}

#[test]
fn the_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "ads-stats.rules.test.yml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The alerts the rules file defines, as (name, the text of its block).
fn alerts(rules: &str) -> Vec<(String, String)> {
    let mut alerts: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert:") {
            alerts.push((name.trim().to_string(), String::new()));
        } else if let Some((_, block)) = alerts.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    alerts
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_a_summary_a_description_and_a_runbook_that_exists() {
    let rules = std::fs::read_to_string(rules_dir().join("ads-stats.rules.yml")).unwrap();
    let runbook = std::fs::read_to_string(repo().join("docs/RUNBOOK.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(anchor)
        .collect();
    let alerts = alerts(&rules);
    let names: Vec<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "AdsStatsTickOverdue",
            "AdsStatsJobsFailing",
            "AdsStatsStatsStale",
            "AdsStatsConnectionsNeedToken",
            "AdsStatsScheduleBehind",
            "AdsStatsDatabaseBusy",
            "AdsStatsDown",
        ]
    );
    for (name, block) in &alerts {
        for key in ["summary:", "description:"] {
            assert!(block.contains(key), "{name} has no {key}\n{block}");
        }
        let link = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook:"))
            .unwrap_or_else(|| panic!("{name} has no runbook"))
            .trim()
            .trim_matches('"');
        let (file, fragment) = link
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}'s runbook has no anchor: {link}"));
        assert_eq!(file, "docs/RUNBOOK.md", "{name}");
        assert!(
            anchors.iter().any(|a| a == fragment),
            "{name}'s runbook anchor #{fragment} is no heading of docs/RUNBOOK.md ({anchors:?})"
        );
    }
    // Every command the runbook tells an operator to run is one the binary has.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ads-stats"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for line in runbook.lines().filter(|l| l.starts_with("ads-stats ")) {
        let command = line.split_whitespace().nth(1).unwrap();
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "the runbook runs `{line}`, but `ads-stats --help` has no `{command}`"
        );
    }
}
