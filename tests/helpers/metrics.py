"""Akeru's metrics as the operator sees them: the documented list (the table of docs/operations.md's
"Metrics" section, the one place it is kept), the metric names a PromQL expression reads (parsed with
``promql-parser``), the shipped alert rules and dashboard, and ``promtool``."""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
RULES = REPO / "docs" / "prometheus" / "akeru-rules.yml"
RULE_TESTS = REPO / "docs" / "prometheus" / "akeru-rules.test.yml"
DASHBOARD = REPO / "docs" / "grafana" / "akeru-dashboard.json"
PROMTOOL = os.environ.get("AKERU_PROMTOOL", "/usr/bin/promtool")

# Series Prometheus itself makes, which rules and dashboards may read beside Akeru's.
PROMETHEUS_OWN = {"up", "ALERTS"}
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")
# Grafana's variables, replaced by what Grafana would send before the expression is parsed.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$account": ".*"}


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter, gauge, histogram, … as the table's row says


def documented_metrics(text=None):
    """{name: Metric} for every row of the table in docs/operations.md's "Metrics" section: a row whose
    first cell is a metric name in backticks (``akeru_…``, labels after it are ignored)."""
    text = OPERATIONS.read_text() if text is None else text
    section = re.search(r"^## Metrics\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/operations.md has no '## Metrics' section with the table of Akeru's metrics"
    metrics = {}
    for line in section.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        name = re.match(r"`(akeru_[a-z0-9_]+)", cells[0]) if cells else None
        if name:
            kind = next((word for word in ("histogram", "counter", "gauge", "summary", "info")
                         if any(word in cell.lower() for cell in cells[1:])), "")
            metrics[name.group(1)] = Metric(name.group(1), kind)
    assert metrics, "the Metrics section of docs/operations.md has no table rows naming `akeru_…` metrics"
    return metrics


def metric_names(expr):
    """The metric names every vector selector of the PromQL ``expr`` reads (Grafana's variables
    replaced first). A selector without a metric name is refused: nothing could check it."""
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(variable, value)
    names = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def undocumented(names, documented):
    """The names that are neither a documented metric, a series of a documented histogram, nor
    Prometheus's own."""
    missing = []
    for name in names:
        base = next((name[: -len(suffix)] for suffix in HISTOGRAM_SERIES if name.endswith(suffix)), None)
        if name in documented or name in PROMETHEUS_OWN:
            continue
        if base in documented and documented[base].type == "histogram":
            continue
        missing.append(name)
    return missing


def rules():
    """The alerting rules of docs/prometheus/akeru-rules.yml, every group's."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard():
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(board=None):
    """Every panel of the dashboard that is not a row, also those inside collapsed rows."""
    for panel in (board or dashboard())["panels"]:
        yield from ([panel] if panel["type"] != "row" else panel.get("panels", []))


def dashboard_queries(board=None):
    """(where, PromQL) of every panel target and of every query variable of the dashboard."""
    board = board or dashboard()
    for panel in dashboard_panels(board):
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
            yield f"variable {variable['name']!r}", inner.group(1) if inner else query


def promtool(*args, stdin=None):
    """Run ``promtool`` (Debian's prometheus package; ``make test`` installs it) from the folder of the
    rules; fails the test, saying how to install it, when it is missing."""
    if not (shutil.which(PROMTOOL) or os.access(PROMTOOL, os.X_OK)):
        pytest.fail(f"these tests need promtool at {PROMTOOL}: install it with 'apt-get update && apt-get "
                    "install -y --no-install-recommends prometheus' (make test does this when run as root), or "
                    "point AKERU_PROMTOOL at a promtool binary", pytrace=False)
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, cwd=RULES.parent,
                          timeout=120)
