"""Validation messages in Simplified Chinese first, the English after.

The checks write their messages in English (one place each, easy to grep);
``bilingual`` puts the Chinese in front, as staff read it:

    flows/main.yaml:58:5: 菜单 'main_menu'：未知的键 'timout'（是否应为 'timeout_s'？） —
        menu 'main_menu': unknown key 'timout' (did you mean 'timeout_s'?)      (one line)

A message no pattern here knows keeps its English alone (a test lists the
flow validator's messages and checks each has its Chinese)."""

from __future__ import annotations

import re
from collections.abc import Callable

STEP_TYPES = {"play": "播放", "menu": "菜单", "branch": "分支", "set": "设置变量", "queue": "排队",
              "record": "留言", "offer_callback": "回拨提议", "transfer": "转接", "goto": "跳转",
              "subflow": "子流程", "hangup": "挂机", "announce": "政策播报", "step": "步骤",
              "admit": "来电分流", "say_wait": "报等待时间",
              "survey": "满意度调查"}
PLACES = {"flow": "流程", "steps": "steps", "contingency plan": "应急预案", "sets": "播报组", "groups": "坐席组",
          "reserved": "紧急预留", "pbxs": "PBX 列表"}

WHAT = [  # "expected ..." fragments, most specific first
    (r"a whole number from (-?[\d.]+) to (-?[\d.]+)", r"\1 到 \2 的整数"),
    (r"seconds from ([\d.]+) to ([\d.]+)", r"\1 到 \2 秒"),
    (r"times the speed from ([\d.]+) to ([\d.]+)", r"速度的 \1 到 \2 倍"),
    (r"text", "文字"), (r"true or false", "true 或 false"), (r"a step name", "步骤名"),
    (r"a prompt name \(.*\)", "提示音名称（字母、数字、'-'、'_'、'/'）"), (r"at least one prompt", "至少一个提示音"),
    (r"keypad digits \(0-9, \* and #\)", "按键（0-9、* 和 #）"), (r"one keypad digit", "一个按键"),
    (r"a queue name", "队列名"), (r"a flow name", "流程名"), (r"a phone number \(digits, 3 to 20\)", "电话号码（3 到 20 位数字）"),
    (r"a mapping of digit: step", "“按键: 步骤”映射"), (r"a mapping of VARIABLE: value", "“变量: 值”映射"),
    (r"a time HH:MM", "时间 HH:MM"), (r"\[start, end\] times HH:MM", "[开始, 结束] 时间 HH:MM"),
    (r"a list of days \((.*)\)", r"星期列表（\1）"), (r"a calendar name", "日历名"), (r"a number-list name", "号码名单名"),
    (r"a list of conditions", "条件列表"), (r"one condition \((.*)\)", r"一个条件（\1）"),
    (r"a list of \{when: condition, goto: step\}", "{when: 条件, goto: 步骤} 列表"),
    (r"\{when: condition, goto: step\}", "{when: 条件, goto: 步骤}"),
    (r"'current' or the name of a set in prompts/announcements.yaml", "'current' 或 prompts/announcements.yaml 中的播报组名"),
    (r"a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM", "日期 YYYY-MM-DD 或时间 YYYY-MM-DDTHH:MM"),
    (r"a duration like 90s, 10m, 2h or 1d", "时长，如 90s、10m、2h、1d"),
    (r"a mapping of digit: rating \((.*)\)", r"“按键: 评价”映射（\1）"),
    (r"a mapping", "映射"), (r"a list", "列表"), (r"nothing", "空"),
]


def _what(text: str) -> str:
    for pat, zh in WHAT:
        if re.fullmatch(pat, text):
            return re.sub(pat, zh, text)
    return text


def _got(text: str) -> str:
    return {"a mapping": "映射", "a list": "列表", "nothing": "空"}.get(text, text)


def _dym(rest: str) -> str:
    m = re.fullmatch(r" \(did you mean '(.+)'\?\)", rest or "")
    return f"（是否应为 '{m.group(1)}'？）" if m else ""


def _where(where: str) -> str:
    m = re.fullmatch(r"(\w+) '(.+)'", where)
    if m and m.group(1) in STEP_TYPES:
        return f"{STEP_TYPES[m.group(1)]} '{m.group(2)}'"
    m = re.fullmatch(r"(set|group) '(.+)'(.*)", where)
    if m:
        return f"{'播报组' if m.group(1) == 'set' else '坐席组'} '{m.group(2)}'{m.group(3)}"
    m = re.fullmatch(r"level (\d+)(.*)", where)
    if m:
        return f"级别 {m.group(1)}{m.group(2).replace(' seat action', ' 坐席调整')}"
    return PLACES.get(where, where)


