"""Tests for docker/: what can be checked without a Docker engine (none runs in CI).

The image is not built here. What is checked: the Dockerfile runs docker/install.sh after
copying everything the script needs; the script runs README.md's set-up command verbatim and
is valid bash; the files the Dockerfile copies exist; and docker/Makefile's notebook, bash and
build targets expand (``make -n``) to the docker commands the README promises.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def readme_setup_commands() -> list[str]:
    """The commands in the code blocks of README.md's "Set up" section, one per line."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Set up\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section is not None, "README.md has a '## Set up' section"
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", section.group(1), re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def script_commands(path: Path) -> list[str]:
    """The command lines of a shell script: no comments, no blank lines."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def test_install_script_runs_the_readme_setup_command_verbatim() -> None:
    setup = readme_setup_commands()
    install = [command for command in setup if "pip install" in command and "pybt demo" in command]
    assert len(install) == 1, f"README's set-up section has one install-and-demo command: {setup}"
    assert install[0] in script_commands(DOCKER / "install.sh")


def test_install_script_is_valid_bash_that_stops_on_the_first_failure() -> None:
    result = subprocess.run(["bash", "-n", str(DOCKER / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    commands = script_commands(DOCKER / "install.sh")
    assert commands[0] == "set -euo pipefail"
    # Every pip install is pinned by constraints.txt (an unpinned torch pulls a CUDA build).
    installs = [command for command in commands if "pip install" in command]
    assert len(installs) == 2 and all("-c constraints.txt" in command for command in installs)
    # What the notebook and the examples import, beyond the demo extra.
    extras = shlex.split(installs[-1])
    for requirement in ("gymnasium", "notebook", "pandas"):
        assert any(word.startswith(requirement) for word in extras), requirement
    assert any("plot" in word for word in extras if word.startswith("-e") or word.startswith(".["))


def test_dockerfile_runs_the_install_script_after_copying_what_it_needs() -> None:
    instructions = dockerfile_instructions()
    runs = [index for index, (name, arguments) in enumerate(instructions) if name == "RUN"]
    assert [instructions[i][1] for i in runs] == ["bash docker/install.sh"], "the only RUN is the script"
    workdir = [arguments for name, arguments in instructions[: runs[0]] if name == "WORKDIR"]
    assert workdir == ["/work"], "the script and the Makefile's paths assume /work"
    copied_before = {
        source
        for name, arguments in instructions[: runs[0]]
        if name == "COPY"
        for source in arguments.split()[:-1]
    }
    # install.sh installs the package in editable mode from the repository root.
    assert {"pyproject.toml", "constraints.txt", "README.md", "pybt", "docker/install.sh"} <= copied_before
    copied = [
        source for name, arguments in instructions if name == "COPY" for source in arguments.split()[:-1]
    ]
    assert {"examples", "notebooks"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is missing"
    assert ("EXPOSE", "8888") in instructions
    environment = " ".join(arguments for name, arguments in instructions if name == "ENV")
    assert "PATH=/work/.venv/bin:$PATH" in environment, "the venv install.sh made is on the PATH"


def make_dry_run(target: str) -> str:
    """What ``make -f docker/Makefile TARGET`` would run, from another directory."""
    result = subprocess.run(
        ["make", "-n", "-f", str(DOCKER / "Makefile"), target], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\\\n", " ")


def test_makefile_notebook_target_builds_then_serves_the_notebooks_on_port_8888() -> None:
    lines = make_dry_run("notebook").splitlines()
    build = f'docker build -f "{ROOT}/docker/Dockerfile" -t pybt "{ROOT}"'
    assert lines[0] == build, "the image is built from the repository root, wherever make runs"
    run = shlex.split(lines[1])
    assert run[:2] == ["docker", "run"] and "-p" in run and run[run.index("-p") + 1] == "8888:8888"
    assert f"{ROOT}/notebooks:/work/notebooks" in run
    server = run[run.index("pybt") + 1 :]
    assert server[:2] == ["jupyter", "notebook"]
    assert {"--allow-root", "--no-browser"} <= set(server)
    assert server[server.index("--ip") + 1] == "0.0.0.0"
    assert server[server.index("--notebook-dir") + 1] == "/work/notebooks"


def test_makefile_bash_and_build_targets() -> None:
    bash = make_dry_run("bash").splitlines()
    assert bash[0].startswith("docker build ")
    run = shlex.split(bash[1])
    assert run[:2] == ["docker", "run"] and "-it" in run and run[-2:] == ["pybt", "bash"]
    assert make_dry_run("build").splitlines() == bash[:1]
