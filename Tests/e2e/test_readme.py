"""The curl commands of README.md's "Try it" section, run against the example mesh as committed.

Each command is preceded by a comment saying what it must give (ALLOW / DENY / -> 200 / -> 403 / ready),
so the README cannot promise what the server does not do.
"""
import re
import shutil
import subprocess

import pytest

import harness

README = (harness.ROOT / "README.md").read_text()


def commands():
    section = README[README.index("## Try it"):]
    section = section[:section.index("\n## ", 3)]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for chunk in re.split(r"\n\s*\n", block.strip()):
            lines = chunk.splitlines()
            comment = " ".join(l for l in lines if l.startswith("#"))
            cmd = "\n".join(l for l in lines if not l.startswith("#"))
            if cmd.strip():
                out.append((comment, cmd))
    return out


COMMANDS = commands()


def test_readme_has_the_two_commands():
    assert "make run" in README and "make test" in README
    assert len(COMMANDS) >= 8


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("comment,cmd", COMMANDS, ids=[f"{i}" for i in range(len(COMMANDS))])
def test_readme_curl(mesh_server, comment, cmd):
    cmd = cmd.replace("127.0.0.1:8080", f"127.0.0.1:{mesh_server.port}")
    assert "curl" in cmd
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    decisions = re.findall(r'"decision":"(ALLOW|DENY)"', out)
    m = re.search(r":\s*((?:ALLOW|DENY)(?:,\s*(?:ALLOW|DENY))*)\b", comment)
    expected = re.findall(r"ALLOW|DENY", m.group(1)) if m else []
    if "-> 200" in comment:
        assert out.startswith("HTTP/1.1 200"), out
    elif "-> 403" in comment:
        assert out.startswith("HTTP/1.1 403"), out
    elif expected:
        assert decisions == expected, f"{comment}\n{out}"
    elif "ready" in comment:
        assert '"status":"ready"' in out, out
    else:
        pytest.fail(f"README command without a stated outcome: {comment}")
