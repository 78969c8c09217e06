"""Installing is enough: the README's examples run in a fresh virtualenv.

The wheel that ``ci/setup.sh`` builds is installed from scratch (``python -m venv``, no
system site-packages) with the extras the README's install lines name, and the README's
examples run as written, in README order and in one working directory:

1. ``pip install "<wheel>[sedonadb]"`` alone, then the examples of the SedonaDB section on a
   catalogue the "A catalogue to try" example writes (run by this test's own interpreter,
   which has ``write_meta``'s dependencies): the SedonaDB extra must be enough for them,
   ``.to_arrow_table()``, ``.to_pandas()`` and ``ST_Transform`` included, and SedonaDB must
   not warn about PROJ or GDAL.
2. ``pip install "<wheel>[every extra the README names]"`` into the same virtualenv, then
   every ```` ```python ```` example and every ```` ```bash ```` example whose first command
   is ``zarr-meta``, in a fresh directory holding a copy of ``examples/``.

An example preceded by an HTML comment ``<!-- not run: reason -->`` (cloud buckets) is
skipped and counted. pip needs PyPI; nothing else here touches the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

from .conftest import cap_memory

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: The install lines of the README, e.g. ``pip install "sedonadb-zarr-meta[sedonadb]"``.
INSTALL_LINE = re.compile(r'pip install "sedonadb-zarr-meta\[([A-Za-z0-9_,-]+)\]"')
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```\s*([A-Za-z0-9_+-]*)\s*$")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")

#: Headings whose examples stage 1 runs with only the SedonaDB extra installed.
SEDONADB_SECTION = "SedonaDB"
#: Headings whose examples write the data the others read.
SETUP_SECTION = "A catalogue to try"
#: What each section's examples print (patterns; the values follow from the catalogue example:
#: item-0146 is one of the filtered items, 75 items touch the Alps box and 140 the Iberian one).
EXPECTED_OUTPUT = {
    "SedonaDB": [
        r"GeoDataFrame 1000 OGC:CRS84",
        r"item-0146",
        r"alps\W+75\b",
        r"iberia\W+140\b",
        r"bbox_laea",
    ],
    "datafusion-python": [r"item-0146", r"alps\W+75\b", r"iberia\W+140\b"],
    "Without an engine": [r"1000 \['id'\] 3"],
}
#: What the zarr-meta examples print, when the README has them (its sample query's answer).
EXPECTED_CLI_OUTPUT = [r"LC09_L2SP_194028_20240705_02_T1", r"S2B_32TNS_20240713_0_L2A", r"\(3 rows\)"]
#: At least this many ```python examples must run, so that the test cannot pass running nothing.
MIN_PYTHON_RUN = 4
#: What SedonaDB prints when a library it loads on import is missing.
HOST_WARNINGS = ("Failed to configure PROJ", "Failed to configure GDAL")
PIP_TIMEOUT = 900
EXAMPLE_TIMEOUT = 300


@dataclass
class Example:
    lang: str
    code: str
    heading: str
    line: int
    not_run: str | None

    @property
    def is_cli(self) -> bool:
        if self.lang not in ("bash", "sh", "shell"):
            return False
        commands = [
            ln.strip() for ln in self.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
        ]
        return bool(commands) and commands[0].startswith("zarr-meta")

    @property
    def runnable(self) -> bool:
        return self.lang == "python" or self.is_cli

    def label(self) -> str:
        return f"README.md:{self.line} ({self.heading}, {self.lang})"


def readme_examples(text: str) -> list[Example]:
    """The fenced examples of ``text``, each with its section heading and ``not run`` marker."""
    out: list[Example] = []
    lines = text.splitlines()
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line.strip())
        if fence:
            start = i
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            previous = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
            marker = NOT_RUN.match(previous)
            out.append(
                Example(
                    lang=fence.group(1).lower(),
                    code="\n".join(lines[start + 1 : j]) + "\n",
                    heading=heading,
                    line=start + 1,
                    not_run=marker.group(1) if marker else None,
                )
            )
            i = j + 1
            continue
        match = HEADING.match(line)
        if match:
            heading = match.group(1)
        i += 1
    return out


def documented_extras(text: str) -> list[list[str]]:
    """The extras of each ``pip install "sedonadb-zarr-meta[...]"`` line, in README order."""
    return [[e.strip() for e in m.group(1).split(",")] for m in INSTALL_LINE.finditer(text)]


def find_wheel() -> Path | None:
    explicit = os.environ.get("SZM_WHEEL_DIR")
    if explicit:
        directory = Path(explicit)
    else:
        cache = Path(os.environ.get("SZM_CACHE", Path.home() / ".cache" / "sedonadb-zarr-meta"))
        directory = cache / "wheels"
    wheels = sorted(directory.glob("sedonadb_zarr_meta-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels and explicit:
        pytest.fail(f"SZM_WHEEL_DIR={explicit} holds no sedonadb_zarr_meta wheel (run ci/setup.sh)")
    return wheels[-1] if wheels else None


def wheel_extras(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(z.read(name).decode())
    return set(metadata.get_all("Provides-Extra") or [])


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_examples_are_found_and_marked(readme):
    examples = readme_examples(readme)
    python = [e for e in examples if e.lang == "python"]
    run = [e for e in python if e.not_run is None]
    assert len(run) >= MIN_PYTHON_RUN, [e.label() for e in python]
    for e in examples:
        if e.not_run is not None:
            assert e.runnable, f"{e.label()}: 'not run' marks an example that would not run anyway"
            assert e.not_run, f"{e.label()}: 'not run' needs a reason"
    headings = {e.heading for e in run}
    for section in (SETUP_SECTION, SEDONADB_SECTION, *EXPECTED_OUTPUT):
        assert section in headings, f"no runnable example under a heading {section!r}"
    extras = documented_extras(readme)
    assert ["sedonadb"] in extras, 'the README must document pip install "sedonadb-zarr-meta[sedonadb]"'


def pyproject_extras() -> set[str]:
    """The keys of ``[project.optional-dependencies]`` (read by line: tomllib needs Python 3.11)."""
    keys: set[str] = set()
    inside = False
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            inside = line.strip() == "[project.optional-dependencies]"
            continue
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*=", line)
        if inside and match:
            keys.add(match.group(1))
    return keys


def test_readme_extras_are_the_packages_extras(readme):
    """Every extra the README names is declared, and provided by the wheel CI builds
    (pip only warns about an extra a package lacks, then installs without it)."""
    named = {e for line in documented_extras(readme) for e in line}
    assert named <= pyproject_extras(), named - pyproject_extras()
    wheel = find_wheel()
    if wheel is None:
        pytest.skip("no wheel built yet (ci/setup.sh builds it into ~/.cache/sedonadb-zarr-meta/wheels)")
    provided = wheel_extras(wheel)
    assert named <= provided, (
        f"{wheel.name} lacks the extras {sorted(named - provided)}: it is older than pyproject.toml; "
        "rebuild it with ci/setup.sh"
    )


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user who activated ``venv``: nothing of this test's interpreter."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PYTHONPATH",
            "PYTHONHOME",
            "PYTHONSTARTUP",
            "VIRTUAL_ENV",
            "CONDA_PREFIX",
            "PYTHONDONTWRITEBYTECODE",
        )
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        pytest.fail(
            f"{what} exited {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
            f"\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )


def outer_pip_targets_other_pythons() -> bool:
    """Whether this interpreter's pip has ``--python`` (pip 22.3+; ci/setup.sh installs the newest)."""
    try:
        import pip
    except ImportError:
        return False
    major, minor = (int(part) for part in pip.__version__.split(".")[:2])
    return (major, minor) >= (22, 3)


