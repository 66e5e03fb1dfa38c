"""README opens with exactly the two commands, and CI runs the second one verbatim."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", head, flags=re.S)]


def test_readme_starts_with_setup_and_demo_then_setup_and_tests():
    demo, tests = readme_commands()
    assert demo.startswith("python3.11 -m venv .venv") and demo.endswith("bsm demo")
    assert tests.startswith("python3.11 -m venv .venv") and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
