//! The monitoring assets the operator deploys (`operator/assets/monitoring/`): alert rules
//! and their unit tests (real `promtool`), the default Alertmanager config (real `amtool`),
//! the Grafana dashboards, and the `api_*` metric names all of them rely on.
//!
//! `promtool` and `amtool` come from the Debian packages `prometheus` and
//! `prometheus-alertmanager` (TESTENV.md). A missing tool fails the test; it never skips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// `api_*` metrics that alerts and dashboards use before `api-server/src/metrics.rs`
/// registers them. When one lands there, delete it here:
/// `metrics_listed_as_coming_are_not_registered_yet` fails until you do.
const API_METRICS_TO_BE_ADDED: &[&str] = &[];

/// Suffixes Prometheus adds to a histogram's (or summary's) base name.
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

/// Severities the default Alertmanager route tree knows.
const SEVERITIES: &[&str] = &["critical", "warning"];

const DASHBOARDS: &[&str] = &["api", "feed-pipeline", "mysql", "redis"];

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn read_yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()))
}

fn dashboard_paths() -> Vec<PathBuf> {
    DASHBOARDS
        .iter()
        .map(|name| monitoring_dir().join(format!("dashboards/{name}.json")))
        .collect()
}

fn read_dashboard(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|error| panic!("{} is not valid JSON: {error}", path.display()))
}

/// Finds `name` on `PATH`, then in `/usr/bin`; panics with an install hint otherwise.
fn find_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH nor in /usr/bin: install the Debian packages \
                 `prometheus` (promtool) and `prometheus-alertmanager` (amtool); \
                 the monitoring asset tests never skip"
            )
        })
}

/// Runs a tool in the monitoring directory, asserts it exits 0 and returns its output.
fn run_tool(name: &str, args: &[&str]) -> String {
    let output = Command::new(find_tool(name))
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {name}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`{name} {}` failed ({}):\n{text}",
        args.join(" "),
        output.status
    );
    text
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Every alerting rule of alerts.yaml (recording rules have no `alert`).
fn alert_rules() -> Vec<Value> {
    let rules = read_yaml(&monitoring_dir().join("alerts.yaml"));
    array(&rules, "groups")
        .iter()
        .flat_map(|group| array(group, "rules"))
        .filter(|rule| rule.get("alert").is_some())
        .cloned()
        .collect()
}

/// Every `api_…` identifier in `text`, as written (histogram suffixes included).
fn api_metric_names(text: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("api_") {
        let starts_a_word = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        if !starts_a_word {
            continue;
        }
        let rest = &text[start..];
        let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
        names.insert(rest[..end].to_owned());
    }
    names
}

