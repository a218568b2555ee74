"""queue/pbxs.yaml: the PBXs of one hotline, checked like every staff file
(every problem at once, file:line:col, Chinese first), and shown with their
state on `ivr config`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.configset.pbxs import LINK, Known, default_pbxs, parse_ami, parse_pbxs
from ivr.project import PBXS_FILE, Project, is_config_file, load_operations, operations_from_texts, read_texts

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")


def parse(text: str, known: Known | None = None):
    return parse_pbxs(textwrap.dedent(text), PBXS_FILE, known)


def errors(text: str, known: Known | None = None) -> list[str]:
    cfg, problems = parse(text, known)
    errs = [str(p) for p in problems if not p.warning]
    assert (cfg is None) == bool(errs)
    return errs


TWO = """\
pbxs:
  a:
    ami: IVR_AMI_URL
    queues: [general-q]
    seats: [Local/101@ivr-seats/n, Local/102@ivr-seats/n]
  b:
    ami: ami://ivr@10.0.1.22:5039
    secret_env: IVR_AMI_SECRET_B
    seats: [Local/301@ivr-seats/n]
"""


def test_two_pbxs_read_with_the_link_and_a_secret_named_not_held() -> None:
    cfg, problems = parse(TWO)
    assert problems == [] and cfg is not None
    assert list(cfg.pbxs) == ["a", "b"]
    assert cfg.link is not None and cfg.link.name == "a" and cfg.link.address == LINK
    b = cfg.pbxs["b"].ami
    assert b is not None and (b.host, b.port, b.username, b.secret_env) == ("10.0.1.22", 5039, "ivr", "IVR_AMI_SECRET_B")
    assert str(b) == "ami://ivr@10.0.1.22:5039"
    assert cfg.pbx_of_seat("Local/301@ivr-seats/n") == "b" and cfg.pbx_of_seat("Local/999@x") is None


def test_a_duplicate_pbx_name_is_an_error_at_its_line_and_column_chinese_first() -> None:
    errs = errors("""\
    pbxs:
      a: {ami: IVR_AMI_URL}
      a: {ami: "ami://ivr@h:5038", secret_env: S}
    """)
    assert len(errs) == 1
    assert errs[0].startswith("queue/pbxs.yaml:3:3: ")
    assert "'a'" in errs[0] and "line 2" in errs[0]
    assert errs[0] == ("queue/pbxs.yaml:3:3: PBX 列表：键 'a' 出现了两次（第一次在第 2 行） — pbxs: key 'a' appears "
                       "twice (first on line 2)")          # Chinese first


def test_a_pbx_named_twice_with_seats_and_a_bad_address_every_problem_reported() -> None:
    """The second 'main' (no seats) once crashed the cross-file check: the
    seats of the first were zipped with the second's nodes."""
    errs = errors("""\
    pbxs:
      main: {ami: IVR_AMI_URL, seats: [Local/101@ivr-seats/n]}
      main: {ami: IVR_AMI_URL}
      b:
        ami: "ami://ivr@10.0.1.22:50x"
        secret_env: IVR_AMI_SECRET_B
        seats: [Local/101@ivr-seats/n]
    """)
    assert [e.split(": ", 1)[0] for e in errs] == ["queue/pbxs.yaml:3:3", "queue/pbxs.yaml:5:10"], errs


def test_a_seat_on_two_pbxs_is_an_error_at_the_second_naming_both() -> None:
    errs = errors("""\
    pbxs:
      a:
        ami: IVR_AMI_URL
        seats: [Local/101@ivr-seats/n]
      b:
        ami: ami://ivr@10.0.1.22
        secret_env: IVR_AMI_SECRET_B
        seats: [Local/301@ivr-seats/n, Local/101@ivr-seats/n]
    """)
    assert errs == [
        "queue/pbxs.yaml:8:36: 坐席 'Local/101@ivr-seats/n' 同时属于 PBX 'a' 和 'b'，一个坐席只能在一台 PBX 上 — seat "
        "'Local/101@ivr-seats/n' is on PBX 'a' and on PBX 'b': a seat registers with one PBX"]


@pytest.mark.parametrize(("ami", "why"), [
    ("ami://ivr@10.0.1.22:99999", "valid port"),
    ("ami://ivr@10.0.1.22:port", "valid port"),
    ("http://ivr@10.0.1.22:5038", "cannot parse"),
    ("ami://10.0.1.22:5038", "cannot parse"),        # no user
    ("10.0.1.22:5038", "cannot parse"),
    ("ami://ivr@:5038", "cannot parse"),
    ("ami://ivr:s3cret@10.0.1.22:5038", "must not be in the file"),
])
def test_an_ami_address_that_cannot_be_parsed_is_an_error_at_its_value(ami: str, why: str) -> None:
    errs = errors(f"""\
    pbxs:
      b:
        ami: "{ami}"
        secret_env: IVR_AMI_SECRET_B
    """)
    assert len(errs) == 1 and errs[0].startswith("queue/pbxs.yaml:3:10: PBX 'b'：") and why in errs[0]
    assert "s3cret" not in errs[0]


