"""The Grafana dashboard and the Prometheus alert rules of knative/monitoring: valid, built only on the
metric names of issue 12, checked by promtool (`check rules`, and `test rules` on rules.test.yaml)
where Debian's `prometheus` package is installed, and by their structure everywhere."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REFERENCE

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "knative" / "monitoring"
DASHBOARD = json.loads((MONITORING / "mindspace-dashboard.json").read_text())
RULE_OBJECT = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
RULES = [r for g in RULE_OBJECT["spec"]["groups"] for r in g["rules"]]
ALERTS = {r["alert"]: r for r in RULES if "alert" in r}
BUDGET = "mindspace:job_duration_budget_seconds"

# The metric names of issue 12 (shared/observability.py); a histogram also has _bucket, _sum, _count.
METRICS = {"jobs_processed_total", "queue_length", "file_upload_bytes_total", "events_dead_lettered_total",
           "cold_starts_total", "feature_flag_evaluations_total",
           "gemini_api_calls_total", "ai_tokens_total", "ai_quota_tokens_per_day"}  # issue 20's AI metrics
HISTOGRAMS = {"job_duration_seconds", "api_request_duration_seconds", "model_load_seconds", "ask_duration_seconds"}
ALLOWED = METRICS | HISTOGRAMS | {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "sum", "count")}
# Other systems' series the rules read on a production cluster: Kafka Exporter's consumer lag, Flagger's status.
FOREIGN = {"kafka_consumergroup_lag", "flagger_canary_status"}
NOT_METRICS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$stage": ".*"}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(not promtool, reason="promtool is not installed (Debian package "
                                    "`prometheus`): the rules are checked by their structure only")


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: what is left once strings, label matchers, ranges,
    label lists (by, on …) and function names are taken out."""
    for pattern in (r'"(?:[^"\\]|\\.)*"', r"\{[^}]*\}", r"\[[^\]]*\]",
                    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"):
        expr = re.sub(pattern, " ", expr)
    names = set(re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", expr))
    return {n for n in names if n.lower() not in NOT_METRICS}


def panels() -> list[dict]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def test_the_metric_name_reader_reads_promql():
    assert metric_names('histogram_quantile(0.95, sum by (stage, le) (rate(job_duration_seconds_bucket'
                        '{stage=~"$stage", outcome="ok"}[$__rate_interval]))) > on (stage) group_left () '
                        'mindspace:job_duration_budget_seconds and queue_length offset 5m') == {
        "job_duration_seconds_bucket", BUDGET, "queue_length"}


def test_the_dashboard_is_grafana_json_with_a_query_on_every_panel():
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 36
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells = set()
    for p in DASHBOARD["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} is wider than the grid"
        mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    for p in panels():
        assert p["title"] and p["description"] and p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}" and all(t["expr"].strip() for t in p["targets"])


def test_the_dashboard_queries_only_the_metrics_of_issue_12_and_shows_each():
    used = set()
    for title, expr in expressions():
        names = metric_names(expr)
        assert names and names <= ALLOWED, f"{title}: {sorted(names - ALLOWED)} are not metrics of issue 12"
        used |= names
    shown = {n.removesuffix(s) for n in used for s in ("_bucket", "_sum", "_count") if n.endswith(s)} | used
    assert METRICS | HISTOGRAMS <= shown, f"no panel shows {sorted(METRICS | HISTOGRAMS - shown)}"


def test_the_dashboard_has_the_panels_operators_look_for():
    titles = " | ".join(p["title"].lower() for p in panels())
    for wanted in ("throughput per stage", "success rate per stage", "p95 duration per stage",
                   "queue length", "dead letters", "api p95 latency", "api error rate", "cold starts"):
        assert wanted in titles, wanted


def test_the_rule_object_is_a_prometheusrule_with_complete_alerts():
    assert (RULE_OBJECT["apiVersion"], RULE_OBJECT["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = RULE_OBJECT["spec"]["groups"]
    assert len({g["name"] for g in groups}) == len(groups) and all(g["rules"] for g in groups)
    assert {"MindspaceStageSuccessRateLow", "MindspaceDeadLetters", "MindspaceStageSlow",
            "MindspaceQueueGrowing"} <= set(ALERTS)
    for name, rule in ALERTS.items():
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name)
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert ann["runbook_url"] == f"README.md#{name.lower()}", name
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), name
    for rule in RULES:
        assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, rule
        names = metric_names(str(rule["expr"]))
        assert names <= ALLOWED | FOREIGN | {BUDGET}, f"{rule.get('alert') or rule['record']}: {names - ALLOWED}"


def seconds(iso: str) -> float:
    return float(re.fullmatch(r"PT(\d+(?:\.\d+)?)S", iso).group(1))


def test_each_stage_budget_is_half_its_longest_trigger_timeout():
    base = ROOT / "knative" / "base"
    timeouts: dict[str, float] = {}
    for t in yaml.safe_load_all((base / "triggers.yaml").read_text()):
        name = t["spec"]["subscriber"]["ref"]["name"]
        timeouts[name] = max(timeouts.get(name, 0), seconds(t["spec"]["delivery"]["timeout"]))
    service, = (o for o in yaml.safe_load_all((base / "deadletter.yaml").read_text()) if o["kind"] == "Service")
    timeouts["deadletter"] = service["spec"]["template"]["spec"]["timeoutSeconds"]  # the sink: no Trigger
    budgets = {r["labels"]["stage"]: float(re.fullmatch(r"vector\((\d+)\)", r["expr"]).group(1))
               for r in RULES if r.get("record") == BUDGET}
    assert budgets == {stage: t / 2 for stage, t in timeouts.items()}


def test_every_runbook_link_names_a_heading_of_the_readme():
    readme = (ROOT / "README.md").read_text()
    if "## Operating Mindspace" not in readme:
        pytest.skip("README.md has no 'Operating Mindspace' section yet: the runbook links have no target")
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    missing = {r["annotations"]["runbook_url"] for r in ALERTS.values()} - {f"README.md#{a}" for a in anchors}
    assert not missing, f"README.md has no heading for {sorted(missing)}"


def promtool_run(tmp_path: Path, *args: str) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULE_OBJECT["spec"], sort_keys=False))
    shutil.copy(MONITORING / "rules.test.yaml", tmp_path / "rules.test.yaml")
    done = subprocess.run([promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_the_rules(tmp_path):
    promtool_run(tmp_path, "check", "rules", "rules.yaml")


@needs_promtool
def test_promtool_unit_tests_fire_each_alert_when_it_should_and_only_then(tmp_path):
    promtool_run(tmp_path, "test", "rules", "rules.test.yaml")


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query as a recording rule, with Grafana's variables set to sample values."""
    def filled(expr: str) -> str:
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"a Grafana variable this test does not know in {expr}"
        return expr

    rules = [{"record": f"dashboard:panel_{i}", "expr": filled(expr)} for i, (_, expr) in enumerate(expressions())]
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", "dashboard.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def kustomize(path: Path) -> list[dict]:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize"]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build"]
    else:
        pytest.skip("neither kubectl nor kustomize is installed: cannot render knative/monitoring")
    out = subprocess.run([*cmd, str(path)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_monitoring_kustomization_renders_the_rules_the_scrape_and_the_dashboard():
    objects = {o["kind"]: o for o in kustomize(MONITORING)}
    assert set(objects) == {"PrometheusRule", "PodMonitor", "NetworkPolicy", "ConfigMap"}
    dashboard = objects["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["mindspace-dashboard.json"]) == DASHBOARD
    assert objects["PrometheusRule"]["spec"] == RULE_OBJECT["spec"]
    endpoint = objects["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("user-port", "/metrics")  # Knative's name of the port
    if REFERENCE.exists():
        from test_manifests import validator

        for obj in (dashboard, objects["NetworkPolicy"]):
            errors = list(validator(obj).iter_errors(obj))
            assert not errors, [e.message for e in errors[:3]]


def test_the_base_needs_no_prometheus_operator():
    kinds = {o["apiVersion"].split("/")[0] for o in kustomize(ROOT / "knative" / "base")}
    assert "monitoring.coreos.com" not in kinds