/// The metric names api-server/src/metrics.rs registers: its `"api_…"` string literals.
fn registered_api_metrics() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-server/src/metrics.rs");
    let source = read(&path);
    let names: BTreeSet<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with("api_"))
        .filter(|literal| {
            literal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    assert!(
        names.contains("api_http_requests_total"),
        "found no metric names in {}: has the registration style changed?",
        path.display()
    );
    names
}

#[test]
fn alert_rules_pass_promtool_check() {
    let output = run_tool("promtool", &["check", "rules", "alerts.yaml"]);
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn alert_rule_unit_tests_pass() {
    let output = run_tool("promtool", &["test", "rules", "alerts.test.yaml"]);
    assert!(output.contains("SUCCESS"), "{output}");
}

/// The prometheus.yml the operator generates, checked by promtool exactly as the pod reads
/// it: beside alerts.yaml (both keys of one ConfigMap), so the rule file is checked through
/// the config's `rule_files` too.
#[test]
fn generated_prometheus_config_passes_promtool_check_config() {
    let mut cluster: sns_operator::crd::SnsCluster = serde_saphyr::from_str(&read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/ha.yaml"),
    ))
    .unwrap();
    cluster.metadata.namespace = Some("sns".into());
    let objects = sns_operator::reconcile::build::build_cluster(&cluster, false).unwrap();
    let config_map = objects
        .config_maps
        .iter()
        .find(|config_map| config_map.metadata.name.as_deref() == Some("ha-prometheus"))
        .expect("the ha example has monitoring on, so a ha-prometheus ConfigMap");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated-prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let data = config_map.data.clone().unwrap_or_default();
    assert!(data.contains_key("prometheus.yml") && data.contains_key("alerts.yaml"));
    for (file, text) in &data {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let config = dir.join("prometheus.yml");
    let output = run_tool("promtool", &["check", "config", &config.to_string_lossy()]);
    assert!(output.contains("SUCCESS"), "{output}");
    // One success line for the config and one for the rule file it names.
    assert!(
        output.contains("alerts.yaml"),
        "the rule file was not checked: {output}"
    );
}

#[test]
fn default_alertmanager_config_passes_amtool() {
    let output = run_tool("amtool", &["check-config", "alertmanager.yaml"]);
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description() {
    let rules = alert_rules();
    assert!(!rules.is_empty(), "alerts.yaml has no alerting rule");
    for rule in &rules {
        let name = str_field(rule, "alert").unwrap_or_default();
        let severity = rule
            .get("labels")
            .and_then(|labels| str_field(labels, "severity"));
        assert!(
            severity.is_some_and(|severity| SEVERITIES.contains(&severity)),
            "{name}: severity label {severity:?} is not one of {SEVERITIES:?}"
        );
        for annotation in ["summary", "description"] {
            let text = rule
                .get("annotations")
                .and_then(|annotations| str_field(annotations, annotation));
            assert!(
                text.is_some_and(|text| !text.trim().is_empty()),
                "{name}: missing `{annotation}` annotation"
            );
        }
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let alerts: BTreeSet<String> = alert_rules()
        .iter()
        .filter_map(|rule| str_field(rule, "alert"))
        .map(str::to_owned)
        .collect();
    let tests = read_yaml(&monitoring_dir().join("alerts.test.yaml"));
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in array(&tests, "tests")
        .iter()
        .flat_map(|test| array(test, "alert_rule_test"))
    {
        let name = str_field(case, "alertname").unwrap_or_default().to_owned();
        // promtool passes `exp_alerts: []` for an alert that does not exist: catch typos.
        assert!(
            alerts.contains(&name),
            "alerts.test.yaml tests `{name}`, which alerts.yaml does not define"
        );
        if array(case, "exp_alerts").is_empty() {
            quiet.insert(name);
        } else {
            firing.insert(name);
        }
    }
    let never_fired: Vec<_> = alerts.difference(&firing).collect();
    let never_quiet: Vec<_> = alerts.difference(&quiet).collect();
    assert!(
        never_fired.is_empty(),
        "alerts without a test where they fire: {never_fired:?}"
    );
    assert!(
        never_quiet.is_empty(),
        "alerts without a test where they stay quiet (`exp_alerts: []`): {never_quiet:?}"
    );
}

#[test]
fn dashboards_have_a_uid_a_title_and_queries_in_every_panel() {
    let mut uids = BTreeSet::new();
    for path in dashboard_paths() {
        let file = path.display();
        let dashboard = read_dashboard(&path);
        let uid = str_field(&dashboard, "uid").unwrap_or_default();
        assert!(!uid.is_empty(), "{file}: no uid");
        assert!(
            uids.insert(uid.to_owned()),
            "{file}: uid {uid} is used twice"
        );
        assert!(
            str_field(&dashboard, "title").is_some_and(|title| !title.is_empty()),
            "{file}: no title"
        );
        assert_eq!(dashboard.get("schemaVersion"), Some(&json!(39)), "{file}");
        let templating = dashboard.get("templating").unwrap_or(&Value::Null);
        assert!(
            array(templating, "list").iter().any(|variable| {
                str_field(variable, "name") == Some("datasource")
                    && str_field(variable, "type") == Some("datasource")
                    && str_field(variable, "query") == Some("prometheus")
            }),
            "{file}: no `datasource` variable of Prometheus data sources"
        );
        let panels = array(&dashboard, "panels");
        assert!(
            panels.len() >= 4,
            "{file}: {} panels, want at least 4",
            panels.len()
        );
        for panel in panels {
            let title = str_field(panel, "title").unwrap_or("<untitled>");
            let exprs: Vec<_> = array(panel, "targets")
                .iter()
                .filter_map(|target| str_field(target, "expr"))
                .filter(|expr| !expr.trim().is_empty())
                .collect();
            assert!(!exprs.is_empty(), "{file}: panel `{title}` has no query");
        }
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses PromQL only inside rule files, so wrap every query in a recording rule.
    let rules: Vec<Value> = dashboard_paths()
        .iter()
        .flat_map(|path| {
            let dashboard = read_dashboard(path);
            array(&dashboard, "panels")
                .iter()
                .flat_map(|panel| array(panel, "targets"))
                .filter_map(|target| str_field(target, "expr").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .enumerate()
        .map(|(index, expr)| json!({ "record": format!("dashboard:query_{index}"), "expr": expr }))
        .collect();
    // JSON is YAML, so promtool reads this file as it is.
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-queries.rules.yaml");
    let text = json!({ "groups": [{ "name": "dashboard-queries", "rules": rules }] }).to_string();
    std::fs::write(&file, text)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", file.display()));
    let file = file.to_string_lossy();
    run_tool("promtool", &["check", "rules", &file]);
}

#[test]
fn referenced_api_metrics_are_registered_or_listed_as_coming() {
    let registered = registered_api_metrics();
    let known = |name: &str| registered.contains(name) || API_METRICS_TO_BE_ADDED.contains(&name);
    let mut files = vec![monitoring_dir().join("alerts.yaml")];
    files.extend(dashboard_paths());
    for path in files {
        let unknown: Vec<String> = api_metric_names(&read(&path))
            .into_iter()
            .filter(|name| {
                let base = HISTOGRAM_SUFFIXES
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix));
                !known(name.as_str()) && !base.is_some_and(known)
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "{} uses metrics that api-server/src/metrics.rs does not register \
             (nor API_METRICS_TO_BE_ADDED lists): {unknown:?}",
            path.display()
        );
    }
}

#[test]
fn metrics_listed_as_coming_are_not_registered_yet() {
    let registered = registered_api_metrics();
    let landed: Vec<_> = API_METRICS_TO_BE_ADDED
        .iter()
        .filter(|name| registered.contains(**name))
        .collect();
    assert!(
        landed.is_empty(),
        "{landed:?} are registered in api-server/src/metrics.rs now: \
         remove them from API_METRICS_TO_BE_ADDED in {}",
        file!()
    );
}

#[test]
fn api_metric_names_are_found_as_whole_words() {
    let names = api_metric_names(
        "rate(api_http_requests_total[5m]) sns_api_other job=\"sns-api\" x{a=\"1\"}api_up",
    );
    let expected: BTreeSet<String> = ["api_http_requests_total", "api_up"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, expected);
}