def test_every_problem_at_once() -> None:
    errs = errors("""\
    pbxs:
      a: {ami: IVR_AMI_URL}
      b: {ami: "ami://ivr@h"}
      c: {ami: "ami://ivr@h", secret_env: lower}
      d: {ami: "ami://ivr@h:5038", secret_env: D}
      e: {ami: IVR_AMI_URL}
      f: {ami: "ami://ivr@H", secret_env: F}
      g: {ami: IVR_AMI_URL, secret_env: X, queues: [nope-q], colour: red}
    """, Known(queues=frozenset({"general-q"})))
    got = {e.split(": ", 1)[0] for e in errs}
    assert got == {"queue/pbxs.yaml:3:12", "queue/pbxs.yaml:4:39", "queue/pbxs.yaml:6:12", "queue/pbxs.yaml:7:12",
                   "queue/pbxs.yaml:8:37", "queue/pbxs.yaml:8:49", "queue/pbxs.yaml:8:58"}, errs
    text = "\n".join(errs)
    for fragment in ("remove 'secret_env'", "missing 'secret_env'", "not an environment variable name",
                     "queue 'nope-q' is not", "unknown key 'colour'", "only one PBX can be the engine's own link",
                     "PBX 'f' has the AMI address of PBX 'd'"):
        assert fragment in text


def test_lines_and_seats_of_the_other_files_are_checked_against_the_pbxs() -> None:
    cfg, problems = parse(TWO, Known(lines=frozenset({"a", "c"}), seats=frozenset({"Local/101@ivr-seats/n",
                                                                                    "Local/777@ivr-seats/n"})))
    assert cfg is not None                                            # warnings only
    shown = [(p.warning, str(p).split(": ", 1)[0]) for p in problems]
    assert (True, "queue/pbxs.yaml:2:3") in shown                     # lines.yaml's 'c' is no PBX here
    assert (True, "queue/pbxs.yaml:6:3") in shown                     # 'b' has no lines: warned
    assert any(p.warning and "Local/777@ivr-seats/n" in p.message for p in problems)


def test_the_file_is_a_configuration_file_and_the_shipped_one_is_valid_and_one_pbx_on_the_link() -> None:
    assert is_config_file(PBXS_FILE)
    texts = read_texts(ROOT)
    assert PBXS_FILE in texts
    ops = load_operations(Project(ROOT), TZ)
    assert [str(p) for p in ops.problems if not p.warning] == []
    assert ops.pbxs is not None and list(ops.pbxs.pbxs) == ["main"] and ops.pbxs.link is not None
    # the shipped lines name the same PBX
    assert ops.lines is not None and set(ops.lines.pbxs) == set(ops.pbxs.pbxs)


def test_without_the_file_one_pbx_main_on_the_link_as_today() -> None:
    texts = {k: v for k, v in read_texts(ROOT).items() if k != PBXS_FILE}
    ops = operations_from_texts(texts, frozenset(), TZ)
    assert ops.pbxs == default_pbxs() and ops.pbxs.link is not None and ops.pbxs.link.name == "main"


def test_a_site_whose_lines_name_its_one_pbx_otherwise_keeps_its_lines() -> None:
    """Before queue/pbxs.yaml, lines.yaml's only PBX was the link's whatever
    its name: the shipped pbxs.yaml ('main') warns and changes nothing."""
    texts = read_texts(ROOT) | {"queue/lines.yaml": "pbxs:\n  east: {lines: 12}\n"}
    ops = operations_from_texts(texts, frozenset(), TZ)
    mine = [p for p in ops.problems if p.path == PBXS_FILE]
    assert [p.message.split(" — ")[1] for p in mine] == [
        "queue/lines.yaml has lines for PBX 'east', which is not one of the PBXs here: the engine's link (PBX 'main') "
        "uses them, as before; name each PBX alike in both files"]
    assert all(p.warning for p in mine)
    assert ops.pbxs is not None and ops.lines is not None
    link = ops.lines.for_link()
    assert link is not None and link.lines == 12


def test_a_wrong_pbx_file_makes_the_set_wrong() -> None:
    texts = read_texts(ROOT) | {PBXS_FILE: "pbxs:\n  main: {ami: IVR_AMI_URL, seats: [x, x]}\n"}
    ops = operations_from_texts(texts, frozenset(), TZ)
    assert ops.pbxs is None
    assert [str(p) for p in ops.problems if not p.warning and p.path == PBXS_FILE] == [
        "queue/pbxs.yaml:2:39: PBX 'main'：seat 'x' 重复 — seat 'x' is listed twice"]


def test_parse_ami_never_keeps_a_secret() -> None:
    addr, why = parse_ami("ami://ivr@pbx-b.example:5038")
    assert addr is not None and why == "" and addr.secret_env == ""
    assert parse_ami("ami://ivr:x@pbx-b.example")[0] is None


def test_each_pbx_may_name_its_queue_log_an_absolute_path_of_its_own() -> None:
    """Each PBX's own record (issue 20: "reconciles each PBX's record"): the
    engine read one queue_log only (IVR_QUEUE_LOG). A PBX names where the
    leader's host reads its file; relative, or two PBXs on one file, is an
    error at its line and column."""
    cfg, _ = parse(TWO.replace("    seats: [Local/301@ivr-seats/n]",
                               "    seats: [Local/301@ivr-seats/n]\n    queue_log: /mnt/pbx-b/log/queue_log"))
    assert cfg is not None and cfg.pbxs["b"].queue_log == "/mnt/pbx-b/log/queue_log" and cfg.pbxs["a"].queue_log is None
    (err,) = errors(TWO.replace("    seats: [Local/301@ivr-seats/n]",
                                "    seats: [Local/301@ivr-seats/n]\n    queue_log: log/queue_log"))
    assert err.startswith("queue/pbxs.yaml:10:16") and "queue_log 应为绝对路径" in err, err
    both = TWO.replace("    queues: [general-q]\n", "    queues: [general-q]\n    queue_log: /var/log/asterisk/queue_log\n")
    (err,) = errors(both.replace("    seats: [Local/301@ivr-seats/n]",
                                 "    seats: [Local/301@ivr-seats/n]\n    queue_log: /var/log/asterisk/queue_log"))
    assert err.startswith("queue/pbxs.yaml:11:16") and "has the queue_log of PBX 'a'" in err, err
