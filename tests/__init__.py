def english(line: str) -> str:
    """A bilingual problem line ('file:1:2: 中文 — English') as its location and
    English part, for tests about what a check found rather than its wording."""
    loc, sep, message = str(line).partition(": ")
    warning = "warning: " if message.startswith("警告 warning: ") else ""
    message = message.removeprefix("警告 warning: ")
    return f"{loc}{sep}{warning}{message.split(' — ', 1)[-1]}"