def make_venv(venv: Path) -> list[str]:
    """A new virtualenv (``python -m venv``, no system site-packages); returns the pip command
    that installs into it: this interpreter's pip where it can (no pip in ``venv``: seconds
    saved), else the one ensurepip puts in ``venv``."""
    outer = outer_pip_targets_other_pythons()
    cmd = [sys.executable, "-m", "venv", *(["--without-pip"] if outer else []), str(venv)]
    check(subprocess.run(cmd, capture_output=True, text=True), " ".join(cmd))
    python = str(venv / "bin" / "python")
    return [sys.executable, "-m", "pip", "--python", python] if outer else [python, "-m", "pip"]


def pip_install(pip: list[str], requirement: str, env: dict[str, str]) -> None:
    """``pip install requirement``. ``--no-compile``: the examples compile only the modules they
    import, on first import, instead of pip compiling every file it installs."""
    cmd = [*pip, "install", "--no-compile", "--progress-bar", "off", requirement]
    check(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT), " ".join(cmd))


def assert_printed(patterns: list[str], out: str, what: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, out), f"{what} did not print {pattern!r}:\n{out[-4000:]}"


def run_example(example: Example, index: int, python: str, cwd: Path, scripts: Path, env) -> str:
    """Run one example in ``cwd``; return what it printed."""
    suffix = "py" if example.lang == "python" else "sh"
    script = scripts / f"example_{index:02d}_line{example.line}.{suffix}"
    script.write_text(example.code, encoding="utf-8")
    cmd = [python, str(script)] if example.lang == "python" else ["bash", "-e", "-o", "pipefail", str(script)]
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, preexec_fn=cap_memory
    )
    check(result, f"the example at {example.label()}")
    for warning in HOST_WARNINGS:
        assert warning not in result.stderr, f"{example.label()}: SedonaDB warned:\n{result.stderr[-3000:]}"
    return result.stdout


