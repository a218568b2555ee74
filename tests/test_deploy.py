"""What a site deploys beside the package (deploy/): the systemd units, the
Prometheus alert rules and the Grafana dashboard, each checked by the tool
that will read it, and every metric they name one that /metrics exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
RULES = DEPLOY / "prometheus" / "ivr-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "ivr-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "ivr-city.json"

# every unit of deploy/systemd/ (the prompt sync's too)
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}
# the engine's and the console's
REQUIRED = {**HARDENING, "Restart": "on-failure", "SystemCallFilter": "@system-service",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
REQUIRED_KEYS = ("ReadWritePaths", "MemoryMax", "EnvironmentFile", "ExecStart")


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> every value (systemd keys repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"{path.name}: not a key=value line: {raw!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_units_carry_the_hardening() -> None:
    names = sorted(p.name for p in UNITS.glob("*.service"))
    assert {"ivr-serve.service", "ivr-console.service"} <= set(names)
    for path in UNITS.glob("*.service"):
        service = unit(path)["Service"]
        for key, value in HARDENING.items():
            assert value in service.get(key, []), (path.name, key)
        assert "User" in service or service.get("DynamicUser") == ["yes"], path.name
    for name, command in (("ivr-serve.service", "ivr serve --no-console"), ("ivr-console.service", "ivr console")):
        parsed = unit(UNITS / name)
        service = parsed["Service"]
        for key, value in REQUIRED.items():
            assert value in service.get(key, []), (name, key, service.get(key))
        for key in REQUIRED_KEYS:
            assert service.get(key), (name, key)
        assert service["ExecStart"][0].endswith(command), name
        assert "/var/lib/ivr" in service["ReadWritePaths"][0].split(), name
        assert parsed["Install"]["WantedBy"] == ["multi-user.target"]
        assert not any("secret" in v.lower() or "IVR_AMI_URL=" in v for v in service.get("Environment", [])), name
    serve = unit(UNITS / "ivr-serve.service")["Service"]
    assert int(serve["TimeoutStopSec"][0]) > 30          # above IVR_DRAIN_S: calls finish before the kill


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` with ExecStart pointed at this venv's ivr (the
    units name /opt/ivr/.venv/bin/ivr, which does not exist on this machine);
    any warning it prints (an unknown key, a bad value) fails."""
    ivr = Path(sys.executable).parent / "ivr"
    copies = []
    for path in sorted(UNITS.glob("*.service")):
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8").replace("/opt/ivr/.venv/bin/ivr", str(ivr)),
                        encoding="utf-8")
        copies.append(str(copy))
    out = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out.stdout + out.stderr


# -- the metrics /metrics exports ----------------------------------------------------

def exported_metrics() -> set[str]:
    """Every metric name /metrics can export: the gauges and counters written
    in ivr/ (``gauge("ivr_...")``, ``counter("ivr_...")``) and the histograms'
    series."""
    names: set[str] = set()
    for path in (ROOT / "ivr").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"\b(?:gauge|counter)\(\s*\"(ivr_[a-z0-9_]+)\"", text))
        for hist in re.findall(r"\bHistogram\(\s*\"(ivr_[a-z0-9_]+)\"", text):
            names |= {f"{hist}_bucket", f"{hist}_sum", f"{hist}_count"}
    return names


def named_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bivr_[a-z0-9_]+", expr))


def test_the_metrics_scan_finds_what_metrics_exports() -> None:
    found = exported_metrics()
    assert {"ivr_contingency_level", "ivr_lines_free", "ivr_pbx_up", "ivr_callback_overdue",
            "ivr_agi_command_seconds_bucket", "ivr_lines_blocked_total"} <= found
    assert "ivr_no_such_metric" not in found


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_every_rule_names_exported_metrics_and_the_four_concerns_are_covered() -> None:
    exported = exported_metrics()
    rules = rule_exprs()
    for alert, expr in rules:
        unknown = named_metrics(expr) - exported
        assert named_metrics(expr) and not unknown, (alert, unknown)
    used = set().union(*(named_metrics(e) for _, e in rules))
    # the level rising, lines nearly full, a PBX or the leader gone, callbacks past their deadline
    assert {"ivr_contingency_level", "ivr_lines_free", "ivr_pbx_up", "ivr_leader", "ivr_callback_overdue"} <= used


def promtool() -> str | None:
    """promtool on the PATH, or where ./run test puts it (the venv's bin)."""
    beside = Path(sys.executable).parent / "promtool"
    return shutil.which("promtool") or (str(beside) if beside.is_file() else None)


@pytest.mark.skipif(promtool() is None, reason="promtool is not installed (./run test installs it from the Debian "
                                               "package prometheus; it could not here)")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    tool = promtool()
    assert tool is not None
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([tool, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=120,
                          cwd=RULE_TESTS.parent)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


@pytest.mark.skipif(promtool() is None, reason="promtool is not installed")
def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check can fail: a rule with a syntax error is refused."""
    tool = promtool()
    assert tool is not None
    bad = tmp_path / "bad.yml"
    bad.write_text(RULES.read_text(encoding="utf-8").replace("max(ivr_contingency_level) >=", "max(ivr_contingency_level >=",
                                                             1), encoding="utf-8")
    out = subprocess.run([tool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0


# -- the dashboard ----------------------------------------------------------------------

def dashboard_exprs(doc: dict) -> list[tuple[str, str]]:
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            out.append((var["name"], var["definition"]))
    return out


def test_the_dashboard_loads_and_every_expr_uses_an_exported_metric() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] == "ivr-city" and doc["panels"]
    exported = exported_metrics()
    exprs = dashboard_exprs(doc)
    for title, expr in exprs:
        unknown = named_metrics(expr) - exported
        assert named_metrics(expr) and not unknown, (title, unknown)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    used = set().union(*(named_metrics(e) for _, e in exprs))
    # level, waiting, lines in use/free, seats, callback backlog and oldest, answered/abandoned, PBXs
    assert {"ivr_contingency_level", "ivr_queue_waiting", "ivr_lines_in_use", "ivr_lines_free", "ivr_seats",
            "ivr_callback_backlog", "ivr_callback_oldest_open_seconds", "ivr_queue_answered", "ivr_queue_abandoned",
            "ivr_pbx_up"} <= used
    # per PBX where /metrics labels the PBX
    assert all("pbx" in e for _, e in exprs if named_metrics(e) & {"ivr_lines_in_use", "ivr_lines_free", "ivr_pbx_up"})
