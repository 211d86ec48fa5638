"""``vmeval-hf sandbox``: a real process, run until Ctrl-C (SIGINT), as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3


def _start(root: Path, *args: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """Start it; return once it says it is serving (its "Ctrl-C to stop" line, after the environment).
    ``sigint_ignored``: started as a script's background job is, with SIGINT ignored."""
    proc = subprocess.Popen([sys.executable, "-m", "vmeval_hf.cli", "sandbox", "--root", str(root), *args],
                            cwd=root.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None)
    assert proc.stderr is not None
    while (line := proc.stderr.readline()) and line.strip() != "# Ctrl-C to stop":
        pass
    assert line, f"the sandbox ended before serving (exit {proc.wait()})"
    return proc


def _ctrl_c(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> str:
    """Stop it as Ctrl-C does (or ``sig``): it exits 0, quietly; what it printed after what was read."""
    proc.send_signal(sig)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        code = proc.wait(timeout=60)  # first: a process that ignores the signal fails here, not hangs the read
        with proc.stdout, proc.stderr:  # read through the text buffers (communicate() would skip what they hold)
            out, err = proc.stdout.read(), proc.stderr.read()  # a few lines: the pipes never filled
    finally:  # whatever happened, the servers do not outlive the test
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0 and "Traceback" not in err, err
    return out


def test_sandbox_json_prints_its_environment_as_one_object_then_serves_until_ctrl_c(tmp_path: Path) -> None:
    proc = _start(tmp_path / "box", "--json")
    try:
        assert proc.stdout is not None
        env = json.loads(proc.stdout.readline())  # one JSON object, on the first line
        assert set(env) >= {"HF_ENDPOINT", "HF_TOKEN", "VMEVAL_HF_REPO", "S3_BUCKET", "AWS_ENDPOINT_URL",
                            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
        # both servers answer while it runs, at the printed addresses, with the printed credentials
        request = urllib.request.Request(f"{env['HF_ENDPOINT']}/api/whoami-v2",
                                         headers={"Authorization": f"Bearer {env['HF_TOKEN']}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        assert env["S3_BUCKET"] in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert proc.poll() is None  # still running
    finally:
        rest = _ctrl_c(proc)
    assert rest == ""  # nothing but the one object on stdout

    # the human form prints the same variables, as export lines
    proc = _start(tmp_path / "box")
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("# sandbox running on 127.0.0.1")
    finally:
        lines = _ctrl_c(proc).splitlines()
    assert all(line.startswith("export ") for line in lines)
    assert {line.removeprefix("export ").split("=", 1)[0] for line in lines} == set(env)


def _answers(env: dict[str, str]) -> bool:
    """Whether the Hub server at the printed address answers at all."""
    request = urllib.request.Request(f"{env['HF_ENDPOINT']}/api/whoami-v2",
                                     headers={"Authorization": f"Bearer {env['HF_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:  # refused: nothing listens there any more
        return False


def test_started_with_sigint_ignored_ctrl_c_and_kill_still_stop_it_and_its_servers(tmp_path: Path) -> None:
    """As a script's background job (`vmeval-hf sandbox &`), where SIGINT starts ignored; and by SIGTERM."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = _start(tmp_path / f"box-{sig}", "--json", sigint_ignored=True)
        try:
            assert proc.stdout is not None
            env = json.loads(proc.stdout.readline())
            assert _answers(env)
        finally:
            assert _ctrl_c(proc, sig) == ""
        assert not _answers(env)  # the Hub server went with it