def fresh_workdir(base: Path, name: str) -> Path:
    work = base / name
    work.mkdir()
    if (ROOT / "examples").is_dir():
        shutil.copytree(ROOT / "examples", work / "examples")
    return work


def test_readme_examples_run_in_a_fresh_virtualenv(readme):
    wheel = find_wheel()
    if wheel is None:
        pytest.skip("no wheel built yet (ci/setup.sh builds it into ~/.cache/sedonadb-zarr-meta/wheels)")
    examples = readme_examples(readme)
    runnable = [e for e in examples if e.runnable and e.not_run is None]
    skipped = [e for e in examples if e.runnable and e.not_run is not None]
    install_lines = documented_extras(readme)
    everything = sorted({e for line in install_lines for e in line})

    timings: list[str] = []
    started = time.monotonic()

    def lap(what: str) -> None:
        nonlocal started
        now = time.monotonic()
        timings.append(f"{what} {now - started:.0f}s")
        started = now

    with tempfile.TemporaryDirectory(prefix="szm-install-") as tmp:
        base = Path(tmp)
        venv = base / "venv"
        scripts = base / "scripts"
        scripts.mkdir()
        pip = make_venv(venv)
        env = clean_env(venv)
        python = str(venv / "bin" / "python")
        lap("venv")

        # Stage 1: the SedonaDB extra alone runs the SedonaDB examples.
        pip_install(pip, f"{wheel}[sedonadb]", env)
        lap("pip [sedonadb]")
        located = subprocess.run(
            [python, "-c", "import sedonadb_zarr_meta; print(sedonadb_zarr_meta.__file__)"],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
        )
        check(located, "import sedonadb_zarr_meta")
        assert located.stdout.strip().startswith(str(venv)), located.stdout
        work = fresh_workdir(base, "sedonadb-only")
        outer_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        ran_sedonadb = 0
        for index, example in enumerate(runnable):
            if example.heading == SETUP_SECTION:
                run_example(example, index, sys.executable, work, scripts, outer_env)
            elif example.heading == SEDONADB_SECTION:
                out = run_example(example, index, python, work, scripts, env)
                assert_printed(
                    EXPECTED_OUTPUT[SEDONADB_SECTION], out, f"{example.label()}, SedonaDB extra only,"
                )
                ran_sedonadb += 1
        assert ran_sedonadb >= 1
        lap("SedonaDB examples")

        # Stage 2: with every extra the README names, every example runs, in README order.
        pip_install(pip, f"{wheel}[{','.join(everything)}]", env)
        lap(f"pip [{','.join(everything)}]")
        work = fresh_workdir(base, "all")
        printed: dict[str, str] = {}
        cli_printed = ""
        ran = {"python": 0, "cli": 0}
        for index, example in enumerate(runnable):
            out = run_example(example, index, python, work, scripts, env)
            printed[example.heading] = printed.get(example.heading, "") + out
            if example.is_cli:
                cli_printed += out
            ran["cli" if example.is_cli else "python"] += 1
        lap("all examples")

    for heading, patterns in EXPECTED_OUTPUT.items():
        assert_printed(patterns, printed.get(heading, ""), f"the examples under {heading!r}")
    if ran["cli"]:
        assert_printed(EXPECTED_CLI_OUTPUT, cli_printed, "the zarr-meta examples")
    assert ran["python"] >= MIN_PYTHON_RUN, ran
    # Every "not run" marker stands right before the example it skips.
    assert len(skipped) == len(re.findall(r"^<!--\s*not run:", readme, flags=re.M)), [
        e.label() for e in skipped
    ]
    print(
        f"ran {ran['python']} Python and {ran['cli']} zarr-meta examples; skipped {len(skipped)}: "
        + "; ".join(f"{e.label()}: {e.not_run}" for e in skipped)
        + "\ntimes: "
        + ", ".join(timings)
    )