DYM = r"((?: \(did you mean '.+'\?\))?)"
RULES: list[tuple[str, Callable[[re.Match[str]], str]]] = [  # (pattern on the text after "where: ", Chinese); groups are filled in
    (r"missing required key '(.+?)'(?: \(one of (.+)\))?",
     lambda m: f"缺少必填项 '{m[1]}'" + (f"（可选：{m[2]}）" if m[2] else "")),
    (r"unknown key '(.+?)'" + DYM, lambda m: f"未知的键 '{m[1]}'{_dym(m[2])}"),
    (r"expected (.+?), got (.+)", lambda m: f"应为 {_what(m[1])}，实际为 {_got(m[2])}"),
    (r"expected (.+)", lambda m: f"应为 {_what(m[1])}"),
    (r"no step named '(.+?)'" + DYM, lambda m: f"没有名为 '{m[1]}' 的步骤{_dym(m[2])}"),
    (r"prompt '(.+?)' not found in prompts/" + DYM, lambda m: f"提示音 '{m[1]}' 不在 prompts/ 中{_dym(m[2])}"),
    (r"prompt '(.+?)' has no audio file in prompts/", lambda m: f"提示音 '{m[1]}' 在 prompts/ 中没有录音文件"),
    (r"queue '(.+?)' is not defined in queue/queues.yaml" + DYM,
     lambda m: f"队列 '{m[1]}' 未在 queue/queues.yaml 中定义{_dym(m[2])}"),
    (r"queue '(.+?)' is not in queue/queues.yaml", lambda m: f"队列 '{m[1]}' 不在 queue/queues.yaml 中"),
    (r"queue '(.+?)' maps to Asterisk queue '(.+?)', which asterisk/queues.conf does not define",
     lambda m: f"队列 '{m[1]}' 对应的 Asterisk 队列 '{m[2]}' 未在 asterisk/queues.conf 中定义"),
    (r"announcement set '(.+?)' not found in prompts/announcements.yaml" + DYM,
     lambda m: f"播报组 '{m[1]}' 不在 prompts/announcements.yaml 中{_dym(m[2])}"),
    (r"announcement set '(.+?)' is not in prompts/announcements.yaml",
     lambda m: f"播报组 '{m[1]}' 不在 prompts/announcements.yaml 中"),
    (r"needs 'asterisk: <queue name in queues.conf>'", lambda m: "需要 'asterisk: <queues.conf 中的队列名>'"),
    (r"名称无效 \(invalid name\): (.+)", lambda m: f"名称无效：{m[1]}"),
    (r"the recordings for saying a place and a wait are missing in prompts/: (.+?) \(ivr prompts draft .*\)",
     lambda m: f"报位置和等待时间所需的录音在 prompts/ 中缺失：{m[1]}（可用 ivr prompts draft 按 prompts/texts.yaml 生成）"),
    (r"PBX '(.+?)' lacks prompt (.+?) at the version in force: not published until its prompt sync has it "
     r"\(ivr prompts push, then ivr prompts status\)",
     lambda m: f"交换机 '{m[1]}' 还没有录音 {m[2].replace(' and ', ' 及另外 ').replace(' more', ' 个')}（当前版本），"
               "该交换机的录音同步取得之前不能发布（先 ivr prompts push，再用 ivr prompts status 查看）"),
    (r"emergency_digit and on_emergency go together", lambda m: "emergency_digit 与 on_emergency 须同时给出"),
    (r"emergency_digit must differ from accept_digit", lambda m: "emergency_digit 不能与 accept_digit 相同"),
    (r"number list '(.+?)' not found in flows/lists/" + DYM, lambda m: f"号码名单 '{m[1]}' 不在 flows/lists/ 中{_dym(m[2])}"),
    (r"calendar '(.+?)' not found in flows/calendars/" + DYM,
     lambda m: f"日历 '{m[1]}' 不在 flows/calendars/ 中{_dym(m[2])}"),
    (r"a flow cannot call itself as a subflow", lambda m: "流程不能把自己作为子流程调用"),
    (r"no flow named '(.+?)'" + DYM, lambda m: f"没有名为 '{m[1]}' 的流程{_dym(m[2])}"),
    (r"no path leads here \(unreachable\)", lambda m: "没有任何路径到达这一步（不可达）"),
    (r"unknown type '(.*?)'" + DYM, lambda m: f"未知的步骤类型 '{m[1]}'{_dym(m[2])}"),
    (r"unknown condition '(.*?)'" + DYM, lambda m: f"未知的条件 '{m[1]}'{_dym(m[2])}"),
    (r"unknown day '(.*?)'" + DYM, lambda m: f"未知的星期 '{m[1]}'{_dym(m[2])}"),
    (r"option '(.+?)' is not one keypad digit", lambda m: f"选项 '{m[1]}' 不是单个按键"),
    (r"an emergency call is never surveyed: survey '(.+?)' asks nothing after it",
     lambda m: f"紧急来电不做满意度调查：满意度调查 '{m[1]}' 在这之后不会提问"),
    (r"answer key '(.+?)' is not one keypad digit", lambda m: f"评价按键 '{m[1]}' 不是单个按键"),
    (r"unknown rating '(.+?)' \(one of (.+?)\)" + DYM, lambda m: f"未知的评价 '{m[1]}'（可选：{m[2]}）{_dym(m[3])}"),
    (r"rating '(.+?)' is given to two keys", lambda m: f"评价 '{m[1]}' 对应了两个按键"),
    (r"no key for rating (.+)", lambda m: f"评价 {m[1]} 没有对应的按键"),
    (r"variable '(.+?)' must be upper case letters, digits and '_'", lambda m: f"变量 '{m[1]}' 只能用大写字母、数字和 '_'"),
    (r"keys must be plain names", lambda m: "键必须是简单的名称"),
    (r"key '(.+?)' appears twice \(first on line (\d+)\)", lambda m: f"键 '{m[1]}' 出现了两次（第一次在第 {m[2]} 行）"),
    (r"name '(.+?)' differs from the file name '(.+?)'", lambda m: f"名称 '{m[1]}' 与文件名 '{m[2]}' 不一致"),
    (r"'steps' must be a mapping of step name: step", lambda m: "'steps' 应为“步骤名: 步骤”映射"),
    (r"a step name is a letter then letters, digits, '-' or '_', and not 'end'",
     lambda m: "步骤名以字母开头，只含字母、数字、'-'、'_'，且不能是 'end'"),
    (r"subflows call each other in a loop: (.+)", lambda m: f"子流程相互调用形成循环：{m[1]}"),
    (r"'(.+?)' ends before it starts", lambda m: f"'{m[1]}' 的结束早于开始"),
    (r"'(.+?)' expired on (.+?) and will not play", lambda m: f"'{m[1]}' 已于 {m[2]} 过期，不会播放"),
    (r"'(.+?)' expires within a day \((.+?)\).*", lambda m: f"'{m[1]}' 将在一天内过期（{m[2]}），请续期或替换"),
]
WHOLE: list[tuple[str, Callable[[re.Match[str]], str]]] = [  # messages without a "where: " part
    (r"(?:not valid YAML|YAML syntax): (.+)", lambda m: f"YAML 格式错误：{m[1]}"),
    (r"a flow file must be a mapping with 'start' and 'steps'", lambda m: "流程文件应为含 'start' 和 'steps' 的映射"),
    (r"the file is empty: expected a mapping with (.+)", lambda m: f"文件为空：应为含 {m[1]} 的映射"),
    (r"expected a mapping with (.+), got (.+)", lambda m: f"应为含 {m[1]} 的映射，实际为 {_got(m[2])}"),
    (r"subflows call each other in a loop: (.+)", lambda m: f"子流程相互调用形成循环：{m[1]}"),
    (r"fallback queue '(.+?)' is not one of the queues", lambda m: f"兜底队列 '{m[1]}' 不在队列列表中"),
    (r"'(.+?)' is not a date YYYY-MM-DD", lambda m: f"'{m[1]}' 不是日期：日期应写成 YYYY-MM-DD，如 2026-10-01"),
    (r"there is no such day: '(.+?)'", lambda m: f"没有这一天：'{m[1]}'"),
]
_CJK = re.compile(r"[\u4e00-\u9fff]")


def chinese(message: str) -> str | None:
    """The Chinese of an English validation message, or None."""
    for pat, zh in WHOLE:
        m = re.fullmatch(pat, message, re.S)
        if m:
            return zh(m)
    where, sep, rest = message.partition(": ")
    if sep:
        for pat, zh in RULES:
            m = re.fullmatch(pat, rest, re.S)
            if m:
                return f"{_where(where)}：{zh(m)}"
    return None


def bilingual(message: str) -> str:
    """'中文 — English'; a message already in Chinese is left as it is."""
    if _CJK.search(message.split(" — ")[0][:40]) and " — " in message:
        return message
    zh = chinese(message)
    return f"{zh} — {message}" if zh else message
