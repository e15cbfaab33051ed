"""The operator's side of the metrics (docs/operations.md, "Alerts and dashboard"): the alert rules pass
promtool's check and their unit tests, every alert is complete and has a runbook entry, the dashboard is
importable, and every metric the rules and the dashboard read is one Akeru documents."""

import re

import pytest
import yaml

from tests.helpers.metrics import (
    OPERATIONS,
    RULE_TESTS,
    RULES,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    documented_metrics,
    metric_names,
    promtool,
    rules,
    undocumented,
)


def github_anchors(markdown):
    """The anchors GitHub gives the headings of ``markdown``."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.+)$", markdown, re.M)}


# --- promtool -------------------------------------------------------------------------------------


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_refuses_a_rule_that_does_not_parse(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("> 900", "> > 900", 1))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_unit_tests_fail_on_a_rule_that_fires_too_soon(tmp_path):
    """The unit tests can fail: the broker alert without its `for:` fires on the short blip they hold."""
    (tmp_path / "akeru-rules.yml").write_text(RULES.read_text().replace("for: 2m", "for: 0m", 1))
    (tmp_path / "akeru-rules.test.yml").write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", str(tmp_path / "akeru-rules.test.yml"))
    assert result.returncode != 0
    assert "alertname: AkeruBrokerDown, time: 3m" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for rule in rules():
        own = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in own), f"{rule['alert']} is never tested firing"
        assert any(not case["exp_alerts"] for case in own), f"{rule['alert']} is never tested quiet"


# --- what an alert carries ------------------------------------------------------------------------


def test_every_alert_has_a_delay_a_severity_and_tells_the_operator_what_to_do():
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in rules():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name} has no `for:`"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower() and anchor in anchors, f"docs/operations.md has no runbook entry for {name}"


def test_the_alerts_cover_what_operators_asked_for():
    read = {rule["alert"]: set(metric_names(rule["expr"])) for rule in rules()}
    for metric in ("akeru_syncs_total", "akeru_outbox_oldest_intent_age_seconds", "akeru_account_healthy",
                   "akeru_access_keys_over_max_age", "akeru_aws_throttles_total", "akeru_broker_up", "up"):
        assert any(metric in names for names in read.values()), f"no alert reads {metric}"


# --- the dashboard --------------------------------------------------------------------------------


def test_the_dashboard_is_importable_and_asks_for_its_data_source_and_account():
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["account"]["type"] == "query" and variables["account"]["includeAll"]
    assert variables["account"]["datasource"]["uid"] == "${datasource}"
    panels = list(dashboard_panels(board))
    ids = [panel["id"] for panel in board["panels"]] + [panel["id"] for panel in panels if panel not in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
        box = panel["gridPos"]
        assert 0 <= box["x"] and box["x"] + box["w"] <= 24 and box["h"] > 0, panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_every_per_account_panel_follows_the_account_variable():
    for where, expr in dashboard_queries():
        if "account" in expr and where.startswith("panel"):
            account_metrics = {"akeru_principals", "akeru_syncs_total", "akeru_drift_found_total",
                               "akeru_drift_repaired_total", "akeru_account_healthy",
                               "akeru_access_keys_over_max_age", "akeru_access_key_oldest_age_seconds"}
            if account_metrics.intersection(metric_names(expr)):
                assert 'account=~"$account"' in expr, where


def test_the_dashboard_shows_every_documented_metric():
    shown = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    shown |= {name.removesuffix(suffix) for name in shown for suffix in ("_bucket", "_count", "_sum")}
    assert sorted(set(documented_metrics()) - shown) == []


# --- every metric read is documented --------------------------------------------------------------


def test_every_metric_the_rules_and_the_dashboard_read_is_documented():
    documented = documented_metrics()
    queries = [(f"rule {rule['alert']}", rule["expr"]) for rule in rules()] + list(dashboard_queries())
    assert len(queries) > len(rules())
    missing = [f"{where}: {name}" for where, expr in queries for name in undocumented(metric_names(expr), documented)]
    assert missing == []


def test_an_undocumented_metric_is_found():
    table = ("## Metrics\n\n| metric | type | labels | served by |\n| --- | --- | --- | --- |\n"
             "| `akeru_syncs_total` | counter | `account` | workers |\n"
             "| `akeru_sync_duration_seconds` | histogram | `kind` | workers |\n\n## Next\n`akeru_elsewhere`\n")
    documented = documented_metrics(table)
    assert sorted(documented) == ["akeru_sync_duration_seconds", "akeru_syncs_total"]
    names = metric_names('sum(rate(akeru_syncs_total{outcome="failed"}[$__rate_interval])) / on() group_left '
                         "sum(rate(akeru_sync_duration_seconds_bucket[5m])) + akeru_syncs_total_bucket"
                         " + akeru_elsewhere + up")
    assert undocumented(names, documented) == ["akeru_syncs_total_bucket", "akeru_elsewhere"]


def test_a_selector_without_a_metric_name_is_refused():
    with pytest.raises(AssertionError, match="without a metric name"):
        metric_names('sum(rate({__name__=~"akeru_.+"}[5m]))')


def test_documentation_without_the_metric_table_is_refused():
    with pytest.raises(AssertionError, match="no '## Metrics' section"):
        documented_metrics("## Operations\n\n| `akeru_syncs_total` | counter |\n")


def test_promtool_check_metrics_refuses_a_scrape_against_prometheus_conventions():
    """What the live scrape test (tests/live/test_live_promtool_scrape.py) relies on: promtool says so."""
    result = promtool("check", "metrics", stdin="# HELP akeru_syncs s\n# TYPE akeru_syncs counter\nakeru_syncs 1\n")
    assert result.returncode != 0 and 'counter metrics should have "_total" suffix' in result.stdout + result.stderr
